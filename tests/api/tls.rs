//! HTTPS served by velochat itself (wix-fetch only calls HTTPS).

use crate::helpers::*;
use serde_json::Value;
use std::sync::{Arc, Mutex};

#[tokio::test]
async fn velochat_serves_https_from_pem_files() {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    let app = spawn_app_with(&format!(
        "[openai]\napi_key = \"\"\n[server]\ntls_cert = \"{}\"\ntls_key = \"{}\"",
        cert.display(),
        key.display()
    ))
    .await;
    let port = app.address.rsplit(':').next().unwrap().to_owned();
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(certified.cert.pem().as_bytes()).unwrap())
        .build()
        .unwrap();

    let body: Value =
        json_of(client.post(format!("https://localhost:{port}/sendChatMessage")).json(&message("tls", "hello"))).await;

    assert_eq!(body["fallbackReason"], "no_api_key");
    let health = client.get(format!("https://localhost:{port}/healthz")).send().await.unwrap();
    assert_eq!(health.version(), http::Version::HTTP_2, "ALPN offers h2 to clients that speak it");
    let http1 = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(certified.cert.pem().as_bytes()).unwrap())
        .http1_only()
        .build()
        .unwrap();
    let health = http1.get(format!("https://localhost:{port}/healthz")).send().await.unwrap();
    assert_eq!(health.version(), http::Version::HTTP_11);
    let plain = reqwest::get(format!("http://127.0.0.1:{port}/healthz")).await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success(), "plain HTTP is not served on the TLS port");
}

#[tokio::test]
async fn a_missing_key_file_stops_start_up_naming_the_key() {
    let err = velochat::config::Settings::from_toml_overrides(
        "[server]\ntls_cert = \"/nope/cert.pem\"\ntls_key = \"/nope/key.pem\"",
    )
    .unwrap_err();
    assert_eq!(err.key, "server.tls_cert");
}

/// A one-route HTTPS upstream (HTTP/1.1 over rustls) answering every call with a completion and
/// keeping the bodies it was sent.
async fn https_upstream(cert: &std::path::Path, key: &std::path::Path) -> (u16, Arc<Mutex<Vec<Value>>>) {
    use http_body_util::BodyExt;
    let acceptor =
        velochat::api::server::tls_acceptor(&cert.display().to_string(), &key.display().to_string()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let recorded = seen.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, seen) = (acceptor.clone(), seen.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else { return };
                let service = hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                    let seen = seen.clone();
                    async move {
                        let body = request.into_body().collect().await.unwrap().to_bytes();
                        seen.lock().unwrap().push(serde_json::from_slice::<Value>(&body).unwrap());
                        let reply = completion("Served over TLS.").to_string();
                        Ok::<_, std::convert::Infallible>(
                            hyper::Response::builder()
                                .header("content-type", "application/json")
                                .body(http_body_util::Full::new(bytes::Bytes::from(reply)))
                                .unwrap(),
                        )
                    }
                });
                let io = hyper_util::rt::TokioIo::new(tls);
                // The acceptor offers h2 and http/1.1 by ALPN; serve whichever was agreed.
                let builder = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
                let _ = builder.serve_connection(io, service).await;
            });
        }
    });
    (port, recorded)
}

#[tokio::test]
async fn an_https_upstream_is_called_when_its_ca_is_trusted_and_refused_otherwise() {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    let (port, seen) = https_upstream(&cert, &key).await;
    let upstream = format!("[retry]\nmax_retries = 0\n[openai]\nbase_url = \"https://localhost:{port}/v1\"");

    // Only Mozilla's roots: the self-signed upstream is refused, the visitor gets a fallback.
    let untrusting = spawn_app_with(&upstream).await;
    let body: Value = json_of(
        untrusting.client.post(format!("{}/sendChatMessage", untrusting.address)).json(&message("t1", "hello")),
    )
    .await;
    assert_eq!(body["source"], "fallback", "{body}");
    assert!(seen.lock().unwrap().is_empty(), "no request reached an untrusted upstream");

    // Its certificate trusted through openai.ca_cert: the model answers over TLS.
    let trusting = spawn_app_with(&format!("{upstream}\nca_cert = \"{}\"", cert.display())).await;
    let body: Value =
        json_of(trusting.client.post(format!("{}/sendChatMessage", trusting.address)).json(&message("t2", "hello")))
            .await;
    assert_eq!(body["source"], "model", "{body}");
    assert_eq!(body["reply"], "Served over TLS.");
    let sent = seen.lock().unwrap();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["messages"].as_array().unwrap().last().unwrap()["content"], "hello");
}

#[tokio::test]
async fn a_missing_upstream_ca_file_stops_start_up_naming_the_key() {
    let err = velochat::config::Settings::from_toml_overrides("[openai]\nca_cert = \"/nope/ca.pem\"").unwrap_err();
    assert_eq!(err.key, "openai.ca_cert");
}
