//! Guards refuse or neutralise before money is spent or harm is done: caller authentication, rate
//! limits, reply signatures, redaction and output handling.

pub mod auth;
pub mod client_ip;
pub mod console_session;
pub mod ip_limit;
pub mod output;
pub mod redact;
pub mod signature;
pub mod stream_filter;

pub use auth::{Authenticator, Credential};
pub use output::{strip_html, OutputFilter, OutputProblem};
pub use redact::Redactor;
pub use signature::{hashed_id, Signer};
