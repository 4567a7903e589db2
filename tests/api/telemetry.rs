//! Telemetry: metrics after a scripted conversation, token accounting, budgets, the event log and
//! the weekly review.

use crate::helpers::*;
use serde_json::{json, Value};
use std::time::Duration;
use velochat::store::{DurableStore, EventRecord};
use wiremock::matchers::{body_string_contains, method};
use wiremock::{Mock, MockServer, ResponseTemplate};

const ADMIN: &str = "telemetry-admin";

async fn metrics_of(app: &TestApp) -> String {
    app.client.get(app.url("/metrics")).bearer_auth(ADMIN).send().await.unwrap().text().await.unwrap()
}

#[tokio::test]
async fn metrics_follow_a_scripted_conversation() {
    let app = spawn_app_with(&format!("[auth]\nadmin_key = \"{ADMIN}\"\n[retry]\nmax_retries = 0")).await;
    Mock::given(method("POST"))
        .and(body_string_contains("please fail"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&app.upstream)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(structured("answer", 0.9, "order", false)))
        .mount(&app.upstream)
        .await;

    say(&app, "a", "Where is my order?").await;
    say(&app, "a", "And when does it arrive?").await;
    say(&app, "b", "I want to talk to a human").await;
    say(&app, "c", "please fail now").await;
    app.send_json(&json!({"sessionId": "d"})).await;

    let m = metrics_of(&app).await;
    let v = |series: &str| metric_value(&m, series);
    assert_eq!(v("velochat_requests_total{route=\"send_chat_message\",status=\"200\"}"), 4.0);
    assert_eq!(v("velochat_requests_total{route=\"send_chat_message\",status=\"400\"}"), 1.0);
    assert_eq!(v("velochat_replies_total{source=\"model\"}"), 2.0);
    assert_eq!(v("velochat_replies_total{source=\"handoff\"}"), 1.0);
    assert_eq!(v("velochat_replies_total{source=\"fallback\"}"), 1.0);
    assert_eq!(v("velochat_fallbacks_total{reason=\"upstream_error\"}"), 1.0);
    assert_eq!(v("velochat_handoffs_total{reason=\"intent\"}"), 1.0);
    assert_eq!(v("velochat_sessions_total"), 3.0);
    assert_eq!(v("velochat_sessions_handed_off_total"), 1.0);
    assert_eq!(v("velochat_user_messages_total"), 4.0);
    assert_eq!(v("velochat_tokens_total{kind=\"prompt\"}"), 240.0, "two model replies × 120");
    assert_eq!(v("velochat_tokens_total{kind=\"completion\"}"), 24.0);
    assert_eq!(v("velochat_tokens_total{kind=\"cached\"}"), 128.0);
    assert_eq!(v("velochat_first_response_seconds_count"), 3.0, "one first reply per session");
    assert_eq!(v("velochat_overhead_seconds_count"), 4.0);
    assert!(
        v("velochat_overhead_seconds_sum") < v("velochat_request_duration_seconds_sum{route=\"send_chat_message\"}")
    );
    assert_eq!(v("velochat_upstream_duration_seconds_count"), 3.0);
    assert_eq!(v("velochat_request_duration_seconds_count{route=\"send_chat_message\"}"), 5.0);
    assert_eq!(v("velochat_circuit_state"), 0.0);
    assert!(!m.contains("sessionId") && !m.contains("\"a\""), "no session ids as labels");
}

async fn say(app: &TestApp, session: &str, text: &str) -> Value {
    app.send_json(&json!({"sessionId": session, "userText": text})).await.1
}

#[tokio::test]
async fn history_is_trimmed_to_the_prompt_token_budget_exactly() {
    let app = spawn_app_with(&format!(
        "[auth]\nadmin_key = \"{ADMIN}\"\n[history]\nmax_prompt_tokens = 400\nrequire_signatures = false"
    ))
    .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(structured("ok", 0.9, "x", false)))
        .mount(&app.upstream)
        .await;
    let history: Vec<Value> = (0..8).map(|i| json!({"role": if i % 2 == 0 { "user" } else { "assistant" }, "content": format!("turn {i}: {}", "lorem ipsum dolor ".repeat(10))})).collect();

    say_with_history(&app, &history).await;

    let sent = &app.upstream_bodies().await[0];
    let bpe = tiktoken_rs::o200k_base().unwrap();
    let messages = sent["messages"].as_array().unwrap();
    let count = |m: &Value| {
        3 + bpe.encode_ordinary(m["role"].as_str().unwrap()).len()
            + bpe.encode_ordinary(m["content"].as_str().unwrap()).len()
    };
    let total: usize = messages.iter().map(count).sum::<usize>() + 3;
    assert!(total <= 400, "{total} tokens sent");
    let kept = messages.len() - 3;
    assert!(kept < 8, "some turns dropped");
    let next_oldest = &history[8 - kept - 1];
    let with_it = total
        + 3
        + bpe.encode_ordinary(next_oldest["role"].as_str().unwrap()).len()
        + bpe.encode_ordinary(next_oldest["content"].as_str().unwrap()).len();
    assert!(with_it > 400, "one more turn would not fit ({with_it})");
    let dropped = metric_value(&metrics_of(&app).await, "velochat_history_turns_dropped_total{reason=\"tokens\"}");
    assert_eq!(dropped as usize, 8 - kept);
}

async fn say_with_history(app: &TestApp, history: &[Value]) {
    let (status, _) = app.send_json(&json!({"sessionId": "tok", "userText": "and?", "history": history})).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn each_budget_threshold_alerts_once_and_exhaustion_means_static_replies() {
    let alerts = MockServer::start().await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(204)).mount(&alerts).await;
    let app = spawn_app_with(&format!(
        "[auth]\nadmin_key = \"{ADMIN}\"\n[budget]\nmonthly_tokens = 300\nalert_webhook_url = \"{}/alerts\"",
        alerts.uri()
    ))
    .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(structured("ok", 0.9, "x", false)))
        .mount(&app.upstream)
        .await;

    for (i, expected) in ["model", "model", "model", "fallback"].iter().enumerate() {
        let body = say(&app, &format!("budget-{i}"), "hello there").await;
        assert_eq!(body["source"], *expected, "request {i}: {body}");
        if *expected == "fallback" {
            assert_eq!(body["fallbackReason"], "budget_exhausted");
        }
    }
    assert_eq!(app.upstream_calls().await, 3, "no model call once the budget is used up");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let received: Vec<Value> =
        alerts.received_requests().await.unwrap().iter().map(|r| serde_json::from_slice(&r.body).unwrap()).collect();
    let thresholds: Vec<u64> = received.iter().map(|a| a["thresholdPercent"].as_u64().unwrap()).collect();
    assert_eq!(thresholds, [50, 80, 95, 100], "each once, several from one request");
    let period = chrono::Utc::now().format("%Y-%m").to_string();
    assert_eq!(
        received[0],
        json!({"event": "budget_alert", "budget": "monthly_tokens", "thresholdPercent": 50, "used": 264.0, "limit": 300.0, "period": period})
    );
    let ratio = metric_value(&metrics_of(&app).await, "velochat_budget_used_ratio{period=\"monthly_tokens\"}");
    assert!((ratio - 396.0 / 300.0).abs() < 1e-9, "{ratio}");
}

#[tokio::test]
async fn an_alert_only_budget_keeps_the_bot_talking() {
    let app = spawn_app_with("[budget]\ndaily_tokens = 100\nhard_stop = false").await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(structured("ok", 0.9, "x", false)))
        .mount(&app.upstream)
        .await;
    for i in 0..3 {
        assert_eq!(say(&app, &format!("soft-{i}"), "hello").await["source"], "model");
    }
}

#[tokio::test]
async fn a_money_budget_is_priced_per_model_with_cached_tokens() {
    // 56 uncached × 0.15 + 64 cached × 0.075 + 12 × 0.60 = 20.4 micro-dollars per reply
    let sequential = spawn_app_with("[budget]\nmonthly_usd = 0.00005").await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(structured("ok", 0.9, "x", false)))
        .mount(&sequential.upstream)
        .await;
    let mut seen = Vec::new();
    for i in 0..4 {
        seen.push(say(&sequential, &format!("usd-{i}"), "hello").await["source"].as_str().unwrap().to_owned());
    }
    assert_eq!(seen, ["model", "model", "model", "fallback"], "61.2 µ$ ≥ 50 µ$ after three replies");
}

#[tokio::test]
async fn every_reply_lands_in_the_event_log_without_raw_ids() {
    let app = spawn_app_with(&format!("[auth]\nadmin_key = \"{ADMIN}\"")).await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(structured("ok", 0.7, "order", false)))
        .mount(&app.upstream)
        .await;
    say(&app, "visitor-secret-id", "Where is my order?").await;
    say(&app, "visitor-secret-id", "Talk to a human please").await;

    let events = wait_for_events(app.durable.as_ref(), 2).await;

    assert_eq!(events.len(), 2);
    assert_eq!(events[0].source, "model");
    assert_eq!(events[0].intent.as_deref(), Some("order"));
    assert_eq!(events[0].prompt_tokens, 120);
    assert_eq!(events[0].cached_tokens, 64);
    assert_eq!(events[0].confidence, Some(0.7));
    assert!(events[0].first_reply && !events[1].first_reply);
    assert_eq!(events[1].source, "handoff");
    assert_eq!(events[1].handoff_reason.as_deref(), Some("intent"));
    assert_eq!(events[0].session_hash.len(), 32);
    assert!(!format!("{events:?}").contains("visitor-secret-id"));

    let erased =
        app.client.delete(app.url("/admin/sessions/visitor-secret-id")).bearer_auth(ADMIN).send().await.unwrap();
    assert_eq!(erased.status(), 200);
    assert!(app.durable.events_since(0).await.unwrap().is_empty(), "erased on request");
    let gone = app.client.get(app.url("/admin/sessions/visitor-secret-id")).bearer_auth(ADMIN).send().await.unwrap();
    assert_eq!(gone.status(), 404);
}

async fn wait_for_events(durable: &dyn DurableStore, count: usize) -> Vec<EventRecord> {
    for _ in 0..50 {
        let events = durable.events_since(0).await.unwrap();
        if events.len() >= count {
            return events;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    durable.events_since(0).await.unwrap()
}

fn event(day: i64, session: &str, source: &str, intent: Option<&str>, latency: i64, first: bool) -> EventRecord {
    EventRecord {
        ts_ms: chrono::Utc::now().timestamp_millis() - day * 86_400_000,
        request_id: format!("r-{day}-{session}-{latency}"),
        session_hash: session.into(),
        route: "send_chat_message".into(),
        intent: intent.map(str::to_owned),
        source: source.into(),
        fallback_reason: (source == "fallback").then(|| "upstream_timeout".to_owned()),
        handoff_reason: (source == "handoff").then(|| "intent".to_owned()),
        latency_ms: latency,
        upstream_ms: latency / 2,
        prompt_tokens: if source == "model" { 100 } else { 0 },
        completion_tokens: if source == "model" { 10 } else { 0 },
        cached_tokens: 0,
        cost_usd: if source == "model" { 0.001 } else { 0.0 },
        confidence: (source == "model").then_some(if latency > 500 { 0.3 } else { 0.9 }),
        repeat_question: false,
        first_reply: first,
        model: None,
        site: None,
    }
}

/// A week by hand: 4 sessions, 8 replies; one handoff; one repeat; one fallback; one too old.
fn scripted_week() -> Vec<EventRecord> {
    let mut repeat = event(3, "s2", "model", Some("billing"), 600, false);
    repeat.repeat_question = true;
    vec![
        event(6, "s1", "model", Some("order"), 100, true),
        event(6, "s1", "model", Some("order"), 200, false),
        event(5, "s2", "model", Some("billing"), 300, true),
        repeat,
        event(3, "s2", "handoff", Some("refund"), 50, false),
        event(2, "s3", "fallback", None, 900, true),
        event(1, "s4", "rule", Some("opening_hours"), 10, true),
        event(0, "s4", "model", None, 400, false),
        event(9, "old", "model", Some("order"), 999, true),
    ]
}

#[tokio::test]
async fn the_weekly_review_matches_a_hand_computed_week() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/week.db", dir.path().display());
    let store = velochat::store::durable::connect(&url).await.unwrap();
    store.append_events(&scripted_week()).await.unwrap();

    let output = crate::process::binary()
        .args(["report", "--since", "7d", "--json"])
        .env("DATABASE_URL", &url)
        .output()
        .await
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let report: Value = serde_json::from_slice(&output.stdout).expect("stdout is only the report");

    assert_eq!(report["replies"], 8);
    assert_eq!(report["sessions"], 4);
    assert_eq!(report["solvedWithoutHandoffRate"], 0.75, "1 of 4 sessions handed off");
    assert_eq!(report["repeatQuestionRate"], 0.125, "1 of 8 messages");
    // first replies: 10, 100, 300, 900 → nearest-rank p50 = 100, p95 = 900
    assert_eq!(report["firstResponseMs"], json!({"p50": 100, "p95": 900, "p99": 900}));
    assert_eq!(report["bySource"], json!({"fallback": 1, "handoff": 1, "model": 5, "rule": 1}));
    assert_eq!(report["fallbackReasons"], json!({"upstream_timeout": 1}));
    assert_eq!(report["promptTokens"], 500);
    assert_eq!(report["completionTokens"], 50);
    assert_eq!(report["costUsd"], 0.005);
    let billing = report["intents"].as_array().unwrap().iter().find(|i| i["intent"] == "billing").unwrap();
    assert_eq!(billing["replies"], 2);
    assert_eq!(billing["lowConfidence"], 1);
    assert_eq!(billing["promptTokens"], 200);
    let refund = report["intents"].as_array().unwrap().iter().find(|i| i["intent"] == "refund").unwrap();
    assert_eq!(refund["handoffs"], 1);

    let text =
        crate::process::binary().args(["report", "--since", "7d"]).env("DATABASE_URL", &url).output().await.unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("solved without handoff  75.0 %"), "{text}");
}

#[tokio::test]
async fn the_report_is_served_to_admins_too() {
    let app = spawn_app_with(&format!("[auth]\nadmin_key = \"{ADMIN}\"")).await;
    app.durable.append_events(&scripted_week()).await.unwrap();
    let report = json_of(app.client.get(app.url("/admin/report?since=7d")).bearer_auth(ADMIN)).await;
    assert_eq!(report["replies"], 8);
    let bad = app.client.get(app.url("/admin/report?since=soon")).bearer_auth(ADMIN).send().await.unwrap();
    assert_eq!(bad.status(), 400);
}

#[tokio::test]
async fn records_past_retention_are_purged() {
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let url = format!("sqlite://{}/velochat.db", dir.path().display());
    let store = velochat::store::durable::connect(&url).await.unwrap();
    store
        .append_events(&[event(31, "old", "model", None, 1, true), event(1, "new", "model", None, 1, true)])
        .await
        .unwrap();
    drop(store);

    let app = spawn_app_on(MockServer::start().await, "[events]\nretention_days = 30", Some(dir)).await;
    let mut remaining = Vec::new();
    for _ in 0..50 {
        remaining = app.durable.events_since(0).await.unwrap();
        if remaining.len() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(remaining.len(), 1);
    assert_eq!(remaining[0].session_hash, "new");
}
