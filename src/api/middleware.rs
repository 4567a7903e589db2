//! Our own edge layers beside tower-http's: the request id's rules (kept when plain, else a
//! UUIDv7), one access-log line and the request metrics per request, and authentication per route
//! group.

use super::error::{ApiError, ErrorCode};
use crate::api::state::AppState;
use crate::domain::SiteId;
use crate::guard::{Authenticator, Credential};
use crate::sites::{Site, SiteRegistry, SiteRole};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderName, HeaderValue, Version};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::future::Either;
use std::convert::Infallible;
use std::future::Ready;
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

fn context(request: &Request) -> Credential {
    request.extensions().get::<RequestContext>().map(|c| c.credential.clone()).unwrap_or(Credential::Missing)
}

/// The site a request acts in, set by the route group's authentication before any handler runs.
#[derive(Debug, Clone)]
pub struct CurrentSite(pub Arc<Site>);

pub const SITE_HEADER: &str = "x-velochat-site";

/// The site an operator (or a site's own admin key) names with `X-Velochat-Site`; absent = the
/// key's own site (`default` for the operator).
fn named_site(state: &AppState, request: &Request) -> Result<Option<Arc<Site>>, ApiError> {
    let Some(raw) = request.headers().get(SITE_HEADER) else {
        return Ok(None);
    };
    let id = SiteId::parse(raw.to_str().unwrap_or(""), "X-Velochat-Site")?;
    state.sites.site(id.as_str()).map(Some).ok_or(ApiError::SiteNotFound)
}

/// Chat routes: a caller key when keys are required (a configured caller key, or any site besides
/// `default`); anonymous otherwise. The request acts in the key's site. A tower layer whose
/// refusal is a ready future.
#[derive(Clone)]
pub struct RequireCaller {
    auth: Arc<Authenticator>,
    sites: Arc<SiteRegistry>,
}

impl RequireCaller {
    pub fn new(state: &AppState) -> Self {
        Self { auth: state.auth.clone(), sites: state.sites.clone() }
    }
}

impl<S> tower::Layer<S> for RequireCaller {
    type Service = RequireCallerService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireCallerService { auth: self.auth.clone(), sites: self.sites.clone(), inner }
    }
}

#[derive(Clone)]
pub struct RequireCallerService<S> {
    auth: Arc<Authenticator>,
    sites: Arc<SiteRegistry>,
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

    fn call(&mut self, mut request: Request) -> Self::Future {
        let site = match context(&request) {
            Credential::Site(key, site) if key.role == SiteRole::Caller => site,
            Credential::Caller(_) => self.sites.default_site(),
            _ if !self.auth.keys_required() => self.sites.default_site(),
            _ => return Either::Left(std::future::ready(Ok(ApiError::Unauthorized.into_response()))),
        };
        request.extensions_mut().insert(CurrentSite(site));
        Either::Right(self.inner.call(request))
    }
}

/// Anonymous control (no key configured) is for a local caller only: not on a public listener,
/// not through a trusted proxy, and not from anything carrying a forwarding header — whoever sits
/// behind a proxy is a stranger, whatever address the proxy connects from.
fn local_unproxied(state: &AppState, request: &Request) -> bool {
    let peer = request.extensions().get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip());
    !state.public_listener
        && !peer.is_some_and(|ip| state.ip_limiter.trusts(ip))
        && !crate::guard::client_ip::carries_forwarding(request.headers())
}

/// /metrics and /openapi.json: a caller or the admin key; anonymous only for a local, unproxied
/// caller with no keys configured.
pub async fn require_observer(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let any_key = state.auth.keys_required() || state.auth.has_admin_key();
    match context(&request) {
        Credential::Caller(_) | Credential::Admin => next.run(request).await,
        // Metrics and the schema span every site: not a site's to read.
        Credential::Site(..) => ApiError::Forbidden("a site's key cannot read deployment-wide routes").into_response(),
        _ if !any_key && local_unproxied(&state, &request) => next.run(request).await,
        _ if !any_key && !state.public_listener => ApiError::Unauthorized.into_response(),
        _ if !any_key => ApiError::Disabled(
            "not served anonymously on a public address: set VELOCHAT_ADMIN_KEY or VELOCHAT_API_KEYS",
        )
        .into_response(),
        _ => ApiError::Unauthorized.into_response(),
    }
}

/// /admin/*: the operator key (acting on `default`, or the site `X-Velochat-Site` names), a
/// site's admin key (its own site only), or a console session; disabled while no admin key exists.
pub async fn require_admin(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let named = match named_site(&state, &request) {
        Ok(named) => named,
        Err(refused) => return refused.into_response(),
    };
    let site = match context(&request) {
        Credential::Site(key, site) if key.role == SiteRole::Admin => {
            if named.as_ref().is_some_and(|n| n.id != site.id) {
                return ApiError::Forbidden("a site's admin key acts on its own site only").into_response();
            }
            site
        }
        _ if !state.auth.has_admin_key() => {
            return ApiError::Disabled("admin routes are disabled: set VELOCHAT_ADMIN_KEY").into_response()
        }
        Credential::Admin => named.unwrap_or_else(|| state.sites.default_site()),
        Credential::Missing => {
            match crate::api::console::authorize(&state, request.method(), request.headers()).await {
                Some(Ok(_)) => named.unwrap_or_else(|| state.sites.default_site()),
                Some(Err(refused)) => return refused.into_response(),
                None => return ApiError::Unauthorized.into_response(),
            }
        }
        _ => return ApiError::Unauthorized.into_response(),
    };
    request.extensions_mut().insert(CurrentSite(site));
    next.run(request).await
}

/// The registry (`/admin/sites`) is the operator's alone; runs after `require_admin`.
pub async fn require_operator(request: Request, next: Next) -> Response {
    if matches!(context(&request), Credential::Site(..)) {
        return ApiError::Forbidden("only the operator key manages sites").into_response();
    }
    next.run(request).await
}

/// Who sent an agent message from the console: the name its operator signed in with.
#[derive(Debug, Clone)]
pub struct ConsoleOperator(pub String);

/// Session control for the site's backend (the Wix Chat handler, the widget's long poll): a caller
/// or the admin key, or a console session (with its CSRF token for a change); without any key
/// configured, a local unproxied caller only.
pub async fn require_backend(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let any_key = state.auth.keys_required() || state.auth.has_admin_key();
    let credential = context(&request);
    let site = match &credential {
        Credential::Site(_, site) => site.clone(),
        _ => state.sites.default_site(),
    };
    request.extensions_mut().insert(CurrentSite(site));
    if credential.is_missing() {
        match crate::api::console::authorize(&state, request.method(), request.headers()).await {
            Some(Ok(session)) => {
                request.extensions_mut().insert(ConsoleOperator(session.operator));
                return next.run(request).await;
            }
            Some(Err(refused)) => return refused.into_response(),
            None => {}
        }
    }
    match credential {
        Credential::Caller(_) | Credential::Admin | Credential::Site(..) => next.run(request).await,
        _ if !any_key && local_unproxied(&state, &request) => next.run(request).await,
        _ if !any_key && !state.public_listener => ApiError::Unauthorized.into_response(),
        _ if !any_key => {
            ApiError::Disabled("session control needs VELOCHAT_API_KEYS or VELOCHAT_ADMIN_KEY").into_response()
        }
        _ => ApiError::Unauthorized.into_response(),
    }
}
