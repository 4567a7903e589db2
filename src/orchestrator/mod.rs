//! The request flow, readable top to bottom in `chat.rs`: limits → session → intent → model or
//! rule or handoff → output handling → state, metrics and events. Degrading is a value (`Reply`),
//! not an exception.

mod build;
mod chat;
mod exchanges;
mod feed;
mod grounding;
mod human_loop;
mod limits;
mod model;
mod outcome;
mod record;
mod session;
mod stream;
mod suggestions;

pub mod intents;
pub mod prompt;
pub mod repeat;

pub use build::Collaborators;
pub use outcome::{Caller, ChatError, ChatInput, ModelOverrides, Reply, Route};
pub use session::SessionView;
pub use stream::{LiveStream, StreamEnd, StreamMeta, StreamStart};
pub use suggestions::{document_id as suggestion_document_id, SuggestionEdit, SuggestionError};

use crate::budget::Budget;
use crate::completion::tokens::SharedTokenizer;
use crate::completion::{Ladder, StaticReplies};
use crate::config::Settings;
use crate::guard::{OutputFilter, Signer};
use crate::knowledge::KnowledgeBase;
use crate::rate::Quota;
use crate::store::{DurableStore, StateStore};
use crate::support::SupportOutbox;
use crate::telemetry::{EventSink, Metrics};
use intents::IntentRouter;
use std::sync::Arc;

/// The limits the orchestrator checks itself (the per-IP one is an edge layer).
pub struct Quotas {
    pub session: Quota,
    pub visitor: Quota,
    pub caller: Quota,
}

/// Built by `Orchestrator::new` from the settings; fields are private to the request flow.
pub struct Orchestrator {
    settings: Arc<Settings>,
    store: Arc<dyn StateStore>,
    durable: Arc<dyn DurableStore>,
    ladder: Ladder,
    replies: StaticReplies,
    intents: IntentRouter,
    signer: Signer,
    output: OutputFilter,
    tokenizer: SharedTokenizer,
    /// Tokens of the configured system prompt, counted once.
    system_tokens: std::sync::OnceLock<usize>,
    metrics: Arc<Metrics>,
    events: EventSink,
    support: SupportOutbox,
    transcripts: crate::support::TranscriptSink,
    budget: Budget,
    quotas: Quotas,
    prompt_cache_key: String,
    knowledge: Arc<KnowledgeBase>,
    redactor: Arc<crate::guard::Redactor>,
    /// Notified when a message is written or a session changes hands (long polls wait on it).
    posted: tokio::sync::Notify,
}

impl Orchestrator {
    pub fn settings(&self) -> &Arc<Settings> {
        &self.settings
    }

    pub fn store(&self) -> &Arc<dyn StateStore> {
        &self.store
    }

    pub fn durable(&self) -> &Arc<dyn DurableStore> {
        &self.durable
    }

    pub fn output(&self) -> &OutputFilter {
        &self.output
    }

    pub fn knowledge(&self) -> &Arc<KnowledgeBase> {
        &self.knowledge
    }

    pub fn quotas(&self) -> &Quotas {
        &self.quotas
    }

    pub fn circuit_state(&self) -> crate::completion::CircuitState {
        self.ladder.breaker.state()
    }

    /// Events were dropped within the last minute (the database was down or too slow too long).
    pub fn events_dropping(&self) -> bool {
        self.events.dropping()
    }

    pub fn tokenizer_loaded(&self) -> bool {
        self.tokenizer.is_loaded()
    }

    pub fn has_api_key(&self) -> bool {
        self.ladder.primary.has_key()
    }

    pub fn session_hash(&self, session_id: &str) -> String {
        crate::guard::hashed_id(self.settings.privacy.hash_salt.expose(), "session", session_id)
    }
}
