//! Knowledge-base documents and unanswered questions. Every change bumps the site's version in the
//! same transaction and stamps the rows it touched with it, so a replica catches up by asking for
//! rows above the version it has; deletes leave a tombstone for the same reason.

use super::sql::SqlStore;
use super::{SiteScope, StoreResult};
use async_trait::async_trait;
use sqlx::any::AnyRow;
use sqlx::Row;

/// A stored document, with the version of its last change.
#[derive(Debug, Clone, PartialEq)]
pub struct KbRow {
    pub id: String,
    pub title: String,
    pub body: String,
    pub url: Option<String>,
    pub locale: Option<String>,
    /// JSON array of strings.
    pub tags: String,
    pub version: i64,
    pub deleted: bool,
    pub updated_ms: i64,
    /// The chunks' embeddings in the knowledge module's binary form; None when lexical only.
    pub vectors: Option<Vec<u8>>,
    /// The first version's text form of them (read, never written: upgraded databases).
    pub legacy_embeddings: Option<String>,
}

/// A question the help content did not cover (redacted before it gets here).
#[derive(Debug, Clone, PartialEq)]
pub struct UnansweredRecord {
    pub ts_ms: i64,
    pub session_hash: String,
    pub locale: Option<String>,
    pub question: String,
    /// The site asked; None for `default` (stored as `default`).
    pub site: Option<String>,
}

#[async_trait]
pub trait KnowledgeStore: Send + Sync {
    /// Writes all `rows` (their `version` is ignored) in one transaction under one new version,
    /// which it returns.
    async fn kb_upsert(&self, site: &str, rows: &[KbRow]) -> StoreResult<i64>;
    /// Tombstones a live document; the new version, or None when there was none.
    async fn kb_delete(&self, site: &str, id: &str, now_ms: i64) -> StoreResult<Option<i64>>;
    async fn kb_get(&self, site: &str, id: &str) -> StoreResult<Option<KbRow>>;
    /// Live documents with an id after `after`, in id order; `filter` keeps those whose id or
    /// title contains it (case-insensitive).
    async fn kb_list(
        &self,
        site: &str,
        after: Option<&str>,
        filter: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<KbRow>>;
    /// How many live documents `kb_list` would page through with `filter`.
    async fn kb_count(&self, site: &str, filter: Option<&str>) -> StoreResult<i64>;
    /// Every row (tombstones too) changed after `version`, oldest change first.
    async fn kb_changes(&self, site: &str, after_version: i64) -> StoreResult<Vec<KbRow>>;
    async fn kb_version(&self, site: &str) -> StoreResult<i64>;
    /// Every site's version in one read (a process with many sites' indexes open polls this).
    async fn kb_versions(&self) -> StoreResult<Vec<(String, i64)>>;
    /// Stores the vectors of document `id` at `version` (under a new version, so every replica
    /// reads them); None when the document changed meanwhile (or is gone).
    async fn kb_set_vectors(&self, site: &str, id: &str, version: i64, vectors: &[u8]) -> StoreResult<Option<i64>>;

    async fn record_unanswered(&self, record: &UnansweredRecord) -> StoreResult<()>;
    async fn unanswered_since(&self, scope: SiteScope<'_>, since_ms: i64) -> StoreResult<Vec<UnansweredRecord>>;
}

/// `SELECT` of every document column, as a literal so queries stay `&'static str`.
macro_rules! select_documents {
    ($rest:literal) => {
        concat!(
            "SELECT id, title, body, url, locale, tags, version, deleted, updated_ms, embeddings, vectors ",
            "FROM velochat_kb_documents ",
            $rest
        )
    };
}

fn kb_from_row(row: &AnyRow) -> Result<KbRow, sqlx::Error> {
    Ok(KbRow {
        id: row.try_get("id")?,
        title: row.try_get("title")?,
        body: row.try_get("body")?,
        url: row.try_get("url")?,
        locale: row.try_get("locale")?,
        tags: row.try_get("tags")?,
        version: row.try_get("version")?,
        deleted: row.try_get::<i64, _>("deleted")? != 0,
        updated_ms: row.try_get("updated_ms")?,
        vectors: row.try_get("vectors")?,
        legacy_embeddings: row.try_get("embeddings")?,
    })
}

/// `%filter%` for `LIKE`, lower-cased, its own `%`, `_` and `\` taken literally; `%` for none.
fn like_pattern(filter: Option<&str>) -> String {
    let escaped = filter.unwrap_or("").to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
    format!("%{escaped}%")
}

/// Bumps the site's version. In PostgreSQL the row lock is held to commit, so versions become
/// visible in order: a replica that has seen version n has seen every change up to n.
const BUMP: &str = "INSERT INTO velochat_kb_state (site, version) VALUES ($1, 1)
    ON CONFLICT (site) DO UPDATE SET version = velochat_kb_state.version + 1 RETURNING version";

impl SqlStore {
    async fn kb_upsert_once(&self, site: &str, rows: &[KbRow]) -> StoreResult<i64> {
        let mut tx = self.pool.begin().await?;
        let version: i64 = sqlx::query(BUMP).bind(site.to_owned()).fetch_one(&mut *tx).await?.try_get(0)?;
        let upsert = "INSERT INTO velochat_kb_documents
               (site, id, title, body, url, locale, tags, version, deleted, updated_ms, embeddings, vectors)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, $9, NULL, $10)
             ON CONFLICT (site, id) DO UPDATE SET title = excluded.title, body = excluded.body, url = excluded.url,
               locale = excluded.locale, tags = excluded.tags, version = excluded.version, deleted = 0,
               updated_ms = excluded.updated_ms, embeddings = NULL, vectors = excluded.vectors";
        for row in rows {
            sqlx::query(upsert)
                .bind(site.to_owned())
                .bind(row.id.clone())
                .bind(row.title.clone())
                .bind(row.body.clone())
                .bind(row.url.clone())
                .bind(row.locale.clone())
                .bind(row.tags.clone())
                .bind(version)
                .bind(row.updated_ms)
                .bind(row.vectors.clone())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(version)
    }

    async fn kb_set_vectors_once(
        &self,
        site: &str,
        id: &str,
        version: i64,
        vectors: &[u8],
    ) -> StoreResult<Option<i64>> {
        let mut tx = self.pool.begin().await?;
        let Some(next) = self.next_version_of_live(&mut tx, site, id, Some(version)).await? else {
            return Ok(None);
        };
        sqlx::query(
            "UPDATE velochat_kb_documents SET vectors = $1, embeddings = NULL, version = $2 WHERE site = $3 AND id = $4",
        )
        .bind(vectors.to_vec())
        .bind(next)
        .bind(site.to_owned())
        .bind(id.to_owned())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(next))
    }

    /// Within `tx`: when document `id` is live (and at `version`, if given), bumps the site's version
    /// and returns the new one for the change to carry; None leaves everything as it was.
    async fn next_version_of_live(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        site: &str,
        id: &str,
        version: Option<i64>,
    ) -> StoreResult<Option<i64>> {
        let live = sqlx::query(
            "SELECT 1 FROM velochat_kb_documents WHERE site = $1 AND id = $2 AND deleted = 0 AND ($3 < 0 OR version = $3)",
        )
        .bind(site.to_owned())
        .bind(id.to_owned())
        .bind(version.unwrap_or(-1))
        .fetch_optional(&mut **tx)
        .await?;
        if live.is_none() {
            return Ok(None);
        }
        let next: i64 = sqlx::query(BUMP).bind(site.to_owned()).fetch_one(&mut **tx).await?.try_get(0)?;
        Ok(Some(next))
    }

    /// Reads, then writes: in one transaction under the write gate, so no other writer of this
    /// process can slip in between.
    async fn kb_delete_once(&self, site: &str, id: &str, now_ms: i64) -> StoreResult<Option<i64>> {
        let mut tx = self.pool.begin().await?;
        let Some(version) = self.next_version_of_live(&mut tx, site, id, None).await? else {
            return Ok(None);
        };
        sqlx::query(
            "UPDATE velochat_kb_documents SET deleted = 1, body = '', embeddings = NULL, vectors = NULL, version = $1,
             updated_ms = $2 WHERE site = $3 AND id = $4",
        )
        .bind(version)
        .bind(now_ms)
        .bind(site.to_owned())
        .bind(id.to_owned())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(version))
    }
}

#[async_trait]
impl KnowledgeStore for SqlStore {
    async fn kb_upsert(&self, site: &str, rows: &[KbRow]) -> StoreResult<i64> {
        let _writer = self.writing().await;
        self.retrying_busy(|| self.kb_upsert_once(site, rows)).await
    }

    async fn kb_delete(&self, site: &str, id: &str, now_ms: i64) -> StoreResult<Option<i64>> {
        let _writer = self.writing().await;
        self.retrying_busy(|| self.kb_delete_once(site, id, now_ms)).await
    }

    async fn kb_set_vectors(&self, site: &str, id: &str, version: i64, vectors: &[u8]) -> StoreResult<Option<i64>> {
        let _writer = self.writing().await;
        self.retrying_busy(|| self.kb_set_vectors_once(site, id, version, vectors)).await
    }

    async fn kb_get(&self, site: &str, id: &str) -> StoreResult<Option<KbRow>> {
        let row = sqlx::query(select_documents!("WHERE site = $1 AND id = $2 AND deleted = 0"))
            .bind(site.to_owned())
            .bind(id.to_owned())
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| kb_from_row(&r)).transpose()?)
    }

    async fn kb_list(
        &self,
        site: &str,
        after: Option<&str>,
        filter: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<KbRow>> {
        let sql = select_documents!(
            "WHERE site = $1 AND deleted = 0 AND id > $2
               AND (lower(id) LIKE $3 ESCAPE '\\' OR lower(title) LIKE $3 ESCAPE '\\') ORDER BY id LIMIT $4"
        );
        let rows = sqlx::query(sql)
            .bind(site.to_owned())
            .bind(after.unwrap_or("").to_owned())
            .bind(like_pattern(filter))
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(kb_from_row).collect::<Result<_, _>>()?)
    }

    async fn kb_count(&self, site: &str, filter: Option<&str>) -> StoreResult<i64> {
        let row = sqlx::query(
            "SELECT COUNT(*) FROM velochat_kb_documents WHERE site = $1 AND deleted = 0
               AND (lower(id) LIKE $2 ESCAPE '\\' OR lower(title) LIKE $2 ESCAPE '\\')",
        )
        .bind(site.to_owned())
        .bind(like_pattern(filter))
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get::<i64, _>(0)?)
    }

    async fn kb_changes(&self, site: &str, after_version: i64) -> StoreResult<Vec<KbRow>> {
        let sql = select_documents!("WHERE site = $1 AND version > $2 ORDER BY version, id");
        let rows = sqlx::query(sql).bind(site.to_owned()).bind(after_version).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(kb_from_row).collect::<Result<_, _>>()?)
    }

    async fn kb_versions(&self) -> StoreResult<Vec<(String, i64)>> {
        let rows = sqlx::query("SELECT site, version FROM velochat_kb_state").fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| Ok((row.try_get("site")?, row.try_get("version")?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    async fn kb_version(&self, site: &str) -> StoreResult<i64> {
        let row = sqlx::query("SELECT version FROM velochat_kb_state WHERE site = $1")
            .bind(site.to_owned())
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get::<i64, _>(0)).transpose()?.unwrap_or(0))
    }

    async fn record_unanswered(&self, record: &UnansweredRecord) -> StoreResult<()> {
        let _writer = self.writing().await;
        sqlx::query(
            "INSERT INTO velochat_unanswered (ts_ms, session_hash, locale, question, site) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(record.ts_ms)
        .bind(record.session_hash.clone())
        .bind(record.locale.clone())
        .bind(record.question.clone())
        .bind(record.site.clone().unwrap_or_else(|| crate::domain::SiteId::DEFAULT.to_owned()))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn unanswered_since(&self, scope: SiteScope<'_>, since_ms: i64) -> StoreResult<Vec<UnansweredRecord>> {
        let sql = format!(
            "SELECT ts_ms, session_hash, locale, question, site FROM velochat_unanswered WHERE ts_ms >= $1 AND {} ORDER BY ts_ms",
            scope.site_condition(2)
        );
        let mut query = sqlx::query(&sql).bind(since_ms);
        if let Some(site) = scope.site {
            query = query.bind(site.to_owned());
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| {
                Ok(UnansweredRecord {
                    ts_ms: row.try_get("ts_ms")?,
                    session_hash: row.try_get("session_hash")?,
                    locale: row.try_get("locale")?,
                    question: row.try_get("question")?,
                    site: Some(row.try_get::<String, _>("site")?).filter(|site| site != crate::domain::SiteId::DEFAULT),
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }
}
