//! Durable records: the event log, the webhook outbox and human-owned sessions. SQLite by default
//! (a file created if missing), PostgreSQL when `DATABASE_URL` says so (many replicas).

mod checkpoint;
mod console;
mod event_insert;
mod group_write;
mod human_loop;
mod knowledge;
pub mod retry;
mod sites;
mod sql;
mod suggestions;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use console::ConsoleStore;
pub use human_loop::{HandoffRecord, HumanLoopStore, SessionMessage};
pub use knowledge::{KbRow, KnowledgeStore, UnansweredRecord};
pub use sites::{SiteKeyRow, SiteRow, SiteStore};
pub use sql::SqlStore;
pub use suggestions::{AnomalyRecord, SuggestionRecord, SuggestionStore};

pub type StoreResult<T> = Result<T, super::StoreError>;

/// One reply, as the weekly review and the dashboards need it. No raw ids, no visitor text.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventRecord {
    pub ts_ms: i64,
    pub request_id: String,
    pub session_hash: String,
    pub route: String,
    pub intent: Option<String>,
    pub source: String,
    pub fallback_reason: Option<String>,
    pub handoff_reason: Option<String>,
    pub latency_ms: i64,
    pub upstream_ms: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cached_tokens: i64,
    pub cost_usd: f64,
    pub confidence: Option<f64>,
    pub repeat_question: bool,
    pub first_reply: bool,
    pub model: Option<String>,
    /// The site the reply was for; None for `default` (stored as `default`).
    pub site: Option<String>,
}

/// Which site a review reads: its events and questions (their `site` column) and its sessions'
/// records (their keys), or every site's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SiteScope<'a> {
    /// None: every site.
    pub site: Option<&'a str>,
    pub sessions: SessionScope<'a>,
}

impl SiteScope<'static> {
    pub const ALL: SiteScope<'static> = SiteScope { site: None, sessions: SessionScope::All };
}

impl SiteScope<'_> {
    /// A condition on the `site` column; `$n` is its parameter when `site` is Some.
    pub(crate) fn site_condition(&self, n: usize) -> String {
        match self.site {
            None => "TRUE".to_owned(),
            Some(_) => format!("site = ${n}"),
        }
    }
}

/// Which sessions a listing covers: `default`'s (keys without a site prefix), one site's (keys
/// starting with its prefix), or every site's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionScope<'a> {
    All,
    Default,
    /// A site's session-key prefix (`Site::session_prefix`).
    Prefix(&'a str),
}

impl SessionScope<'_> {
    /// A condition on `column`; `$n` is the one parameter it takes, when `pattern` gives one.
    pub(crate) fn condition(&self, column: &str, n: usize) -> String {
        match self {
            SessionScope::All => "TRUE".to_owned(),
            SessionScope::Default => format!("{column} NOT LIKE '%/%'"),
            SessionScope::Prefix(_) => format!("{column} LIKE ${n} ESCAPE '\\'"),
        }
    }

    /// The parameter `condition` takes, if any.
    pub(crate) fn pattern(&self) -> Option<String> {
        match self {
            SessionScope::Prefix(prefix) => Some(sites::like_prefix(prefix)),
            _ => None,
        }
    }

    /// The site a stored session key belongs to: another site's with a like question is not a
    /// duplicate of this one's.
    pub fn of_session(key: &str) -> SessionScope<'_> {
        match key.find('/') {
            Some(end) => SessionScope::Prefix(&key[..=end]),
            None => SessionScope::Default,
        }
    }

    /// Whether a session key is in scope (for lists filtered after reading).
    pub fn covers(&self, session_key: &str) -> bool {
        match self {
            SessionScope::All => true,
            SessionScope::Default => !session_key.contains('/'),
            SessionScope::Prefix(prefix) => session_key.starts_with(prefix),
        }
    }
}

/// A webhook event waiting in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEvent {
    pub id: String,
    pub session_id: String,
    pub session_hash: String,
    pub kind: String,
    pub payload: String,
    pub created_ms: i64,
}

/// A claimed outbox row, ready to deliver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    pub seq: i64,
    pub id: String,
    pub session_id: String,
    pub kind: String,
    pub payload: String,
    pub attempts: i64,
}

/// A session a human owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HumanSession {
    pub session_id: String,
    pub since_ms: i64,
    pub reason: String,
}

#[async_trait]
pub trait DurableStore:
    KnowledgeStore + HumanLoopStore + SuggestionStore + ConsoleStore + SiteStore + Send + Sync
{
    fn backend(&self) -> &'static str;

    async fn append_events(&self, events: &[EventRecord]) -> StoreResult<()>;
    /// Every site's events since `since_ms`.
    async fn events_since(&self, since_ms: i64) -> StoreResult<Vec<EventRecord>> {
        self.events_in(SiteScope::ALL, since_ms).await
    }
    async fn events_in(&self, scope: SiteScope<'_>, since_ms: i64) -> StoreResult<Vec<EventRecord>>;

    async fn enqueue(&self, event: &OutboxEvent) -> StoreResult<()>;
    /// Claims up to `limit` due events, at most one per session (the oldest undelivered), leased
    /// to `worker` until `now_ms + lease_ms`. Two replicas never claim the same row.
    async fn claim_due(&self, worker: &str, now_ms: i64, lease_ms: i64, limit: i64) -> StoreResult<Vec<OutboxRow>>;
    async fn mark_delivered(&self, seq: i64, now_ms: i64) -> StoreResult<()>;
    async fn mark_retry(&self, seq: i64, next_attempt_ms: i64, error: &str) -> StoreResult<()>;
    /// Undelivered events (for /readyz and tests).
    async fn pending_outbox(&self) -> StoreResult<i64>;

    async fn set_human(&self, session_id: &str, since_ms: i64, reason: &str) -> StoreResult<()>;
    async fn clear_human(&self, session_id: &str) -> StoreResult<bool>;
    async fn human_session(&self, session_id: &str) -> StoreResult<Option<HumanSession>>;
    /// Every session a person owns (all of them: a process keeps the list to skip lookups).
    async fn human_session_ids(&self) -> StoreResult<Vec<String>>;
    /// Human-owned sessions taken over before `before_ms` (for the release timeout).
    async fn human_sessions_before(&self, before_ms: i64) -> StoreResult<Vec<HumanSession>>;

    /// Deletes records past retention (events, delivered outbox rows, transcripts, released
    /// handoffs, decided suggestions, anomalies) older than `cutoff_ms`; returns rows removed.
    async fn purge_before(&self, cutoff_ms: i64) -> StoreResult<u64>;
    /// Erases everything kept about one session (privacy requests); returns rows removed.
    async fn erase_session(&self, session_id: &str, session_hash: &str) -> StoreResult<u64>;
}

/// Opens the store `url` names, creating the SQLite file or applying migrations as needed.
pub async fn connect(url: &str) -> StoreResult<std::sync::Arc<dyn DurableStore>> {
    Ok(std::sync::Arc::new(SqlStore::connect(url).await?))
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn an_in_memory_database_is_one_database_for_every_query() {
        let store = super::connect("sqlite::memory:").await.unwrap();
        store.set_human("s", 1, "asked").await.unwrap();
        // Concurrent queries would each open a connection, and so an empty database, if the pool had several.
        let lookups = (0..8).map(|_| store.human_session("s"));
        for found in futures_util::future::join_all(lookups).await {
            assert!(found.unwrap().is_some());
        }
        assert_eq!(store.purge_before(0).await.unwrap(), 0);
    }
}
