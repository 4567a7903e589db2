//! The per-site series: requests, fallbacks, handoffs, tokens and the knowledge base, each with a
//! `site` label. The deployment-wide series keep their labels (dashboards and alerts read them);
//! these stand beside them. Bounded: only registered sites are ever a label (a key of a deleted
//! site is refused before anything is counted); a deleted site's series stay until a restart.

use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};

pub struct SiteMetrics {
    pub requests: IntCounterVec,
    pub fallbacks: IntCounterVec,
    pub handoffs: IntCounterVec,
    pub tokens: IntCounterVec,
    pub kb_documents: IntGaugeVec,
    /// What each site's knowledge index holds in memory (`KnowledgeBase::memory_bytes`).
    pub kb_index_bytes: IntGaugeVec,
}

fn counters(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let metric = IntCounterVec::new(Opts::new(name, help), labels).unwrap_or_else(|e| panic!("metric {name}: {e}"));
    registry.register(Box::new(metric.clone())).unwrap_or_else(|e| panic!("register {name}: {e}"));
    metric
}

fn gauges(registry: &Registry, name: &str, help: &str) -> IntGaugeVec {
    let metric = IntGaugeVec::new(Opts::new(name, help), &["site"]).unwrap_or_else(|e| panic!("metric {name}: {e}"));
    registry.register(Box::new(metric.clone())).unwrap_or_else(|e| panic!("register {name}: {e}"));
    metric
}

impl SiteMetrics {
    pub(super) fn new(r: &Registry) -> Self {
        Self {
            requests: counters(
                r,
                "velochat_site_requests_total",
                "HTTP requests by site, route and status.",
                &["site", "route", "status"],
            ),
            fallbacks: counters(
                r,
                "velochat_site_fallbacks_total",
                "Static fallback replies by site and reason.",
                &["site", "reason"],
            ),
            handoffs: counters(
                r,
                "velochat_site_handoffs_total",
                "Handoff replies by site and reason.",
                &["site", "reason"],
            ),
            tokens: counters(
                r,
                "velochat_site_tokens_total",
                "Tokens OpenAI reported, by site and kind.",
                &["site", "kind"],
            ),
            kb_documents: gauges(r, "velochat_site_kb_documents", "Live documents in a site's knowledge index here."),
            kb_index_bytes: gauges(
                r,
                "velochat_kb_index_bytes",
                "Bytes a site's knowledge index holds in this replica's memory (index segments, passages, vectors).",
            ),
        }
    }
}
