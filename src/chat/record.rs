//! After a reply: metrics, the event log, and an alerted spend anomaly kept for the review.

use super::{ChatInput, ChatService, Reply};
use crate::domain::Source;
use crate::store::EventRecord;

impl ChatService {
    pub(super) fn record_reply(
        &self,
        input: &ChatInput,
        reply: &Reply,
        first_reply: bool,
        new_session: bool,
        cost_micros: u64,
    ) {
        let m = &self.metrics;
        let latency = input.deadline.started().elapsed();
        let site = input.site.id.as_str();
        m.replies.with_label_values(&[reply.source.as_str()]).inc();
        if let Some(reason) = reply.fallback_reason {
            m.fallbacks.with_label_values(&[reason.as_str()]).inc();
            m.sites.fallbacks.with_label_values(&[site, reason.as_str()]).inc();
        }
        if let (Source::Handoff, Some(reason)) = (reply.source, reply.handoff_reason) {
            m.handoffs.with_label_values(&[reason.as_str()]).inc();
            m.sites.handoffs.with_label_values(&[site, reason.as_str()]).inc();
        }
        let usage = &reply.usage;
        if usage.prompt_tokens + usage.completion_tokens > 0 {
            let cached = usage.cached_tokens();
            for (kind, tokens) in
                [("prompt", usage.prompt_tokens), ("completion", usage.completion_tokens), ("cached", cached)]
            {
                m.tokens.with_label_values(&[kind]).inc_by(tokens);
                m.sites.tokens.with_label_values(&[site, kind]).inc_by(tokens);
            }
        }
        let upstream = std::time::Duration::from_millis(reply.upstream_ms);
        m.overhead.observe(latency.saturating_sub(upstream).as_secs_f64());
        if new_session {
            m.sessions.inc();
        }
        if first_reply {
            m.first_response.observe(latency.as_secs_f64());
        }
        if reply.repeat_question {
            m.repeat_questions.inc();
        }
        let session_hash = input.session.as_ref().map(|s| self.session_hash(s.as_str())).unwrap_or_default();
        self.events.record(EventRecord {
            ts_ms: chrono::Utc::now().timestamp_millis(),
            request_id: input.request_id.clone(),
            session_hash,
            route: input.route.as_str().to_owned(),
            intent: reply.intent.clone(),
            source: reply.source.as_str().to_owned(),
            fallback_reason: reply.fallback_reason.map(|r| r.as_str().to_owned()),
            handoff_reason: reply.handoff_reason.map(|r| r.as_str().to_owned()),
            latency_ms: latency.as_millis() as i64,
            upstream_ms: reply.upstream_ms as i64,
            prompt_tokens: usage.prompt_tokens as i64,
            completion_tokens: usage.completion_tokens as i64,
            cached_tokens: usage.cached_tokens() as i64,
            cost_usd: cost_micros as f64 / 1e6,
            confidence: reply.confidence,
            repeat_question: reply.repeat_question,
            first_reply,
            model: reply.model.clone(),
            site: input.site.stored_id(),
        });
    }

    /// Keeps an alerted spend anomaly for the weekly review (in the background: the reply waits
    /// on nothing).
    pub(super) fn keep_anomaly(&self, anomaly: crate::budget::SpendAnomaly) {
        let record = crate::store::durable::AnomalyRecord {
            hour: anomaly.hour,
            at_ms: chrono::Utc::now().timestamp_millis(),
            last_hour_tokens: anomaly.last_hour_tokens as i64,
            baseline_tokens: anomaly.baseline_hourly_tokens as i64,
            factor: anomaly.factor,
        };
        let durable = self.durable.clone();
        tokio::spawn(async move {
            if let Err(e) = durable.record_anomaly(&record).await {
                tracing::warn!(error = %e, "spend anomaly not kept for the review");
            }
        });
    }
}
