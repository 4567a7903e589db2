//! One OpenAI-compatible endpoint: a pooled HTTP client, its URL and key. Each call is one attempt,
//! bounded in time and in bytes read.

use super::error::AttemptError;
use super::wire::{ChatResponse, ErrorBody, Usage};
use crate::config::Secret;
use bytes::{Bytes, BytesMut};
use http::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, USER_AGENT};
use http::{Method, Request, Response, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::sync::Arc;
use std::time::Duration;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

/// The model API client: hyper's pooled client without reqwest's layers (redirects, URL
/// re-parsing, proxies), which were ~5 % of a request's CPU in the profile.
pub type UpstreamClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

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
    http: UpstreamClient,
    url: Uri,
    auth: Option<HeaderValue>,
    pub model: String,
    max_response_bytes: usize,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint").field("url", &self.url).field("model", &self.model).finish()
    }
}

/// The client for the webhook and budget alerts: keep-alive, TCP_NODELAY, no redirects.
pub fn http_client(connect_timeout: Duration) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .tcp_nodelay(true)
        .pool_idle_timeout(Duration::from_secs(90))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("velochat/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// The upstream client: keep-alive pool, TCP_NODELAY, a connect timeout, no redirects. HTTPS
/// upstreams (OpenAI) negotiate HTTP/2 through ALPN by themselves, so thousands of requests in
/// flight share a few connections; `h2c` forces HTTP/2 on a plain-http upstream that speaks it (a
/// local proxy, the benchmark's fake).
pub fn upstream_client(connect_timeout: Duration, h2c: bool, ca_cert: &str) -> anyhow::Result<UpstreamClient> {
    let mut tcp = HttpConnector::new();
    tcp.enforce_http(false);
    tcp.set_nodelay(true);
    tcp.set_connect_timeout(Some(connect_timeout));
    let connector = HttpsConnectorBuilder::new()
        .with_tls_config(upstream_tls(ca_cert)?)
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(tcp);
    let mut builder = Client::builder(TokioExecutor::new());
    builder
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(1024)
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .http2_only(h2c);
    Ok(builder.build(connector))
}

/// Mozilla's roots (bundled: no dependence on the image's CA store), plus `ca_cert` when set.
fn upstream_tls(ca_cert: &str) -> anyhow::Result<ClientConfig> {
    use anyhow::Context;
    let mut roots = RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    if !ca_cert.is_empty() {
        let certs = crate::config::pem::certificates("openai.ca_cert", ca_cert)?;
        anyhow::ensure!(!certs.is_empty(), "openai.ca_cert: no certificate in {ca_cert}");
        for cert in certs {
            roots.add(cert).with_context(|| format!("openai.ca_cert: unusable certificate in {ca_cert}"))?;
        }
    }
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    Ok(ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

impl Endpoint {
    pub fn new(http: UpstreamClient, base_url: &str, key: &Secret, model: &str, max_response_bytes: usize) -> Self {
        let auth = (!key.is_empty())
            .then(|| HeaderValue::from_str(&format!("Bearer {}", key.expose())).ok())
            .flatten()
            .map(|mut value| {
                value.set_sensitive(true);
                value
            });
        Self {
            http,
            // Parsed once here (validated at config load), not on every request.
            url: format!("{}/chat/completions", base_url.trim_end_matches('/'))
                .parse()
                .unwrap_or_else(|e| panic!("openai base URL was validated at load: {e}")),
            auth,
            model: model.to_owned(),
            max_response_bytes,
        }
    }

    pub fn has_key(&self) -> bool {
        self.auth.is_some()
    }

    fn request(&self, body: Bytes) -> Request<Full<Bytes>> {
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = self.url.clone();
        let headers = request.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(USER_AGENT, HeaderValue::from_static(concat!("velochat/", env!("CARGO_PKG_VERSION"))));
        if let Some(auth) = &self.auth {
            headers.insert(AUTHORIZATION, auth.clone());
        }
        request
    }

    /// Sends `body` and returns the parsed completion. `timeout` bounds the whole attempt (connect,
    /// first byte and the full body); `cut_by_deadline` says whether the deadline set it.
    pub async fn complete(
        &self,
        body: Bytes,
        timeout: Duration,
        cut_by_deadline: bool,
    ) -> Result<Completion, AttemptError> {
        let attempt = async {
            let response = self.send_checked(body).await?;
            parse_completion(&read_capped(response, self.max_response_bytes).await?, &self.model)
        };
        bounded(timeout, cut_by_deadline, attempt).await
    }

    /// Starts a streaming call and returns the response once its status is known; the caller reads
    /// the event stream. Non-2xx answers are read (capped) and classified here.
    pub async fn start_stream(
        &self,
        body: Bytes,
        timeout: Duration,
        cut_by_deadline: bool,
    ) -> Result<UpstreamBody, AttemptError> {
        let response = bounded(timeout, cut_by_deadline, self.send_checked(body)).await?;
        Ok(UpstreamBody(response.into_body()))
    }

    /// Sends and returns a 2xx response unread; any other status is read (capped) and classified.
    async fn send_checked(&self, body: Bytes) -> Result<Response<Incoming>, AttemptError> {
        let response = self.http.request(self.request(body)).await.map_err(classify_send_error)?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let headers = response.headers().clone();
        let bytes = read_capped(response, self.max_response_bytes).await?;
        Err(status_error(status.as_u16(), &headers, &bytes))
    }
}

/// One attempt, cut at `timeout`.
async fn bounded<T>(
    timeout: Duration,
    cut_by_deadline: bool,
    attempt: impl std::future::Future<Output = Result<T, AttemptError>>,
) -> Result<T, AttemptError> {
    tokio::time::timeout(timeout, attempt).await.unwrap_or(Err(AttemptError::Timeout { cut_by_deadline }))
}

/// A streaming response's body, read chunk by chunk.
pub struct UpstreamBody(Incoming);

impl UpstreamBody {
    /// The next data chunk; `None` at the end (trailers are skipped).
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, hyper::Error> {
        while let Some(frame) = self.0.frame().await {
            if let Ok(data) = frame?.into_data() {
                return Ok(Some(data));
            }
        }
        Ok(None)
    }
}

fn classify_send_error(err: hyper_util::client::legacy::Error) -> AttemptError {
    if is_timed_out(&err) {
        AttemptError::Timeout { cut_by_deadline: false }
    } else if err.is_connect() {
        AttemptError::Connect(error_chain(&err))
    } else {
        AttemptError::Broken(error_chain(&err))
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

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Reads the body, refusing more than `cap` bytes (API10: never trust an upstream's size).
async fn read_capped(response: Response<Incoming>, cap: usize) -> Result<Bytes, AttemptError> {
    let declared =
        response.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > cap) {
        return Err(AttemptError::Invalid(format!("response body over {cap} bytes")));
    }
    let mut body = BytesMut::with_capacity(declared.unwrap_or(4096).min(cap));
    let mut stream = UpstreamBody(response.into_body());
    while let Some(chunk) = stream.chunk().await.map_err(|e| AttemptError::Broken(error_chain(&e)))? {
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
