//! The OpenAI chat completions client and everything that keeps it inside the deadline: retries,
//! the circuit breaker, the fallback model and the static replies at the bottom of the ladder.

pub mod breaker;
pub mod client;
pub mod error;
pub mod fallback;
pub mod ladder;
pub mod sse;
pub mod structured;
pub mod tokens;
pub mod wire;

pub use breaker::{Breaker, CircuitState};
pub use client::{Completion, Endpoint};
pub use error::AttemptError;
pub use fallback::{pick_localized, StaticReplies};
pub use ladder::{Ladder, LadderRun, LadderSettings};
