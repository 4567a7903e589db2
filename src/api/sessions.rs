//! `/sessions/{sessionId}/handoff|release`: the site's backend (caller key) tells velochat that a
//! human agent took over in Wix Chat, or handed back.

use super::error::ApiError;
use crate::domain::SessionId;
use crate::orchestrator::SessionView;
use crate::state::AppState;
use axum::extract::{Path, State};
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

fn unavailable(error: crate::store::StoreError) -> ApiError {
    ApiError::Unavailable(crate::error_chain::describe(&error))
}
