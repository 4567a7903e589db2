//! Nothing accepted is lost on PostgreSQL and Redis: event batches cannot be poisoned by NULLs, a
//! burst lands whole, and one session's messages spread over replicas are all recorded.

use crate::helpers::*;
use crate::process::{start, Process};
use crate::services;
use serde_json::{json, Value};
use std::sync::Arc;
use velochat::store::{DurableStore, EventRecord};
use velochat::telemetry::{EventSink, Metrics};
use wiremock::matchers::method;
use wiremock::{Mock, ResponseTemplate};

/// An event with each nullable column present or not, as `mask` says (bit per column).
fn event(n: usize, mask: u32) -> EventRecord {
    let some = |bit: u32| mask & (1 << bit) != 0;
    EventRecord {
        ts_ms: 1_764_000_000_000 + n as i64,
        request_id: format!("r-{n}"),
        session_hash: format!("s-{}", n % 7),
        route: "send_chat_message".into(),
        intent: some(0).then(|| "order".to_owned()),
        source: "model".into(),
        fallback_reason: some(1).then(|| "upstream_timeout".to_owned()),
        handoff_reason: some(2).then(|| "intent".to_owned()),
        latency_ms: 12,
        upstream_ms: 10,
        prompt_tokens: 400,
        completion_tokens: 30,
        cached_tokens: 0,
        cost_usd: 0.0001,
        confidence: some(3).then_some(0.25 + n as f64 / 1000.0),
        repeat_question: n % 2 == 0,
        first_reply: n % 3 == 0,
        model: some(4).then(|| "gpt-4o-mini".to_owned()),
        site: some(5).then(|| "acme".to_owned()),
    }
}

async fn postgres_store(test: &str) -> Option<(services::TestDatabase, Arc<dyn DurableStore>)> {
    let database = services::postgres(test).await?;
    let store = velochat::store::durable::connect(&database.url).await.expect("the store connects");
    Some((database, store))
}

#[tokio::test]
async fn a_null_confidence_first_never_poisons_later_batches() {
    let Some((_database, store)) = postgres_store("durability::null_first").await else { return };
    // The recipe: a handoff's event (no confidence) first, then ordinary replies in later batches.
    store.append_events(&[event(0, 0b00101)]).await.expect("the NULL-confidence batch");
    for (size, start) in [(1, 1), (3, 2), (64, 5), (2, 69)] {
        let batch: Vec<EventRecord> = (start..start + size).map(|n| event(n, 0b111111)).collect();
        store.append_events(&batch).await.unwrap_or_else(|e| panic!("a batch of {size} after a NULL: {e}"));
    }
    assert_eq!(store.events_since(0).await.unwrap().len(), 71);
}

/// Every combination of the six nullable columns (the site too), alone, and mixed inside one batch, both ways
/// round: each row reads back as written, NULLs where they were.
async fn nullable_columns_round_trip(store: &dyn DurableStore) {
    let mut written = Vec::new();
    let mut n = 0;
    for mask in 0..64u32 {
        let alone = event(n, mask);
        store.append_events(std::slice::from_ref(&alone)).await.unwrap();
        written.push(alone);
        n += 1;
        let mixed = vec![event(n, mask), event(n + 1, !mask & 0b111111), event(n + 2, mask)];
        store.append_events(&mixed).await.unwrap();
        written.extend(mixed);
        n += 3;
    }
    assert_eq!(store.events_since(0).await.unwrap(), written);
}

#[tokio::test]
async fn every_nullable_column_round_trips_null_and_not_null_in_every_order() {
    let Some((_database, store)) = postgres_store("durability::nullable").await else { return };
    nullable_columns_round_trip(store.as_ref()).await;
}

#[tokio::test]
async fn every_nullable_column_round_trips_on_sqlite_too() {
    let dir = tempfile::tempdir().unwrap();
    let store =
        velochat::store::durable::connect(&format!("sqlite://{}/events.db", dir.path().display())).await.unwrap();
    nullable_columns_round_trip(store.as_ref()).await;
}

#[tokio::test]
async fn a_burst_of_twenty_thousand_events_lands_completely() {
    let Some((database, store)) = postgres_store("durability::burst").await else { return };
    let metrics = Arc::new(Metrics::new());
    let stop = tokio_util::sync::CancellationToken::new();
    let (sink, writer) = EventSink::start(store.clone(), 20_000, metrics.clone(), stop.clone());
    for n in 0..20_000 {
        sink.record(event(n, (n % 64) as u32));
    }
    stop.cancel();
    tokio::time::timeout(std::time::Duration::from_secs(60), writer).await.unwrap().unwrap();
    assert_eq!(metrics.events_dropped.get(), 0);
    assert!(!sink.dropping());
    let pool = sqlx::PgPool::connect(&database.url).await.unwrap();
    let (rows,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM velochat_events").fetch_one(&pool).await.unwrap();
    assert_eq!(rows, 20_000);
    pool.close().await;
}

#[tokio::test]
async fn the_null_first_recipe_through_the_service_writes_one_row_per_reply() {
    let Some(database) = services::postgres("durability::service").await else { return };
    let upstream = wiremock::MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(structured("Here you go.", 0.9, "order", false)))
        .mount(&upstream)
        .await;
    let app = spawn_app_on(upstream, &format!("[storage]\ndatabase_url = \"{}\"", database.url), None).await;
    let (_, refund) = app.send_json(&message("null-first", "I want a refund please")).await;
    assert_eq!(refund["source"], "handoff", "{refund}");
    for i in 0..3 {
        // More than the writer's 100 ms linger apart: each event is a batch of its own.
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
        let (_, reply) = app.send_json(&message(&format!("ordinary-{i}"), "Where is my parcel?")).await;
        assert_eq!(reply["source"], "model");
    }
    let mut rows = 0;
    for _ in 0..50 {
        rows = app.durable.events_since(0).await.unwrap().len();
        if rows == 4 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(rows, 4);
    assert_eq!(metric_value(&app.metrics().await, "velochat_events_dropped_total"), 0.0);
}

async fn replicas(redis: &str, keys: &services::RedisKeys) -> Vec<Process> {
    let envs = vec![
        ("REDIS_URL", redis.to_owned()),
        ("VELOCHAT__STORAGE__REDIS_KEY_PREFIX", keys.prefix.clone()),
        ("VELOCHAT_ADMIN_KEY", "durable-admin".to_owned()),
        ("VELOCHAT_SIGNING_KEY", "shared".to_owned()),
        ("VELOCHAT_LIMIT_SESSION_BURST", "1000".to_owned()),
        ("VELOCHAT_LIMIT_IP_BURST", "1000".to_owned()),
    ];
    let mut nodes = Vec::new();
    for _ in 0..3 {
        nodes.push(start(&envs).await);
    }
    nodes
}

#[tokio::test]
async fn thirty_messages_of_one_session_over_three_replicas_are_all_recorded() {
    let Some(redis) = services::redis("durability::thirty").await else { return };
    let keys = services::RedisKeys::new();
    let nodes = replicas(&redis, &keys).await;
    let client = reqwest::Client::new();
    let sends = (0..30).map(|i| {
        let url = format!("{}/sendChatMessage", nodes[i % 3].address);
        let request = client.post(url).json(&json!({"sessionId": "crowded", "userText": "Where is my order?"}));
        async move {
            let response = request.send().await.unwrap();
            (response.status().as_u16(), response.json::<Value>().await.unwrap())
        }
    });
    let replies = futures_util::future::join_all(sends).await;
    assert!(replies.iter().all(|(status, _)| *status == 200), "{replies:?}");
    let handoffs: Vec<&Value> =
        replies.iter().map(|(_, b)| b).filter(|b| b["handoffReason"] == "repeated_question").collect();
    assert_eq!(handoffs.len(), 1, "exactly one handoff for the repeated question: {replies:?}");
    let session: Value = client
        .get(format!("{}/admin/sessions/crowded", nodes[1].address))
        .bearer_auth("durable-admin")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(session["turns"], 30, "every message counted in the shared session: {session}");
    assert_eq!(session["mode"], "human");
    assert_eq!(session["handoffs"], 1);
}
