//! Token and money budgets: usage as OpenAI reports it, counted per hour, day and month in the
//! shared store; alerts at 50/80/95/100 % (each once per period, across replicas); static replies
//! once a budget is used up (unless configured alert-only); spend anomalies (`anomaly`).

pub mod anomaly;
mod site;

use crate::completion::wire::Usage;
use crate::config::{BudgetSettings, ModelPrice};
use crate::store::{StateStore, UsageTotals};
use crate::support::SupportOutbox;
use crate::telemetry::Metrics;
use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use serde::Serialize;
use std::collections::HashSet;
use std::time::{Duration, Instant};

pub use anomaly::{AnomalyWatch, SpendAnomaly};

pub const THRESHOLDS: [u32; 4] = [50, 80, 95, 100];
/// Other replicas' spending is re-read at least this often.
const REFRESH: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetKind {
    MonthlyTokens,
    DailyTokens,
    MonthlyUsd,
}

impl BudgetKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BudgetKind::MonthlyTokens => "monthly_tokens",
            BudgetKind::DailyTokens => "daily_tokens",
            BudgetKind::MonthlyUsd => "monthly_usd",
        }
    }
}

/// The alert webhook body.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BudgetAlert {
    pub event: &'static str,
    pub budget: &'static str,
    pub threshold_percent: u32,
    pub used: f64,
    pub limit: f64,
    pub period: String,
}

#[derive(Debug, Clone)]
struct Snapshot {
    at: Instant,
    month: String,
    day: String,
    monthly: UsageTotals,
    daily: UsageTotals,
}

pub struct Budget {
    settings: BudgetSettings,
    /// Alerts leave through the durable, signed outbox (as handoff events do).
    alerts: SupportOutbox,
    snapshot: Mutex<Option<Snapshot>>,
    alerted: Mutex<HashSet<String>>,
    anomaly: AnomalyWatch,
}

/// What booking one request's usage set off.
#[derive(Debug, Default)]
pub struct Booked {
    pub alerts: Vec<BudgetAlert>,
    pub anomaly: Option<SpendAnomaly>,
}

pub fn periods(now: DateTime<Utc>) -> (String, String) {
    (now.format("%Y-%m").to_string(), now.format("%Y-%m-%d").to_string())
}

fn keys(month: &str, day: &str) -> [String; 2] {
    [format!("budget:month:{month}"), format!("budget:day:{day}")]
}

/// Price of the model: the configured entry whose name is the longest prefix of the reported
/// model (`gpt-4o-mini-2024-07-18` is priced as `gpt-4o-mini`).
pub fn price_for<'a>(
    prices: &'a std::collections::BTreeMap<String, ModelPrice>,
    model: &str,
) -> Option<&'a ModelPrice> {
    prices
        .iter()
        .filter(|(name, _)| model.starts_with(name.as_str()))
        .max_by_key(|(name, _)| name.len())
        .map(|(_, p)| p)
}

/// Cost in micro-dollars: uncached prompt, cached prompt and completion tokens at their prices.
pub fn cost_micros(price: Option<&ModelPrice>, usage: &Usage) -> u64 {
    let Some(p) = price else { return 0 };
    let cached = usage.cached_tokens().min(usage.prompt_tokens);
    let usd = (usage.prompt_tokens - cached) as f64 * p.prompt
        + cached as f64 * p.cached
        + usage.completion_tokens as f64 * p.completion;
    // prices are per million tokens, so usd here is already in micro-dollars
    usd.round() as u64
}

impl Budget {
    pub fn new(settings: BudgetSettings, alerts: SupportOutbox) -> Self {
        let anomaly = AnomalyWatch::new(settings.anomaly_factor, settings.anomaly_min_tokens);
        Self { settings, alerts, snapshot: Mutex::new(None), alerted: Mutex::new(HashSet::new()), anomaly }
    }

    pub fn enabled(&self) -> bool {
        self.settings.monthly_tokens > 0 || self.settings.daily_tokens > 0 || self.settings.monthly_usd > 0.0
    }

    pub fn cost(&self, model: &str, usage: &Usage) -> u64 {
        cost_micros(price_for(&self.settings.prices, model), usage)
    }

    fn limits(&self) -> [(BudgetKind, f64); 3] {
        [
            (BudgetKind::MonthlyTokens, self.settings.monthly_tokens as f64),
            (BudgetKind::DailyTokens, self.settings.daily_tokens as f64),
            (BudgetKind::MonthlyUsd, self.settings.monthly_usd),
        ]
    }

    fn used(kind: BudgetKind, snap: &Snapshot) -> f64 {
        match kind {
            BudgetKind::MonthlyTokens => snap.monthly.tokens as f64,
            BudgetKind::DailyTokens => snap.daily.tokens as f64,
            BudgetKind::MonthlyUsd => snap.monthly.usd_micros as f64 / 1e6,
        }
    }

    /// The budget that is used up, if a hard stop applies.
    pub async fn exhausted(&self, store: &dyn StateStore, metrics: &Metrics) -> Option<BudgetKind> {
        if !self.enabled() || !self.settings.hard_stop {
            return None;
        }
        let snap = self.current(store, metrics).await;
        self.limits()
            .into_iter()
            .find(|(kind, limit)| *limit > 0.0 && Self::used(*kind, &snap) >= *limit)
            .map(|(k, _)| k)
    }

    async fn current(&self, store: &dyn StateStore, metrics: &Metrics) -> Snapshot {
        let (month, day) = periods(Utc::now());
        if let Some(snap) = self.snapshot.lock().as_ref() {
            if snap.at.elapsed() < REFRESH && snap.month == month && snap.day == day {
                return snap.clone();
            }
        }
        let totals = store.usage(&keys(&month, &day)).await;
        self.remember(month, day, &totals, metrics)
    }

    fn remember(&self, month: String, day: String, totals: &[UsageTotals], metrics: &Metrics) -> Snapshot {
        let snap = Snapshot {
            at: Instant::now(),
            month,
            day,
            monthly: totals.first().copied().unwrap_or_default(),
            daily: totals.get(1).copied().unwrap_or_default(),
        };
        for (kind, limit) in self.limits() {
            let ratio = if limit > 0.0 { Self::used(kind, &snap) / limit } else { 0.0 };
            metrics.budget_used_ratio.with_label_values(&[kind.as_str()]).set(ratio);
        }
        *self.snapshot.lock() = Some(snap.clone());
        snap
    }

    /// Adds one request's usage and sends every alert whose threshold is now crossed, and the
    /// spend-anomaly alert when this request tipped the hour over.
    pub async fn record(&self, store: &dyn StateStore, metrics: &Metrics, usage: &Usage, cost_micros: u64) -> Booked {
        if !self.enabled() && !self.anomaly.enabled() {
            return Booked::default();
        }
        let now = Utc::now();
        let (month, day) = periods(now);
        let add = UsageTotals {
            tokens: usage.total_tokens.max(usage.prompt_tokens + usage.completion_tokens),
            usd_micros: cost_micros,
        };
        let [month_key, day_key] = keys(&month, &day);
        let totals = store.add_usage(&[month_key, day_key, anomaly::hour_key(now)], add).await;
        let this_hour = totals.get(2).map_or(0, |t| t.tokens);
        let alerts =
            if self.enabled() { self.threshold_alerts(store, metrics, month, day, &totals).await } else { Vec::new() };
        let anomaly = self.anomaly.check(store, now, this_hour).await;
        if let Some(anomaly) = &anomaly {
            metrics.spend_anomalies.inc();
            tracing::warn!(last_hour_tokens = anomaly.last_hour_tokens, baseline_hourly_tokens = anomaly.baseline_hourly_tokens,
                           hour = %anomaly.hour, "spend anomaly");
            self.send(anomaly.event, anomaly);
        }
        Booked { alerts, anomaly }
    }

    async fn threshold_alerts(
        &self,
        store: &dyn StateStore,
        metrics: &Metrics,
        month: String,
        day: String,
        totals: &[UsageTotals],
    ) -> Vec<BudgetAlert> {
        let snap = self.remember(month, day, totals, metrics);
        let mut alerts = Vec::new();
        for (kind, limit) in self.limits() {
            if limit <= 0.0 {
                continue;
            }
            let used = Self::used(kind, &snap);
            let period = if kind == BudgetKind::DailyTokens { snap.day.clone() } else { snap.month.clone() };
            for threshold in THRESHOLDS {
                if used < limit * f64::from(threshold) / 100.0 {
                    break;
                }
                let key = format!("alert:{}:{period}:{threshold}", kind.as_str());
                if !self.alerted.lock().insert(key.clone()) {
                    continue;
                }
                if store.claim_once(&key, Duration::from_secs(40 * 24 * 3600)).await {
                    alerts.push(BudgetAlert {
                        event: "budget_alert",
                        budget: kind.as_str(),
                        threshold_percent: threshold,
                        used,
                        limit,
                        period: period.clone(),
                    });
                }
            }
        }
        for alert in &alerts {
            tracing::warn!(budget = alert.budget, threshold_percent = alert.threshold_percent, used = alert.used,
                           limit = alert.limit, period = %alert.period, "budget alert");
            self.send(alert.event, alert);
        }
        alerts
    }

    /// Queues an alert for the alert webhook (in the background: the reply waits on nothing).
    fn send<T: Serialize>(&self, kind: &'static str, alert: &T) {
        if self.settings.alert_webhook_url.is_empty() {
            return;
        }
        let payload = serde_json::to_string(alert).unwrap_or_default();
        let alerts = self.alerts.clone();
        tokio::spawn(async move {
            // A failure is logged by the outbox; the alert is then lost, like any unwritten event.
            let _ = alerts.publish_alert(kind, payload).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::completion::wire::PromptTokensDetails;
    use std::collections::BTreeMap;

    #[test]
    fn prices_match_the_longest_model_prefix() {
        let mut prices = BTreeMap::new();
        prices.insert("gpt-4o".to_string(), ModelPrice { prompt: 2.5, cached: 1.25, completion: 10.0 });
        prices.insert("gpt-4o-mini".to_string(), ModelPrice { prompt: 0.15, cached: 0.075, completion: 0.6 });
        assert_eq!(price_for(&prices, "gpt-4o-mini-2024-07-18").unwrap().prompt, 0.15);
        assert_eq!(price_for(&prices, "gpt-4o-2024-08-06").unwrap().prompt, 2.5);
        assert!(price_for(&prices, "o3").is_none());
    }

    #[test]
    fn cached_tokens_are_priced_at_the_cached_rate() {
        let price = ModelPrice { prompt: 2.0, cached: 1.0, completion: 10.0 };
        let usage = Usage {
            prompt_tokens: 1000,
            completion_tokens: 100,
            total_tokens: 1100,
            prompt_tokens_details: Some(PromptTokensDetails { cached_tokens: Some(400) }),
        };
        // 600 × 2 + 400 × 1 + 100 × 10 = 2600 micro-dollars
        assert_eq!(cost_micros(Some(&price), &usage), 2600);
    }

    #[test]
    fn periods_are_month_and_day() {
        let at = DateTime::parse_from_rfc3339("2026-11-28T23:59:59Z").unwrap().with_timezone(&Utc);
        assert_eq!(periods(at), ("2026-11".to_string(), "2026-11-28".to_string()));
    }
}
