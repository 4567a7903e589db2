//! One implementation for both backends through sqlx's `Any` driver; only the DDL and the claim
//! query differ. Booleans are stored as 0/1 integers, which both backends decode alike.

use super::group_write::GroupedWrite;
use super::*;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::migrate::{Migrate, Migrator};
use sqlx::{AnyPool, Row};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

pub struct SqlStore {
    pub(super) pool: AnyPool,
    /// PostgreSQL only: a native pool for the event batches (typed arrays, which `Any` cannot bind).
    events_pool: Option<sqlx::PgPool>,
    backend: Backend,
    /// SQLite's one writer at a time queue here, not in its busy handler's sleeps (None: PostgreSQL).
    pub(super) write_gate: Option<tokio::sync::Mutex<()>>,
    /// SQLite: outbox and ownership rows waiting for the next gate holder (`group_write`).
    pub(super) grouped: super::group_write::GroupWrites,
    /// SQLite: ends the background checkpoints with the store.
    _stop_checkpoints: Option<tokio_util::sync::DropGuard>,
}

/// `sqlite://velochat.db` opens (and creates) a file relative to the working directory.
fn sqlite_url(url: &str) -> String {
    if url.contains(":memory:") || url.contains('?') {
        url.to_owned()
    } else {
        format!("{url}?mode=rwc")
    }
}

const CLAIM_SQLITE: &str = "UPDATE velochat_outbox SET claimed_until_ms = $1, claimed_by = $2, attempts = attempts + 1
    WHERE seq IN (
        SELECT o.seq FROM velochat_outbox o
        WHERE o.delivered_ms IS NULL AND o.next_attempt_ms <= $3 AND o.claimed_until_ms <= $3
          AND NOT EXISTS (SELECT 1 FROM velochat_outbox p
                          WHERE p.session_id = o.session_id AND p.seq < o.seq AND p.delivered_ms IS NULL)
        ORDER BY o.seq LIMIT $4)
    RETURNING seq, id, session_id, kind, payload, attempts";

/// SKIP LOCKED: replicas claiming at the same moment take different rows instead of waiting.
const CLAIM_POSTGRES: &str =
    "UPDATE velochat_outbox SET claimed_until_ms = $1, claimed_by = $2, attempts = attempts + 1
    WHERE seq IN (
        SELECT o.seq FROM velochat_outbox o
        WHERE o.delivered_ms IS NULL AND o.next_attempt_ms <= $3 AND o.claimed_until_ms <= $3
          AND NOT EXISTS (SELECT 1 FROM velochat_outbox p
                          WHERE p.session_id = o.session_id AND p.seq < o.seq AND p.delivered_ms IS NULL)
        ORDER BY o.seq LIMIT $4
        FOR UPDATE OF o SKIP LOCKED)
    RETURNING seq, id, session_id, kind, payload, attempts";

fn event_from_row(row: &AnyRow) -> Result<EventRecord, sqlx::Error> {
    Ok(EventRecord {
        ts_ms: row.try_get("ts_ms")?,
        request_id: row.try_get("request_id")?,
        session_hash: row.try_get("session_hash")?,
        route: row.try_get("route")?,
        intent: row.try_get("intent")?,
        source: row.try_get("source")?,
        fallback_reason: row.try_get("fallback_reason")?,
        handoff_reason: row.try_get("handoff_reason")?,
        latency_ms: row.try_get("latency_ms")?,
        upstream_ms: row.try_get("upstream_ms")?,
        prompt_tokens: row.try_get("prompt_tokens")?,
        completion_tokens: row.try_get("completion_tokens")?,
        cached_tokens: row.try_get("cached_tokens")?,
        cost_usd: row.try_get("cost_usd")?,
        confidence: row.try_get("confidence")?,
        repeat_question: row.try_get::<i64, _>("repeat_question")? != 0,
        first_reply: row.try_get::<i64, _>("first_reply")? != 0,
        model: row.try_get("model")?,
        site: Some(row.try_get::<String, _>("site")?).filter(|site| site != crate::domain::SiteId::DEFAULT),
    })
}

impl SqlStore {
    pub async fn connect(url: &str) -> StoreResult<Self> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("postgres") { Backend::Postgres } else { Backend::Sqlite };
        let pool = match backend {
            Backend::Postgres => {
                AnyPoolOptions::new().max_connections(8).acquire_timeout(Duration::from_secs(5)).connect(url).await?
            }
            Backend::Sqlite => {
                // A local file cannot go stale: no ping (a trip to SQLite's thread) per query.
                let mut options = AnyPoolOptions::new().max_connections(4).test_before_acquire(false);
                if url.contains(":memory:") {
                    // Each connection to `:memory:` is a database of its own that ends with it: one
                    // connection, kept for the life of the process.
                    options = options.max_connections(1).min_connections(1).idle_timeout(None).max_lifetime(None);
                }
                options
                    .acquire_timeout(Duration::from_secs(5))
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            // WAL lets the report read while requests write; busy_timeout waits out a
                            // writer instead of failing.
                            sqlx::query("PRAGMA journal_mode = WAL").execute(&mut *conn).await?;
                            sqlx::query("PRAGMA synchronous = NORMAL").execute(&mut *conn).await?;
                            sqlx::query("PRAGMA busy_timeout = 5000").execute(&mut *conn).await?;
                            // Checkpoints run in the background (`checkpoint`), a writer's only ~64 MiB behind.
                            sqlx::query("PRAGMA wal_autocheckpoint = 16000").execute(&mut *conn).await?;
                            Ok(())
                        })
                    })
                    .connect(&sqlite_url(url))
                    .await?
            }
        };
        let events_pool = match backend {
            Backend::Postgres => Some(
                sqlx::postgres::PgPoolOptions::new()
                    .max_connections(2)
                    .acquire_timeout(Duration::from_secs(5))
                    .connect(url)
                    .await?,
            ),
            Backend::Sqlite => None,
        };
        let write_gate = (backend == Backend::Sqlite).then(|| tokio::sync::Mutex::new(()));
        let _stop_checkpoints = (backend == Backend::Sqlite).then(|| super::checkpoint::spawn(pool.clone()));
        let store = Self { pool, events_pool, backend, write_gate, grouped: Default::default(), _stop_checkpoints };
        store.migrate().await?;
        Ok(store)
    }

    /// Held for the length of a write (SQLite only).
    pub(super) async fn writing(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match &self.write_gate {
            Some(gate) => Some(gate.lock().await),
            None => None,
        }
    }

    /// The schema as sqlx migrations (`migrations/sqlite`, `migrations/postgres`), embedded in the
    /// binary. A database made before them (versions in `velochat_migrations`) is adopted first:
    /// those versions are recorded as applied, so it upgrades in place.
    async fn migrate(&self) -> StoreResult<()> {
        let migrator = match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        self.adopt_legacy_schema(migrator).await?;
        migrator.run(&self.pool).await.map_err(sqlx::Error::from)?;
        Ok(())
    }

    async fn adopt_legacy_schema(&self, migrator: &Migrator) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        if self.backend == Backend::Postgres {
            // Replicas starting together adopt one at a time.
            sqlx::query("SELECT pg_advisory_xact_lock(7423911)").execute(&mut *tx).await?;
        }
        let legacy_table = match self.backend {
            Backend::Sqlite => "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'velochat_migrations'",
            Backend::Postgres => "SELECT 1 FROM information_schema.tables WHERE table_name = 'velochat_migrations'",
        };
        if sqlx::query(legacy_table).fetch_optional(&mut *tx).await?.is_none() {
            return Ok(());
        }
        let done: Vec<i64> = sqlx::query("SELECT version FROM velochat_migrations")
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|row| row.try_get::<i64, _>(0))
            .collect::<Result<_, _>>()?;
        tx.ensure_migrations_table().await.map_err(sqlx::Error::from)?;
        for migration in migrator.iter().filter(|m| done.contains(&m.version)) {
            sqlx::query(
                "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
                 VALUES ($1, $2, TRUE, $3, 0) ON CONFLICT (version) DO NOTHING",
            )
            .bind(migration.version)
            .bind(migration.description.to_string())
            .bind(migration.checksum.to_vec())
            .execute(&mut *tx)
            .await?;
        }
        Ok(tx.commit().await?)
    }
}

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");

#[async_trait]
impl DurableStore for SqlStore {
    fn backend(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }

    async fn append_events(&self, events: &[EventRecord]) -> StoreResult<()> {
        let _writer = self.writing().await;
        if events.is_empty() {
            return Ok(());
        }
        match &self.events_pool {
            Some(pg) => Ok(super::event_insert::insert_postgres(pg, events).await?),
            None => Ok(super::event_insert::insert_sqlite(&self.pool, events).await?),
        }
    }

    async fn events_in(&self, scope: SiteScope<'_>, since_ms: i64) -> StoreResult<Vec<EventRecord>> {
        let sql = format!(
            "SELECT * FROM velochat_events WHERE ts_ms >= $1 AND {} ORDER BY ts_ms, id",
            scope.site_condition(2)
        );
        let mut query = sqlx::query(&sql).bind(since_ms);
        if let Some(site) = scope.site {
            query = query.bind(site.to_owned());
        }
        let rows = query.fetch_all(&self.pool).await?;
        Ok(rows.iter().map(event_from_row).collect::<Result<_, _>>()?)
    }

    async fn enqueue(&self, event: &OutboxEvent) -> StoreResult<()> {
        if let Some(written) = self.write_grouped(GroupedWrite::Outbox(event.clone())).await {
            return written;
        }
        sqlx::query(
            "INSERT INTO velochat_outbox (id, session_id, session_hash, kind, payload, created_ms, next_attempt_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT (id) DO NOTHING",
        )
        .bind(event.id.clone())
        .bind(event.session_id.clone())
        .bind(event.session_hash.clone())
        .bind(event.kind.clone())
        .bind(event.payload.clone())
        .bind(event.created_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn claim_due(&self, worker: &str, now_ms: i64, lease_ms: i64, limit: i64) -> StoreResult<Vec<OutboxRow>> {
        let _writer = self.writing().await;
        let claim = match self.backend {
            Backend::Postgres => CLAIM_POSTGRES,
            Backend::Sqlite => CLAIM_SQLITE,
        };
        let rows = sqlx::query(claim)
            .bind(now_ms + lease_ms)
            .bind(worker.to_owned())
            .bind(now_ms)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        let mut claimed = rows
            .iter()
            .map(|row| {
                Ok(OutboxRow {
                    seq: row.try_get("seq")?,
                    id: row.try_get("id")?,
                    session_id: row.try_get("session_id")?,
                    kind: row.try_get("kind")?,
                    payload: row.try_get("payload")?,
                    attempts: row.try_get("attempts")?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        claimed.sort_by_key(|row| row.seq);
        Ok(claimed)
    }

    async fn mark_delivered(&self, seq: i64, now_ms: i64) -> StoreResult<()> {
        let _writer = self.writing().await;
        sqlx::query(
            "UPDATE velochat_outbox SET delivered_ms = $1, claimed_until_ms = 0, last_error = NULL WHERE seq = $2",
        )
        .bind(now_ms)
        .bind(seq)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn mark_retry(&self, seq: i64, next_attempt_ms: i64, error: &str) -> StoreResult<()> {
        let _writer = self.writing().await;
        sqlx::query(
            "UPDATE velochat_outbox SET next_attempt_ms = $1, claimed_until_ms = 0, last_error = $2 WHERE seq = $3",
        )
        .bind(next_attempt_ms)
        .bind(error.chars().take(500).collect::<String>())
        .bind(seq)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn pending_outbox(&self) -> StoreResult<i64> {
        let row = sqlx::query("SELECT COUNT(*) FROM velochat_outbox WHERE delivered_ms IS NULL")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get::<i64, _>(0)?)
    }

    async fn set_human(&self, session_id: &str, since_ms: i64, reason: &str) -> StoreResult<()> {
        let grouped = GroupedWrite::Human { session_id: session_id.to_owned(), since_ms, reason: reason.to_owned() };
        if let Some(written) = self.write_grouped(grouped).await {
            return written;
        }
        sqlx::query(
            "INSERT INTO velochat_human_sessions (session_id, since_ms, reason) VALUES ($1, $2, $3)
             ON CONFLICT (session_id) DO UPDATE SET since_ms = excluded.since_ms, reason = excluded.reason",
        )
        .bind(session_id.to_owned())
        .bind(since_ms)
        .bind(reason.to_owned())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn clear_human(&self, session_id: &str) -> StoreResult<bool> {
        let _writer = self.writing().await;
        let done = sqlx::query("DELETE FROM velochat_human_sessions WHERE session_id = $1")
            .bind(session_id.to_owned())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn human_session_ids(&self) -> StoreResult<Vec<String>> {
        let rows = sqlx::query("SELECT session_id FROM velochat_human_sessions").fetch_all(&self.pool).await?;
        Ok(rows.iter().map(|r| r.try_get::<String, _>(0)).collect::<Result<_, _>>()?)
    }

    async fn human_session(&self, session_id: &str) -> StoreResult<Option<HumanSession>> {
        let row = sqlx::query("SELECT session_id, since_ms, reason FROM velochat_human_sessions WHERE session_id = $1")
            .bind(session_id.to_owned())
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| human_from_row(&r)).transpose()?)
    }

    async fn human_sessions_before(&self, before_ms: i64) -> StoreResult<Vec<HumanSession>> {
        let rows = sqlx::query(
            "SELECT session_id, since_ms, reason FROM velochat_human_sessions WHERE since_ms < $1 ORDER BY since_ms LIMIT 1000",
        )
        .bind(before_ms)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(human_from_row).collect::<Result<_, _>>()?)
    }

    async fn purge_before(&self, cutoff_ms: i64) -> StoreResult<u64> {
        let _writer = self.writing().await;
        let mut removed = 0;
        for sql in [
            "DELETE FROM velochat_events WHERE ts_ms < $1",
            "DELETE FROM velochat_outbox WHERE delivered_ms IS NOT NULL AND delivered_ms < $1",
            "DELETE FROM velochat_unanswered WHERE ts_ms < $1",
            "DELETE FROM velochat_session_messages WHERE at_ms < $1",
            "DELETE FROM velochat_handoffs WHERE released_ms IS NOT NULL AND released_ms < $1",
            "DELETE FROM velochat_suggestions WHERE status <> 'pending' AND decided_ms < $1",
            "DELETE FROM velochat_anomalies WHERE at_ms < $1",
        ] {
            removed += sqlx::query(sql).bind(cutoff_ms).execute(&self.pool).await?.rows_affected();
        }
        Ok(removed)
    }

    async fn erase_session(&self, session_id: &str, session_hash: &str) -> StoreResult<u64> {
        let _writer = self.writing().await;
        let mut tx = self.pool.begin().await?;
        let mut removed = 0;
        for (sql, key) in [
            ("DELETE FROM velochat_events WHERE session_hash = $1", session_hash),
            ("DELETE FROM velochat_outbox WHERE session_id = $1", session_id),
            ("DELETE FROM velochat_human_sessions WHERE session_id = $1", session_id),
            ("DELETE FROM velochat_unanswered WHERE session_hash = $1", session_hash),
            ("DELETE FROM velochat_session_messages WHERE session_id = $1", session_id),
            ("DELETE FROM velochat_handoffs WHERE session_id = $1", session_id),
            ("DELETE FROM velochat_suggestions WHERE session_id = $1 AND status = 'pending'", session_id),
        ] {
            removed += sqlx::query(sql).bind(key.to_owned()).execute(&mut *tx).await?.rows_affected();
        }
        tx.commit().await?;
        Ok(removed)
    }
}

fn human_from_row(row: &AnyRow) -> Result<HumanSession, sqlx::Error> {
    Ok(HumanSession {
        session_id: row.try_get("session_id")?,
        since_ms: row.try_get("since_ms")?,
        reason: row.try_get("reason")?,
    })
}
