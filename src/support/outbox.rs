//! The durable outbox: events are written first, delivered after, retried with backoff until a
//! 2xx, in order per session, surviving restarts. With PostgreSQL, replicas claim rows with
//! `SKIP LOCKED`, so each event is delivered by exactly one of them.

use super::handoff::ALERT_KINDS;
use super::webhook::WebhookClient;
use crate::config::WebhookSettings;
use crate::store::DurableStore;
use crate::telemetry::Metrics;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

const CLAIM_BATCH: i64 = 50;

pub struct OutboxWorker {
    pub durable: Arc<dyn DurableStore>,
    /// Handoff events (`webhook.url`).
    pub webhook: WebhookClient,
    /// Budget alerts and spend anomalies (`budget.alert_webhook_url`).
    pub alerts: WebhookClient,
    pub settings: WebhookSettings,
    pub metrics: Arc<Metrics>,
    pub wake: Arc<Notify>,
    pub worker_id: String,
}

impl OutboxWorker {
    pub async fn run(self, stop: CancellationToken) {
        if !self.webhook.is_configured() && !self.alerts.is_configured() {
            tracing::info!("no handoff or alert webhook configured: events stay in the outbox");
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
            let to = if ALERT_KINDS.contains(&row.kind.as_str()) { &self.alerts } else { &self.webhook };
            if !to.is_configured() {
                // Kept for when a URL is configured; looked at again after the longest backoff.
                let later = now + self.settings.retry_max_ms as i64;
                self.durable.mark_retry(row.seq, later, "no webhook URL configured").await?;
                continue;
            }
            match to.deliver(&row.id, &row.kind, &row.payload).await {
                Ok(()) => {
                    self.metrics.webhook_deliveries.with_label_values(&["delivered"]).inc();
                    self.durable.mark_delivered(row.seq, chrono::Utc::now().timestamp_millis()).await?;
                    delivered += 1;
                }
                Err(error) => {
                    self.metrics.webhook_deliveries.with_label_values(&["failed"]).inc();
                    let (first, max) = (
                        Duration::from_millis(self.settings.retry_base_ms),
                        Duration::from_millis(self.settings.retry_max_ms),
                    );
                    let wait = crate::retry::scheduled_delay(row.attempts, first, max);
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
