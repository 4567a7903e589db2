//! The ladder's upper rungs: the circuit breaker, the kill switch and the fallback model.

use crate::helpers::*;
use serde_json::{json, Value};
use std::time::Duration;
use wiremock::matchers::{body_partial_json, method};
use wiremock::{Mock, MockServer, ResponseTemplate};

const ADMIN: &str = "admin-key-for-tests";

fn admin_toml(extra: &str) -> String {
    format!("[auth]\nadmin_key = \"{ADMIN}\"\n{extra}")
}

async fn say(app: &TestApp, session: &str, text: &str) -> Value {
    app.send_json(&json!({"sessionId": session, "userText": text})).await.1
}

async fn circuit_state(app: &TestApp) -> f64 {
    metric_value(&app.metrics().await, "velochat_circuit_state")
}

#[tokio::test]
async fn the_breaker_opens_after_consecutive_failures_probes_once_and_closes() {
    let app = spawn_app_with("[breaker]\nconsecutive_failures = 3\nopen_ms = 400\n[retry]\nmax_retries = 0").await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(503)).up_to_n_times(3).mount(&app.upstream).await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(structured("healthy again", 0.9, "x", false)))
        .mount(&app.upstream)
        .await;

    for i in 0..3 {
        assert_eq!(say(&app, &format!("b{i}"), "hello there").await["fallbackReason"], "upstream_error");
    }
    assert_eq!(circuit_state(&app).await, 1.0, "open");
    let open = say(&app, "b3", "hello there").await;
    assert_eq!(open["fallbackReason"], "circuit_open");
    assert_eq!(app.upstream_calls().await, 3, "an open breaker does not touch OpenAI");

    tokio::time::sleep(Duration::from_millis(450)).await;
    let probe = say(&app, "b4", "hello there").await;
    assert_eq!(probe["source"], "model", "the half-open probe succeeded");
    assert_eq!(circuit_state(&app).await, 0.0, "closed again");
    assert_eq!(say(&app, "b5", "hello there").await["source"], "model");
    let metrics = app.metrics().await;
    assert_eq!(metric_value(&metrics, "velochat_fallbacks_total{reason=\"circuit_open\"}"), 1.0);
}

#[tokio::test]
async fn a_failed_probe_reopens_the_breaker() {
    let app = spawn_app_with("[breaker]\nconsecutive_failures = 1\nopen_ms = 300\n[retry]\nmax_retries = 0").await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(500)).mount(&app.upstream).await;
    assert_eq!(say(&app, "p1", "hi").await["fallbackReason"], "upstream_error");
    assert_eq!(say(&app, "p2", "hi").await["fallbackReason"], "circuit_open");
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(say(&app, "p3", "hi").await["fallbackReason"], "upstream_error", "the probe went upstream and failed");
    assert_eq!(say(&app, "p4", "hi").await["fallbackReason"], "circuit_open", "open again");
    assert_eq!(app.upstream_calls().await, 2);
}

#[tokio::test]
async fn client_errors_and_quota_do_not_trip_the_breaker() {
    let app = spawn_app_with("[breaker]\nconsecutive_failures = 2\n").await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(400)).mount(&app.upstream).await;
    for i in 0..4 {
        assert_eq!(say(&app, &format!("c{i}"), "hi").await["fallbackReason"], "upstream_error");
    }
    assert_eq!(circuit_state(&app).await, 0.0);
    assert_eq!(app.upstream_calls().await, 4);
}

#[tokio::test]
async fn slow_successes_count_as_failures() {
    let app = spawn_app_with("[breaker]\nconsecutive_failures = 2\nslow_call_ms = 100\nopen_ms = 60000").await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(structured("slow", 0.9, "x", false))
                .set_delay(Duration::from_millis(200)),
        )
        .mount(&app.upstream)
        .await;
    assert_eq!(say(&app, "s1", "hi").await["source"], "model");
    assert_eq!(say(&app, "s2", "hi").await["source"], "model");
    assert_eq!(say(&app, "s3", "hi").await["fallbackReason"], "circuit_open");
}

#[tokio::test]
async fn the_kill_switch_needs_the_admin_key_and_stops_every_model_call() {
    let app = spawn_app_with(&admin_toml("")).await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(structured("model", 0.9, "x", false)))
        .mount(&app.upstream)
        .await;
    let url = app.url("/admin/kill-switch");

    let anonymous = app.client.put(&url).json(&json!({"enabled": true})).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let wrong = app.client.put(&url).bearer_auth("nope").json(&json!({"enabled": true})).send().await.unwrap();
    assert_eq!(wrong.status(), 401);
    let bad = app.client.put(&url).bearer_auth(ADMIN).json(&json!({"enabled": "yes"})).send().await.unwrap();
    assert_eq!(bad.status(), 400);

    let on = app.client.put(&url).bearer_auth(ADMIN).json(&json!({"enabled": true})).send().await.unwrap();
    assert_eq!(on.status(), 200);
    let state: Value = app.client.get(&url).bearer_auth(ADMIN).send().await.unwrap().json().await.unwrap();
    assert_eq!(state["enabled"], true);
    let body = say(&app, "k1", "hello").await;
    assert_eq!(body["fallbackReason"], "kill_switch");
    assert_eq!(app.upstream_calls().await, 0);

    let off = app.client.put(&url).bearer_auth(ADMIN).json(&json!({"enabled": false})).send().await.unwrap();
    assert_eq!(off.status(), 200);
    assert_eq!(say(&app, "k2", "hello").await["source"], "model");
}

#[tokio::test]
async fn the_kill_switch_can_start_on() {
    let app = spawn_app_with("[kill_switch]\nenabled = \"on\"").await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(200)).expect(0).mount(&app.upstream).await;
    assert_eq!(say(&app, "k", "hello").await["fallbackReason"], "kill_switch");
}

#[tokio::test]
async fn admin_routes_are_disabled_without_an_admin_key() {
    let app = spawn_app().await;
    let response = app.client.get(app.url("/admin/kill-switch")).bearer_auth("anything").send().await.unwrap();
    assert_eq!(response.status(), 403);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "disabled");
}

#[tokio::test]
async fn the_fallback_model_answers_when_the_primary_is_down() {
    let secondary = MockServer::start().await;
    Mock::given(method("POST"))
        .and(body_partial_json(json!({"model": "gpt-4o"})))
        .respond_with(ResponseTemplate::new(200).set_body_json({
            let mut c = structured("from the second rung", 0.9, "x", false);
            c["model"] = json!("gpt-4o-2024-08-06");
            c
        }))
        .expect(1)
        .mount(&secondary)
        .await;
    let app = spawn_app_with(&format!(
        "[openai]\nfallback_model = \"gpt-4o\"\nfallback_base_url = \"{}/v1\"",
        secondary.uri()
    ))
    .await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(503)).expect(1).mount(&app.upstream).await;

    let body = say(&app, "rung", "hello").await;

    assert_eq!(body["source"], "model");
    assert_eq!(body["reply"], "from the second rung");
    assert_eq!(body["model"], "gpt-4o-2024-08-06");
}

#[tokio::test]
async fn a_quota_error_does_not_go_to_the_fallback_model() {
    let secondary = MockServer::start().await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(200)).expect(0).mount(&secondary).await;
    let app = spawn_app_with(&format!(
        "[openai]\nfallback_model = \"gpt-4o\"\nfallback_base_url = \"{}/v1\"",
        secondary.uri()
    ))
    .await;
    let quota = json!({"error": {"code": "insufficient_quota", "type": "insufficient_quota", "message": "quota"}});
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).set_body_json(quota))
        .mount(&app.upstream)
        .await;
    assert_eq!(say(&app, "q", "hello").await["fallbackReason"], "upstream_quota");
}

#[tokio::test]
async fn a_tiny_deadline_answers_at_once_with_the_deadline_reason() {
    let app = spawn_app().await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(200)).expect(0).mount(&app.upstream).await;
    let response = app
        .client
        .post(app.url("/sendChatMessage"))
        .header("x-velochat-deadline-ms", "100")
        .json(&message("tiny", "hello"))
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["fallbackReason"], "deadline", "100 ms minus the 250 ms reserve leaves nothing: {body}");
}
