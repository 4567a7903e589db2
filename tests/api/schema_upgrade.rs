//! Databases made by the head before the sqlx migrations (142af31, `tests/fixtures`: four replies,
//! a knowledge document, a handoff with an agent's message, a queued handoff event) upgrade in
//! place: nothing lost, every new write works, and replicas starting together adopt them once.

use crate::helpers::*;
use crate::services;
use serde_json::Value;
use sqlx::{Connection, Row};
use std::sync::Arc;
use wiremock::MockServer;

const ADMIN: &str = "upgrade-admin";
const SQLITE_DUMP: &str = include_str!("../fixtures/legacy-142af31.sqlite.sql");
const POSTGRES_DUMP: &str = include_str!("../fixtures/legacy-142af31.postgres.sql");

fn settings(database_url: &str) -> String {
    format!("[auth]\nadmin_key = \"{ADMIN}\"\n[storage]\ndatabase_url = \"{database_url}\"")
}

/// What the legacy database held is all there, and the upgraded schema takes new writes.
async fn assert_upgraded(app: &TestApp) {
    let document = get_json(&app.client, &app.url("/admin/kb/documents/shipping-times"), ADMIN).await;
    assert_eq!(document["title"], "Shipping times", "{document}");
    let found =
        get_json(&app.client, &app.url("/admin/kb/search?q=how%20long%20does%20shipping%20to%20Canada%20take"), ADMIN)
            .await;
    assert_eq!(found["results"][0]["id"], "shipping-times", "the index is rebuilt from the old rows: {found}");
    let report = get_json(&app.client, &app.url("/admin/report?from=2026-12-06&to=2026-12-06"), ADMIN).await;
    assert!(report["replies"].as_u64().unwrap_or(0) >= 4, "the old events count: {report}");
    let agent = app.durable.session_messages("legacy-human", 1).await.unwrap();
    assert!(agent.iter().any(|m| m.role == "agent" && m.author.as_deref() == Some("Ana")), "{agent:?}");
    let human = app.durable.human_session("legacy-human").await.unwrap();
    assert!(human.is_some(), "the person still owns the session");

    let put = app
        .client
        .put(app.url("/admin/kb/documents/returns"))
        .bearer_auth(ADMIN)
        .json(&serde_json::json!({"title": "Returns", "body": "Return anything within 30 days."}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200);
    let written: Value = put.json().await.unwrap();
    assert!(written["version"].as_i64().unwrap() > 1, "the version counter goes on: {written}");
    let (status, _) = app.send_json(&message("after-upgrade", "hello")).await;
    assert_eq!(status, 200);
}

const SQLITE_INDEXES: &str =
    "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'velochat_events' AND sql IS NOT NULL ORDER BY name";
const POSTGRES_INDEXES: &str =
    "SELECT indexname::text FROM pg_indexes WHERE tablename = 'velochat_events' ORDER BY indexname";

/// The event log's indexes: each event inserts into every one of them.
async fn event_indexes(url: &str, query: &str) -> Vec<String> {
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    let rows = sqlx::query(query).fetch_all(&pool).await.unwrap();
    pool.close().await;
    rows.iter().map(|r| r.try_get::<String, _>(0).unwrap()).collect()
}

async fn applied_versions(app: &TestApp, url: &str) -> Vec<i64> {
    let _ = app;
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    let rows = sqlx::query("SELECT version FROM _sqlx_migrations WHERE success = TRUE ORDER BY version")
        .fetch_all(&pool)
        .await
        .unwrap();
    pool.close().await;
    rows.iter().map(|r| r.try_get::<i64, _>(0).unwrap()).collect()
}

#[tokio::test]
async fn a_sqlite_file_made_by_the_previous_head_upgrades_in_place() {
    sqlx::any::install_default_drivers();
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let url = format!("sqlite://{}", dir.path().join("legacy.db").display());
    let mut legacy = sqlx::SqliteConnection::connect(&format!("{url}?mode=rwc")).await.unwrap();
    sqlx::raw_sql(SQLITE_DUMP).execute(&mut legacy).await.unwrap();
    legacy.close().await.unwrap();

    let app = spawn_app_on(MockServer::start().await, &settings(&url), Some(dir.clone())).await;
    assert_upgraded(&app).await;
    assert_eq!(applied_versions(&app, &url).await, [1, 2, 3, 4, 5, 6, 7, 8, 9], "adopted, then only the new ones run");
    assert_eq!(event_indexes(&url, SQLITE_INDEXES).await, ["velochat_events_ts_site"], "one index, led by time");
    app.lifecycle.begin_shutdown();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), app.server).await;

    // A restart finds everything applied (checksums match) and starts as before.
    let again = spawn_app_on(MockServer::start().await, &settings(&url), Some(dir)).await;
    let document = get_json(&again.client, &again.url("/admin/kb/documents/returns"), ADMIN).await;
    assert_eq!(document["title"], "Returns");
}

#[tokio::test]
async fn a_postgres_database_made_by_the_previous_head_upgrades_once_under_three_replicas() {
    let Some(db) = services::postgres("a_postgres_database_made_by_the_previous_head_upgrades").await else { return };
    sqlx::any::install_default_drivers();
    let mut legacy = sqlx::PgConnection::connect(&db.url).await.unwrap();
    sqlx::raw_sql(POSTGRES_DUMP).execute(&mut legacy).await.unwrap();
    legacy.close().await.unwrap();

    // Three replicas start at once on the old database.
    let config = settings(&db.url);
    let (a, b, c) = tokio::join!(spawn_app_with(&config), spawn_app_with(&config), spawn_app_with(&config));
    assert_upgraded(&a).await;
    for replica in [&b, &c] {
        let document = get_json(&replica.client, &replica.url("/admin/kb/documents/shipping-times"), ADMIN).await;
        assert_eq!(document["title"], "Shipping times");
    }
    assert_eq!(applied_versions(&a, &db.url).await, [1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert_eq!(event_indexes(&db.url, POSTGRES_INDEXES).await, ["velochat_events_pkey", "velochat_events_ts_site"]);
}
