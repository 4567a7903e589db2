//! HTTPS served by velochat itself (wix-fetch only calls HTTPS).

use crate::helpers::*;
use serde_json::Value;

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
