//! `POST /v1/chat/completions` and `GET /v1/models`: OpenAI's own shapes, so the official SDKs and
//! the seed's Velo snippet work by changing one URL, behind the same guards as /sendChatMessage.

mod reply;
pub mod stream;

use crate::api::access::CurrentSite;
use crate::api::chat::{caller, deadline, reply_log};
use crate::api::error::{rate_limit_headers, ApiError};
use crate::api::extract::{JsonBody, Peer};
use crate::api::middleware::RequestContext;
use crate::api::state::AppState;
use crate::chat::{ChatInput, ModelOverrides, Reply, Route};
use crate::config::CompatSystemPrompt;
use crate::domain::{InvalidField, RawTurn, SessionId, TypedContext, UserText};
use crate::sites::Site;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use reply::{completion_id, fingerprint, usage_json, velochat_fields, UsageBody, VelochatFields};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// Sampling options passed through to the upstream as given.
const PASSTHROUGH: [&str; 8] =
    ["top_p", "stop", "seed", "presence_penalty", "frequency_penalty", "logit_bias", "logprobs", "top_logprobs"];

#[derive(Debug, Deserialize)]
pub struct CompatMessage {
    pub role: Option<String>,
    pub content: Option<Value>,
}

#[derive(Debug, Deserialize)]
pub struct StreamOptionsIn {
    pub include_usage: Option<bool>,
}

#[derive(Debug, Deserialize)]
pub struct ChatCompletionsRequest {
    pub model: Option<String>,
    pub messages: Option<Vec<CompatMessage>>,
    #[serde(default, deserialize_with = "whole_number")]
    pub max_tokens: Option<u32>,
    #[serde(default, deserialize_with = "whole_number")]
    pub max_completion_tokens: Option<u32>,
    pub temperature: Option<f32>,
    pub stream: Option<bool>,
    pub stream_options: Option<StreamOptionsIn>,
    pub response_format: Option<Value>,
    pub tools: Option<Value>,
    pub functions: Option<Value>,
    pub tool_choice: Option<Value>,
    pub function_call: Option<Value>,
    #[serde(default, deserialize_with = "whole_number")]
    pub n: Option<u32>,
    pub user: Option<String>,
    pub safety_identifier: Option<String>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// A token count: JSON has one number type, so `300.0` is 300 (as JSON Schema's `integer` says);
/// a fraction, a negative or a number past u32 is refused.
fn whole_number<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<u32>, D::Error> {
    let Some(value) = Option::<f64>::deserialize(deserializer)? else {
        return Ok(None);
    };
    if value.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&value) {
        Ok(Some(value as u32))
    } else {
        Err(serde::de::Error::custom(format!("expected a whole number from 0 to {}, found {value}", u32::MAX)))
    }
}

/// The text of `messages[index]`: a string (moved, not copied), or the text parts of a content array.
fn text_of(content: Option<Value>, index: usize) -> Result<String, ApiError> {
    let field = || format!("messages[{index}].content");
    match content {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s),
        Some(Value::Array(parts)) => {
            let mut text = String::new();
            for part in parts {
                match (part.get("type").and_then(Value::as_str), part.get("text").and_then(Value::as_str)) {
                    (Some("text"), Some(t)) => text.push_str(t),
                    _ => {
                        let field = field();
                        let message = format!("`{field}`: only text content parts are supported");
                        return Err(ApiError::Unsupported(field, message));
                    }
                }
            }
            Ok(text)
        }
        Some(_) => {
            let field = field();
            let message = format!("`{field}` must be a string or an array of text parts");
            Err(ApiError::Invalid(InvalidField::new(field, "invalid_field", message)))
        }
    }
}

pub struct CompatRequest {
    pub input: ChatInput,
    pub stream: bool,
    pub include_usage: bool,
    pub model: String,
}

/// The session key: `X-Session-Id`, else `safety_identifier`, else `user` (ids that do not fit the
/// session alphabet are hashed). None: a stateless request.
fn session_key(
    state: &AppState,
    headers: &HeaderMap,
    body: &ChatCompletionsRequest,
) -> Result<Option<SessionId>, ApiError> {
    if let Some(raw) = headers.get("x-session-id") {
        return Ok(Some(SessionId::parse(Some(raw.to_str().unwrap_or("")), "X-Session-Id")?));
    }
    let Some(raw) = body.safety_identifier.as_deref().or(body.user.as_deref()).filter(|s| !s.trim().is_empty()) else {
        return Ok(None);
    };
    Ok(Some(SessionId::parse(Some(raw), "user").unwrap_or_else(|_| {
        let hashed = crate::guard::hashed_id(state.settings.privacy.hash_salt.expose(), "compat-session", raw);
        SessionId::parse(Some(&format!("sid-{hashed}")), "user")
            .unwrap_or_else(|_| unreachable!("hex is in the alphabet"))
    })))
}

pub fn parse_request(
    state: &AppState,
    ctx: &RequestContext,
    site: Arc<Site>,
    headers: &HeaderMap,
    peer: Peer,
    mut body: ChatCompletionsRequest,
) -> Result<CompatRequest, ApiError> {
    let o = &state.settings.openai;
    for (field, value) in [
        ("tools", &body.tools),
        ("functions", &body.functions),
        ("tool_choice", &body.tool_choice),
        ("function_call", &body.function_call),
    ] {
        if value.as_ref().is_some_and(|v| !v.is_null()) {
            return Err(ApiError::Unsupported(field.into(), format!("`{field}` is not supported")));
        }
    }
    if body.n.is_some_and(|n| n > 1) {
        return Err(ApiError::Unsupported("n".into(), "`n` greater than 1 is not supported".into()));
    }
    let model = match body.model.as_deref() {
        None | Some("") => site.settings.model.clone().unwrap_or_else(|| o.model.clone()),
        Some(m) if o.allowed_models().iter().any(|a| a == m) => m.to_owned(),
        Some(m) => {
            return Err(ApiError::Invalid(InvalidField::new(
                "model",
                "invalid_field",
                format!("`model`: `{m}` is not one of the allowed models"),
            )));
        }
    };
    let mut messages = body.messages.take().unwrap_or_default();
    if messages.len() > state.settings.history.max_entries + 2 {
        let message = format!("`messages` must have at most {} entries", state.settings.history.max_entries + 2);
        return Err(ApiError::Invalid(InvalidField::new("messages", "too_many_entries", message)));
    }
    // The question is the newest user message; anything after it (an assistant prefill, a tool
    // result) has nothing to answer and is dropped.
    let Some(last) = messages.iter().rposition(|m| m.role.as_deref() == Some("user")) else {
        let refusal = if messages.is_empty() {
            InvalidField::missing("messages")
        } else {
            InvalidField::new("messages", "invalid_field", "`messages` must contain a message with role `user`")
        };
        return Err(ApiError::Invalid(refusal));
    };
    messages.truncate(last + 1);
    let Some(latest) = messages.pop() else {
        return Err(ApiError::Invalid(InvalidField::missing("messages")));
    };
    let user_text = UserText::parse(Some(&text_of(latest.content, last)?), &format!("messages[{last}].content"), 4000)?;
    let mut system_prompt = None;
    let mut history = Vec::with_capacity(last);
    for (index, message) in messages.into_iter().enumerate() {
        let is_system = message.role.as_deref() == Some("system");
        let content = text_of(message.content, index)?;
        if index == 0 && is_system {
            if o.compat_system_prompt == CompatSystemPrompt::Keep && !content.trim().is_empty() {
                system_prompt = Some(content);
            }
            continue;
        }
        // Later system/developer/tool messages are dropped (and counted) by compaction.
        history.push(RawTurn { role: message.role, content: Some(content), signature: None });
    }
    let session = session_key(state, headers, &body)?.map(|id| id.within(site.session_prefix()));
    let passthrough: Map<String, Value> =
        body.other.into_iter().filter(|(k, v)| PASSTHROUGH.contains(&k.as_str()) && !v.is_null()).collect();
    let cap = o.compat_max_tokens;
    let input = ChatInput {
        request_id: ctx.request_id.clone(),
        route: Route::ChatCompletions,
        session,
        user_text,
        history,
        verify_history: false,
        context: TypedContext::default(),
        caller: caller(ctx, headers, peer)?,
        deadline: deadline(state, ctx, headers)?,
        overrides: ModelOverrides {
            model: Some(model.clone()),
            max_tokens: body.max_completion_tokens.or(body.max_tokens).map(|t| t.clamp(1, cap)),
            temperature: body.temperature.filter(|t| (0.0..=2.0).contains(t)),
            system_prompt,
            response_format: body.response_format.filter(|v| !v.is_null()),
            passthrough: (!passthrough.is_empty()).then_some(passthrough),
        },
        site,
    };
    Ok(CompatRequest {
        input,
        stream: body.stream.unwrap_or(false),
        include_usage: body.stream_options.and_then(|s| s.include_usage).unwrap_or(false),
        model,
    })
}

/// A `chat.completion`, serialised straight from the reply (a `json!` tree cost ~40 allocations).
#[derive(Serialize)]
struct CompletionBody<'a> {
    id: String,
    object: &'static str,
    created: i64,
    model: &'a str,
    choices: [Choice<'a>; 1],
    usage: UsageBody,
    system_fingerprint: Option<&'static str>,
    velochat: VelochatFields<'a>,
}

#[derive(Serialize)]
struct Choice<'a> {
    index: u32,
    message: AssistantMessage<'a>,
    finish_reason: &'static str,
    logprobs: Option<()>,
}

#[derive(Serialize)]
struct AssistantMessage<'a> {
    role: &'static str,
    content: &'a str,
    refusal: Option<()>,
}

fn completion_body<'a>(reply: &'a Reply, model: &'a str, request_id: &'a str) -> CompletionBody<'a> {
    CompletionBody {
        id: completion_id(reply, request_id),
        object: "chat.completion",
        created: chrono::Utc::now().timestamp(),
        model: reply.model.as_deref().unwrap_or(model),
        choices: [Choice {
            index: 0,
            message: AssistantMessage { role: "assistant", content: &reply.text, refusal: None },
            finish_reason: if reply.truncated { "length" } else { "stop" },
            logprobs: None,
        }],
        usage: usage_json(reply),
        system_fingerprint: fingerprint(reply),
        velochat: velochat_fields(reply, request_id),
    }
}

/// OpenAI-compatible chat completion (plain or `stream: true`).
#[utoipa::path(
    post, path = "/v1/chat/completions", tag = "openai-compatible",
    request_body(content = Object, description = "OpenAI chat completions request"),
    params(
        ("X-Session-Id" = Option<String>, Header, description = "Session key (else safety_identifier, else user)"),
        ("X-Velochat-Deadline-Ms" = Option<u64>, Header, description = "Lower the request's time budget (ms)."),
    ),
    responses(
        (status = 200, description = "`chat.completion`, or Server-Sent Events of `chat.completion.chunk` when streaming", content(
            (Object = "application/json"),
            (stream::StreamEvent = "text/event-stream")
        )),
        (status = 400, description = "Invalid field, unsupported option (tools, functions, n > 1), model not allowed"),
        (status = 401, description = "Missing or invalid caller key"),
        (status = 405, description = "Wrong method"),
        (status = 413, description = "Body over the limit"),
        (status = 415, description = "Not application/json"),
        (status = 429, description = "A rate limit is exhausted"),
    ),
    security(("bearer" = []), ())
)]
pub async fn chat_completions(
    State(state): State<AppState>,
    Extension(ctx): Extension<RequestContext>,
    Extension(CurrentSite(site)): Extension<CurrentSite>,
    peer: Peer,
    headers: HeaderMap,
    JsonBody(body): JsonBody<ChatCompletionsRequest>,
) -> Result<Response, ApiError> {
    let request = parse_request(&state, &ctx, site, &headers, peer, body)?;
    if request.stream {
        return stream::respond(state.chat.clone(), ctx, request).await;
    }
    let CompatRequest { input, model, .. } = request;
    let reply = state.chat.chat(input).await?;
    let mut response = Json(completion_body(&reply, &model, &ctx.request_id)).into_response();
    if let Some((_, decision)) = &reply.limit {
        rate_limit_headers(&mut response, decision);
    }
    response.extensions_mut().insert(reply_log(&reply));
    Ok(response)
}

/// The models this deployment accepts.
#[utoipa::path(get, path = "/v1/models", tag = "openai-compatible", responses(
    (status = 200, description = "OpenAI `list` of models", body = Object),
    (status = 401, description = "Missing or invalid caller key")
), security(("bearer" = []), ()))]
pub async fn list_models(State(state): State<AppState>) -> Json<Value> {
    let data: Vec<Value> = state
        .settings
        .openai
        .allowed_models()
        .into_iter()
        .map(|id| json!({"id": id, "object": "model", "created": 0, "owned_by": "velochat"}))
        .collect();
    Json(json!({"object": "list", "data": data}))
}
