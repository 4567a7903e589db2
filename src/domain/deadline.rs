//! A request's time budget: Wix cuts every backend call at 14 s, so each request carries its own.

use std::time::{Duration, Instant};

/// The time budget of one request, from its arrival.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    started: Instant,
    budget: Duration,
}

impl Deadline {
    pub fn new(started: Instant, budget: Duration) -> Self {
        Self { started, budget }
    }

    pub fn remaining(&self) -> Duration {
        self.budget.saturating_sub(self.started.elapsed())
    }

    pub fn started(&self) -> Instant {
        self.started
    }
}
