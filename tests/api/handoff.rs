//! Conversation outcomes: intent routing, confidence, and the bot → human → bot lifecycle with a
//! durable, signed, ordered webhook.

use crate::helpers::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use velochat::support::webhook;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

pub const ADMIN: &str = "handoff-admin";
pub const SECRET: &str = "whsec-test";

/// The admin key, and a signed webhook to `hook` retried fast.
pub fn settings(hook: &str, extra: &str) -> String {
    format!(
        "[auth]\nadmin_key = \"{ADMIN}\"\n[webhook]\nurl = \"{hook}/hook\"\nsecret = \"{SECRET}\"\nretry_base_ms = 50\n\
         retry_max_ms = 200\npoll_interval_ms = 50\n{extra}"
    )
}

pub async fn hook_accepting() -> MockServer {
    let hook = MockServer::start().await;
    Mock::given(method("POST")).and(path("/hook")).respond_with(ResponseTemplate::new(204)).mount(&hook).await;
    hook
}

/// Webhook bodies received so far, in arrival order.
async fn deliveries(hook: &MockServer) -> Vec<Value> {
    hook.received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.url.path() == "/hook")
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect()
}

async fn wait_for_deliveries(hook: &MockServer, at_least: usize, within: Duration) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let delivered = successful(hook).await;
        if delivered.len() >= at_least || started.elapsed() > within {
            return delivered;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Distinct events the receiver accepted (2xx), de-duplicated by id as a receiver would.
async fn successful(hook: &MockServer) -> Vec<Value> {
    let mut seen = std::collections::HashSet::new();
    deliveries(hook)
        .await
        .into_iter()
        .filter(|e| seen.insert(e["id"].as_str().unwrap_or_default().to_owned()))
        .collect()
}

pub async fn model_says(app: &TestApp, reply: Value) {
    app.upstream.reset().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(reply))
        .mount(&app.upstream)
        .await;
}

async fn say(app: &TestApp, session: &str, text: &str) -> Value {
    let (status, body) = app.send_json(&json!({"sessionId": session, "userText": text, "context": {"locale": "en-US", "activeOrder": {"reference": "A-1001", "stage": "shipped"}}})).await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test]
async fn an_explicit_request_for_a_person_hands_over_without_a_model_call() {
    let hook = hook_accepting().await;
    let app = spawn_app_with(&settings(&hook.uri(), "")).await;
    model_says(&app, structured("should not be used", 0.9, "x", false)).await;

    let body = say(&app, "h1", "Can I talk to a human please?").await;

    assert_eq!(body["source"], "handoff");
    assert_eq!(body["handoff"], true);
    assert_eq!(body["handoffReason"], "intent");
    assert_eq!(body["intent"], "human_request");
    assert_eq!(body["sessionMode"], "human");
    assert!(body["reply"].as_str().unwrap().contains("connecting you"));
    assert_eq!(app.upstream_calls().await, 0);
    let events = wait_for_deliveries(&hook, 1, Duration::from_secs(3)).await;
    assert_eq!(events[0]["event"], "handoff");
    assert_eq!(events[0]["sessionId"], "h1");
    assert_eq!(events[0]["reason"], "intent");
    assert_eq!(events[0]["intent"], "human_request");
    assert_eq!(events[0]["context"]["orderRef"], "A-1001");
    assert_eq!(events[0]["transcript"].as_array().unwrap().last().unwrap()["content"], "Can I talk to a human please?");
    assert!(events[0]["summary"].as_str().unwrap().contains("order A-1001"));
}

#[tokio::test]
async fn refunds_hand_over_and_billing_and_technical_get_their_addendum() {
    let app = spawn_app().await;
    model_says(&app, structured("answer", 0.9, "billing", false)).await;

    assert_eq!(say(&app, "r1", "I want my money back").await["handoffReason"], "intent");
    let billing = say(&app, "b1", "Why is there a second charge on my invoice?").await;
    let technical = say(&app, "t1", "The checkout page shows an error").await;

    assert_eq!(billing["intent"], "billing");
    assert_eq!(billing["source"], "model");
    assert_eq!(technical["intent"], "technical");
    let sent = app.upstream_bodies().await;
    assert_eq!(sent.len(), 2, "the refund never reached the model");
    assert!(sent[0]["messages"][2]["content"].as_str().unwrap().contains("billing"));
    assert_eq!(sent[0]["messages"][2]["role"], "system");
    assert!(sent[1]["messages"][2]["content"].as_str().unwrap().contains("technical problem"));
}

#[tokio::test]
async fn a_reply_rule_answers_with_no_tokens() {
    let rule =
        "[[intents]]\nname = \"opening_hours\"\naction = \"reply\"\n[intents.patterns]\nen = ['\\bopening hours\\b']\n\
                [intents.reply]\nen = \"We are open 9–17, Monday to Friday.\"\nfr = \"Ouvert de 9 h à 17 h.\"";
    let app = spawn_app_with(rule).await;
    model_says(&app, structured("x", 0.9, "x", false)).await;

    let body = say(&app, "rule", "What are your opening hours?").await;
    let french = app
        .send_json(&json!({"sessionId": "rule-fr", "userText": "opening hours?", "context": {"locale": "fr-FR"}}))
        .await
        .1;

    assert_eq!(body["source"], "rule");
    assert_eq!(body["intent"], "opening_hours");
    assert_eq!(body["reply"], "We are open 9–17, Monday to Friday.");
    assert_eq!(french["reply"], "Ouvert de 9 h à 17 h.");
    assert_eq!(app.upstream_calls().await, 0);
    assert!(body["signature"].is_string());
}

#[tokio::test]
async fn plain_text_from_an_upstream_ignoring_the_schema_is_still_a_reply() {
    let app = spawn_app().await;
    model_says(&app, completion("Your parcel is on its way.")).await;
    let body = say(&app, "plain", "Where is my parcel?").await;
    assert_eq!(body["source"], "model");
    assert_eq!(body["reply"], "Your parcel is on its way.");
    assert_eq!(body["confidence"], 0.8);
    let structured_off = spawn_app_with("[openai]\nstructured_output = false").await;
    model_says(&structured_off, completion("ok")).await;
    say(&structured_off, "p2", "hello").await;
    assert!(structured_off.upstream_bodies().await[0].get("response_format").is_none());
}

#[tokio::test]
async fn the_kth_low_confidence_reply_hands_over_and_not_before() {
    let hook = hook_accepting().await;
    let app = spawn_app_with(&settings(&hook.uri(), "[handoff]\nlow_confidence_count = 3")).await;
    model_says(&app, structured("I'm not sure about that.", 0.2, "other", false)).await;

    let first = say(&app, "lc", "question one about shipping").await;
    let second = say(&app, "lc", "question two about colours").await;
    assert_eq!(first["source"], "model");
    assert_eq!(second["source"], "model", "K−1 low replies do not hand over");
    let third = say(&app, "lc", "question three about sizes").await;
    assert_eq!(third["source"], "handoff");
    assert_eq!(third["handoffReason"], "low_confidence");

    model_says(&app, structured("confident", 0.9, "other", false)).await;
    let reset = spawn_app_with(&settings(&hook.uri(), "[handoff]\nlow_confidence_count = 2")).await;
    model_says(&reset, structured("unsure", 0.2, "other", false)).await;
    say(&reset, "lc2", "first unsure question").await;
    model_says(&reset, structured("sure", 0.95, "other", false)).await;
    say(&reset, "lc2", "a confident one").await;
    model_says(&reset, structured("unsure", 0.2, "other", false)).await;
    assert_eq!(
        say(&reset, "lc2", "another unsure question").await["source"],
        "model",
        "a confident reply resets the streak"
    );
}

#[tokio::test]
async fn needs_human_from_the_model_hands_over() {
    let app = spawn_app().await;
    model_says(&app, structured("Let me get a colleague.", 0.9, "account", true)).await;
    let body = say(&app, "nh", "My account was charged by someone else").await;
    assert_eq!(body["source"], "handoff");
    assert_eq!(body["handoffReason"], "needs_human");
}

#[tokio::test]
async fn the_same_question_a_third_time_hands_over() {
    let app = spawn_app().await;
    model_says(&app, structured("It shipped.", 0.9, "order", false)).await;
    assert_eq!(say(&app, "rq", "Where is my order?").await["source"], "model");
    assert_eq!(say(&app, "rq", "where is my order??").await["source"], "model");
    let third = say(&app, "rq", "Where is my order").await;
    assert_eq!(third["source"], "handoff");
    assert_eq!(third["handoffReason"], "repeated_question");
    assert_eq!(app.upstream_calls().await, 2);
    let metrics = app.metrics().await;
    assert_eq!(
        metric_value(&metrics, "velochat_repeat_questions_total"),
        2.0,
        "the second and third askings are repeats"
    );
}

#[tokio::test]
async fn while_a_human_owns_the_session_the_bot_is_silent_and_forwards_messages_in_order() {
    let hook = hook_accepting().await;
    let app = spawn_app_with(&settings(&hook.uri(), "")).await;
    model_says(&app, structured("bot", 0.9, "x", false)).await;
    say(&app, "hm", "I want to speak with a person").await;

    let holding = say(&app, "hm", "hello? anyone there?").await;
    say(&app, "hm", "my order is A-1001").await;

    assert_eq!(holding["source"], "handoff");
    assert_eq!(holding["handoffReason"], "human_mode");
    assert!(holding["reply"].as_str().unwrap().contains("has your conversation"));
    assert_eq!(app.upstream_calls().await, 0);
    let events = wait_for_deliveries(&hook, 3, Duration::from_secs(3)).await;
    let kinds: Vec<&str> = events.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["handoff", "message", "message"]);
    assert_eq!(events[1]["message"], "hello? anyone there?");
    assert_eq!(events[2]["message"], "my order is A-1001");
    for request in hook.received_requests().await.unwrap() {
        let header = request.headers.get("x-velochat-signature").unwrap().to_str().unwrap();
        assert!(webhook::verify(SECRET, header, &request.body, chrono::Utc::now().timestamp(), 300), "signed");
        assert!(request.headers.get("x-velochat-event-id").is_some());
    }
}

#[tokio::test]
async fn release_hands_the_session_back_to_the_bot() {
    let hook = hook_accepting().await;
    let app = spawn_app_with(&settings(&hook.uri(), "")).await;
    model_says(&app, structured("bot again", 0.9, "x", false)).await;
    say(&app, "rel", "connect me to an agent").await;
    let url = app.url("/admin/sessions/rel");
    let state: Value = app.client.get(&url).bearer_auth(ADMIN).send().await.unwrap().json().await.unwrap();
    assert_eq!(state["mode"], "human");
    assert_eq!(app.client.post(format!("{url}/release")).send().await.unwrap().status(), 401);

    let released = app.client.post(format!("{url}/release")).bearer_auth(ADMIN).send().await.unwrap();

    assert_eq!(released.status(), 200);
    assert_eq!(released.json::<Value>().await.unwrap()["mode"], "bot");
    assert_eq!(say(&app, "rel", "what about shipping costs?").await["source"], "model");
    let events = wait_for_deliveries(&hook, 2, Duration::from_secs(3)).await;
    assert_eq!(events[1]["event"], "released");
    let missing = app.client.get(app.url("/admin/sessions/nobody")).bearer_auth(ADMIN).send().await.unwrap();
    assert_eq!(missing.status(), 404);
}

#[tokio::test]
async fn the_release_timeout_returns_the_session_to_the_bot() {
    let app = spawn_app_with("[handoff]\nrelease_after_ms = 300").await;
    model_says(&app, structured("bot is back", 0.9, "x", false)).await;
    say(&app, "to", "talk to a human").await;
    assert_eq!(say(&app, "to", "still there?").await["handoffReason"], "human_mode");
    tokio::time::sleep(Duration::from_millis(350)).await;
    let body = say(&app, "to", "hello again").await;
    assert_eq!(body["source"], "model", "{body}");
    assert_eq!(body["sessionMode"], "bot");
}

#[tokio::test]
async fn webhook_down_for_twenty_handoffs_then_back_delivers_all_twenty() {
    let hook = MockServer::start().await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(503)).mount(&hook).await;
    let app = spawn_app_with(&settings(&hook.uri(), "")).await;
    for i in 0..20 {
        assert_eq!(say(&app, &format!("down-{i}"), "I need a representative").await["source"], "handoff");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!deliveries(&hook).await.is_empty(), "deliveries were attempted while down");

    hook.reset().await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(200)).mount(&hook).await;
    let delivered = wait_for_deliveries(&hook, 20, Duration::from_secs(5)).await;

    let sessions: std::collections::BTreeSet<&str> =
        delivered.iter().map(|e| e["sessionId"].as_str().unwrap()).collect();
    assert_eq!(sessions.len(), 20, "all 20 delivered");
}

#[tokio::test]
async fn a_restart_delivers_what_was_left_and_keeps_human_sessions_silent() {
    let dead = crate::raw_upstream::refused().await;
    let first = spawn_app_with(&settings(&dead, "")).await;
    model_says(&first, structured("bot", 0.9, "x", false)).await;
    for i in 0..3 {
        say(&first, &format!("rs-{i}"), "speak with a person").await;
    }
    say(&first, "rs-0", "are you there?").await;
    first.lifecycle.begin_shutdown();
    let db = first.db_dir.clone();
    let _ = tokio::time::timeout(Duration::from_secs(5), first.server).await;

    let hook = hook_accepting().await;
    let upstream = MockServer::start().await;
    let second = spawn_app_on(upstream, &settings(&hook.uri(), ""), Some(db)).await;
    model_says(&second, structured("bot must stay quiet", 0.9, "x", false)).await;

    let delivered = wait_for_deliveries(&hook, 4, Duration::from_secs(5)).await;
    assert_eq!(delivered.len(), 4, "none lost: {delivered:?}");
    let rs0: Vec<&str> =
        delivered.iter().filter(|e| e["sessionId"] == "rs-0").map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(rs0, ["handoff", "message"], "order kept per session");
    let after = say(&second, "rs-1", "hello after the restart").await;
    assert_eq!(after["handoffReason"], "human_mode", "a restart never lets the bot talk over an agent");
    assert_eq!(second.upstream_calls().await, 0);
}

#[tokio::test]
async fn a_person_keeps_a_session_whose_state_was_evicted_and_a_release_lets_it_go() {
    let hook = hook_accepting().await;
    let app = spawn_app_with(&settings(&hook.uri(), "")).await;
    model_says(&app, structured("bot", 0.9, "x", false)).await;
    say(&app, "evicted-1", "speak with a person").await;
    // The shared state forgets the session (an eviction); the durable owner remains.
    app.store.delete_session("evicted-1").await;
    let after = say(&app, "evicted-1", "hello?").await;
    assert_eq!(after["handoffReason"], "human_mode", "the owner is recovered: {after}");
    // A released session leaves the owners' list: forgotten again, it is the bot's.
    let released =
        app.client.post(app.url("/admin/sessions/evicted-1/release")).bearer_auth(ADMIN).send().await.unwrap();
    assert_eq!(released.status(), 200);
    app.store.delete_session("evicted-1").await;
    assert_eq!(say(&app, "evicted-1", "thanks, one more question").await["source"], "model");
    assert_eq!(say(&app, "fresh-1", "hello there").await["source"], "model");
}
