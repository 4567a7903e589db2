//! A site's own budget (`settings.budget`): its spend counted apart from every other site's, a
//! hard stop when it is used up (with `budget.hard_stop`), alerts at the same thresholds to the
//! site's alert webhook. The deployment's budget still counts every site's spend: it is the OpenAI
//! account's money.

use super::{periods, Budget, BudgetAlert, BudgetKind, THRESHOLDS};
use crate::sites::{Site, SiteBudget};
use crate::store::{StateStore, UsageTotals};
use chrono::Utc;
use serde::Serialize;
use std::time::Duration;

/// The counters of a site's budget: its id and creation time, so a site created again starts at 0.
fn keys(site: &Site, month: &str, day: &str) -> [String; 2] {
    let owner = site.incarnation();
    [format!("budget:site:{owner}:month:{month}"), format!("budget:site:{owner}:day:{day}")]
}

fn limits(budget: &SiteBudget) -> [(BudgetKind, f64); 3] {
    [
        (BudgetKind::MonthlyTokens, budget.monthly_tokens.unwrap_or(0) as f64),
        (BudgetKind::DailyTokens, budget.daily_tokens.unwrap_or(0) as f64),
        (BudgetKind::MonthlyUsd, budget.monthly_usd.unwrap_or(0.0)),
    ]
}

fn used(kind: BudgetKind, totals: &[UsageTotals]) -> f64 {
    let (monthly, daily) = (totals.first().copied().unwrap_or_default(), totals.get(1).copied().unwrap_or_default());
    match kind {
        BudgetKind::MonthlyTokens => monthly.tokens as f64,
        BudgetKind::DailyTokens => daily.tokens as f64,
        BudgetKind::MonthlyUsd => monthly.usd_micros as f64 / 1e6,
    }
}

/// A site's alert, with the site it is about.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SiteAlert<'a> {
    #[serde(flatten)]
    alert: &'a BudgetAlert,
    site: &'a str,
}

impl Budget {
    /// The site's own budget that is used up, if a hard stop applies. Read from the shared store
    /// on every request of a site that has one (no cache: a few sites' counters are cheap reads).
    pub async fn site_exhausted(&self, store: &dyn StateStore, site: &Site) -> Option<BudgetKind> {
        let budget = site.settings.budget.as_ref()?;
        if !self.settings.hard_stop {
            return None;
        }
        let (month, day) = periods(Utc::now());
        let totals = store.usage(&keys(site, &month, &day)).await;
        limits(budget).into_iter().find(|(kind, limit)| *limit > 0.0 && used(*kind, &totals) >= *limit).map(|(k, _)| k)
    }

    /// Books one request's spend against the site's own budget; alerts crossed thresholds once.
    pub async fn record_site(&self, store: &dyn StateStore, site: &Site, add: UsageTotals) -> Vec<BudgetAlert> {
        let Some(budget) = site.settings.budget.as_ref() else {
            return Vec::new();
        };
        let (month, day) = periods(Utc::now());
        let totals = store.add_usage(&keys(site, &month, &day), add).await;
        let mut alerts = Vec::new();
        for (kind, limit) in limits(budget) {
            if limit <= 0.0 {
                continue;
            }
            let spent = used(kind, &totals);
            let period = if kind == BudgetKind::DailyTokens { day.clone() } else { month.clone() };
            for threshold in THRESHOLDS {
                if spent < limit * f64::from(threshold) / 100.0 {
                    break;
                }
                let key = format!("alert:site:{}:{}:{period}:{threshold}", site.incarnation(), kind.as_str());
                if !self.alerted.lock().insert(key.clone()) {
                    continue;
                }
                if store.claim_once(&key, Duration::from_secs(40 * 24 * 3600)).await {
                    let alert = BudgetAlert {
                        event: "budget_alert",
                        budget: kind.as_str(),
                        threshold_percent: threshold,
                        used: spent,
                        limit,
                        period: period.clone(),
                    };
                    tracing::warn!(site = %site.id, budget = alert.budget, threshold_percent = threshold,
                                   used = spent, limit, "site budget alert");
                    self.send_for_site(site, &alert);
                    alerts.push(alert);
                }
            }
        }
        alerts
    }

    /// Queues a site's alert: the outbox routes it to the site's alert webhook, else the deployment's.
    fn send_for_site(&self, site: &Site, alert: &BudgetAlert) {
        if site.settings.alert_webhook_url.is_none() && self.settings.alert_webhook_url.is_empty() {
            return;
        }
        let prefix = site.session_prefix().unwrap_or_default().to_owned();
        let payload = serde_json::to_string(&SiteAlert { alert, site: site.id.as_str() }).unwrap_or_default();
        let outbox = self.alerts.clone();
        tokio::spawn(async move {
            // A failure is logged by the outbox, as for the deployment's alerts.
            let _ = outbox.publish_site_alert(&prefix, "budget_alert", payload).await;
        });
    }
}
