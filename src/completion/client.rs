//! One OpenAI-compatible endpoint: a pooled HTTP client, its URL and key. Each call is one attempt,
//! bounded in time and in bytes read.

use super::error::AttemptError;
use super::http2::{next_chunk, H2Channel};
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

/// What endpoints are built from: hyper's pooled client for HTTP/1.1, and what an HTTP/2
/// channel needs (TLS roots, `h2c`, the connect timeout).
#[derive(Clone)]
pub struct Upstream {
    http: UpstreamClient,
    tls: Arc<ClientConfig>,
    h2c: bool,
    connect_timeout: Duration,
}

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
    /// HTTPS (ALPN `h2`) and `h2c` upstreams; None for plain HTTP/1.1.
    h2: Option<Arc<H2Channel>>,
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

/// The upstream clients: TCP_NODELAY, a connect timeout, no redirects. HTTPS upstreams (OpenAI)
/// get HTTP/2 when they offer it by ALPN, so thousands of requests in flight share one connection;
/// `h2c` forces HTTP/2 on a plain-http upstream that speaks it (a local proxy, the benchmark's
/// fake). Everything else is HTTP/1.1 on hyper's keep-alive pool.
pub fn upstream_client(connect_timeout: Duration, h2c: bool, ca_cert: &str) -> anyhow::Result<Upstream> {
    let tls = Arc::new(upstream_tls(ca_cert)?);
    let mut tcp = HttpConnector::new();
    tcp.enforce_http(false);
    tcp.set_nodelay(true);
    tcp.set_connect_timeout(Some(connect_timeout));
    let connector = HttpsConnectorBuilder::new()
        .with_tls_config(ClientConfig::clone(&tls))
        .https_or_http()
        .enable_http1()
        .wrap_connector(tcp);
    let mut builder = Client::builder(TokioExecutor::new());
    builder
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(1024)
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new());
    Ok(Upstream { http: builder.build(connector), tls, h2c, connect_timeout })
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
    pub fn new(upstream: &Upstream, base_url: &str, key: &Secret, model: &str, max_response_bytes: usize) -> Self {
        let auth = (!key.is_empty())
            .then(|| HeaderValue::from_str(&format!("Bearer {}", key.expose())).ok())
            .flatten()
            .map(|mut value| {
                value.set_sensitive(true);
                value
            });
        // Parsed once here (validated at config load), not on every request.
        let url: Uri = format!("{}/chat/completions", base_url.trim_end_matches('/'))
            .parse()
            .unwrap_or_else(|e| panic!("openai base URL was validated at load: {e}"));
        let h2 = H2Channel::new(&url, upstream.h2c, &upstream.tls, upstream.connect_timeout).map(Arc::new);
        Self { http: upstream.http.clone(), h2, url, auth, model: model.to_owned(), max_response_bytes }
    }

    pub fn has_key(&self) -> bool {
        self.auth.is_some()
    }

    fn request<B>(&self, body: B) -> Request<B> {
        let mut request = Request::new(body);
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

    /// Sends the body `make_body` builds and returns the parsed completion. `timeout` bounds the
    /// whole attempt (connect, first byte and the full body); `cut_by_deadline` says whether the
    /// deadline set it. The body is built again rather than kept for the rare resend: a request
    /// waiting seconds for the model then holds no copy of what it sent.
    pub async fn complete(
        &self,
        make_body: impl Fn() -> Bytes,
        timeout: Duration,
        cut_by_deadline: bool,
    ) -> Result<Completion, AttemptError> {
        let attempt = async {
            let response = self.send_checked(make_body).await?;
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
        let response = bounded(timeout, cut_by_deadline, self.send_checked(make_body)).await?;
        Ok(response.into_body())
    }

    /// Sends and returns a 2xx response unread; any other status is read (capped) and classified.
    async fn send_checked(&self, make_body: impl Fn() -> Bytes) -> Result<Response<UpstreamBody>, AttemptError> {
        let response = self.send(make_body).await?;
        if response.status().is_success() {
            return Ok(response);
        }
        // Boxed: a rare path whose state would otherwise sit in every waiting request's future.
        Err(Box::pin(self.error_of(response)).await)
    }

    /// HTTP/2 when the upstream speaks it, else hyper's HTTP/1.1 pool.
    async fn send(&self, make_body: impl Fn() -> Bytes) -> Result<Response<UpstreamBody>, AttemptError> {
        if let Some(channel) = self.h2.as_ref().filter(|channel| !channel.is_http1_only()) {
            let head = |length: usize| {
                let mut head = self.request(());
                head.headers_mut().insert(CONTENT_LENGTH, HeaderValue::from(length));
                head
            };
            match channel.send(head, &make_body).await {
                Ok(Some(response)) => return Ok(response.map(|stream| UpstreamBody(BodyStream::Http2(stream)))),
                Ok(None) => {}
                Err(error) => return Err(error),
            }
        }
        let sent = self.http.request(self.request(Full::new(make_body()))).await;
        Ok(sent.map_err(classify_send_error)?.map(|incoming| UpstreamBody(BodyStream::Http1(incoming))))
    }

    /// A non-2xx answer, read (capped) and classified.
    async fn error_of(&self, response: Response<UpstreamBody>) -> AttemptError {
        let status = response.status();
        let headers = response.headers().clone();
        match read_capped(response, self.max_response_bytes).await {
            Ok(bytes) => status_error(status.as_u16(), &headers, &bytes),
            Err(error) => error,
        }
    }
}

/// One attempt, cut at `timeout`. A combinator, not an `async fn`: one would keep the attempt's
/// future twice (its argument, and inside the timeout), ~1.3 KiB more per request in flight.
fn bounded<T>(
    timeout: Duration,
    cut_by_deadline: bool,
    attempt: impl std::future::Future<Output = Result<T, AttemptError>>,
) -> impl std::future::Future<Output = Result<T, AttemptError>> {
    use futures_util::FutureExt;
    tokio::time::timeout(timeout, attempt).map(move |r| r.unwrap_or(Err(AttemptError::Timeout { cut_by_deadline })))
}

/// A response body, read chunk by chunk.
pub struct UpstreamBody(BodyStream);

enum BodyStream {
    Http1(Incoming),
    Http2(h2::RecvStream),
}

pub type BodyError = Box<dyn std::error::Error + Send + Sync>;

impl UpstreamBody {
    /// The next data chunk; `None` at the end (trailers are skipped).
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, BodyError> {
        match &mut self.0 {
            BodyStream::Http2(stream) => Ok(next_chunk(stream).await?),
            BodyStream::Http1(incoming) => {
                while let Some(frame) = incoming.frame().await {
                    if let Ok(data) = frame?.into_data() {
                        return Ok(Some(data));
                    }
                }
                Ok(None)
            }
        }
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

pub(super) fn error_chain(err: &dyn std::error::Error) -> String {
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
async fn read_capped(response: Response<UpstreamBody>, cap: usize) -> Result<Bytes, AttemptError> {
    let declared =
        response.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > cap) {
        return Err(AttemptError::Invalid(format!("response body over {cap} bytes")));
    }
    let mut body = BytesMut::with_capacity(declared.unwrap_or(4096).min(cap));
    let mut stream = response.into_body();
    while let Some(chunk) = stream.chunk().await.map_err(|e| AttemptError::Broken(error_chain(&*e)))? {
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
