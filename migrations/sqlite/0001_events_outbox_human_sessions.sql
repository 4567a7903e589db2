CREATE TABLE IF NOT EXISTS velochat_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, ts_ms INTEGER NOT NULL, request_id TEXT NOT NULL,
    session_hash TEXT NOT NULL, route TEXT NOT NULL, intent TEXT, source TEXT NOT NULL,
    fallback_reason TEXT, handoff_reason TEXT, latency_ms INTEGER NOT NULL, upstream_ms INTEGER NOT NULL,
    prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL, cached_tokens INTEGER NOT NULL,
    cost_usd REAL NOT NULL, confidence REAL, repeat_question INTEGER NOT NULL, first_reply INTEGER NOT NULL,
    model TEXT);
CREATE INDEX IF NOT EXISTS velochat_events_ts ON velochat_events (ts_ms);
CREATE INDEX IF NOT EXISTS velochat_events_session ON velochat_events (session_hash);
CREATE TABLE IF NOT EXISTS velochat_outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, session_id TEXT NOT NULL,
    session_hash TEXT NOT NULL, kind TEXT NOT NULL, payload TEXT NOT NULL, created_ms INTEGER NOT NULL,
    next_attempt_ms INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
    claimed_until_ms INTEGER NOT NULL DEFAULT 0, claimed_by TEXT, delivered_ms INTEGER, last_error TEXT);
CREATE INDEX IF NOT EXISTS velochat_outbox_due ON velochat_outbox (delivered_ms, next_attempt_ms);
CREATE INDEX IF NOT EXISTS velochat_outbox_session ON velochat_outbox (session_id, seq);
CREATE TABLE IF NOT EXISTS velochat_human_sessions (
    session_id TEXT PRIMARY KEY, since_ms INTEGER NOT NULL, reason TEXT NOT NULL);
