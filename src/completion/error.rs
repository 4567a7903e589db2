//! Upstream failures, classified once: what may be retried, what trips the breaker, and which
//! fallback reason the visitor's reply carries.

use crate::domain::FallbackReason;
use std::time::Duration;

/// Causes are kept as text (the client's error chain): attempts are compared in tests and
/// collected per request, and reqwest's errors are neither `Clone` nor comparable.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AttemptError {
    /// No connection (refused, DNS, TLS).
    #[error("cannot connect: {0}")]
    Connect(String),
    /// No complete answer in the time given. `cut_by_deadline`: the request deadline, not the
    /// per-attempt timeout, ended it.
    #[error("timed out")]
    Timeout { cut_by_deadline: bool },
    /// A non-2xx answer.
    #[error("status {status}")]
    Status { status: u16, retry_after: Option<Duration>, code: Option<String>, message: Option<String> },
    /// The connection broke while the body was arriving.
    #[error("connection broke: {0}")]
    Broken(String),
    /// A 2xx whose body we cannot use: undecodable, oversized, no choices, no content.
    #[error("unusable answer: {0}")]
    Invalid(String),
    /// `finish_reason: content_filter`.
    #[error("content filter")]
    ContentFilter,
    /// The model refused (`message.refusal`).
    #[error("the model refused")]
    Refusal,
}

impl AttemptError {
    fn is_quota(&self) -> bool {
        matches!(self, AttemptError::Status { status: 429, code: Some(code), .. } if code == "insufficient_quota")
    }

    /// The OpenAI SDKs' retry classification: connection trouble, timeouts, 408, 409, 429 (not
    /// quota) and 5xx. Never 400/401/403/404/422, never a body we could not use.
    pub fn is_retryable(&self) -> bool {
        match self {
            AttemptError::Connect(_) | AttemptError::Broken(_) => true,
            AttemptError::Timeout { cut_by_deadline } => !cut_by_deadline,
            AttemptError::Status { status, .. } => {
                !self.is_quota() && (matches!(status, 408 | 409 | 429) || *status >= 500)
            }
            AttemptError::Invalid(_) | AttemptError::ContentFilter | AttemptError::Refusal => false,
        }
    }

    /// Worth a try on the fallback model: the primary is slow, rate-limited or failing.
    pub fn suits_second_rung(&self) -> bool {
        match self {
            AttemptError::Timeout { cut_by_deadline } => !cut_by_deadline,
            AttemptError::Connect(_) | AttemptError::Broken(_) => true,
            AttemptError::Status { status, .. } => !self.is_quota() && (*status == 429 || *status >= 500),
            _ => false,
        }
    }

    /// Counts as a failed request for the circuit breaker: the upstream is unhealthy, not the request.
    pub fn trips_breaker(&self) -> bool {
        match self {
            AttemptError::Connect(_) | AttemptError::Broken(_) | AttemptError::Timeout { .. } => true,
            AttemptError::Status { status, .. } => !self.is_quota() && (*status == 429 || *status >= 500),
            AttemptError::Invalid(_) | AttemptError::ContentFilter | AttemptError::Refusal => false,
        }
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            AttemptError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    pub fn fallback_reason(&self) -> FallbackReason {
        match self {
            AttemptError::Timeout { cut_by_deadline: true } => FallbackReason::Deadline,
            AttemptError::Timeout { cut_by_deadline: false } => FallbackReason::UpstreamTimeout,
            AttemptError::Status { status: 429, .. } if self.is_quota() => FallbackReason::UpstreamQuota,
            AttemptError::Status { status: 429, .. } => FallbackReason::UpstreamRateLimited,
            AttemptError::Status { .. } | AttemptError::Connect(_) | AttemptError::Broken(_) => {
                FallbackReason::UpstreamError
            }
            AttemptError::Invalid(_) => FallbackReason::UpstreamInvalid,
            AttemptError::ContentFilter | AttemptError::Refusal => FallbackReason::ContentFilter,
        }
    }

    /// A short, bounded label for logs (`status_503`, `timeout`, ...).
    pub fn label(&self) -> String {
        match self {
            AttemptError::Connect(_) => "connect".into(),
            AttemptError::Timeout { cut_by_deadline: true } => "deadline".into(),
            AttemptError::Timeout { cut_by_deadline: false } => "timeout".into(),
            AttemptError::Status { status, code: Some(code), .. } => format!("status_{status}:{code}"),
            AttemptError::Status { status, .. } => format!("status_{status}"),
            AttemptError::Broken(_) => "broken".into(),
            AttemptError::Invalid(_) => "invalid".into(),
            AttemptError::ContentFilter => "content_filter".into(),
            AttemptError::Refusal => "refusal".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16, code: Option<&str>) -> AttemptError {
        AttemptError::Status { status, retry_after: None, code: code.map(str::to_owned), message: None }
    }

    #[test]
    fn retries_follow_the_sdk_classification() {
        for code in [408, 409, 429, 500, 502, 503, 504] {
            assert!(status(code, None).is_retryable(), "{code}");
        }
        for code in [400, 401, 403, 404, 422] {
            assert!(!status(code, None).is_retryable(), "{code}");
        }
        assert!(!status(429, Some("insufficient_quota")).is_retryable());
        assert!(AttemptError::Connect("refused".into()).is_retryable());
        assert!(AttemptError::Timeout { cut_by_deadline: false }.is_retryable());
        assert!(!AttemptError::Timeout { cut_by_deadline: true }.is_retryable());
        assert!(!AttemptError::Invalid("garbage".into()).is_retryable());
    }

    #[test]
    fn only_upstream_health_trips_the_breaker() {
        assert!(status(503, None).trips_breaker());
        assert!(status(429, None).trips_breaker());
        assert!(AttemptError::Timeout { cut_by_deadline: false }.trips_breaker());
        for healthy in [status(400, None), status(401, None), status(429, Some("insufficient_quota"))] {
            assert!(!healthy.trips_breaker(), "{healthy:?}");
        }
        assert!(!AttemptError::ContentFilter.trips_breaker());
    }

    #[test]
    fn each_failure_names_its_fallback_reason() {
        assert_eq!(status(429, Some("insufficient_quota")).fallback_reason(), FallbackReason::UpstreamQuota);
        assert_eq!(status(429, None).fallback_reason(), FallbackReason::UpstreamRateLimited);
        assert_eq!(status(500, None).fallback_reason(), FallbackReason::UpstreamError);
        assert_eq!(AttemptError::Invalid("x".into()).fallback_reason(), FallbackReason::UpstreamInvalid);
        assert_eq!(AttemptError::Refusal.fallback_reason(), FallbackReason::ContentFilter);
        assert_eq!(AttemptError::Timeout { cut_by_deadline: true }.fallback_reason(), FallbackReason::Deadline);
    }
}
