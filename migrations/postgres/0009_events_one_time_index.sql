-- Every reply writes an event. With sites, an index led by `site` received each insert at the end
-- of that site's range: traffic spread over many sites dirtied a different index page per site on
-- every batch. One index led by time appends at a single place whatever the site, and still serves
-- a site's report (a time range, the site checked inside the index) and the retention sweep.
DROP INDEX IF EXISTS velochat_events_site_ts;
DROP INDEX IF EXISTS velochat_events_ts;
CREATE INDEX IF NOT EXISTS velochat_events_ts_site ON velochat_events (ts_ms, site);
