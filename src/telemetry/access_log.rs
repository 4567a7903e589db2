//! The access-log line, one per request, written straight into the log queue in the same JSON shape
//! `tracing-subscriber` gives every other line. Its formatter (field visitors, a `serde_json` map
//! per line) took ~6 of ~45 µs per request on the request thread (BENCHMARKS.md);
//! this writes the same bytes in well under a microsecond.

use std::io::Write;
use std::time::SystemTime;

/// A field's value; `None` fields are left out, as `tracing` leaves out empty `Option`s.
#[derive(Debug, Clone, Copy)]
pub enum Value<'a> {
    Str(&'a str),
    U64(u64),
    F64(f64),
    None,
}

impl<'a> From<Option<&'a str>> for Value<'a> {
    fn from(value: Option<&'a str>) -> Self {
        value.map_or(Value::None, Value::Str)
    }
}

impl std::fmt::Display for Value<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Str(s) => f.write_str(s),
            Value::U64(n) => write!(f, "{n}"),
            Value::F64(x) => write!(f, "{x}"),
            Value::None => Ok(()),
        }
    }
}

/// The fields as `key=value` pairs, for the human-readable format.
pub struct Pairs<'a>(pub &'a [(&'static str, Value<'a>)]);

impl std::fmt::Display for Pairs<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (key, value)) in self.0.iter().filter(|(_, v)| !matches!(v, Value::None)).enumerate() {
            write!(f, "{}{key}={value}", if i == 0 { "" } else { " " })?;
        }
        Ok(())
    }
}

/// One JSON line, as `tracing-subscriber`'s JSON format with flattened fields writes it:
/// timestamp, level, message, the fields in order, target; appended to `line`.
pub fn json_line(line: &mut Vec<u8>, level: &str, message: &str, target: &str, fields: &[(&'static str, Value<'_>)]) {
    line.extend_from_slice(b"{\"timestamp\":\"");
    write_timestamp(line, SystemTime::now());
    line.extend_from_slice(b"\",\"level\":\"");
    line.extend_from_slice(level.as_bytes());
    line.extend_from_slice(b"\",\"message\":");
    push_str(line, message);
    for (key, value) in fields {
        let start = line.len();
        line.extend_from_slice(b",\"");
        line.extend_from_slice(key.as_bytes());
        line.extend_from_slice(b"\":");
        match value {
            Value::Str(s) => push_str(line, s),
            Value::U64(n) => line.extend_from_slice(itoa::Buffer::new().format(*n).as_bytes()),
            Value::F64(x) => {
                let _ = serde_json::to_writer(&mut *line, x);
            }
            Value::None => line.truncate(start),
        }
    }
    line.extend_from_slice(b",\"target\":");
    push_str(line, target);
    line.extend_from_slice(b"}\n");
}

fn push_str(line: &mut Vec<u8>, text: &str) {
    // Request ids and routes may come from the caller: escaped as any JSON string.
    let _ = serde_json::to_writer(&mut *line, text);
}

/// RFC 3339 in UTC with microseconds, as `tracing-subscriber` prints it: `2026-11-29T06:21:02.369568Z`.
fn write_timestamp(out: &mut Vec<u8>, now: SystemTime) {
    let _ = write!(out, "{}", humantime::format_rfc3339_micros(now));
}

#[cfg(test)]
#[path = "access_log_tests.rs"]
mod tests;
