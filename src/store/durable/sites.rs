//! The site registry: sites, their settings (JSON) and their keys (SHA-256 only). Every change
//! bumps one version that each replica polls, so a new key, a revoked key or a changed setting
//! holds everywhere within a poll.

use super::sql::SqlStore;
use super::StoreResult;
use async_trait::async_trait;
use sqlx::any::AnyRow;
use sqlx::Row;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteRow {
    pub id: String,
    pub name: String,
    /// The site's settings as JSON (validated before they are written).
    pub settings: String,
    pub created_ms: i64,
    pub updated_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteKeyRow {
    pub id: String,
    pub site: String,
    pub role: String,
    pub label: Option<String>,
    /// Hex SHA-256 of the key; the key itself is never stored.
    pub key_hash: String,
    pub created_ms: i64,
    pub last_used_ms: Option<i64>,
}

#[async_trait]
pub trait SiteStore: Send + Sync {
    async fn registry_version(&self) -> StoreResult<i64>;
    /// Whether a site besides `default` was ever registered (anonymous access never returns).
    async fn sites_ever_registered(&self) -> StoreResult<bool>;
    async fn list_sites(&self) -> StoreResult<Vec<SiteRow>>;
    async fn list_site_keys(&self) -> StoreResult<Vec<SiteKeyRow>>;
    /// Creates the site when it does not exist (start-up: `default`); true when it was created.
    async fn ensure_site(&self, id: &str, name: &str, now_ms: i64) -> StoreResult<bool>;
    /// Creates or updates a site; returns it as stored.
    async fn put_site(&self, id: &str, name: &str, settings: &str, now_ms: i64) -> StoreResult<SiteRow>;
    /// Removes a site, its keys, its knowledge base and every record of its sessions (whose keys
    /// start with `session_prefix`). False when there was no such site.
    async fn delete_site(&self, id: &str, session_prefix: &str) -> StoreResult<bool>;
    async fn add_site_key(&self, key: &SiteKeyRow) -> StoreResult<()>;
    async fn delete_site_key(&self, site: &str, key_id: &str) -> StoreResult<bool>;
    /// Records when keys were last used (batched by each process; no version bump).
    async fn touch_site_keys(&self, used: &[(String, i64)]) -> StoreResult<()>;
}

const BUMP: &str = "INSERT INTO velochat_registry_state (name, version) VALUES ('sites', 1)
    ON CONFLICT (name) DO UPDATE SET version = velochat_registry_state.version + 1";

fn site_from_row(row: &AnyRow) -> Result<SiteRow, sqlx::Error> {
    Ok(SiteRow {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        settings: row.try_get("settings")?,
        created_ms: row.try_get("created_ms")?,
        updated_ms: row.try_get("updated_ms")?,
    })
}

fn key_from_row(row: &AnyRow) -> Result<SiteKeyRow, sqlx::Error> {
    Ok(SiteKeyRow {
        id: row.try_get("id")?,
        site: row.try_get("site")?,
        role: row.try_get("role")?,
        label: row.try_get("label")?,
        key_hash: row.try_get("key_hash")?,
        created_ms: row.try_get("created_ms")?,
        last_used_ms: row.try_get("last_used_ms")?,
    })
}

/// Escapes LIKE's wildcards so a prefix matches only itself.
pub(super) fn like_prefix(prefix: &str) -> String {
    let escaped = prefix.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
    format!("{escaped}%")
}

#[async_trait]
impl SiteStore for SqlStore {
    async fn registry_version(&self) -> StoreResult<i64> {
        let row = sqlx::query("SELECT version FROM velochat_registry_state WHERE name = 'sites'")
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(row) => row.try_get(0)?,
            None => 0,
        })
    }

    async fn sites_ever_registered(&self) -> StoreResult<bool> {
        let row = sqlx::query("SELECT 1 FROM velochat_registry_state WHERE name = 'sites_registered'")
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }

    async fn list_sites(&self) -> StoreResult<Vec<SiteRow>> {
        let rows = sqlx::query("SELECT id, name, settings, created_ms, updated_ms FROM velochat_sites ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(site_from_row).collect::<Result<_, _>>()?)
    }

    async fn list_site_keys(&self) -> StoreResult<Vec<SiteKeyRow>> {
        let rows = sqlx::query(
            "SELECT id, site, role, label, key_hash, created_ms, last_used_ms FROM velochat_site_keys ORDER BY created_ms, id",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(key_from_row).collect::<Result<_, _>>()?)
    }

    async fn ensure_site(&self, id: &str, name: &str, now_ms: i64) -> StoreResult<bool> {
        let _writer = self.writing().await;
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO velochat_sites (id, name, settings, created_ms, updated_ms) VALUES ($1, $2, '{}', $3, $3)
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(id.to_owned())
        .bind(name.to_owned())
        .bind(now_ms)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            > 0;
        if inserted {
            sqlx::query(BUMP).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(inserted)
    }

    async fn put_site(&self, id: &str, name: &str, settings: &str, now_ms: i64) -> StoreResult<SiteRow> {
        let _writer = self.writing().await;
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(
            "INSERT INTO velochat_sites (id, name, settings, created_ms, updated_ms) VALUES ($1, $2, $3, $4, $4)
             ON CONFLICT (id) DO UPDATE SET name = excluded.name, settings = excluded.settings,
               updated_ms = excluded.updated_ms
             RETURNING id, name, settings, created_ms, updated_ms",
        )
        .bind(id.to_owned())
        .bind(name.to_owned())
        .bind(settings.to_owned())
        .bind(now_ms)
        .fetch_one(&mut *tx)
        .await?;
        if id != crate::domain::SiteId::DEFAULT {
            sqlx::query(
                "INSERT INTO velochat_registry_state (name, version) VALUES ('sites_registered', 1) ON CONFLICT (name) DO NOTHING",
            )
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(BUMP).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(site_from_row(&row)?)
    }

    async fn delete_site(&self, id: &str, session_prefix: &str) -> StoreResult<bool> {
        let _writer = self.writing().await;
        let mut tx = self.pool.begin().await?;
        let existed = sqlx::query("DELETE FROM velochat_sites WHERE id = $1")
            .bind(id.to_owned())
            .execute(&mut *tx)
            .await?
            .rows_affected()
            > 0;
        if existed {
            for sql in [
                "DELETE FROM velochat_site_keys WHERE site = $1",
                "DELETE FROM velochat_kb_documents WHERE site = $1",
                "DELETE FROM velochat_kb_state WHERE site = $1",
            ] {
                sqlx::query(sql).bind(id.to_owned()).execute(&mut *tx).await?;
            }
            let pattern = like_prefix(session_prefix);
            for table in [
                "velochat_outbox",
                "velochat_human_sessions",
                "velochat_session_messages",
                "velochat_handoffs",
                "velochat_suggestions",
            ] {
                let sql = format!("DELETE FROM {table} WHERE session_id LIKE $1 ESCAPE '\\'");
                sqlx::query(&sql).bind(pattern.clone()).execute(&mut *tx).await?;
            }
            sqlx::query(BUMP).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(existed)
    }

    async fn add_site_key(&self, key: &SiteKeyRow) -> StoreResult<()> {
        let _writer = self.writing().await;
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO velochat_site_keys (id, site, role, label, key_hash, created_ms, last_used_ms)
             VALUES ($1, $2, $3, $4, $5, $6, NULL)",
        )
        .bind(key.id.clone())
        .bind(key.site.clone())
        .bind(key.role.clone())
        .bind(key.label.clone())
        .bind(key.key_hash.clone())
        .bind(key.created_ms)
        .execute(&mut *tx)
        .await?;
        sqlx::query(BUMP).execute(&mut *tx).await?;
        Ok(tx.commit().await?)
    }

    async fn delete_site_key(&self, site: &str, key_id: &str) -> StoreResult<bool> {
        let _writer = self.writing().await;
        let mut tx = self.pool.begin().await?;
        let removed = sqlx::query("DELETE FROM velochat_site_keys WHERE site = $1 AND id = $2")
            .bind(site.to_owned())
            .bind(key_id.to_owned())
            .execute(&mut *tx)
            .await?
            .rows_affected()
            > 0;
        if removed {
            sqlx::query(BUMP).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(removed)
    }

    async fn touch_site_keys(&self, used: &[(String, i64)]) -> StoreResult<()> {
        if used.is_empty() {
            return Ok(());
        }
        let _writer = self.writing().await;
        let mut tx = self.pool.begin().await?;
        for (id, at_ms) in used {
            sqlx::query(
                "UPDATE velochat_site_keys SET last_used_ms = $1 WHERE id = $2 AND (last_used_ms IS NULL OR last_used_ms < $1)",
            )
            .bind(*at_ms)
            .bind(id.clone())
            .execute(&mut *tx)
            .await?;
        }
        Ok(tx.commit().await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_pattern_matches_only_that_prefix() {
        assert_eq!(like_prefix("acme/"), "acme/%");
        assert_eq!(like_prefix("a_b%/"), "a\\_b\\%/%");
    }
}
