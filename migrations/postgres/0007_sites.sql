-- Sites: one deployment serves many Wix sites. `default` is every route's site when nothing names
-- one; its row is written at start-up. Settings are the site's JSON; keys are stored only as their
-- SHA-256; every change bumps the registry's version so each replica reloads within its poll.
CREATE TABLE IF NOT EXISTS velochat_sites (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, settings TEXT NOT NULL,
    created_ms BIGINT NOT NULL, updated_ms BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS velochat_site_keys (
    id TEXT PRIMARY KEY, site TEXT NOT NULL, role TEXT NOT NULL, label TEXT,
    key_hash TEXT NOT NULL UNIQUE, created_ms BIGINT NOT NULL, last_used_ms BIGINT);
CREATE INDEX IF NOT EXISTS velochat_site_keys_site ON velochat_site_keys (site);
CREATE TABLE IF NOT EXISTS velochat_registry_state (name TEXT PRIMARY KEY, version BIGINT NOT NULL);
