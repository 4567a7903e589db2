//! The edge middleware: request ids, one access-log line and the request metrics per request, and
//! authentication per route group.

use super::error::{ApiError, ErrorCode};
use crate::guard::{Authenticator, Credential};
use crate::state::AppState;
use crate::telemetry::access_log::{json_line, Pairs, Value};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::future::Either;
use std::convert::Infallible;
use std::future::Ready;
use std::sync::Arc;
use std::time::Instant;
use tracing::Level;

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

/// Every request: its id and context in, then metrics, the `X-Request-Id` header and the one log
/// line out. A tower layer, not `from_fn`: that boxes a future holding the request beside the
/// handler's and boxes the inner route's future again (~1 KiB per message in flight).
#[derive(Clone)]
pub struct Edge {
    state: AppState,
}

impl Edge {
    pub fn new(state: &AppState) -> Self {
        Self { state: state.clone() }
    }
}

impl<S> tower::Layer<S> for Edge {
    type Service = EdgeService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        EdgeService { state: self.state.clone(), inner }
    }
}

#[derive(Clone)]
pub struct EdgeService<S> {
    state: AppState,
    inner: S,
}

impl<S> tower::Service<Request> for EdgeService<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        let started = Instant::now();
        let id = request_id(&request);
        let route = route_label(request.extensions().get::<MatchedPath>().map(MatchedPath::as_str));
        let method = request.method().clone();
        let authorization = request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        let credential = self.state.auth.identify(authorization);
        request.extensions_mut().insert(RequestContext { request_id: id.clone(), started, credential });
        let metrics = self.state.metrics.clone();
        // A combinator over the inner future: an `async` block would hold that future twice.
        Box::pin(futures_util::FutureExt::map(self.inner.call(request), move |answered| {
            let Ok(response) = answered;
            Ok(finish(response, &metrics, RequestLine { id, route, method, started }))
        }))
    }
}

struct RequestLine {
    id: String,
    route: &'static str,
    method: axum::http::Method,
    started: Instant,
}

fn finish(mut response: Response, metrics: &crate::telemetry::Metrics, line: RequestLine) -> Response {
    let RequestLine { id, route, method, started } = line;
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    metrics.record_request(route, status, elapsed.as_secs_f64());
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    let error = response.extensions().get::<ErrorCode>().map(|c| c.0);
    let latency_ms = (elapsed.as_secs_f64() * 1_000_000.0).round() / 1000.0;
    let probe = route == "healthz" || route == "readyz" || route == "metrics";
    let reply = response.extensions().get::<ReplyLog>();
    // Probes log at debug unless they carry a reply (they never do); checked before any formatting.
    let level = if probe && reply.is_none() { Level::DEBUG } else { Level::INFO };
    let wanted = if level == Level::DEBUG { tracing::enabled!(Level::DEBUG) } else { tracing::enabled!(Level::INFO) };
    if wanted {
        let reply_u64 = |field: fn(&ReplyLog) -> u64| reply.map_or(Value::None, |r| Value::U64(field(r)));
        // Field names match the API's camelCase (requestId, latencyMs, ...); absent ones are left out.
        log_request(
            level,
            &[
                ("requestId", Value::Str(&id)),
                ("route", Value::Str(route)),
                ("method", Value::Str(method.as_str())),
                ("status", Value::U64(u64::from(status))),
                ("latencyMs", Value::F64(latency_ms)),
                ("source", reply.map(|r| r.source).into()),
                ("fallbackReason", reply.and_then(|r| r.fallback_reason).into()),
                ("handoffReason", reply.and_then(|r| r.handoff_reason).into()),
                ("intent", reply.and_then(|r| r.intent.as_deref()).into()),
                ("upstreamMs", reply_u64(|r| r.upstream_ms)),
                ("attempts", reply_u64(|r| u64::from(r.attempts))),
                ("promptTokens", reply_u64(|r| r.prompt_tokens)),
                ("completionTokens", reply_u64(|r| r.completion_tokens)),
                ("cachedTokens", reply_u64(|r| r.cached_tokens)),
                // A reply carries its own outcome; probes have none to report.
                ("error", if reply.is_some() || probe { Value::None } else { error.into() }),
            ],
        );
    }
    response
}

/// The access-log line: queued as finished JSON when the log format allows (see `access_log`),
/// through `tracing` otherwise.
fn log_request(level: Level, fields: &[(&'static str, Value<'_>)]) {
    if crate::telemetry::direct_json() {
        crate::telemetry::enqueue_with(|queue| json_line(queue, level.as_str(), "request", module_path!(), fields));
    } else if level == Level::DEBUG {
        tracing::debug!("request {}", Pairs(fields));
    } else {
        tracing::info!("request {}", Pairs(fields));
    }
}

fn context(request: &Request) -> Credential {
    request.extensions().get::<RequestContext>().map(|c| c.credential).unwrap_or(Credential::Missing)
}

/// Chat routes: a caller key when keys are configured; anonymous otherwise (loopback, or allowed).
/// A tower layer, not `from_fn`: that boxes a future holding the request and the state, and boxes
/// the inner route's again, ~0.9 KiB per message in flight; this adds nothing to the route's future
/// but a ready refusal.
#[derive(Clone)]
pub struct RequireCaller {
    auth: Arc<Authenticator>,
}

impl RequireCaller {
    pub fn new(state: &AppState) -> Self {
        Self { auth: state.auth.clone() }
    }
}

impl<S> tower::Layer<S> for RequireCaller {
    type Service = RequireCallerService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireCallerService { auth: self.auth.clone(), inner }
    }
}

#[derive(Clone)]
pub struct RequireCallerService<S> {
    auth: Arc<Authenticator>,
    inner: S,
}

impl<S> tower::Service<Request> for RequireCallerService<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<Ready<Result<Response, Infallible>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        if self.auth.has_caller_keys() && !matches!(context(&request), Credential::Caller(_)) {
            return Either::Left(std::future::ready(Ok(ApiError::Unauthorized.into_response())));
        }
        Either::Right(self.inner.call(request))
    }
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
