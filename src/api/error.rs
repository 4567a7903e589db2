//! The HTTP edge's one error type: every refusal becomes `{"error": {"code", "message", ...}}`
//! with its status decided in exactly one `match`.

use crate::chat::ChatError;
use crate::domain::InvalidField;
use crate::rate::Decision;
use crate::store::LimitKind;
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Invalid(#[from] InvalidField),
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
    #[error("unsupported media type")]
    UnsupportedMediaType,
    #[error("body over {0} bytes")]
    PayloadTooLarge(usize),
    #[error("no such route")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("unauthorized")]
    Unauthorized,
    /// A route that needs a key nobody configured (admin routes without VELOCHAT_ADMIN_KEY, ...).
    #[error("disabled: {0}")]
    Disabled(&'static str),
    #[error("the {} limit is exhausted", .0.as_str())]
    RateLimited(LimitKind, Decision),
    #[error("session not found")]
    SessionNotFound,
    #[error("document not found")]
    DocumentNotFound,
    /// A state change from the console without its session or CSRF token.
    #[error("a console session and its CSRF token are required")]
    CsrfRequired,
    #[error("suggestion not found")]
    SuggestionNotFound,
    /// Approved or rejected already (here or on another replica).
    #[error("suggestion already {0}")]
    SuggestionDecided(String),
    /// The OpenAI-compatible route's `{"error": {"type": "invalid_request_error", ...}}` flavour.
    #[error("unsupported `{0}`: {1}")]
    Unsupported(String, String),
    /// A dependency (store) failed: 503, the cause in the log only.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The body did not arrive within `server.header_read_timeout_ms`.
    #[error("the body did not arrive in time")]
    BodyTimeout,
    /// An HTTP/1.1 request without exactly one `Host` header (RFC 9112 §3.2).
    #[error("not exactly one Host header")]
    InvalidHost,
    /// A bug (a handler panicked): opaque 500, the cause in the log only.
    #[error("internal error")]
    Internal,
    #[error("site not found")]
    SiteNotFound,
    #[error("key not found")]
    KeyNotFound,
    /// A key acting outside its site, or on what only the operator may do.
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    #[error("the default site cannot be deleted")]
    DefaultSiteKept,
}

impl From<crate::sites::SiteError> for ApiError {
    fn from(e: crate::sites::SiteError) -> Self {
        use crate::sites::SiteError;
        match e {
            SiteError::Invalid(field) => ApiError::Invalid(field),
            SiteError::NotFound => ApiError::SiteNotFound,
            SiteError::KeyNotFound => ApiError::KeyNotFound,
            SiteError::DefaultSite => ApiError::DefaultSiteKept,
            SiteError::Store(e) => ApiError::Unavailable(crate::error_chain::describe(&e)),
        }
    }
}

/// The error code, kept on the response for the access log.
#[derive(Debug, Clone)]
pub struct ErrorCode(pub &'static str);

impl From<ChatError> for ApiError {
    fn from(e: ChatError) -> Self {
        match e {
            ChatError::Invalid(field) => ApiError::Invalid(field),
            ChatError::RateLimited(kind, decision) => ApiError::RateLimited(kind, decision),
            ChatError::Unavailable(e) => ApiError::Unavailable(crate::error_chain::describe(&e)),
        }
    }
}

// Static names: a `&str` name is copied into a new buffer on every insert.
const RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
const RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
const RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");

/// Adds `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset` (IETF draft) to a response.
pub fn rate_limit_headers(response: &mut Response, decision: &Decision) {
    let headers = response.headers_mut();
    for (name, value) in [
        (RATELIMIT_LIMIT, decision.limit as u64),
        (RATELIMIT_REMAINING, decision.remaining as u64),
        (RATELIMIT_RESET, decision.reset_secs()),
    ] {
        headers.insert(name, HeaderValue::from(value));
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let limit_decision = match &self {
            ApiError::RateLimited(_, decision) => Some(*decision),
            _ => None,
        };
        let (status, code, message, extra): (StatusCode, &'static str, String, Value) = match self {
            ApiError::Invalid(e) => (StatusCode::BAD_REQUEST, e.code, e.message.clone(), json!({"field": e.field})),
            ApiError::MalformedJson(m) => (StatusCode::BAD_REQUEST, "malformed_json", m, Value::Null),
            ApiError::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "the body must be JSON sent with `Content-Type: application/json`".into(),
                Value::Null,
            ),
            ApiError::PayloadTooLarge(limit) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("the body must be at most {limit} bytes"),
                json!({"limitBytes": limit}),
            ),
            ApiError::NotFound => (StatusCode::NOT_FOUND, "not_found", "no such route".into(), Value::Null),
            ApiError::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not take that method".into(),
                Value::Null,
            ),
            ApiError::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "missing or invalid `Authorization: Bearer <key>`".into(),
                Value::Null,
            ),
            ApiError::Disabled(why) => (StatusCode::FORBIDDEN, "disabled", why.into(), Value::Null),
            ApiError::RateLimited(kind, decision) => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("the {} limit is exhausted; retry in {} s", kind.as_str(), decision.retry_after_secs()),
                json!({"limit": kind.as_str(), "retryAfterSeconds": decision.retry_after_secs()}),
            ),
            ApiError::SessionNotFound => {
                (StatusCode::NOT_FOUND, "session_not_found", "no state is kept for that session".into(), Value::Null)
            }
            ApiError::DocumentNotFound => (
                StatusCode::NOT_FOUND,
                "document_not_found",
                "no knowledge-base document has that id".into(),
                Value::Null,
            ),
            ApiError::CsrfRequired => (
                StatusCode::FORBIDDEN,
                "csrf_required",
                "a state change needs the console session and its CSRF token (X-CSRF-Token)".into(),
                Value::Null,
            ),
            ApiError::SuggestionNotFound => {
                (StatusCode::NOT_FOUND, "suggestion_not_found", "no suggestion has that id".into(), Value::Null)
            }
            ApiError::SuggestionDecided(status) => (
                StatusCode::CONFLICT,
                "suggestion_decided",
                format!("the suggestion is already {status}"),
                json!({"status": status}),
            ),
            ApiError::Unsupported(field, m) => (
                StatusCode::BAD_REQUEST,
                "unsupported",
                m,
                json!({"field": field, "type": "invalid_request_error", "param": field}),
            ),
            ApiError::BodyTimeout => (
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                "the request body did not arrive in time".into(),
                Value::Null,
            ),
            ApiError::InvalidHost => (
                StatusCode::BAD_REQUEST,
                "invalid_host",
                "an HTTP/1.1 request needs exactly one `Host` header".into(),
                json!({"field": "Host"}),
            ),
            ApiError::SiteNotFound => {
                (StatusCode::NOT_FOUND, "site_not_found", "no site has that id".into(), Value::Null)
            }
            ApiError::KeyNotFound => {
                (StatusCode::NOT_FOUND, "key_not_found", "the site has no such key".into(), Value::Null)
            }
            ApiError::Forbidden(why) => (StatusCode::FORBIDDEN, "forbidden", why.into(), Value::Null),
            ApiError::DefaultSiteKept => (
                StatusCode::CONFLICT,
                "default_site",
                "the site `default` always exists and cannot be deleted".into(),
                Value::Null,
            ),
            ApiError::Internal => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal", "an internal error occurred".into(), Value::Null)
            }
            ApiError::Unavailable(cause) => {
                tracing::error!(%cause, "dependency unavailable");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "a dependency is unavailable; try again".into(),
                    Value::Null,
                )
            }
        };
        let mut error = json!({"code": code, "message": message});
        if let (Value::Object(target), Value::Object(more)) = (&mut error, extra) {
            target.extend(more);
        }
        let mut response = (status, axum::Json(json!({ "error": error }))).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(decision) = limit_decision {
            rate_limit_headers(&mut response, &decision);
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(decision.retry_after_secs()));
        }
        response.extensions_mut().insert(ErrorCode(code));
        response
    }
}
