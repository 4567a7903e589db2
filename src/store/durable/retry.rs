//! Writing until it is written: a batch backs off from 50 ms to every 2 s while the database is
//! away, giving up only once the process is stopping and a few more attempts failed; a request's
//! write waits out a busy SQLite file for a few seconds instead of failing.

use super::sql::SqlStore;
use super::StoreResult;
use backon::Retryable;
use std::future::Future;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// Attempts for the last batch once the process is stopping (it cannot wait for ever).
const ATTEMPTS_WHEN_STOPPING: u32 = 4;

/// Runs `write` until it succeeds; false when it gave up at shutdown. `what` and `records` name
/// the batch in the log (the first failures, then one line in ten: an outage must not flood it).
pub async fn until_written<F, Fut>(stop: &CancellationToken, what: &str, records: usize, write: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = StoreResult<()>>,
{
    let mut attempt = 0u64;
    let mut attempts_stopping = 0;
    let written = write
        .retry(crate::retry::exponential(FIRST_BACKOFF, MAX_BACKOFF))
        .sleep(tokio::time::sleep)
        .when(|error| {
            attempt += 1;
            if attempt <= 3 || attempt % 10 == 0 {
                let cause = crate::error_chain::describe(error);
                tracing::warn!(error = %cause, what, records, attempt, "durable write failed; retrying");
            }
            if stop.is_cancelled() {
                attempts_stopping += 1;
            }
            attempts_stopping < ATTEMPTS_WHEN_STOPPING
        })
        .await;
    written.is_ok()
}

/// How long a write waits out a busy SQLite file before it reports the store unavailable (well
/// inside a caller's 14 s).
const BUSY_RETRY_FOR: Duration = Duration::from_secs(8);

/// SQLite's SQLITE_BUSY (5) and its extended codes (517 is BUSY_SNAPSHOT, 261 BUSY_RECOVERY).
fn is_busy(error: &crate::store::StoreError) -> bool {
    let crate::store::StoreError::Database(sqlx::Error::Database(db)) = error else { return false };
    db.code().and_then(|c| c.parse::<i64>().ok()).is_some_and(|code| code & 0xff == 5)
}

impl SqlStore {
    /// Runs `write` again while SQLite answers "database is locked" (another process, such as
    /// `velochat kb import`, holds the file), for up to `BUSY_RETRY_FOR`: a busy store is a wait,
    /// not a 503.
    pub(super) async fn retrying_busy<T, F, Fut>(&self, write: F) -> StoreResult<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = StoreResult<T>>,
    {
        let backoff = crate::retry::exponential(Duration::from_millis(5), Duration::from_millis(200));
        write.retry(backoff.with_total_delay(Some(BUSY_RETRY_FOR))).sleep(tokio::time::sleep).when(is_busy).await
    }
}
