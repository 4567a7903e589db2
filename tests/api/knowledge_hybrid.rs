//! Hybrid search as shipped: on by default whenever there is a model API key, `off` when told,
//! keywords only without a key; its own breaker and metric; vectors made again when the model
//! changes; `GET /admin/kb/status`.

use crate::helpers::*;
use crate::knowledge::{import, search, ADMIN};
use crate::knowledge_safety::TopicEmbeddings;
use crate::process::start;
use serde_json::{json, Value};
use std::time::Duration;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn pages() -> Value {
    json!({"documents": [
        {"id": "returns", "title": "Returns", "body": "Send the item back within 30 days and we refund you in full."},
        {"id": "shipping", "title": "Shipping", "body": "Parcels are delivered in 3 days."}
    ]})
}

/// Bodies of the embeddings requests the fake received.
async fn embeddings_requests(upstream: &MockServer) -> Vec<Value> {
    let requests = upstream.received_requests().await.unwrap_or_default();
    requests
        .iter()
        .filter(|r| r.url.path() == "/v1/embeddings")
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect()
}

async fn status_of(client: &reqwest::Client, address: &str) -> Value {
    get_json(client, &format!("{address}/admin/kb/status"), ADMIN).await
}

async fn import_to(client: &reqwest::Client, address: &str) {
    let response = client.post(format!("{address}/admin/kb/import")).bearer_auth(ADMIN).json(&pages()).send();
    assert_eq!(response.await.unwrap().status(), 200);
}

#[tokio::test]
async fn with_a_key_hybrid_search_is_on_by_default_and_off_when_told() {
    let upstream = MockServer::start().await;
    Mock::given(method("POST")).and(path("/v1/embeddings")).respond_with(TopicEmbeddings).mount(&upstream).await;
    let client = reqwest::Client::new();
    let with_key = |extra: Vec<(&'static str, String)>| {
        let mut envs = vec![
            ("OPENAI_API_KEY", OPENAI_KEY.to_owned()),
            ("OPENAI_BASE_URL", format!("{}/v1", upstream.uri())),
            ("VELOCHAT_ADMIN_KEY", ADMIN.to_owned()),
        ];
        envs.extend(extra);
        envs
    };

    let default = start(&with_key(vec![])).await;
    import_to(&client, &default.address).await;
    let sent = embeddings_requests(&upstream).await;
    assert_eq!(sent.len(), 1, "one batch for the import");
    assert_eq!(sent[0]["model"], "text-embedding-3-small");
    assert_eq!(sent[0]["input"].as_array().unwrap().len(), 2);
    let status = status_of(&client, &default.address).await;
    assert_eq!(status, json!({"documents": 2, "chunks": 2, "embeddedChunks": 2, "model": "text-embedding-3-small"}));
    let found = get_json(
        &client,
        &format!("{}/admin/kb/search?q=Can%20I%20get%20a%20reimbursement%3F", default.address),
        ADMIN,
    )
    .await;
    assert_eq!(found["results"][0]["id"], "returns", "found by meaning: {found}");
    let off_topic =
        get_json(&client, &format!("{}/admin/kb/search?q=Do%20you%20sell%20bicycles%3F", default.address), ADMIN).await;
    assert_eq!(off_topic["results"], json!([]), "the threshold holds for both lists: {off_topic}");

    upstream.reset().await;
    let off = start(&with_key(vec![("VELOCHAT_KB_EMBEDDINGS_MODEL", "off".into())])).await;
    import_to(&client, &off.address).await;
    let found =
        get_json(&client, &format!("{}/admin/kb/search?q=Can%20I%20get%20a%20reimbursement%3F", off.address), ADMIN)
            .await;
    assert_eq!(found["results"], json!([]), "keywords only");
    assert_eq!(status_of(&client, &off.address).await["model"], Value::Null);

    let no_key = start(&[("VELOCHAT_ADMIN_KEY", ADMIN.to_owned())]).await;
    import_to(&client, &no_key.address).await;
    assert_eq!(status_of(&client, &no_key.address).await["embeddedChunks"], 0);
    assert!(embeddings_requests(&upstream).await.is_empty(), "no embeddings call when off or without a key");
}

#[tokio::test]
async fn failing_embeddings_open_their_own_breaker_never_the_chats() {
    let app = spawn_app_with(&format!(
        "[auth]\nadmin_key = \"{ADMIN}\"\n[kb]\nembeddings_model = \"text-embedding-3-small\"\n[breaker]\nconsecutive_failures = 2"
    ))
    .await;
    Mock::given(method("POST")).and(path("/v1/embeddings")).respond_with(TopicEmbeddings).mount(&app.upstream).await;
    assert_eq!(import(&app, &pages()).await.0, 200);
    // Then the embeddings endpoint goes down; the chat model does not.
    app.upstream.reset().await;
    Mock::given(method("POST"))
        .and(path("/v1/embeddings"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&app.upstream)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(structured("In 3 days.", 0.9, "other", false)))
        .mount(&app.upstream)
        .await;
    for i in 0..4 {
        let (_, reply) = app.send_json(&json!({"sessionId": format!("hy-{i}"), "userText": format!("When are parcels delivered, question {i}?")})).await;
        assert_eq!(reply["source"], "model", "{reply}");
        assert_eq!(reply["sources"][0]["id"], "shipping", "keyword search answered: {reply}");
    }
    let metrics = get_text(&app.client, &app.url("/metrics"), ADMIN).await;
    assert_eq!(metric_value(&metrics, "velochat_circuit_state"), 0.0, "the chat breaker stays closed");
    assert_eq!(metric_value(&metrics, "velochat_kb_embeddings_total{outcome=\"failed\"}"), 2.0);
    assert_eq!(metric_value(&metrics, "velochat_kb_embeddings_total{outcome=\"circuit_open\"}"), 2.0, "then skipped");
    assert_eq!(embeddings_requests(&app.upstream).await.len(), 2, "the open breaker spares the endpoint");
}

#[tokio::test]
async fn a_new_model_is_embedded_again_in_the_background_and_status_says_how_far() {
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let upstream = MockServer::start().await;
    Mock::given(method("POST")).and(path("/v1/embeddings")).respond_with(TopicEmbeddings).mount(&upstream).await;
    let config = |model: &str| {
        format!("[auth]\nadmin_key = \"{ADMIN}\"\n[kb]\nembeddings_model = \"{model}\"\nsync_interval_ms = 50")
    };
    let first = spawn_app_on(upstream, &config("model-a"), Some(dir.clone())).await;
    assert_eq!(import(&first, &pages()).await.0, 200);
    assert_eq!(status_of(&first.client, &first.address).await["embeddedChunks"], 2);
    first.lifecycle.begin_shutdown();
    let upstream = first.upstream;
    let _ = first.server.await;

    let second = spawn_app_on(upstream, &config("model-b"), Some(dir.clone())).await;
    let mut status = Value::Null;
    for _ in 0..60 {
        status = status_of(&second.client, &second.address).await;
        if status["embeddedChunks"] == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, json!({"documents": 2, "chunks": 2, "embeddedChunks": 2, "model": "model-b"}));
    let models: Vec<Value> = embeddings_requests(&second.upstream).await.iter().map(|b| b["model"].clone()).collect();
    assert_eq!(models, [json!("model-a"), json!("model-b")], "imported once, embedded again once");
    assert_eq!(search(&second, "Can I get a reimbursement?").await[0]["id"], "returns", "found by meaning again");
}
