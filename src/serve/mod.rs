//! The accept loop: TCP_NODELAY on every socket, optional TLS, read timeouts, and a graceful
//! shutdown with a deadline (idle keep-alive clients or a slowloris would otherwise hold the
//! process open). Connections are served by the lean HTTP/1.1 server in `http1`.

mod date;
mod http1;
pub mod runtime;
mod wire;

use axum::Router;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub struct ServeOptions {
    /// Bounds reading a request's head, then its body; also how long a keep-alive connection idles.
    pub header_read_timeout: Duration,
    pub drain_timeout: Duration,
    pub body_limit: usize,
    pub tls: Option<TlsAcceptor>,
}

const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves until `stop_accepting` resolves, then lets in-flight requests finish for at most
/// `drain_timeout`; idle connections close at once, busy ones after their response.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    options: ServeOptions,
    stop_accepting: impl Future<Output = ()>,
) {
    let connections = TaskTracker::new();
    let stopping = CancellationToken::new();
    let limits = http1::Limits { read_timeout: options.header_read_timeout, body_limit: options.body_limit };
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
        let (router, stopping) = (router.clone(), stopping.clone());
        // Two tasks of their own types: a plain connection's task would otherwise be as large as
        // a TLS one (rustls state and handshake inline), ~4 KiB more per connection.
        match options.tls.clone() {
            None => {
                connections.spawn(http1::serve_connection(stream, peer, router, limits, stopping));
            }
            Some(acceptor) => {
                connections.spawn(async move {
                    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls_stream)) => http1::serve_connection(tls_stream, peer, router, limits, stopping).await,
                        Ok(Err(e)) => tracing::debug!(error = %e, %peer, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        }
    }
    drop(listener);
    stopping.cancel();
    connections.close();
    tokio::select! {
        _ = connections.wait() => tracing::info!("all connections drained"),
        _ = tokio::time::sleep(options.drain_timeout) => tracing::warn!("drain deadline passed; closing remaining connections"),
    }
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
