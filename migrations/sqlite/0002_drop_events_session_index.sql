-- Every reply writes an event; erasing one session's events (a rare privacy request) can afford a
-- scan, so the per-session index is not worth its cost on every insert.
DROP INDEX IF EXISTS velochat_events_session;
