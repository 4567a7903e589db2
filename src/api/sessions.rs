//! `/sessions/{sessionId}/handoff|release|messages`: the site's backend (caller key) tells
//! velochat that a human agent took over in Wix Chat, what they wrote, or that they handed back.

use super::error::ApiError;
use super::extract::JsonBody;
use super::extract::Path;
use crate::domain::{AgentMessage, SessionId};
use crate::orchestrator::SessionView;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;

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
pub async fn handoff(State(state): State<AppState>, Path(raw): Path<String>) -> Result<Json<SessionView>, ApiError> {
    let id = SessionId::parse(Some(&raw), "sessionId")?;
    let view = state.orchestrator.take_over(id.as_str()).await.map_err(unavailable)?;
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
pub async fn release(State(state): State<AppState>, Path(raw): Path<String>) -> Result<Json<SessionView>, ApiError> {
    let id = SessionId::parse(Some(&raw), "sessionId")?;
    let view = state.orchestrator.release(id.as_str(), "released").await.map_err(unavailable)?;
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
    State(state): State<AppState>,
    Path(raw): Path<String>,
    JsonBody(body): JsonBody<serde_json::Value>,
) -> Result<(StatusCode, Json<SessionView>), ApiError> {
    let id = SessionId::parse(Some(&raw), "sessionId")?;
    let message = AgentMessage::parse(&body)?;
    let view = state.orchestrator.agent_message(id.as_str(), &message).await.map_err(unavailable)?;
    Ok((StatusCode::ACCEPTED, Json(view)))
}

fn unavailable(error: crate::store::StoreError) -> ApiError {
    ApiError::Unavailable(crate::error_chain::describe(&error))
}
