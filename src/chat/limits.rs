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
        // A site's own limits replace the deployment's for its buckets.
        let own = input.site.settings.limits.as_ref();
        let session_quota = Quota {
            burst: own.and_then(|l| l.session_burst).unwrap_or(self.quotas.session.burst),
            per_minute: own.and_then(|l| l.session_per_minute).unwrap_or(self.quotas.session.per_minute),
        };
        let caller_quota = match own.and_then(|l| l.caller_per_minute) {
            Some(per_minute) => Quota { burst: per_minute, per_minute },
            None => self.quotas.caller,
        };
        if let Some(session) = &input.session {
            checks.push((LimitKind::Session, session.as_str().to_owned(), session_quota));
        }
        if let Some(key) = &caller.key {
            // A visitor of one site is a stranger to another: their buckets never meet.
            let site = input.site.session_prefix().unwrap_or_default();
            let visitor = caller
                .visitor_id
                .as_ref()
                .map(|id| format!("{site}id:{id}"))
                .or_else(|| caller.visitor_ip.map(|ip| format!("{site}ip:{}", ip_key(ip))));
            if let Some(visitor) = visitor {
                checks.push((LimitKind::Visitor, visitor, self.quotas.visitor));
            }
            checks.push((LimitKind::Caller, key.clone(), caller_quota));
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
