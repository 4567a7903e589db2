//! The project's JSON extractor: 415 for anything but JSON, 413 past the body limit (axum's
//! `DefaultBodyLimit` layer, checked while reading), 408 when the body does not arrive within its
//! deadline, 400 naming the field for malformed bodies.

use super::error::ApiError;
use super::AppState;
use crate::domain::InvalidField;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, FailedToBufferBody};
use axum::extract::{FromRequest, Request};
use axum::http::header::CONTENT_TYPE;
use serde::de::DeserializeOwned;
use std::time::Duration;

pub struct JsonBody<T>(pub T);

/// axum's `Path`, refusing in the API's JSON shape (an invalid UTF-8 segment names its parameter).
#[derive(axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

/// axum's `Query`, refusing in the API's JSON shape (a repeated parameter is named).
#[derive(axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

/// The first `` `name` `` in a message (serde names the field it refused that way).
fn quoted_name(message: &str) -> Option<&str> {
    let (_, rest) = message.split_once('`')?;
    rest.split_once('`').map(|(name, _)| name).filter(|name| !name.is_empty())
}

impl From<axum::extract::rejection::PathRejection> for ApiError {
    fn from(rejection: axum::extract::rejection::PathRejection) -> Self {
        use axum::extract::path::ErrorKind;
        use axum::extract::rejection::PathRejection;
        let message = rejection.body_text();
        let field = match &rejection {
            PathRejection::FailedToDeserializePathParams(e) => match e.kind() {
                ErrorKind::InvalidUtf8InPathParam { key } | ErrorKind::ParseErrorAtKey { key, .. } => key.clone(),
                _ => "path".to_owned(),
            },
            _ => "path".to_owned(),
        };
        ApiError::Invalid(InvalidField::new(field, "invalid_field", message))
    }
}

impl From<axum::extract::rejection::QueryRejection> for ApiError {
    fn from(rejection: axum::extract::rejection::QueryRejection) -> Self {
        let message = rejection.body_text();
        let field = quoted_name(&message).unwrap_or("query").to_owned();
        ApiError::Invalid(InvalidField::new(field, "invalid_field", message))
    }
}

pub fn is_json(request: &Request) -> bool {
    request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"))
}

/// Reads the body within `deadline` (a trickled or stalled body is cut) and under the limit the
/// route's `DefaultBodyLimit` layer set (`limit` only names it in the 413).
pub async fn read_body<S: Send + Sync>(
    request: Request,
    state: &S,
    deadline: Duration,
    limit: usize,
) -> Result<Bytes, ApiError> {
    match tokio::time::timeout(deadline, Bytes::from_request(request, state)).await {
        Err(_) => Err(ApiError::BodyTimeout),
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(BytesRejection::FailedToBufferBody(FailedToBufferBody::LengthLimitError(_)))) => {
            Err(ApiError::PayloadTooLarge(limit))
        }
        // The edge's idle limit between body frames (tower-http) ran out.
        Ok(Err(other)) if stalled(&other) => Err(ApiError::BodyTimeout),
        // hyper refusing the framing (bad chunk sizes), or the connection breaking.
        Ok(Err(other)) => {
            Err(ApiError::MalformedJson(format!("could not read the body: {}", crate::error_chain::describe(&other))))
        }
    }
}

fn stalled(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if e.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        cause = e.source();
    }
    false
}

/// Parses JSON, naming the path of the offending field (`history[2].content`).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // serde would also read a struct from an array; the contract is an object.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()).is_some_and(|b| *b != b'{') {
        return Err(ApiError::MalformedJson("the body must be a JSON object".into()));
    }
    // Valid bodies (nearly all) take the plain parser; only a failure pays for the field path.
    if let Ok(value) = serde_json::from_slice::<T>(bytes) {
        return Ok(value);
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    match serde_path_to_error::deserialize::<_, T>(&mut deserializer) {
        Ok(value) => {
            deserializer.end().map_err(|e| ApiError::MalformedJson(format!("the body is not valid JSON: {e}")))?;
            Ok(value)
        }
        Err(err) => {
            let path = err.path().to_string();
            let inner = err.into_inner();
            if inner.is_syntax() || inner.is_eof() {
                Err(ApiError::MalformedJson(format!("the body is not valid JSON: {inner}")))
            } else if path == "." {
                Err(ApiError::MalformedJson(format!("the body must be a JSON object: {inner}")))
            } else {
                let message = format!("`{path}`: {inner}");
                Err(ApiError::Invalid(crate::domain::InvalidField::new(path, "invalid_field", message)))
            }
        }
    }
}

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        if !is_json(&request) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let deadline = Duration::from_millis(state.settings.server.header_read_timeout_ms);
        let bytes = read_body(request, state, deadline, state.settings.server.body_limit_bytes).await?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// A whole-number query parameter in `range`; `default` when absent or empty.
pub fn whole_number<T>(
    raw: Option<&str>,
    field: &str,
    default: T,
    range: std::ops::RangeInclusive<T>,
) -> Result<T, InvalidField>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display,
{
    match raw {
        None | Some("") => Ok(default),
        Some(raw) => raw.parse::<T>().ok().filter(|n| range.contains(n)).ok_or_else(|| {
            let message = format!("`{field}` must be a whole number from {} to {}", range.start(), range.end());
            InvalidField::new(field, "invalid_field", message)
        }),
    }
}

/// The TCP peer, when the server recorded it (absent in `oneshot` tests), and the per-IP limit's
/// decision when that layer admitted the request.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    pub addr: Option<std::net::SocketAddr>,
    pub ip_decision: Option<crate::rate::Decision>,
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Peer {
            addr: parts.extensions.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0),
            ip_decision: parts.extensions.get::<crate::guard::ip_limit::IpDecision>().map(|d| d.0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Body {
        a: Option<String>,
        list: Option<Vec<Item>>,
    }

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Item {
        content: Option<String>,
    }

    #[test]
    fn errors_name_the_field_path() {
        let Err(ApiError::Invalid(e)) = parse_json::<Body>(br#"{"list":[{"content":"x"},{"content":5}]}"#) else {
            panic!("expected a field error");
        };
        assert_eq!(e.field, "list[1].content");
    }

    #[test]
    fn syntax_errors_and_non_objects_are_malformed() {
        assert!(matches!(parse_json::<Body>(b"{\"a\":"), Err(ApiError::MalformedJson(_))));
        assert!(matches!(parse_json::<Body>(b"[1]"), Err(ApiError::MalformedJson(_))));
        assert!(matches!(parse_json::<Body>(b"{} trailing"), Err(ApiError::MalformedJson(_))));
        assert!(parse_json::<Body>(b"{\"a\":null}").is_ok());
    }
}
