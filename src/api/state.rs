//! What every handler shares, and the services a handler takes alone (axum `FromRef` sub-states).

use crate::chat::ChatService;
use crate::config::Settings;
use crate::guard::ip_limit::IpLimiter;
use crate::guard::Authenticator;
use crate::human_loop::HumanLoop;
use crate::knowledge::KnowledgeBases;
use crate::review::Review;
use crate::telemetry::Metrics;
use axum::extract::FromRef;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Readiness and shutdown. Readiness flips the moment shutdown begins, before anything stops.
pub struct Lifecycle {
    ready: AtomicBool,
    pub shutdown: CancellationToken,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Self { ready: AtomicBool::new(true), shutdown: CancellationToken::new() }
    }
}

impl Lifecycle {
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst) && !self.shutdown.is_cancelled()
    }

    /// Begins shutdown: /readyz answers 503 from now on.
    pub fn begin_shutdown(&self) {
        self.ready.store(false, Ordering::SeqCst);
        self.shutdown.cancel();
    }
}

#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub chat: Arc<ChatService>,
    pub human_loop: Arc<HumanLoop>,
    pub review: Arc<Review>,
    /// The knowledge admin service (the chat service searches the same base).
    pub knowledge: Arc<KnowledgeBases>,
    pub auth: Arc<Authenticator>,
    /// Every site, its keys and settings, as this process last loaded them.
    pub sites: Arc<crate::sites::SiteRegistry>,
    pub lifecycle: Arc<Lifecycle>,
    pub metrics: Arc<Metrics>,
    /// The per-IP limit for anonymous callers (an edge layer).
    pub ip_limiter: Arc<IpLimiter>,
    /// Listening on a non-loopback address: metrics, OpenAPI and admin are never anonymous there.
    pub public_listener: bool,
    /// Console sign-in; None (console off) without an admin key.
    pub console: Option<Arc<crate::guard::console_session::Sessions>>,
}

macro_rules! sub_state {
    ($field:ident: $service:ty) => {
        impl FromRef<AppState> for Arc<$service> {
            fn from_ref(state: &AppState) -> Self {
                state.$field.clone()
            }
        }
    };
}

sub_state!(chat: ChatService);
sub_state!(human_loop: HumanLoop);
sub_state!(review: Review);
sub_state!(knowledge: KnowledgeBases);
sub_state!(sites: crate::sites::SiteRegistry);
