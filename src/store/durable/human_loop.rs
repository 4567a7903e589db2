//! The human loop's records: the messages of handed-off sessions, each handoff's timing, the
//! suggestions drafted from what people answered, and the spend anomalies alerted. Every "once"
//! (first agent response, SLA breach, a suggestion's decision) is a conditional UPDATE, so it
//! happens once however many replicas race for it.

use super::sql::SqlStore;
use super::{SessionScope, StoreResult};
use async_trait::async_trait;
use sqlx::any::AnyRow;
use sqlx::Row;

/// One message of a handed-off session (redacted before it gets here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionMessage {
    pub session_id: String,
    /// The session's handoff count when it was said: one episode per handoff.
    pub episode: i64,
    /// `visitor`, `bot` or `agent`.
    pub role: String,
    pub text: String,
    pub author: Option<String>,
    pub at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandoffRecord {
    pub session_id: String,
    pub episode: i64,
    pub started_ms: i64,
    pub reason: String,
    /// False when an agent's own message made the handoff: nobody waited for a person.
    pub awaited: bool,
    pub first_agent_ms: Option<i64>,
    pub sla_breached: bool,
    pub released_ms: Option<i64>,
}

#[async_trait]
pub trait HumanLoopStore: Send + Sync {
    async fn append_messages(&self, messages: &[SessionMessage]) -> StoreResult<()>;
    async fn session_messages(&self, session_id: &str, episode: i64) -> StoreResult<Vec<SessionMessage>>;
    /// Every message of the session (all episodes) written after the one with id `after_id`, by id.
    async fn messages_after(
        &self,
        session_id: &str,
        after_id: i64,
        limit: i64,
    ) -> StoreResult<Vec<(i64, SessionMessage)>>;

    /// Records handoffs (each with the messages that led to it; a second record of an episode
    /// adds nothing) and transcript lines, in one transaction.
    async fn record_handoffs(
        &self,
        handoffs: &[(HandoffRecord, Vec<SessionMessage>)],
        lines: &[SessionMessage],
    ) -> StoreResult<()>;
    /// The first agent message of the episode: its start and whether anyone waited, or None when
    /// an earlier message (on any replica) was the first.
    async fn handoff_answered(&self, session_id: &str, episode: i64, at_ms: i64) -> StoreResult<Option<(i64, bool)>>;
    /// Marks the SLA breached; true only for the one call that did.
    async fn handoff_breached(&self, session_id: &str, episode: i64) -> StoreResult<bool>;
    /// Open handoffs started before `before_ms` that no agent has answered and no breach recorded.
    async fn handoffs_awaiting(&self, before_ms: i64) -> StoreResult<Vec<HandoffRecord>>;
    async fn handoff_released(&self, session_id: &str, episode: i64, at_ms: i64) -> StoreResult<()>;
    async fn handoffs_since(&self, scope: SessionScope<'_>, since_ms: i64) -> StoreResult<Vec<HandoffRecord>>;
    /// The newest 500 unreleased handoffs of the sessions `scope` covers.
    async fn open_handoffs(&self, scope: SessionScope<'_>) -> StoreResult<Vec<HandoffRecord>>;
}

macro_rules! select_handoffs {
    ($rest:literal) => {
        concat!(
            "SELECT session_id, episode, started_ms, reason, awaited, first_agent_ms, sla_breached, released_ms ",
            "FROM velochat_handoffs ",
            $rest
        )
    };
}

fn handoff_from_row(row: &AnyRow) -> Result<HandoffRecord, sqlx::Error> {
    Ok(HandoffRecord {
        session_id: row.try_get("session_id")?,
        episode: row.try_get("episode")?,
        started_ms: row.try_get("started_ms")?,
        reason: row.try_get("reason")?,
        awaited: row.try_get::<i64, _>("awaited")? != 0,
        first_agent_ms: row.try_get("first_agent_ms")?,
        sla_breached: row.try_get::<i64, _>("sla_breached")? != 0,
        released_ms: row.try_get("released_ms")?,
    })
}

/// Messages per insert statement.
const MESSAGE_ROWS: usize = 32;
/// Handoffs per insert statement.
const HANDOFF_ROWS: usize = 32;

impl SqlStore {
    /// Many rows per statement (one round trip to SQLite's connection thread per 32 messages).
    pub(super) async fn insert_messages(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        messages: &[&SessionMessage],
    ) -> StoreResult<()> {
        for block in messages.chunks(MESSAGE_ROWS) {
            let rows: Vec<String> = (0..block.len())
                .map(|i| {
                    let n = i * 6;
                    format!("(${}, ${}, ${}, ${}, ${}, ${})", n + 1, n + 2, n + 3, n + 4, n + 5, n + 6)
                })
                .collect();
            let sql = format!(
                "INSERT INTO velochat_session_messages (session_id, episode, role, text, author, at_ms) VALUES {}",
                rows.join(", ")
            );
            let mut query = sqlx::query(&sql);
            for m in block {
                query = query
                    .bind(m.session_id.clone())
                    .bind(m.episode)
                    .bind(m.role.clone())
                    .bind(m.text.clone())
                    .bind(m.author.clone())
                    .bind(m.at_ms);
            }
            query.execute(&mut **tx).await?;
        }
        Ok(())
    }
}

fn message_from_row(row: &AnyRow) -> Result<SessionMessage, sqlx::Error> {
    Ok(SessionMessage {
        session_id: row.try_get("session_id")?,
        episode: row.try_get("episode")?,
        role: row.try_get("role")?,
        text: row.try_get("text")?,
        author: row.try_get("author")?,
        at_ms: row.try_get("at_ms")?,
    })
}

pub(super) fn all<T>(rows: &[AnyRow], convert: fn(&AnyRow) -> Result<T, sqlx::Error>) -> StoreResult<Vec<T>> {
    Ok(rows.iter().map(convert).collect::<Result<_, _>>()?)
}

#[async_trait]
impl HumanLoopStore for SqlStore {
    async fn append_messages(&self, messages: &[SessionMessage]) -> StoreResult<()> {
        let _writer = self.writing().await;
        let mut tx = self.pool.begin().await?;
        self.insert_messages(&mut tx, &messages.iter().collect::<Vec<_>>()).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn session_messages(&self, session_id: &str, episode: i64) -> StoreResult<Vec<SessionMessage>> {
        let rows = sqlx::query(
            "SELECT session_id, episode, role, text, author, at_ms FROM velochat_session_messages
             WHERE session_id = $1 AND episode = $2 ORDER BY at_ms, id",
        )
        .bind(session_id.to_owned())
        .bind(episode)
        .fetch_all(&self.pool)
        .await?;
        all(&rows, message_from_row)
    }

    async fn messages_after(
        &self,
        session_id: &str,
        after_id: i64,
        limit: i64,
    ) -> StoreResult<Vec<(i64, SessionMessage)>> {
        let rows = sqlx::query(
            "SELECT id, session_id, episode, role, text, author, at_ms FROM velochat_session_messages
             WHERE session_id = $1 AND id > $2 ORDER BY id LIMIT $3",
        )
        .bind(session_id.to_owned())
        .bind(after_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        all(&rows, |row| Ok((row.try_get("id")?, message_from_row(row)?)))
    }

    async fn record_handoffs(
        &self,
        handoffs: &[(HandoffRecord, Vec<SessionMessage>)],
        lines: &[SessionMessage],
    ) -> StoreResult<()> {
        let _writer = self.writing().await;
        let mut tx = self.pool.begin().await?;
        // A handoff's messages are written only with the handoff itself (a retried batch must not
        // write them twice): the insert returns the handoffs that were new.
        let mut messages: Vec<&SessionMessage> = Vec::new();
        for block in handoffs.chunks(HANDOFF_ROWS) {
            let rows: Vec<String> = (0..block.len())
                .map(|i| {
                    let n = i * 8;
                    format!(
                        "(${}, ${}, ${}, ${}, ${}, ${}, ${}, ${})",
                        n + 1,
                        n + 2,
                        n + 3,
                        n + 4,
                        n + 5,
                        n + 6,
                        n + 7,
                        n + 8
                    )
                })
                .collect();
            let sql = format!(
                "INSERT INTO velochat_handoffs
                   (session_id, episode, started_ms, reason, awaited, first_agent_ms, sla_breached, released_ms)
                 VALUES {} ON CONFLICT (session_id, episode) DO NOTHING RETURNING session_id, episode",
                rows.join(", ")
            );
            let mut query = sqlx::query(&sql);
            for (r, _) in block {
                query = query
                    .bind(r.session_id.clone())
                    .bind(r.episode)
                    .bind(r.started_ms)
                    .bind(r.reason.clone())
                    .bind(i64::from(r.awaited))
                    .bind(r.first_agent_ms)
                    .bind(i64::from(r.sla_breached))
                    .bind(r.released_ms);
            }
            let mut added = std::collections::HashSet::new();
            for row in query.fetch_all(&mut *tx).await? {
                added.insert((row.try_get::<String, _>(0)?, row.try_get::<i64, _>(1)?));
            }
            for (r, led_to_it) in block {
                // Taken out on first use: a handoff queued twice in one batch was written once.
                if added.remove(&(r.session_id.clone(), r.episode)) {
                    messages.extend(led_to_it);
                }
            }
        }
        messages.extend(lines);
        self.insert_messages(&mut tx, &messages).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn handoff_answered(&self, session_id: &str, episode: i64, at_ms: i64) -> StoreResult<Option<(i64, bool)>> {
        let _writer = self.writing().await;
        let row = sqlx::query(
            "UPDATE velochat_handoffs SET first_agent_ms = $1
             WHERE session_id = $2 AND episode = $3 AND first_agent_ms IS NULL RETURNING started_ms, awaited",
        )
        .bind(at_ms)
        .bind(session_id.to_owned())
        .bind(episode)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| Ok::<_, sqlx::Error>((r.try_get(0)?, r.try_get::<i64, _>(1)? != 0))).transpose()?)
    }

    async fn handoff_breached(&self, session_id: &str, episode: i64) -> StoreResult<bool> {
        let _writer = self.writing().await;
        let done = sqlx::query(
            "UPDATE velochat_handoffs SET sla_breached = 1 WHERE session_id = $1 AND episode = $2
             AND sla_breached = 0 AND first_agent_ms IS NULL AND released_ms IS NULL",
        )
        .bind(session_id.to_owned())
        .bind(episode)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn handoffs_awaiting(&self, before_ms: i64) -> StoreResult<Vec<HandoffRecord>> {
        let rows = sqlx::query(select_handoffs!(
            "WHERE started_ms < $1 AND first_agent_ms IS NULL AND sla_breached = 0 AND released_ms IS NULL
             ORDER BY started_ms LIMIT 500"
        ))
        .bind(before_ms)
        .fetch_all(&self.pool)
        .await?;
        all(&rows, handoff_from_row)
    }

    async fn handoff_released(&self, session_id: &str, episode: i64, at_ms: i64) -> StoreResult<()> {
        let _writer = self.writing().await;
        sqlx::query(
            "UPDATE velochat_handoffs SET released_ms = $1
             WHERE session_id = $2 AND episode = $3 AND released_ms IS NULL",
        )
        .bind(at_ms)
        .bind(session_id.to_owned())
        .bind(episode)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn handoffs_since(&self, scope: SessionScope<'_>, since_ms: i64) -> StoreResult<Vec<HandoffRecord>> {
        let sql = format!(
            "{} WHERE started_ms >= $1 AND {} ORDER BY started_ms",
            select_handoffs!(""),
            scope.condition("session_id", 2)
        );
        let mut query = sqlx::query(&sql).bind(since_ms);
        if let Some(pattern) = scope.pattern() {
            query = query.bind(pattern);
        }
        all(&query.fetch_all(&self.pool).await?, handoff_from_row)
    }

    async fn open_handoffs(&self, scope: SessionScope<'_>) -> StoreResult<Vec<HandoffRecord>> {
        let sql = format!(
            "{} WHERE released_ms IS NULL AND {} ORDER BY started_ms DESC LIMIT 500",
            select_handoffs!(""),
            scope.condition("session_id", 1)
        );
        let mut query = sqlx::query(&sql);
        if let Some(pattern) = scope.pattern() {
            query = query.bind(pattern);
        }
        all(&query.fetch_all(&self.pool).await?, handoff_from_row)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn handoff(session: &str, episode: i64) -> HandoffRecord {
        HandoffRecord {
            session_id: session.into(),
            episode,
            started_ms: 10,
            reason: "intent".into(),
            awaited: true,
            first_agent_ms: None,
            sla_breached: false,
            released_ms: None,
        }
    }

    fn said(session: &str, episode: i64, text: &str) -> SessionMessage {
        SessionMessage {
            session_id: session.into(),
            episode,
            role: "visitor".into(),
            text: text.into(),
            author: None,
            at_ms: 10,
        }
    }

    #[tokio::test]
    async fn a_handoff_s_messages_are_written_once_with_the_handoff() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqlStore::connect(&format!("sqlite://{}", dir.path().join("v.db").display())).await.unwrap();
        // 40 handoffs (more than one block), one of them queued twice, then the batch retried.
        let mut batch: Vec<_> =
            (0..40).map(|i| (handoff(&format!("s{i}"), 1), vec![said(&format!("s{i}"), 1, "hi")])).collect();
        batch.push((handoff("s7", 1), vec![said("s7", 1, "again")]));
        let lines = [said("s3", 1, "later")];
        store.record_handoffs(&batch, &lines).await.unwrap();
        store.record_handoffs(&batch, &[]).await.unwrap();
        let s7: Vec<String> = store.session_messages("s7", 1).await.unwrap().into_iter().map(|m| m.text).collect();
        assert_eq!(s7, ["hi"]);
        let s3: Vec<String> = store.session_messages("s3", 1).await.unwrap().into_iter().map(|m| m.text).collect();
        assert_eq!(s3, ["hi", "later"]);
        assert_eq!(store.session_messages("s39", 1).await.unwrap().len(), 1);
        let all = store.handoffs_since(super::super::SessionScope::All, 0).await.unwrap();
        assert_eq!(all.len(), 40);
    }
}
