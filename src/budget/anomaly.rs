//! Spend anomaly: the last hour's tokens against the median hour of the previous 7 days. Hourly
//! totals live in the shared store beside the monthly and daily ones, so every replica's spending
//! counts; "the last hour" is the current clock hour plus the unexpired share of the previous one
//! (a sliding window over two counters), and one claim per clock hour means one alert per hour.

use crate::store::StateStore;
use chrono::{DateTime, Duration as Span, Timelike, Utc};
use parking_lot::Mutex;
use serde::Serialize;
use std::time::Duration;

const BASELINE_HOURS: i64 = 7 * 24;

/// The alert webhook body.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SpendAnomaly {
    pub event: &'static str,
    pub last_hour_tokens: u64,
    pub baseline_hourly_tokens: u64,
    /// last hour ÷ baseline (null when the baseline is 0).
    pub factor: Option<f64>,
    /// The configured `budget.anomaly_factor` it exceeded.
    pub threshold_factor: f64,
    /// The clock hour alerted, `YYYY-MM-DDTHH` (UTC).
    pub hour: String,
}

/// The hour's usage key (next to `budget:month:*` and `budget:day:*`).
pub fn hour_key(at: DateTime<Utc>) -> String {
    format!("budget:hour:{}", hour_label(at))
}

fn hour_label(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H").to_string()
}

/// The middle of the values (the mean of the two middle ones for an even count).
pub fn median(mut values: Vec<u64>) -> u64 {
    if values.is_empty() {
        return 0;
    }
    values.sort_unstable();
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2
    }
}

/// What the previous 7 days say, read once per clock hour.
#[derive(Debug, Clone)]
struct Baseline {
    hour: String,
    previous_hour: u64,
    median: u64,
}

pub struct AnomalyWatch {
    factor: f64,
    min_tokens: u64,
    baseline: Mutex<Option<Baseline>>,
}

impl AnomalyWatch {
    pub fn new(factor: f64, min_tokens: u64) -> Self {
        Self { factor, min_tokens, baseline: Mutex::new(None) }
    }

    pub fn enabled(&self) -> bool {
        self.factor > 0.0
    }

    async fn baseline(&self, store: &dyn StateStore, now: DateTime<Utc>) -> Baseline {
        let hour = hour_label(now);
        if let Some(known) = self.baseline.lock().as_ref().filter(|b| b.hour == hour) {
            return known.clone();
        }
        let keys: Vec<String> = (1..=BASELINE_HOURS).map(|back| hour_key(now - Span::hours(back))).collect();
        let totals: Vec<u64> = store.usage(&keys).await.into_iter().map(|t| t.tokens).collect();
        let baseline = Baseline { hour, previous_hour: totals.first().copied().unwrap_or(0), median: median(totals) };
        *self.baseline.lock() = Some(baseline.clone());
        baseline
    }

    /// After usage was added: `this_hour` is the current clock hour's shared total. Some(alert)
    /// for the one caller, on any replica, that claims this hour's alert.
    pub async fn check(&self, store: &dyn StateStore, now: DateTime<Utc>, this_hour: u64) -> Option<SpendAnomaly> {
        if !self.enabled() || this_hour == 0 {
            return None;
        }
        let base = self.baseline(store, now).await;
        let into_hour = f64::from(now.minute() * 60 + now.second()) / 3600.0;
        let last_hour = this_hour + (base.previous_hour as f64 * (1.0 - into_hour)).round() as u64;
        if last_hour < self.min_tokens || last_hour as f64 <= self.factor * base.median as f64 {
            return None;
        }
        let key = format!("anomaly:{}", base.hour);
        if !store.claim_once(&key, Duration::from_secs(2 * 3600)).await {
            return None;
        }
        let factor = (base.median > 0).then(|| (last_hour as f64 / base.median as f64 * 100.0).round() / 100.0);
        Some(SpendAnomaly {
            event: "spend_anomaly",
            last_hour_tokens: last_hour,
            baseline_hourly_tokens: base.median,
            factor,
            threshold_factor: self.factor,
            hour: base.hour,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;
    use crate::store::UsageTotals;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    /// A week of hourly usage before `now`: `per_hour` tokens every hour.
    async fn scripted_week(store: &MemoryStore, now: DateTime<Utc>, per_hour: u64) {
        for back in 1..=BASELINE_HOURS {
            let key = hour_key(now - Span::hours(back));
            store.add_usage(&[key], UsageTotals { tokens: per_hour, usd_micros: 0 }).await;
        }
    }

    async fn spend(store: &MemoryStore, watch: &AnomalyWatch, now: DateTime<Utc>, tokens: u64) -> Option<SpendAnomaly> {
        let totals = store.add_usage(&[hour_key(now)], UsageTotals { tokens, usd_micros: 0 }).await;
        watch.check(store, now, totals[0].tokens).await
    }

    #[test]
    fn the_median_is_the_middle() {
        assert_eq!(median(vec![5, 1, 3]), 3);
        assert_eq!(median(vec![4, 1, 3, 2]), 2);
        assert_eq!(median(Vec::new()), 0);
    }

    #[tokio::test]
    async fn a_spike_over_a_quiet_week_alerts_once_per_hour() {
        let store = MemoryStore::new(1000, std::time::Duration::from_secs(60), 1000, false);
        let now = at("2026-11-30T10:00:00Z");
        scripted_week(&store, now, 5_000).await;
        let watch = AnomalyWatch::new(3.0, 20_000);
        assert_eq!(spend(&store, &watch, now, 10_000).await, None, "5,000 of the previous hour + 10,000: not 3×");
        let alert = spend(&store, &watch, now + Span::minutes(20), 15_000).await.expect("an alert");
        // 25,000 this hour + 2/3 of the previous hour's 5,000
        assert_eq!((alert.last_hour_tokens, alert.baseline_hourly_tokens), (28_333, 5_000));
        assert_eq!(alert.factor, Some(5.67));
        assert_eq!(spend(&store, &watch, now + Span::minutes(40), 50_000).await, None, "one alert per hour");
        let next_hour =
            spend(&store, &watch, now + Span::minutes(65), 90_000).await.expect("the next hour alerts again");
        assert_eq!(next_hour.hour, "2026-11-30T11");
    }

    #[tokio::test]
    async fn nothing_under_the_floor_however_quiet_the_week() {
        let store = MemoryStore::new(1000, std::time::Duration::from_secs(60), 1000, false);
        let now = at("2026-11-30T10:30:00Z");
        scripted_week(&store, now, 100).await;
        let watch = AnomalyWatch::new(3.0, 20_000);
        assert_eq!(spend(&store, &watch, now, 19_000).await, None, "190× the baseline but under 20,000 tokens");
        assert!(spend(&store, &watch, now, 2_000).await.is_some(), "21,000 + half of 100: over the floor");
    }

    #[tokio::test]
    async fn a_busy_week_raises_the_bar_and_zero_turns_it_off() {
        let store = MemoryStore::new(1000, std::time::Duration::from_secs(60), 1000, false);
        let now = at("2026-11-30T10:59:00Z");
        scripted_week(&store, now, 40_000).await;
        let watch = AnomalyWatch::new(3.0, 20_000);
        assert_eq!(spend(&store, &watch, now, 110_000).await, None, "under 3 × 40,000");
        assert!(spend(&store, &watch, now, 20_000).await.is_some());
        let off = AnomalyWatch::new(0.0, 20_000);
        assert_eq!(spend(&store, &off, now + Span::hours(1), 10_000_000).await, None);
    }
}
