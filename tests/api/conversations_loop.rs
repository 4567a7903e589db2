//! The person's side of a conversation that finishes: their replies reach the visitor through a
//! long poll, and what they answered becomes suggestions from the exchanges that mattered.

use crate::handoff::{hook_accepting, model_says, settings, ADMIN};
use crate::helpers::*;
use crate::human_loop::{admin, agent_says, say};
use serde_json::Value;
use std::time::{Duration, Instant};

async fn released(app: &TestApp, session: &str) {
    let response = app.client.post(app.url(&format!("/sessions/{session}/release"))).bearer_auth(ADMIN).send();
    assert_eq!(response.await.unwrap().status(), 200);
}

/// The pending suggestions of `session` as (question, answer), in question order (several are
/// drafted in the same millisecond).
async fn suggestions_of(app: &TestApp, session: &str) -> Vec<(String, String)> {
    let (_, listed) = admin(app, reqwest::Method::GET, "/admin/kb/suggestions?status=pending", None).await;
    let mut mine: Vec<(String, String)> = listed["suggestions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["sessionId"] == session)
        .map(|s| (s["question"].as_str().unwrap().to_owned(), s["answer"].as_str().unwrap().to_owned()))
        .collect();
    mine.sort();
    mine
}

async fn loop_app() -> TestApp {
    let hook = hook_accepting().await;
    let app = spawn_app_with(&settings(&hook.uri(), "")).await;
    model_says(&app, structured("Let me check.", 0.9, "other", false)).await;
    app
}

#[tokio::test]
async fn the_real_question_and_answer_become_the_suggestion_not_the_greeting() {
    let app = loop_app().await;
    assert_eq!(say(&app, "ex-1", "Can I speak to a human?").await["handoff"], true);
    agent_says(&app, "ex-1", "Hi, this is Ana, how can I help?").await;
    say(&app, "ex-1", "Do you ship tents to Iceland?").await;
    agent_says(&app, "ex-1", "Yes: tents ship to Iceland in 5 to 7 working days.").await;
    say(&app, "ex-1", "Great, thank you!").await;
    agent_says(&app, "ex-1", "You're welcome, have a nice day!").await;
    released(&app, "ex-1").await;
    assert_eq!(
        suggestions_of(&app, "ex-1").await,
        [("Do you ship tents to Iceland?".to_owned(), "Yes: tents ship to Iceland in 5 to 7 working days.".to_owned())]
    );
}

#[tokio::test]
async fn one_conversation_yields_a_suggestion_per_question_answered() {
    let app = loop_app().await;
    say(&app, "ex-2", "Do you rent kayaks for the weekend?").await;
    say(&app, "ex-2", "I want to speak with a person").await;
    agent_says(&app, "ex-2", "Yes, kayaks are 25 euros a day, paddles included.").await;
    say(&app, "ex-2", "Thanks! And do you sell gift cards?").await;
    agent_says(&app, "ex-2", "We do: gift cards from 10 to 200 euros, by email.").await;
    released(&app, "ex-2").await;
    assert_eq!(
        suggestions_of(&app, "ex-2").await,
        [
            (
                "Do you rent kayaks for the weekend?".to_owned(),
                "Yes, kayaks are 25 euros a day, paddles included.".to_owned()
            ),
            (
                "Thanks! And do you sell gift cards?".to_owned(),
                "We do: gift cards from 10 to 200 euros, by email.".to_owned()
            ),
        ]
    );
}

#[tokio::test]
async fn an_answer_given_in_two_messages_is_one_answer_and_small_talk_is_left_out() {
    let app = loop_app().await;
    say(&app, "ex-3", "My parcel arrived damaged, what do I do?").await;
    say(&app, "ex-3", "real person please").await;
    agent_says(&app, "ex-3", "Hello!").await;
    agent_says(&app, "ex-3", "Send a photo of the damage to our support address.").await;
    agent_says(&app, "ex-3", "We ship a replacement within 2 days of receiving it.").await;
    say(&app, "ex-3", "ok thanks").await;
    released(&app, "ex-3").await;
    let found = suggestions_of(&app, "ex-3").await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].0, "My parcel arrived damaged, what do I do?");
    assert_eq!(
        found[0].1,
        "Send a photo of the damage to our support address.\n\nWe ship a replacement within 2 days of receiving it."
    );
}

async fn poll(app: &TestApp, session: &str, query: &str) -> (u16, Value) {
    let url = app.url(&format!("/sessions/{session}/messages{query}"));
    let response = app.client.get(url).bearer_auth(ADMIN).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_waiting_poll_returns_the_persons_reply_as_soon_as_it_is_written() {
    let app = loop_app().await;
    assert_eq!(say(&app, "lp-1", "I want to speak with a person").await["handoff"], true);
    let (status, first) = poll(&app, "lp-1", "").await;
    assert_eq!((status, first["sessionMode"].as_str()), (200, Some("human")), "{first}");
    let cursor = first["cursor"].as_str().unwrap().to_owned();
    assert!(first["messages"].as_array().unwrap().iter().all(|m| m["role"] != "agent"), "{first}");

    let writer = {
        let (client, url) = (app.client.clone(), app.url("/sessions/lp-1/messages"));
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(400)).await;
            let body = serde_json::json!({"role": "agent", "text": "Your parcel left today.", "author": "Ana"});
            client.post(url).bearer_auth(ADMIN).json(&body).send().await.unwrap().status()
        })
    };
    let started = Instant::now();
    let (status, woken) = poll(&app, "lp-1", &format!("?after={cursor}&waitMs=8000")).await;
    let waited = started.elapsed();
    assert_eq!(writer.await.unwrap(), 202);
    assert_eq!(status, 200);
    assert!(waited >= Duration::from_millis(350) && waited < Duration::from_secs(3), "woken by the write: {waited:?}");
    let messages = woken["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1, "{woken}");
    assert_eq!(
        (messages[0]["role"].as_str(), messages[0]["text"].as_str()),
        (Some("agent"), Some("Your parcel left today."))
    );
    assert_eq!(messages[0]["author"], "Ana");
    assert!(messages[0]["at"].as_str().unwrap().ends_with('Z') && messages[0]["id"].is_string());
    assert_eq!(woken["cursor"], messages[0]["id"]);

    // Nothing new: an immediate answer with the same cursor; a release wakes a waiting poll.
    let next = woken["cursor"].as_str().unwrap().to_owned();
    let (_, idle) = poll(&app, "lp-1", &format!("?after={next}&waitMs=0")).await;
    assert_eq!((idle["messages"].as_array().unwrap().len(), idle["cursor"].as_str()), (0, Some(next.as_str())));
    let releaser = {
        let (client, url) = (app.client.clone(), app.url("/sessions/lp-1/release"));
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            client.post(url).bearer_auth(ADMIN).send().await.unwrap().status()
        })
    };
    let started = Instant::now();
    let (_, after_release) = poll(&app, "lp-1", &format!("?after={next}&waitMs=8000")).await;
    assert_eq!(releaser.await.unwrap(), 200);
    assert_eq!(after_release["sessionMode"], "bot");
    assert!(started.elapsed() < Duration::from_secs(3), "the release ended the wait");
}

#[tokio::test]
async fn the_poll_refuses_bad_parameters_and_strangers() {
    let app = spawn_app_with("[auth]\napi_keys = [\"caller-key-0123\"]").await;
    for (query, field) in [("?waitMs=10001", "waitMs"), ("?waitMs=-1", "waitMs"), ("?after=abc", "after")] {
        let url = app.url(&format!("/sessions/s-1/messages{query}"));
        let response = app.client.get(url).bearer_auth("caller-key-0123").send().await.unwrap();
        assert_eq!(response.status(), 400, "{query}");
        assert_eq!(response.json::<Value>().await.unwrap()["error"]["field"], field);
    }
    let stranger = app.client.get(app.url("/sessions/s-1/messages")).send().await.unwrap();
    assert_eq!(stranger.status(), 401);
    let fresh = app.client.get(app.url("/sessions/never-seen/messages")).bearer_auth("caller-key-0123").send();
    let fresh: Value = fresh.await.unwrap().json().await.unwrap();
    assert_eq!(fresh, serde_json::json!({"messages": [], "cursor": "0", "sessionMode": "bot"}));
}
