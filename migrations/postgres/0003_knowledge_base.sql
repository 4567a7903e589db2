-- The knowledge base: documents (tombstoned on delete so replicas see it), one version counter
-- per site that every change bumps, and the questions it could not answer.
CREATE TABLE IF NOT EXISTS velochat_kb_documents (
    site TEXT NOT NULL, id TEXT NOT NULL, title TEXT NOT NULL, body TEXT NOT NULL, url TEXT, locale TEXT,
    tags TEXT NOT NULL, version BIGINT NOT NULL, deleted BIGINT NOT NULL DEFAULT 0,
    updated_ms BIGINT NOT NULL, embeddings TEXT, PRIMARY KEY (site, id));
CREATE INDEX IF NOT EXISTS velochat_kb_documents_version ON velochat_kb_documents (site, version);
CREATE TABLE IF NOT EXISTS velochat_kb_state (site TEXT PRIMARY KEY, version BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS velochat_unanswered (
    id BIGSERIAL PRIMARY KEY, ts_ms BIGINT NOT NULL, session_hash TEXT NOT NULL,
    locale TEXT, question TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS velochat_unanswered_ts ON velochat_unanswered (ts_ms);
