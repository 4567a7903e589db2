-- The human loop: what was said in handed-off sessions (episode = the session's handoff count),
-- each handoff's timing (first agent response, SLA breach, release), the answers people gave as
-- knowledge-base suggestions, and the spend anomalies alerted.
CREATE TABLE IF NOT EXISTS velochat_session_messages (
    id BIGSERIAL PRIMARY KEY, session_id TEXT NOT NULL, episode BIGINT NOT NULL,
    role TEXT NOT NULL, text TEXT NOT NULL, author TEXT, at_ms BIGINT NOT NULL);
CREATE INDEX IF NOT EXISTS velochat_session_messages_session ON velochat_session_messages (session_id, episode);
CREATE TABLE IF NOT EXISTS velochat_handoffs (
    session_id TEXT NOT NULL, episode BIGINT NOT NULL, started_ms BIGINT NOT NULL, reason TEXT NOT NULL,
    awaited BIGINT NOT NULL, first_agent_ms BIGINT, sla_breached BIGINT NOT NULL DEFAULT 0,
    released_ms BIGINT, PRIMARY KEY (session_id, episode));
CREATE INDEX IF NOT EXISTS velochat_handoffs_started ON velochat_handoffs (started_ms);
CREATE TABLE IF NOT EXISTS velochat_suggestions (
    id TEXT PRIMARY KEY, session_id TEXT NOT NULL, question TEXT NOT NULL, answer TEXT NOT NULL,
    status TEXT NOT NULL, created_ms BIGINT NOT NULL, decided_ms BIGINT);
CREATE INDEX IF NOT EXISTS velochat_suggestions_status ON velochat_suggestions (status, created_ms);
CREATE TABLE IF NOT EXISTS velochat_anomalies (
    hour TEXT PRIMARY KEY, at_ms BIGINT NOT NULL, last_hour_tokens BIGINT NOT NULL,
    baseline_tokens BIGINT NOT NULL, factor DOUBLE PRECISION);
