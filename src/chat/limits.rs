//! Rate limits, most specific first, so a flooding session is refused before it spends its
//! visitor's or its caller's allowance. Authenticated callers are servers (every Wix visitor comes
//! from Wix's addresses): they are limited per session, per visitor and per key, never per IP.
//! Anonymous callers were limited per IP by the edge layer (`guard::ip_limit`) before their body
//! was read; its decision still counts for the `RateLimit-*` headers.

use super::{ChatInput, ChatService};
use crate::guard::client_ip::ip_key;
use crate::rate::{Decision, Quota};
use crate::store::LimitKind;

impl ChatService {
    /// Ok carries the most constrained limit that admitted the request.
    pub(super) async fn check_limits(
        &self,
        input: &ChatInput,
    ) -> Result<Option<(LimitKind, Decision)>, (LimitKind, Decision)> {
        let caller = &input.caller;
        let mut checks: Vec<(LimitKind, String, Quota)> = Vec::with_capacity(3);
        if let Some(session) = &input.session {
            checks.push((LimitKind::Session, session.as_str().to_owned(), self.quotas.session));
        }
        if let Some(index) = caller.key_index {
            let visitor = caller
                .visitor_id
                .as_ref()
                .map(|id| format!("id:{id}"))
                .or_else(|| caller.visitor_ip.map(|ip| format!("ip:{}", ip_key(ip))));
            if let Some(visitor) = visitor {
                checks.push((LimitKind::Visitor, visitor, self.quotas.visitor));
            }
            checks.push((LimitKind::Caller, index.to_string(), self.quotas.caller));
        }
        let mut tightest: Option<(LimitKind, Decision)> = caller.ip_decision.map(|d| (LimitKind::Ip, d));
        for (kind, key, quota) in checks {
            let decision = self.store.rate_check(kind, &key, quota).await;
            if !decision.allowed {
                self.metrics.rate_limited.with_label_values(&[kind.as_str()]).inc();
                return Err((kind, decision));
            }
            if tightest.is_none_or(|(_, t)| decision.remaining < t.remaining) {
                tightest = Some((kind, decision));
            }
        }
        Ok(tightest)
    }
}
