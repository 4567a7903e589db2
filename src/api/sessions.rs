//! `/sessions/{sessionId}/handoff|release|messages`: the site's backend (caller key) tells
//! velochat that a human agent took over in Wix Chat, what they wrote, or that they handed back.

use super::access::CurrentSite;
use super::error::ApiError;
use super::extract::{whole_number, JsonBody, Path, Query};
use crate::domain::{AgentMessage, SessionId};
use crate::human_loop::{HumanLoop, SessionView};
use crate::sites::Site;
use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use std::sync::Arc;

/// A human agent took over: the bot goes quiet for this session (a `handoff` webhook event).
#[utoipa::path(post, path = "/sessions/{sessionId}/handoff", tag = "sessions",
    params(("sessionId" = String, Path, description = "The session")),
    responses(
        (status = 200, description = "The session, now `human`", body = Object),
        (status = 400, description = "Invalid session id"),
        (status = 401, description = "Missing or invalid caller key"),
        (status = 403, description = "No key configured on a public address"),
        (status = 503, description = "The shared session store failed")
    ), security(("bearer" = [])))]
pub async fn handoff(
    State(human): State<Arc<HumanLoop>>,
    Extension(CurrentSite(site)): Extension<CurrentSite>,
    Path(raw): Path<String>,
) -> Result<Json<SessionView>, ApiError> {
    let id = site_session(&site, &raw)?;
    let view = human.take_over(id.as_str()).await.map_err(unavailable)?;
    Ok(Json(view))
}

/// The agent is done: the bot answers again (a `released` webhook event when a human owned it).
#[utoipa::path(post, path = "/sessions/{sessionId}/release", tag = "sessions",
    params(("sessionId" = String, Path, description = "The session")),
    responses(
        (status = 200, description = "The session, now `bot`", body = Object),
        (status = 400, description = "Invalid session id"),
        (status = 401, description = "Missing or invalid caller key"),
        (status = 403, description = "No key configured on a public address"),
        (status = 404, description = "No state kept for that session"),
        (status = 503, description = "The shared session store failed")
    ), security(("bearer" = [])))]
pub async fn release(
    State(human): State<Arc<HumanLoop>>,
    Extension(CurrentSite(site)): Extension<CurrentSite>,
    Path(raw): Path<String>,
) -> Result<Json<SessionView>, ApiError> {
    let id = site_session(&site, &raw)?;
    let view = human.release(id.as_str(), "released").await.map_err(unavailable)?;
    view.map(Json).ok_or(ApiError::SessionNotFound)
}

/// A message a person from the team sent in the chat: kept in the transcript (and, once the
/// session is released, drafted as a knowledge-base suggestion); the session becomes `human` if it
/// was not (a `handoff` webhook event, as for `/handoff`).
#[utoipa::path(post, path = "/sessions/{sessionId}/messages", tag = "sessions",
    params(("sessionId" = String, Path, description = "The session")),
    request_body(content = Object, description = "`{\"role\": \"agent\", \"text\", \"author\"?}`"),
    responses(
        (status = 202, description = "Recorded; the session, now `human`", body = Object),
        (status = 400, description = "A field is invalid (named in `error.field`)"),
        (status = 401, description = "Missing or invalid caller key"),
        (status = 403, description = "No key configured on a public address"),
        (status = 415, description = "Not application/json"),
        (status = 503, description = "The message could not be kept; retry")
    ), security(("bearer" = [])))]
pub async fn agent_message(
    State(human): State<Arc<HumanLoop>>,
    Extension(CurrentSite(site)): Extension<CurrentSite>,
    Path(raw): Path<String>,
    operator: Option<axum::Extension<super::access::ConsoleOperator>>,
    JsonBody(body): JsonBody<serde_json::Value>,
) -> Result<(StatusCode, Json<SessionView>), ApiError> {
    let id = site_session(&site, &raw)?;
    let mut message = AgentMessage::parse(&body)?;
    // From the console, the author is whoever signed in, not what the page says.
    if let Some(axum::Extension(operator)) = operator {
        message.author = Some(operator.0);
    }
    let view = human.agent_message(id.as_str(), &message).await.map_err(unavailable)?;
    Ok((StatusCode::ACCEPTED, Json(view)))
}

#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessagesQuery {
    pub after: Option<String>,
    pub wait_ms: Option<String>,
}

/// The longest a long poll may wait: a web method's call must end inside Wix's 14 s.
const MAX_WAIT_MS: u64 = 10_000;

/// The session's messages after `after` (visitor, agent, and the bot's during a handoff), waiting up
/// to `waitMs` for a new one: a chat widget of the site's own polls this while a person has the
/// conversation, and goes back to the bot when `sessionMode` is `bot` again.
#[utoipa::path(get, path = "/sessions/{sessionId}/messages", tag = "sessions",
    params(
        ("sessionId" = String, Path, description = "The session"),
        ("after" = Option<String>, Query, description = "The `cursor` of the previous answer; none = from the start"),
        ("waitMs" = Option<u64>, Query, description = "Wait up to this long (0–10000 ms) for a new message"),
    ),
    responses(
        (status = 200, description = "`{messages: [{id, role, text, author?, at}], cursor, sessionMode}`", body = Object),
        (status = 400, description = "`sessionId`, `after` or `waitMs` invalid (named in `error.field`)"),
        (status = 401, description = "Missing or invalid caller key"),
        (status = 403, description = "No key configured on a public address"),
        (status = 503, description = "The store failed; retry")
    ), security(("bearer" = [])))]
pub async fn messages(
    State(human): State<Arc<HumanLoop>>,
    Extension(CurrentSite(site)): Extension<CurrentSite>,
    Path(raw): Path<String>,
    Query(query): Query<MessagesQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = site_session(&site, &raw)?;
    let after: i64 = whole_number(query.after.as_deref(), "after", 0, 0..=i64::MAX)?;
    let wait_ms: u64 = whole_number(query.wait_ms.as_deref(), "waitMs", 0, 0..=MAX_WAIT_MS)?;
    let feed = human
        .messages_after(id.as_str(), after, std::time::Duration::from_millis(wait_ms))
        .await
        .map_err(unavailable)?;
    let cursor = feed.messages.last().map_or(after, |(id, _)| *id);
    let messages: Vec<serde_json::Value> = feed
        .messages
        .into_iter()
        .map(|(id, m)| {
            let mut message = serde_json::json!({"id": id.to_string(), "role": m.role, "text": m.text, "at": crate::domain::rfc3339(m.at_ms)});
            if let Some(author) = m.author {
                message["author"] = author.into();
            }
            message
        })
        .collect();
    Ok(Json(serde_json::json!({"messages": messages, "cursor": cursor.to_string(), "sessionMode": feed.mode.as_str()})))
}

/// The path's `sessionId` as the request's site keeps it (`Site::session_key`).
pub fn site_session(site: &Site, raw: &str) -> Result<SessionId, ApiError> {
    Ok(SessionId::parse(Some(raw), "sessionId")?.within(site.session_prefix()))
}

fn unavailable(error: crate::store::StoreError) -> ApiError {
    ApiError::Unavailable(crate::error_chain::describe(&error))
}
