//! In-process keyed GCRA limiter with a hard cap on tracked keys. governor's keyed store cannot
//! be capped (rotating session ids would grow it without bound), and the Redis path needs the same
//! arithmetic anyway, so the bucket math lives in `gcra` and this is only its bounded storage.

use super::gcra::{self, Decision, Quota};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::time::Instant;

const SHARDS: usize = 16;

pub struct LocalLimiter {
    shards: Vec<Mutex<HashMap<Box<str>, u64>>>,
    hasher: std::collections::hash_map::RandomState,
    cap_per_shard: usize,
    epoch: Instant,
}

impl LocalLimiter {
    pub fn new(max_keys: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: Default::default(),
            cap_per_shard: (max_keys / SHARDS).max(1),
            epoch: Instant::now(),
        }
    }

    fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    fn shard(&self, key: &str) -> &Mutex<HashMap<Box<str>, u64>> {
        &self.shards[(self.hasher.hash_one(key) as usize) % SHARDS]
    }

    pub fn check(&self, key: &str, quota: Quota) -> Decision {
        let now = self.now_ns();
        let mut shard = self.shard(key).lock();
        let stored = shard.get(key).copied();
        let (decision, tat) = gcra::check(stored, now, quota);
        if decision.allowed {
            match shard.get_mut(key) {
                Some(slot) => *slot = tat,
                None => {
                    if shard.len() >= self.cap_per_shard {
                        make_room(&mut shard, now, self.cap_per_shard);
                    }
                    shard.insert(key.into(), tat);
                }
            }
        }
        decision
    }

    /// Forgets keys whose bucket is full again: they are indistinguishable from new ones.
    pub fn sweep(&self) {
        let now = self.now_ns();
        for shard in &self.shards {
            let mut shard = shard.lock();
            shard.retain(|_, tat| *tat > now);
            if shard.capacity() > 2 * shard.len() + 64 {
                shard.shrink_to_fit();
            }
        }
    }

    pub fn tracked_keys(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }
}

/// Drops refilled keys; if the shard is still full, evicts the tenth nearest to refilled. Evicting
/// in batches keeps the cost per insert constant under a flood of new keys.
fn make_room(shard: &mut HashMap<Box<str>, u64>, now: u64, cap: usize) {
    shard.retain(|_, tat| *tat > now);
    if shard.len() < cap {
        return;
    }
    let evict = (cap / 10).max(1);
    let mut tats: Vec<u64> = shard.values().copied().collect();
    let (_, cutoff, _) = tats.select_nth_unstable(evict - 1);
    let cutoff = *cutoff;
    let mut removed = 0;
    shard.retain(|_, tat| {
        if removed < evict && *tat <= cutoff {
            removed += 1;
            false
        } else {
            true
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_separate_buckets() {
        let limiter = LocalLimiter::new(1000);
        let quota = Quota { burst: 2, per_minute: 1 };
        assert!(limiter.check("a", quota).allowed);
        assert!(limiter.check("a", quota).allowed);
        assert!(!limiter.check("a", quota).allowed);
        assert!(limiter.check("b", quota).allowed);
    }

    #[test]
    fn tracked_keys_stay_under_the_cap_under_a_flood_of_new_keys() {
        let limiter = LocalLimiter::new(1600);
        let quota = Quota { burst: 5, per_minute: 10 };
        for i in 0..100_000 {
            assert!(limiter.check(&format!("session-{i}"), quota).allowed);
        }
        assert!(limiter.tracked_keys() <= 1600, "{}", limiter.tracked_keys());
    }

    #[test]
    fn sweep_forgets_only_refilled_keys() {
        let limiter = LocalLimiter::new(1000);
        limiter.check("slow", Quota { burst: 1, per_minute: 1 });
        limiter.check("fast", Quota { burst: 1, per_minute: 60_000_000 });
        std::thread::sleep(std::time::Duration::from_millis(2));
        limiter.sweep();
        assert_eq!(limiter.tracked_keys(), 1);
        assert!(!limiter.check("slow", Quota { burst: 1, per_minute: 1 }).allowed);
    }
}
