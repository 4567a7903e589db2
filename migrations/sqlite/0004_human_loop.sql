-- The human loop: what was said in handed-off sessions (episode = the session's handoff count),
-- each handoff's timing (first agent response, SLA breach, release), the answers people gave as
-- knowledge-base suggestions, and the spend anomalies alerted.
CREATE TABLE IF NOT EXISTS velochat_session_messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT, session_id TEXT NOT NULL, episode INTEGER NOT NULL,
    role TEXT NOT NULL, text TEXT NOT NULL, author TEXT, at_ms INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS velochat_session_messages_session ON velochat_session_messages (session_id, episode);
CREATE TABLE IF NOT EXISTS velochat_handoffs (
    session_id TEXT NOT NULL, episode INTEGER NOT NULL, started_ms INTEGER NOT NULL, reason TEXT NOT NULL,
    awaited INTEGER NOT NULL, first_agent_ms INTEGER, sla_breached INTEGER NOT NULL DEFAULT 0,
    released_ms INTEGER, PRIMARY KEY (session_id, episode));
CREATE INDEX IF NOT EXISTS velochat_handoffs_started ON velochat_handoffs (started_ms);
CREATE TABLE IF NOT EXISTS velochat_suggestions (
    id TEXT PRIMARY KEY, session_id TEXT NOT NULL, question TEXT NOT NULL, answer TEXT NOT NULL,
    status TEXT NOT NULL, created_ms INTEGER NOT NULL, decided_ms INTEGER);
CREATE INDEX IF NOT EXISTS velochat_suggestions_status ON velochat_suggestions (status, created_ms);
CREATE TABLE IF NOT EXISTS velochat_anomalies (
    hour TEXT PRIMARY KEY, at_ms INTEGER NOT NULL, last_hour_tokens INTEGER NOT NULL,
    baseline_tokens INTEGER NOT NULL, factor REAL);
