//! Suggestions drafted from the team's answers and the spend anomalies kept for the review.

use super::human_loop::all;
use super::sql::SqlStore;
use super::{SessionScope, StoreResult};
use async_trait::async_trait;
use sqlx::any::AnyRow;
use sqlx::Row;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuggestionRecord {
    pub id: String,
    pub session_id: String,
    pub question: String,
    pub answer: String,
    /// `pending`, `approved` or `rejected`.
    pub status: String,
    pub created_ms: i64,
    pub decided_ms: Option<i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AnomalyRecord {
    /// The clock hour alerted, `YYYY-MM-DDTHH` (UTC).
    pub hour: String,
    pub at_ms: i64,
    pub last_hour_tokens: i64,
    pub baseline_tokens: i64,
    pub factor: Option<f64>,
}

macro_rules! select_suggestions {
    ($rest:literal) => {
        concat!(
            "SELECT id, session_id, question, answer, status, created_ms, decided_ms FROM velochat_suggestions ",
            $rest
        )
    };
}

#[async_trait]
pub trait SuggestionStore: Send + Sync {
    async fn insert_suggestion(&self, record: &SuggestionRecord) -> StoreResult<()>;
    /// Newest first; every status when `status` is None.
    /// Newest first, at most 1,000, of the sessions `scope` covers.
    async fn suggestions(
        &self,
        scope: SessionScope<'_>,
        status: Option<&str>,
        since_ms: i64,
    ) -> StoreResult<Vec<SuggestionRecord>>;
    async fn suggestion(&self, id: &str) -> StoreResult<Option<SuggestionRecord>>;
    /// `from` → `to`; false when the suggestion was not in `from` (decided elsewhere, or absent).
    async fn move_suggestion(&self, id: &str, from: &str, to: &str, at_ms: Option<i64>) -> StoreResult<bool>;

    /// Records an alerted anomaly; one per hour.
    async fn record_anomaly(&self, record: &AnomalyRecord) -> StoreResult<()>;
    async fn anomalies_since(&self, since_ms: i64) -> StoreResult<Vec<AnomalyRecord>>;
}

fn suggestion_from_row(row: &AnyRow) -> Result<SuggestionRecord, sqlx::Error> {
    Ok(SuggestionRecord {
        id: row.try_get("id")?,
        session_id: row.try_get("session_id")?,
        question: row.try_get("question")?,
        answer: row.try_get("answer")?,
        status: row.try_get("status")?,
        created_ms: row.try_get("created_ms")?,
        decided_ms: row.try_get("decided_ms")?,
    })
}

#[async_trait]
impl SuggestionStore for SqlStore {
    async fn insert_suggestion(&self, r: &SuggestionRecord) -> StoreResult<()> {
        let _writer = self.writing().await;
        sqlx::query(
            "INSERT INTO velochat_suggestions (id, session_id, question, answer, status, created_ms, decided_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(r.id.clone())
        .bind(r.session_id.clone())
        .bind(r.question.clone())
        .bind(r.answer.clone())
        .bind(r.status.clone())
        .bind(r.created_ms)
        .bind(r.decided_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn suggestions(
        &self,
        scope: SessionScope<'_>,
        status: Option<&str>,
        since_ms: i64,
    ) -> StoreResult<Vec<SuggestionRecord>> {
        let sql = format!(
            "{} WHERE ($1 = '' OR status = $1) AND created_ms >= $2 AND {} ORDER BY created_ms DESC, id DESC LIMIT 1000",
            select_suggestions!(""),
            scope.condition("session_id", 3)
        );
        let mut query = sqlx::query(&sql).bind(status.unwrap_or("").to_owned()).bind(since_ms);
        if let Some(pattern) = scope.pattern() {
            query = query.bind(pattern);
        }
        let rows = query.fetch_all(&self.pool).await?;
        all(&rows, suggestion_from_row)
    }

    async fn suggestion(&self, id: &str) -> StoreResult<Option<SuggestionRecord>> {
        let row =
            sqlx::query(select_suggestions!("WHERE id = $1")).bind(id.to_owned()).fetch_optional(&self.pool).await?;
        Ok(row.map(|r| suggestion_from_row(&r)).transpose()?)
    }

    async fn move_suggestion(&self, id: &str, from: &str, to: &str, at_ms: Option<i64>) -> StoreResult<bool> {
        let _writer = self.writing().await;
        let done =
            sqlx::query("UPDATE velochat_suggestions SET status = $1, decided_ms = $2 WHERE id = $3 AND status = $4")
                .bind(to.to_owned())
                .bind(at_ms)
                .bind(id.to_owned())
                .bind(from.to_owned())
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn record_anomaly(&self, r: &AnomalyRecord) -> StoreResult<()> {
        let _writer = self.writing().await;
        sqlx::query(
            "INSERT INTO velochat_anomalies (hour, at_ms, last_hour_tokens, baseline_tokens, factor)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (hour) DO NOTHING",
        )
        .bind(r.hour.clone())
        .bind(r.at_ms)
        .bind(r.last_hour_tokens)
        .bind(r.baseline_tokens)
        .bind(r.factor)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn anomalies_since(&self, since_ms: i64) -> StoreResult<Vec<AnomalyRecord>> {
        let rows = sqlx::query(
            "SELECT hour, at_ms, last_hour_tokens, baseline_tokens, factor FROM velochat_anomalies
             WHERE at_ms >= $1 ORDER BY at_ms",
        )
        .bind(since_ms)
        .fetch_all(&self.pool)
        .await?;
        all(&rows, |row| {
            Ok(AnomalyRecord {
                hour: row.try_get("hour")?,
                at_ms: row.try_get("at_ms")?,
                last_hour_tokens: row.try_get("last_hour_tokens")?,
                baseline_tokens: row.try_get("baseline_tokens")?,
                factor: row.try_get("factor")?,
            })
        })
    }
}
