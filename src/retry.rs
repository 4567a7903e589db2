//! One backoff policy for everything that retries outside the model call (whose deadline arithmetic
//! is the ladder's own): backon's exponential backoff, doubling from a first delay up to a cap.
//! Loops retry with `backon::Retryable`; a retry scheduled in the database (the outbox) asks for
//! the delay of its attempt number.

use backon::{BackoffBuilder, ExponentialBuilder};
use rand::Rng;
use std::time::Duration;

/// Doubling from `first` up to `max`, without a limit on attempts (callers stop by their own rule:
/// a total delay, a stop signal, an error that is not worth another try).
pub fn exponential(first: Duration, max: Duration) -> ExponentialBuilder {
    ExponentialBuilder::default().with_min_delay(first).with_max_delay(max).with_factor(2.0).without_max_times()
}

/// The wait before retry `attempt` (1 = the first retry) of something retried on a schedule, with
/// ±20 % jitter so that many failures do not come back in lockstep.
pub fn scheduled_delay(attempt: i64, first: Duration, max: Duration) -> Duration {
    let steps = attempt.saturating_sub(1).clamp(0, 30) as usize;
    let raw = exponential(first, max).build().nth(steps).unwrap_or(max);
    raw.mul_f64(rand::thread_rng().gen_range(0.8..=1.2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scheduled_delay_doubles_and_caps_with_jitter() {
        let ms = |a| scheduled_delay(a, Duration::from_millis(100), Duration::from_millis(1000)).as_millis() as u64;
        assert!((80..=120).contains(&ms(1)));
        assert!((160..=240).contains(&ms(2)));
        assert!((800..=1200).contains(&ms(10)));
        assert!((800..=1200).contains(&ms(i64::MAX)));
    }
}
