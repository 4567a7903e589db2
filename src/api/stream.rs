//! `stream: true` on /v1/chat/completions: Server-Sent Events in OpenAI's chunk format, ending with
//! `data: [DONE]`. A reply decided before the first byte (rule, handoff, fallback) is streamed like
//! any other; a live upstream stream is relayed through the streaming output filter; a failure after
//! the first byte ends the stream with an error event, and a silent upstream is cut after the
//! per-attempt timeout — never a hang.

use super::chat::reply_log;
use super::compat::{completion_id, fingerprint, usage_json, velochat_fields, CompatRequest};
use super::error::{rate_limit_headers, ApiError};
use super::middleware::{ReplyLog, RequestContext};
use crate::domain::{FallbackReason, Source};
use crate::guard::stream_filter::StreamFilter;
use crate::orchestrator::{LiveStream, Orchestrator, Reply, StreamEnd, StreamStart};
use crate::state::AppState;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Upstream bytes waiting for an event end are capped (API10: never trust an upstream's size).
const MAX_PENDING: usize = 1024 * 1024;

struct Chunks {
    id: String,
    model: String,
    created: i64,
    fingerprint: Option<&'static str>,
    tx: mpsc::Sender<Event>,
}

impl Chunks {
    fn chunk(&self, delta: Value, finish: Option<&str>) -> Value {
        json!({
            "id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
            "system_fingerprint": self.fingerprint,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        })
    }

    /// False once the client has gone away.
    async fn send(&self, value: Value) -> bool {
        self.tx.send(Event::default().data(value.to_string())).await.is_ok()
    }

    async fn done(&self) {
        let _ = self.tx.send(Event::default().data("[DONE]")).await;
    }

    async fn usage(&self, reply: &Reply) {
        let value = json!({
            "id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
            "system_fingerprint": self.fingerprint, "choices": [], "usage": usage_json(reply),
        });
        self.send(value).await;
    }
}

pub async fn respond(state: AppState, ctx: RequestContext, request: CompatRequest) -> Result<Response, ApiError> {
    let orchestrator = state.orchestrator.clone();
    let include_usage = request.include_usage;
    let model = request.model.clone();
    let start = orchestrator.chat_stream(request.input).await?;
    let (tx, rx) = mpsc::channel::<Event>(64);
    let (log, limit) = match &start {
        StreamStart::Decided(reply) => (reply_log(reply), reply.limit),
        StreamStart::Live(live) => {
            (ReplyLog { source: Source::Model.as_str(), ..Default::default() }, live.meta.prepared.limit)
        }
    };
    let fingerprint = match &start {
        StreamStart::Decided(reply) => fingerprint(reply),
        StreamStart::Live(_) => None,
    };
    let chunks = Chunks {
        id: format!("chatcmpl-{}", ctx.request_id.replace('-', "")),
        model,
        created: chrono::Utc::now().timestamp(),
        fingerprint,
        tx,
    };
    let request_id = ctx.request_id.clone();
    match start {
        StreamStart::Decided(reply) => {
            tokio::spawn(async move { send_decided(chunks, *reply, include_usage, &request_id).await });
        }
        StreamStart::Live(live) => {
            let idle = Duration::from_millis(state.settings.openai.timeout_ms);
            tokio::spawn(relay(orchestrator, *live, chunks, include_usage, idle));
        }
    }
    let events = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|event| (Ok::<_, std::convert::Infallible>(event), rx))
    });
    let mut response = Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))).into_response();
    if let Some((_, decision)) = &limit {
        rate_limit_headers(&mut response, decision);
    }
    response.extensions_mut().insert(log);
    Ok(response)
}

async fn send_decided(chunks: Chunks, reply: Reply, include_usage: bool, request_id: &str) {
    let mut first = chunks.chunk(json!({"role": "assistant", "content": reply.text}), None);
    first["id"] = json!(completion_id(&reply, request_id));
    first["velochat"] = json!(velochat_fields(&reply, request_id));
    if chunks.send(first).await {
        chunks.send(chunks.chunk(json!({}), Some(if reply.truncated { "length" } else { "stop" }))).await;
        if include_usage {
            chunks.usage(&reply).await;
        }
        chunks.done().await;
    }
}

/// What one upstream SSE event carried.
enum Piece {
    Text(String),
    Finish(String),
    Usage(crate::completion::wire::Usage),
    Error(String),
    Done,
}

fn parse_event(data: &str) -> Vec<Piece> {
    if data.trim() == "[DONE]" {
        return vec![Piece::Done];
    }
    let Ok(value) = serde_json::from_str::<Value>(data) else {
        return vec![Piece::Error("undecodable stream event".into())];
    };
    if let Some(error) = value.get("error") {
        let message =
            error.get("message").and_then(Value::as_str).unwrap_or("upstream error").chars().take(200).collect();
        return vec![Piece::Error(message)];
    }
    let mut pieces = Vec::new();
    if let Some(choice) = value["choices"].get(0) {
        if let Some(text) = choice["delta"]["content"].as_str().filter(|t| !t.is_empty()) {
            pieces.push(Piece::Text(text.to_owned()));
        }
        if let Some(finish) = choice["finish_reason"].as_str() {
            pieces.push(Piece::Finish(finish.to_owned()));
        }
    }
    if let Some(usage) = value.get("usage").filter(|u| !u.is_null()) {
        if let Ok(usage) = serde_json::from_value(usage.clone()) {
            pieces.push(Piece::Usage(usage));
        }
    }
    pieces
}

/// Splits complete SSE events off `pending`, returning their `data:` payloads.
fn take_events(pending: &mut Vec<u8>) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(end) = pending.windows(2).position(|w| w == b"\n\n") {
        let event: Vec<u8> = pending.drain(..end + 2).collect();
        let text = String::from_utf8_lossy(&event).replace("\r\n", "\n");
        let data: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("data:")).map(str::trim_start).collect();
        if !data.is_empty() {
            out.push(data.join("\n"));
        }
    }
    out
}

async fn relay(orchestrator: Arc<Orchestrator>, live: LiveStream, chunks: Chunks, include_usage: bool, idle: Duration) {
    let LiveStream { mut response, meta } = live;
    let request_id = meta.input.request_id.clone();
    let started = Instant::now();
    let mut filter = StreamFilter::new(orchestrator.output());
    let mut end = StreamEnd {
        text: String::new(),
        usage: None,
        finish_reason: None,
        problem: None,
        upstream_time: Duration::ZERO,
    };
    let mut error: Option<String> = None;
    let mut client_gone = !chunks.send(chunks.chunk(json!({"role": "assistant", "content": ""}), None)).await;
    let mut pending = Vec::new();
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
        pending.extend_from_slice(&bytes);
        if pending.len() > MAX_PENDING {
            end.problem = Some(FallbackReason::UpstreamInvalid);
            error = Some("the upstream sent an oversized event".into());
            break;
        }
        for data in take_events(&mut pending) {
            for piece in parse_event(&data) {
                match piece {
                    Piece::Text(text) => match filter.push(&text) {
                        Ok(clean) => {
                            end.text.push_str(&clean);
                            if !clean.is_empty() && !chunks.send(chunks.chunk(json!({"content": clean}), None)).await {
                                client_gone = true;
                            }
                        }
                        Err(_) => end.problem = Some(FallbackReason::LeakBlocked),
                    },
                    Piece::Finish(reason) => end.finish_reason = Some(reason),
                    Piece::Usage(usage) => end.usage = Some(usage),
                    Piece::Error(message) => {
                        end.problem = Some(FallbackReason::UpstreamError);
                        error = Some(message);
                    }
                    Piece::Done => upstream_done = true,
                }
            }
        }
    }
    if end.problem.is_none() && !client_gone {
        match filter.finish() {
            Ok(rest) if !rest.is_empty() => {
                end.text.push_str(&rest);
                chunks.send(chunks.chunk(json!({"content": rest}), None)).await;
            }
            Ok(_) => {}
            Err(_) => end.problem = Some(FallbackReason::LeakBlocked),
        }
    }
    if end.finish_reason.as_deref() == Some("content_filter") {
        end.problem = Some(FallbackReason::ContentFilter);
    }
    end.upstream_time = started.elapsed();
    let problem = end.problem;
    let finish = end.finish_reason.clone().unwrap_or_else(|| "stop".into());
    drop(response);
    let reply = orchestrator.finish_stream(meta, end).await;
    if client_gone {
        return;
    }
    match (error, problem) {
        (Some(message), _) => {
            chunks
                .send(json!({"error": {"message": message, "type": "upstream_error", "code": "stream_interrupted"}}))
                .await;
        }
        (None, Some(FallbackReason::LeakBlocked | FallbackReason::ContentFilter)) => {
            chunks.send(chunks.chunk(json!({}), Some("content_filter"))).await;
        }
        _ => {
            let mut last = chunks.chunk(json!({}), Some(&finish));
            last["velochat"] = json!(velochat_fields(&reply, &request_id));
            chunks.send(last).await;
            if include_usage {
                chunks.usage(&reply).await;
            }
        }
    }
    chunks.done().await;
}
