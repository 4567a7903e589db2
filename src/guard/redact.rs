//! Redaction: configured secrets and anything shaped like an API key never leave in a reply or a
//! log line; log lines also lose emails, phone numbers and card-like numbers.

use regex::Regex;
use std::borrow::Cow;
use std::sync::OnceLock;

pub const REDACTED: &str = "[redacted]";

pub struct Redactor {
    secrets: Vec<String>,
}

fn key_like() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    #[allow(clippy::expect_used)] // a constant pattern
    RE.get_or_init(|| Regex::new(r"sk-[A-Za-z0-9_\-]{10,}").expect("valid regex"))
}

fn pii() -> &'static [Regex; 3] {
    static RE: OnceLock<[Regex; 3]> = OnceLock::new();
    #[allow(clippy::expect_used)] // constant patterns
    RE.get_or_init(|| {
        [
            Regex::new(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}").expect("email"),
            // card-like: 13–19 digits, optionally grouped; checked with Luhn before redacting
            Regex::new(r"\b(?:\d[ \-]?){12,18}\d\b").expect("card"),
            // phone: international (+ and 8–15 digits) or grouped national (3-3-4 style)
            Regex::new(r"(?:\+\d[\d \-().]{6,17}\d)|(?:\(?\b\d{3}\)?[ .\-]\d{3}[ .\-]\d{4}\b)").expect("phone"),
        ]
    })
}

/// Whether `text` has `n` or more digits with at most single separators between them (a phone or
/// card number always has; timestamps and latencies rarely do).
fn has_digit_run(text: &str, n: usize) -> bool {
    let mut run = 0;
    let mut gap = false;
    for b in text.bytes() {
        if b.is_ascii_digit() {
            run += 1;
            gap = false;
            if run >= n {
                return true;
            }
        } else if !gap && matches!(b, b' ' | b'-' | b'.' | b'(' | b')') && run > 0 {
            gap = true;
        } else {
            run = 0;
            gap = false;
        }
    }
    false
}

fn luhn(digits: &str) -> bool {
    let digits: Vec<u32> = digits.chars().filter_map(|c| c.to_digit(10)).collect();
    if !(13..=19).contains(&digits.len()) {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| {
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                *d
            }
        })
        .sum();
    sum % 10 == 0
}

impl Redactor {
    /// Secrets shorter than 4 characters are not matched (they would shred ordinary text).
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a str>) -> Self {
        let mut secrets: Vec<String> =
            secrets.into_iter().map(str::trim).filter(|s| s.len() >= 4).map(str::to_owned).collect();
        // Longest first, so a secret containing another is removed whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Self { secrets }
    }

    pub fn secrets<'t>(&self, text: &'t str) -> Cow<'t, str> {
        let mut out = Cow::Borrowed(text);
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = Cow::Owned(out.replace(secret.as_str(), REDACTED));
            }
        }
        // Every key shape starts with "sk-": a substring scan spares the regex on almost every text.
        if out.contains("sk-") && key_like().is_match(&out) {
            out = Cow::Owned(key_like().replace_all(&out, REDACTED).into_owned());
        }
        out
    }

    /// Secrets and personal data, for log lines.
    pub fn log_line<'t>(&self, text: &'t str) -> Cow<'t, str> {
        let mut out = self.secrets(text);
        let [email, card, phone] = pii();
        // Cheap scans first: most lines have no '@' and no long run of digits.
        if out.contains('@') && email.is_match(&out) {
            out = Cow::Owned(email.replace_all(&out, "[email]").into_owned());
        }
        let long_digits = has_digit_run(&out, 7);
        if long_digits && card.is_match(&out) {
            let replaced = card.replace_all(
                &out,
                |c: &regex::Captures| {
                    if luhn(&c[0]) {
                        "[card]".to_owned()
                    } else {
                        c[0].to_owned()
                    }
                },
            );
            out = Cow::Owned(replaced.into_owned());
        }
        if long_digits && phone.is_match(&out) {
            out = Cow::Owned(phone.replace_all(&out, "[phone]").into_owned());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_secrets_and_key_shapes_are_removed() {
        let r = Redactor::new(["my-admin-key", "abc"]);
        let text = "admin my-admin-key and sk-proj-ABCDEFGHIJKLmnop and abc";
        assert_eq!(r.secrets(text), "admin [redacted] and [redacted] and abc");
        assert_eq!(r.secrets("sk-short"), "sk-short");
    }

    #[test]
    fn log_lines_lose_personal_data_but_keep_timestamps_and_ids() {
        let r = Redactor::new([]);
        let line = r#"{"ts":"2026-11-28T15:04:31.123Z","requestId":"0193b7e2-5c7a-7d3e-9a1b-2c3d4e5f6a7b","latencyMs":812,"addr":"127.0.0.1:8080"}"#;
        assert_eq!(r.log_line(line), line);
        let pii = "mail jane.doe@example.com, call +1 415 555 0100 or (415) 555-0100, card 4242 4242 4242 4242";
        assert_eq!(r.log_line(pii), "mail [email], call [phone] or [phone], card [card]");
        assert_eq!(r.log_line("order 1234567890123"), "order 1234567890123", "fails Luhn, not a card");
        assert_eq!(r.log_line(r#""latency_ms":0.0153081234567891"#), r#""latency_ms":0.0153081234567891"#);
    }
}
