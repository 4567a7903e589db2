//! Our own edge layers beside tower-http's: the request id's rules (kept when plain, else a
//! UUIDv7), and one access-log line and the request metrics per request. Authentication per route
//! group is in `access` (re-exported here).

use super::error::{ApiError, ErrorCode};
use crate::api::state::AppState;
use crate::guard::Credential;
use crate::sites::Site;
use axum::extract::{MatchedPath, Request};
use axum::http::{header, HeaderName, HeaderValue, Version};
use axum::response::{IntoResponse, Response};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;
use tower_http::request_id::{MakeRequestId, RequestId};
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

/// A caller's `X-Request-Id` is kept when it is short and plain (it reaches log lines).
fn plain_request_id(value: &HeaderValue) -> bool {
    let v = value.as_bytes();
    !v.is_empty() && v.len() <= 64 && v.iter().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(b))
}

/// Drops a caller's request id that is not plain, so `SetRequestId` makes one instead.
pub fn drop_unplain_request_id(mut request: Request) -> Request {
    if request.headers().get(REQUEST_ID_HEADER).is_some_and(|v| !plain_request_id(v)) {
        request.headers_mut().remove(REQUEST_ID_HEADER);
    }
    request
}

/// New request ids are UUIDv7: they sort by time in logs and the event store.
#[derive(Clone, Copy, Default)]
pub struct MintRequestId;

impl MakeRequestId for MintRequestId {
    fn make_request_id<B>(&mut self, _: &http::Request<B>) -> Option<RequestId> {
        HeaderValue::from_str(&uuid::Uuid::now_v7().to_string()).ok().map(RequestId::new)
    }
}

/// Names the site an operator's request acts on (`access::require_admin`).
pub const SITE_HEADER: &str = "x-velochat-site";

pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

fn id_of<B>(request: &http::Request<B>) -> String {
    let id = request.extensions().get::<RequestId>().map(RequestId::header_value);
    id.or_else(|| request.headers().get(REQUEST_ID_HEADER)).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned()
}

/// The trace span every line logged while a request is handled carries (`TraceLayer`).
pub fn request_span(request: &Request) -> tracing::Span {
    tracing::info_span!("request", requestId = %id_of(request))
}

/// Every request: who is calling and its context in, then the request metrics and the one access
/// line out (outside the trace span: the line carries the id itself).
#[derive(Clone)]
pub struct AccessLog {
    state: AppState,
}

impl AccessLog {
    pub fn new(state: &AppState) -> Self {
        Self { state: state.clone() }
    }
}

impl<S> tower::Layer<S> for AccessLog {
    type Service = AccessLogService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AccessLogService { state: self.state.clone(), inner }
    }
}

#[derive(Clone)]
pub struct AccessLogService<S> {
    state: AppState,
    inner: S,
}

impl<S, B> tower::Service<Request> for AccessLogService<S>
where
    S: tower::Service<Request, Response = http::Response<B>, Error = Infallible>,
    S::Future: Send + 'static,
    B: axum::body::HttpBody<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        let started = Instant::now();
        let id = id_of(&request);
        if request.version() == Version::HTTP_11 && request.headers().get_all(header::HOST).iter().count() != 1 {
            // The rest of the connection cannot be trusted to be framed as its sender meant.
            let mut refused = ApiError::InvalidHost.into_response();
            refused.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            let line = RequestLine { id, route: "other", method: request.method().clone(), started, site: None };
            return Box::pin(std::future::ready(Ok(finish(refused, &self.state.metrics, line))));
        }
        // A chunked request may have come with a Content-Length that hyper dropped (RFC 9112 §6.3:
        // such framing is suspect): answer it, then close the connection.
        let close_after =
            request.version() <= Version::HTTP_11 && request.headers().contains_key(header::TRANSFER_ENCODING);
        let route = route_label(request.extensions().get::<MatchedPath>().map(MatchedPath::as_str));
        let method = request.method().clone();
        let authorization = request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        let credential = self.state.auth.identify(authorization);
        // The site the request is counted under: its key's, or the one the operator names.
        let site = match &credential {
            Credential::Site(_, site) => Some(site.clone()),
            Credential::Admin => request
                .headers()
                .get(SITE_HEADER)
                .and_then(|v| v.to_str().ok())
                .and_then(|id| self.state.sites.site(id)),
            _ => None,
        };
        request.extensions_mut().insert(credential.clone());
        request.extensions_mut().insert(RequestContext { request_id: id.clone(), started, credential });
        let metrics = self.state.metrics.clone();
        Box::pin(futures_util::FutureExt::map(self.inner.call(request), move |answered| {
            let Ok(response) = answered;
            let mut response = response.map(axum::body::Body::new);
            if close_after {
                response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            Ok(finish(response, &metrics, RequestLine { id, route, method, started, site }))
        }))
    }
}

struct RequestLine {
    id: String,
    route: &'static str,
    method: axum::http::Method,
    started: Instant,
    site: Option<Arc<Site>>,
}

fn finish(response: Response, metrics: &crate::telemetry::Metrics, line: RequestLine) -> Response {
    let RequestLine { id, route, method, started, site } = line;
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    let site = site.as_ref().map_or(crate::knowledge::SITE, |s| s.id.as_str());
    metrics.record_request(site, route, status, elapsed.as_secs_f64());
    let error = response.extensions().get::<ErrorCode>().map(|c| c.0);
    let latency_ms = (elapsed.as_secs_f64() * 1_000_000.0).round() / 1000.0;
    let probe = route == "healthz" || route == "readyz" || route == "metrics";
    let reply = response.extensions().get::<ReplyLog>();
    // Probes log at debug unless they carry a reply (they never do); checked before any formatting.
    let level = if probe && reply.is_none() { Level::DEBUG } else { Level::INFO };
    let wanted = if level == Level::DEBUG { tracing::enabled!(Level::DEBUG) } else { tracing::enabled!(Level::INFO) };
    if wanted {
        // A reply carries its own outcome; probes have none to report.
        let error = if reply.is_some() || probe { None } else { error };
        log_request(level, &AccessLine { id: &id, route, method: method.as_str(), status, latency_ms, reply, error });
    }
    response
}

struct AccessLine<'a> {
    id: &'a str,
    route: &'static str,
    method: &'a str,
    status: u16,
    latency_ms: f64,
    reply: Option<&'a ReplyLog>,
    error: Option<&'static str>,
}

/// The access line. Field names match the API's camelCase (requestId, latencyMs, ...); `None`
/// fields are left out by tracing.
fn log_request(level: Level, line: &AccessLine<'_>) {
    // Strings as Display: JSON gets the same strings, the pretty format no quotes.
    let AccessLine { id, route, method, status, latency_ms, reply, error } = *line;
    macro_rules! access_line {
        ($level:expr) => {
            tracing::event!(
                $level,
                requestId = %id,
                route = %route,
                method = %method,
                status,
                latencyMs = latency_ms,
                source = reply.map(|r| tracing::field::display(r.source)),
                fallbackReason = reply.and_then(|r| r.fallback_reason).map(tracing::field::display),
                handoffReason = reply.and_then(|r| r.handoff_reason).map(tracing::field::display),
                intent = reply.and_then(|r| r.intent.as_deref()).map(tracing::field::display),
                upstreamMs = reply.map(|r| r.upstream_ms),
                attempts = reply.map(|r| r.attempts),
                promptTokens = reply.map(|r| r.prompt_tokens),
                completionTokens = reply.map(|r| r.completion_tokens),
                cachedTokens = reply.map(|r| r.cached_tokens),
                error = error.map(tracing::field::display),
                "request"
            )
        };
    }
    // `event!` needs a constant level.
    if level == Level::DEBUG {
        access_line!(Level::DEBUG);
    } else {
        access_line!(Level::INFO);
    }
}
