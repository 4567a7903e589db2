//! HTTP/2 to the model API on one shared connection, driven with the `h2` crate directly.
//!
//! Why not hyper's client for this: per request it boxes its response future (~3.3 KiB) and, while
//! the stream waits to open, spawns a task piping the body into it (~4.7 KiB): 80 MB at 10,000
//! requests in flight (heaptrack, BENCHMARKS.md). `h2` queues a request's body itself, so a request
//! here is its stream and nothing else. HTTP/1.1 upstreams stay on hyper's pooled client.

use super::error::AttemptError;
use bytes::Bytes;
use h2::client::SendRequest;
use h2::RecvStream;
use http::{Request, Response, Uri};
use parking_lot::RwLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::ClientConfig;
use tokio_rustls::TlsConnector;

/// hyper's own defaults: a slow reader of one stream cannot stall the others.
const STREAM_WINDOW: u32 = 2 * 1024 * 1024;
const CONNECTION_WINDOW: u32 = 5 * 1024 * 1024;

pub struct H2Channel {
    host: String,
    port: u16,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    connect_timeout: Duration,
    /// The live connection and its generation (so a failed request only drops the connection it used).
    live: RwLock<Option<(u64, SendRequest<Bytes>)>>,
    generation: AtomicU64,
    /// One connect at a time: thousands of requests arriving together share the first connection.
    connecting: tokio::sync::Mutex<()>,
    /// TLS negotiated HTTP/1.1 (no `h2` by ALPN): the caller's HTTP/1.1 client serves this upstream.
    http1_only: AtomicBool,
}

impl H2Channel {
    /// A channel for `url`: HTTPS upstreams offer `h2` by ALPN; plain HTTP only with `h2c` (prior
    /// knowledge). None for plain HTTP without `h2c`: that is HTTP/1.1.
    pub fn new(url: &Uri, h2c: bool, tls: &Arc<ClientConfig>, connect_timeout: Duration) -> Option<Self> {
        let https = url.scheme_str() == Some("https");
        if !https && !h2c {
            return None;
        }
        let host = url.host()?.trim_start_matches('[').trim_end_matches(']').to_owned();
        let port = url.port_u16().unwrap_or(if https { 443 } else { 80 });
        let tls = if https {
            let mut config = ClientConfig::clone(tls);
            config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
            let name = ServerName::try_from(host.clone()).ok()?;
            Some((TlsConnector::from(Arc::new(config)), name))
        } else {
            None
        };
        Some(Self {
            host,
            port,
            tls,
            connect_timeout,
            live: RwLock::new(None),
            generation: AtomicU64::new(0),
            connecting: tokio::sync::Mutex::new(()),
            http1_only: AtomicBool::new(false),
        })
    }

    /// True once the upstream answered TLS without `h2`: use HTTP/1.1 from then on.
    pub fn is_http1_only(&self) -> bool {
        self.http1_only.load(Ordering::Relaxed)
    }

    /// Sends one request. A request the server provably did not process (the connection was gone
    /// before it was sent, GOAWAY, REFUSED_STREAM) is sent once more on a fresh connection; any
    /// other failure is the attempt's. `head` gets the body's length. `Ok(None)`: the upstream
    /// speaks only HTTP/1.1; send it there.
    pub async fn send(
        self: &Arc<Self>,
        head: impl Fn(usize) -> Request<()>,
        make_body: impl Fn() -> Bytes,
    ) -> Result<Option<Response<RecvStream>>, AttemptError> {
        let mut fresh_tries = 1;
        loop {
            let Some((generation, sender)) = self.sender().await? else { return Ok(None) };
            let body = make_body();
            match send_once(sender, head(body.len()), body).await {
                Ok(response) => return Ok(Some(response)),
                Err((error, sent)) => {
                    let unprocessed = !sent || error.is_go_away() || error.reason() == Some(h2::Reason::REFUSED_STREAM);
                    if !sent || error.is_io() || error.is_go_away() {
                        self.forget(generation);
                    }
                    if unprocessed && fresh_tries > 0 {
                        fresh_tries -= 1;
                        continue;
                    }
                    return Err(AttemptError::Broken(super::client::error_chain(&error)));
                }
            }
        }
    }

    async fn sender(self: &Arc<Self>) -> Result<Option<(u64, SendRequest<Bytes>)>, AttemptError> {
        let live = self.live.read().clone();
        match live {
            Some(live) => Ok(Some(live)),
            // Boxed: inline, the connect and TLS handshake would sit in every request's future
            // (~10 KiB each) though only the first request on a connection ever runs them.
            None => Box::pin(self.connect()).await,
        }
    }

    async fn connect(self: &Arc<Self>) -> Result<Option<(u64, SendRequest<Bytes>)>, AttemptError> {
        let _one_at_a_time = self.connecting.lock().await;
        if let Some(live) = self.live.read().clone() {
            return Ok(Some(live));
        }
        if self.is_http1_only() {
            return Ok(None);
        }
        let opened = tokio::time::timeout(self.connect_timeout, self.open())
            .await
            .map_err(|_| AttemptError::Timeout { cut_by_deadline: false })??;
        let Some((sender, connection)) = opened else {
            self.http1_only.store(true, Ordering::Relaxed);
            tracing::info!(host = %self.host, "the upstream offers no HTTP/2 (ALPN); using HTTP/1.1");
            return Ok(None);
        };
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        *self.live.write() = Some((generation, sender.clone()));
        let channel = Arc::downgrade(self);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(error = %error, "upstream HTTP/2 connection ended");
            }
            if let Some(channel) = channel.upgrade() {
                channel.forget(generation);
            }
        });
        Ok(Some((generation, sender)))
    }

    /// Connects and handshakes; None when TLS chose HTTP/1.1.
    async fn open(&self) -> Result<Option<Handshaken>, AttemptError> {
        let connect_error = |e: &dyn std::error::Error| AttemptError::Connect(super::client::error_chain(e));
        let tcp = TcpStream::connect((self.host.as_str(), self.port)).await.map_err(|e| connect_error(&e))?;
        tcp.set_nodelay(true).map_err(|e| connect_error(&e))?;
        match &self.tls {
            None => Ok(Some(handshake(tcp).await.map_err(|e| connect_error(&e))?)),
            Some((connector, name)) => {
                let tls = connector.connect(name.clone(), tcp).await.map_err(|e| connect_error(&e))?;
                if tls.get_ref().1.alpn_protocol() != Some(b"h2") {
                    return Ok(None);
                }
                Ok(Some(handshake(tls).await.map_err(|e| connect_error(&e))?))
            }
        }
    }

    fn forget(&self, generation: u64) {
        let mut live = self.live.write();
        if live.as_ref().is_some_and(|(current, _)| *current == generation) {
            *live = None;
        }
    }
}

type Handshaken =
    (SendRequest<Bytes>, std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), h2::Error>> + Send>>);

async fn handshake<T>(io: T) -> Result<Handshaken, h2::Error>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = h2::client::Builder::new()
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .enable_push(false)
        .handshake(io)
        .await?;
    Ok((sender, Box::pin(connection)))
}

/// The error comes with whether the request may have reached the server.
async fn send_once(
    sender: SendRequest<Bytes>,
    head: Request<()>,
    body: Bytes,
) -> Result<Response<RecvStream>, (h2::Error, bool)> {
    let mut sender = sender.ready().await.map_err(|e| (e, false))?;
    let (response, mut stream) = sender.send_request(head, body.is_empty()).map_err(|e| (e, false))?;
    if !body.is_empty() {
        // h2 queues the body until the stream opens and has window: no task, no copy.
        stream.send_data(body, true).map_err(|e| (e, true))?;
    }
    response.await.map_err(|e| (e, true))
}

/// The next data chunk of an HTTP/2 response, its bytes handed back to flow control at once.
pub async fn next_chunk(stream: &mut RecvStream) -> Result<Option<Bytes>, h2::Error> {
    match stream.data().await {
        None => Ok(None),
        Some(Err(error)) => Err(error),
        Some(Ok(data)) => {
            let _ = stream.flow_control().release_capacity(data.len());
            Ok(Some(data))
        }
    }
}
