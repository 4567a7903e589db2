//! Human handoff support: events for the support team, the durable outbox and webhook delivery.

pub mod handoff;
pub mod outbox;
pub mod transcript;
pub mod webhook;

pub use handoff::{EventKind, SupportEvent, SupportOutbox};
pub use outbox::OutboxWorker;
pub use transcript::TranscriptSink;
pub use webhook::WebhookClient;
