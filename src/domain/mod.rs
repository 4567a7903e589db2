//! Visitor-supplied data, parsed into types that can only hold valid values. Pure and unit-tested.

mod agent_message;
mod cidr;
mod context;
mod deadline;
mod history;
mod reply;
mod session_id;
mod site_id;
mod text;
mod time;

pub use agent_message::{AgentMessage, MAX_AGENT_TEXT_CHARS};
pub use cidr::parse_cidr;
pub use context::TypedContext;
pub use deadline::Deadline;
pub use history::{compact_history, CompactedHistory, DroppedTurns, RawTurn, Role, Turn, Verifier};
pub use reply::{FallbackReason, HandoffReason, Source};
pub use session_id::{check_identifier, SessionId};
pub use site_id::{session_owner, visible_session_id, SiteId};
pub use text::{clean_text, UserText};
pub use time::rfc3339;

/// Why a visitor-supplied value was refused; always names the field (`history[3].content`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct InvalidField {
    pub field: String,
    pub code: &'static str,
    pub message: String,
}

impl InvalidField {
    pub fn new(field: impl Into<String>, code: &'static str, message: impl Into<String>) -> Self {
        Self { field: field.into(), code, message: message.into() }
    }

    pub fn missing(field: &str) -> Self {
        Self::new(field, "missing_field", format!("`{field}` is required"))
    }
}
