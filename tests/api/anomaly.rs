//! Spend anomaly across two replicas sharing Redis: a scripted week of hourly usage (written where
//! velochat keeps it), then a spike spread over both replicas → exactly one alert for the hour;
//! nothing under the floor.

use crate::helpers::*;
use crate::process::{start, Process};
use crate::services;
use serde_json::{json, Value};
use std::time::Duration;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const CALLER: &str = "anomaly-caller";
/// Tokens of one fake completion (120 prompt + 12 completion).
const PER_REPLY: u64 = 132;

async fn alert_hook() -> MockServer {
    let hook = MockServer::start().await;
    Mock::given(method("POST")).and(path("/alert")).respond_with(ResponseTemplate::new(204)).mount(&hook).await;
    hook
}

async fn alerts(hook: &MockServer) -> Vec<Value> {
    hook.received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .map(|r| serde_json::from_slice::<Value>(&r.body).unwrap())
        .filter(|b| b["event"] == "spend_anomaly")
        .collect()
}

/// Seven days of `per_hour` tokens before the current hour, as the replicas' shared counters.
async fn scripted_week(redis: &str, prefix: &str, per_hour: u64) {
    let client = redis::Client::open(redis).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let now = chrono::Utc::now();
    for back in 1..=168 {
        let hour = (now - chrono::Duration::hours(back)).format("%Y-%m-%dT%H");
        let key = format!("{prefix}budget:hour:{hour}:tokens");
        let _: () = redis::cmd("SET")
            .arg(&key)
            .arg(per_hour)
            .arg("EX")
            .arg(3600 * 24 * 9)
            .query_async(&mut connection)
            .await
            .unwrap();
    }
}

async fn two_replicas(
    redis: &str,
    prefix: &str,
    hook: &MockServer,
    upstream: &MockServer,
    min_tokens: u64,
) -> Vec<Process> {
    let envs: Vec<(&str, String)> = vec![
        ("REDIS_URL", redis.to_owned()),
        ("VELOCHAT__STORAGE__REDIS_KEY_PREFIX", prefix.to_owned()),
        ("VELOCHAT_ALERT_WEBHOOK_URL", format!("{}/alert", hook.uri())),
        ("VELOCHAT__BUDGET__ANOMALY_MIN_TOKENS", min_tokens.to_string()),
        ("VELOCHAT_API_KEYS", CALLER.to_owned()),
        ("OPENAI_API_KEY", OPENAI_KEY.to_owned()),
        ("OPENAI_BASE_URL", format!("{}/v1", upstream.uri())),
    ];
    vec![start(&envs).await, start(&envs).await]
}

async fn chat(client: &reqwest::Client, node: &Process, session: &str) {
    let response = client
        .post(format!("{}/sendChatMessage", node.address))
        .bearer_auth(CALLER)
        .json(&json!({"sessionId": session, "userText": format!("What is the status of order {session}?")}))
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["source"], "model", "{body}");
}

async fn answering_upstream() -> MockServer {
    let upstream = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(structured("On its way.", 0.9, "order", false)))
        .mount(&upstream)
        .await;
    upstream
}

#[tokio::test]
async fn a_spike_over_two_replicas_alerts_exactly_once_for_the_hour() {
    let Some(redis) = services::redis("anomaly::spike").await else { return };
    let keys = services::RedisKeys::new();
    scripted_week(&redis, &keys.prefix, 100).await;
    let (hook, upstream) = (alert_hook().await, answering_upstream().await);
    let nodes = two_replicas(&redis, &keys.prefix, &hook, &upstream, 1000).await;
    let client = reqwest::Client::new();
    // 3 × the median (100) is 300, the floor 1,000: the 9th reply (1,188 tokens) is over both.
    for i in 0..16 {
        chat(&client, &nodes[i % 2], &format!("spike-{i}")).await;
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    let sent = alerts(&hook).await;
    assert_eq!(sent.len(), 1, "one alert for the hour, across both replicas: {sent:?}");
    let alert = &sent[0];
    assert_eq!(alert["baselineHourlyTokens"], 100);
    let last_hour = alert["lastHourTokens"].as_u64().unwrap();
    // Counted across replicas: the alert fires on the request that crossed 1,000 (no earlier).
    assert!((1000..=1000 + PER_REPLY + 100).contains(&last_hour), "{alert}");
    assert!(alert["factor"].as_f64().unwrap() > 3.0, "{alert}");
    for i in 16..24 {
        chat(&client, &nodes[i % 2], &format!("more-{i}")).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(alerts(&hook).await.len(), 1, "still one within the hour");
}

#[tokio::test]
async fn nothing_is_sent_under_the_floor() {
    let Some(redis) = services::redis("anomaly::floor").await else { return };
    let keys = services::RedisKeys::new();
    scripted_week(&redis, &keys.prefix, 10).await;
    let (hook, upstream) = (alert_hook().await, answering_upstream().await);
    let nodes = two_replicas(&redis, &keys.prefix, &hook, &upstream, 20_000).await;
    let client = reqwest::Client::new();
    for i in 0..12 {
        chat(&client, &nodes[i % 2], &format!("quiet-{i}")).await;
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(alerts(&hook).await.len(), 0, "1,584 tokens is 50× the baseline but under 20,000");
}
