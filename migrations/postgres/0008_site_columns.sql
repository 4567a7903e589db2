-- Sites: the event log and the unanswered questions say which site they are about, so the review
-- and the overview can be read per site. Rows from before sites belong to `default`. (Session
-- records carry the site in their session key: `Site::session_key`.)
ALTER TABLE velochat_events ADD COLUMN site TEXT NOT NULL DEFAULT 'default';
CREATE INDEX IF NOT EXISTS velochat_events_site_ts ON velochat_events (site, ts_ms);
ALTER TABLE velochat_unanswered ADD COLUMN site TEXT NOT NULL DEFAULT 'default';
