//! The reply's fields as OpenAI's clients read them, shared by plain and streamed completions:
//! the completion id, the fingerprint, usage, and velochat's own fields.

use crate::chat::Reply;
use crate::domain::Source;
use serde::Serialize;

/// `system_fingerprint` marks replies that did not come from the model, so a caller (or the seed's
/// Velo code) can tell a static fallback from a model answer without new fields.
pub fn fingerprint(reply: &Reply) -> Option<&'static str> {
    match reply.source {
        Source::Model => None,
        Source::Fallback => Some("velochat-fallback"),
        Source::Rule => Some("velochat-rule"),
        Source::Handoff => Some("velochat-handoff"),
        Source::Knowledge => Some("velochat-knowledge"),
    }
}

pub fn completion_id(reply: &Reply, request_id: &str) -> String {
    reply.completion_id.clone().unwrap_or_else(|| format!("chatcmpl-{}", request_id.replace('-', "")))
}

/// velochat's own facts about the reply, beside OpenAI's fields (SDKs ignore unknown fields).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VelochatFields<'a> {
    source: &'static str,
    fallback_reason: Option<&'static str>,
    handoff: bool,
    handoff_reason: Option<&'static str>,
    intent: Option<&'a str>,
    request_id: &'a str,
    /// Knowledge-base documents the reply was grounded in.
    sources: &'a [crate::knowledge::SourceRef],
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    handoff_offered: bool,
}

pub fn velochat_fields<'a>(reply: &'a Reply, request_id: &'a str) -> VelochatFields<'a> {
    VelochatFields {
        source: reply.source.as_str(),
        fallback_reason: reply.fallback_reason.map(|r| r.as_str()),
        handoff: reply.is_handoff(),
        handoff_reason: reply.handoff_reason.map(|r| r.as_str()),
        intent: reply.intent.as_deref(),
        request_id,
        sources: &reply.sources,
        handoff_offered: reply.handoff_offered,
    }
}

#[derive(Serialize)]
pub struct UsageBody {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
    prompt_tokens_details: CachedTokens,
}

#[derive(Serialize)]
struct CachedTokens {
    cached_tokens: u64,
}

pub fn usage_json(reply: &Reply) -> UsageBody {
    let u = &reply.usage;
    UsageBody {
        prompt_tokens: u.prompt_tokens,
        completion_tokens: u.completion_tokens,
        total_tokens: u.total_tokens.max(u.prompt_tokens + u.completion_tokens),
        prompt_tokens_details: CachedTokens { cached_tokens: u.cached_tokens() },
    }
}
