//! The access-log line, one per request, written straight into the log queue in the same JSON shape
//! `tracing-subscriber` gives every other line. Its formatter (field visitors, a `serde_json` map,
//! a calendar computed per line) took ~6 of ~45 µs per request on the request thread (BENCHMARKS.md);
//! this writes the same bytes in well under a microsecond.

use std::cell::RefCell;
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

/// A field's value; `None` fields are left out, as `tracing` leaves out empty `Option`s.
#[derive(Debug, Clone, Copy)]
pub enum Value<'a> {
    Str(&'a str),
    U64(u64),
    F64(f64),
    None,
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
/// timestamp, level, message, the fields in order, target.
pub fn json_line(level: &str, message: &str, target: &str, fields: &[(&'static str, Value<'_>)]) -> Vec<u8> {
    let mut line = Vec::with_capacity(384);
    line.extend_from_slice(b"{\"timestamp\":\"");
    write_timestamp(&mut line, SystemTime::now());
    line.extend_from_slice(b"\",\"level\":\"");
    line.extend_from_slice(level.as_bytes());
    line.extend_from_slice(b"\",\"message\":");
    push_str(&mut line, message);
    for (key, value) in fields {
        let start = line.len();
        line.extend_from_slice(b",\"");
        line.extend_from_slice(key.as_bytes());
        line.extend_from_slice(b"\":");
        match value {
            Value::Str(s) => push_str(&mut line, s),
            Value::U64(n) => line.extend_from_slice(itoa::Buffer::new().format(*n).as_bytes()),
            Value::F64(x) => {
                let _ = serde_json::to_writer(&mut line, x);
            }
            Value::None => line.truncate(start),
        }
    }
    line.extend_from_slice(b",\"target\":");
    push_str(&mut line, target);
    line.extend_from_slice(b"}\n");
    line
}

fn push_str(line: &mut Vec<u8>, text: &str) {
    // Request ids and routes may come from the caller: escaped as any JSON string.
    let _ = serde_json::to_writer(&mut *line, text);
}

thread_local! {
    /// `YYYY-MM-DDTHH:MM:SS` of the last second formatted on this thread.
    static SECOND: RefCell<(u64, [u8; 19])> = const { RefCell::new((u64::MAX, [0; 19])) };
}

/// RFC 3339 in UTC with microseconds, as `tracing-subscriber` prints it: `2026-11-29T06:21:02.369568Z`.
fn write_timestamp(out: &mut Vec<u8>, now: SystemTime) {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let second = since.as_secs();
    SECOND.with_borrow_mut(|(cached, text)| {
        if *cached != second {
            *text = civil_second(second);
            *cached = second;
        }
        out.extend_from_slice(text);
    });
    let _ = write!(out, ".{:06}Z", since.subsec_micros());
}

/// Seconds since the epoch as `YYYY-MM-DDTHH:MM:SS` (proleptic Gregorian, Hinnant's days-to-civil).
fn civil_second(epoch_seconds: u64) -> [u8; 19] {
    let days = (epoch_seconds / 86_400) as i64;
    let of_day = epoch_seconds % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 { month_index + 3 } else { month_index - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    let mut text = [0u8; 19];
    let mut cursor = &mut text[..];
    let _ =
        write!(cursor, "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}", of_day / 3600, of_day / 60 % 60, of_day % 60);
    text
}

#[cfg(test)]
#[path = "access_log_tests.rs"]
mod tests;
