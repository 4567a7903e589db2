//! Logs (JSON lines, redacted), metrics and the event log.

pub mod access_log;
pub mod events;
pub mod metrics;

pub use events::EventSink;
pub use metrics::Metrics;

use crate::config::{LogFormat, Settings};
use crate::guard::Redactor;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tracing_subscriber::fmt::format::{DefaultFields, Format, Full, Json, JsonFields};
use tracing_subscriber::fmt::{MakeWriter, SubscriberBuilder};
use tracing_subscriber::EnvFilter;

/// Log lines are collected in memory and written to stderr by one background thread, every
/// `FLUSH_EVERY` or sooner when `FLUSH_BYTES` have piled up: request threads never wait on a write
/// system call, and redaction (secrets, emails, phones, cards) runs over whole batches there, so no
/// code path can leak them by logging carelessly. stdout stays free for command output.
const FLUSH_EVERY: std::time::Duration = std::time::Duration::from_millis(50);
const FLUSH_BYTES: usize = 64 * 1024;
/// Past this, the logging thread writes itself rather than let memory grow.
const HARD_CAP: usize = 4 * 1024 * 1024;

struct LogQueue {
    pending: parking_lot::Mutex<Vec<u8>>,
    wake: parking_lot::Condvar,
    redactor: parking_lot::RwLock<Option<Arc<Redactor>>>,
    /// Every secret any configuration loaded in this process named (tests load several).
    secrets: parking_lot::Mutex<Vec<String>>,
}

static QUEUE: std::sync::LazyLock<LogQueue> = std::sync::LazyLock::new(|| LogQueue {
    pending: parking_lot::Mutex::new(Vec::with_capacity(FLUSH_BYTES)),
    wake: parking_lot::Condvar::new(),
    redactor: parking_lot::RwLock::new(None),
    secrets: parking_lot::Mutex::new(Vec::new()),
});

/// Set once this process's subscriber writes JSON into the queue: `access_log` lines may then be
/// queued directly, in the same shape.
static DIRECT_JSON: AtomicBool = AtomicBool::new(false);

/// Whether a finished JSON line may go straight into the log queue (see `access_log`).
pub fn direct_json() -> bool {
    DIRECT_JSON.load(Ordering::Relaxed)
}

/// Queues whole lines for the writer thread (redacted there like every other line).
pub fn enqueue(lines: &[u8]) {
    enqueue_with(|pending| pending.extend_from_slice(lines));
}

/// Queues what `write` appends: a line formatted straight into the queue, with no buffer of its own.
pub fn enqueue_with(write: impl FnOnce(&mut Vec<u8>)) {
    let mut pending = QUEUE.pending.lock();
    write(&mut pending);
    if pending.len() >= HARD_CAP {
        let batch = std::mem::take(&mut *pending);
        drop(pending);
        write_batch(&batch);
    } else if pending.len() >= FLUSH_BYTES {
        QUEUE.wake.notify_one();
    }
}

/// Writes out whatever is queued (also called before the process exits).
pub fn flush_logs() {
    let batch = std::mem::take(&mut *QUEUE.pending.lock());
    write_batch(&batch);
}

fn write_batch(batch: &[u8]) {
    if batch.is_empty() {
        return;
    }
    let text = String::from_utf8_lossy(batch);
    let clean = match QUEUE.redactor.read().as_ref() {
        Some(redactor) => redactor.log_line(&text).into_owned(),
        None => text.into_owned(),
    };
    let _ = std::io::stderr().lock().write_all(clean.as_bytes());
}

fn start_flusher() {
    let spawned = std::thread::Builder::new().name("velochat-log".into()).spawn(|| {
        // Two buffers swap places, so request threads append into one already grown to size.
        let mut spare = Vec::with_capacity(FLUSH_BYTES);
        loop {
            let batch = {
                let mut pending = QUEUE.pending.lock();
                if pending.len() < FLUSH_BYTES {
                    QUEUE.wake.wait_for(&mut pending, FLUSH_EVERY);
                }
                std::mem::replace(&mut *pending, spare)
            };
            write_batch(&batch);
            spare = batch;
            spare.clear();
            spare.shrink_to(HARD_CAP / 4);
        }
    });
    if let Err(e) = spawned {
        eprintln!("cannot start the log writer thread: {e}");
    }
}

#[derive(Clone)]
struct QueuedStderr;

struct LineWriter {
    buffer: Vec<u8>,
}

impl Write for LineWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if !self.buffer.is_empty() {
            enqueue(&self.buffer);
            self.buffer.clear();
        }
        Ok(())
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

impl<'a> MakeWriter<'a> for QueuedStderr {
    type Writer = LineWriter;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter { buffer: Vec::with_capacity(512) }
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

/// The JSON line every log line is (flattened fields, no span data); `access_log` writes the same.
pub(crate) fn json_lines<T, F, W>(
    builder: SubscriberBuilder<DefaultFields, Format<Full, T>, F, W>,
) -> SubscriberBuilder<JsonFields, Format<Json, T>, F, W> {
    builder.json().flatten_event(true).with_current_span(false).with_span_list(false)
}

/// Installs the global subscriber once per process (later calls, as in tests, are no-ops).
/// `RUST_LOG` overrides the configured level.
pub fn init_logging(settings: &Settings) {
    let redactor = {
        let mut known = QUEUE.secrets.lock();
        known.extend(secrets_of(settings));
        Arc::new(Redactor::new(known.iter().map(String::as_str)))
    };
    let first = QUEUE.redactor.read().is_none();
    *QUEUE.redactor.write() = Some(redactor);
    if first {
        start_flusher();
    }
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.telemetry.log_level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let writer = QueuedStderr;
    // Colour codes only for a terminal; in a file or a collector they are noise.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match settings.telemetry.log_format {
        LogFormat::Json => {
            if json_lines(builder).try_init().is_ok() {
                DIRECT_JSON.store(true, Ordering::Relaxed);
            }
        }
        LogFormat::Pretty => {
            let _ = builder.try_init();
        }
    }
}
