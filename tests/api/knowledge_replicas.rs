//! The knowledge base across replicas on one PostgreSQL, and from the command line: a change made
//! through one replica is searchable on the others within 2 s, under concurrent writers too.

use crate::helpers::{get_json, get_text};
use crate::process::{binary, start, Process};
use crate::services;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const ADMIN: &str = "kb-replica-admin";

async fn replicas(database_url: &str, count: usize) -> Vec<Process> {
    let envs = [
        ("DATABASE_URL", database_url.to_owned()),
        ("VELOCHAT_ADMIN_KEY", ADMIN.to_owned()),
        ("VELOCHAT__KB__SYNC_INTERVAL_MS", "200".to_owned()),
    ];
    let mut nodes = Vec::new();
    for _ in 0..count {
        nodes.push(start(&envs).await);
    }
    nodes
}

async fn search(client: &reqwest::Client, node: &Process, q: &str) -> Vec<String> {
    let url = reqwest::Url::parse_with_params(&format!("{}/admin/kb/search", node.address), &[("q", q), ("k", "10")])
        .unwrap();
    let body = get_json(client, url.as_str(), ADMIN).await;
    body["results"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_owned()).collect()
}

/// How long until `check` holds on `node` (panics after 5 s).
async fn time_until<F, Fut>(check: F) -> Duration
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < Duration::from_secs(5), "not within 5 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    started.elapsed()
}

#[tokio::test]
async fn a_change_through_one_replica_is_searchable_on_the_other_within_two_seconds() {
    let Some(postgres) = services::postgres("knowledge::replicas").await else { return };
    let nodes = replicas(&postgres.url, 2).await;
    let client = reqwest::Client::new();
    let put = |node: usize, id: &str, body: Value| {
        client.put(format!("{}/admin/kb/documents/{id}", nodes[node].address)).bearer_auth(ADMIN).json(&body).send()
    };
    // Nullable fields both ways: url and locale absent, then present.
    let bare = put(0, "giftcards", json!({"title": "Gift cards", "body": "We sell gift cards from 10 to 200 euros."}))
        .await
        .unwrap();
    assert_eq!(bare.status(), 200);
    let seen =
        time_until(|| async { search(&client, &nodes[1], "Do you sell gift cards?").await == ["giftcards"] }).await;
    assert!(seen < Duration::from_secs(2), "replica B saw the upsert after {seen:?}");
    let full = json!({"title": "Gift cards", "body": "Gift cards never expire.", "url": "https://help.example.com/gift", "locale": "en", "tags": ["payments"]});
    assert_eq!(put(0, "giftcards", full).await.unwrap().status(), 200);
    let seen = time_until(|| async { search(&client, &nodes[1], "do gift cards expire").await == ["giftcards"] }).await;
    assert!(seen < Duration::from_secs(2), "{seen:?}");
    let doc = get_json(&client, &format!("{}/admin/kb/documents/giftcards", nodes[1].address), ADMIN).await;
    assert_eq!((doc["url"].as_str(), doc["locale"].as_str()), (Some("https://help.example.com/gift"), Some("en")));

    let deleted = client
        .delete(format!("{}/admin/kb/documents/giftcards", nodes[1].address))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    let gone = time_until(|| async { search(&client, &nodes[0], "do gift cards expire").await.is_empty() }).await;
    assert!(gone < Duration::from_secs(2), "replica A dropped it after {gone:?}");
}

#[tokio::test]
async fn concurrent_writers_on_three_replicas_leave_every_index_identical() {
    let Some(postgres) = services::postgres("knowledge::concurrent").await else { return };
    let nodes = replicas(&postgres.url, 3).await;
    let client = reqwest::Client::new();
    let mut writers = Vec::new();
    for writer in 0..6usize {
        let (client, address) = (client.clone(), nodes[writer % 3].address.clone());
        writers.push(tokio::spawn(async move {
            for i in 0..20usize {
                // Writers overlap on ids 0..40 (each written three times, by different replicas).
                let id = format!("doc-{}", (writer * 20 + i) % 40);
                let body = json!({"title": format!("Topic {id}"), "body": format!("Zebra{} facts by writer {writer}.", (writer * 20 + i) % 40),
                                  "url": if i % 2 == 0 { Value::Null } else { json!("https://help.example.com/x") }});
                let response = client.put(format!("{address}/admin/kb/documents/{id}")).bearer_auth(ADMIN).json(&body).send().await.unwrap();
                assert_eq!(response.status(), 200);
            }
        }));
    }
    let imports: Vec<_> = (0..3usize)
        .map(|n| {
            let (client, address) = (client.clone(), nodes[n].address.clone());
            tokio::spawn(async move {
                let documents: Vec<Value> = (0..200).map(|i| json!({"id": format!("bulk-{i}"), "title": "Bulk", "body": format!("Quokka{i} written by import {n}.")})).collect();
                let response = client.post(format!("{address}/admin/kb/import")).bearer_auth(ADMIN).json(&json!({"documents": documents})).send().await.unwrap();
                assert_eq!(response.status(), 200);
            })
        })
        .collect();
    for task in writers.into_iter().chain(imports) {
        task.await.unwrap();
    }
    // Every replica converges on what the database holds.
    let pool = sqlx::PgPool::connect(&postgres.url).await.unwrap();
    let stored: Vec<(String, String)> =
        sqlx::query_as("SELECT id, body FROM velochat_kb_documents WHERE deleted = 0 ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(stored.len(), 240);
    for (id, body) in stored.iter().filter(|(id, _)| id.ends_with("-7") || id.ends_with("-123")) {
        let word = body.split_whitespace().next().unwrap().trim_end_matches('.').to_owned();
        let needle = body.split_whitespace().last().unwrap().trim_end_matches('.').to_owned();
        for node in &nodes {
            time_until(|| async {
                let found = search(&client, node, &format!("{word} {needle}")).await;
                found.first() == Some(id)
            })
            .await;
        }
    }
    for node in &nodes {
        time_until(|| async {
            let metrics = get_text(&client, &format!("{}/metrics", node.address), ADMIN).await;
            metrics.lines().any(|l| l == "velochat_kb_documents 240")
        })
        .await;
    }
}

#[tokio::test]
async fn the_command_line_imports_markdown_json_lines_and_searches() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("help");
    std::fs::create_dir(&folder).unwrap();
    std::fs::write(
        folder.join("returns policy.md"),
        "# Returns policy\n\nReturn any item within 30 days for a refund.\n",
    )
    .unwrap();
    std::fs::write(folder.join("hours.md"), "Intro line\n# Opening hours\n\nThe Lyon shop opens at 10:00.\n").unwrap();
    let jsonl = dir.path().join("faq.jsonl");
    std::fs::write(&jsonl, "{\"id\":\"canada\",\"title\":\"Shipping to Canada\",\"body\":\"We ship to Canada in 5 days.\"}\n\n{\"id\":\"gift\",\"title\":\"Gift cards\",\"body\":\"Gift cards from 10 euros.\"}\n").unwrap();
    let db = format!("sqlite://{}/kb.db", dir.path().display());
    let run = |args: Vec<String>| {
        let mut command = binary();
        command.env("DATABASE_URL", &db).env("VELOCHAT_LOG_LEVEL", "error").args(args);
        command.output()
    };
    let out = run(vec!["kb".into(), "import".into(), folder.display().to_string()]).await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("imported 2 documents"));
    let out = run(vec!["kb".into(), "import".into(), jsonl.display().to_string()]).await.unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("imported 2 documents"), "{out:?}");
    let out = run(vec!["kb".into(), "search".into(), "When does the Lyon shop open?".into()]).await.unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let first = text.lines().next().unwrap_or_default();
    assert!(first.starts_with("1. ") && first.contains("Opening hours  [hours]"), "{text}");
    let out = run(vec!["kb".into(), "search".into(), "Do you ship to Canada?".into()]).await.unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).lines().next().unwrap().contains("[canada]"));
    let out = run(vec!["kb".into(), "search".into(), "How do I return it for a refund?".into()]).await.unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("Returns policy  [returns-policy]"));
    // A bad file is refused with the document named, and nothing is stored.
    let bad = dir.path().join("bad.json");
    std::fs::write(
        &bad,
        r#"{"documents": [{"id": "ok", "title": "A", "body": "x"}, {"id": "no", "title": "", "body": "y"}]}"#,
    )
    .unwrap();
    let out = run(vec!["kb".into(), "import".into(), bad.display().to_string()]).await.unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("document 1"), "{out:?}");
}
