//! In-process state: the default for a single replica, and the fallback of the Redis store.

use super::{LimitKind, SessionState, SessionUpdate, StateStore, StoreError, StoreHealth, UsageTotals};
use crate::rate::{Decision, LocalLimiter, Quota};
use async_trait::async_trait;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const SHARDS: usize = 16;

type SessionShard = HashMap<String, (SessionState, Instant)>;

pub struct MemoryStore {
    limiters: [LocalLimiter; LimitKind::ALL.len()],
    sessions: Vec<Mutex<SessionShard>>,
    hasher: std::collections::hash_map::RandomState,
    session_ttl: Duration,
    sessions_per_shard: usize,
    kill_switch: AtomicBool,
    usage: Mutex<HashMap<String, UsageTotals>>,
    claims: Mutex<HashMap<String, Instant>>,
}

impl MemoryStore {
    pub fn new(max_limiter_keys: usize, session_ttl: Duration, max_sessions: usize, kill_switch: bool) -> Self {
        Self {
            limiters: std::array::from_fn(|_| LocalLimiter::new(max_limiter_keys)),
            sessions: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: Default::default(),
            session_ttl,
            sessions_per_shard: max_sessions.div_ceil(SHARDS).max(1),
            kill_switch: AtomicBool::new(kill_switch),
            usage: Mutex::new(HashMap::new()),
            claims: Mutex::new(HashMap::new()),
        }
    }

    fn limiter(&self, limit: LimitKind) -> &LocalLimiter {
        &self.limiters[limit as usize]
    }

    fn shard(&self, id: &str) -> &Mutex<SessionShard> {
        &self.sessions[(self.hasher.hash_one(id) as usize) % SHARDS]
    }

    /// Local check; `check_local` is also the Redis store's fallback path.
    pub fn check_local(&self, limit: LimitKind, key: &str, quota: Quota) -> Decision {
        self.limiter(limit).check(key, quota)
    }

    pub fn update_local(&self, id: &str, update: SessionUpdate<'_>) -> SessionState {
        let now = Instant::now();
        let mut shard = self.shard(id).lock();
        // A live session is updated where it lies: one copy (the caller's) instead of two and a new key.
        if let Some(entry) = shard.get_mut(id).filter(|e| now.duration_since(e.1) < self.session_ttl) {
            update(&mut entry.0);
            entry.0.version += 1;
            entry.1 = now;
            return entry.0.clone();
        }
        let mut state = SessionState::default();
        update(&mut state);
        state.version += 1;
        if !shard.contains_key(id) && shard.len() >= self.sessions_per_shard {
            evict_oldest(&mut shard, now, self.session_ttl, self.sessions_per_shard);
        }
        shard.insert(id.to_owned(), (state.clone(), now));
        state
    }

    pub fn load_local(&self, id: &str) -> Option<SessionState> {
        let shard = self.shard(id).lock();
        shard.get(id).filter(|e| e.1.elapsed() < self.session_ttl).map(|e| e.0.clone())
    }

    pub fn set_kill_switch_local(&self, on: bool) {
        self.kill_switch.store(on, Ordering::SeqCst);
    }

    pub fn kill_switch_local(&self) -> bool {
        self.kill_switch.load(Ordering::SeqCst)
    }

    pub fn add_usage_local(&self, periods: &[String], add: UsageTotals) -> Vec<UsageTotals> {
        let mut usage = self.usage.lock();
        periods
            .iter()
            .map(|p| {
                let total = usage.entry(p.clone()).or_default();
                total.tokens += add.tokens;
                total.usd_micros += add.usd_micros;
                *total
            })
            .collect()
    }

    pub fn usage_local(&self, periods: &[String]) -> Vec<UsageTotals> {
        let usage = self.usage.lock();
        periods.iter().map(|p| usage.get(p).copied().unwrap_or_default()).collect()
    }

    pub fn claim_local(&self, key: &str, ttl: Duration) -> bool {
        let now = Instant::now();
        let mut claims = self.claims.lock();
        claims.retain(|_, expiry| *expiry > now);
        if claims.contains_key(key) {
            return false;
        }
        claims.insert(key.to_owned(), now + ttl);
        true
    }

    /// Marks share the claims' map under their own prefix.
    pub fn mark_local(&self, key: &str, ttl: Duration) {
        self.claims.lock().insert(format!("mark\0{key}"), Instant::now() + ttl);
    }

    pub fn marked_local(&self, key: &str) -> bool {
        self.claims.lock().get(&format!("mark\0{key}")).is_some_and(|expiry| *expiry > Instant::now())
    }

    pub fn sweep_local(&self) {
        for limiter in &self.limiters {
            limiter.sweep();
        }
        let now = Instant::now();
        for shard in &self.sessions {
            shard.lock().retain(|_, entry| now.duration_since(entry.1) < self.session_ttl);
        }
    }

    pub fn tracked_keys_local(&self) -> usize {
        self.limiters.iter().map(LocalLimiter::tracked_keys).sum()
    }
}

/// Drops expired sessions; if still full, the least recently used tenth. Human-owned sessions are
/// evicted last, and their ownership is also kept in the durable store.
fn evict_oldest(shard: &mut SessionShard, now: Instant, ttl: Duration, cap: usize) {
    shard.retain(|_, entry| now.duration_since(entry.1) < ttl);
    if shard.len() < cap {
        return;
    }
    let mut by_age: Vec<(bool, Instant, String)> =
        shard.iter().map(|(id, (state, used))| (state.mode == super::Mode::Human, *used, id.clone())).collect();
    by_age.sort();
    for (_, _, id) in by_age.into_iter().take((cap / 10).max(1)) {
        shard.remove(&id);
    }
}

#[async_trait]
impl StateStore for MemoryStore {
    async fn rate_check(&self, limit: LimitKind, key: &str, quota: Quota) -> Decision {
        self.check_local(limit, key, quota)
    }

    async fn load_session(&self, id: &str) -> Option<SessionState> {
        self.load_local(id)
    }

    async fn update_session(&self, id: &str, update: SessionUpdate<'_>) -> Result<SessionState, StoreError> {
        Ok(self.update_local(id, update))
    }

    async fn delete_session(&self, id: &str) {
        self.shard(id).lock().remove(id);
    }

    async fn kill_switch(&self) -> bool {
        self.kill_switch_local()
    }

    async fn set_kill_switch(&self, on: bool) -> Result<(), StoreError> {
        self.set_kill_switch_local(on);
        Ok(())
    }

    async fn add_usage(&self, periods: &[String], add: UsageTotals) -> Vec<UsageTotals> {
        self.add_usage_local(periods, add)
    }

    async fn usage(&self, periods: &[String]) -> Vec<UsageTotals> {
        self.usage_local(periods)
    }

    async fn claim_once(&self, key: &str, ttl: Duration) -> bool {
        self.claim_local(key, ttl)
    }

    async fn mark(&self, key: &str, ttl: Duration) -> Result<(), StoreError> {
        self.mark_local(key, ttl);
        Ok(())
    }

    async fn is_marked(&self, key: &str) -> Result<bool, StoreError> {
        Ok(self.marked_local(key))
    }

    fn health(&self) -> StoreHealth {
        StoreHealth::Local
    }

    fn sweep(&self) {
        self.sweep_local();
    }

    fn tracked_limiter_keys(&self) -> usize {
        self.tracked_keys_local()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Mode;

    fn store(max_sessions: usize) -> MemoryStore {
        MemoryStore::new(1000, Duration::from_secs(60), max_sessions, false)
    }

    #[tokio::test]
    async fn updates_are_applied_in_place_and_versioned() {
        let s = store(100);
        assert!(s.load_session("a").await.is_none());
        let state = s.update_session("a", &|st| st.turns += 1).await.unwrap();
        assert_eq!((state.turns, state.version), (1, 1));
        let state = s.update_session("a", &|st| st.mode = Mode::Human).await.unwrap();
        assert_eq!((state.turns, state.mode, state.version), (1, Mode::Human, 2));
    }

    #[tokio::test]
    async fn an_expired_session_starts_afresh_and_a_live_one_keeps_its_history() {
        let s = MemoryStore::new(100, Duration::from_millis(150), 100, false);
        s.update_session("a", &|st| st.turns += 1).await.unwrap();
        let state = s.update_session("a", &|st| st.turns += 1).await.unwrap();
        assert_eq!((state.turns, state.version), (2, 2), "live: updated where it lies");
        assert_eq!(s.load_session("a").await.map(|st| st.turns), Some(2));
        tokio::time::sleep(Duration::from_millis(200)).await;
        let state = s.update_session("a", &|st| st.turns += 1).await.unwrap();
        assert_eq!((state.turns, state.version), (1, 1), "expired: a new session");
    }

    #[tokio::test]
    async fn the_session_cap_evicts_bot_sessions_before_human_ones() {
        let s = store(160);
        s.update_session("human", &|st| st.mode = Mode::Human).await.unwrap();
        for i in 0..2000 {
            s.update_session(&format!("s{i}"), &|st| st.turns += 1).await.unwrap();
        }
        let total: usize = s.sessions.iter().map(|sh| sh.lock().len()).sum();
        assert!(total <= 160, "{total}");
        assert_eq!(s.load_session("human").await.map(|st| st.mode), Some(Mode::Human));
    }

    #[tokio::test]
    async fn a_claim_is_granted_once_until_it_expires() {
        let s = store(10);
        assert!(s.claim_once("k", Duration::from_millis(20)).await);
        assert!(!s.claim_once("k", Duration::from_millis(20)).await);
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(s.claim_once("k", Duration::from_millis(20)).await);
    }
}
