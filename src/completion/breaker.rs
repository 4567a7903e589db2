//! Circuit breaker over whole requests (not attempts): opens on N consecutive failures or a failure
//! rate over the last W requests, stays open for a while, then lets a single probe decide.

use crate::config::BreakerSettings;
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    Closed,
    Open,
    HalfOpen,
}

impl CircuitState {
    /// The value of the `velochat_circuit_state` gauge.
    pub fn gauge(self) -> i64 {
        match self {
            CircuitState::Closed => 0,
            CircuitState::Open => 1,
            CircuitState::HalfOpen => 2,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CircuitState::Closed => "closed",
            CircuitState::Open => "open",
            CircuitState::HalfOpen => "half_open",
        }
    }
}

/// How a request that reached the upstream ended, as far as upstream health goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Healthy,
    Failed,
    /// The upstream answered but the answer says nothing about its health (400, quota, filter).
    Neutral,
}

enum State {
    Closed { consecutive: u32, recent: VecDeque<bool> },
    Open { until: Instant },
    HalfOpen,
}

pub struct Breaker {
    state: Mutex<State>,
    settings: BreakerSettings,
    on_change: Box<dyn Fn(CircuitState) + Send + Sync>,
}

/// Leave to call the upstream. A probe permit dropped without a verdict (the caller went away)
/// lets the next request probe instead of wedging the breaker half-open.
pub struct Permit {
    breaker: Arc<Breaker>,
    probe: bool,
    settled: bool,
}

impl Breaker {
    pub fn new(settings: BreakerSettings, on_change: impl Fn(CircuitState) + Send + Sync + 'static) -> Arc<Self> {
        let window = settings.window;
        Arc::new(Self {
            state: Mutex::new(State::Closed { consecutive: 0, recent: VecDeque::with_capacity(window) }),
            settings,
            on_change: Box::new(on_change),
        })
    }

    pub fn state(&self) -> CircuitState {
        match &*self.state.lock() {
            State::Closed { .. } => CircuitState::Closed,
            State::Open { .. } => CircuitState::Open,
            State::HalfOpen => CircuitState::HalfOpen,
        }
    }

    /// None while open (or while a probe is out); otherwise a permit to call the upstream.
    pub fn admit(self: &Arc<Self>) -> Option<Permit> {
        let mut state = self.state.lock();
        match &*state {
            State::Closed { .. } => Some(Permit { breaker: self.clone(), probe: false, settled: false }),
            State::HalfOpen => None,
            State::Open { until } if Instant::now() < *until => None,
            State::Open { .. } => {
                *state = State::HalfOpen;
                drop(state);
                self.changed(CircuitState::HalfOpen);
                Some(Permit { breaker: self.clone(), probe: true, settled: false })
            }
        }
    }

    fn changed(&self, to: CircuitState) {
        match to {
            CircuitState::Open => {
                tracing::warn!(circuit = to.as_str(), "circuit breaker opened: upstream calls paused")
            }
            _ => tracing::info!(circuit = to.as_str(), "circuit breaker state changed"),
        }
        (self.on_change)(to);
    }

    fn open(&self) -> State {
        State::Open { until: Instant::now() + Duration::from_millis(self.settings.open_ms) }
    }

    fn fresh_closed(&self) -> State {
        State::Closed { consecutive: 0, recent: VecDeque::with_capacity(self.settings.window) }
    }

    fn settle(&self, probe: bool, verdict: Verdict) {
        let mut state = self.state.lock();
        let transition = if probe {
            match verdict {
                Verdict::Failed => Some((self.open(), CircuitState::Open)),
                Verdict::Healthy | Verdict::Neutral => Some((self.fresh_closed(), CircuitState::Closed)),
            }
        } else if let State::Closed { consecutive, recent } = &mut *state {
            let failed = match verdict {
                Verdict::Neutral => return,
                Verdict::Failed => true,
                Verdict::Healthy => false,
            };
            *consecutive = if failed { *consecutive + 1 } else { 0 };
            if recent.len() == self.settings.window {
                recent.pop_front();
            }
            recent.push_back(failed);
            let failures = recent.iter().filter(|f| **f).count();
            let rate_tripped = recent.len() == self.settings.window
                && failures as f64 >= self.settings.failure_rate * self.settings.window as f64;
            (*consecutive >= self.settings.consecutive_failures || rate_tripped)
                .then(|| (self.open(), CircuitState::Open))
        } else {
            None
        };
        if let Some((next, label)) = transition {
            *state = next;
            drop(state);
            self.changed(label);
        }
    }

    fn abandon_probe(&self) {
        let mut state = self.state.lock();
        if matches!(*state, State::HalfOpen) {
            *state = State::Open { until: Instant::now() };
        }
    }
}

impl Permit {
    pub fn is_probe(&self) -> bool {
        self.probe
    }

    pub fn settle(mut self, verdict: Verdict) {
        self.settled = true;
        self.breaker.settle(self.probe, verdict);
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if self.probe && !self.settled {
            self.breaker.abandon_probe();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(consecutive: u32, window: usize, open_ms: u64) -> Arc<Breaker> {
        Breaker::new(
            BreakerSettings {
                consecutive_failures: consecutive,
                window,
                failure_rate: 0.5,
                open_ms,
                slow_call_ms: 8000,
            },
            |_| {},
        )
    }

    fn run(b: &Arc<Breaker>, verdict: Verdict) {
        b.admit().expect("closed breaker admits").settle(verdict);
    }

    #[test]
    fn opens_on_the_nth_consecutive_failure_not_before() {
        let b = breaker(5, 20, 60_000);
        for _ in 0..4 {
            run(&b, Verdict::Failed);
        }
        assert_eq!(b.state(), CircuitState::Closed);
        run(&b, Verdict::Failed);
        assert_eq!(b.state(), CircuitState::Open);
        assert!(b.admit().is_none());
    }

    #[test]
    fn neutral_answers_neither_count_nor_reset() {
        let b = breaker(3, 20, 60_000);
        run(&b, Verdict::Failed);
        run(&b, Verdict::Failed);
        run(&b, Verdict::Neutral);
        assert_eq!(b.state(), CircuitState::Closed);
        run(&b, Verdict::Failed);
        assert_eq!(b.state(), CircuitState::Open);
    }

    #[test]
    fn opens_when_half_of_a_full_window_failed() {
        let b = breaker(100, 20, 60_000);
        for i in 0..19 {
            run(&b, if i % 2 == 0 { Verdict::Failed } else { Verdict::Healthy });
        }
        assert_eq!(b.state(), CircuitState::Closed, "window not full yet");
        run(&b, Verdict::Healthy);
        assert_eq!(b.state(), CircuitState::Open, "10 of the last 20 failed");
    }

    #[test]
    fn a_single_probe_decides_after_the_open_time() {
        let b = breaker(1, 20, 1);
        run(&b, Verdict::Failed);
        std::thread::sleep(Duration::from_millis(5));
        let probe = b.admit().expect("probe after open time");
        assert!(probe.is_probe());
        assert!(b.admit().is_none(), "only one probe at a time");
        probe.settle(Verdict::Failed);
        assert_eq!(b.state(), CircuitState::Open);
        std::thread::sleep(Duration::from_millis(5));
        b.admit().expect("second probe").settle(Verdict::Healthy);
        assert_eq!(b.state(), CircuitState::Closed);
    }

    #[test]
    fn an_abandoned_probe_lets_the_next_request_probe() {
        let b = breaker(1, 20, 1);
        run(&b, Verdict::Failed);
        std::thread::sleep(Duration::from_millis(5));
        drop(b.admit().expect("probe"));
        assert!(b.admit().expect("next probe").is_probe());
    }
}
