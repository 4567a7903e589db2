//! The HTTP edge: one file per route group. Handlers parse into domain types, call the
//! one service (`FromRef` sub-states) and map the result; no business rules live here.

pub mod access;
pub mod admin;
pub mod chat;
pub mod compat;
pub mod console;
pub mod error;
pub mod extract;
pub mod health;
pub mod knowledge;
pub mod middleware;
pub mod openapi;
mod openapi_constraints;
pub mod operator;
pub mod server;
pub mod sessions;
pub mod sites;
pub mod state;

pub mod suggestions;

pub use state::AppState;

use crate::guard::ip_limit::IpLimit;
use axum::http::{header, HeaderValue};
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};
use axum::Router;
use error::ApiError;
use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::RequestBodyTimeoutLayer;
use tower_http::trace::TraceLayer;

async fn not_found() -> ApiError {
    ApiError::NotFound
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// The per-IP limit's 429: counted like the other limits, in the API's error shape.
fn refuse_ip(state: &AppState) -> crate::guard::ip_limit::Refusal {
    let metrics = state.metrics.clone();
    std::sync::Arc::new(move |decision| {
        let kind = crate::rate::LimitKind::Ip;
        metrics.rate_limited.with_label_values(&[kind.as_str()]).inc();
        axum::response::IntoResponse::into_response(ApiError::RateLimited(kind, decision))
    })
}

pub fn router(state: AppState) -> Router {
    let body_idle = std::time::Duration::from_millis(state.settings.server.header_read_timeout_ms);
    let chat = Router::new()
        .route("/sendChatMessage", post(chat::send_chat_message))
        .route("/v1/chat/completions", post(compat::chat_completions))
        .route("/v1/models", get(compat::list_models))
        // The per-IP limit sits in front of body parsing; authentication runs before it.
        .route_layer(from_fn_with_state(
            IpLimit { limiter: state.ip_limiter.clone(), refuse: refuse_ip(&state) },
            crate::guard::ip_limit::limit_anonymous,
        ))
        .route_layer(access::RequireCaller::new(&state));
    let observe = Router::new()
        .route("/metrics", get(health::metrics))
        .route("/openapi.json", get(openapi::openapi_json))
        .route_layer(from_fn_with_state(state.clone(), access::require_observer));
    // Every one acts on the request's site (`CurrentSite`, set by `require_admin`).
    let admin_per_site = Router::new()
        .route("/admin/kill-switch", get(admin::get_kill_switch).put(admin::put_kill_switch))
        .route("/admin/sessions/{sessionId}", get(admin::get_session).delete(admin::erase_session))
        .route("/admin/sessions/{sessionId}/release", post(admin::release_session))
        .route("/admin/sessions/{sessionId}/handoff", post(admin::take_over_session))
        .route("/admin/sessions/{sessionId}/transcript", get(operator::transcript))
        .route("/admin/report", get(admin::report))
        .route("/admin/overview", get(operator::overview))
        .route("/admin/handoffs", get(operator::handoffs))
        .route("/admin/kb/documents", get(knowledge::list_documents))
        // A document body may be 200,000 characters and an import 5,000 documents: these two take
        // kb.import_limit_bytes instead of the 64 KiB cap.
        .route(
            "/admin/kb/documents/{id}",
            get(knowledge::get_document)
                .put(knowledge::put_document)
                .delete(knowledge::delete_document)
                .layer(axum::extract::DefaultBodyLimit::max(state.settings.kb.import_limit_bytes)),
        )
        .route(
            "/admin/kb/import",
            post(knowledge::import).layer(axum::extract::DefaultBodyLimit::max(state.settings.kb.import_limit_bytes)),
        )
        .route("/admin/kb/search", get(knowledge::search))
        .route("/admin/kb/status", get(knowledge::status))
        .route("/admin/kb/suggestions", get(suggestions::list))
        .route(
            "/admin/kb/suggestions/{id}/approve",
            post(suggestions::approve)
                .layer(axum::extract::DefaultBodyLimit::max(state.settings.kb.import_limit_bytes)),
        )
        .route("/admin/kb/suggestions/{id}/reject", post(suggestions::reject));
    let registry = Router::new()
        .route("/admin/sites", get(sites::list))
        .route("/admin/sites/{siteId}", get(sites::get).put(sites::put).delete(sites::delete))
        .route("/admin/sites/{siteId}/keys", get(sites::list_keys).post(sites::create_key))
        .route("/admin/sites/{siteId}/keys/{keyId}", axum::routing::delete(sites::revoke_key))
        .route_layer(axum::middleware::from_fn(access::require_operator));
    let admin = Router::new()
        .merge(admin_per_site)
        .merge(registry)
        .route_layer(from_fn_with_state(state.clone(), access::require_admin))
        // Nothing /admin answers (transcripts, documents, reports), refusals included, may be kept
        // by a browser or a shared cache.
        .route_layer(SetResponseHeaderLayer::overriding(header::CACHE_CONTROL, HeaderValue::from_static("no-store")));
    let backend = Router::new()
        .route("/sessions/{sessionId}/handoff", post(sessions::handoff))
        .route("/sessions/{sessionId}/release", post(sessions::release))
        .route("/sessions/{sessionId}/messages", get(sessions::messages).post(sessions::agent_message))
        .route_layer(from_fn_with_state(state.clone(), access::require_backend));
    let health = Router::new().route("/healthz", get(health::healthz)).route("/readyz", get(health::readyz));
    Router::new()
        .merge(chat)
        .merge(observe)
        .merge(admin)
        .merge(backend)
        .merge(health)
        .merge(crate::api::console::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(state.settings.server.body_limit_bytes))
        // The edge, outermost first: the request id (a caller's plain one kept, else a UUIDv7) in
        // and out, the access line and metrics, the trace span every log line inside carries,
        // security headers, and the idle limit between body frames (each body also has a deadline
        // as a whole: `read_body`).
        .layer(
            tower::ServiceBuilder::new()
                .map_request(middleware::drop_unplain_request_id)
                .layer(SetRequestIdLayer::new(middleware::REQUEST_ID_HEADER, middleware::MintRequestId))
                .layer(PropagateRequestIdLayer::new(middleware::REQUEST_ID_HEADER))
                .layer(middleware::AccessLog::new(&state))
                // Only the span: the access line is ours, and errors are logged once, at the edge.
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(middleware::request_span)
                        .on_request(())
                        .on_response(())
                        .on_body_chunk(())
                        .on_eos(())
                        .on_failure(()),
                )
                .layer(SetResponseHeaderLayer::overriding(
                    header::X_CONTENT_TYPE_OPTIONS,
                    HeaderValue::from_static("nosniff"),
                ))
                .layer(RequestBodyTimeoutLayer::new(body_idle)),
        )
        .with_state(state)
}
