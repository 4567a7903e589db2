//! Schema migrations, per backend. Each step runs once, recorded in `velochat_migrations`.

/// (version, SQLite statements, PostgreSQL statements)
pub(super) const MIGRATIONS: &[(i64, &[&str], &[&str])] = &[
    (
        1,
        &[
            "CREATE TABLE IF NOT EXISTS velochat_events (
            id INTEGER PRIMARY KEY AUTOINCREMENT, ts_ms INTEGER NOT NULL, request_id TEXT NOT NULL,
            session_hash TEXT NOT NULL, route TEXT NOT NULL, intent TEXT, source TEXT NOT NULL,
            fallback_reason TEXT, handoff_reason TEXT, latency_ms INTEGER NOT NULL, upstream_ms INTEGER NOT NULL,
            prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL, cached_tokens INTEGER NOT NULL,
            cost_usd REAL NOT NULL, confidence REAL, repeat_question INTEGER NOT NULL, first_reply INTEGER NOT NULL,
            model TEXT)",
            "CREATE INDEX IF NOT EXISTS velochat_events_ts ON velochat_events (ts_ms)",
            "CREATE INDEX IF NOT EXISTS velochat_events_session ON velochat_events (session_hash)",
            "CREATE TABLE IF NOT EXISTS velochat_outbox (
            seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, session_id TEXT NOT NULL,
            session_hash TEXT NOT NULL, kind TEXT NOT NULL, payload TEXT NOT NULL, created_ms INTEGER NOT NULL,
            next_attempt_ms INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
            claimed_until_ms INTEGER NOT NULL DEFAULT 0, claimed_by TEXT, delivered_ms INTEGER, last_error TEXT)",
            "CREATE INDEX IF NOT EXISTS velochat_outbox_due ON velochat_outbox (delivered_ms, next_attempt_ms)",
            "CREATE INDEX IF NOT EXISTS velochat_outbox_session ON velochat_outbox (session_id, seq)",
            "CREATE TABLE IF NOT EXISTS velochat_human_sessions (
            session_id TEXT PRIMARY KEY, since_ms INTEGER NOT NULL, reason TEXT NOT NULL)",
        ],
        &[
            "CREATE TABLE IF NOT EXISTS velochat_events (
            id BIGSERIAL PRIMARY KEY, ts_ms BIGINT NOT NULL, request_id TEXT NOT NULL,
            session_hash TEXT NOT NULL, route TEXT NOT NULL, intent TEXT, source TEXT NOT NULL,
            fallback_reason TEXT, handoff_reason TEXT, latency_ms BIGINT NOT NULL, upstream_ms BIGINT NOT NULL,
            prompt_tokens BIGINT NOT NULL, completion_tokens BIGINT NOT NULL, cached_tokens BIGINT NOT NULL,
            cost_usd DOUBLE PRECISION NOT NULL, confidence DOUBLE PRECISION, repeat_question BIGINT NOT NULL,
            first_reply BIGINT NOT NULL, model TEXT)",
            "CREATE INDEX IF NOT EXISTS velochat_events_ts ON velochat_events (ts_ms)",
            "CREATE INDEX IF NOT EXISTS velochat_events_session ON velochat_events (session_hash)",
            "CREATE TABLE IF NOT EXISTS velochat_outbox (
            seq BIGSERIAL PRIMARY KEY, id TEXT NOT NULL UNIQUE, session_id TEXT NOT NULL,
            session_hash TEXT NOT NULL, kind TEXT NOT NULL, payload TEXT NOT NULL, created_ms BIGINT NOT NULL,
            next_attempt_ms BIGINT NOT NULL, attempts BIGINT NOT NULL DEFAULT 0,
            claimed_until_ms BIGINT NOT NULL DEFAULT 0, claimed_by TEXT, delivered_ms BIGINT, last_error TEXT)",
            "CREATE INDEX IF NOT EXISTS velochat_outbox_due ON velochat_outbox (delivered_ms, next_attempt_ms)",
            "CREATE INDEX IF NOT EXISTS velochat_outbox_session ON velochat_outbox (session_id, seq)",
            "CREATE TABLE IF NOT EXISTS velochat_human_sessions (
            session_id TEXT PRIMARY KEY, since_ms BIGINT NOT NULL, reason TEXT NOT NULL)",
        ],
    ),
    // Every reply writes an event; erasing one session's events (a rare privacy request) can afford a
    // scan, so the per-session index is not worth its cost on every insert.
    (2, &["DROP INDEX IF EXISTS velochat_events_session"], &["DROP INDEX IF EXISTS velochat_events_session"]),
    // The knowledge base: documents (tombstoned on delete so replicas see it), one version counter
    // per site that every change bumps, and the questions it could not answer.
    (
        3,
        &[
            "CREATE TABLE IF NOT EXISTS velochat_kb_documents (
            site TEXT NOT NULL, id TEXT NOT NULL, title TEXT NOT NULL, body TEXT NOT NULL, url TEXT, locale TEXT,
            tags TEXT NOT NULL, version INTEGER NOT NULL, deleted INTEGER NOT NULL DEFAULT 0,
            updated_ms INTEGER NOT NULL, embeddings TEXT, PRIMARY KEY (site, id))",
            "CREATE INDEX IF NOT EXISTS velochat_kb_documents_version ON velochat_kb_documents (site, version)",
            "CREATE TABLE IF NOT EXISTS velochat_kb_state (site TEXT PRIMARY KEY, version INTEGER NOT NULL)",
            "CREATE TABLE IF NOT EXISTS velochat_unanswered (
            id INTEGER PRIMARY KEY AUTOINCREMENT, ts_ms INTEGER NOT NULL, session_hash TEXT NOT NULL,
            locale TEXT, question TEXT NOT NULL)",
            "CREATE INDEX IF NOT EXISTS velochat_unanswered_ts ON velochat_unanswered (ts_ms)",
        ],
        &[
            "CREATE TABLE IF NOT EXISTS velochat_kb_documents (
            site TEXT NOT NULL, id TEXT NOT NULL, title TEXT NOT NULL, body TEXT NOT NULL, url TEXT, locale TEXT,
            tags TEXT NOT NULL, version BIGINT NOT NULL, deleted BIGINT NOT NULL DEFAULT 0,
            updated_ms BIGINT NOT NULL, embeddings TEXT, PRIMARY KEY (site, id))",
            "CREATE INDEX IF NOT EXISTS velochat_kb_documents_version ON velochat_kb_documents (site, version)",
            "CREATE TABLE IF NOT EXISTS velochat_kb_state (site TEXT PRIMARY KEY, version BIGINT NOT NULL)",
            "CREATE TABLE IF NOT EXISTS velochat_unanswered (
            id BIGSERIAL PRIMARY KEY, ts_ms BIGINT NOT NULL, session_hash TEXT NOT NULL,
            locale TEXT, question TEXT NOT NULL)",
            "CREATE INDEX IF NOT EXISTS velochat_unanswered_ts ON velochat_unanswered (ts_ms)",
        ],
    ),
    // The human loop: what was said in handed-off sessions (episode = the session's handoff count),
    // each handoff's timing (first agent response, SLA breach, release), the answers people gave as
    // knowledge-base suggestions, and the spend anomalies alerted.
    (
        4,
        &[
            "CREATE TABLE IF NOT EXISTS velochat_session_messages (
            id INTEGER PRIMARY KEY AUTOINCREMENT, session_id TEXT NOT NULL, episode INTEGER NOT NULL,
            role TEXT NOT NULL, text TEXT NOT NULL, author TEXT, at_ms INTEGER NOT NULL)",
            "CREATE INDEX IF NOT EXISTS velochat_session_messages_session ON velochat_session_messages (session_id, episode)",
            "CREATE TABLE IF NOT EXISTS velochat_handoffs (
            session_id TEXT NOT NULL, episode INTEGER NOT NULL, started_ms INTEGER NOT NULL, reason TEXT NOT NULL,
            awaited INTEGER NOT NULL, first_agent_ms INTEGER, sla_breached INTEGER NOT NULL DEFAULT 0,
            released_ms INTEGER, PRIMARY KEY (session_id, episode))",
            "CREATE INDEX IF NOT EXISTS velochat_handoffs_started ON velochat_handoffs (started_ms)",
            "CREATE TABLE IF NOT EXISTS velochat_suggestions (
            id TEXT PRIMARY KEY, session_id TEXT NOT NULL, question TEXT NOT NULL, answer TEXT NOT NULL,
            status TEXT NOT NULL, created_ms INTEGER NOT NULL, decided_ms INTEGER)",
            "CREATE INDEX IF NOT EXISTS velochat_suggestions_status ON velochat_suggestions (status, created_ms)",
            "CREATE TABLE IF NOT EXISTS velochat_anomalies (
            hour TEXT PRIMARY KEY, at_ms INTEGER NOT NULL, last_hour_tokens INTEGER NOT NULL,
            baseline_tokens INTEGER NOT NULL, factor REAL)",
        ],
        &[
            "CREATE TABLE IF NOT EXISTS velochat_session_messages (
            id BIGSERIAL PRIMARY KEY, session_id TEXT NOT NULL, episode BIGINT NOT NULL,
            role TEXT NOT NULL, text TEXT NOT NULL, author TEXT, at_ms BIGINT NOT NULL)",
            "CREATE INDEX IF NOT EXISTS velochat_session_messages_session ON velochat_session_messages (session_id, episode)",
            "CREATE TABLE IF NOT EXISTS velochat_handoffs (
            session_id TEXT NOT NULL, episode BIGINT NOT NULL, started_ms BIGINT NOT NULL, reason TEXT NOT NULL,
            awaited BIGINT NOT NULL, first_agent_ms BIGINT, sla_breached BIGINT NOT NULL DEFAULT 0,
            released_ms BIGINT, PRIMARY KEY (session_id, episode))",
            "CREATE INDEX IF NOT EXISTS velochat_handoffs_started ON velochat_handoffs (started_ms)",
            "CREATE TABLE IF NOT EXISTS velochat_suggestions (
            id TEXT PRIMARY KEY, session_id TEXT NOT NULL, question TEXT NOT NULL, answer TEXT NOT NULL,
            status TEXT NOT NULL, created_ms BIGINT NOT NULL, decided_ms BIGINT)",
            "CREATE INDEX IF NOT EXISTS velochat_suggestions_status ON velochat_suggestions (status, created_ms)",
            "CREATE TABLE IF NOT EXISTS velochat_anomalies (
            hour TEXT PRIMARY KEY, at_ms BIGINT NOT NULL, last_hour_tokens BIGINT NOT NULL,
            baseline_tokens BIGINT NOT NULL, factor DOUBLE PRECISION)",
        ],
    ),
    // Console sessions signed out before their cookie expires (kept until then), so a sign-out holds
    // after a restart.
    (
        5,
        &["CREATE TABLE IF NOT EXISTS velochat_console_revocations (nonce TEXT PRIMARY KEY, expires_ms INTEGER NOT NULL)"],
        &["CREATE TABLE IF NOT EXISTS velochat_console_revocations (nonce TEXT PRIMARY KEY, expires_ms BIGINT NOT NULL)"],
    ),
    // Knowledge-base vectors in binary (a quarter of the base64 text of `embeddings`, which stays
    // readable for databases made before).
    (
        6,
        &["ALTER TABLE velochat_kb_documents ADD COLUMN vectors BLOB"],
        &["ALTER TABLE velochat_kb_documents ADD COLUMN IF NOT EXISTS vectors BYTEA"],
    ),
];
