CREATE TABLE IF NOT EXISTS velochat_events (
    id BIGSERIAL PRIMARY KEY, ts_ms BIGINT NOT NULL, request_id TEXT NOT NULL,
    session_hash TEXT NOT NULL, route TEXT NOT NULL, intent TEXT, source TEXT NOT NULL,
    fallback_reason TEXT, handoff_reason TEXT, latency_ms BIGINT NOT NULL, upstream_ms BIGINT NOT NULL,
    prompt_tokens BIGINT NOT NULL, completion_tokens BIGINT NOT NULL, cached_tokens BIGINT NOT NULL,
    cost_usd DOUBLE PRECISION NOT NULL, confidence DOUBLE PRECISION, repeat_question BIGINT NOT NULL,
    first_reply BIGINT NOT NULL, model TEXT);
CREATE INDEX IF NOT EXISTS velochat_events_ts ON velochat_events (ts_ms);
CREATE INDEX IF NOT EXISTS velochat_events_session ON velochat_events (session_hash);
CREATE TABLE IF NOT EXISTS velochat_outbox (
    seq BIGSERIAL PRIMARY KEY, id TEXT NOT NULL UNIQUE, session_id TEXT NOT NULL,
    session_hash TEXT NOT NULL, kind TEXT NOT NULL, payload TEXT NOT NULL, created_ms BIGINT NOT NULL,
    next_attempt_ms BIGINT NOT NULL, attempts BIGINT NOT NULL DEFAULT 0,
    claimed_until_ms BIGINT NOT NULL DEFAULT 0, claimed_by TEXT, delivered_ms BIGINT, last_error TEXT);
CREATE INDEX IF NOT EXISTS velochat_outbox_due ON velochat_outbox (delivered_ms, next_attempt_ms);
CREATE INDEX IF NOT EXISTS velochat_outbox_session ON velochat_outbox (session_id, seq);
CREATE TABLE IF NOT EXISTS velochat_human_sessions (
    session_id TEXT PRIMARY KEY, since_ms BIGINT NOT NULL, reason TEXT NOT NULL);
