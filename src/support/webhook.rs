//! Webhook delivery: one signed JSON POST per event. The receiver checks
//! `X-Velochat-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">` and refuses
//! timestamps more than 5 minutes old (replays).

use crate::config::Secret;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::time::Duration;

pub const SIGNATURE_HEADER: &str = "X-Velochat-Signature";
pub const EVENT_ID_HEADER: &str = "X-Velochat-Event-Id";
pub const EVENT_KIND_HEADER: &str = "X-Velochat-Event";

/// `t=<t>,v1=<hex hmac of "<t>.<body>">`.
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    #[allow(clippy::expect_used)] // HMAC accepts keys of any length
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("hmac takes any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={timestamp},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// Checks a signature header as a receiver would (used by tests and documented for helpdesks).
pub fn verify(secret: &str, header: &str, body: &[u8], now: i64, tolerance_secs: i64) -> bool {
    let mut timestamp = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
            Some(("v1", sig)) => v1 = Some(sig.to_owned()),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (timestamp, v1) else {
        return false;
    };
    if (now - t).abs() > tolerance_secs {
        return false;
    }
    let expected = signature(secret, t, body);
    subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), format!("t={t},v1={v1}").as_bytes()).into()
}

#[derive(Clone)]
pub struct WebhookClient {
    http: reqwest::Client,
    url: Option<String>,
    secret: Option<Secret>,
    timeout: Duration,
}

impl WebhookClient {
    pub fn new(http: reqwest::Client, url: &str, secret: &Secret, timeout: Duration) -> Self {
        Self {
            http,
            url: (!url.trim().is_empty()).then(|| url.trim().to_owned()),
            secret: (!secret.is_empty()).then(|| secret.clone()),
            timeout,
        }
    }

    pub fn is_configured(&self) -> bool {
        self.url.is_some()
    }

    /// One delivery attempt; Ok only on a 2xx.
    pub async fn deliver(&self, id: &str, kind: &str, payload: &str) -> Result<(), DeliveryError> {
        let Some(url) = &self.url else {
            return Err(DeliveryError::NotConfigured);
        };
        let mut request = self
            .http
            .post(url)
            .timeout(self.timeout)
            .header("Content-Type", "application/json")
            .header(EVENT_ID_HEADER, id)
            .header(EVENT_KIND_HEADER, kind)
            .body(payload.to_owned());
        if let Some(secret) = &self.secret {
            let now = chrono::Utc::now().timestamp();
            request = request.header(SIGNATURE_HEADER, signature(secret.expose(), now, payload.as_bytes()));
        }
        match request.send().await {
            Ok(response) if response.status().is_success() => Ok(()),
            Ok(response) => Err(DeliveryError::Status(response.status().as_u16())),
            Err(e) if e.is_timeout() => Err(DeliveryError::Timeout(e)),
            Err(e) if e.is_connect() => Err(DeliveryError::Connect(e)),
            Err(e) => Err(DeliveryError::Request(e)),
        }
    }
}

/// Why one webhook delivery failed (kept short in the outbox row; the chain goes to the log).
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("no webhook URL configured")]
    NotConfigured,
    #[error("status {0}")]
    Status(u16),
    #[error("timeout")]
    Timeout(#[source] reqwest::Error),
    #[error("connect error")]
    Connect(#[source] reqwest::Error),
    #[error("request error")]
    Request(#[source] reqwest::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_receiver_accepts_fresh_signatures_only() {
        let body = br#"{"event":"handoff"}"#;
        let header = signature("whsec", 1_700_000_000, body);
        assert!(header.starts_with("t=1700000000,v1="));
        assert!(verify("whsec", &header, body, 1_700_000_100, 300));
        assert!(!verify("whsec", &header, body, 1_700_000_400, 300), "older than 5 minutes");
        assert!(!verify("other", &header, body, 1_700_000_100, 300));
        assert!(!verify("whsec", &header, b"{}", 1_700_000_100, 300));
    }
}
