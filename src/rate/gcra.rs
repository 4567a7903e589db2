//! GCRA (generic cell rate algorithm): a token bucket kept as one number, the theoretical arrival
//! time (TAT). The same arithmetic runs in-process and, for many replicas, in Redis (`redis_gcra.lua`).

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub burst: u32,
    pub per_minute: u32,
}

impl Quota {
    /// Time between two requests at the sustained rate, in nanoseconds.
    pub fn interval_ns(&self) -> u64 {
        60_000_000_000 / u64::from(self.per_minute.max(1))
    }

    /// A 1/n share of this quota (each replica's share while shared state is unreachable).
    pub fn share(&self, replicas: u32) -> Quota {
        let n = replicas.max(1);
        Quota { burst: self.burst.div_ceil(n).max(1), per_minute: self.per_minute.div_ceil(n).max(1) }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// When the next request would be allowed (zero when allowed now).
    pub retry_after: Duration,
    /// When the bucket is full again.
    pub reset: Duration,
}

impl Decision {
    /// `Retry-After` in whole seconds, never 0 (clients treat 0 as "hammer now").
    pub fn retry_after_secs(&self) -> u64 {
        self.retry_after.as_secs_f64().ceil().max(1.0) as u64
    }

    pub fn reset_secs(&self) -> u64 {
        self.reset.as_secs_f64().ceil() as u64
    }
}

/// One check at `now_ns`. Returns the decision and the TAT to store (unchanged when denied).
pub fn check(stored_tat: Option<u64>, now_ns: u64, quota: Quota) -> (Decision, u64) {
    let interval = quota.interval_ns();
    let tolerance = interval * u64::from(quota.burst);
    let tat = stored_tat.unwrap_or(now_ns).max(now_ns);
    let new_tat = tat + interval;
    if new_tat - now_ns > tolerance {
        let decision = Decision {
            allowed: false,
            limit: quota.burst,
            remaining: 0,
            retry_after: Duration::from_nanos(new_tat - now_ns - tolerance),
            reset: Duration::from_nanos(tat - now_ns),
        };
        return (decision, tat);
    }
    let used = new_tat - now_ns;
    let decision = Decision {
        allowed: true,
        limit: quota.burst,
        remaining: ((tolerance - used) / interval) as u32,
        retry_after: Duration::ZERO,
        reset: Duration::from_nanos(used),
    };
    (decision, new_tat)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    #[test]
    fn admits_exactly_the_burst_then_refills_at_the_rate() {
        let quota = Quota { burst: 5, per_minute: 10 };
        let mut tat = None;
        for expected_remaining in [4, 3, 2, 1, 0] {
            let (decision, next) = check(tat, 0, quota);
            assert!(decision.allowed);
            assert_eq!(decision.remaining, expected_remaining);
            tat = Some(next);
        }
        let (denied, same) = check(tat, 0, quota);
        assert!(!denied.allowed);
        assert_eq!(Some(same), tat);
        assert_eq!(denied.retry_after, Duration::from_secs(6));
        assert_eq!(denied.retry_after_secs(), 6);
        let (later, _) = check(tat, 6 * SEC, quota);
        assert!(later.allowed, "one token back after 60/10 seconds");
    }

    #[test]
    fn retry_after_is_at_least_one_second() {
        let quota = Quota { burst: 1, per_minute: 6000 };
        let (_, tat) = check(None, 0, quota);
        let (denied, _) = check(Some(tat), 0, quota);
        assert!(!denied.allowed);
        assert!(denied.retry_after < Duration::from_secs(1));
        assert_eq!(denied.retry_after_secs(), 1);
    }

    #[test]
    fn a_share_rounds_up_and_never_reaches_zero() {
        let quota = Quota { burst: 5, per_minute: 10 };
        assert_eq!(quota.share(3), Quota { burst: 2, per_minute: 4 });
        assert_eq!(Quota { burst: 1, per_minute: 1 }.share(8), Quota { burst: 1, per_minute: 1 });
    }
}
