//! Prometheus metrics, one registry per application (tests run several apps in one process).
//! Label sets are closed lists; every known series exists from start-up at zero.

use crate::domain::{FallbackReason, HandoffReason, Source};
use crate::rate::LimitKind;
use prometheus::{
    Encoder, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

pub const ROUTES: [&str; 11] = [
    "send_chat_message",
    "chat_completions",
    "models",
    "healthz",
    "readyz",
    "metrics",
    "openapi",
    "admin",
    "sessions",
    "other",
    "not_found",
];
const STATUSES: [&str; 11] = ["200", "204", "400", "401", "403", "404", "405", "413", "415", "429", "503"];
pub const DROP_REASONS: [&str; 5] = ["role", "empty", "unsigned", "overflow", "tokens"];
pub const TOKEN_KINDS: [&str; 3] = ["prompt", "completion", "cached"];
pub const BUDGET_PERIODS: [&str; 3] = ["monthly_tokens", "daily_tokens", "monthly_usd"];
const WEBHOOK_RESULTS: [&str; 2] = ["delivered", "failed"];
/// What one embeddings request for knowledge search came to.
pub const EMBEDDING_OUTCOMES: [&str; 5] = ["ok", "cached", "failed", "timeout", "circuit_open"];

const LATENCY_BUCKETS: &[f64] =
    &[0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 6.0, 8.0, 10.0, 12.0, 14.0];
/// Waiting for a person: seconds to an hour.
const AGENT_WAIT_BUCKETS: &[f64] = &[1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0];
const OVERHEAD_BUCKETS: &[f64] = &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0];

pub struct Metrics {
    registry: Registry,
    pub requests: IntCounterVec,
    /// The same, per site (`velochat_site_*`).
    pub sites: super::site_metrics::SiteMetrics,
    pub replies: IntCounterVec,
    pub fallbacks: IntCounterVec,
    pub handoffs: IntCounterVec,
    pub rate_limited: IntCounterVec,
    pub history_dropped: IntCounterVec,
    pub tokens: IntCounterVec,
    pub request_duration: HistogramVec,
    pub upstream_duration: Histogram,
    pub overhead: Histogram,
    pub first_response: Histogram,
    pub sessions: IntCounter,
    pub sessions_handed_off: IntCounter,
    pub user_messages: IntCounter,
    pub repeat_questions: IntCounter,
    pub circuit_state: IntGauge,
    pub budget_used_ratio: GaugeVec,
    pub upstream_attempts: IntCounterVec,
    pub events_dropped: IntCounter,
    pub webhook_deliveries: IntCounterVec,
    pub outbox_pending: IntGauge,
    pub redis_up: IntGauge,
    pub kill_switch: IntGauge,
    pub limiter_keys: IntGauge,
    pub kb_unanswered: IntCounter,
    pub kb_documents: IntGauge,
    pub kb_chunks: IntGauge,
    pub handoff_first_response: Histogram,
    pub handoff_sla_breaches: IntCounter,
    pub kb_suggestions: IntCounterVec,
    /// Embeddings requests for knowledge search by outcome (ok, cached, failed, timeout, circuit_open).
    pub kb_embeddings: IntCounterVec,
    pub spend_anomalies: IntCounter,
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let metric = IntCounterVec::new(Opts::new(name, help), labels).unwrap_or_else(|e| panic!("metric {name}: {e}"));
    registry.register(Box::new(metric.clone())).unwrap_or_else(|e| panic!("register {name}: {e}"));
    metric
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    let metric = IntCounter::new(name, help).unwrap_or_else(|e| panic!("metric {name}: {e}"));
    registry.register(Box::new(metric.clone())).unwrap_or_else(|e| panic!("register {name}: {e}"));
    metric
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let metric = IntGauge::new(name, help).unwrap_or_else(|e| panic!("metric {name}: {e}"));
    registry.register(Box::new(metric.clone())).unwrap_or_else(|e| panic!("register {name}: {e}"));
    metric
}

fn histogram(registry: &Registry, name: &str, help: &str, buckets: &[f64]) -> Histogram {
    let metric = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec()))
        .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    registry.register(Box::new(metric.clone())).unwrap_or_else(|e| panic!("register {name}: {e}"));
    metric
}

impl Metrics {
    /// Names and label sets are constants: a failure here is a programming error caught by any test.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        let r = Registry::new();
        let request_duration = HistogramVec::new(
            HistogramOpts::new("velochat_request_duration_seconds", "Time from request to response, by route.")
                .buckets(LATENCY_BUCKETS.to_vec()),
            &["route"],
        )
        .unwrap_or_else(|e| panic!("request_duration: {e}"));
        r.register(Box::new(request_duration.clone())).unwrap_or_else(|e| panic!("register: {e}"));
        let budget_used_ratio = GaugeVec::new(
            Opts::new("velochat_budget_used_ratio", "Share of each configured budget used in the current period."),
            &["period"],
        )
        .unwrap_or_else(|e| panic!("budget_used_ratio: {e}"));
        r.register(Box::new(budget_used_ratio.clone())).unwrap_or_else(|e| panic!("register: {e}"));
        let metrics = Self {
            sites: super::site_metrics::SiteMetrics::new(&r),
            requests: counter_vec(
                &r,
                "velochat_requests_total",
                "HTTP requests by route and status.",
                &["route", "status"],
            ),
            replies: counter_vec(&r, "velochat_replies_total", "Replies by source.", &["source"]),
            fallbacks: counter_vec(&r, "velochat_fallbacks_total", "Static fallback replies by reason.", &["reason"]),
            handoffs: counter_vec(&r, "velochat_handoffs_total", "Handoff replies by reason.", &["reason"]),
            rate_limited: counter_vec(
                &r,
                "velochat_rate_limited_total",
                "Requests refused by a rate limit.",
                &["limit"],
            ),
            history_dropped: counter_vec(
                &r,
                "velochat_history_turns_dropped_total",
                "History turns not sent, by reason.",
                &["reason"],
            ),
            tokens: counter_vec(&r, "velochat_tokens_total", "Tokens OpenAI reported, by kind.", &["kind"]),
            request_duration,
            upstream_duration: histogram(
                &r,
                "velochat_upstream_duration_seconds",
                "Time spent on upstream attempts per request.",
                LATENCY_BUCKETS,
            ),
            overhead: histogram(
                &r,
                "velochat_overhead_seconds",
                "Request time minus time waiting on OpenAI.",
                OVERHEAD_BUCKETS,
            ),
            first_response: histogram(
                &r,
                "velochat_first_response_seconds",
                "Latency of the first reply of each session.",
                LATENCY_BUCKETS,
            ),
            sessions: counter(&r, "velochat_sessions_total", "Sessions seen for the first time."),
            sessions_handed_off: counter(&r, "velochat_sessions_handed_off_total", "Sessions handed to a human."),
            user_messages: counter(&r, "velochat_user_messages_total", "Visitor messages answered."),
            repeat_questions: counter(
                &r,
                "velochat_repeat_questions_total",
                "Visitor messages repeating an earlier question.",
            ),
            circuit_state: gauge(&r, "velochat_circuit_state", "Circuit breaker: 0 closed, 1 open, 2 half-open."),
            budget_used_ratio,
            upstream_attempts: counter_vec(
                &r,
                "velochat_upstream_attempts_total",
                "Upstream attempts by outcome.",
                &["outcome"],
            ),
            events_dropped: counter(
                &r,
                "velochat_events_dropped_total",
                "Events not written because the queue was full or the store failed.",
            ),
            webhook_deliveries: counter_vec(
                &r,
                "velochat_webhook_deliveries_total",
                "Webhook delivery attempts by result.",
                &["result"],
            ),
            outbox_pending: gauge(&r, "velochat_outbox_pending", "Webhook events not yet delivered."),
            redis_up: gauge(
                &r,
                "velochat_redis_up",
                "1 when shared state (Redis) answers, 0 when degraded, -1 when not configured.",
            ),
            kill_switch: gauge(&r, "velochat_kill_switch", "1 while the kill switch holds the bot on static replies."),
            limiter_keys: gauge(&r, "velochat_rate_limiter_keys", "Keys tracked by in-process rate limiters."),
            kb_unanswered: counter(
                &r,
                "velochat_kb_unanswered_total",
                "Visitor questions the knowledge base had no passage for.",
            ),
            kb_documents: gauge(&r, "velochat_kb_documents", "Live documents in this replica's knowledge index."),
            kb_chunks: gauge(&r, "velochat_kb_chunks", "Chunks in this replica's knowledge index."),
            handoff_first_response: histogram(
                &r,
                "velochat_handoff_first_response_seconds",
                "From a handoff to the first agent message (handoffs the agent's own message made are not counted).",
                AGENT_WAIT_BUCKETS,
            ),
            handoff_sla_breaches: counter(
                &r,
                "velochat_handoff_sla_breaches_total",
                "Handoffs with no agent message within handoff.sla_ms.",
            ),
            kb_suggestions: counter_vec(
                &r,
                "velochat_kb_suggestions_total",
                "Knowledge-base suggestions drafted from agents' answers, and their decisions.",
                &["status"],
            ),
            kb_embeddings: counter_vec(
                &r,
                "velochat_kb_embeddings_total",
                "Embeddings for knowledge search: ok, cached (a recent question), failed, timeout, circuit_open.",
                &["outcome"],
            ),
            spend_anomalies: counter(
                &r,
                "velochat_spend_anomalies_total",
                "Spend anomaly alerts sent by this replica.",
            ),
            registry: r,
        };
        metrics.zero_known_series();
        metrics
    }

    fn zero_known_series(&self) {
        for route in ROUTES {
            self.request_duration.with_label_values(&[route]);
            for status in STATUSES {
                self.requests.with_label_values(&[route, status]);
            }
        }
        for source in Source::ALL {
            self.replies.with_label_values(&[source.as_str()]);
        }
        for reason in FallbackReason::ALL {
            self.fallbacks.with_label_values(&[reason.as_str()]);
        }
        for reason in HandoffReason::ALL {
            self.handoffs.with_label_values(&[reason.as_str()]);
        }
        for limit in LimitKind::ALL {
            self.rate_limited.with_label_values(&[limit.as_str()]);
        }
        for reason in DROP_REASONS {
            self.history_dropped.with_label_values(&[reason]);
        }
        for kind in TOKEN_KINDS {
            self.tokens.with_label_values(&[kind]);
        }
        for status in ["created", "approved", "rejected"] {
            self.kb_suggestions.with_label_values(&[status]);
        }
        for outcome in EMBEDDING_OUTCOMES {
            self.kb_embeddings.with_label_values(&[outcome]);
        }
        for period in BUDGET_PERIODS {
            self.budget_used_ratio.with_label_values(&[period]);
        }
        for outcome in ["success", "failure"] {
            self.upstream_attempts.with_label_values(&[outcome]);
        }
        for result in WEBHOOK_RESULTS {
            self.webhook_deliveries.with_label_values(&[result]);
        }
    }

    /// A status outside the pre-created list is still a bounded label: a three-digit code.
    pub fn record_request(&self, site: &str, route: &str, status: u16, seconds: f64) {
        let code = itoa_status(status);
        let status = std::str::from_utf8(&code).unwrap_or("000");
        self.requests.with_label_values(&[route, status]).inc();
        self.sites.requests.with_label_values(&[site, route, status]).inc();
        self.request_duration.with_label_values(&[route]).observe(seconds);
    }

    pub fn render(&self) -> String {
        let mut out = Vec::with_capacity(16 * 1024);
        let encoder = TextEncoder::new();
        if let Err(e) = encoder.encode(&self.registry.gather(), &mut out) {
            tracing::error!(error = %e, "metrics encoding failed");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

fn itoa_status(status: u16) -> [u8; 3] {
    let s = status.min(999);
    [b'0' + (s / 100) as u8, b'0' + (s / 10 % 10) as u8, b'0' + (s % 10) as u8]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_series_exists_at_zero_from_the_start() {
        let text = Metrics::new().render();
        for line in [
            "velochat_fallbacks_total{reason=\"circuit_open\"} 0",
            "velochat_replies_total{source=\"rule\"} 0",
            "velochat_rate_limited_total{limit=\"visitor\"} 0",
            "velochat_tokens_total{kind=\"cached\"} 0",
            "velochat_budget_used_ratio{period=\"monthly_usd\"} 0",
            "velochat_requests_total{route=\"send_chat_message\",status=\"429\"} 0",
            "velochat_circuit_state 0",
            "velochat_first_response_seconds_count 0",
        ] {
            assert!(text.contains(line), "missing {line}");
        }
    }

    #[test]
    fn requests_are_counted_by_route_and_status() {
        let metrics = Metrics::new();
        metrics.record_request("default", "send_chat_message", 200, 0.01);
        metrics.record_request("acme", "send_chat_message", 502, 0.01);
        let text = metrics.render();
        assert!(text.contains("velochat_requests_total{route=\"send_chat_message\",status=\"200\"} 1"));
        assert!(text.contains("velochat_requests_total{route=\"send_chat_message\",status=\"502\"} 1"));
    }
}
