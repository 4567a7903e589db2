//! What goes into the chat service and what comes out.

use crate::completion::wire::Usage;
use crate::domain::Deadline;
use crate::domain::{FallbackReason, HandoffReason, InvalidField, RawTurn, SessionId, Source, TypedContext, UserText};
use crate::rate::Decision;
use crate::store::{LimitKind, Mode};
use std::net::IpAddr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    SendChatMessage,
    ChatCompletions,
}

impl Route {
    pub fn as_str(self) -> &'static str {
        match self {
            Route::SendChatMessage => "send_chat_message",
            Route::ChatCompletions => "chat_completions",
        }
    }
}

/// Who is asking, as established at the HTTP edge.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The caller key's limit bucket (its position in `VELOCHAT_API_KEYS`, or a site key's id);
    /// None for anonymous requests.
    pub key: Option<String>,
    /// `X-Visitor-Id` / `X-Visitor-Ip`, only ever set for authenticated callers.
    pub visitor_id: Option<String>,
    pub visitor_ip: Option<IpAddr>,
    /// The per-IP limit's decision, taken at the edge for anonymous callers.
    pub ip_decision: Option<Decision>,
}

/// Per-request model options of the OpenAI-compatible route.
#[derive(Debug, Clone, Default)]
pub struct ModelOverrides {
    pub model: Option<String>,
    pub max_tokens: Option<u32>,
    pub temperature: Option<f32>,
    /// The caller's own system prompt (compat route, `keep` mode).
    pub system_prompt: Option<String>,
    pub response_format: Option<serde_json::Value>,
    pub passthrough: Option<serde_json::Map<String, serde_json::Value>>,
}

pub struct ChatInput {
    pub request_id: String,
    pub route: Route,
    pub session: Option<SessionId>,
    pub user_text: UserText,
    pub history: Vec<RawTurn>,
    /// Assistant turns must carry velochat's signature.
    pub verify_history: bool,
    pub context: TypedContext,
    pub caller: Caller,
    pub deadline: Deadline,
    pub overrides: ModelOverrides,
    /// The site the request acts in: its settings and its sessions' keys.
    pub site: std::sync::Arc<crate::sites::Site>,
}

#[derive(Debug, Clone)]
pub struct Reply {
    pub text: String,
    pub source: Source,
    pub fallback_reason: Option<FallbackReason>,
    pub handoff_reason: Option<HandoffReason>,
    pub intent: Option<String>,
    pub model: Option<String>,
    pub confidence: Option<f64>,
    /// The model said only a human can resolve this.
    pub needs_human: bool,
    /// The model stopped at the token limit (`finish_reason: length`); the text is kept.
    pub truncated: bool,
    pub usage: Usage,
    pub upstream_ms: u64,
    pub attempts: u32,
    pub signature: Option<String>,
    pub session_mode: Option<Mode>,
    pub repeat_question: bool,
    /// The most constrained limit that admitted the request (for RateLimit-* headers).
    pub limit: Option<(LimitKind, Decision)>,
    pub completion_id: Option<String>,
    /// Knowledge-base documents the reply was grounded in.
    pub sources: Vec<crate::knowledge::SourceRef>,
    /// A real question the site's help content does not cover (low confidence, `unanswered`).
    pub not_covered: bool,
    /// A handoff intent answered from the knowledge base, with a person offered in the text.
    pub handoff_offered: bool,
}

impl Reply {
    pub fn new(text: String, source: Source) -> Self {
        Self {
            text,
            source,
            fallback_reason: None,
            handoff_reason: None,
            intent: None,
            model: None,
            confidence: None,
            needs_human: false,
            truncated: false,
            usage: Usage::default(),
            upstream_ms: 0,
            attempts: 0,
            signature: None,
            session_mode: None,
            repeat_question: false,
            limit: None,
            completion_id: None,
            sources: Vec::new(),
            not_covered: false,
            handoff_offered: false,
        }
    }

    pub fn is_handoff(&self) -> bool {
        self.source == Source::Handoff
    }
}

/// Why a message was refused before any work was done.
#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    #[error(transparent)]
    Invalid(#[from] InvalidField),
    #[error("the {} limit is exhausted", .0.as_str())]
    RateLimited(LimitKind, Decision),
    /// The shared session could not take this message (see `StateStore::update_session`).
    #[error("the session store failed")]
    Unavailable(#[from] crate::store::StoreError),
}
