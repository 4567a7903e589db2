//! Health, readiness and graceful shutdown.

use crate::helpers::*;
use serde_json::Value;
use std::time::{Duration, Instant};
use wiremock::matchers::method;
use wiremock::{Mock, ResponseTemplate};

#[tokio::test]
async fn health_and_readiness_answer() {
    let app = spawn_app().await;
    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    assert_eq!(body["upstream"]["apiKey"], true);
}

#[tokio::test]
async fn readiness_flips_at_once_on_shutdown_while_in_flight_requests_finish() {
    let app = spawn_app_with("[server]\nshutdown_delay_ms = 600\ndrain_timeout_ms = 5000").await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(structured("done", 0.9, "other", false))
                .set_delay(Duration::from_millis(900)),
        )
        .mount(&app.upstream)
        .await;
    let in_flight = {
        let client = app.client.clone();
        let url = app.url("/sendChatMessage");
        tokio::spawn(async move { client.post(url).json(&message("s", "slow one")).send().await })
    };
    tokio::time::sleep(Duration::from_millis(150)).await;

    app.lifecycle.begin_shutdown();

    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503, "not ready during the de-registration delay");
    let answer = in_flight.await.unwrap().expect("in-flight request completes");
    assert_eq!(answer.status(), 200);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["reply"], "done");
    let stopped = tokio::time::timeout(Duration::from_secs(5), app.server).await;
    assert!(stopped.is_ok(), "the server stops within the drain deadline");
}

#[tokio::test]
async fn an_idle_keep_alive_client_does_not_hold_shutdown_open() {
    let app = spawn_app_with("[server]\ndrain_timeout_ms = 2000").await;
    let client = reqwest::Client::builder().pool_idle_timeout(Duration::from_secs(60)).build().unwrap();
    assert_eq!(client.get(app.url("/healthz")).send().await.unwrap().status(), 200);
    let started = Instant::now();

    app.lifecycle.begin_shutdown();

    tokio::time::timeout(Duration::from_secs(4), app.server).await.expect("server stopped").unwrap().unwrap();
    assert!(started.elapsed() < Duration::from_millis(2500), "took {:?}", started.elapsed());
    drop(client);
}

#[tokio::test]
async fn the_openapi_document_covers_every_route_and_its_statuses() {
    let app = spawn_app().await;
    let doc: Value = app.client.get(app.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    let paths = doc["paths"].as_object().unwrap();
    for route in [
        "/sendChatMessage",
        "/v1/chat/completions",
        "/v1/models",
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
        "/admin/kill-switch",
        "/admin/sessions/{sessionId}",
        "/admin/sessions/{sessionId}/release",
        "/admin/report",
        "/sessions/{sessionId}/handoff",
    ] {
        assert!(paths.contains_key(route), "{route} missing");
    }
    let send = &doc["paths"]["/sendChatMessage"]["post"]["responses"];
    for status in ["200", "400", "401", "405", "413", "415", "429"] {
        assert!(send.get(status).is_some(), "/sendChatMessage {status}");
    }
    assert!(doc["components"]["schemas"]["SendChatMessageRequest"].is_object());
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}

#[tokio::test]
async fn a_caller_that_hangs_up_does_not_cancel_an_accepted_message() {
    use tokio::io::AsyncWriteExt;
    let app = spawn_app().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(structured("on its way", 0.9, "order", false))
                .set_delay(Duration::from_millis(600)),
        )
        .mount(&app.upstream)
        .await;
    let body = message("hang-up", "Where is my order?").to_string();
    let head = format!(
        "POST /sendChatMessage HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    let mut socket = tokio::net::TcpStream::connect(app.address.trim_start_matches("http://")).await.unwrap();
    socket.write_all(format!("{head}{body}").as_bytes()).await.unwrap();
    // Hang up while the model is still thinking.
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(socket);

    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(app.upstream_calls().await, 1, "the model was asked once");
    let metrics = app.metrics().await;
    assert_eq!(metric_value(&metrics, "velochat_replies_total{source=\"model\"}"), 1.0, "the message was settled");
    assert_eq!(metric_value(&metrics, "velochat_tokens_total{kind=\"prompt\"}"), 120.0, "its tokens were booked");
}
