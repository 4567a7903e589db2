//! Budget alerts leave through the same durable, signed outbox as handoff events: the same
//! `X-Velochat-Signature`, retried until the alert webhook takes them, and delivered after a
//! restart when the first process could not.

use crate::helpers::*;
use serde_json::Value;
use std::time::Duration;
use velochat::support::webhook::verify;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

const SECRET: &str = "alert-signing-secret";

fn settings(alert_url: &str) -> String {
    format!(
        "[budget]\nmonthly_tokens = 300\nalert_webhook_url = \"{alert_url}/alerts\"\n\
         [webhook]\nsecret = \"{SECRET}\"\nretry_base_ms = 50\nretry_max_ms = 200\npoll_interval_ms = 50"
    )
}

async fn model_answers(app: &TestApp) {
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(structured("ok", 0.9, "x", false)))
        .mount(&app.upstream)
        .await;
}

async fn spend(app: &TestApp, replies: usize) {
    for i in 0..replies {
        let (status, _) = app.send_json(&message(&format!("alert-{i}"), "hello there")).await;
        assert_eq!(status, 200);
    }
}

/// The alert bodies the hook answered 2xx to, in order, once `count` have arrived.
async fn delivered(hook: &MockServer, count: usize) -> Vec<wiremock::Request> {
    for _ in 0..100 {
        let ok: Vec<_> = hook.received_requests().await.unwrap_or_default();
        if ok.len() >= count {
            return ok;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    hook.received_requests().await.unwrap_or_default()
}

#[tokio::test]
async fn a_refused_alert_is_retried_and_arrives_signed_like_a_handoff_event() {
    let hook = MockServer::start().await;
    // The first two deliveries fail; the outbox must come back.
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(503)).up_to_n_times(2).mount(&hook).await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(204)).mount(&hook).await;
    let app = spawn_app_with(&settings(&hook.uri())).await;
    model_answers(&app).await;

    spend(&app, 2).await; // 264 of 300 tokens: the 50 % and 80 % thresholds

    let requests = delivered(&hook, 4).await;
    assert!(requests.len() >= 4, "two refusals, then both alerts: {}", requests.len());
    let bodies: Vec<Value> = requests.iter().map(|r| serde_json::from_slice(&r.body).unwrap()).collect();
    let mut thresholds: Vec<u64> = bodies.iter().map(|b| b["thresholdPercent"].as_u64().unwrap()).collect();
    thresholds.dedup();
    assert_eq!(thresholds, [50, 80], "in order, the refused one first: {bodies:?}");
    let now = chrono::Utc::now().timestamp();
    for request in &requests {
        let signature = request.headers.get("x-velochat-signature").expect("signed").to_str().unwrap();
        assert!(verify(SECRET, signature, &request.body, now, 300), "a valid signature over the body");
        assert_eq!(request.headers.get("x-velochat-event").map(|v| v.to_str().unwrap()), Some("budget_alert"));
    }
}

#[tokio::test]
async fn an_alert_the_first_process_could_not_send_is_delivered_after_a_restart() {
    let dead = crate::raw_upstream::refused().await;
    let first = spawn_app_with(&settings(&dead)).await;
    model_answers(&first).await;
    spend(&first, 2).await;
    tokio::time::sleep(Duration::from_millis(200)).await; // queued, tried, refused
    first.lifecycle.begin_shutdown();
    let db = first.db_dir.clone();
    let _ = tokio::time::timeout(Duration::from_secs(5), first.server).await;

    let hook = MockServer::start().await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(204)).mount(&hook).await;
    let second = spawn_app_on(MockServer::start().await, &settings(&hook.uri()), Some(db)).await;

    let requests = delivered(&hook, 2).await;
    let thresholds: Vec<u64> = requests
        .iter()
        .map(|r| serde_json::from_slice::<Value>(&r.body).unwrap()["thresholdPercent"].as_u64().unwrap())
        .collect();
    assert_eq!(thresholds, [50, 80], "nothing lost across the restart");
    assert_eq!(second.upstream_calls().await, 0);
}
