//! The accept loop on hyper: HTTP/1.1, and HTTP/2 by prior knowledge (h2c) or ALPN `h2` with TLS,
//! served through hyper-util's auto builder. Slow clients are cut by hyper's header read timeout
//! (which also closes idle keep-alive connections); shutdown is graceful with a deadline.

pub mod runtime;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

/// A request head larger than this is refused with 431 (hyper's read buffer is capped here).
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// More header lines than this are refused with 431.
pub const MAX_HEADERS: usize = 100;
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// HTTP/2 clients (load balancers) that vanish without a FIN are found by pings.
const H2_KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(20);
const H2_MAX_STREAMS: u32 = 1024;

pub struct ServeOptions {
    /// A request head must arrive within this time; an idle keep-alive connection is closed after it.
    pub header_read_timeout: Duration,
    pub drain_timeout: Duration,
    pub tls: Option<TlsAcceptor>,
}

/// hyper's connection builder with velochat's limits.
fn connection_builder(options: &ServeOptions) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        // Without a timer hyper silently disables the header read timeout.
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout)
        .keep_alive(true)
        .max_buf_size(MAX_HEAD_BYTES)
        .max_headers(MAX_HEADERS);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(H2_KEEP_ALIVE_INTERVAL)
        .keep_alive_timeout(options.header_read_timeout.max(Duration::from_secs(5)))
        .max_concurrent_streams(H2_MAX_STREAMS)
        .max_header_list_size(MAX_HEAD_BYTES as u32);
    builder
}

/// Serves until `stop_accepting` resolves, then lets in-flight requests finish for at most
/// `drain_timeout`; idle connections close at once, busy ones after their response.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    options: ServeOptions,
    stop_accepting: impl Future<Output = ()>,
) {
    let builder = connection_builder(&options);
    let graceful = GracefulShutdown::new();
    let connections = TaskTracker::new();
    // Cancelled when the drain deadline passes: what is still open then is dropped.
    let abandon = CancellationToken::new();
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
        let connection = Connection {
            tls: options.tls.is_some(),
            builder: builder.clone(),
            router: router.clone(),
            peer,
            watcher: graceful.watcher(),
            abandon: abandon.clone(),
        };
        match options.tls.clone() {
            None => {
                connections.spawn(connection.serve(stream));
            }
            Some(acceptor) => {
                connections.spawn(async move {
                    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls_stream)) => connection.serve(tls_stream).await,
                        Ok(Err(e)) => tracing::debug!(error = %e, %peer, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        }
    }
    drop(listener);
    connections.close();
    tokio::select! {
        _ = graceful.shutdown() => {
            connections.wait().await;
            tracing::info!("all connections drained");
        }
        _ = tokio::time::sleep(options.drain_timeout) => {
            tracing::warn!("drain deadline passed; closing remaining connections");
            abandon.cancel();
        }
    }
}

/// Whether a request arrived over this server's own TLS (for `Secure` cookies).
#[derive(Debug, Clone, Copy)]
pub struct OverTls(pub bool);

struct Connection {
    tls: bool,
    builder: auto::Builder<TokioExecutor>,
    router: Router,
    peer: SocketAddr,
    watcher: hyper_util::server::graceful::Watcher,
    abandon: CancellationToken,
}

impl Connection {
    async fn serve<I>(self, io: I)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Connection { tls, builder, router, peer, watcher, abandon } = self;
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            request.extensions_mut().insert(OverTls(tls));
            // Its own task: a caller that hangs up drops hyper's future, but an accepted message
            // is still settled (turn, tokens, event).
            let handled = tokio::spawn(router.clone().oneshot(request.map(axum::body::Body::new)));
            async move {
                match handled.await {
                    Ok(answered) => answered,
                    Err(panicked) => {
                        tracing::error!(error = %panicked, "request handler panicked");
                        Ok(axum::response::IntoResponse::into_response(crate::api::error::ApiError::Internal))
                    }
                }
            }
        });
        let connection = watcher.watch(builder.serve_connection(TokioIo::new(io), service).into_owned());
        tokio::select! {
            served = connection => {
                if let Err(e) = served {
                    tracing::debug!(error = %e, %peer, "connection closed with an error");
                }
            }
            _ = abandon.cancelled() => {}
        }
    }
}

/// A rustls acceptor from PEM files (certificate chain and private key), offering HTTP/2 and
/// HTTP/1.1 by ALPN.
pub fn tls_acceptor(cert_path: &str, key_path: &str) -> anyhow::Result<TlsAcceptor> {
    use anyhow::Context;
    let certs = crate::config::pem::certificates("server.tls_cert", cert_path)?;
    let key = crate::config::pem::private_key("server.tls_key", key_path)?;
    let provider = std::sync::Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mut config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("server.tls_cert / server.tls_key do not form a usable certificate")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(std::sync::Arc::new(config)))
}

/// True for 127.0.0.0/8 and ::1.
pub fn is_loopback(addr: &SocketAddr) -> bool {
    addr.ip().is_loopback()
}

/// Refuses an open door: no caller key (configured, or a site's) on a public address needs an
/// explicit opt-in.
pub fn refuse_open_door(
    settings: &crate::config::Settings,
    addr: &SocketAddr,
    site_caller_keys: bool,
) -> anyhow::Result<()> {
    let no_keys = settings.auth.api_keys.iter().all(|k| k.is_empty()) && !site_caller_keys;
    if no_keys && !is_loopback(addr) && !settings.auth.allow_anonymous {
        anyhow::bail!(
            "refusing to start: listening on {addr} (not loopback) with no caller key. Set VELOCHAT_API_KEYS, \
             or VELOCHAT_ALLOW_ANONYMOUS=true to accept anonymous callers (limited per IP)"
        );
    }
    Ok(())
}
