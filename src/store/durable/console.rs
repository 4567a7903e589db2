//! What the operator console keeps: sessions signed out before their cookie expires, so a sign-out
//! holds after a restart (the shared state store keeps them when there is one).

use super::sql::SqlStore;
use super::StoreResult;
use async_trait::async_trait;

#[async_trait]
pub trait ConsoleStore: Send + Sync {
    /// Records a signed-out console session until its cookie would expire (and forgets expired ones).
    async fn revoke_console_session(&self, nonce: &str, expires_ms: i64, now_ms: i64) -> StoreResult<()>;
    async fn console_session_revoked(&self, nonce: &str) -> StoreResult<bool>;
}

#[async_trait]
impl ConsoleStore for SqlStore {
    async fn revoke_console_session(&self, nonce: &str, expires_ms: i64, now_ms: i64) -> StoreResult<()> {
        let _writer = self.writing().await;
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM velochat_console_revocations WHERE expires_ms < $1")
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO velochat_console_revocations (nonce, expires_ms) VALUES ($1, $2) ON CONFLICT (nonce) DO NOTHING",
        )
        .bind(nonce.to_owned())
        .bind(expires_ms)
        .execute(&mut *tx)
        .await?;
        Ok(tx.commit().await?)
    }

    async fn console_session_revoked(&self, nonce: &str) -> StoreResult<bool> {
        let row = sqlx::query("SELECT 1 FROM velochat_console_revocations WHERE nonce = $1")
            .bind(nonce.to_owned())
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }
}
