//! The chat service, both chat routes: readable top to bottom in `flow.rs`: limits → session →
//! intent → knowledge → model or rule or handoff → output handling → state, metrics and events;
//! `stream.rs` relays a live upstream stream through the output filter. Degrading is a value
//! (`Reply`), not an exception. Who owns a session is the human loop's (`crate::human_loop`).

mod build;
mod flow;
mod grounding;
mod limits;
mod model;
mod ops;
mod outcome;
mod record;
mod session;
mod stream;

pub mod intents;
pub mod prompt;
pub mod repeat;

pub use build::{knowledge_base, redactor, Collaborators};
pub use ops::Readiness;
pub use outcome::{Caller, ChatError, ChatInput, ModelOverrides, Reply, Route};
pub use stream::{Relayed, StreamStart};

use crate::budget::Budget;
use crate::completion::tokens::SharedTokenizer;
use crate::completion::{Ladder, StaticReplies};
use crate::config::Settings;
use crate::guard::{OutputFilter, Redactor, Signer};
use crate::human_loop::HumanLoop;
use crate::knowledge::KnowledgeBases;
use crate::rate::Quota;
use crate::store::{DurableStore, StateStore};
use crate::telemetry::{EventSink, Metrics};
use intents::IntentRouter;
use std::sync::Arc;

/// The limits the chat service checks itself (the per-IP one is an edge layer).
pub struct Quotas {
    pub session: Quota,
    pub visitor: Quota,
    pub caller: Quota,
}

/// Built by `ChatService::new` from the settings; fields are private to the request flow.
pub struct ChatService {
    settings: Arc<Settings>,
    store: Arc<dyn StateStore>,
    durable: Arc<dyn DurableStore>,
    ladder: Ladder,
    replies: StaticReplies,
    intents: Arc<IntentRouter>,
    signer: Signer,
    output: OutputFilter,
    tokenizer: SharedTokenizer,
    /// Tokens of the configured system prompt, counted once.
    system_tokens: std::sync::OnceLock<usize>,
    metrics: Arc<Metrics>,
    events: EventSink,
    budget: Budget,
    quotas: Quotas,
    prompt_cache_key: String,
    knowledge: Arc<KnowledgeBases>,
    redactor: Arc<Redactor>,
    /// Session ownership, handoffs and their records.
    human: Arc<HumanLoop>,
}

impl ChatService {
    pub fn settings(&self) -> &Arc<Settings> {
        &self.settings
    }

    pub fn quotas(&self) -> &Quotas {
        &self.quotas
    }

    pub fn session_hash(&self, session_id: &str) -> String {
        self.human.session_hash(session_id)
    }
}
