//! Rate-limit arithmetic and its in-process storage: a leaf every layer may use (the store keeps
//! buckets in Redis with the same GCRA, the guards and the chat service ask for decisions).

pub mod gcra;
pub mod local;

pub use gcra::{Decision, Quota};
pub use local::LocalLimiter;

/// Which limit a key belongs to (also the `limit` label and the JSON `limit` field).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LimitKind {
    Session,
    Visitor,
    Ip,
    Caller,
    /// Console sign-in attempts per client address.
    ConsoleSignIn,
}

impl LimitKind {
    pub const ALL: [LimitKind; 5] =
        [LimitKind::Session, LimitKind::Visitor, LimitKind::Ip, LimitKind::Caller, LimitKind::ConsoleSignIn];

    pub fn as_str(self) -> &'static str {
        match self {
            LimitKind::Session => "session",
            LimitKind::Visitor => "visitor",
            LimitKind::Ip => "ip",
            LimitKind::Caller => "caller",
            LimitKind::ConsoleSignIn => "console_sign_in",
        }
    }
}
