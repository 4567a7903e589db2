//! Logs (tracing-subscriber's JSON or pretty lines, redacted, written off the request path by
//! tracing-appender), metrics and the event log.

pub mod events;
pub mod metrics;

pub use events::EventSink;
pub use metrics::Metrics;

use crate::config::{LogFormat, Settings};
use crate::guard::Redactor;
use std::io::Write;
use std::sync::Arc;
use tracing_appender::non_blocking::{NonBlocking, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

/// Lines waiting for the writer thread; past this a line is dropped (and counted by
/// tracing-appender) rather than letting a stalled stderr block requests or grow memory.
const BUFFERED_LINES: usize = 128_000;

struct Redaction {
    redactor: parking_lot::RwLock<Option<Arc<Redactor>>>,
    /// Every secret any configuration loaded in this process named (tests load several).
    secrets: parking_lot::Mutex<Vec<String>>,
    /// Kept until `flush_logs`: dropping it writes out what is queued.
    guard: parking_lot::Mutex<Option<WorkerGuard>>,
}

static REDACTION: std::sync::LazyLock<Redaction> = std::sync::LazyLock::new(|| Redaction {
    redactor: parking_lot::RwLock::new(None),
    secrets: parking_lot::Mutex::new(Vec::new()),
    guard: parking_lot::Mutex::new(None),
});

/// A writer that redacts secrets, emails, phones and cards from each formatted line before it
/// reaches tracing-appender's queue, so no code path can leak them by logging carelessly.
#[derive(Clone)]
struct RedactingWriter {
    inner: NonBlocking,
}

/// One event's writer: tracing-subscriber formats the whole line, then writes it in one call.
pub struct RedactedLine {
    inner: NonBlocking,
}

impl Write for RedactedLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        let redactor = REDACTION.redactor.read().clone();
        match redactor {
            Some(redactor) => self.inner.write_all(redactor.log_line(&text).as_bytes())?,
            None => self.inner.write_all(text.as_bytes())?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl<'a> MakeWriter<'a> for RedactingWriter {
    type Writer = RedactedLine;

    fn make_writer(&'a self) -> Self::Writer {
        RedactedLine { inner: self.inner.clone() }
    }
}

/// Writes out whatever is queued (called before the process exits).
pub fn flush_logs() {
    drop(REDACTION.guard.lock().take());
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

/// Installs the global subscriber once per process (later calls, as in tests, only add their
/// secrets to the redactor). `RUST_LOG` overrides the configured level. JSON lines carry the
/// request span (`"span":{"requestId":..}`) so every line logged inside a request names it.
pub fn init_logging(settings: &Settings) {
    let redactor = {
        let mut known = REDACTION.secrets.lock();
        known.extend(secrets_of(settings));
        Arc::new(Redactor::new(known.iter().map(String::as_str)))
    };
    let first = REDACTION.redactor.read().is_none();
    *REDACTION.redactor.write() = Some(redactor);
    if !first {
        return;
    }
    let (non_blocking, guard) =
        NonBlockingBuilder::default().buffered_lines_limit(BUFFERED_LINES).finish(std::io::stderr());
    let writer = RedactingWriter { inner: non_blocking };
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.telemetry.log_level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour codes only for a terminal; in a file or a collector they are noise.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let installed = match settings.telemetry.log_format {
        LogFormat::Json => {
            builder.json().flatten_event(true).with_current_span(true).with_span_list(false).try_init().is_ok()
        }
        LogFormat::Pretty => builder.try_init().is_ok(),
    };
    if installed {
        *REDACTION.guard.lock() = Some(guard);
    }
}
