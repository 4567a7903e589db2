//! The event log's write path: requests hand events to a bounded queue and never wait; one task
//! writes them in batches. A batch that fails is retried (backing off to every 2 s) until it is
//! written, so nothing is lost while the database is up; meanwhile the queue holds what arrives
//! (`events.queue_capacity`). Only a full queue, or a batch still unwritten when the process stops,
//! drops events: counted in `velochat_events_dropped_total`, and `/readyz` says `degraded` for a
//! minute after each drop.

use crate::store::{DurableStore, EventRecord};
use crate::telemetry::metrics::Metrics;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const BATCH: usize = 1000;
/// Events per transaction: SQLite's one writer is held for a chunk at a time (under a
/// millisecond), so a reply waiting to write its outbox event never waits for a whole batch.
const WRITE_CHUNK: usize = 64;
/// How long `/readyz` reports dropping after the last drop.
const DROPPING_FOR_MS: i64 = 60_000;
/// After the first event of a batch, wait this long for more: one transaction per batch instead of
/// one per event, and a writer that wakes a few times a second instead of once per request.
const LINGER: Duration = Duration::from_millis(100);

#[derive(Clone)]
pub struct EventSink {
    tx: mpsc::Sender<EventRecord>,
    metrics: Arc<Metrics>,
    drops: Arc<DropClock>,
}

/// When events were last dropped (ms since the epoch; 0 = never).
#[derive(Default)]
struct DropClock(AtomicI64);

impl DropClock {
    fn mark(&self) {
        self.0.store(chrono::Utc::now().timestamp_millis(), Ordering::Relaxed);
    }

    fn recent(&self) -> bool {
        let last = self.0.load(Ordering::Relaxed);
        last > 0 && chrono::Utc::now().timestamp_millis() - last < DROPPING_FOR_MS
    }
}

impl EventSink {
    /// Starts the writer; on `stop` it refuses new events, writes what is queued, and ends.
    pub fn start(
        store: Arc<dyn DurableStore>,
        capacity: usize,
        metrics: Arc<Metrics>,
        stop: CancellationToken,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(capacity);
        let drops = Arc::new(DropClock::default());
        let writer = tokio::spawn(write_events(rx, store, metrics.clone(), drops.clone(), stop));
        (Self { tx, metrics, drops }, writer)
    }

    /// Events were dropped within the last minute.
    pub fn dropping(&self) -> bool {
        self.drops.recent()
    }

    pub fn record(&self, event: EventRecord) {
        if let Err(err) = self.tx.try_send(event) {
            self.metrics.events_dropped.inc();
            self.drops.mark();
            if matches!(err, mpsc::error::TrySendError::Full(_)) {
                tracing::warn!("event queue full: event dropped (counted in velochat_events_dropped_total)");
            }
        }
    }
}

async fn write_events(
    mut rx: mpsc::Receiver<EventRecord>,
    store: Arc<dyn DurableStore>,
    metrics: Arc<Metrics>,
    drops: Arc<DropClock>,
    stop: CancellationToken,
) {
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        let received = tokio::select! {
            n = rx.recv_many(&mut batch, BATCH) => n,
            _ = stop.cancelled() => {
                rx.close();
                rx.recv_many(&mut batch, BATCH).await
            }
        };
        if received == 0 {
            break;
        }
        if batch.len() < BATCH && !stop.is_cancelled() {
            let deadline = tokio::time::Instant::now() + LINGER;
            while batch.len() < BATCH {
                let room = BATCH - batch.len();
                match tokio::time::timeout_at(deadline, rx.recv_many(&mut batch, room)).await {
                    Ok(n) if n > 0 => {}
                    _ => break,
                }
            }
        }
        let unwritten = write_batch(store.as_ref(), &batch, &stop).await;
        if unwritten > 0 {
            metrics.events_dropped.inc_by(unwritten as u64);
            drops.mark();
            tracing::error!(
                events = unwritten,
                "events dropped: still unwritten at shutdown (counted in velochat_events_dropped_total)"
            );
        }
        batch.clear();
    }
}

/// Writes one batch — on SQLite a transaction per `WRITE_CHUNK` events, on PostgreSQL (row locks,
/// no single writer) one statement — each retried with backoff until it is written; returns how
/// many were given up at shutdown.
async fn write_batch(store: &dyn DurableStore, batch: &[EventRecord], stop: &CancellationToken) -> usize {
    let chunk_len = if store.backend() == "sqlite" { WRITE_CHUNK } else { batch.len().max(1) };
    for (i, chunk) in batch.chunks(chunk_len).enumerate() {
        let write = || store.append_events(chunk);
        if !crate::store::durable::retry::until_written(stop, "events", chunk.len(), write).await {
            return batch.len() - i * chunk_len;
        }
    }
    0
}
