//! Shared state in Redis for many replicas: limits (one atomic GCRA script per check), sessions
//! (compare-and-set), budget counters, the kill switch and one-time claims.
//!
//! When Redis is unreachable nothing fails: limits fall back to in-process limiters enforcing a
//! 1/`expected_replicas` share; sessions to in-process state (human ownership is still read from the
//! durable store); budgets count the last shared totals plus `expected_replicas` × local spending
//! (erring on the safe side); the kill switch keeps its last known value. `/readyz` says `degraded`,
//! `velochat_redis_up` is 0, one log line marks each transition, and recovery is automatic.

mod scripts;
mod usage;

use super::memory::MemoryStore;
use super::{LimitKind, SessionState, SessionUpdate, StateStore, StoreError, StoreHealth, UsageTotals};
use crate::config::Settings;
use crate::rate::{Decision, Quota};
use async_trait::async_trait;
use parking_lot::Mutex;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Script};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// One Redis call may take this long before the local fallback answers instead.
const OP_TIMEOUT: Duration = Duration::from_millis(250);
/// Optimistic attempts at one session update before the caller gets an error. Updates of one
/// session from this replica queue on a local lock first, so only replicas contend here.
const CAS_ATTEMPTS: u32 = 40;
/// Local session locks (sessions hash onto them).
const SESSION_LOCKS: usize = 256;

pub struct RedisStore {
    client: redis::Client,
    connection: tokio::sync::RwLock<Option<ConnectionManager>>,
    prefix: String,
    local: MemoryStore,
    /// `velochat_redis_up`: the store reports its own health without knowing the metrics registry.
    redis_up: prometheus::IntGauge,
    up: AtomicBool,
    replicas: u32,
    kill_switch: AtomicBool,
    session_ttl_ms: u64,
    gcra: Script,
    cas: Script,
    add_usage: Script,
    session_locks: Vec<tokio::sync::Mutex<()>>,
    /// Shared totals last read, per period key.
    known_usage: Mutex<HashMap<String, UsageTotals>>,
    /// Spent while Redis was down; added to Redis on recovery.
    pending_usage: Mutex<HashMap<String, UsageTotals>>,
}

type Shared = Arc<RedisStore>;

static LOCK_HASHER: std::sync::LazyLock<std::hash::RandomState> = std::sync::LazyLock::new(Default::default);

impl RedisStore {
    /// Connects (or starts degraded when Redis is not there yet) and starts the poller that reads
    /// the kill switch and watches Redis's health.
    pub async fn connect(
        settings: &Settings,
        local: MemoryStore,
        redis_up: prometheus::IntGauge,
        stop: CancellationToken,
    ) -> anyhow::Result<Shared> {
        let s = &settings.storage;
        let client = redis::Client::open(s.redis_url.expose())?;
        let store = Arc::new(Self {
            client,
            connection: tokio::sync::RwLock::new(None),
            prefix: s.redis_key_prefix.clone(),
            kill_switch: AtomicBool::new(local.kill_switch_local()),
            local,
            redis_up,
            up: AtomicBool::new(false),
            replicas: s.expected_replicas,
            session_ttl_ms: settings.sessions.ttl_ms,
            gcra: Script::new(scripts::GCRA),
            cas: Script::new(scripts::SESSION_CAS),
            add_usage: Script::new(scripts::ADD_USAGE),
            session_locks: (0..SESSION_LOCKS).map(|_| tokio::sync::Mutex::new(())).collect(),
            known_usage: Mutex::new(HashMap::new()),
            pending_usage: Mutex::new(HashMap::new()),
        });
        store.poll_once().await;
        if !store.up.load(Ordering::SeqCst) {
            tracing::warn!("Redis unreachable at start-up: running degraded on local state until it answers");
        }
        tokio::spawn(poll(store.clone(), Duration::from_millis(s.redis_poll_ms), stop));
        Ok(store)
    }

    fn key(&self, parts: &[&str]) -> String {
        let mut key = self.prefix.clone();
        key.push_str(&parts.join(":"));
        key
    }

    async fn connection(&self) -> Option<ConnectionManager> {
        if !self.up.load(Ordering::Relaxed) {
            return None;
        }
        self.connection.read().await.clone()
    }

    /// Marks the transition once, in the log and the gauge.
    fn set_up(&self, up: bool, why: &str) {
        let was = self.up.swap(up, Ordering::SeqCst);
        self.redis_up.set(i64::from(up));
        if was != up {
            if up {
                tracing::info!("Redis reachable again: shared state restored");
            } else {
                tracing::warn!(
                    reason = why,
                    "Redis unreachable: degraded to local state (limits per replica, budget conservative)"
                );
            }
        }
    }

    /// Runs `op` against Redis within the time limit; on failure marks Redis down and returns None.
    async fn call<T, F, Fut>(&self, op: F) -> Option<T>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let connection = self.connection().await?;
        match tokio::time::timeout(OP_TIMEOUT, op(connection)).await {
            Ok(Ok(value)) => Some(value),
            Ok(Err(e)) => {
                self.set_up(false, &e.to_string());
                None
            }
            Err(_) => {
                self.set_up(false, "timeout");
                None
            }
        }
    }

    async fn poll_once(&self) {
        if self.connection.read().await.is_none() {
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(OP_TIMEOUT * 4)
                .set_response_timeout(OP_TIMEOUT)
                .set_number_of_retries(1);
            match tokio::time::timeout(OP_TIMEOUT * 8, ConnectionManager::new_with_config(self.client.clone(), config))
                .await
            {
                Ok(Ok(manager)) => *self.connection.write().await = Some(manager),
                _ => {
                    self.set_up(false, "cannot connect");
                    return;
                }
            }
        }
        let Some(mut connection) = self.connection.read().await.clone() else { return };
        let key = self.key(&["kill_switch"]);
        let read =
            tokio::time::timeout(OP_TIMEOUT * 2, async { connection.get::<_, Option<String>>(&key).await }).await;
        match read {
            Ok(Ok(value)) => {
                let recovered = !self.up.load(Ordering::SeqCst);
                self.kill_switch.store(value.as_deref() == Some("1"), Ordering::SeqCst);
                self.set_up(true, "");
                if recovered {
                    self.flush_pending_usage().await;
                }
            }
            Ok(Err(e)) => self.set_up(false, &e.to_string()),
            Err(_) => self.set_up(false, "timeout"),
        }
    }

    async fn read_session(&self, id: &str) -> Option<Option<String>> {
        let key = self.key(&["session", id]);
        self.call(|mut c| async move { c.get::<_, Option<String>>(&key).await }).await
    }
}

async fn poll(store: Shared, every: Duration, stop: CancellationToken) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => store.poll_once().await,
        }
    }
}

fn parse_state(json: &str) -> SessionState {
    serde_json::from_str(json).unwrap_or_default()
}

#[async_trait]
impl StateStore for RedisStore {
    async fn rate_check(&self, limit: LimitKind, key: &str, quota: Quota) -> Decision {
        let redis_key = self.key(&["rl", limit.as_str(), key]);
        let interval_us = 60_000_000 / u64::from(quota.per_minute.max(1));
        let script = &self.gcra;
        let reply: Option<Vec<i64>> =
            self.call(|mut c| async move {
                script.key(&redis_key).arg(interval_us).arg(quota.burst).invoke_async(&mut c).await
            })
            .await;
        match reply {
            Some(v) if v.len() == 4 => Decision {
                allowed: v[0] == 1,
                limit: quota.burst,
                remaining: v[1].max(0) as u32,
                retry_after: Duration::from_micros(v[2].max(0) as u64),
                reset: Duration::from_micros(v[3].max(0) as u64),
            },
            _ => self.local.check_local(limit, key, quota.share(self.replicas)),
        }
    }

    async fn load_session(&self, id: &str) -> Option<SessionState> {
        match self.read_session(id).await {
            Some(json) => json.map(|j| parse_state(&j)),
            None => self.local.load_local(id),
        }
    }

    async fn update_session(&self, id: &str, update: SessionUpdate<'_>) -> Result<SessionState, StoreError> {
        let lock = &self.session_locks[(std::hash::BuildHasher::hash_one(&*LOCK_HASHER, id) as usize) % SESSION_LOCKS];
        let _serialised = lock.lock().await;
        let Some(mut current) = self.read_session(id).await else {
            return Ok(self.local.update_local(id, update));
        };
        let key = self.key(&["session", id]);
        for attempt in 0..CAS_ATTEMPTS {
            let mut state = current.as_deref().map(parse_state).unwrap_or_default();
            let expected = state.version;
            update(&mut state);
            state.version = expected + 1;
            let json = serde_json::to_string(&state).unwrap_or_default();
            let (script, key, ttl) = (&self.cas, &key, self.session_ttl_ms);
            let reply: Option<(i64, Option<String>)> = self
                .call(|mut c| async move {
                    let v: Vec<redis::Value> =
                        script.key(key).arg(expected).arg(&json).arg(ttl).invoke_async(&mut c).await?;
                    let written = matches!(v.first(), Some(redis::Value::Int(1)));
                    let current = v.get(1).and_then(|x| redis::from_redis_value::<Option<String>>(x).ok()).flatten();
                    Ok((i64::from(written), current))
                })
                .await;
            match reply {
                Some((1, _)) => return Ok(state),
                Some((_, latest)) => current = latest,
                // Redis went away mid-update: the degraded mode every other call falls back to.
                None => return Ok(self.local.update_local(id, update)),
            }
            // Another replica wrote first: back off a random moment so the contenders spread out.
            let spread = 1u64 << attempt.min(4);
            tokio::time::sleep(Duration::from_micros(rand::random::<u64>() % (spread * 500))).await;
        }
        tracing::error!(attempts = CAS_ATTEMPTS, "session update kept losing to other replicas");
        Err(StoreError::Contention { attempts: CAS_ATTEMPTS })
    }

    async fn delete_session(&self, id: &str) {
        let key = self.key(&["session", id]);
        let _ = self.call(|mut c| async move { c.del::<_, ()>(&key).await }).await;
        StateStore::delete_session(&self.local, id).await;
    }

    async fn kill_switch(&self) -> bool {
        self.kill_switch.load(Ordering::SeqCst)
    }

    async fn set_kill_switch(&self, on: bool) -> Result<(), StoreError> {
        let key = self.key(&["kill_switch"]);
        let value = if on { "1" } else { "0" };
        match self.call(|mut c| async move { c.set::<_, _, ()>(&key, value).await }).await {
            Some(()) => {
                self.kill_switch.store(on, Ordering::SeqCst);
                Ok(())
            }
            None => Err(StoreError::Unreachable("the kill switch cannot reach the other replicas")),
        }
    }

    async fn add_usage(&self, periods: &[String], add: UsageTotals) -> Vec<UsageTotals> {
        if let Some(totals) = self.add_shared(periods, add).await {
            return totals;
        }
        {
            let mut pending = self.pending_usage.lock();
            for period in periods {
                pending.entry(period.clone()).or_default().add(add);
            }
        }
        self.conservative_usage(periods)
    }

    async fn usage(&self, periods: &[String]) -> Vec<UsageTotals> {
        let keys: Vec<String> =
            periods.iter().flat_map(|p| [self.key(&[p.as_str(), "tokens"]), self.key(&[p.as_str(), "usd"])]).collect();
        let values: Option<Vec<Option<u64>>> =
            self.call(|mut c| async move { redis::cmd("MGET").arg(&keys).query_async(&mut c).await }).await;
        let Some(values) = values else { return self.conservative_usage(periods) };
        let totals: Vec<UsageTotals> = values
            .chunks(2)
            .map(|pair| UsageTotals {
                tokens: pair[0].unwrap_or(0),
                usd_micros: pair.get(1).copied().flatten().unwrap_or(0),
            })
            .collect();
        let mut known = self.known_usage.lock();
        for (period, total) in periods.iter().zip(&totals) {
            known.insert(period.clone(), *total);
        }
        totals
    }

    async fn claim_once(&self, key: &str, ttl: Duration) -> bool {
        let redis_key = self.key(&["claim", key]);
        let ms = ttl.as_millis() as u64;
        let claimed: Option<Option<String>> = self
            .call(|mut c| async move {
                redis::cmd("SET").arg(&redis_key).arg("1").arg("NX").arg("PX").arg(ms).query_async(&mut c).await
            })
            .await;
        match claimed {
            Some(reply) => reply.is_some(),
            None => self.local.claim_local(key, ttl),
        }
    }

    async fn mark(&self, key: &str, ttl: Duration) -> Result<(), StoreError> {
        let redis_key = self.key(&["mark", key]);
        let ms = ttl.as_millis().max(1) as u64;
        let set =
            self.call(|mut c| async move { c.set_ex::<_, _, ()>(&redis_key, "1", ms.div_ceil(1000)).await }).await;
        self.local.mark_local(key, ttl);
        set.ok_or(StoreError::Unreachable("the mark cannot reach the other replicas"))
    }

    async fn is_marked(&self, key: &str) -> Result<bool, StoreError> {
        if self.local.marked_local(key) {
            return Ok(true);
        }
        let redis_key = self.key(&["mark", key]);
        let found: Option<bool> = self.call(|mut c| async move { c.exists(&redis_key).await }).await;
        found.ok_or(StoreError::Unreachable("Redis cannot say whether the key is marked"))
    }

    fn health(&self) -> StoreHealth {
        if self.up.load(Ordering::Relaxed) {
            StoreHealth::Shared
        } else {
            StoreHealth::Degraded
        }
    }

    fn sweep(&self) {
        self.local.sweep_local();
    }

    fn tracked_limiter_keys(&self) -> usize {
        self.local.tracked_keys_local()
    }
}
