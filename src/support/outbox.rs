//! The durable outbox: events are written first, delivered after, retried with backoff until a
//! 2xx, in order per session, surviving restarts. With PostgreSQL, replicas claim rows with
//! `SKIP LOCKED`, so each event is delivered by exactly one of them.

use super::webhook::WebhookClient;
use crate::config::WebhookSettings;
use crate::store::DurableStore;
use crate::telemetry::Metrics;
use rand::Rng;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

const CLAIM_BATCH: i64 = 50;

pub struct OutboxWorker {
    pub durable: Arc<dyn DurableStore>,
    pub webhook: WebhookClient,
    pub settings: WebhookSettings,
    pub metrics: Arc<Metrics>,
    pub wake: Arc<Notify>,
    pub worker_id: String,
}

/// Doubling from the base, capped, with ±20 % jitter so failed events do not retry in lockstep.
pub fn backoff(attempts: i64, base_ms: u64, max_ms: u64) -> Duration {
    let exponent = attempts.saturating_sub(1).clamp(0, 30) as u32;
    let raw = base_ms.saturating_mul(1u64 << exponent).min(max_ms);
    let jitter = rand::thread_rng().gen_range(0.8..=1.2);
    Duration::from_millis(((raw as f64) * jitter) as u64)
}

impl OutboxWorker {
    pub async fn run(self, stop: CancellationToken) {
        if !self.webhook.is_configured() {
            tracing::info!("no handoff webhook configured: events stay in the outbox");
            return;
        }
        let poll = Duration::from_millis(self.settings.poll_interval_ms);
        loop {
            let delivered_any = match self.deliver_due().await {
                Ok(count) => count > 0,
                Err(e) => {
                    tracing::warn!(error = %e, "outbox poll failed");
                    false
                }
            };
            if let Ok(pending) = self.durable.pending_outbox().await {
                self.metrics.outbox_pending.set(pending);
            }
            if delivered_any {
                continue; // the next event of a session may be due right away
            }
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(poll) => {}
            }
        }
    }

    /// Claims and delivers one batch; returns how many were delivered.
    pub async fn deliver_due(&self) -> Result<usize, crate::store::StoreError> {
        let now = chrono::Utc::now().timestamp_millis();
        let lease = self.settings.lease_ms as i64;
        let rows = self.durable.claim_due(&self.worker_id, now, lease, CLAIM_BATCH).await?;
        let mut delivered = 0;
        for row in rows {
            match self.webhook.deliver(&row.id, &row.kind, &row.payload).await {
                Ok(()) => {
                    self.metrics.webhook_deliveries.with_label_values(&["delivered"]).inc();
                    self.durable.mark_delivered(row.seq, chrono::Utc::now().timestamp_millis()).await?;
                    delivered += 1;
                }
                Err(error) => {
                    self.metrics.webhook_deliveries.with_label_values(&["failed"]).inc();
                    let wait = backoff(row.attempts, self.settings.retry_base_ms, self.settings.retry_max_ms);
                    let error = crate::error_chain::describe(&error);
                    tracing::warn!(event_id = %row.id, kind = %row.kind, attempts = row.attempts, %error,
                                   retry_in_ms = wait.as_millis() as u64, "webhook delivery failed");
                    let next = chrono::Utc::now().timestamp_millis() + wait.as_millis() as i64;
                    self.durable.mark_retry(row.seq, next, &error).await?;
                }
            }
        }
        Ok(delivered)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let ms = |a| backoff(a, 100, 1000).as_millis() as u64;
        assert!((80..=120).contains(&ms(1)));
        assert!((160..=240).contains(&ms(2)));
        assert!((800..=1200).contains(&ms(10)));
        assert!((800..=1200).contains(&ms(i64::MAX)));
    }
}
