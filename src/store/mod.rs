//! State behind one trait: in-process by default, Redis for many replicas. Durable records
//! (events, the outbox, human-owned sessions) live behind a second trait: SQLite or PostgreSQL.

pub mod durable;
pub mod memory;
pub mod redis;
mod session;

pub use durable::{DurableStore, EventRecord, OutboxEvent, OutboxRow};
pub use session::{Fingerprint, Mode, SessionState, Transition};

pub use crate::rate::LimitKind;
use crate::rate::{Decision, Quota};
use async_trait::async_trait;
use std::time::Duration;

/// Token and money counters of one budget period.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UsageTotals {
    pub tokens: u64,
    pub usd_micros: u64,
}

/// Whether shared state is reachable; shown by /readyz and the `velochat_redis_up` gauge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreHealth {
    /// In-process state: nothing to lose.
    Local,
    Shared,
    /// Redis unreachable: local fallbacks in force.
    Degraded,
}

impl StoreHealth {
    pub fn as_str(self) -> &'static str {
        match self {
            StoreHealth::Local => "local",
            StoreHealth::Shared => "redis",
            StoreHealth::Degraded => "degraded",
        }
    }
}

/// A shared or durable store failed; the cause chain names the driver's error.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the database failed")]
    Database(#[from] sqlx::Error),
    /// A write grouped with others (SQLite group commit) failed; the text is the database's error.
    #[error("the database failed: {0}")]
    GroupedWrite(String),
    #[error("Redis failed")]
    Redis(#[from] ::redis::RedisError),
    #[error("Redis unreachable: {0}")]
    Unreachable(&'static str),
    /// A shared session kept changing under this replica's update (see `RedisStore`).
    #[error("the session update lost to other replicas {attempts} times")]
    Contention { attempts: u32 },
}

pub type SessionUpdate<'a> = &'a (dyn Fn(&mut SessionState) + Send + Sync);

#[async_trait]
pub trait StateStore: Send + Sync {
    /// One GCRA check-and-take for `key` under `limit`.
    async fn rate_check(&self, limit: LimitKind, key: &str, quota: Quota) -> Decision;

    async fn load_session(&self, id: &str) -> Option<SessionState>;

    /// Atomically applies `update` to the session (a new one if absent) and returns the result.
    /// `update` may run more than once under contention: it must be a pure function of the state.
    /// An error means the update was not applied anywhere (never applied on one replica only).
    async fn update_session(&self, id: &str, update: SessionUpdate<'_>) -> Result<SessionState, StoreError>;

    async fn delete_session(&self, id: &str);

    async fn kill_switch(&self) -> bool;
    async fn set_kill_switch(&self, on: bool) -> Result<(), StoreError>;

    /// Adds to the counters named by `periods` and returns their new totals, in order.
    async fn add_usage(&self, periods: &[String], add: UsageTotals) -> Vec<UsageTotals>;
    async fn usage(&self, periods: &[String]) -> Vec<UsageTotals>;

    /// True exactly once per key within `ttl`, across every replica sharing this store.
    async fn claim_once(&self, key: &str, ttl: Duration) -> bool;

    /// Marks `key` for `ttl` on every replica sharing this store (a signed-out console session).
    async fn mark(&self, key: &str, ttl: Duration) -> Result<(), StoreError>;
    /// Whether `key` is marked and not expired.
    async fn is_marked(&self, key: &str) -> Result<bool, StoreError>;

    fn health(&self) -> StoreHealth;

    /// Periodic housekeeping (sweeping limiters, expiring sessions).
    fn sweep(&self) {}

    /// Keys tracked by in-process limiters (for tests and metrics).
    fn tracked_limiter_keys(&self) -> usize {
        0
    }
}
