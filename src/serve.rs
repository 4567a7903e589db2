//! The accept loop: TCP_NODELAY on every socket, optional TLS, a header-read timeout, and a
//! graceful shutdown with a deadline (axum's own has none, and idle keep-alive clients or a
//! slowloris would otherwise hold the process open).

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

pub struct ServeOptions {
    pub header_read_timeout: Duration,
    pub drain_timeout: Duration,
    pub tls: Option<TlsAcceptor>,
}

const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves until `stop_accepting` resolves, then lets in-flight requests finish for at most
/// `drain_timeout`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    options: ServeOptions,
    stop_accepting: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    // half_close: otherwise hyper drops the handler when the caller hangs up mid-request, leaving the
    // message half-settled (session turn without its reply, tokens unbooked, no event). A message
    // once accepted runs to its end, bounded by its deadline; only writing its reply can fail.
    http.timer(TokioTimer::new()).header_read_timeout(options.header_read_timeout).keep_alive(true).half_close(true);
    tokio::pin!(stop_accepting);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            _ = &mut stop_accepting => break,
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let service = tower::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            own_request_head(&mut request);
            router.clone().oneshot(request)
        });
        let service = TowerToHyperService::new(service);
        let http = http.clone();
        let watcher = graceful.watcher();
        let tls = options.tls.clone();
        tokio::spawn(async move {
            let result = match tls {
                None => watcher.watch(http.serve_connection(TokioIo::new(stream), service)).await,
                Some(acceptor) => match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(tls_stream)) => watcher.watch(http.serve_connection(TokioIo::new(tls_stream), service)).await,
                    Ok(Err(e)) => {
                        tracing::debug!(error = %e, %peer, "TLS handshake failed");
                        return;
                    }
                    Err(_) => return,
                },
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => tracing::info!("all connections drained"),
        _ = tokio::time::sleep(options.drain_timeout) => tracing::warn!("drain deadline passed; closing remaining connections"),
    }
}

/// hyper parses the URI and headers as slices of the connection's 8 KiB read buffer, and a request
/// awaiting a 2 s model keeps them; meanwhile hyper allocates a second buffer to watch the socket.
/// Copying the few bytes of the head (~1 µs) frees the first buffer at once: 8 KiB less per request
/// in flight, 80 MB at 10,000 (measured in BENCHMARKS.md).
fn own_request_head<B>(request: &mut hyper::Request<B>) {
    use bytes::Bytes;
    use http::header::{HeaderMap, HeaderValue};
    if let Ok(uri) = http::Uri::try_from(request.uri().to_string()) {
        *request.uri_mut() = uri;
    }
    let shared = std::mem::take(request.headers_mut());
    // One buffer for all values (names are already owned by hyper): one allocation, and the
    // values' later clones only count references.
    let mut copied = Vec::with_capacity(shared.values().map(HeaderValue::len).sum());
    for value in shared.values() {
        copied.extend_from_slice(value.as_bytes());
    }
    let copied = Bytes::from(copied);
    let mut owned = HeaderMap::with_capacity(shared.len());
    let (mut at, mut name) = (0, None);
    let mut entries = shared.into_iter().peekable();
    while let Some((next_name, value)) = entries.next() {
        // `into_iter` yields a name only for the first of repeated headers.
        if next_name.is_some() {
            name = next_name;
        }
        let bytes = copied.slice(at..(at + value.len()).min(copied.len()));
        at += value.len();
        let key = if matches!(entries.peek(), Some((None, _))) { name.clone() } else { name.take() };
        // The slice is the value (same iteration order); a copy of its own if that ever failed.
        let copy = HeaderValue::from_maybe_shared(bytes)
            .ok()
            .filter(|copy| *copy == value)
            .or_else(|| HeaderValue::from_bytes(value.as_bytes()).ok());
        let (Some(key), Some(mut copy)) = (key, copy) else { continue };
        copy.set_sensitive(value.is_sensitive());
        owned.append(key, copy);
    }
    *request.headers_mut() = owned;
}

/// A rustls acceptor from PEM files (certificate chain and private key).
pub fn tls_acceptor(cert_path: &str, key_path: &str) -> anyhow::Result<TlsAcceptor> {
    use anyhow::Context;
    let certs = crate::config::pem::certificates("server.tls_cert", cert_path)?;
    let key = rustls_pemfile::private_key(&mut std::io::BufReader::new(
        std::fs::File::open(key_path).with_context(|| format!("server.tls_key: cannot open {key_path}"))?,
    ))
    .with_context(|| format!("server.tls_key: {key_path} is not PEM"))?
    .with_context(|| format!("server.tls_key: no private key in {key_path}"))?;
    let provider = std::sync::Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mut config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("server.tls_cert / server.tls_key do not form a usable certificate")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(std::sync::Arc::new(config)))
}

/// True for 127.0.0.0/8 and ::1.
pub fn is_loopback(addr: &SocketAddr) -> bool {
    addr.ip().is_loopback()
}

#[cfg(test)]
mod tests {
    use super::own_request_head;
    use http::header::{HeaderValue, AUTHORIZATION};

    #[test]
    fn owned_head_keeps_every_header_value_order_and_flag() {
        let mut secret = HeaderValue::from_static("Bearer k");
        secret.set_sensitive(true);
        let mut request = http::Request::post("/v1/chat/completions?x=1")
            .header("x-visitor-id", "v-1")
            .header("accept", "a/b")
            .header("accept", "c/d")
            .header("accept", "e/f")
            .header("x-session-id", "s-1")
            .body(())
            .unwrap();
        request.headers_mut().insert(AUTHORIZATION, secret);
        let before = request.headers().clone();
        own_request_head(&mut request);
        assert_eq!(request.uri(), "/v1/chat/completions?x=1");
        assert_eq!(request.headers(), &before);
        let accepts: Vec<_> = request.headers().get_all("accept").iter().collect();
        assert_eq!(accepts, ["a/b", "c/d", "e/f"]);
        assert_eq!(request.headers()["x-session-id"], "s-1");
        assert_eq!(request.headers().len(), before.len());
        assert!(request.headers()[AUTHORIZATION].is_sensitive());
        assert!(!request.headers()["x-visitor-id"].is_sensitive());
    }
}
