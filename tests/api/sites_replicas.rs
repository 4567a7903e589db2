//! Two sites on three replicas sharing PostgreSQL and Redis: a key made on one replica works on
//! every replica within 2 s and a revoked one is refused within 2 s; the same session id in both
//! sites stays two sessions under concurrent load; one site's kill switch, flipped on one replica,
//! holds on every replica and leaves the other site answering from the model.

use crate::process::{start, Process};
use crate::services;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

const OPERATOR: &str = "sites-replica-operator";

async fn cluster(database: &str, redis: &str, prefix: &str, upstream: &MockServer) -> Vec<Process> {
    let envs = [
        ("DATABASE_URL", database.to_owned()),
        ("REDIS_URL", redis.to_owned()),
        ("VELOCHAT__STORAGE__REDIS_KEY_PREFIX", prefix.to_owned()),
        ("VELOCHAT_ADMIN_KEY", OPERATOR.to_owned()),
        ("VELOCHAT_SIGNING_KEY", "shared".to_owned()),
        ("VELOCHAT__KB__SYNC_INTERVAL_MS", "500".to_owned()),
        // Twelve messages of one session at once: neither the session limit nor the repeated-
        // question rule is what this test is about.
        ("VELOCHAT_LIMIT_SESSION_BURST", "1000".to_owned()),
        ("VELOCHAT_LIMIT_SESSION_PER_MINUTE", "1000".to_owned()),
        ("VELOCHAT__HANDOFF__REPEAT_COUNT", "1000".to_owned()),
        ("OPENAI_API_KEY", crate::helpers::OPENAI_KEY.to_owned()),
        ("OPENAI_BASE_URL", format!("{}/v1", upstream.uri())),
    ];
    let (a, b, c) = tokio::join!(start(&envs), start(&envs), start(&envs));
    vec![a, b, c]
}

async fn send(
    client: &reqwest::Client,
    node: &str,
    verb: reqwest::Method,
    route: &str,
    key: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = client.request(verb, format!("{node}{route}")).bearer_auth(key);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
}

async fn chat(client: &reqwest::Client, node: &str, key: &str, session: &str, text: &str) -> (u16, Value) {
    let body = json!({"sessionId": session, "userText": text});
    send(client, node, reqwest::Method::POST, "/sendChatMessage", key, Some(body)).await
}

/// Waits until `check` holds on every node; returns how long the change took to reach them all:
/// when the last node's first passing check was sent (the node knew by then). Nodes are probed
/// at once, so one node's slow answer — a debug build's first chat under CI load can take
/// seconds — neither delays another's probe nor counts as propagation. Panics after 5 s.
async fn on_every_node<F, Fut>(nodes: &[Process], what: &str, check: F) -> Duration
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    let probes = nodes.iter().map(|node| {
        let check = &check;
        async move {
            loop {
                let asked = started.elapsed();
                if check(node.address.clone()).await {
                    return asked;
                }
                assert!(started.elapsed() < Duration::from_secs(5), "{what}: not on {} after 5 s", node.address);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    });
    futures_util::future::join_all(probes).await.into_iter().max().unwrap_or_default()
}

#[tokio::test]
async fn keys_settings_and_sessions_stay_per_site_across_three_replicas() {
    let Some(postgres) = services::postgres("sites::replicas").await else { return };
    let Some(redis) = services::redis("sites::replicas").await else { return };
    let keys = services::RedisKeys::new();
    let upstream = MockServer::start().await;
    let answer = crate::helpers::structured("From the model.", 0.9, "other", false);
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(200).set_body_json(answer)).mount(&upstream).await;
    let nodes = cluster(&postgres.url, &redis, &keys.prefix, &upstream).await;
    let client = reqwest::Client::new();
    let put = reqwest::Method::PUT;
    let post = reqwest::Method::POST;

    // Sites and keys made on replica 0 (one key labelled, one not: a nullable column both ways).
    for site in ["acme", "globex"] {
        let body = json!({"name": site.to_uppercase()});
        assert_eq!(
            send(&client, &nodes[0].address, put.clone(), &format!("/admin/sites/{site}"), OPERATOR, Some(body))
                .await
                .0,
            200
        );
    }
    let make = |site: &'static str, role: &'static str, label: Option<&'static str>| {
        let (client, node) = (client.clone(), nodes[0].address.clone());
        async move {
            let body = json!({"role": role, "label": label});
            let (status, made) =
                send(&client, &node, reqwest::Method::POST, &format!("/admin/sites/{site}/keys"), OPERATOR, Some(body))
                    .await;
            assert_eq!(status, 201, "{made}");
            (made["key"].as_str().unwrap().to_owned(), made["id"].as_str().unwrap().to_owned())
        }
    };
    let (acme, acme_id) = make("acme", "caller", Some("wix backend")).await;
    let (acme_admin, _) = make("acme", "admin", None).await;
    let (globex, _) = make("globex", "caller", None).await;
    let took = on_every_node(&nodes, "a new key", |node| {
        let (client, key) = (client.clone(), acme.clone());
        async move { chat(&client, &node, &key, "probe-1", "Hello").await.0 == 200 }
    })
    .await;
    assert!(took < Duration::from_secs(2), "a new key took {took:?}");
    let (_, listed) =
        send(&client, &nodes[2].address, reqwest::Method::GET, "/admin/sites/acme/keys", OPERATOR, None).await;
    let labels: Vec<Value> = listed["keys"].as_array().unwrap().iter().map(|k| k["label"].clone()).collect();
    assert_eq!(labels, [json!("wix backend"), Value::Null]);

    // The same session id in both sites, 24 messages at once over every replica.
    let runs = (0..24).map(|i| {
        let (client, node) = (client.clone(), nodes[i % 3].address.clone());
        let key = if i % 2 == 0 { acme.clone() } else { globex.clone() };
        async move { chat(&client, &node, &key, "shared-1", &format!("Question number {i} about tents")).await.0 }
    });
    let statuses = futures_util::future::join_all(runs).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let (status, view) =
        send(&client, &nodes[1].address, post.clone(), "/sessions/shared-1/handoff", &acme, Some(json!({}))).await;
    assert_eq!((status, view["mode"].as_str()), (200, Some("human")));
    assert_eq!(view["turns"], 12, "Acme's 12 messages only, none of Globex's: {view}");
    for node in &nodes {
        let node = node.address.as_str();
        assert_eq!(chat(&client, node, &globex, "shared-1", "Still the bot?").await.1["source"], "model");
        assert_eq!(chat(&client, node, &acme, "shared-1", "A person?").await.1["sessionMode"], "human");
    }

    // Acme's kill switch, flipped on replica 2 with Acme's admin key, holds everywhere.
    let on = json!({"enabled": true});
    assert_eq!(send(&client, &nodes[2].address, put.clone(), "/admin/kill-switch", &acme_admin, Some(on)).await.0, 200);
    let took = on_every_node(&nodes, "the kill switch", |node| {
        let (client, key) = (client.clone(), acme.clone());
        async move { chat(&client, &node, &key, "k-1", "Open?").await.1["fallbackReason"] == "kill_switch" }
    })
    .await;
    assert!(took < Duration::from_secs(2), "the kill switch took {took:?}");
    for node in &nodes {
        assert_eq!(chat(&client, &node.address, &globex, "k-1", "Open?").await.1["source"], "model");
    }

    // Acme's page, written on replica 0, is searchable by Acme everywhere within 2 s, never by Globex.
    let (globex_admin, _) = make("globex", "admin", None).await;
    on_every_node(&nodes, "Globex's admin key", |node| {
        let (client, key) = (client.clone(), globex_admin.clone());
        async move { send(&client, &node, reqwest::Method::GET, "/admin/kill-switch", &key, None).await.0 == 200 }
    })
    .await;
    let page = json!({"title": "Returns", "body": "Acme takes returns within 30 days of delivery."});
    let put_page =
        send(&client, &nodes[0].address, put.clone(), "/admin/kb/documents/returns", &acme_admin, Some(page)).await;
    assert_eq!(put_page.0, 200, "{put_page:?}");
    let took = on_every_node(&nodes, "a site's page", |node| {
        let (client, key) = (client.clone(), acme_admin.clone());
        async move {
            let (_, found) = send(&client, &node, reqwest::Method::GET, "/admin/kb/search?q=returns", &key, None).await;
            found.to_string().contains("30 days")
        }
    })
    .await;
    assert!(took < Duration::from_secs(2), "a page took {took:?}");
    for node in &nodes {
        let (_, found) =
            send(&client, &node.address, reqwest::Method::GET, "/admin/kb/search?q=returns", &globex_admin, None).await;
        assert!(!found.to_string().contains("30 days"), "{found}");
        let (status, _) =
            send(&client, &node.address, reqwest::Method::GET, "/admin/kb/documents/returns", &globex_admin, None)
                .await;
        assert_eq!(status, 404);
    }

    // Revoked on replica 0: refused on every replica within 2 s; Globex's key still works.
    let revoke = format!("/admin/sites/acme/keys/{acme_id}");
    assert_eq!(send(&client, &nodes[0].address, reqwest::Method::DELETE, &revoke, OPERATOR, None).await.0, 204);
    let took = on_every_node(&nodes, "a revoked key", |node| {
        let (client, key) = (client.clone(), acme.clone());
        async move { chat(&client, &node, &key, "r-1", "Hi").await.0 == 401 }
    })
    .await;
    assert!(took < Duration::from_secs(2), "revocation took {took:?}");
    for node in &nodes {
        assert_eq!(chat(&client, &node.address, &globex, "r-1", "Hi").await.0, 200);
    }
    let (_, listed) =
        send(&client, &nodes[1].address, reqwest::Method::GET, "/admin/sites/globex/keys", OPERATOR, None).await;
    assert!(listed["keys"][0]["lastUsedAt"].as_str().is_some(), "written back by the replicas: {listed}");
}
