//! The inbound server (hyper) on the wire: keep-alive, pipelining, chunked bodies, 100-continue,
//! HTTP/1.0, HEAD, and h2c. Hostile framing and slow clients are in `framing.rs`.

use crate::helpers::*;
use serde_json::Value;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wiremock::matchers::method;
use wiremock::{Mock, ResponseTemplate};

async fn connect(app: &TestApp) -> TcpStream {
    raw_connect(&app.address).await
}

/// What one read returns: a whole small response on loopback, the connection staying open.
async fn read_once(socket: &mut TcpStream) -> String {
    let mut received = vec![0u8; 4096];
    let read = tokio::time::timeout(Duration::from_secs(5), socket.read(&mut received)).await.unwrap().unwrap();
    String::from_utf8_lossy(&received[..read]).to_string()
}

async fn exchange(app: &TestApp, raw: &str) -> String {
    raw_exchange(&app.address, raw.as_bytes()).await
}

fn json_body(response: &str) -> Value {
    serde_json::from_str(response.split_once("\r\n\r\n").expect("a head").1).expect("a JSON body")
}

#[tokio::test]
async fn keep_alive_and_pipelined_requests_are_answered_in_order_on_one_connection() {
    let app = spawn_app().await;
    let mut socket = connect(&app).await;
    socket.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
    let first = read_once(&mut socket).await;
    assert!(first.starts_with("HTTP/1.1 200 OK\r\n"), "{first}");
    assert!(first.contains("\r\ndate: ") && first.contains("\r\ncontent-length: "), "{first}");
    assert!(!first.contains("connection: close"), "{first}");
    // Two more in one write; the last asks to close.
    socket
        .write_all(b"GET /readyz HTTP/1.1\r\nhost: x\r\n\r\nGET /nope HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let rest = read_to_close(&mut socket).await;
    let ready = rest.find("HTTP/1.1 200 OK").expect("readyz answered");
    let missing = rest.find("HTTP/1.1 404 Not Found").expect("the pipelined second answered");
    assert!(ready < missing, "answers keep the requests' order: {rest}");
    assert!(rest.contains("\"ready\""), "{rest}");
    assert!(rest.ends_with('}') && rest.matches("connection: close").count() == 1, "{rest}");
}

#[tokio::test]
async fn a_chunked_body_with_expect_continue_reaches_the_model() {
    let app = spawn_app().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(structured("chunked ok", 0.9, "other", false)))
        .mount(&app.upstream)
        .await;
    let body = message("wire-chunked", "Do you ship to Norway?").to_string();
    let (a, b) = body.split_at(10);
    let mut socket = connect(&app).await;
    let head = "POST /sendChatMessage HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
                transfer-encoding: chunked\r\nexpect: 100-continue\r\nconnection: close\r\n\r\n";
    socket.write_all(head.as_bytes()).await.unwrap();
    assert_eq!(read_once(&mut socket).await, "HTTP/1.1 100 Continue\r\n\r\n", "the server asks for the body");
    let chunks = format!("{:x}\r\n{a}\r\n{:X};ext=1\r\n{b}\r\n0\r\n\r\n", a.len(), b.len());
    socket.write_all(chunks.as_bytes()).await.unwrap();
    let response = read_to_close(&mut socket).await;
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert_eq!(json_body(&response)["reply"], "chunked ok");
    let sent = app.upstream.received_requests().await.unwrap();
    assert_eq!(sent.len(), 1);
    assert!(
        String::from_utf8_lossy(&sent[0].body).contains("Do you ship to Norway?"),
        "the decoded text went upstream"
    );
}

#[tokio::test]
async fn http_1_0_closes_unless_asked_and_head_sends_no_body() {
    let app = spawn_app().await;
    let old = exchange(&app, "GET /healthz HTTP/1.0\r\n\r\n").await;
    assert!(old.starts_with("HTTP/1.0 200 OK\r\n"), "{old}");

    let mut socket = connect(&app).await;
    socket.write_all(b"GET /healthz HTTP/1.0\r\nconnection: keep-alive\r\n\r\n").await.unwrap();
    let kept = read_once(&mut socket).await;
    assert!(kept.contains("connection: keep-alive\r\n"), "{kept}");

    let head = exchange(&app, "HEAD /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").await;
    let (head_part, body) = head.split_once("\r\n\r\n").unwrap();
    assert!(head_part.starts_with("HTTP/1.1 200 OK") && head_part.contains("content-length: "), "{head}");
    assert_eq!(body, "", "HEAD answers carry no body");
}

#[tokio::test]
async fn http2_by_prior_knowledge_is_served_on_the_same_port() {
    let app = spawn_app().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(structured("over h2c", 0.9, "other", false)))
        .mount(&app.upstream)
        .await;
    let h2 = reqwest::Client::builder().http2_prior_knowledge().build().unwrap();
    let health = h2.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.version(), http::Version::HTTP_2);
    assert_eq!(health.status(), 200);
    let reply: Value =
        h2.post(app.url("/sendChatMessage")).json(&message("h2c", "hello")).send().await.unwrap().json().await.unwrap();
    assert_eq!(reply["reply"], "over h2c");
    let missing: Value = h2.get(app.url("/nope")).send().await.unwrap().json().await.unwrap();
    assert_eq!(missing["error"]["code"], "not_found", "our JSON errors on HTTP/2 too");
}
