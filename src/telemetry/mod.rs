//! Logs (JSON lines, redacted), metrics and the event log.

pub mod events;
pub mod metrics;

pub use events::EventSink;
pub use metrics::Metrics;

use crate::config::{LogFormat, Settings};
use crate::guard::Redactor;
use std::io::Write;
use std::sync::Arc;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

/// Writes each formatted log line to stderr after redaction (secrets, emails, phones, cards), so
/// no code path can leak them by logging carelessly. stdout stays free for command output.
#[derive(Clone)]
struct RedactingStderr {
    redactor: Arc<Redactor>,
}

struct LineWriter {
    redactor: Arc<Redactor>,
    buffer: Vec<u8>,
}

impl Write for LineWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&self.buffer);
        let clean = self.redactor.log_line(&text);
        let result = std::io::stderr().lock().write_all(clean.as_bytes());
        self.buffer.clear();
        result
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

impl<'a> MakeWriter<'a> for RedactingStderr {
    type Writer = LineWriter;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter { redactor: self.redactor.clone(), buffer: Vec::with_capacity(512) }
    }
}

/// Every configured secret, for the redactor.
pub fn secrets_of(settings: &Settings) -> Vec<String> {
    let mut secrets = vec![
        settings.openai.api_key.expose().to_owned(),
        settings.openai.fallback_api_key.expose().to_owned(),
        settings.auth.admin_key.expose().to_owned(),
        settings.signing.key.expose().to_owned(),
        settings.webhook.secret.expose().to_owned(),
    ];
    secrets.extend(settings.auth.api_keys.iter().map(|k| k.expose().to_owned()));
    secrets
}

/// Installs the global subscriber once per process (later calls, as in tests, are no-ops).
/// `RUST_LOG` overrides the configured level.
pub fn init_logging(settings: &Settings) {
    let secrets = secrets_of(settings);
    let redactor = Arc::new(Redactor::new(secrets.iter().map(String::as_str)));
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.telemetry.log_level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let writer = RedactingStderr { redactor };
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer);
    let _ = match settings.telemetry.log_format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).with_span_list(false).try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
}
