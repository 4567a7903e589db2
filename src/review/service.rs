//! The review service behind the console and `/admin/report`: the overview's days, the handoffs a
//! person owns with their SLA state, and the report of a window.

use super::Report;
use crate::chat::ChatService;
use crate::domain::rfc3339;
use crate::human_loop::HumanLoop;
use crate::sites::Site;
use crate::store::{DurableStore, Mode, StoreError};
use crate::telemetry::Metrics;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

const DAY_MS: i64 = 86_400_000;

pub struct Review {
    durable: Arc<dyn DurableStore>,
    chat: Arc<ChatService>,
    human: Arc<HumanLoop>,
    metrics: Arc<Metrics>,
}

/// The overview: per day (UTC, oldest first) the support metrics and volume, then what holds now.
pub struct Overview(pub Value);

impl Review {
    pub fn new(
        durable: Arc<dyn DurableStore>,
        chat: Arc<ChatService>,
        human: Arc<HumanLoop>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self { durable, chat, human, metrics }
    }

    /// The site's last `days` (UTC days, today included), then the circuit, its kill switch and
    /// budget now.
    pub async fn overview(&self, site: &Site, days: u32) -> Result<Overview, StoreError> {
        let settings = self.chat.settings();
        let now = chrono::Utc::now().timestamp_millis();
        let since = now - now.rem_euclid(DAY_MS) - i64::from(days.saturating_sub(1)) * DAY_MS;
        let events = self.durable.events_in(site.report_scope(), since).await?;
        let low = settings.handoff.low_confidence_threshold;
        let per_day = super::daily(&events, days, now, low);
        let totals = super::compute(&events, since, now, low);
        let budget: serde_json::Map<String, Value> = ["monthly_tokens", "daily_tokens", "monthly_usd"]
            .into_iter()
            .map(|kind| (kind.to_owned(), json!(self.metrics.budget_used_ratio.with_label_values(&[kind]).get())))
            .collect();
        let limits = &settings.budget;
        Ok(Overview(json!({
            "days": per_day,
            "totals": {
                "replies": totals.replies, "sessions": totals.sessions, "bySource": totals.by_source,
                "fallbackReasons": totals.fallback_reasons, "promptTokens": totals.prompt_tokens,
                "completionTokens": totals.completion_tokens, "costUsd": totals.cost_usd,
            },
            "circuit": self.chat.circuit_state().as_str(),
            "killSwitch": self.chat.site_kill_switch(site).await,
            "budgetUsedRatio": budget,
            "budgetLimits": match site.settings.budget.as_ref() {
                // A site's own budget; the ratios above stay the deployment's.
                Some(own) => json!({"monthlyTokens": own.monthly_tokens.unwrap_or(0),
                    "dailyTokens": own.daily_tokens.unwrap_or(0), "monthlyUsd": own.monthly_usd.unwrap_or(0.0)}),
                None => json!({"monthlyTokens": limits.monthly_tokens, "dailyTokens": limits.daily_tokens,
                    "monthlyUsd": limits.monthly_usd}),
            },
        })))
    }

    /// Sessions a person owns now: how long the visitor has waited and the SLA state.
    pub async fn handoffs(&self, site: &Site) -> Result<Vec<Value>, StoreError> {
        let open = self.durable.open_handoffs(site.scope()).await?;
        let now = chrono::Utc::now().timestamp_millis();

        let mut list = Vec::new();
        for h in open {
            // A row can outlive its ownership (erased, or released before this version): show only
            // sessions a person still owns.
            let owned = self.human.session_view(&h.session_id).await;
            if !owned.is_some_and(|v| v.mode == Mode::Human) {
                continue;
            }
            let waited_until = h.first_agent_ms.unwrap_or(now);
            let sla = self.human.sla_of(&h.session_id);
            let sla_state = sla.state(h.started_ms, h.first_agent_ms, h.sla_breached, now);
            list.push(json!({
                "sessionId": crate::domain::visible_session_id(&h.session_id), "startedAt": rfc3339(h.started_ms), "reason": h.reason,
                "waitingSeconds": ((waited_until - h.started_ms).max(0) as f64 / 1000.0).round(),
                "firstAgentAt": h.first_agent_ms.and_then(rfc3339), "slaState": sla_state.as_str(),
                "slaSeconds": sla.0 / 1000,
            }));
        }
        Ok(list)
    }

    /// The site's review of the last `window`.
    pub async fn report_since(&self, site: &Site, window: Duration) -> Result<Report, StoreError> {
        super::build(self.durable.as_ref(), site.report_scope(), window, self.chat.settings()).await
    }

    /// The site's review of `[since_ms, until_ms)`.
    pub async fn report_between(&self, site: &Site, since_ms: i64, until_ms: i64) -> Result<Report, StoreError> {
        super::build_between(self.durable.as_ref(), site.report_scope(), since_ms, until_ms, self.chat.settings()).await
    }
}
