//! What a newcomer meets first: a copied `.env.example` works, the real environment wins over
//! `.env`, empty values mean "unset", a late database is waited for, and a command's error is
//! printed once.

use crate::process::{binary, start_in};
use std::time::{Duration, Instant};

const EXAMPLE: &str = include_str!("../../.env.example");

#[tokio::test]
async fn the_example_env_file_copied_unchanged_starts_the_service() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".env"), EXAMPLE).unwrap();
    // Port 0 from the real environment, which wins over the file's 127.0.0.1:8080.
    let mut process = start_in(dir.path(), &[]).await;
    let health = reqwest::get(format!("{}/healthz", process.address)).await.unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(process.ready["durable"], "sqlite");
    assert!(dir.path().join("velochat.db").exists(), "the database file is made in the working directory");
    process.child.kill().await.ok();
}

#[tokio::test]
async fn the_real_environment_wins_over_the_env_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".env"), "VELOCHAT_LOG_FORMAT=pretty\nVELOCHAT_SIGNING_KEY=from-file\n").unwrap();
    let mut from_file = start_in(dir.path(), &[]).await;
    assert!(from_file.stderr.lock().await.contains("address="), "pretty lines from .env");
    from_file.child.kill().await.ok();
    let mut from_env = start_in(dir.path(), &[("VELOCHAT_LOG_FORMAT", "json".to_owned())]).await;
    assert!(
        from_env.ready.get("address").is_some() && from_env.ready.get("level").is_some(),
        "JSON from the environment"
    );
    from_env.child.kill().await.ok();
}

#[tokio::test]
async fn empty_values_mean_unset() {
    let dir = tempfile::tempdir().unwrap();
    let envs = [
        ("VELOCHAT_CONFIG", String::new()),
        ("VELOCHAT_TRUSTED_PROXIES", String::new()),
        ("VELOCHAT__OPENAI__TIMEOUT_MS", String::new()),
        ("OPENAI_MODEL", String::new()),
    ];
    let mut process = start_in(dir.path(), &envs).await;
    assert_eq!(process.ready["model"], "gpt-4o-mini", "the default model, not an empty one");
    process.child.kill().await.ok();
}

#[tokio::test]
async fn a_database_that_appears_late_is_waited_for() {
    let dir = tempfile::tempdir().unwrap();
    let late = dir.path().join("not-yet");
    let url = format!("sqlite://{}/v.db", late.display());
    let maker = {
        let late = late.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(1200)).await;
            std::fs::create_dir_all(late).unwrap();
        })
    };
    let started = Instant::now();
    let mut process = start_in(dir.path(), &[("DATABASE_URL", url)]).await;
    assert!(started.elapsed() >= Duration::from_millis(1000), "ready only once the database could be opened");
    assert!(process.stderr.lock().await.contains("database not reachable yet; retrying"));
    maker.await.unwrap();
    process.child.kill().await.ok();

    // One that never appears: the service gives up after storage.connect_timeout_ms, naming the key.
    let started = Instant::now();
    let gone = binary()
        .env("DATABASE_URL", format!("sqlite://{}/never/v.db", dir.path().display()))
        .env("VELOCHAT__STORAGE__CONNECT_TIMEOUT_MS", "1500")
        .env("VELOCHAT_ADDR", "127.0.0.1:0")
        .output()
        .await
        .unwrap();
    assert!(!gone.status.success());
    assert!(started.elapsed() >= Duration::from_millis(1000), "retried before giving up");
    assert!(String::from_utf8_lossy(&gone.stderr).contains("storage.database_url"));
}

#[tokio::test]
async fn a_command_error_is_printed_once_in_plain_words() {
    let output = binary().args(["report", "--since", "yesterday"]).output().await.unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.matches("yesterday").count(), 1, "{stderr}");
    assert!(!stderr.contains("{\""), "no JSON log line: {stderr}");
}
