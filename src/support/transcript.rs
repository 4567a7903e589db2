//! The human loop's write path for what visitors say: handoff records (with the messages that led
//! to them) and visitor messages to an agent are queued by the request and written by one task in
//! batches, one transaction per batch — a chat reply never waits on them. Readers that need them
//! written (an agent's message, a release, a breach) `flush()` first.

use crate::store::durable::{HandoffRecord, SessionMessage};
use crate::store::DurableStore;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

const LINGER: Duration = Duration::from_millis(50);
const BATCH: usize = 500;

enum Job {
    Handoff(HandoffRecord, Vec<SessionMessage>),
    Line(SessionMessage),
    Flush(oneshot::Sender<()>),
}

#[derive(Clone)]
pub struct TranscriptSink {
    tx: mpsc::UnboundedSender<Job>,
}

impl TranscriptSink {
    /// Starts the writer; on `stop` it writes what is queued and ends.
    pub fn start(durable: Arc<dyn DurableStore>, stop: CancellationToken) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self { tx }, tokio::spawn(write(rx, durable, stop)))
    }

    pub fn handoff(&self, record: HandoffRecord, led_to_it: Vec<SessionMessage>) {
        if self.tx.send(Job::Handoff(record, led_to_it)).is_err() {
            tracing::error!("handoff not recorded: the transcript writer has stopped");
        }
    }

    pub fn line(&self, line: SessionMessage) {
        if self.tx.send(Job::Line(line)).is_err() {
            tracing::error!("transcript line not kept: the transcript writer has stopped");
        }
    }

    /// Waits until everything queued before this call is written (or 5 s).
    pub async fn flush(&self) {
        let (done, written) = oneshot::channel();
        if self.tx.send(Job::Flush(done)).is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(5), written).await;
        }
    }
}

async fn write(mut rx: mpsc::UnboundedReceiver<Job>, durable: Arc<dyn DurableStore>, stop: CancellationToken) {
    let mut jobs = Vec::with_capacity(BATCH);
    loop {
        let received = tokio::select! {
            n = rx.recv_many(&mut jobs, BATCH) => n,
            _ = stop.cancelled() => {
                rx.close();
                rx.recv_many(&mut jobs, BATCH).await
            }
        };
        if received == 0 {
            break;
        }
        let flushing = jobs.iter().any(|j| matches!(j, Job::Flush(_)));
        if !flushing && jobs.len() < BATCH && !stop.is_cancelled() {
            let deadline = tokio::time::Instant::now() + LINGER;
            while jobs.len() < BATCH && !jobs.iter().any(|j| matches!(j, Job::Flush(_))) {
                let room = BATCH - jobs.len();
                match tokio::time::timeout_at(deadline, rx.recv_many(&mut jobs, room)).await {
                    Ok(n) if n > 0 => {}
                    _ => break,
                }
            }
        }
        let mut handoffs = Vec::new();
        let mut lines = Vec::new();
        let mut flushes = Vec::new();
        for job in jobs.drain(..) {
            match job {
                Job::Handoff(record, led_to_it) => handoffs.push((record, led_to_it)),
                Job::Line(line) => lines.push(line),
                Job::Flush(done) => flushes.push(done),
            }
        }
        if !(handoffs.is_empty() && lines.is_empty()) {
            write_batch(durable.as_ref(), &handoffs, &lines, &stop).await;
        }
        for done in flushes {
            let _ = done.send(());
        }
    }
}

/// Retries with backoff until written; gives up only once stopping and a few attempts failed.
async fn write_batch(
    durable: &dyn DurableStore,
    handoffs: &[(HandoffRecord, Vec<SessionMessage>)],
    lines: &[SessionMessage],
    stop: &CancellationToken,
) {
    let records = handoffs.len() + lines.len();
    let write = || durable.record_handoffs(handoffs, lines);
    if !crate::store::durable::retry::until_written(stop, "transcript", records, write).await {
        tracing::error!(handoffs = handoffs.len(), lines = lines.len(), "transcript lines lost at shutdown");
    }
}
