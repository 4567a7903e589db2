//! The per-IP limit for anonymous callers, as a tower layer in front of body parsing. One replica
//! keeps its buckets in governor's keyed limiter; with `REDIS_URL` the same layer asks the shared
//! store's GCRA, so N replicas allow 1× the limit.
//!
//! Why plain governor and not `tower_governor::GovernorLayer`: authenticated callers are servers
//! (every Wix visitor arrives from Wix's addresses) and must skip this limit, the Redis backend has
//! to sit behind the same layer, and the decision feeds the response's `RateLimit-*` headers.

use super::client_ip::{client_ip, forwarded_for, ip_key};
use super::Credential;
use crate::rate::{Decision, LimitKind, Quota};
use crate::store::StateStore;
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::RateLimiter;
use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

/// The client address behind trusted proxies (right-most untrusted `X-Forwarded-For` hop), IPv6
/// grouped by /64.
#[derive(Clone)]
pub struct ClientIpKey {
    trusted: Arc<Vec<IpNet>>,
}

impl ClientIpKey {
    fn extract<T>(&self, request: &http::Request<T>) -> String {
        let peer = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
            .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
        let forwarded = forwarded_for(request.headers());
        ip_key(client_ip(peer, forwarded.as_deref(), &self.trusted))
    }
}

type KeyedLimiter = RateLimiter<String, DefaultKeyedStateStore<String>, DefaultClock, StateInformationMiddleware>;

enum Backend {
    Local(KeyedLimiter),
    Shared(Arc<dyn StateStore>),
}

/// The IP limiter the layer consults (shared by every clone of the layer).
pub struct IpLimiter {
    backend: Backend,
    keys: ClientIpKey,
    quota: Quota,
}

/// The IP decision of an admitted request, for the response's `RateLimit-*` headers.
#[derive(Debug, Clone, Copy)]
pub struct IpDecision(pub Decision);

impl IpLimiter {
    /// In-process buckets (`shared` = None) or the shared store's.
    pub fn new(quota: Quota, trusted: Vec<IpNet>, shared: Option<Arc<dyn StateStore>>) -> anyhow::Result<Self> {
        let keys = ClientIpKey { trusted: Arc::new(trusted) };
        let backend = match shared {
            Some(store) => Backend::Shared(store),
            None => Backend::Local(local_limiter(quota)?),
        };
        Ok(Self { backend, keys, quota })
    }

    /// Whether `peer` is a configured trusted proxy (its forwarded headers are believed).
    pub fn trusts(&self, peer: std::net::IpAddr) -> bool {
        self.keys.trusted.iter().any(|net| net.contains(&peer))
    }

    /// The bucket a request counts against.
    pub fn key_of<T>(&self, request: &http::Request<T>) -> String {
        self.keys.extract(request)
    }

    pub async fn check(&self, key: &String) -> Decision {
        match &self.backend {
            Backend::Shared(store) => store.rate_check(LimitKind::Ip, key, self.quota).await,
            Backend::Local(limiter) => self.check_local(limiter, key),
        }
    }

    fn check_local(&self, limiter: &KeyedLimiter, key: &String) -> Decision {
        let interval = Duration::from_nanos(self.quota.interval_ns());
        match limiter.check_key(key) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                let missing = self.quota.burst.saturating_sub(remaining);
                Decision {
                    allowed: true,
                    limit: self.quota.burst,
                    remaining,
                    retry_after: Duration::ZERO,
                    reset: interval * missing,
                }
            }
            Err(not_until) => {
                let retry_after = not_until.wait_time_from(DefaultClock::default().now());
                // GCRA: an empty bucket is full again one burst (less the token now due) later.
                let reset = retry_after + interval * self.quota.burst.saturating_sub(1);
                Decision { allowed: false, limit: self.quota.burst, remaining: 0, retry_after, reset }
            }
        }
    }

    /// Forgets addresses whose bucket is full again (governor's keyed store never shrinks by
    /// itself). Keys are client addresses (IPv6 by /64), so their number is bounded by the
    /// addresses that sent requests within one refill period, not by anything a client can invent.
    pub fn sweep(&self) {
        if let Backend::Local(limiter) = &self.backend {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }

    pub fn tracked_keys(&self) -> usize {
        match &self.backend {
            Backend::Local(limiter) => limiter.len(),
            Backend::Shared(_) => 0,
        }
    }
}

fn local_limiter(quota: Quota) -> anyhow::Result<KeyedLimiter> {
    let burst = NonZeroU32::new(quota.burst).ok_or_else(|| anyhow::anyhow!("limits.ip_burst must be at least 1"))?;
    // The period is the time one token takes to come back (not a count per second).
    let period = governor::Quota::with_period(Duration::from_nanos(quota.interval_ns()))
        .ok_or_else(|| anyhow::anyhow!("limits.ip_per_minute must be at least 1"))?;
    Ok(RateLimiter::keyed(period.allow_burst(burst)).with_middleware::<StateInformationMiddleware>())
}

/// Renders a refusal (the API's 429 body and headers); passed in so guards never import the edge.
pub type Refusal = Arc<dyn Fn(Decision) -> Response + Send + Sync>;

/// What the middleware needs: the limiter and how to refuse.
#[derive(Clone)]
pub struct IpLimit {
    pub limiter: Arc<IpLimiter>,
    pub refuse: Refusal,
}

/// The middleware (`axum::middleware::from_fn_with_state`, a tower layer): callers with a key pass,
/// anonymous ones are checked before their body is read.
pub async fn limit_anonymous(State(limit): State<IpLimit>, mut request: Request, next: Next) -> Response {
    if matches!(request.extensions().get::<Credential>(), Some(Credential::Caller(_) | Credential::Site(..))) {
        return next.run(request).await;
    }
    let key = limit.limiter.key_of(&request);
    let decision = limit.limiter.check(&key).await;
    if !decision.allowed {
        return (limit.refuse)(decision);
    }
    request.extensions_mut().insert(IpDecision(decision));
    next.run(request).await
}
