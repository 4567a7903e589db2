//! The edge middleware: request ids, one access-log line and the request metrics per request, and
//! authentication per route group.

use super::error::{ApiError, ErrorCode};
use crate::guard::Credential;
use crate::state::AppState;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::time::Instant;

/// Set on every request by `edge`.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub request_id: String,
    pub started: Instant,
    pub credential: Credential,
}

/// Facts a handler wants in the access-log line (never visitor text).
#[derive(Debug, Clone, Default)]
pub struct ReplyLog {
    pub source: &'static str,
    pub fallback_reason: Option<&'static str>,
    pub handoff_reason: Option<&'static str>,
    pub intent: Option<String>,
    pub upstream_ms: u64,
    pub attempts: u32,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cached_tokens: u64,
}

fn route_label(path: Option<&str>) -> &'static str {
    match path {
        Some("/sendChatMessage") => "send_chat_message",
        Some("/v1/chat/completions") => "chat_completions",
        Some("/v1/models") => "models",
        Some("/healthz") => "healthz",
        Some("/readyz") => "readyz",
        Some("/metrics") => "metrics",
        Some("/openapi.json") => "openapi",
        Some(p) if p.starts_with("/admin") => "admin",
        Some(p) if p.starts_with("/sessions") => "sessions",
        Some(_) => "other",
        None => "not_found",
    }
}

/// A caller's `X-Request-Id` is kept when it is short and plain; otherwise we make one.
fn request_id(request: &Request) -> String {
    request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        })
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string())
}

const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Not an `async fn`: the request moves straight into the handler's future instead of also
/// staying in this one's state while the model is asked.
pub fn edge(
    State(state): State<AppState>,
    mut request: Request,
    mut next: Next,
) -> impl std::future::Future<Output = Response> + Send {
    let started = Instant::now();
    let id = request_id(&request);
    let route = route_label(request.extensions().get::<MatchedPath>().map(MatchedPath::as_str));
    let method = request.method().clone();
    let authorization = request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let credential = state.auth.identify(authorization);
    request.extensions_mut().insert(RequestContext { request_id: id.clone(), started, credential });
    let metrics = state.metrics.clone();
    // The inner service's own future, not `Next::run`'s, which keeps a second copy of the request.
    let handled = tower::Service::call(&mut next, request);
    async move {
        let Ok(mut response) = handled.await;
        let status = response.status().as_u16();
        let elapsed = started.elapsed();
        metrics.record_request(route, status, elapsed.as_secs_f64());
        if let Ok(value) = HeaderValue::from_str(&id) {
            response.headers_mut().insert(REQUEST_ID_HEADER, value);
        }
        let error = response.extensions().get::<ErrorCode>().map(|c| c.0);
        let latency_ms = (elapsed.as_secs_f64() * 1_000_000.0).round() / 1000.0;
        match response.extensions().get::<ReplyLog>() {
            // Field names match the API's camelCase (requestId, latencyMs, ...).
            Some(r) => tracing::info!(
                requestId = %id, route, method = %method, status, latencyMs = latency_ms, source = r.source,
                fallbackReason = r.fallback_reason, handoffReason = r.handoff_reason, intent = r.intent.as_deref(),
                upstreamMs = r.upstream_ms, attempts = r.attempts, promptTokens = r.prompt_tokens,
                completionTokens = r.completion_tokens, cachedTokens = r.cached_tokens, "request"
            ),
            None if route == "healthz" || route == "readyz" || route == "metrics" => tracing::debug!(
                requestId = %id, route, method = %method, status, latencyMs = latency_ms, "request"
            ),
            None => {
                tracing::info!(requestId = %id, route, method = %method, status, latencyMs = latency_ms, error, "request")
            }
        }
        response
    }
}

fn context(request: &Request) -> Credential {
    request.extensions().get::<RequestContext>().map(|c| c.credential).unwrap_or(Credential::Missing)
}

/// Chat routes: a caller key when keys are configured; anonymous otherwise (loopback, or allowed).
/// Not an `async fn`: its future would hold the request and the state beside the handler's for
/// the whole call (~1 KiB per message in flight); this one is the handler's, or a ready refusal.
pub fn require_caller(
    State(state): State<AppState>,
    request: Request,
    mut next: Next,
) -> futures_util::future::Either<std::future::Ready<Response>, impl std::future::Future<Output = Response>> {
    use futures_util::future::Either;
    if state.auth.has_caller_keys() && !matches!(context(&request), Credential::Caller(_)) {
        return Either::Left(std::future::ready(ApiError::Unauthorized.into_response()));
    }
    Either::Right(futures_util::FutureExt::map(tower::Service::call(&mut next, request), |answered| {
        let Ok(response) = answered;
        response
    }))
}

/// /metrics and /openapi.json: a caller or the admin key; anonymous only on loopback with no keys.
pub async fn require_observer(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let any_key = state.auth.has_caller_keys() || state.auth.has_admin_key();
    match context(&request) {
        Credential::Caller(_) | Credential::Admin => next.run(request).await,
        _ if !any_key && !state.public_listener => next.run(request).await,
        _ if !any_key => ApiError::Disabled(
            "not served anonymously on a public address: set VELOCHAT_ADMIN_KEY or VELOCHAT_API_KEYS",
        )
        .into_response(),
        _ => ApiError::Unauthorized.into_response(),
    }
}

/// /admin/*: the admin key only; disabled without one.
pub async fn require_admin(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if !state.auth.has_admin_key() {
        return ApiError::Disabled("admin routes are disabled: set VELOCHAT_ADMIN_KEY").into_response();
    }
    match context(&request) {
        Credential::Admin => next.run(request).await,
        _ => ApiError::Unauthorized.into_response(),
    }
}

/// Session takeover/release for the site's backend (the Wix Chat handler): a caller or the admin
/// key; without any key configured, loopback only.
pub async fn require_backend(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let any_key = state.auth.has_caller_keys() || state.auth.has_admin_key();
    match context(&request) {
        Credential::Caller(_) | Credential::Admin => next.run(request).await,
        _ if !any_key && !state.public_listener => next.run(request).await,
        _ if !any_key => {
            ApiError::Disabled("session control needs VELOCHAT_API_KEYS or VELOCHAT_ADMIN_KEY").into_response()
        }
        _ => ApiError::Unauthorized.into_response(),
    }
}
