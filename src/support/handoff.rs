//! Handoff events for the support team: `handoff` (bot → human), `message` (the visitor wrote while
//! a human owns the session), `sla_breached` (nobody answered within `handoff.sla_ms`) and
//! `released` (human → bot). Each is written to the durable outbox
//! before anyone is told, so none is lost.

use crate::domain::{Turn, TypedContext};
use crate::guard::hashed_id;
use crate::store::{DurableStore, OutboxEvent};
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Handoff,
    Message,
    SlaBreached,
    Released,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Handoff => "handoff",
            EventKind::Message => "message",
            EventKind::SlaBreached => "sla_breached",
            EventKind::Released => "released",
        }
    }
}

/// The webhook body. `id` is the idempotency key: a retried delivery carries the same id.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookPayload<'a> {
    pub id: &'a str,
    pub event: &'a str,
    /// The same as `event`, under the name some receivers switch on.
    #[serde(rename = "type")]
    pub kind: &'a str,
    pub session_id: &'a str,
    /// The site the session belongs to; absent for `default` (whose payload is as before sites).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub site: Option<&'a str>,
    pub occurred_at: String,
    pub reason: Option<&'a str>,
    pub intent: Option<&'a str>,
    pub context: Option<&'a TypedContext>,
    pub transcript: &'a [Turn],
    pub summary: String,
    /// The visitor's new message (`message` events).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<&'a str>,
    /// How long the visitor had waited for a person (`sla_breached` events).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waited_ms: Option<i64>,
}

pub struct SupportEvent<'a> {
    pub kind: EventKind,
    pub session_id: &'a str,
    pub reason: Option<&'a str>,
    pub intent: Option<&'a str>,
    pub context: Option<&'a TypedContext>,
    pub transcript: &'a [Turn],
    pub message: Option<&'a str>,
    pub waited_ms: Option<i64>,
}

/// One line for a ticket title: what happened, what the visitor said, the order at stake.
pub fn summary(event: &SupportEvent<'_>) -> String {
    let mut line = match (event.kind, event.reason) {
        (EventKind::Handoff, Some(reason)) => format!("Handoff ({reason})"),
        (EventKind::SlaBreached, _) => match event.waited_ms {
            Some(ms) => format!("SLA breached: no agent reply after {} s", ms / 1000),
            None => "SLA breached".to_owned(),
        },
        (kind, _) => kind.as_str().to_owned(),
    };
    let said = event.message.or_else(|| event.transcript.last().map(|t| t.content.as_str()));
    if let Some(text) = said {
        let short: String = text.chars().take(140).collect::<String>().replace(['\n', '\r'], " ");
        let ellipsis = if text.chars().count() > 140 { "…" } else { "" };
        line.push_str(&format!(": \"{short}{ellipsis}\""));
    }
    if let Some(ctx) = event.context {
        if let Some(order) = &ctx.order_ref {
            line.push_str(&format!(" — order {order}"));
            if let Some(stage) = &ctx.order_stage {
                line.push_str(&format!(" ({stage})"));
            }
        }
        line.push_str(&format!(" — {} / {}", ctx.account_tier, ctx.account_status));
    }
    line
}

/// Outbox kinds that go to the alert webhook (`budget.alert_webhook_url`), not the handoff one.
pub const ALERT_KINDS: [&str; 2] = ["budget_alert", "spend_anomaly"];

/// Alerts are ordered among themselves, apart from every session's events.
const ALERT_STREAM: &str = "velochat-alerts";

#[derive(Clone)]
pub struct SupportOutbox {
    durable: Arc<dyn DurableStore>,
    wake: Arc<Notify>,
    salt: String,
}

impl SupportOutbox {
    pub fn new(durable: Arc<dyn DurableStore>, wake: Arc<Notify>, salt: &str) -> Self {
        Self { durable, wake, salt: salt.to_owned() }
    }

    /// Writes the event to the outbox (retrying briefly) and wakes the delivery worker.
    pub async fn publish(&self, event: SupportEvent<'_>) -> Result<String, crate::store::StoreError> {
        let id = uuid::Uuid::now_v7().to_string();
        let payload = WebhookPayload {
            id: &id,
            event: event.kind.as_str(),
            kind: event.kind.as_str(),
            session_id: crate::domain::visible_session_id(event.session_id),
            site: crate::domain::session_owner(event.session_id).map(|(site, _)| site),
            occurred_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            reason: event.reason,
            intent: event.intent,
            context: event.context,
            transcript: event.transcript,
            summary: summary(&event),
            message: event.message,
            waited_ms: event.waited_ms,
        };
        let row = OutboxEvent {
            id: id.clone(),
            session_id: event.session_id.to_owned(),
            session_hash: hashed_id(&self.salt, "session", event.session_id),
            kind: event.kind.as_str().to_owned(),
            payload: serde_json::to_string(&payload).unwrap_or_else(|_| "{}".into()),
            created_ms: chrono::Utc::now().timestamp_millis(),
        };
        self.enqueue(row).await?;
        Ok(id)
    }

    /// A budget alert or spend anomaly (`kind` one of `ALERT_KINDS`): delivered to the alert
    /// webhook through the same outbox, signed and retried like a handoff event.
    pub async fn publish_alert(&self, kind: &'static str, payload: String) -> Result<String, crate::store::StoreError> {
        self.publish_site_alert("", kind, payload).await
    }

    /// An alert about one site: its stream carries the site's prefix, so the worker sends it to
    /// the site's alert webhook (else the deployment's).
    pub async fn publish_site_alert(
        &self,
        site_prefix: &str,
        kind: &'static str,
        payload: String,
    ) -> Result<String, crate::store::StoreError> {
        let id = uuid::Uuid::now_v7().to_string();
        let row = OutboxEvent {
            id: id.clone(),
            session_id: format!("{site_prefix}{ALERT_STREAM}"),
            session_hash: String::new(),
            kind: kind.to_owned(),
            payload,
            created_ms: chrono::Utc::now().timestamp_millis(),
        };
        self.enqueue(row).await?;
        Ok(id)
    }

    /// Writes the row (retrying briefly: a request waits on it) and wakes the delivery worker.
    async fn enqueue(&self, row: OutboxEvent) -> Result<(), crate::store::StoreError> {
        use backon::Retryable;
        let backoff =
            crate::retry::exponential(Duration::from_millis(20), Duration::from_millis(320)).with_max_times(3);
        let written = (|| self.durable.enqueue(&row))
            .retry(backoff)
            .sleep(tokio::time::sleep)
            .notify(|e, _| tracing::warn!(error = %e, "outbox write failed; retrying"))
            .await;
        if let Err(e) = written {
            tracing::error!(error = %e, event = %row.kind, "outbox write failed: support event not recorded");
            return Err(e);
        }
        self.wake.notify_one();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Role;

    #[test]
    fn the_summary_fits_a_ticket_title() {
        let ctx = TypedContext {
            order_ref: Some("A-1001".into()),
            order_stage: Some("shipped".into()),
            ..Default::default()
        };
        let transcript = vec![Turn { role: Role::User, content: "I want a refund\nnow".into() }];
        let event = SupportEvent {
            kind: EventKind::Handoff,
            session_id: "s",
            reason: Some("intent"),
            intent: Some("refund"),
            context: Some(&ctx),
            transcript: &transcript,
            message: None,
            waited_ms: None,
        };
        assert_eq!(
            summary(&event),
            "Handoff (intent): \"I want a refund now\" — order A-1001 (shipped) — standard / unknown"
        );
    }
}
