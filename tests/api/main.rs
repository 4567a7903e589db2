//! Black-box tests: the real app on port 0, talking HTTP; a fake OpenAI on a real socket.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helpers;
mod raw_upstream;
mod services;

mod anomaly;
mod compat;
mod console_replicas;
mod conversations;
mod conversations_loop;
mod core;
mod durability;
mod faults;
mod first_hour;
mod framing;
mod guards;
mod handoff;
mod hardening_console;
mod hardening_knowledge;
mod http2_upstream;
mod http_wire;
mod human_loop;
mod human_loop_replicas;
mod knowledge;
mod knowledge_hybrid;
mod knowledge_replicas;
mod knowledge_safety;
mod ladder;
mod lifecycle;
mod limits_edge;
mod process;
mod redteam;
mod replicas;
mod telemetry;
mod tls;
mod validation;
