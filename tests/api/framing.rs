//! Hostile framing against the real binary (hyper underneath): every request is refused or
//! handled as RFC 9112 says, and one request never gets two responses (no smuggled request is
//! ever answered).

use crate::helpers::{raw_connect, raw_exchange, read_to_close};
use crate::process::{start, Process};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The read timeouts of this suite's binary (slow-client tests wait on them).
const HEAD_TIMEOUT_MS: u64 = 400;

async fn binary() -> Process {
    start(&[("VELOCHAT__SERVER__HEADER_READ_TIMEOUT_MS", HEAD_TIMEOUT_MS.to_string())]).await
}

async fn connect(process: &Process) -> TcpStream {
    raw_connect(&process.address).await
}

async fn exchange(process: &Process, raw: &[u8]) -> String {
    raw_exchange(&process.address, raw).await
}

fn status_lines(response: &str) -> Vec<&str> {
    response.lines().filter(|line| line.starts_with("HTTP/1.")).collect()
}

/// A request smuggled inside another's body: answering it would be the desync.
const SMUGGLED: &str = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";

#[tokio::test]
async fn conflicting_or_faulty_framing_gets_one_response_and_a_closed_connection() {
    let process = binary().await;
    let json = "Content-Type: application/json\r\n";
    let cases: Vec<(&str, String)> = vec![
        (
            "Content-Length with Transfer-Encoding",
            format!("POST /sendChatMessage HTTP/1.1\r\nHost: x\r\n{json}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{SMUGGLED}"),
        ),
        (
            "Transfer-Encoding before Content-Length",
            format!("POST /sendChatMessage HTTP/1.1\r\nHost: x\r\n{json}Transfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n0\r\n\r\n{SMUGGLED}"),
        ),
        (
            "two different Content-Lengths",
            format!("POST /sendChatMessage HTTP/1.1\r\nHost: x\r\n{json}Content-Length: 2\r\nContent-Length: 40\r\n\r\n{{}}{SMUGGLED}"),
        ),
        (
            "HTTP/1.0 with Transfer-Encoding and keep-alive",
            format!("POST /sendChatMessage HTTP/1.0\r\n{json}Connection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{SMUGGLED}"),
        ),
        (
            "Transfer-Encoding not ending in chunked",
            format!("POST /sendChatMessage HTTP/1.1\r\nHost: x\r\n{json}Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n{SMUGGLED}"),
        ),
        (
            "an unknown Transfer-Encoding",
            format!("POST /sendChatMessage HTTP/1.1\r\nHost: x\r\n{json}Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n{SMUGGLED}"),
        ),
        (
            "whitespace before the header colon",
            format!("POST /sendChatMessage HTTP/1.1\r\nHost: x\r\n{json}Transfer-Encoding : chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n{SMUGGLED}"),
        ),
        (
            "obs-fold continuation line",
            format!("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n b\r\n\r\n{SMUGGLED}"),
        ),
        ("a space in the chunk size", format!("POST /sendChatMessage HTTP/1.1\r\nHost: x\r\n{json}Transfer-Encoding: chunked\r\n\r\n 2\r\n{{}}\r\n0\r\n\r\n{SMUGGLED}")),
        ("a plus sign in the chunk size", format!("POST /sendChatMessage HTTP/1.1\r\nHost: x\r\n{json}Transfer-Encoding: chunked\r\n\r\n+2\r\n{{}}\r\n0\r\n\r\n{SMUGGLED}")),
        ("a 0x chunk size", format!("POST /sendChatMessage HTTP/1.1\r\nHost: x\r\n{json}Transfer-Encoding: chunked\r\n\r\n0x2\r\n{{}}\r\n0\r\n\r\n{SMUGGLED}")),
        ("a chunk extension ending in a bare LF", format!("POST /sendChatMessage HTTP/1.1\r\nHost: x\r\n{json}Transfer-Encoding: chunked\r\n\r\n2;ext=1\n{{}}\r\n0\r\n\r\n{SMUGGLED}")),
        ("an overflowing chunk size", format!("POST /sendChatMessage HTTP/1.1\r\nHost: x\r\n{json}Transfer-Encoding: chunked\r\n\r\nfffffffffffffffffff\r\n{{}}\r\n0\r\n\r\n{SMUGGLED}")),
        ("a missing Host", format!("GET /healthz HTTP/1.1\r\n\r\n{SMUGGLED}")),
        ("a repeated Host", format!("GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n{SMUGGLED}")),
    ];
    for (name, raw) in cases {
        let response = exchange(&process, raw.as_bytes()).await;
        let statuses = status_lines(&response);
        assert_eq!(statuses.len(), 1, "{name}: exactly one response, got {response:?}");
        assert!(statuses[0].contains(" 400 ") || statuses[0].contains(" 415 "), "{name}: refused, got {response:?}");
        assert!(!response.contains("\"ok\""), "{name}: the smuggled request was never answered: {response:?}");
    }
}

#[tokio::test]
async fn our_own_refusals_are_json_naming_the_problem() {
    let process = binary().await;
    let missing_host = exchange(&process, b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n").await;
    assert!(missing_host.starts_with("HTTP/1.1 400 "), "{missing_host}");
    let body: serde_json::Value = serde_json::from_str(missing_host.split_once("\r\n\r\n").unwrap().1).unwrap();
    assert_eq!(body["error"]["code"], "invalid_host");
    assert_eq!(body["error"]["field"], "Host");

    let bad_chunk = exchange(
        &process,
        b"POST /sendChatMessage HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n+2\r\n{}\r\n0\r\n\r\n",
    )
    .await;
    assert!(bad_chunk.starts_with("HTTP/1.1 400 "), "{bad_chunk}");
    let body: serde_json::Value = serde_json::from_str(bad_chunk.split_once("\r\n\r\n").unwrap().1).unwrap();
    assert_eq!(body["error"]["code"], "malformed_json", "{bad_chunk}");
}

#[tokio::test]
async fn heads_over_the_size_or_header_count_limit_get_431() {
    let process = binary().await;
    let huge = format!("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Padding: {}\r\n\r\n", "a".repeat(70 * 1024));
    let response = exchange(&process, huge.as_bytes()).await;
    assert!(response.starts_with("HTTP/1.1 431 "), "{response}");
    let many: String = (0..150).map(|i| format!("X-H{i}: v\r\n")).collect();
    let response = exchange(&process, format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{many}\r\n").as_bytes()).await;
    assert!(response.starts_with("HTTP/1.1 431 "), "{response}");
    assert_eq!(status_lines(&response).len(), 1);
}

#[tokio::test]
async fn a_bare_lf_head_is_one_request_with_one_answer() {
    let process = binary().await;
    let response = exchange(&process, b"GET /healthz HTTP/1.1\nHost: x\nConnection: close\n\n").await;
    assert_eq!(status_lines(&response).len(), 1, "{response}");
}

/// Time from the last byte sent until the server closed, for a client that then goes quiet.
async fn closed_after(socket: &mut TcpStream) -> (Duration, String) {
    let started = Instant::now();
    let response = read_to_close(socket).await;
    (started.elapsed(), response)
}

#[tokio::test]
async fn slow_or_stalled_clients_are_closed_within_the_configured_time() {
    let process = binary().await;
    let limit = Duration::from_millis(HEAD_TIMEOUT_MS);
    let slack = Duration::from_millis(1500);

    // A head that stalls part-way.
    let mut stalled = connect(&process).await;
    stalled.write_all(b"GET /healthz HTTP/1.1\r\nHost:").await.unwrap();
    let (waited, _) = closed_after(&mut stalled).await;
    assert!(waited < limit + slack, "stalled head closed after {waited:?}");

    // A head trickled one byte at a time, each well inside the timeout: the whole head is bounded.
    let mut trickled = connect(&process).await;
    let started = Instant::now();
    for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ".iter().chain(b"a".repeat(200).iter()) {
        if trickled.write_all(&[*byte]).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        if started.elapsed() > limit + slack {
            break;
        }
    }
    let response = read_to_close(&mut trickled).await;
    assert!(
        started.elapsed() < limit + slack + Duration::from_millis(500),
        "trickled head held {:?}",
        started.elapsed()
    );
    assert!(!response.contains("200 OK"), "{response}");

    // A body declared and never sent: 408 in our JSON shape, then closed.
    let mut no_body = connect(&process).await;
    no_body
        .write_all(b"POST /sendChatMessage HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
        .await
        .unwrap();
    let (waited, response) = closed_after(&mut no_body).await;
    assert!(waited < limit + slack, "stalled body closed after {waited:?}");
    assert!(response.starts_with("HTTP/1.1 408 "), "{response}");
    assert!(response.contains("\"request_timeout\""), "{response}");

    // A body trickled a byte at a time: bounded as a whole, not per byte. Read while writing, so
    // the answer is taken before the server's close can reset the connection.
    let slow_body = connect(&process).await;
    let (mut reader, mut writer) = slow_body.into_split();
    writer
        .write_all(b"POST /sendChatMessage HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let trickle = tokio::spawn(async move {
        for _ in 0..60 {
            if writer.write_all(b" ").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let mut received = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), reader.read_to_end(&mut received)).await;
    trickle.abort();
    let response = String::from_utf8_lossy(&received);
    assert!(response.starts_with("HTTP/1.1 408 "), "{response}");
    assert!(started.elapsed() < limit + slack, "trickled body held {:?}", started.elapsed());

    // An idle keep-alive connection after one answered request.
    let mut idle = connect(&process).await;
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let (waited, response) = closed_after(&mut idle).await;
    assert_eq!(status_lines(&response).len(), 1, "{response}");
    assert!(waited < limit + slack, "idle keep-alive closed after {waited:?}");
    assert!(waited >= limit / 2, "closed by the timeout, not at once ({waited:?})");
}
