//! What a reply is and why: its source, and the reason for a fallback or a handoff.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Model,
    Fallback,
    Rule,
    Handoff,
    /// Sentences of a knowledge-base passage, when the model could not answer.
    Knowledge,
}

impl Source {
    pub const ALL: [Source; 5] = [Source::Model, Source::Fallback, Source::Rule, Source::Handoff, Source::Knowledge];

    pub fn as_str(self) -> &'static str {
        match self {
            Source::Model => "model",
            Source::Fallback => "fallback",
            Source::Rule => "rule",
            Source::Handoff => "handoff",
            Source::Knowledge => "knowledge",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FallbackReason {
    NoApiKey,
    KillSwitch,
    CircuitOpen,
    BudgetExhausted,
    UpstreamTimeout,
    UpstreamRateLimited,
    UpstreamQuota,
    UpstreamError,
    UpstreamInvalid,
    ContentFilter,
    Deadline,
    LeakBlocked,
}

impl FallbackReason {
    /// The model is out of reach (not refused by the operator or by a filter): the knowledge base
    /// may answer in its place.
    pub fn knowledge_may_answer(self) -> bool {
        !matches!(self, FallbackReason::KillSwitch | FallbackReason::ContentFilter | FallbackReason::LeakBlocked)
    }

    pub const ALL: [FallbackReason; 12] = [
        FallbackReason::NoApiKey,
        FallbackReason::KillSwitch,
        FallbackReason::CircuitOpen,
        FallbackReason::BudgetExhausted,
        FallbackReason::UpstreamTimeout,
        FallbackReason::UpstreamRateLimited,
        FallbackReason::UpstreamQuota,
        FallbackReason::UpstreamError,
        FallbackReason::UpstreamInvalid,
        FallbackReason::ContentFilter,
        FallbackReason::Deadline,
        FallbackReason::LeakBlocked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FallbackReason::NoApiKey => "no_api_key",
            FallbackReason::KillSwitch => "kill_switch",
            FallbackReason::CircuitOpen => "circuit_open",
            FallbackReason::BudgetExhausted => "budget_exhausted",
            FallbackReason::UpstreamTimeout => "upstream_timeout",
            FallbackReason::UpstreamRateLimited => "upstream_rate_limited",
            FallbackReason::UpstreamQuota => "upstream_quota",
            FallbackReason::UpstreamError => "upstream_error",
            FallbackReason::UpstreamInvalid => "upstream_invalid",
            FallbackReason::ContentFilter => "content_filter",
            FallbackReason::Deadline => "deadline",
            FallbackReason::LeakBlocked => "leak_blocked",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HandoffReason {
    /// An intent rule with action `handoff` matched.
    Intent,
    /// The model said `needsHuman`.
    NeedsHuman,
    /// The K-th consecutive low-confidence reply.
    LowConfidence,
    /// The same question a third time.
    RepeatedQuestion,
    /// A human agent stepped in (Wix Chat business-side message, or the takeover route).
    AgentTakeover,
    /// The session is already owned by a human: a holding notice.
    HumanMode,
    /// Owned by a human who has not answered within the SLA: the apology instead of the holding notice.
    SlaBreached,
}

impl HandoffReason {
    pub const ALL: [HandoffReason; 7] = [
        HandoffReason::Intent,
        HandoffReason::NeedsHuman,
        HandoffReason::LowConfidence,
        HandoffReason::RepeatedQuestion,
        HandoffReason::AgentTakeover,
        HandoffReason::HumanMode,
        HandoffReason::SlaBreached,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            HandoffReason::Intent => "intent",
            HandoffReason::NeedsHuman => "needs_human",
            HandoffReason::LowConfidence => "low_confidence",
            HandoffReason::RepeatedQuestion => "repeated_question",
            HandoffReason::AgentTakeover => "agent_takeover",
            HandoffReason::HumanMode => "human_mode",
            HandoffReason::SlaBreached => "sla_breached",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == text)
    }
}
