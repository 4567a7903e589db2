//! What a visitor's own chat widget reads back while a person has the conversation: the session's
//! messages after a cursor, waiting (a long poll inside Wix's 14 s) for the next one.

use super::HumanLoop;
use crate::store::durable::SessionMessage;
use crate::store::{Mode, StoreError};
use std::time::{Duration, Instant};

/// Messages per answer (a widget that fell behind reads on with the cursor).
const PAGE: i64 = 100;
/// How often another replica's writes are looked for while waiting (this one's wake the wait at once).
const RECHECK: Duration = Duration::from_millis(500);

/// The messages after a cursor and the session's mode now.
pub struct Feed {
    pub messages: Vec<(i64, SessionMessage)>,
    pub mode: Mode,
}

impl HumanLoop {
    /// Messages of session `id` after `after`; when there are none, waits up to `wait` for one
    /// (or for the session to change hands), then answers with what there is.
    pub async fn messages_after(&self, id: &str, after: i64, wait: Duration) -> Result<Feed, StoreError> {
        let until = Instant::now() + wait;
        // What this replica has queued for the transcript is written first, so the cursor never
        // skips a line still lingering in the batch writer.
        self.with.transcripts.flush().await;
        let mode_at_start = self.session_mode(id).await;
        loop {
            // Registered before the read, so a message posted in between still wakes us.
            let posted = self.posted.notified();
            let messages = self.with.durable.messages_after(id, after, PAGE).await?;
            let mode = self.session_mode(id).await;
            let now = Instant::now();
            if !messages.is_empty() || mode != mode_at_start || now >= until {
                return Ok(Feed { messages, mode });
            }
            let _ = tokio::time::timeout((until - now).min(RECHECK), posted).await;
        }
    }

    async fn session_mode(&self, id: &str) -> Mode {
        self.with.store.load_session(id).await.map_or(Mode::Bot, |s| s.mode)
    }

    /// Wakes this replica's waiting widgets (a message was written or the session changed hands).
    pub(super) fn wake_feeds(&self) {
        self.posted.notify_waiters();
    }
}
