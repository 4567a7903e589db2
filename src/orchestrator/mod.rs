//! The request flow, readable top to bottom in `chat.rs`: limits → session → intent → model or
//! rule or handoff → output handling → state, metrics and events. Degrading is a value (`Reply`),
//! not an exception.

mod chat;
mod limits;
mod model;
mod outcome;
mod record;
mod session;
mod stream;

pub mod intents;
pub mod prompt;
pub mod repeat;

pub use outcome::{Caller, ChatError, ChatInput, ModelOverrides, Reply, Route};
pub use session::SessionView;
pub use stream::{LiveStream, StreamEnd, StreamMeta, StreamStart};

use crate::budget::Budget;
use crate::completion::tokens::SharedTokenizer;
use crate::completion::{Ladder, StaticReplies};
use crate::config::Settings;
use crate::guard::{OutputFilter, Signer};
use crate::rate::Quota;
use crate::store::{DurableStore, StateStore};
use crate::support::SupportOutbox;
use crate::telemetry::{EventSink, Metrics};
use intents::IntentRouter;
use ipnet::IpNet;
use std::sync::Arc;

pub struct Quotas {
    pub session: Quota,
    pub visitor: Quota,
    pub ip: Quota,
    pub caller: Quota,
}

pub struct Orchestrator {
    pub settings: Arc<Settings>,
    pub store: Arc<dyn StateStore>,
    pub durable: Arc<dyn DurableStore>,
    pub ladder: Ladder,
    pub replies: StaticReplies,
    pub intents: IntentRouter,
    pub signer: Signer,
    pub output: OutputFilter,
    pub tokenizer: SharedTokenizer,
    /// Tokens of the configured system prompt, counted once.
    pub system_tokens: std::sync::OnceLock<usize>,
    pub metrics: Arc<Metrics>,
    pub events: EventSink,
    pub support: SupportOutbox,
    pub budget: Budget,
    pub quotas: Quotas,
    pub trusted_proxies: Vec<IpNet>,
    pub prompt_cache_key: String,
}

impl Orchestrator {
    pub fn has_api_key(&self) -> bool {
        self.ladder.primary.has_key()
    }

    pub fn session_hash(&self, session_id: &str) -> String {
        crate::guard::hashed_id(self.settings.privacy.hash_salt.expose(), "session", session_id)
    }
}
