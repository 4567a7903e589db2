//! Liveness, readiness and metrics.

use crate::state::AppState;
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
    let o = &state.orchestrator;
    let store = o.store().health();
    let kill_switch = o.store().kill_switch().await;
    let dropping = o.events_dropping();
    let degraded = store == crate::store::StoreHealth::Degraded || dropping;
    let mut body = json!({
        "status": if degraded { "degraded" } else { "ready" },
        "store": store.as_str(),
        "events": if dropping { "dropping" } else { "ok" },
        "durable": o.durable().backend(),
        "upstream": {"apiKey": o.has_api_key(), "circuit": o.circuit_state().as_str()},
        "killSwitch": kill_switch,
        "tokenizer": if o.tokenizer_loaded() { "loaded" } else { "loading" },
    });
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
    let o = &state.orchestrator;
    state.metrics.circuit_state.set(o.circuit_state().gauge());
    state.metrics.kill_switch.set(i64::from(o.store().kill_switch().await));
    // The per-IP limiter lives in its edge layer, the others in the store.
    state.metrics.limiter_keys.set((o.store().tracked_limiter_keys() + state.ip_limiter.tracked_keys()) as i64);
    state.metrics.kb_documents.set(o.knowledge().document_count() as i64);
    state.metrics.kb_chunks.set(o.knowledge().chunk_count() as i64);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], state.metrics.render()).into_response()
}
