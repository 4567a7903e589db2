//! HTTP/2 to the model API: h2c and HTTPS with ALPN `h2` share one connection; a connection the
//! server closes (GOAWAY) is replaced without failing the visitor's message.

use crate::helpers::*;
use serde_json::Value;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio_rustls::rustls;

#[derive(Debug, Clone)]
struct Seen {
    version: http::Version,
    authorization: Option<String>,
    content_length: Option<usize>,
    body: Value,
    body_len: usize,
}

struct H2Fake {
    port: u16,
    connections: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

type Recorded = Arc<Mutex<Vec<Seen>>>;

/// Answers one request with a completion, recording what arrived.
async fn answer(
    request: hyper::Request<hyper::body::Incoming>,
    seen: Recorded,
    served: Arc<tokio::sync::Notify>,
) -> Result<hyper::Response<http_body_util::Full<bytes::Bytes>>, std::convert::Infallible> {
    use http_body_util::BodyExt;
    let header = |name: &str| request.headers().get(name).map(|v| v.to_str().unwrap().to_owned());
    let (version, authorization) = (request.version(), header("authorization"));
    let content_length = header("content-length").map(|v| v.parse().unwrap());
    let body = request.into_body().collect().await.unwrap().to_bytes();
    let body_len = body.len();
    let body = serde_json::from_slice(&body).unwrap();
    seen.lock().unwrap().push(Seen { version, authorization, content_length, body, body_len });
    served.notify_one();
    let reply = structured("Served over HTTP/2.", 0.9, "other", false).to_string();
    Ok(hyper::Response::new(http_body_util::Full::new(bytes::Bytes::from(reply))))
}

/// Serves one connection with hyper's HTTP/2 server; with `goaway_after_first`, the server closes
/// it gracefully (GOAWAY) once it has answered a request.
async fn serve_h2<I>(io: I, seen: Recorded, goaway_after_first: bool)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let served = Arc::new(tokio::sync::Notify::new());
    let notify = served.clone();
    let service = hyper::service::service_fn(move |request| answer(request, seen.clone(), notify.clone()));
    let builder = hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new());
    let connection = builder.serve_connection(hyper_util::rt::TokioIo::new(io), service);
    tokio::pin!(connection);
    if goaway_after_first {
        tokio::select! {
            _ = connection.as_mut() => return,
            _ = served.notified() => connection.as_mut().graceful_shutdown(),
        }
    }
    let _ = connection.await;
}

/// An HTTP/2-only fake upstream: over TLS (ALPN `h2` only) when `tls` is given, else h2c.
async fn h2_upstream(tls: Option<tokio_rustls::TlsAcceptor>, goaway_after_first: bool) -> H2Fake {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (connections, seen) = (Arc::new(AtomicUsize::new(0)), Arc::new(Mutex::new(Vec::new())));
    let (counted, recorded) = (connections.clone(), seen.clone());
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            let (seen, tls) = (recorded.clone(), tls.clone());
            tokio::spawn(async move {
                match tls {
                    None => serve_h2(tcp, seen, goaway_after_first).await,
                    Some(acceptor) => {
                        if let Ok(tls) = acceptor.accept(tcp).await {
                            serve_h2(tls, seen, goaway_after_first).await;
                        }
                    }
                }
            });
        }
    });
    H2Fake { port, connections, seen }
}

fn assert_sent_over_http2(seen: &Seen, text: &str) {
    assert_eq!(seen.version, http::Version::HTTP_2);
    assert_eq!(seen.authorization.as_deref(), Some(format!("Bearer {OPENAI_KEY}").as_str()), "the key went upstream");
    assert_eq!(seen.content_length, Some(seen.body_len), "content-length matches the body");
    assert_eq!(seen.body["messages"].as_array().unwrap().last().unwrap()["content"], text);
}

/// The app against an h2c fake, without retries (a failed send must show).
async fn app_on_h2c(fake: &H2Fake) -> TestApp {
    spawn_app_with(&format!(
        "[openai]\nbase_url = \"http://127.0.0.1:{}/v1\"\nh2c = true\n[retry]\nmax_retries = 0",
        fake.port
    ))
    .await
}

#[tokio::test]
async fn an_h2c_upstream_gets_concurrent_requests_on_one_http2_connection() {
    let fake = h2_upstream(None, false).await;
    let app = app_on_h2c(&fake).await;
    let sends = (0..20).map(|i| {
        let (client, url) = (app.client.clone(), app.url("/sendChatMessage"));
        async move { json_of(client.post(url).json(&message(&format!("h2-{i}"), &format!("question {i}")))).await }
    });
    let replies = futures_util::future::join_all(sends).await;

    for reply in &replies {
        assert_eq!(reply["source"], "model", "{reply}");
        assert_eq!(reply["reply"], "Served over HTTP/2.");
    }
    assert_eq!(fake.connections.load(Ordering::SeqCst), 1, "one connection carries every request");
    let seen = fake.seen.lock().unwrap();
    assert_eq!(seen.len(), 20);
    for i in 0..20 {
        let text = format!("question {i}");
        let last = |s: &&Seen| s.body["messages"].as_array().unwrap().last().unwrap()["content"] == text.as_str();
        let sent = seen.iter().find(last).expect("each question went up");
        assert_sent_over_http2(sent, &text);
    }
}

#[tokio::test]
async fn a_connection_the_upstream_closes_is_replaced_without_failing_a_message() {
    let fake = h2_upstream(None, true).await;
    let app = app_on_h2c(&fake).await;
    for i in 0..3 {
        let reply =
            json_of(app.client.post(app.url("/sendChatMessage")).json(&message("goaway", &format!("q{i}")))).await;
        assert_eq!(reply["source"], "model", "message {i}: {reply}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(fake.seen.lock().unwrap().len(), 3);
    assert_eq!(fake.connections.load(Ordering::SeqCst), 3, "each GOAWAY led to a fresh connection");
}

#[tokio::test]
async fn an_https_upstream_offering_h2_by_alpn_is_spoken_to_over_http2() {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("cert.pem");
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![certified.cert.der().clone()], key)
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let fake = h2_upstream(Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))), false).await;
    let app = spawn_app_with(&format!(
        "[openai]\nbase_url = \"https://localhost:{}/v1\"\nca_cert = \"{}\"\n[retry]\nmax_retries = 0",
        fake.port,
        cert.display()
    ))
    .await;

    let reply = json_of(app.client.post(app.url("/sendChatMessage")).json(&message("alpn", "over TLS"))).await;

    assert_eq!(reply["source"], "model", "{reply}");
    assert_eq!(reply["reply"], "Served over HTTP/2.");
    assert_sent_over_http2(&fake.seen.lock().unwrap()[0], "over TLS");
}
