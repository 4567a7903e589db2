//! Streaming replies (the OpenAI-compatible route): everything before the first byte goes through
//! the same flow and ladder as a plain reply; once the upstream stream has started, `relay` reads
//! it through the streaming output filter, sends the clean text on, and settles the outcome. A
//! failure after the first byte ends with an error, a silent upstream is cut after the
//! per-attempt timeout — never a hang.

use super::flow::Prepared;
use super::{ChatError, ChatInput, ChatService, Reply};
use crate::completion::sse::{SseDecoder, StreamPiece};
use crate::completion::wire::Usage;
use crate::domain::{FallbackReason, Source};
use crate::guard::stream_filter::StreamFilter;
use crate::rate::Decision;
use crate::store::LimitKind;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

pub enum StreamStart {
    /// Decided before the first byte (rule, handoff, fallback): sent as a normal reply.
    Decided(Box<Reply>),
    Live(Box<LiveStream>),
}

/// An upstream stream that has answered 200.
pub struct LiveStream {
    response: crate::completion::client::UpstreamBody,
    meta: StreamMeta,
}

impl LiveStream {
    /// The rate limit the message was counted against (for the response's headers).
    pub fn limit(&self) -> Option<(LimitKind, Decision)> {
        self.meta.prepared.limit
    }
}

/// What a relay sends on: clean text as it comes, then how the stream ended.
pub enum Relayed {
    Text(String),
    End(Box<RelayEnd>),
}

pub struct RelayEnd {
    /// The settled reply (a fallback when the stream was cut).
    pub reply: Reply,
    /// The upstream broke off: what to tell the client instead of a last chunk.
    pub error: Option<String>,
    /// The output filter or the upstream's content filter stopped the text.
    pub filtered: bool,
    /// The upstream's finish reason (`stop` when it gave none).
    pub finish_reason: String,
}

/// What is needed to settle a stream once it has ended.
struct StreamMeta {
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
struct StreamEnd {
    pub text: String,
    pub usage: Option<Usage>,
    pub finish_reason: Option<String>,
    /// The stream was cut (leak blocked, upstream broke, timed out).
    pub problem: Option<FallbackReason>,
    pub upstream_time: Duration,
}

impl ChatService {
    pub async fn chat_stream(&self, input: ChatInput) -> Result<StreamStart, ChatError> {
        let mut prepared = self.prepare(&input).await?;
        if let Some(reply) = prepared.decided.take() {
            return Ok(StreamStart::Decided(Box::new(self.conclude(&input, &prepared, reply).await)));
        }
        let counter = self.tokenizer.get().await;
        let grounding = self.grounding_for(&input, &prepared, &counter).await;
        if let Some(reason) = self.model_gate(&input.site).await {
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
    async fn finish_stream(&self, meta: StreamMeta, end: StreamEnd) -> Reply {
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

    /// Reads the upstream stream to its end (or the client's going away: `out` closed), sending
    /// the filtered text on, then the settled outcome.
    pub async fn relay(&self, live: LiveStream, out: mpsc::Sender<Relayed>) {
        let LiveStream { mut response, meta } = live;
        let idle = Duration::from_millis(self.settings.openai.timeout_ms);
        let started = Instant::now();
        let mut filter =
            StreamFilter::new(&self.output).with_hosts(meta.input.site.settings.allowed_link_hosts.as_deref());
        let mut decoder = SseDecoder::default();
        let mut end = StreamEnd {
            text: String::new(),
            usage: None,
            finish_reason: None,
            problem: None,
            upstream_time: Duration::ZERO,
        };
        let mut error: Option<String> = None;
        let mut client_gone = false;
        let mut upstream_done = false;
        while !upstream_done && !client_gone && error.is_none() && end.problem.is_none() {
            let bytes = match tokio::time::timeout(idle, response.chunk()).await {
                Err(_) => {
                    end.problem = Some(FallbackReason::UpstreamTimeout);
                    error = Some("the upstream stopped sending".into());
                    break;
                }
                Ok(Err(_)) => {
                    end.problem = Some(FallbackReason::UpstreamError);
                    error = Some("the upstream connection broke".into());
                    break;
                }
                Ok(Ok(None)) => break,
                Ok(Ok(Some(bytes))) => bytes,
            };
            let Ok(pieces) = decoder.push(&bytes) else {
                end.problem = Some(FallbackReason::UpstreamInvalid);
                error = Some("the upstream sent an oversized event".into());
                break;
            };
            for piece in pieces {
                match piece {
                    StreamPiece::Text(text) => match filter.push(&text) {
                        Ok(clean) => {
                            end.text.push_str(&clean);
                            if !clean.is_empty() && out.send(Relayed::Text(clean)).await.is_err() {
                                client_gone = true;
                            }
                        }
                        Err(_) => end.problem = Some(FallbackReason::LeakBlocked),
                    },
                    StreamPiece::Finish(reason) => end.finish_reason = Some(reason),
                    StreamPiece::Usage(usage) => end.usage = Some(usage),
                    StreamPiece::Error(message) => {
                        end.problem = Some(FallbackReason::UpstreamError);
                        error = Some(message);
                    }
                    StreamPiece::Done => upstream_done = true,
                }
            }
        }
        if end.problem.is_none() && !client_gone {
            match filter.finish() {
                Ok(rest) if !rest.is_empty() => {
                    end.text.push_str(&rest);
                    client_gone = out.send(Relayed::Text(rest)).await.is_err();
                }
                Ok(_) => {}
                Err(_) => end.problem = Some(FallbackReason::LeakBlocked),
            }
        }
        if end.finish_reason.as_deref() == Some("content_filter") {
            end.problem = Some(FallbackReason::ContentFilter);
        }
        end.upstream_time = started.elapsed();
        let filtered = matches!(end.problem, Some(FallbackReason::LeakBlocked | FallbackReason::ContentFilter));
        let finish_reason = end.finish_reason.clone().unwrap_or_else(|| "stop".into());
        drop(response);
        let reply = self.finish_stream(meta, end).await;
        if !client_gone {
            let _ = out.send(Relayed::End(Box::new(RelayEnd { reply, error, filtered, finish_reason }))).await;
        }
    }
}
