//! SQLite checkpoints off the write path. By default the commit that takes the WAL past its
//! threshold copies it into the database and fsyncs, holding SQLite's one writer for tens of
//! milliseconds while every reply waiting to write queues behind it. A background task instead runs
//! a PASSIVE checkpoint every `EVERY`: it copies what is committed without taking the writer's
//! lock (writers go on appending), and once it has caught up the next writer starts the WAL over.

use sqlx::AnyPool;
use std::time::Duration;
use tokio_util::sync::{CancellationToken, DropGuard};

const EVERY: Duration = Duration::from_millis(250);

/// Starts the checkpoints; they stop when the guard is dropped.
pub(super) fn spawn(pool: AnyPool) -> DropGuard {
    let stop = CancellationToken::new();
    let stopped = stop.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stopped.cancelled() => break,
                _ = tick.tick() => {}
            }
            if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&pool).await {
                tracing::debug!(error = %e, "background checkpoint failed");
            }
        }
    });
    stop.drop_guard()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::super::{DurableStore, OutboxEvent, SqlStore};

    #[tokio::test]
    async fn committed_pages_reach_the_database_file_without_a_writer_checkpointing() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("v.db");
        let store = SqlStore::connect(&format!("sqlite://{}", file.display())).await.unwrap();
        tokio::time::sleep(super::EVERY * 2).await;
        let before = std::fs::metadata(&file).unwrap().len();
        // ~2 MiB of rows: far below the 64 MiB at which a writer would checkpoint itself.
        for i in 0..500 {
            let event = OutboxEvent {
                id: format!("e{i}"),
                session_id: format!("s{i}"),
                session_hash: "h".into(),
                kind: "message".into(),
                payload: "x".repeat(4000),
                created_ms: 1,
            };
            store.enqueue(&event).await.unwrap();
        }
        let mut grown = 0;
        for _ in 0..40 {
            tokio::time::sleep(super::EVERY / 5).await;
            grown = std::fs::metadata(&file).unwrap().len().saturating_sub(before);
            if grown > 1_500_000 {
                break;
            }
        }
        assert!(grown > 1_500_000, "the database file grew by {grown} bytes only");
    }
}
