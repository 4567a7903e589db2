//! Fault injection: every way the upstream can fail gives a fallback 200 before the deadline, with
//! the right reason and a bounded number of attempts. No fault produces a 5xx.

use crate::helpers::*;
use crate::raw_upstream;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use wiremock::matchers::method;
use wiremock::{Mock, ResponseTemplate};

const DEADLINE_MS: u64 = 3000;

/// Sends one message with a deadline; returns the body and how long the answer took.
async fn ask(app: &TestApp, deadline_ms: u64) -> (Value, Duration) {
    ask_as(app, "fault-session", deadline_ms).await
}

async fn ask_as(app: &TestApp, session: &str, deadline_ms: u64) -> (Value, Duration) {
    let started = Instant::now();
    let response = app
        .client
        .post(app.url("/sendChatMessage"))
        .header("x-velochat-deadline-ms", deadline_ms.to_string())
        .json(&json!({"sessionId": session, "userText": "Where is my order?"}))
        .send()
        .await
        .unwrap();
    let elapsed = started.elapsed();
    assert_eq!(response.status(), 200, "faults never become errors");
    (response.json().await.unwrap(), elapsed)
}

async fn app_answering(template: ResponseTemplate) -> TestApp {
    let app = spawn_app_with("[retry]\nbackoff_base_ms = 50\nbackoff_max_ms = 100").await;
    Mock::given(method("POST")).respond_with(template).mount(&app.upstream).await;
    app
}

fn assert_fallback(body: &Value, reason: &str) {
    assert_eq!(body["source"], "fallback", "{body}");
    assert_eq!(body["fallbackReason"], reason, "{body}");
    assert!(!body["reply"].as_str().unwrap().is_empty());
    assert!(body["signature"].is_string());
}

async fn check_status(status: u16, reason: &str, attempts: usize) {
    let app = app_answering(
        ResponseTemplate::new(status).set_body_json(json!({"error": {"message": "boom", "type": "server_error"}})),
    )
    .await;
    let (body, elapsed) = ask(&app, DEADLINE_MS).await;
    assert_fallback(&body, reason);
    assert_eq!(app.upstream_calls().await, attempts, "status {status}");
    assert!(elapsed < Duration::from_millis(DEADLINE_MS), "{elapsed:?}");
}

#[tokio::test]
async fn a_500_is_retried_once_then_falls_back() {
    check_status(500, "upstream_error", 2).await;
}

#[tokio::test]
async fn a_502_is_retried_once_then_falls_back() {
    check_status(502, "upstream_error", 2).await;
}

#[tokio::test]
async fn a_503_is_retried_once_then_falls_back() {
    check_status(503, "upstream_error", 2).await;
}

#[tokio::test]
async fn a_504_is_retried_once_then_falls_back() {
    check_status(504, "upstream_error", 2).await;
}

#[tokio::test]
async fn a_400_is_never_retried() {
    check_status(400, "upstream_error", 1).await;
}

#[tokio::test]
async fn a_401_is_never_retried() {
    check_status(401, "upstream_error", 1).await;
}

#[tokio::test]
async fn a_429_without_retry_after_is_retried_with_backoff() {
    check_status(429, "upstream_rate_limited", 2).await;
}

#[tokio::test]
async fn a_429_retry_after_that_fits_is_honoured() {
    let app = app_answering(ResponseTemplate::new(429).insert_header("retry-after", "1")).await;
    let (body, elapsed) = ask(&app, DEADLINE_MS).await;
    assert_fallback(&body, "upstream_rate_limited");
    assert_eq!(app.upstream_calls().await, 2);
    assert!(elapsed >= Duration::from_millis(1000), "waited the retry-after: {elapsed:?}");
    assert!(elapsed < Duration::from_millis(DEADLINE_MS));
}

#[tokio::test]
async fn a_429_retry_after_past_the_deadline_falls_back_at_once() {
    let app = app_answering(ResponseTemplate::new(429).insert_header("retry-after-ms", "30000")).await;
    let (body, elapsed) = ask(&app, DEADLINE_MS).await;
    assert_fallback(&body, "upstream_rate_limited");
    assert_eq!(app.upstream_calls().await, 1);
    assert!(elapsed < Duration::from_millis(500), "no pointless wait: {elapsed:?}");
}

#[tokio::test]
async fn insufficient_quota_is_not_a_rate_limit_and_never_retried() {
    let quota = json!({"error": {"message": "You exceeded your current quota", "type": "insufficient_quota", "code": "insufficient_quota"}});
    let app = app_answering(ResponseTemplate::new(429).set_body_json(quota)).await;
    let (body, _) = ask(&app, DEADLINE_MS).await;
    assert_fallback(&body, "upstream_quota");
    assert_eq!(app.upstream_calls().await, 1);
}

#[tokio::test]
async fn garbage_json_is_invalid_and_not_retried() {
    let app = app_answering(ResponseTemplate::new(200).set_body_string("<html>gateway</html>")).await;
    let (body, _) = ask(&app, DEADLINE_MS).await;
    assert_fallback(&body, "upstream_invalid");
    assert_eq!(app.upstream_calls().await, 1);
}

#[tokio::test]
async fn empty_choices_are_invalid() {
    let app = app_answering(ResponseTemplate::new(200).set_body_json(json!({"id": "x", "choices": []}))).await;
    let (body, _) = ask(&app, DEADLINE_MS).await;
    assert_fallback(&body, "upstream_invalid");
    assert_eq!(app.upstream_calls().await, 1);
}

#[tokio::test]
async fn a_content_filter_stop_falls_back() {
    let mut filtered = completion("partial");
    filtered["choices"][0]["finish_reason"] = json!("content_filter");
    let app = app_answering(ResponseTemplate::new(200).set_body_json(filtered)).await;
    let (body, _) = ask(&app, DEADLINE_MS).await;
    assert_fallback(&body, "content_filter");
    assert_eq!(app.upstream_calls().await, 1);
}

#[tokio::test]
async fn a_refusal_falls_back() {
    let mut refused = completion("x");
    refused["choices"][0]["message"] =
        json!({"role": "assistant", "content": null, "refusal": "I can't help with that."});
    let app = app_answering(ResponseTemplate::new(200).set_body_json(refused)).await;
    let (body, _) = ask(&app, DEADLINE_MS).await;
    assert_fallback(&body, "content_filter");
}

#[tokio::test]
async fn a_ten_megabyte_body_is_refused_unread() {
    let huge = format!("{{\"choices\":[{{\"message\":{{\"content\":\"{}\"}}}}]}}", "x".repeat(10 * 1024 * 1024));
    let app = app_answering(ResponseTemplate::new(200).set_body_string(huge)).await;
    let (body, _) = ask(&app, DEADLINE_MS).await;
    assert_fallback(&body, "upstream_invalid");
    assert_eq!(app.upstream_calls().await, 1);
}

#[tokio::test]
async fn a_slow_first_byte_past_the_deadline_answers_before_the_deadline() {
    let app = app_answering(
        ResponseTemplate::new(200).set_body_json(structured("late", 0.9, "x", false)).set_delay(Duration::from_secs(5)),
    )
    .await;
    let (body, elapsed) = ask(&app, 1200).await;
    assert_fallback(&body, "deadline");
    assert_eq!(app.upstream_calls().await, 1, "no time for a retry");
    assert!(elapsed < Duration::from_millis(1200), "{elapsed:?}");
}

#[tokio::test]
async fn the_per_attempt_timeout_gives_upstream_timeout() {
    let app = spawn_app_with("[openai]\ntimeout_ms = 300\n[retry]\nbackoff_base_ms = 50\nbackoff_max_ms = 50\n[deadline]\nmin_attempt_ms = 200").await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(structured("late", 0.9, "x", false))
                .set_delay(Duration::from_secs(3)),
        )
        .mount(&app.upstream)
        .await;
    let (body, elapsed) = ask(&app, DEADLINE_MS).await;
    assert_fallback(&body, "upstream_timeout");
    assert_eq!(app.upstream_calls().await, 2, "a timeout is retried once when time allows");
    assert!(elapsed < Duration::from_millis(1500), "{elapsed:?}");
}

#[tokio::test]
async fn a_trickling_body_is_cut_at_the_attempt_timeout() {
    let upstream = raw_upstream::trickle(Duration::from_millis(100)).await;
    let app = spawn_app_with(&format!("[openai]\nbase_url = \"{}/v1\"\ntimeout_ms = 500\n[deadline]\nmin_attempt_ms = 400\n[retry]\nbackoff_base_ms = 20\nbackoff_max_ms = 20", upstream.base_url)).await;
    let (body, elapsed) = ask(&app, DEADLINE_MS).await;
    assert_fallback(&body, "upstream_timeout");
    assert_eq!(upstream.connections(), 2);
    assert!(elapsed < Duration::from_millis(1500), "{elapsed:?}");
}

#[tokio::test]
async fn a_connection_reset_mid_body_is_retried_then_falls_back() {
    let upstream = raw_upstream::reset_mid_body().await;
    let app = spawn_app_with(&format!(
        "[openai]\nbase_url = \"{}/v1\"\n[retry]\nbackoff_base_ms = 20\nbackoff_max_ms = 20",
        upstream.base_url
    ))
    .await;
    let (body, elapsed) = ask(&app, DEADLINE_MS).await;
    assert_fallback(&body, "upstream_error");
    assert_eq!(upstream.connections(), 2);
    assert!(elapsed < Duration::from_millis(DEADLINE_MS));
}

#[tokio::test]
async fn a_refused_connection_is_retried_then_falls_back() {
    let base = raw_upstream::refused().await;
    let app = spawn_app_with(&format!(
        "[openai]\nbase_url = \"{base}/v1\"\n[retry]\nbackoff_base_ms = 20\nbackoff_max_ms = 20"
    ))
    .await;
    let (body, elapsed) = ask(&app, DEADLINE_MS).await;
    assert_fallback(&body, "upstream_error");
    assert!(elapsed < Duration::from_millis(1000), "{elapsed:?}");
    let metrics = app.metrics().await;
    assert_eq!(metric_value(&metrics, "velochat_upstream_attempts_total{outcome=\"failure\"}"), 2.0);
}

#[tokio::test]
async fn a_black_hole_connect_times_out_at_the_connect_timeout() {
    let upstream = raw_upstream::black_hole().await;
    let app = spawn_app_with(&format!("[openai]\nbase_url = \"{}/v1\"\nconnect_timeout_ms = 300\n[deadline]\nmin_attempt_ms = 200\n[retry]\nbackoff_base_ms = 20\nbackoff_max_ms = 20", upstream.base_url)).await;
    let (body, elapsed) = ask(&app, DEADLINE_MS).await;
    assert_fallback(&body, "upstream_timeout");
    assert!(
        elapsed >= Duration::from_millis(550) && elapsed < Duration::from_millis(1500),
        "two connect timeouts: {elapsed:?}"
    );
}

#[tokio::test]
async fn a_silent_upstream_is_bounded_by_the_deadline() {
    let upstream = raw_upstream::silent().await;
    let app = spawn_app_with(&format!("[openai]\nbase_url = \"{}/v1\"", upstream.base_url)).await;
    let (body, elapsed) = ask(&app, 800).await;
    assert_fallback(&body, "deadline");
    assert!(elapsed < Duration::from_millis(800), "{elapsed:?}");
}

#[tokio::test]
async fn the_bot_recovers_when_the_upstream_does() {
    let app = spawn_app_with("[retry]\nmax_retries = 0").await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(503)).up_to_n_times(2).mount(&app.upstream).await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(structured("back online", 0.9, "x", false)))
        .mount(&app.upstream)
        .await;
    assert_fallback(&ask_as(&app, "r1", DEADLINE_MS).await.0, "upstream_error");
    assert_fallback(&ask_as(&app, "r2", DEADLINE_MS).await.0, "upstream_error");
    let (body, _) = ask_as(&app, "r3", DEADLINE_MS).await;
    assert_eq!(body["source"], "model");
    assert_eq!(body["reply"], "back online");
}

#[tokio::test]
async fn a_truncated_reply_is_kept_and_flagged() {
    let mut cut = completion("{\"reply\":\"This is cut\",\"confidence\":0.9,\"intent\":\"x\",\"needsHuman\":false}");
    cut["choices"][0]["finish_reason"] = json!("length");
    let app = app_answering(ResponseTemplate::new(200).set_body_json(cut)).await;
    let (body, _) = ask(&app, DEADLINE_MS).await;
    assert_eq!(body["source"], "model");
    assert_eq!(body["truncated"], true);
}

#[tokio::test]
async fn fallback_texts_follow_intent_and_locale() {
    let app = app_answering(ResponseTemplate::new(500)).await;
    let response = app
        .client
        .post(app.url("/sendChatMessage"))
        .json(&json!({"sessionId": "billing-fr", "userText": "Why was I charged twice on my invoice?", "context": {"locale": "fr-CA"}}))
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["intent"], "billing");
    assert!(body["reply"].as_str().unwrap().starts_with("Je ne peux pas consulter la facturation"), "{body}");
}

#[tokio::test]
async fn a_reply_without_usage_is_still_a_model_reply() {
    let mut no_usage = structured("fine", 0.9, "x", false);
    no_usage.as_object_mut().unwrap().remove("usage");
    let app = app_answering(ResponseTemplate::new(200).set_body_json(no_usage)).await;
    let (body, _) = ask(&app, DEADLINE_MS).await;
    assert_eq!(body["source"], "model");
    assert_eq!(metric_value(&app.metrics().await, "velochat_tokens_total{kind=\"prompt\"}"), 0.0);
}
