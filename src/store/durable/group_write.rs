//! SQLite group commit for the writes a reply waits on (outbox events, human ownership). Each
//! caller queues its row, then takes the write gate; whoever holds it writes every row queued by
//! then in one statement per table, so requests that arrive while a write is in flight share the
//! next one instead of each paying a commit and its round trips to SQLite's thread. A caller
//! whose row an earlier holder wrote finds its answer waiting.

use super::{OutboxEvent, SqlStore, StoreResult};
use sqlx::AnyPool;
use tokio::sync::oneshot;

/// Rows per statement: one statement shape (a short block is padded with NULL rows, which the
/// `WHERE` leaves out), well under SQLite's limit on bound parameters.
const BLOCK: usize = 16;

pub(super) enum GroupedWrite {
    Outbox(OutboxEvent),
    Human { session_id: String, since_ms: i64, reason: String },
}

type Done = oneshot::Sender<Result<(), String>>;

#[derive(Default)]
pub(super) struct GroupWrites {
    queue: parking_lot::Mutex<Vec<(GroupedWrite, Done)>>,
}

impl GroupWrites {
    /// Queues a row; the receiver answers once a gate holder has written it (or failed to).
    pub(super) fn queue(&self, write: GroupedWrite) -> oneshot::Receiver<Result<(), String>> {
        let (done, answer) = oneshot::channel();
        self.queue.lock().push((write, done));
        answer
    }

    /// Writes everything queued (the caller holds the write gate). A failed group is written
    /// again row by row, so one bad row fails only its own caller.
    pub(super) async fn write_queued(&self, pool: &AnyPool) {
        let queued = std::mem::take(&mut *self.queue.lock());
        if queued.is_empty() {
            return;
        }
        let (writes, answers): (Vec<_>, Vec<_>) = queued.into_iter().unzip();
        if writes.len() > 1 && write_group(pool, &writes).await.is_ok() {
            for done in answers {
                let _ = done.send(Ok(()));
            }
            return;
        }
        for (write, done) in writes.iter().zip(answers) {
            let written = write_group(pool, std::slice::from_ref(write)).await;
            let _ = done.send(written.map_err(|e| crate::error_chain::describe(&e)));
        }
    }
}

impl SqlStore {
    /// SQLite: queues the row, then writes it with whatever else is queued once the gate is free
    /// (see `group_write`); None on PostgreSQL, which writes it on its own.
    pub(super) async fn write_grouped(&self, write: GroupedWrite) -> Option<StoreResult<()>> {
        self.write_gate.as_ref()?;
        let answer = self.grouped.queue(write);
        {
            let _writer = self.writing().await;
            self.grouped.write_queued(&self.pool).await;
        }
        Some(match answer.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(cause)) => Err(crate::store::StoreError::GroupedWrite(cause)),
            Err(_) => Err(crate::store::StoreError::GroupedWrite("the group's writer was stopped".into())),
        })
    }
}

/// One transaction when the rows span both tables; a single statement needs none.
async fn write_group(pool: &AnyPool, writes: &[GroupedWrite]) -> Result<(), sqlx::Error> {
    let outbox: Vec<&OutboxEvent> = writes
        .iter()
        .filter_map(|w| match w {
            GroupedWrite::Outbox(event) => Some(event),
            GroupedWrite::Human { .. } => None,
        })
        .collect();
    let human: Vec<(&str, i64, &str)> = writes
        .iter()
        .filter_map(|w| match w {
            GroupedWrite::Human { session_id, since_ms, reason } => {
                Some((session_id.as_str(), *since_ms, reason.as_str()))
            }
            GroupedWrite::Outbox(_) => None,
        })
        .collect();
    let mut statements = Vec::new();
    for block in outbox.chunks(BLOCK) {
        let mut query = sqlx::query(outbox_sql());
        for slot in 0..BLOCK {
            let event = block.get(slot);
            query = query
                .bind(event.map(|e| e.id.clone()))
                .bind(event.map(|e| e.session_id.clone()))
                .bind(event.map(|e| e.session_hash.clone()))
                .bind(event.map(|e| e.kind.clone()))
                .bind(event.map(|e| e.payload.clone()))
                .bind(event.map(|e| e.created_ms));
        }
        statements.push(query);
    }
    for block in human.chunks(BLOCK) {
        let mut query = sqlx::query(human_sql());
        for slot in 0..BLOCK {
            let row = block.get(slot);
            query = query.bind(row.map(|r| r.0.to_owned())).bind(row.map(|r| r.1)).bind(row.map(|r| r.2.to_owned()));
        }
        statements.push(query);
    }
    if statements.len() == 1 {
        // One statement is atomic on its own: no BEGIN and COMMIT round trips.
        if let Some(statement) = statements.pop() {
            statement.execute(pool).await?;
        }
        return Ok(());
    }
    let mut tx = pool.begin().await?;
    for statement in statements {
        statement.execute(&mut *tx).await?;
    }
    tx.commit().await
}

/// Rows later in a block come later in the queue: a session's events keep their order (`seq`).
fn outbox_sql() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        format!(
            "INSERT INTO velochat_outbox (id, session_id, session_hash, kind, payload, created_ms, next_attempt_ms)
             SELECT column1, column2, column3, column4, column5, column6, column6 FROM (VALUES {})
             WHERE column1 IS NOT NULL ON CONFLICT (id) DO NOTHING",
            super::event_insert::placeholder_rows(6, BLOCK)
        )
    })
}

/// A session handed off twice in one block keeps the later row, as two statements would.
fn human_sql() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        format!(
            "INSERT INTO velochat_human_sessions (session_id, since_ms, reason)
             SELECT column1, column2, column3 FROM (VALUES {}) WHERE column1 IS NOT NULL
             ON CONFLICT (session_id) DO UPDATE SET since_ms = excluded.since_ms, reason = excluded.reason",
            super::event_insert::placeholder_rows(3, BLOCK)
        )
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::super::{DurableStore, SqlStore};
    use super::*;

    fn event(id: &str, session: &str) -> OutboxEvent {
        OutboxEvent {
            id: id.into(),
            session_id: session.into(),
            session_hash: "h".into(),
            kind: "message".into(),
            payload: format!("{{\"id\":\"{id}\"}}"),
            created_ms: 1,
        }
    }

    async fn store(dir: &tempfile::TempDir) -> SqlStore {
        SqlStore::connect(&format!("sqlite://{}", dir.path().join("v.db").display())).await.unwrap()
    }

    #[tokio::test]
    async fn concurrent_writers_all_land_in_queue_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        // 40 events over 4 sessions and 40 ownership rows, all at once: more than a block.
        let ids: Vec<String> = (0..40).map(|i| format!("e{i:02}")).collect();
        let events = ids.iter().enumerate().map(|(i, id)| event(id, ["a", "b", "c", "d"][i % 4]));
        let store = &store;
        let enqueued = futures_util::future::join_all(events.map(|e| async move { store.enqueue(&e).await }));
        let owners = futures_util::future::join_all(
            (0..40).map(|i| async move { store.set_human(&format!("s{}", i % 30), i, &format!("r{i}")).await }),
        );
        let (enqueued, owners) = tokio::join!(enqueued, owners);
        assert!(enqueued.iter().chain(owners.iter()).all(Result::is_ok));
        let rows = store.claim_due("w", 10, 1_000, 100).await.unwrap();
        // Only each session's first event is due; every session's first is the first it queued.
        let mut firsts: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
        firsts.sort_unstable();
        assert_eq!(firsts, ["e00", "e01", "e02", "e03"]);
        assert_eq!(store.pending_outbox().await.unwrap(), 40);
        // A session owned twice keeps the later write.
        let s0 = store.human_session("s0").await.unwrap().unwrap();
        assert_eq!((s0.since_ms, s0.reason.as_str()), (30, "r30"));
        assert_eq!(store.human_session_ids().await.unwrap().len(), 30);
    }

    #[tokio::test]
    async fn a_row_the_database_refuses_fails_only_its_own_caller() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        sqlx::query(
            "CREATE TRIGGER refuse BEFORE INSERT ON velochat_outbox WHEN NEW.id = 'bad'
             BEGIN SELECT RAISE(ABORT, 'refused'); END",
        )
        .execute(&store.pool)
        .await
        .unwrap();
        let group = GroupWrites::default();
        let answers: Vec<_> = ["ok1", "bad", "ok2"]
            .iter()
            .map(|id| group.queue(GroupedWrite::Outbox(event(id, id))))
            .chain([group.queue(GroupedWrite::Human { session_id: "s".into(), since_ms: 5, reason: "asked".into() })])
            .collect();
        group.write_queued(&store.pool).await;
        let mut results = Vec::new();
        for answer in answers {
            results.push(answer.await.unwrap());
        }
        assert!(results[0].is_ok() && results[2].is_ok() && results[3].is_ok());
        assert!(results[1].as_ref().unwrap_err().contains("refused"));
        assert_eq!(store.pending_outbox().await.unwrap(), 2);
        assert!(store.human_session("s").await.unwrap().is_some());
    }
}
