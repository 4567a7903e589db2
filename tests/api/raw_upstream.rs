//! Misbehaving upstreams wiremock cannot play: trickling bodies, connections reset mid-body,
//! and an address whose accept queue is full (connects hang, like a black hole).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

pub struct RawUpstream {
    pub base_url: String,
    pub connections: Arc<AtomicUsize>,
    _keep: Vec<TcpStream>,
}

impl RawUpstream {
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

async fn read_request(stream: &mut TcpStream) {
    let mut buffer = vec![0u8; 64 * 1024];
    let mut seen = Vec::new();
    loop {
        let Ok(n) = stream.read(&mut buffer).await else {
            return;
        };
        if n == 0 {
            return;
        }
        seen.extend_from_slice(&buffer[..n]);
        if let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&seen[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if seen.len() >= end + 4 + length {
                return;
            }
        }
    }
}

/// Serves every connection with `behaviour`, after reading the request.
pub async fn serve<F, Fut>(behaviour: F) -> RawUpstream
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base_url = format!("http://{}", listener.local_addr().unwrap());
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = connections.clone();
    let behaviour = Arc::new(behaviour);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            let behaviour = behaviour.clone();
            tokio::spawn(async move {
                read_request(&mut stream).await;
                behaviour(stream).await;
            });
        }
    });
    RawUpstream { base_url, connections, _keep: Vec::new() }
}

/// Headers at once, then the body one byte every `gap`.
pub async fn trickle(gap: Duration) -> RawUpstream {
    serve(move |mut stream| async move {
        let body = br#"{"choices":[{"message":{"content":"late"},"finish_reason":"stop"}]}"#;
        let head =
            format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n", body.len());
        let _ = stream.write_all(head.as_bytes()).await;
        for byte in body {
            if stream.write_all(&[*byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(gap).await;
        }
    })
    .await
}

/// Promises 2,000 bytes, sends 100, then resets the connection.
pub async fn reset_mid_body() -> RawUpstream {
    serve(|mut stream| async move {
        let _ = stream
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2000\r\n\r\n")
            .await;
        let _ = stream.write_all(&[b' '; 100]).await;
        let _ = stream.flush().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        // A zero linger resets at once instead of blocking on drop: exactly the fault wanted.
        #[allow(deprecated)]
        let _ = stream.set_linger(Some(Duration::ZERO));
        drop(stream);
    })
    .await
}

/// Reads the request and never answers.
pub async fn silent() -> RawUpstream {
    serve(|stream| async move {
        tokio::time::sleep(Duration::from_secs(60)).await;
        drop(stream);
    })
    .await
}

/// A listener that never accepts, its tiny backlog already full: new connects get no SYN-ACK.
pub async fn black_hole() -> RawUpstream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = socket.local_addr().unwrap();
    let listener = socket.listen(0).unwrap();
    let mut keep = Vec::new();
    // Fill the accept queue; further SYNs are dropped.
    for _ in 0..4 {
        if let Ok(Ok(stream)) = tokio::time::timeout(Duration::from_millis(100), TcpStream::connect(addr)).await {
            keep.push(stream);
        }
    }
    std::mem::forget(listener);
    RawUpstream { base_url: format!("http://{addr}"), connections: Arc::new(AtomicUsize::new(0)), _keep: keep }
}

/// An address nothing listens on.
pub async fn refused() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}
