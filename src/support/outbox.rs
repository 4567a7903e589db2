//! The durable outbox: events are written first, delivered after, retried with backoff until a
//! 2xx, in order per session, surviving restarts. With PostgreSQL, replicas claim rows with
//! `SKIP LOCKED`, so each event is delivered by exactly one of them.

use super::handoff::ALERT_KINDS;
use super::webhook::WebhookClient;
use crate::config::{Secret, WebhookSettings};
use crate::sites::SiteRegistry;
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
    /// Sites with their own webhooks (`settings.handoff`, `settings.alertWebhookUrl`).
    pub sites: Arc<SiteRegistry>,
    /// For a site's own webhook: the client and timeout the deployment's use.
    pub http: reqwest::Client,
}

impl OutboxWorker {
    /// A webhook's client for this row: the site's own when it has one, else the deployment's.
    fn target(&self, row: &crate::store::OutboxRow) -> std::borrow::Cow<'_, WebhookClient> {
        let alert = ALERT_KINDS.contains(&row.kind.as_str());
        let deployment = if alert { &self.alerts } else { &self.webhook };
        let Some(site) = self.sites.site_of_session(&row.session_id) else {
            return std::borrow::Cow::Borrowed(deployment);
        };
        let handoff = site.settings.handoff.as_ref();
        let url = if alert {
            site.settings.alert_webhook_url.as_deref()
        } else {
            handoff.and_then(|h| h.webhook_url.as_deref())
        };
        match url {
            None => std::borrow::Cow::Borrowed(deployment),
            Some(url) => {
                let secret = handoff.and_then(|h| h.webhook_secret.as_deref()).map(Secret::new);
                let timeout = Duration::from_millis(self.settings.timeout_ms);
                let secret = secret.unwrap_or_else(|| self.settings.secret.clone());
                std::borrow::Cow::Owned(WebhookClient::new(self.http.clone(), url, &secret, timeout))
            }
        }
    }

    /// Whether any event could be delivered now (a site may gain a webhook at any time).
    fn any_target(&self) -> bool {
        self.webhook.is_configured() || self.alerts.is_configured() || self.sites.has_own_webhooks()
    }

    pub async fn run(self, stop: CancellationToken) {
        if !self.any_target() {
            tracing::info!("no handoff or alert webhook configured: events stay in the outbox");
        }
        let poll = Duration::from_millis(self.settings.poll_interval_ms);
        loop {
            if !self.any_target() {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(poll.max(Duration::from_millis(500))) => continue,
                }
            }
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
            let to = self.target(&row);
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
