//! The degradation ladder: primary attempt → (one retry or the fallback model) → static reply, every
//! step bounded by the request's deadline and gated by the circuit breaker.

use super::breaker::{Breaker, Verdict};
use super::client::Endpoint;
use super::error::AttemptError;
use crate::domain::Deadline;
use crate::domain::FallbackReason;
use rand::Rng;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct LadderSettings {
    pub attempt_timeout: Duration,
    pub fallback_reserve: Duration,
    pub min_attempt: Duration,
    pub max_retries: u32,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    pub slow_call: Duration,
}

/// What the ladder did for one request.
#[derive(Debug)]
pub struct LadderRun<T> {
    pub result: Result<T, FallbackReason>,
    pub attempts: u32,
    /// Time spent on (or waiting for) the upstream, for the overhead metric.
    pub upstream_time: Duration,
    /// Each failed attempt, labelled (`status_503`, `timeout`, ...).
    pub errors: Vec<String>,
    /// The endpoint that answered.
    pub model: Option<String>,
}

/// Below this, an attempt cannot possibly complete; answer with the fallback instead.
const MIN_FIRST_ATTEMPT: Duration = Duration::from_millis(20);

pub struct Ladder {
    pub primary: Endpoint,
    pub secondary: Option<Endpoint>,
    pub breaker: Arc<Breaker>,
    pub settings: LadderSettings,
}

impl Ladder {
    /// Runs up to two attempts; `attempt(endpoint, is_primary, timeout, cut_by_deadline)` performs one.
    pub async fn run<'a, T, F, Fut>(&'a self, deadline: &Deadline, attempt: F) -> LadderRun<T>
    where
        F: Fn(&'a Endpoint, bool, Duration, bool) -> Fut,
        Fut: Future<Output = Result<T, AttemptError>>,
    {
        let mut run = LadderRun {
            result: Err(FallbackReason::UpstreamError),
            attempts: 0,
            upstream_time: Duration::ZERO,
            errors: Vec::new(),
            model: None,
        };
        let Some(permit) = self.breaker.admit() else {
            run.result = Err(FallbackReason::CircuitOpen);
            return run;
        };
        let mut endpoint = &self.primary;
        let mut all_failures_trip = true;
        loop {
            let time_left = deadline.remaining().saturating_sub(self.settings.fallback_reserve);
            let needed = if run.attempts == 0 { MIN_FIRST_ATTEMPT } else { self.settings.min_attempt };
            if time_left < needed {
                if run.attempts == 0 {
                    run.result = Err(FallbackReason::Deadline);
                }
                break;
            }
            let cut_by_deadline = time_left < self.settings.attempt_timeout;
            let timeout = time_left.min(self.settings.attempt_timeout);
            let began = Instant::now();
            run.attempts += 1;
            let is_primary = std::ptr::eq(endpoint, &self.primary);
            let outcome = attempt(endpoint, is_primary, timeout, cut_by_deadline).await;
            let took = began.elapsed();
            run.upstream_time += took;
            let error = match outcome {
                Ok(value) => {
                    run.model = Some(endpoint.model.clone());
                    run.result = Ok(value);
                    let verdict = if took > self.settings.slow_call { Verdict::Failed } else { Verdict::Healthy };
                    permit.settle(verdict);
                    return run;
                }
                Err(error) => error,
            };
            all_failures_trip &= error.trips_breaker();
            run.errors.push(error.label());
            run.result = Err(error.fallback_reason());
            let Some(next) = self.next_rung(run.attempts, endpoint, &error) else {
                break;
            };
            // retry-after speaks for the endpoint that sent it; a different rung goes at once.
            let wait = if std::ptr::eq(next, endpoint) {
                error.retry_after().unwrap_or_else(|| self.jittered_backoff())
            } else {
                Duration::ZERO
            };
            // Only wait when the retry still fits afterwards; otherwise answer now.
            let left_after_wait =
                deadline.remaining().saturating_sub(self.settings.fallback_reserve).saturating_sub(wait);
            if left_after_wait < self.settings.min_attempt {
                break;
            }
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
                run.upstream_time += wait;
            }
            endpoint = next;
        }
        permit.settle(if all_failures_trip && run.attempts > 0 { Verdict::Failed } else { Verdict::Neutral });
        run
    }

    /// Where the second attempt goes, if anywhere: the fallback model when configured and the
    /// failure suits it, else the same endpoint when retryable.
    fn next_rung<'a>(&'a self, attempts: u32, current: &'a Endpoint, error: &AttemptError) -> Option<&'a Endpoint> {
        if attempts >= 2 {
            return None;
        }
        match &self.secondary {
            Some(secondary) if error.suits_second_rung() => Some(secondary),
            _ if self.settings.max_retries >= 1 && error.is_retryable() => Some(current),
            _ => None,
        }
    }

    fn jittered_backoff(&self) -> Duration {
        let base = self.settings.backoff_base.as_millis() as u64;
        let max = self.settings.backoff_max.as_millis() as u64;
        let ms = rand::thread_rng().gen_range(base / 2..=base.max(1)).min(max);
        Duration::from_millis(ms)
    }
}
