//! Streaming replies (the OpenAI-compatible route): everything before the first byte goes through
//! the same flow and ladder as a plain reply; once the upstream stream has started, the HTTP edge
//! relays it and hands the outcome back here to be settled.

use super::chat::Prepared;
use super::{ChatError, ChatInput, Orchestrator, Reply};
use crate::completion::wire::Usage;
use crate::domain::{FallbackReason, Source};
use std::time::Duration;

pub enum StreamStart {
    /// Decided before the first byte (rule, handoff, fallback): sent as a normal reply.
    Decided(Box<Reply>),
    Live(Box<LiveStream>),
}

/// An upstream stream that has answered 200.
pub struct LiveStream {
    pub response: crate::completion::client::UpstreamBody,
    pub meta: StreamMeta,
}

/// What is needed to settle a stream once it has ended.
pub struct StreamMeta {
    pub input: ChatInput,
    pub prepared: Prepared,
    pub model: String,
    pub prompt_tokens: usize,
    pub attempts: u32,
    pub time_to_headers: Duration,
    /// The knowledge base's passages in the prompt.
    pub grounding: crate::knowledge::Grounding,
}

/// How a relayed stream ended.
pub struct StreamEnd {
    pub text: String,
    pub usage: Option<Usage>,
    pub finish_reason: Option<String>,
    /// The stream was cut (leak blocked, upstream broke, timed out).
    pub problem: Option<FallbackReason>,
    pub upstream_time: Duration,
}

impl Orchestrator {
    pub async fn chat_stream(&self, input: ChatInput) -> Result<StreamStart, ChatError> {
        let mut prepared = self.prepare(&input).await?;
        if let Some(reply) = prepared.decided.take() {
            return Ok(StreamStart::Decided(Box::new(self.conclude(&input, &prepared, reply).await)));
        }
        let counter = self.tokenizer.get().await;
        let grounding = self.grounding_for(&input, &prepared, &counter).await;
        if let Some(reason) = self.model_gate().await {
            let mut reply = self.without_model(&input, &prepared, &grounding, reason);
            if prepared.handoff_offered {
                self.offer_person(&input, &mut reply);
            }
            return Ok(StreamStart::Decided(Box::new(self.conclude(&input, &prepared, reply).await)));
        }
        if grounding.not_covered {
            if let Some(reply) = self.not_covered_reply(&input, &prepared) {
                return Ok(StreamStart::Decided(Box::new(self.conclude(&input, &prepared, reply).await)));
            }
        }
        let addendum = prepared.addendum.as_deref();
        let (messages, prompt_tokens) =
            self.prompt_messages(&counter, &input, &prepared.turns, None, &grounding, addendum);
        let safety = self.safety_identifier(&input);
        let primary_model = self.primary_model(&input);
        let run =
            self.ladder
                .run(&input.deadline, |endpoint, is_primary, timeout, cut| {
                    let model = if is_primary { primary_model.to_owned() } else { endpoint.model.clone() };
                    // Built once and kept: a stream is one request of many, and its model name moves on.
                    let body = self.request_body(&input, &messages, &model, safety.as_deref(), true);
                    async move {
                        endpoint.start_stream(|| body.clone(), timeout, cut).await.map(|response| (response, model))
                    }
                })
                .await;
        self.count_attempts(run.attempts, run.result.is_ok());
        drop(messages);
        match run.result {
            Ok((response, model)) => Ok(StreamStart::Live(Box::new(LiveStream {
                response,
                meta: StreamMeta {
                    input,
                    prepared,
                    model,
                    prompt_tokens,
                    attempts: run.attempts,
                    time_to_headers: run.upstream_time,
                    grounding,
                },
            }))),
            Err(reason) => {
                let mut reply = self.without_model(&input, &prepared, &grounding, reason);
                if prepared.handoff_offered {
                    self.offer_person(&input, &mut reply);
                }
                reply.attempts = run.attempts;
                reply.upstream_ms = run.upstream_time.as_millis() as u64;
                Ok(StreamStart::Decided(Box::new(self.conclude(&input, &prepared, reply).await)))
            }
        }
    }

    /// Settles a relayed stream: usage (estimated with the tokenizer when the upstream sent none),
    /// budget, metrics and the event log.
    pub async fn finish_stream(&self, meta: StreamMeta, end: StreamEnd) -> Reply {
        let StreamMeta { input, prepared, model, prompt_tokens, attempts, time_to_headers, grounding } = meta;
        let counter = self.tokenizer.get().await;
        let usage = end.usage.unwrap_or_else(|| {
            let completion = counter.text(&end.text) as u64;
            tracing::warn!("streamed reply without usage: booking the tokenizer's estimate");
            Usage {
                prompt_tokens: prompt_tokens as u64,
                completion_tokens: completion,
                total_tokens: prompt_tokens as u64 + completion,
                prompt_tokens_details: None,
            }
        });
        let upstream = time_to_headers + end.upstream_time;
        self.metrics.upstream_duration.observe(upstream.as_secs_f64());
        let mut reply = match end.problem {
            None => {
                let mut reply = Reply::new(end.text, Source::Model);
                reply.confidence = Some(if grounding.not_covered { 0.0 } else { 1.0 });
                reply.truncated = end.finish_reason.as_deref() == Some("length");
                reply.sources = grounding.sources;
                reply.not_covered = grounding.not_covered;
                reply
            }
            Some(reason) => self.fallback_reply(&input, prepared.intent.as_deref(), reason),
        };
        reply.intent = prepared.intent.clone();
        reply.model = Some(model);
        reply.usage = usage;
        reply.attempts = attempts;
        reply.upstream_ms = upstream.as_millis() as u64;
        self.conclude(&input, &prepared, reply).await
    }
}
