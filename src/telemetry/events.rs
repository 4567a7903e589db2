//! The event log's write path: requests hand events to a bounded queue and never wait; one task
//! writes them in batches. A full queue or a failing store is counted, never silent.

use crate::store::{DurableStore, EventRecord};
use crate::telemetry::metrics::Metrics;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const BATCH: usize = 256;
/// After the first event of a batch, wait this long for more: one transaction per batch instead of
/// one per event, and a writer that wakes a few times a second instead of once per request.
const LINGER: Duration = Duration::from_millis(100);

#[derive(Clone)]
pub struct EventSink {
    tx: mpsc::Sender<EventRecord>,
    metrics: Arc<Metrics>,
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
        let writer = tokio::spawn(write_events(rx, store, metrics.clone(), stop));
        (Self { tx, metrics }, writer)
    }

    pub fn record(&self, event: EventRecord) {
        if let Err(err) = self.tx.try_send(event) {
            self.metrics.events_dropped.inc();
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
        let mut delay = Duration::from_millis(50);
        let mut written = false;
        for _ in 0..4 {
            match store.append_events(&batch).await {
                Ok(()) => {
                    written = true;
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, events = batch.len(), "event write failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
            }
        }
        if !written {
            metrics.events_dropped.inc_by(batch.len() as u64);
            tracing::error!(
                events = batch.len(),
                "events dropped after retries (counted in velochat_events_dropped_total)"
            );
        }
        batch.clear();
    }
}
