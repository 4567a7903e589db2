//! `POST /sendChatMessage`: parse into domain types, ask the chat service, map the reply.

use super::access::CurrentSite;
use super::error::{rate_limit_headers, ApiError};
use super::extract::{JsonBody, Peer};
use super::middleware::{ReplyLog, RequestContext};
use crate::api::state::AppState;
use crate::chat::{Caller, ChatInput, ModelOverrides, Reply, Route};
use crate::domain::Deadline;
use crate::domain::{InvalidField, RawTurn, SessionId, TypedContext, UserText};
use crate::guard::Credential;
use crate::sites::Site;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use utoipa::ToSchema;

/// A history entry: what the page kept of the conversation.
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct HistoryEntry {
    /// `user` or `assistant`; other roles are dropped.
    pub role: Option<String>,
    pub content: Option<String>,
    /// The `signature` velochat returned with an assistant reply.
    pub signature: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SendChatMessageRequest {
    /// 1–128 characters of `[A-Za-z0-9._:-]`.
    #[schema(example = "3f1c9e2a-visitor-42")]
    pub session_id: Option<String>,
    /// The visitor's message; at most 4,000 characters after trimming.
    #[schema(example = "Where is my order?")]
    pub user_text: Option<String>,
    /// At most 100 entries; the last 8 user/assistant turns are used.
    #[schema(value_type = Option<Vec<HistoryEntry>>)]
    pub history: Option<Vec<RawTurn>>,
    /// Raw app state: `{locale, account: {tier, status}, activeOrder: {reference, stage}}`.
    #[schema(value_type = Option<Object>)]
    pub context: Option<serde_json::Value>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SendChatMessageResponse {
    pub reply: String,
    /// `model`, `fallback`, `rule`, `handoff` or `knowledge` (sentences of a help page, when the
    /// model could not answer; `fallbackReason` says why).
    pub source: &'static str,
    pub request_id: String,
    pub latency_ms: u64,
    /// Send back with this reply in `history` (HMAC of session and text).
    pub signature: Option<String>,
    pub intent: Option<String>,
    /// Why a static reply was given (fallback replies only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback_reason: Option<&'static str>,
    /// True when a human owns (or now takes) the conversation.
    pub handoff: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handoff_reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
    /// The model hit its token limit; the reply is cut short.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
    /// `bot` or `human`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_mode: Option<&'static str>,
    /// Knowledge-base documents the reply was grounded in (empty when none was used).
    pub sources: Vec<crate::knowledge::SourceRef>,
    /// A handoff intent (a refund question, say) answered from the knowledge base, with a person
    /// offered in the reply; only present when true.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub handoff_offered: bool,
}

const VISITOR_ID_HEADER: &str = "x-visitor-id";
const VISITOR_IP_HEADER: &str = "x-visitor-ip";
pub const DEADLINE_HEADER: &str = "x-velochat-deadline-ms";

/// Who is calling: the key, the visitor headers (authenticated callers only), and the per-IP
/// limit's decision (the edge layer took it for anonymous callers).
pub fn caller(ctx: &RequestContext, headers: &HeaderMap, peer: Peer) -> Result<Caller, ApiError> {
    let key = match &ctx.credential {
        Credential::Caller(index) => Some(index.to_string()),
        Credential::Site(site_key, _) => Some(site_key.id.clone()),
        _ => None,
    };
    let (mut visitor_id, mut visitor_ip) = (None, None);
    if key.is_some() {
        if let Some(raw) = headers.get(VISITOR_ID_HEADER) {
            let text = raw.to_str().unwrap_or("");
            visitor_id = Some(SessionId::parse(Some(text), "X-Visitor-Id")?.as_str().to_owned());
        }
        if let Some(raw) = headers.get(VISITOR_IP_HEADER) {
            let ip = raw.to_str().ok().and_then(|t| t.trim().parse::<IpAddr>().ok()).ok_or_else(|| {
                InvalidField::new("X-Visitor-Ip", "invalid_field", "`X-Visitor-Ip` must be an IPv4 or IPv6 address")
            })?;
            visitor_ip = Some(ip);
        }
    }
    Ok(Caller { key, visitor_id, visitor_ip, ip_decision: peer.ip_decision })
}

/// The request's budget: the configured total, lowered (never raised) by `X-Velochat-Deadline-Ms`.
pub fn deadline(state: &AppState, ctx: &RequestContext, headers: &HeaderMap) -> Result<Deadline, ApiError> {
    let total = state.settings.deadline.total_ms;
    let budget = match headers.get(DEADLINE_HEADER) {
        None => total,
        Some(raw) => {
            let ms =
                raw.to_str().ok().and_then(|t| t.trim().parse::<u64>().ok()).filter(|ms| *ms > 0).ok_or_else(|| {
                    InvalidField::new(
                        "X-Velochat-Deadline-Ms",
                        "invalid_field",
                        "`X-Velochat-Deadline-Ms` must be a positive whole number of milliseconds",
                    )
                })?;
            ms.min(total)
        }
    };
    Ok(Deadline::new(ctx.started, Duration::from_millis(budget)))
}

pub fn reply_log(reply: &Reply) -> ReplyLog {
    ReplyLog {
        source: reply.source.as_str(),
        fallback_reason: reply.fallback_reason.map(|r| r.as_str()),
        handoff_reason: reply.handoff_reason.map(|r| r.as_str()),
        intent: reply.intent.clone(),
        upstream_ms: reply.upstream_ms,
        attempts: reply.attempts,
        prompt_tokens: reply.usage.prompt_tokens,
        completion_tokens: reply.usage.completion_tokens,
        cached_tokens: reply.usage.cached_tokens(),
    }
}

/// The chat service's input: the raw body parsed into domain types.
fn chat_input(
    state: &AppState,
    ctx: &RequestContext,
    site: Arc<Site>,
    headers: HeaderMap,
    peer: Peer,
    body: SendChatMessageRequest,
) -> Result<ChatInput, ApiError> {
    let SendChatMessageRequest { session_id, user_text, history, context } = body;
    let session = SessionId::parse(session_id.as_deref(), "sessionId")?.within(site.session_prefix());
    let user_text = UserText::parse(user_text.as_deref(), "userText", 4000)?;
    let context = TypedContext::parse(context.as_ref())?;
    Ok(ChatInput {
        request_id: ctx.request_id.clone(),
        route: Route::SendChatMessage,
        session: Some(session),
        user_text,
        history: history.unwrap_or_default(),
        verify_history: state.settings.history.require_signatures,
        context,
        caller: caller(ctx, &headers, peer)?,
        deadline: deadline(state, ctx, &headers)?,
        overrides: ModelOverrides::default(),
        site,
    })
}

/// Sends a visitor message and gets the reply: from the model, a rule, a static fallback, or a
/// handoff notice. Always 200 once accepted, inside the deadline.
#[utoipa::path(
    post, path = "/sendChatMessage", tag = "chat",
    request_body = SendChatMessageRequest,
    params(
        ("X-Velochat-Deadline-Ms" = Option<u64>, Header, description = "Lower the request's time budget (ms)."),
        ("X-Visitor-Id" = Option<String>, Header, description = "Visitor identity for the visitor limit (authenticated callers only)."),
        ("X-Visitor-Ip" = Option<String>, Header, description = "Visitor address for the visitor limit (authenticated callers only)."),
    ),
    responses(
        (status = 200, description = "A reply", body = SendChatMessageResponse),
        (status = 400, description = "Invalid or missing field, malformed JSON"),
        (status = 401, description = "Missing or invalid caller key"),
        (status = 405, description = "Wrong method"),
        (status = 413, description = "Body over the limit"),
        (status = 415, description = "Not application/json"),
        (status = 429, description = "A rate limit (session, visitor, ip or caller) is exhausted"),
    ),
    security(("bearer" = []), ())
)]
pub async fn send_chat_message(
    State(state): State<AppState>,
    Extension(ctx): Extension<RequestContext>,
    Extension(CurrentSite(site)): Extension<CurrentSite>,
    peer: Peer,
    headers: HeaderMap,
    JsonBody(body): JsonBody<SendChatMessageRequest>,
) -> Result<Response, ApiError> {
    let input = chat_input(&state, &ctx, site, headers, peer, body)?;
    let reply = state.chat.chat(input).await?;
    let body = SendChatMessageResponse {
        reply: reply.text.clone(),
        source: reply.source.as_str(),
        request_id: ctx.request_id.clone(),
        latency_ms: ctx.started.elapsed().as_millis() as u64,
        signature: reply.signature.clone(),
        intent: reply.intent.clone(),
        fallback_reason: reply.fallback_reason.map(|r| r.as_str()),
        handoff: reply.is_handoff(),
        handoff_reason: reply.handoff_reason.map(|r| r.as_str()),
        model: reply.model.clone(),
        confidence: reply.confidence,
        truncated: reply.truncated,
        session_mode: reply.session_mode.map(|m| m.as_str()),
        sources: reply.sources.clone(),
        handoff_offered: reply.handoff_offered,
    };
    let mut response = Json(body).into_response();
    if let Some((_, decision)) = &reply.limit {
        rate_limit_headers(&mut response, decision);
    }
    response.extensions_mut().insert(reply_log(&reply));
    Ok(response)
}
