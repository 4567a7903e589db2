//! The human loop on two replicas sharing PostgreSQL and Redis: a handoff, agent messages and the
//! release may each land on a different replica; concurrent sessions each draft their own
//! suggestion; two SLA sweepers racing still send one breach per handoff.

use crate::process::{start, Process};
use crate::services;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const ADMIN: &str = "loop-replica-admin";

async fn cluster(database: &str, redis: &str, prefix: &str, hook: &MockServer, upstream: &MockServer) -> Vec<Process> {
    let envs = [
        ("DATABASE_URL", database.to_owned()),
        ("REDIS_URL", redis.to_owned()),
        ("VELOCHAT__STORAGE__REDIS_KEY_PREFIX", prefix.to_owned()),
        ("VELOCHAT_ADMIN_KEY", ADMIN.to_owned()),
        ("VELOCHAT_SIGNING_KEY", "shared".to_owned()),
        ("VELOCHAT_HANDOFF_SLA_MS", "600".to_owned()),
        ("VELOCHAT_HANDOFF_WEBHOOK_URL", format!("{}/hook", hook.uri())),
        ("VELOCHAT__WEBHOOK__POLL_INTERVAL_MS", "50".to_owned()),
        ("VELOCHAT__KB__SYNC_INTERVAL_MS", "200".to_owned()),
        ("VELOCHAT__LIMITS__IP_BURST", "100000".to_owned()),
        ("VELOCHAT__LIMITS__IP_PER_MINUTE", "100000".to_owned()),
        ("OPENAI_API_KEY", crate::helpers::OPENAI_KEY.to_owned()),
        ("OPENAI_BASE_URL", format!("{}/v1", upstream.uri())),
    ];
    vec![start(&envs).await, start(&envs).await]
}

async fn post(client: &reqwest::Client, node: &Process, route: &str, body: Value) -> (u16, Value) {
    let response = client.post(format!("{}{route}", node.address)).bearer_auth(ADMIN).json(&body).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
}

async fn get(client: &reqwest::Client, node: &Process, route: &str) -> Value {
    crate::helpers::get_json(client, &format!("{}{route}", node.address), ADMIN).await
}

async fn breaches(hook: &MockServer) -> Vec<Value> {
    let mut seen = std::collections::HashSet::new();
    hook.received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .map(|r| serde_json::from_slice::<Value>(&r.body).unwrap())
        .filter(|b| b["type"] == "sla_breached" && seen.insert(b["id"].as_str().unwrap_or_default().to_owned()))
        .collect()
}

#[tokio::test]
async fn handoffs_answers_and_releases_spread_over_replicas_each_draft_one_suggestion() {
    let Some(postgres) = services::postgres("human_loop::replicas").await else { return };
    let Some(redis) = services::redis("human_loop::replicas").await else { return };
    let keys = services::RedisKeys::new();
    let (hook, upstream) = (MockServer::start().await, MockServer::start().await);
    Mock::given(method("POST")).and(path("/hook")).respond_with(ResponseTemplate::new(204)).mount(&hook).await;
    let answer = crate::helpers::structured("Let me check.", 0.9, "other", false);
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(200).set_body_json(answer)).mount(&upstream).await;
    let nodes = cluster(&postgres.url, &redis, &keys.prefix, &hook, &upstream).await;
    let client = reqwest::Client::new();

    // Ten sessions at once: the question on one replica, handoff and the first answer on the other,
    // a second answer (no author: a null column) and the release back on the first.
    let topics =
        ["kayak", "crampons", "tarp", "stove", "compass", "snowshoes", "hammock", "gaiters", "thermos", "lantern"];
    let runs = topics.iter().enumerate().map(|(i, topic)| {
        let (client, a, b) = (client.clone(), &nodes[i % 2], &nodes[(i + 1) % 2]);
        async move {
            let session = format!("rep-{i}");
            let question = format!("Can I rent a {topic} for the weekend?");
            let (status, _) =
                post(&client, a, "/sendChatMessage", json!({"sessionId": session, "userText": question})).await;
            assert_eq!(status, 200);
            assert_eq!(post(&client, b, &format!("/sessions/{session}/handoff"), json!({})).await.0, 200);
            let first =
                json!({"role": "agent", "text": format!("Yes, the {topic} rents for 15 euros."), "author": "Ana"});
            assert_eq!(post(&client, b, &format!("/sessions/{session}/messages"), first).await.0, 202);
            let second = json!({"role": "agent", "text": "Pick it up in store.", "author": null});
            assert_eq!(post(&client, a, &format!("/sessions/{session}/messages"), second).await.0, 202);
            assert_eq!(post(&client, a, &format!("/sessions/{session}/release"), json!({})).await.0, 200);
        }
    });
    futures_util::future::join_all(runs).await;

    let listed = get(&client, &nodes[1], "/admin/kb/suggestions?status=pending").await;
    let suggestions = listed["suggestions"].as_array().unwrap();
    assert_eq!(suggestions.len(), topics.len(), "{listed}");
    for (i, topic) in topics.iter().enumerate() {
        let mine = suggestions.iter().find(|s| s["sessionId"] == format!("rep-{i}")).expect("one per session");
        assert_eq!(mine["question"], format!("Can I rent a {topic} for the weekend?"));
        assert_eq!(mine["answer"], format!("Yes, the {topic} rents for 15 euros.\n\nPick it up in store."));
        assert!(mine["decidedAt"].is_null());
    }
    // Approved through one replica, searchable on the other within 2 s.
    let id = suggestions[0]["id"].as_str().unwrap().to_owned();
    let (status, approved) = post(&client, &nodes[0], &format!("/admin/kb/suggestions/{id}/approve"), json!({})).await;
    assert_eq!(status, 200, "{approved}");
    let decided = get(&client, &nodes[1], "/admin/kb/suggestions?status=approved").await;
    assert!(decided["suggestions"][0]["decidedAt"].as_str().is_some(), "{decided}");
    let question = approved["question"].as_str().unwrap().to_owned();
    let started = Instant::now();
    loop {
        let found = get(&client, &nodes[1], &format!("/admin/kb/search?q={}", urlencode(&question))).await;
        if found["results"][0]["id"] == format!("suggestion-{id}") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(2), "not on the other replica within 2 s: {found}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let report = get(&client, &nodes[1], "/admin/report?since=1d").await;
    assert_eq!(report["handoffs"]["handoffs"], 10, "{report}");
    assert_eq!(report["handoffs"]["answered"], 10, "{report}");

    // Two sweepers, one handoff left unanswered past the 600 ms SLA: one breach event.
    post(&client, &nodes[0], "/sendChatMessage", json!({"sessionId": "late", "userText": "Is anyone there?"})).await;
    post(&client, &nodes[1], "/sessions/late/handoff", json!({})).await;
    let started = Instant::now();
    while breaches(&hook).await.is_empty() && started.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let sent = breaches(&hook).await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0]["sessionId"], "late");
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}
