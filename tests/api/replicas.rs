//! Three velochat processes on loopback sharing one Redis (and PostgreSQL): limits, handoffs, the
//! kill switch, budgets and outbox deliveries mean the same on every replica; Redis going away
//! degrades, never fails.

use crate::helpers::*;
use crate::process::{start, Process};
use crate::services;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

const ADMIN: &str = "replica-admin";

struct Cluster {
    nodes: Vec<Process>,
    client: reqwest::Client,
    /// Deletes the cluster's Redis keys when the test ends.
    _keys: services::RedisKeys,
}

impl Cluster {
    async fn start(redis: &str, extra: &[(&str, String)]) -> Self {
        let keys = services::RedisKeys::new();
        let mut envs: Vec<(&str, String)> = vec![
            ("REDIS_URL", redis.to_owned()),
            ("VELOCHAT__STORAGE__REDIS_KEY_PREFIX", keys.prefix.clone()),
            ("VELOCHAT__STORAGE__EXPECTED_REPLICAS", "3".into()),
            ("VELOCHAT_SIGNING_KEY", "shared-signing-key".into()),
            ("VELOCHAT_ADMIN_KEY", ADMIN.into()),
        ];
        envs.extend(extra.iter().cloned());
        let mut nodes = Vec::new();
        for _ in 0..3 {
            nodes.push(start(&envs).await);
        }
        Self { nodes, client: reqwest::Client::new(), _keys: keys }
    }

    async fn send(&self, node: usize, session: &str, text: &str) -> (u16, Value) {
        let response = self
            .client
            .post(format!("{}/sendChatMessage", self.nodes[node].address))
            .json(&json!({"sessionId": session, "userText": text}))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn kill_switch(&self, node: usize, enabled: bool) -> reqwest::Response {
        let url = format!("{}/admin/kill-switch", self.nodes[node].address);
        self.client.put(url).bearer_auth(ADMIN).json(&json!({"enabled": enabled})).send().await.unwrap()
    }

    async fn get(&self, node: usize, path: &str) -> (u16, Value) {
        let response =
            self.client.get(format!("{}{path}", self.nodes[node].address)).bearer_auth(ADMIN).send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

fn upstream_env(upstream: &MockServer) -> Vec<(&'static str, String)> {
    vec![("OPENAI_API_KEY", OPENAI_KEY.to_owned()), ("OPENAI_BASE_URL", format!("{}/v1", upstream.uri()))]
}

async fn answering_upstream() -> MockServer {
    let upstream = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(structured("model", 0.9, "x", false)))
        .mount(&upstream)
        .await;
    upstream
}

#[tokio::test]
async fn a_session_burst_spread_over_three_replicas_admits_exactly_the_burst() {
    let Some(redis) = services::redis("replicas::session_burst").await else { return };
    let cluster = Cluster::start(
        &redis,
        &[("VELOCHAT_LIMIT_SESSION_BURST", "5".into()), ("VELOCHAT_LIMIT_SESSION_PER_MINUTE", "1".into())],
    )
    .await;
    let mut admitted = 0;
    for i in 0..15 {
        let (status, body) = cluster.send(i % 3, "shared-session", &format!("message {i}")).await;
        match status {
            200 => admitted += 1,
            429 => assert_eq!(body["error"]["limit"], "session"),
            other => panic!("status {other}"),
        }
    }
    assert!((5..=6).contains(&admitted), "admitted {admitted}: the burst is 5 across all replicas");
}

#[tokio::test]
async fn a_handoff_through_one_replica_silences_the_bot_on_the_others() {
    let Some(redis) = services::redis("replicas::handoff").await else { return };
    let upstream = answering_upstream().await;
    let cluster = Cluster::start(&redis, &upstream_env(&upstream)).await;

    let (_, handoff) = cluster.send(0, "handed", "I want to talk to a human").await;
    assert_eq!(handoff["source"], "handoff");
    for node in [1, 2] {
        let (status, body) = cluster.send(node, "handed", &format!("hello from node {node}")).await;
        assert_eq!(status, 200);
        assert_eq!(body["handoffReason"], "human_mode", "replica {node}: {body}");
    }
    assert_eq!(upstream.received_requests().await.unwrap().len(), 0);
    let (_, state) = cluster.get(2, "/admin/sessions/handed").await;
    assert_eq!(state["mode"], "human");
}

#[tokio::test]
async fn a_kill_switch_flip_on_one_replica_stops_model_calls_everywhere_within_a_second() {
    let Some(redis) = services::redis("replicas::kill_switch").await else { return };
    let upstream = answering_upstream().await;
    let cluster = Cluster::start(&redis, &upstream_env(&upstream)).await;
    assert_eq!(cluster.send(1, "k1", "hello").await.1["source"], "model");

    let flipped = cluster.kill_switch(0, true).await;
    assert_eq!(flipped.status(), 200);
    let at = Instant::now();
    for node in [1, 2] {
        loop {
            let (_, body) = cluster.send(node, &format!("k-{node}-{}", at.elapsed().as_millis()), "hello").await;
            if body["fallbackReason"] == "kill_switch" {
                break;
            }
            assert!(at.elapsed() < Duration::from_secs(1), "replica {node} still calls the model after 1 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let calls = upstream.received_requests().await.unwrap().len();
    for node in 0..3 {
        assert_eq!(cluster.send(node, &format!("after-{node}"), "hello").await.1["fallbackReason"], "kill_switch");
    }
    assert_eq!(upstream.received_requests().await.unwrap().len(), calls, "no model call after the flip took effect");
}

#[tokio::test]
async fn the_budget_counts_tokens_from_all_three() {
    let Some(redis) = services::redis("replicas::budget").await else { return };
    let upstream = answering_upstream().await;
    let mut env = upstream_env(&upstream);
    env.push(("VELOCHAT_BUDGET_MONTHLY_TOKENS", "300".into()));
    let cluster = Cluster::start(&redis, &env).await;

    for node in 0..3 {
        assert_eq!(cluster.send(node, &format!("b{node}"), "hello").await.1["source"], "model", "node {node}");
    }
    // 3 × 132 = 396 tokens ≥ 300: every replica now sees the shared total (refreshed each second).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for node in 0..3 {
        let (_, body) = cluster.send(node, &format!("late{node}"), "hello").await;
        assert_eq!(body["fallbackReason"], "budget_exhausted", "node {node}");
    }
    assert_eq!(upstream.received_requests().await.unwrap().len(), 3);
}

/// A webhook that answers 503 until `up`, then 200, keeping the bodies it accepted.
#[derive(Clone, Default)]
struct SwitchableHook {
    up: Arc<AtomicBool>,
    accepted: Arc<Mutex<Vec<Value>>>,
}

impl SwitchableHook {
    fn accepted(&self) -> Vec<Value> {
        self.accepted.lock().unwrap().clone()
    }
}

impl wiremock::Respond for SwitchableHook {
    fn respond(&self, request: &wiremock::Request) -> ResponseTemplate {
        if !self.up.load(Ordering::SeqCst) {
            return ResponseTemplate::new(503);
        }
        self.accepted.lock().unwrap().push(serde_json::from_slice(&request.body).unwrap());
        ResponseTemplate::new(200)
    }
}

#[tokio::test]
async fn with_the_webhook_down_then_up_each_outbox_event_is_delivered_exactly_once() {
    let Some(redis) = services::redis("replicas::outbox").await else { return };
    let Some(postgres) = services::postgres("replicas::outbox").await else { return };
    let hook = MockServer::start().await;
    let webhook = SwitchableHook::default();
    Mock::given(method("POST")).respond_with(webhook.clone()).mount(&hook).await;
    let cluster = Cluster::start(
        &redis,
        &[
            ("DATABASE_URL", postgres.url.clone()),
            ("VELOCHAT_HANDOFF_WEBHOOK_URL", format!("{}/hook", hook.uri())),
            ("VELOCHAT__WEBHOOK__RETRY_BASE_MS", "50".into()),
            ("VELOCHAT__WEBHOOK__RETRY_MAX_MS", "200".into()),
            ("VELOCHAT__WEBHOOK__POLL_INTERVAL_MS", "50".into()),
            ("VELOCHAT_LIMIT_IP_BURST", "1000".into()),
        ],
    )
    .await;
    let mut expected = 0;
    for i in 0..12 {
        let session = format!("ob-{i}");
        let (status, body) = cluster.send(i % 3, &session, "connect me to an agent").await;
        assert_eq!(body["source"], "handoff", "{status} {body}");
        assert_eq!(cluster.send((i + 1) % 3, &session, "still waiting").await.1["handoffReason"], "human_mode");
        expected += 2;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    // The webhook comes back. Only deliveries it accepted count: swapping the mock instead would let
    // an attempt in flight at the swap be recorded though it failed (and was rightly retried).
    webhook.up.store(true, Ordering::SeqCst);
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) && webhook.accepted().len() < expected {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Linger: a duplicate delivery from another replica would arrive now.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let bodies = webhook.accepted();
    let ids: std::collections::HashSet<&str> = bodies.iter().map(|b| b["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), expected, "every event delivered");
    assert_eq!(bodies.len(), expected, "and none twice, whichever replica delivered it");
    for i in 0..12 {
        let kinds: Vec<&str> = bodies
            .iter()
            .filter(|b| b["sessionId"] == format!("ob-{i}"))
            .map(|b| b["event"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["handoff", "message"], "order per session");
    }
    let pool = sqlx::PgPool::connect(&postgres.url).await.unwrap();
    let (events,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM velochat_events").fetch_one(&pool).await.unwrap();
    assert_eq!(events, 24, "every reply's event landed in PostgreSQL");
    pool.close().await;
    drop(cluster);
}

#[tokio::test]
async fn redis_stopped_mid_run_degrades_without_errors_and_recovers() {
    let Some(mut redis) = services::OwnRedis::start("replicas::redis_outage").await else { return };
    let upstream = answering_upstream().await;
    let cluster = Cluster::start(&redis.url(), &upstream_env(&upstream)).await;
    assert_eq!(cluster.get(0, "/readyz").await.1["status"], "ready");
    let mut statuses = Vec::new();
    for i in 0..6 {
        statuses.push(cluster.send(i % 3, &format!("pre-{i}"), "hello").await.0);
    }

    redis.stop();
    let outage = Instant::now();
    while outage.elapsed() < Duration::from_millis(1500) {
        for node in 0..3 {
            let (status, body) =
                cluster.send(node, &format!("during-{node}-{}", outage.elapsed().as_millis()), "hello").await;
            assert!(status == 200 || status == 429, "status {status} during the outage: {body}");
            statuses.push(status);
        }
    }
    for node in 0..3 {
        let (status, ready) = cluster.get(node, "/readyz").await;
        assert_eq!(status, 200, "still serving");
        assert_eq!(ready["status"], "degraded", "node {node}: {ready}");
        let metrics = cluster
            .client
            .get(format!("{}/metrics", cluster.nodes[node].address))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(metric_value(&metrics, "velochat_redis_up"), 0.0);
    }
    let flip = cluster.kill_switch(0, true).await;
    assert_eq!(flip.status(), 503, "a kill switch that cannot reach the other replicas says so");

    redis.restart();
    let back = Instant::now();
    for node in 0..3 {
        loop {
            if cluster.get(node, "/readyz").await.1["status"] == "ready" {
                break;
            }
            assert!(back.elapsed() < Duration::from_secs(5), "node {node} did not recover");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    assert_eq!(cluster.send(1, "after", "hello").await.1["source"], "model");
    assert!(statuses.iter().all(|s| *s < 500), "no 5xx at any point");
}
