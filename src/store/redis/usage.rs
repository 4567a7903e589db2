//! Budget counters in Redis: spending added atomically across replicas, and while Redis is down a
//! conservative local estimate that is added to the shared counters on recovery.

use super::RedisStore;
use crate::store::UsageTotals;

/// Counters outlive the longest budget period (a month) with room to spare.
const USAGE_TTL_SECS: u64 = 40 * 24 * 3600;

impl RedisStore {
    /// Local spending while down is added to the shared counters once Redis answers again.
    pub(super) async fn flush_pending_usage(&self) {
        let pending: Vec<(String, UsageTotals)> = self.pending_usage.lock().drain().collect();
        for (period, spent) in pending {
            if self.add_shared(std::slice::from_ref(&period), spent).await.is_none() {
                self.pending_usage.lock().entry(period).or_default().add(spent);
            }
        }
    }

    pub(super) async fn add_shared(&self, periods: &[String], add: UsageTotals) -> Option<Vec<UsageTotals>> {
        let keys: Vec<String> =
            periods.iter().flat_map(|p| [self.key(&[p.as_str(), "tokens"]), self.key(&[p.as_str(), "usd"])]).collect();
        let script = &self.add_usage;
        let values: Vec<u64> = self
            .call(|mut c| async move {
                let mut invocation = script.prepare_invoke();
                for key in &keys {
                    invocation.key(key);
                }
                invocation.arg(add.tokens).arg(add.usd_micros).arg(USAGE_TTL_SECS);
                invocation.invoke_async(&mut c).await
            })
            .await?;
        let totals: Vec<UsageTotals> = values
            .chunks(2)
            .map(|pair| UsageTotals { tokens: pair[0], usd_micros: pair.get(1).copied().unwrap_or(0) })
            .collect();
        let mut known = self.known_usage.lock();
        for (period, total) in periods.iter().zip(&totals) {
            known.insert(period.clone(), *total);
        }
        Some(totals)
    }

    /// Last shared totals plus local spending counted for every replica: never under the truth
    /// unless another replica spent more than this one.
    pub(super) fn conservative_usage(&self, periods: &[String]) -> Vec<UsageTotals> {
        let known = self.known_usage.lock();
        let pending = self.pending_usage.lock();
        periods
            .iter()
            .map(|p| {
                let mut total = known.get(p).copied().unwrap_or_default();
                let local = pending.get(p).copied().unwrap_or_default();
                total.tokens += local.tokens * u64::from(self.replicas);
                total.usd_micros += local.usd_micros * u64::from(self.replicas);
                total
            })
            .collect()
    }
}

impl UsageTotals {
    pub(super) fn add(&mut self, other: UsageTotals) {
        self.tokens += other.tokens;
        self.usd_micros += other.usd_micros;
    }
}
