//! velochat: an OpenAI-backed support bot behind Wix Chat, inside Wix's 14 s backend limit.
//!
//! Layers: `api` (HTTP edge) → `orchestrator` (request flow) → `completion` (OpenAI, deadline,
//! ladder) and `support` (human handoff), with `guard` refusing work early and `store` holding state.

pub mod api;
pub mod cli;
pub mod completion;
pub mod config;
pub mod domain;
pub mod guard;
pub mod memory;
pub mod orchestrator;
pub mod report;
pub mod serve;
pub mod startup;
pub mod state;
pub mod store;
pub mod support;
pub mod telemetry;
