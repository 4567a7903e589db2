//! Logs (tracing-subscriber's JSON or pretty lines, redacted, written off the request path by
//! tracing-appender), metrics and the event log.
//!
//! Lines are handed to tracing-appender in batches, not one by one: its thread wakes (and, on a
//! 2-CPU machine, spins and yields) once per message, which cost ~40 µs of CPU per request at the
//! info level (BENCHMARKS.md). Formatted lines collect in one buffer and go to tracing-appender
//! when 32 KiB have gathered, or every 50 ms; redaction runs once per batch.

pub mod events;
pub mod metrics;
pub mod site_metrics;

pub use events::EventSink;
pub use metrics::Metrics;

use crate::config::{LogFormat, Settings};
use crate::guard::Redactor;
use std::io::Write;
use std::sync::Arc;
use tracing_appender::non_blocking::{NonBlocking, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

/// Batches waiting for tracing-appender's thread; past this a batch is dropped rather than letting
/// a stalled stderr block requests or grow memory.
const BUFFERED_BATCHES: usize = 4_096;
const BATCH_BYTES: usize = 32 * 1024;
const FLUSH_EVERY: std::time::Duration = std::time::Duration::from_millis(50);

struct LogPipeline {
    redactor: parking_lot::RwLock<Option<Arc<Redactor>>>,
    /// Every secret any configuration loaded in this process named (tests load several).
    secrets: parking_lot::Mutex<Vec<String>>,
    /// Kept until `flush_logs`: dropping it writes out what is queued.
    guard: parking_lot::Mutex<Option<WorkerGuard>>,
    /// Formatted lines not yet handed to tracing-appender.
    pending: parking_lot::Mutex<Vec<u8>>,
    writer: parking_lot::Mutex<Option<NonBlocking>>,
}

static LOGS: std::sync::LazyLock<LogPipeline> = std::sync::LazyLock::new(|| LogPipeline {
    redactor: parking_lot::RwLock::new(None),
    secrets: parking_lot::Mutex::new(Vec::new()),
    guard: parking_lot::Mutex::new(None),
    pending: parking_lot::Mutex::new(Vec::with_capacity(BATCH_BYTES * 2)),
    writer: parking_lot::Mutex::new(None),
});

/// Hands what is pending to tracing-appender, redacted. The batch is taken while the writer is
/// held, so batches reach stderr in the order their lines were written.
fn flush_pending() {
    let mut writer = LOGS.writer.lock();
    let batch = std::mem::replace(&mut *LOGS.pending.lock(), Vec::with_capacity(BATCH_BYTES * 2));
    let Some(writer) = writer.as_mut() else { return };
    if batch.is_empty() {
        return;
    }
    let text = String::from_utf8_lossy(&batch);
    let redactor = LOGS.redactor.read().clone();
    let _ = match redactor {
        Some(redactor) => writer.write_all(redactor.log_line(&text).as_bytes()),
        None => writer.write_all(text.as_bytes()),
    };
}

/// tracing-subscriber's writer: each formatted line joins the pending batch.
#[derive(Clone)]
struct BatchingWriter;

pub struct PendingLine;

impl Write for PendingLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut pending = LOGS.pending.lock();
        pending.extend_from_slice(buf);
        let full = pending.len() >= BATCH_BYTES;
        drop(pending);
        if full {
            flush_pending();
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for BatchingWriter {
    type Writer = PendingLine;

    fn make_writer(&'a self) -> Self::Writer {
        PendingLine
    }
}

/// Writes out whatever is queued (called before the process exits).
pub fn flush_logs() {
    flush_pending();
    *LOGS.writer.lock() = None;
    drop(LOGS.guard.lock().take());
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
        let mut known = LOGS.secrets.lock();
        known.extend(secrets_of(settings));
        Arc::new(Redactor::new(known.iter().map(String::as_str)))
    };
    let first = LOGS.redactor.read().is_none();
    *LOGS.redactor.write() = Some(redactor);
    if !first {
        return;
    }
    let (non_blocking, guard) =
        NonBlockingBuilder::default().buffered_lines_limit(BUFFERED_BATCHES).finish(std::io::stderr());
    *LOGS.writer.lock() = Some(non_blocking);
    let flusher = std::thread::Builder::new().name("velochat-log-batch".into()).spawn(|| loop {
        std::thread::sleep(FLUSH_EVERY);
        flush_pending();
    });
    if let Err(e) = flusher {
        eprintln!("cannot start the log batch thread: {e}");
    }
    let writer = BatchingWriter;
    // tantivy logs every index commit at info; only its warnings concern operators.
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(format!("{},tantivy=warn", settings.telemetry.log_level)))
        .unwrap_or_else(|_| EnvFilter::new("info,tantivy=warn"));
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
        *LOGS.guard.lock() = Some(guard);
    }
}
