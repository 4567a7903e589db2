//! One OpenAI-compatible endpoint: the shared reqwest client, its URL and key. Each call is one
//! attempt, bounded in time and in bytes read.

use super::error::AttemptError;
use super::wire::{ChatResponse, ErrorBody, Usage};
use crate::config::Secret;
use crate::error_chain::describe;
use bytes::{Bytes, BytesMut};
use http::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use std::time::Duration;

/// HTTP/2 pings on idle pooled connections: a connection that died silently (a NAT dropped it)
/// is noticed before a request is sent on it.
const H2_PING_INTERVAL: Duration = Duration::from_secs(20);
const H2_PING_TIMEOUT: Duration = Duration::from_secs(10);

/// A usable completion from one attempt.
#[derive(Debug, Clone)]
pub struct Completion {
    pub content: String,
    pub finish_reason: Option<String>,
    pub usage: Option<Usage>,
    pub model: String,
    pub id: Option<String>,
}

#[derive(Clone)]
pub struct Endpoint {
    http: reqwest::Client,
    url: reqwest::Url,
    embeddings_url: reqwest::Url,
    auth: Option<HeaderValue>,
    pub model: String,
    max_response_bytes: usize,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint").field("url", &self.url.as_str()).field("model", &self.model).finish()
    }
}

/// The one outbound client (model API, handoff webhook, alerts): rustls with the bundled Mozilla
/// roots plus `ca_cert`, HTTP/2 by ALPN, pooled keep-alive, TCP_NODELAY, HTTP/2 pings, no redirects
/// (the upstream URL is configuration only). `h2c` speaks HTTP/2 by prior knowledge to plain-http
/// upstreams (a local proxy); such a client is for the model API alone.
pub fn http_client(connect_timeout: Duration, h2c: bool, ca_cert: &str) -> anyhow::Result<reqwest::Client> {
    use anyhow::Context;
    let mut builder = reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .tcp_nodelay(true)
        .pool_idle_timeout(Duration::from_secs(90))
        .http2_keep_alive_interval(H2_PING_INTERVAL)
        .http2_keep_alive_timeout(H2_PING_TIMEOUT)
        .http2_keep_alive_while_idle(true)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("velochat/", env!("CARGO_PKG_VERSION")));
    if h2c {
        builder = builder.http2_prior_knowledge();
    }
    if !ca_cert.is_empty() {
        let certs = crate::config::pem::certificates("openai.ca_cert", ca_cert)?;
        anyhow::ensure!(!certs.is_empty(), "openai.ca_cert: no certificate in {ca_cert}");
        for cert in certs {
            let cert = reqwest::Certificate::from_der(cert.as_ref())
                .with_context(|| format!("openai.ca_cert: unusable certificate in {ca_cert}"))?;
            builder = builder.add_root_certificate(cert);
        }
    }
    builder.build().context("the HTTP client")
}

impl Endpoint {
    pub fn new(http: &reqwest::Client, base_url: &str, key: &Secret, model: &str, max_response_bytes: usize) -> Self {
        let auth = (!key.is_empty())
            .then(|| HeaderValue::from_str(&format!("Bearer {}", key.expose())).ok())
            .flatten()
            .map(|mut value| {
                value.set_sensitive(true);
                value
            });
        // Parsed once here (validated at config load), not on every request.
        let at = |path: &str| {
            reqwest::Url::parse(&format!("{}/{path}", base_url.trim_end_matches('/')))
                .unwrap_or_else(|e| panic!("openai base URL was validated at load: {e}"))
        };
        Self {
            http: http.clone(),
            url: at("chat/completions"),
            embeddings_url: at("embeddings"),
            auth,
            model: model.to_owned(),
            max_response_bytes,
        }
    }

    pub fn has_key(&self) -> bool {
        self.auth.is_some()
    }

    /// Sends the body `make_body` builds and returns the parsed completion. `timeout` bounds the
    /// whole attempt (connect, first byte and the full body); `cut_by_deadline` says whether the
    /// deadline set it.
    pub async fn complete(
        &self,
        make_body: impl Fn() -> Bytes,
        timeout: Duration,
        cut_by_deadline: bool,
    ) -> Result<Completion, AttemptError> {
        let attempt = async {
            let response = self.send_checked(&self.url, make_body).await?;
            parse_completion(&read_capped(response, self.max_response_bytes).await?, &self.model)
        };
        bounded(timeout, cut_by_deadline, attempt).await
    }

    /// Starts a streaming call and returns the response once its status is known; the caller reads
    /// the event stream. Non-2xx answers are read (capped) and classified here.
    pub async fn start_stream(
        &self,
        make_body: impl Fn() -> Bytes,
        timeout: Duration,
        cut_by_deadline: bool,
    ) -> Result<UpstreamBody, AttemptError> {
        let response = bounded(timeout, cut_by_deadline, self.send_checked(&self.url, make_body)).await?;
        Ok(UpstreamBody(response))
    }

    /// Sends and returns a 2xx response unread; any other status is read (capped) and classified.
    async fn send_checked(
        &self,
        url: &reqwest::Url,
        make_body: impl Fn() -> Bytes,
    ) -> Result<reqwest::Response, AttemptError> {
        let mut request = self.http.post(url.clone()).header(CONTENT_TYPE, "application/json").body(make_body());
        if let Some(auth) = &self.auth {
            request = request.header(AUTHORIZATION, auth.clone());
        }
        let response = request.send().await.map_err(classify_send_error)?;
        if response.status().is_success() {
            return Ok(response);
        }
        Err(self.error_of(response).await)
    }

    /// A non-2xx answer, read (capped) and classified.
    async fn error_of(&self, response: reqwest::Response) -> AttemptError {
        let status = response.status();
        let headers = response.headers().clone();
        match read_capped(response, self.max_response_bytes).await {
            Ok(bytes) => status_error(status.as_u16(), &headers, &bytes),
            Err(error) => error,
        }
    }
}

/// One attempt, cut at `timeout`.
fn bounded<T>(
    timeout: Duration,
    cut_by_deadline: bool,
    attempt: impl std::future::Future<Output = Result<T, AttemptError>>,
) -> impl std::future::Future<Output = Result<T, AttemptError>> {
    use futures_util::FutureExt;
    tokio::time::timeout(timeout, attempt).map(move |r| r.unwrap_or(Err(AttemptError::Timeout { cut_by_deadline })))
}

/// The embeddings endpoint's answer: `data[i].embedding` for input `i`.
#[derive(serde::Deserialize)]
struct EmbeddingsResponse {
    data: Vec<EmbeddingItem>,
}

#[derive(serde::Deserialize)]
struct EmbeddingItem {
    index: usize,
    embedding: Vec<f32>,
}

impl Endpoint {
    /// One embeddings call (`POST {base}/embeddings`) for `inputs`, in input order, within `timeout`.
    pub async fn embed(&self, model: &str, inputs: &[&str], timeout: Duration) -> Result<Vec<Vec<f32>>, AttemptError> {
        let body =
            Bytes::from(serde_json::to_vec(&serde_json::json!({"model": model, "input": inputs})).unwrap_or_default());
        // A batch of embeddings is far bigger than a chat reply.
        let cap = self.max_response_bytes.max(64 * 1024 * 1024);
        let attempt = async {
            let response = self.send_checked(&self.embeddings_url, || body.clone()).await?;
            let bytes = read_capped(response, cap).await?;
            let parsed: EmbeddingsResponse = serde_json::from_slice(&bytes)
                .map_err(|e| AttemptError::Invalid(format!("embeddings response: {e}")))?;
            let mut vectors = vec![Vec::new(); inputs.len()];
            for item in parsed.data {
                if let Some(slot) = vectors.get_mut(item.index) {
                    *slot = item.embedding;
                }
            }
            if vectors.iter().any(Vec::is_empty) {
                return Err(AttemptError::Invalid("embeddings response is missing inputs".into()));
            }
            Ok(vectors)
        };
        bounded(timeout, false, attempt).await
    }
}

/// A streaming response body, read chunk by chunk.
pub struct UpstreamBody(reqwest::Response);

pub type BodyError = reqwest::Error;

impl UpstreamBody {
    /// The next data chunk; `None` at the end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, BodyError> {
        self.0.chunk().await
    }
}

fn classify_send_error(err: reqwest::Error) -> AttemptError {
    if err.is_timeout() || is_timed_out(&err) {
        AttemptError::Timeout { cut_by_deadline: false }
    } else if err.is_connect() {
        AttemptError::Connect(describe(&err))
    } else {
        AttemptError::Broken(describe(&err))
    }
}

/// The connector's own connect timeout surfaces as an I/O `TimedOut` somewhere in the chain.
fn is_timed_out(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(err);
    while let Some(cause) = source {
        if cause.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::TimedOut) {
            return true;
        }
        source = cause.source();
    }
    false
}

/// Reads the body, refusing more than `cap` bytes (API10: never trust an upstream's size).
async fn read_capped(mut response: reqwest::Response, cap: usize) -> Result<Bytes, AttemptError> {
    let declared = response.content_length().and_then(|len| usize::try_from(len).ok());
    if declared.is_some_and(|len| len > cap) {
        return Err(AttemptError::Invalid(format!("response body over {cap} bytes")));
    }
    let mut body = BytesMut::with_capacity(declared.unwrap_or(4096).min(cap));
    while let Some(chunk) = response.chunk().await.map_err(|e| AttemptError::Broken(describe(&e)))? {
        if body.len() + chunk.len() > cap {
            return Err(AttemptError::Invalid(format!("response body over {cap} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// `retry-after-ms` (milliseconds) wins over `retry-after` (seconds); both may be absent or junk.
pub fn parse_retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    if let Some(ms) = text("retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        if ms.is_finite() && ms >= 0.0 {
            return Some(Duration::from_secs_f64(ms / 1000.0));
        }
    }
    let seconds = text("retry-after")?.parse::<f64>().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds))
}

fn status_error(status: u16, headers: &HeaderMap, body: &[u8]) -> AttemptError {
    let detail = serde_json::from_slice::<ErrorBody>(body).ok().and_then(|b| b.error);
    AttemptError::Status {
        status,
        retry_after: parse_retry_after(headers),
        code: detail.as_ref().and_then(|d| d.code_text().or_else(|| d.kind.clone())),
        message: detail.and_then(|d| d.message).map(|m| m.chars().take(200).collect()),
    }
}

/// Reads the first choice; null content, a refusal or a content filter is not a usable reply.
pub fn parse_completion(body: &[u8], requested_model: &str) -> Result<Completion, AttemptError> {
    let parsed: ChatResponse =
        serde_json::from_slice(body).map_err(|e| AttemptError::Invalid(format!("undecodable body: {e}")))?;
    let choice = parsed.choices.into_iter().next().ok_or_else(|| AttemptError::Invalid("no choices".into()))?;
    if choice.finish_reason.as_deref() == Some("content_filter") {
        return Err(AttemptError::ContentFilter);
    }
    let message = choice.message.ok_or_else(|| AttemptError::Invalid("choice without message".into()))?;
    if message.refusal.as_deref().is_some_and(|r| !r.trim().is_empty()) {
        return Err(AttemptError::Refusal);
    }
    let content = message.content.map(|c| c.trim().to_owned()).unwrap_or_default();
    if content.is_empty() {
        return Err(AttemptError::Invalid("empty content".into()));
    }
    Ok(Completion {
        content,
        finish_reason: choice.finish_reason,
        usage: parsed.usage,
        model: parsed.model.unwrap_or_else(|| requested_model.to_owned()),
        id: parsed.id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_first_choice_and_usage() {
        let body = br#"{"id":"c1","object":"chat.completion","model":"gpt-4o-mini-2024","choices":[{"index":0,
            "message":{"role":"assistant","content":"  Hi there  ","refusal":null},"finish_reason":"stop"}],
            "usage":{"prompt_tokens":10,"completion_tokens":3,"total_tokens":13,"prompt_tokens_details":{"cached_tokens":4}}}"#;
        let completion = parse_completion(body, "gpt-4o-mini").unwrap();
        assert_eq!(completion.content, "Hi there");
        assert_eq!(completion.model, "gpt-4o-mini-2024");
        assert_eq!(completion.usage.unwrap().cached_tokens(), 4);
    }

    #[test]
    fn unusable_bodies_are_classified() {
        assert!(matches!(parse_completion(b"<html>", "m"), Err(AttemptError::Invalid(_))));
        assert!(matches!(parse_completion(br#"{"choices":[]}"#, "m"), Err(AttemptError::Invalid(_))));
        let null_content = br#"{"choices":[{"message":{"content":null},"finish_reason":"stop"}]}"#;
        assert!(matches!(parse_completion(null_content, "m"), Err(AttemptError::Invalid(_))));
        let filtered = br#"{"choices":[{"message":{"content":"x"},"finish_reason":"content_filter"}]}"#;
        assert_eq!(parse_completion(filtered, "m").unwrap_err(), AttemptError::ContentFilter);
        let refused = br#"{"choices":[{"message":{"content":null,"refusal":"I can't"},"finish_reason":"stop"}]}"#;
        assert_eq!(parse_completion(refused, "m").unwrap_err(), AttemptError::Refusal);
    }

    #[test]
    fn retry_after_prefers_milliseconds_and_ignores_junk() {
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", HeaderValue::from_static("2"));
        assert_eq!(parse_retry_after(&headers), Some(Duration::from_secs(2)));
        headers.insert("retry-after-ms", HeaderValue::from_static("150"));
        assert_eq!(parse_retry_after(&headers), Some(Duration::from_millis(150)));
        let mut junk = HeaderMap::new();
        junk.insert("retry-after", HeaderValue::from_static("soon"));
        assert_eq!(parse_retry_after(&junk), None);
    }
}
