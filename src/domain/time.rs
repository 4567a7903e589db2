//! Times as the API writes them.

/// A stored time (ms since the epoch) as RFC 3339, UTC, with milliseconds; None when out of range.
pub fn rfc3339(ms: i64) -> Option<String> {
    chrono::DateTime::from_timestamp_millis(ms).map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_stored_time_is_utc_with_milliseconds() {
        assert_eq!(super::rfc3339(1_764_000_000_123).as_deref(), Some("2025-11-24T16:00:00.123Z"));
        assert_eq!(super::rfc3339(i64::MAX), None);
    }
}
