//! Liveness, readiness and metrics.

use crate::api::state::AppState;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// The process is alive.
#[utoipa::path(get, path = "/healthz", tag = "ops", responses((status = 200, description = "Alive")))]
pub async fn healthz() -> Response {
    Json(json!({"status": "ok"})).into_response()
}

/// Ready for traffic: 503 from the moment shutdown begins. A degraded shared store (Redis down) or
/// events dropped within the last minute are reported as `degraded` but still 200: replies go on.
#[utoipa::path(get, path = "/readyz", tag = "ops", responses(
    (status = 200, description = "Ready (status `ready` or `degraded`)"),
    (status = 503, description = "Shutting down")
))]
pub async fn readyz(State(state): State<AppState>) -> Response {
    let mut body = state.chat.readiness().await.body;
    if !state.lifecycle.is_ready() {
        body["status"] = json!("shutting_down");
        return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    }
    Json(body).into_response()
}

/// Prometheus text format.
#[utoipa::path(get, path = "/metrics", tag = "ops", responses(
    (status = 200, description = "Prometheus metrics", content_type = "text/plain"),
    (status = 401, description = "Missing or invalid key"),
    (status = 403, description = "Not served anonymously on a public address")
), security(("bearer" = [])))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    // The per-IP limiter lives in its edge layer, the others in the store.
    state.chat.refresh_gauges(state.ip_limiter.tracked_keys()).await;
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], state.metrics.render()).into_response()
}
