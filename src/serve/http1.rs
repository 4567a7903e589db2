//! One HTTP/1.1 connection, served in the accept loop's task.
//!
//! Why not hyper's server: hyper keeps an 8 KiB write buffer and an 8 KiB read buffer for every
//! connection, plus a dispatcher and a service box, ~20 KiB per request in flight (heaptrack, see
//! BENCHMARKS.md), and none of it can be made smaller. A request here owns no buffer while its
//! handler waits for the model: the head is copied out exactly, the body is handed over, and the
//! read buffer is dropped until the next request arrives. The handler always runs to its end,
//! even if the caller hangs up meanwhile (an accepted message is settled: turn, tokens, event).

use super::wire::{self, BodyFraming, ChunkedState, Head, ResponseFraming, WireError};
use crate::api::error::ApiError;
use axum::body::{Body, HttpBody};
use axum::extract::ConnectInfo;
use axum::response::IntoResponse;
use axum::Router;
use bytes::{Bytes, BytesMut};
use http::{Method, Response, StatusCode, Version};
use http_body_util::BodyExt;
use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// A first read this size takes a realistic request (system prompt, history, context) in one go.
const FIRST_READ: usize = 2048;
const MORE_READ: usize = 8192;
/// Responses up to this size go out in one write with their head.
const COALESCE_LIMIT: usize = 64 * 1024;

#[derive(Clone, Copy)]
pub(super) struct Limits {
    /// Bounds reading a request's head, and separately its body; also how long an idle
    /// keep-alive connection is kept.
    pub read_timeout: Duration,
    pub body_limit: usize,
}

enum ReadError {
    /// The peer closed, the socket failed, or the server is stopping while the connection idles.
    Gone,
    TimedOut,
    Wire(WireError),
}

impl From<WireError> for ReadError {
    fn from(error: WireError) -> Self {
        ReadError::Wire(error)
    }
}

// Not an `async fn`: its arguments would be stored twice in every connection's task.
#[allow(clippy::manual_async_fn)]
pub(super) fn serve_connection<I>(
    mut io: I,
    peer: SocketAddr,
    router: Router,
    limits: Limits,
    stop: CancellationToken,
) -> impl std::future::Future<Output = ()> + Send
where
    I: AsyncRead + AsyncWrite + Unpin + Send,
{
    async move {
        let mut buffer = BytesMut::new();
        loop {
            let head = match read_head(&mut io, &mut buffer, limits.read_timeout, &stop).await {
                Ok(head) => head,
                Err(error) => return Box::pin(refuse(&mut io, error)).await,
            };
            let Head { request, framing, mut keep_alive, expects_continue } = head;
            let body = match read_body(&mut io, &mut buffer, framing, expects_continue, limits).await {
                Ok((body, complete)) => {
                    // An unread or cut-off body leaves the stream mid-message: answer, then close.
                    keep_alive &= complete;
                    body
                }
                Err(error) => return Box::pin(refuse(&mut io, error)).await,
            };
            if buffer.is_empty() {
                buffer = BytesMut::new();
            }
            let version = request.version();
            let is_head = request.method() == Method::HEAD;
            let mut request = request.map(|()| Body::from(body));
            request.extensions_mut().insert(ConnectInfo(peer));
            let Ok(response) = router.clone().oneshot(request).await;
            keep_alive &= !stop.is_cancelled();
            // Writing (and refusing) is boxed: inline, their state would enlarge every connection's
            // task for the whole time its request waits for the model (~300 bytes each).
            if Box::pin(write_response(&mut io, response, keep_alive, is_head, version)).await.is_err() || !keep_alive {
                let _ = io.shutdown().await;
                return;
            }
        }
    }
}

async fn read_head<I: AsyncRead + Unpin>(
    io: &mut I,
    buffer: &mut BytesMut,
    timeout: Duration,
    stop: &CancellationToken,
) -> Result<Head, ReadError> {
    let deadline = Instant::now() + timeout;
    loop {
        if !buffer.is_empty() {
            if let Some(head) = wire::parse_head(buffer)? {
                return Ok(head);
            }
        }
        let idle = buffer.is_empty();
        tokio::select! {
            biased;
            // Between requests the connection closes at once on shutdown; mid-head it may finish.
            _ = stop.cancelled(), if idle => return Err(ReadError::Gone),
            read = read_more(io, buffer, if idle { FIRST_READ } else { MORE_READ }, deadline) => match read {
                Err(ReadError::TimedOut) if idle => return Err(ReadError::Gone),
                other => other?,
            },
        }
    }
}

/// The whole body, and whether the stream is left at the next request. A declared length over
/// the limit is not read (the handler sees Content-Length and answers 413); a chunked body stops
/// just past the limit (the handler sees the excess and answers 413).
async fn read_body<I: AsyncRead + AsyncWrite + Unpin>(
    io: &mut I,
    buffer: &mut BytesMut,
    framing: BodyFraming,
    expects_continue: bool,
    limits: Limits,
) -> Result<(Bytes, bool), ReadError> {
    let deadline = Instant::now() + limits.read_timeout;
    match framing {
        BodyFraming::Length(0) => Ok((Bytes::new(), true)),
        BodyFraming::Length(declared) if declared > limits.body_limit as u64 => Ok((Bytes::new(), false)),
        BodyFraming::Length(declared) => {
            let declared = declared as usize;
            if expects_continue && buffer.len() < declared {
                write_continue(io).await?;
            }
            while buffer.len() < declared {
                read_more(io, buffer, declared - buffer.len(), deadline).await?;
            }
            Ok((buffer.split_to(declared).freeze(), true))
        }
        BodyFraming::Chunked => {
            if expects_continue && buffer.is_empty() {
                write_continue(io).await?;
            }
            let (mut state, mut body) = (ChunkedState::default(), BytesMut::new());
            while !wire::decode_chunked(&mut state, buffer, &mut body, limits.body_limit)? {
                read_more(io, buffer, MORE_READ, deadline).await?;
            }
            Ok((body.freeze(), state == ChunkedState::Done))
        }
    }
}

async fn read_more<I: AsyncRead + Unpin>(
    io: &mut I,
    buffer: &mut BytesMut,
    want: usize,
    deadline: Instant,
) -> Result<(), ReadError> {
    buffer.reserve(want);
    match tokio::time::timeout_at(deadline, io.read_buf(buffer)).await {
        Err(_) => Err(ReadError::TimedOut),
        Ok(Ok(0) | Err(_)) => Err(ReadError::Gone),
        Ok(Ok(_)) => Ok(()),
    }
}

async fn write_continue<I: AsyncWrite + Unpin>(io: &mut I) -> Result<(), ReadError> {
    let sent = io.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await.and(io.flush().await);
    sent.map_err(|_| ReadError::Gone)
}

/// Answers a request that cannot be served, in the API's error shape, and closes.
async fn refuse<I: AsyncWrite + Unpin>(io: &mut I, error: ReadError) {
    let refusal = match error {
        ReadError::Gone => return,
        ReadError::TimedOut => ApiError::NotHttp {
            status: StatusCode::REQUEST_TIMEOUT,
            code: "request_timeout",
            message: "the request did not arrive in time",
        },
        ReadError::Wire(error) => {
            ApiError::NotHttp { status: error.status(), code: error.code(), message: error.message() }
        }
    };
    let _ = write_response(io, refusal.into_response(), false, false, Version::HTTP_11).await;
    let _ = io.shutdown().await;
}

async fn write_response<I: AsyncWrite + Unpin>(
    io: &mut I,
    response: Response<Body>,
    keep_alive: bool,
    is_head: bool,
    version: Version,
) -> std::io::Result<()> {
    let (parts, mut body) = response.into_parts();
    let status = parts.status;
    let framing = if status.is_informational() || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED
    {
        ResponseFraming::Empty
    } else if is_head {
        ResponseFraming::HeadOnly
    } else {
        match HttpBody::size_hint(&body).exact() {
            Some(len) => ResponseFraming::Length(len),
            None => ResponseFraming::Chunked,
        }
    };
    let coalesced = match framing {
        ResponseFraming::Length(len) if len as usize <= COALESCE_LIMIT => len as usize,
        _ => 0,
    };
    let mut out = Vec::with_capacity(384 + coalesced);
    super::date::with_http_date(|date| {
        wire::encode_head(&mut out, status, &parts.headers, framing, keep_alive, version, date)
    });
    match framing {
        ResponseFraming::Empty | ResponseFraming::HeadOnly => io.write_all(&out).await?,
        ResponseFraming::Length(len) => {
            let mut written = 0u64;
            while let Some(data) = next_data(&mut body).await? {
                written += data.len() as u64;
                if out.len() + data.len() <= out.capacity() {
                    out.extend_from_slice(&data);
                } else {
                    io.write_all(&out).await?;
                    out.clear();
                    io.write_all(&data).await?;
                }
            }
            if written != len {
                return Err(std::io::Error::other("the body's length differs from its size hint"));
            }
            io.write_all(&out).await?;
        }
        ResponseFraming::Chunked => {
            // Each frame goes out at once: a streamed reply must reach the visitor as it is made.
            io.write_all(&out).await?;
            io.flush().await?;
            while let Some(data) = next_data(&mut body).await? {
                if data.is_empty() {
                    continue;
                }
                out.clear();
                let _ = write!(out, "{:x}\r\n", data.len());
                out.extend_from_slice(&data);
                out.extend_from_slice(b"\r\n");
                io.write_all(&out).await?;
                io.flush().await?;
            }
            io.write_all(b"0\r\n\r\n").await?;
        }
    }
    io.flush().await
}

/// The next data frame; trailers are dropped (nothing here sends them), a body error ends the
/// connection without a terminating chunk so the caller sees the reply was cut.
async fn next_data(body: &mut Body) -> std::io::Result<Option<Bytes>> {
    loop {
        match body.frame().await {
            None => return Ok(None),
            Some(Err(error)) => return Err(std::io::Error::other(error)),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    return Ok(Some(data));
                }
            }
        }
    }
}
