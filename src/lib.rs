//! velochat: an OpenAI-backed support bot behind Wix Chat, inside Wix's 14 s backend limit.
//!
//! Layers (README "Architecture"): `api` (the HTTP edge) → the services `chat`, `human_loop`,
//! `review` and the knowledge admin in `knowledge` → `completion` (OpenAI, deadline, ladder),
//! `support` (every outbound event) → `guard` refusing work early and `store` holding state.

pub mod api;
pub mod budget;
pub mod chat;
pub mod cli;
pub mod completion;
pub mod config;
pub mod domain;
pub mod error_chain;
pub mod guard;
pub mod human_loop;
pub mod knowledge;
pub mod rate;
pub mod retry;
pub mod review;
pub mod sites;
pub mod startup;
pub mod store;
pub mod support;
pub mod telemetry;
