//! Writing a batch until it is written: backing off from 50 ms to every 2 s while the database is
//! away, and giving up only once the process is stopping and a few more attempts failed.

use super::StoreResult;
use std::future::Future;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// Attempts for the last batch once the process is stopping (it cannot wait for ever).
const ATTEMPTS_WHEN_STOPPING: u32 = 4;

/// Runs `write` until it succeeds; false when it gave up at shutdown. `what` and `records` name
/// the batch in the log (the first failures, then one line in ten: an outage must not flood it).
pub async fn until_written<F, Fut>(stop: &CancellationToken, what: &str, records: usize, mut write: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = StoreResult<()>>,
{
    let mut delay = FIRST_BACKOFF;
    let mut attempts_stopping = 0;
    for attempt in 1u64.. {
        let error = match write().await {
            Ok(()) => return true,
            Err(error) => error,
        };
        if attempt <= 3 || attempt % 10 == 0 {
            let cause = crate::error_chain::describe(&error);
            tracing::warn!(error = %cause, what, records, attempt, "durable write failed; retrying");
        }
        if stop.is_cancelled() {
            attempts_stopping += 1;
            if attempts_stopping >= ATTEMPTS_WHEN_STOPPING {
                return false;
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(MAX_BACKOFF);
    }
    false
}
