use super::*;
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

/// What `tracing-subscriber`'s JSON format (as `init_logging` configures it) writes for an event.
fn tracing_line(emit: impl FnOnce()) -> String {
    let captured = Arc::new(Mutex::new(Vec::new()));
    let sink = captured.clone();
    let subscriber =
        crate::telemetry::json_lines(tracing_subscriber::fmt()).with_writer(move || Capture(sink.clone())).finish();
    tracing::subscriber::with_default(subscriber, emit);
    let bytes = captured.lock().unwrap().clone();
    String::from_utf8(bytes).unwrap()
}

struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The line without its timestamp value, which differs between two writes.
fn without_timestamp(line: &str) -> String {
    let value_start = line.find("\"timestamp\":\"").unwrap() + "\"timestamp\":\"".len();
    let value_end = value_start + line[value_start..].find('"').unwrap();
    format!("{}{}", &line[..value_start], &line[value_end..])
}

#[test]
fn the_line_is_byte_for_byte_what_tracing_writes() {
    let id = "req-\"quoted\\\u{1}é";
    let expected = tracing_line(|| {
        tracing::info!(
            target: "velochat::api::middleware",
            requestId = %id, route = "send_chat_message", method = %"POST", status = 200u16, latencyMs = 205.044,
            source = "model", fallbackReason = None::<&str>, intent = Some("order"), upstreamMs = 201u64,
            attempts = 1u32, "request"
        )
    });
    let mut ours = Vec::new();
    json_line(
        &mut ours,
        "INFO",
        "request",
        "velochat::api::middleware",
        &[
            ("requestId", Value::Str(id)),
            ("route", Value::Str("send_chat_message")),
            ("method", Value::Str("POST")),
            ("status", Value::U64(200)),
            ("latencyMs", Value::F64(205.044)),
            ("source", Value::Str("model")),
            ("fallbackReason", Value::None),
            ("intent", Value::Str("order")),
            ("upstreamMs", Value::U64(201)),
            ("attempts", Value::U64(1)),
        ],
    );
    let ours = String::from_utf8(ours).unwrap();
    assert_eq!(without_timestamp(&ours), without_timestamp(&expected));
    let parsed: serde_json::Value = serde_json::from_str(&ours).unwrap();
    assert_eq!(parsed["requestId"], id);
    assert!(parsed.get("fallbackReason").is_none());
}

#[test]
fn whole_and_tiny_latencies_are_written_as_tracing_writes_them() {
    for latency in [1.0, 0.001, 12345.678] {
        let expected = tracing_line(|| tracing::info!(target: "t", latencyMs = latency, "request"));
        let mut ours = Vec::new();
        json_line(&mut ours, "INFO", "request", "t", &[("latencyMs", Value::F64(latency))]);
        let ours = String::from_utf8(ours).unwrap();
        assert_eq!(without_timestamp(&ours), without_timestamp(&expected));
    }
}

#[test]
fn the_timestamp_is_utc_with_microseconds() {
    let cases = [
        (0, "1970-01-01T00:00:00"),
        (1_764_000_000, "2025-11-24T16:00:00"),
        (951_782_400, "2000-02-29T00:00:00"),
        (1_709_251_199, "2024-02-29T23:59:59"),
        (4_102_444_799, "2099-12-31T23:59:59"),
    ];
    for (seconds, text) in cases {
        let mut out = Vec::new();
        write_timestamp(&mut out, UNIX_EPOCH + Duration::from_secs(seconds));
        assert_eq!(String::from_utf8(out).unwrap(), format!("{text}.000000Z"));
    }
    let mut out = Vec::new();
    write_timestamp(&mut out, UNIX_EPOCH + Duration::from_micros(1_764_000_000_123_456));
    assert_eq!(String::from_utf8(out).unwrap(), "2025-11-24T16:00:00.123456Z");
}

#[test]
fn the_readable_form_lists_present_fields() {
    let fields = [("route", Value::Str("x")), ("intent", Value::None), ("status", Value::U64(200))];
    assert_eq!(Pairs(&fields).to_string(), "route=x status=200");
}
