//! The human loop: who owns a session (bot or person), takeover and release, agents' messages and
//! what the visitor's widget reads back, the first-response SLA, and the knowledge-base
//! suggestions drafted from a person's answers.

mod exchanges;
mod feed;
mod ownership;
mod record;
pub mod sla;
mod suggestions;

pub use feed::Feed;
pub use ownership::{SessionView, TransitionContext};
pub use record::RECENT_VISITOR;
pub use suggestions::{document_id as suggestion_document_id, SuggestionEdit, SuggestionError};

use crate::config::Settings;
use crate::guard::Redactor;
use crate::knowledge::KnowledgeBases;
use crate::store::{DurableStore, StateStore, StoreError};
use crate::support::{SupportOutbox, TranscriptSink};
use crate::telemetry::Metrics;
use std::sync::Arc;

/// Whether a visitor's message only asks for a person (the chat service's intent rules answer it;
/// such a message is never the question of a suggestion).
pub type AsksForPerson = Box<dyn Fn(&str) -> bool + Send + Sync>;

/// What the human loop uses but does not own.
pub struct HumanLoopParts {
    pub settings: Arc<Settings>,
    pub store: Arc<dyn StateStore>,
    pub durable: Arc<dyn DurableStore>,
    pub metrics: Arc<Metrics>,
    pub support: SupportOutbox,
    pub transcripts: TranscriptSink,
    pub redactor: Arc<Redactor>,
    pub knowledge: Arc<KnowledgeBases>,
    pub asks_for_person: AsksForPerson,
    /// Each site's own SLA (`settings.handoff.slaMs`).
    pub sites: Arc<crate::sites::SiteRegistry>,
}

pub struct HumanLoop {
    with: HumanLoopParts,
    /// With a process-local state store: every session that may have a durable human owner (this
    /// process's handoffs since start-up, and those found then). A session outside it needs no
    /// durable lookup when its state is missing. None until loaded, and always with Redis (another
    /// replica's handoff is not in it).
    maybe_owned: parking_lot::Mutex<Option<std::collections::HashSet<String>>>,
    /// Notified when a message is written or a session changes hands (long polls wait on it).
    posted: tokio::sync::Notify,
}

impl HumanLoop {
    pub fn new(with: HumanLoopParts) -> Self {
        Self { with, maybe_owned: parking_lot::Mutex::new(None), posted: tokio::sync::Notify::new() }
    }

    /// Loads the sessions people own, so that a new session costs no durable lookup (a
    /// process-local state store only; with Redis every miss is looked up).
    pub async fn load_owners(&self) -> Result<(), StoreError> {
        if self.with.store.health() != crate::store::StoreHealth::Local {
            return Ok(());
        }
        let owned = self.with.durable.human_session_ids().await?;
        *self.maybe_owned.lock() = Some(owned.into_iter().collect());
        Ok(())
    }

    /// Suggestions with `status` (all when None), newest first.
    /// What was said in the session's current (or last) handoff. None when the session is unknown.
    pub async fn transcript(
        &self,
        id: &str,
    ) -> Result<Option<(SessionView, Vec<crate::store::durable::SessionMessage>)>, StoreError> {
        let Some(view) = self.session_view(id).await else {
            return Ok(None);
        };
        let messages = self.with.durable.session_messages(id, i64::from(view.handoffs)).await?;
        Ok(Some((view, messages)))
    }

    pub fn session_hash(&self, session_id: &str) -> String {
        crate::guard::hashed_id(self.with.settings.privacy.hash_salt.expose(), "session", session_id)
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
