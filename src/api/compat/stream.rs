//! `stream: true` on /v1/chat/completions: Server-Sent Events in OpenAI's chunk format, ending with
//! `data: [DONE]`. A reply decided before the first byte (rule, handoff, fallback) is streamed like
//! any other; a live stream is what the chat service's relay sends, mapped to chunks here.

use super::reply::{completion_id, fingerprint, usage_json, velochat_fields};
use super::CompatRequest;
use crate::api::chat::reply_log;
use crate::api::error::{rate_limit_headers, ApiError};
use crate::api::middleware::{ReplyLog, RequestContext};
use crate::chat::{ChatService, Relayed, Reply, StreamStart};
use crate::domain::Source;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// The fields every chunk of one completion repeats.
struct Chunks {
    id: String,
    model: String,
    created: i64,
    fingerprint: Option<&'static str>,
    request_id: String,
    include_usage: bool,
}

fn event(value: Value) -> Event {
    Event::default().data(value.to_string())
}

impl Chunks {
    fn chunk(&self, delta: Value, finish: Option<&str>) -> Value {
        json!({
            "id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
            "system_fingerprint": self.fingerprint,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        })
    }

    /// The last chunk with the reply's fields, the usage chunk when asked for, and `[DONE]`.
    fn closing(&self, reply: &Reply, mut last: Value, events: &mut Vec<Event>) {
        last["velochat"] = json!(velochat_fields(reply, &self.request_id));
        events.push(event(last));
        if self.include_usage {
            events.push(event(json!({
                "id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                "system_fingerprint": self.fingerprint, "choices": [], "usage": usage_json(reply),
            })));
        }
    }

    /// A reply decided before the first byte: all of it in one content chunk.
    fn decided(&self, reply: &Reply) -> Vec<Event> {
        let mut first = self.chunk(json!({"role": "assistant", "content": reply.text}), None);
        first["id"] = json!(completion_id(reply, &self.request_id));
        first["velochat"] = json!(velochat_fields(reply, &self.request_id));
        let mut events = vec![event(first)];
        let last = self.chunk(json!({}), Some(if reply.truncated { "length" } else { "stop" }));
        self.closing(reply, last, &mut events);
        events.push(Event::default().data("[DONE]"));
        events
    }

    /// What one piece of a relayed stream becomes.
    fn relayed(&self, piece: Relayed) -> Vec<Event> {
        let end = match piece {
            Relayed::Text(text) => return vec![event(self.chunk(json!({"content": text}), None))],
            Relayed::End(end) => end,
        };
        let mut events = Vec::new();
        if let Some(message) = end.error {
            events.push(event(
                json!({"error": {"message": message, "type": "upstream_error", "code": "stream_interrupted"}}),
            ));
        } else if end.filtered {
            events.push(event(self.chunk(json!({}), Some("content_filter"))));
        } else {
            let last = self.chunk(json!({}), Some(&end.finish_reason));
            self.closing(&end.reply, last, &mut events);
        }
        events.push(Event::default().data("[DONE]"));
        events
    }
}

pub async fn respond(
    chat: Arc<ChatService>,
    ctx: RequestContext,
    request: CompatRequest,
) -> Result<Response, ApiError> {
    let start = chat.chat_stream(request.input).await?;
    let (log, limit, fingerprint) = match &start {
        StreamStart::Decided(reply) => (reply_log(reply), reply.limit, fingerprint(reply)),
        StreamStart::Live(live) => {
            (ReplyLog { source: Source::Model.as_str(), ..Default::default() }, live.limit(), None)
        }
    };
    let chunks = Chunks {
        id: format!("chatcmpl-{}", ctx.request_id.replace('-', "")),
        model: request.model,
        created: chrono::Utc::now().timestamp(),
        fingerprint,
        request_id: ctx.request_id.clone(),
        include_usage: request.include_usage,
    };
    let events = match start {
        StreamStart::Decided(reply) => futures_util::stream::iter(chunks.decided(&reply)).boxed(),
        StreamStart::Live(live) => {
            let opening = event(chunks.chunk(json!({"role": "assistant", "content": ""}), None));
            // The relay runs on its own: it settles the reply even when the client goes away.
            let (tx, rx) = mpsc::channel::<Relayed>(64);
            tokio::spawn(async move { chat.relay(*live, tx).await });
            let relayed = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|p| (p, rx)) })
                .flat_map(move |piece| futures_util::stream::iter(chunks.relayed(piece)));
            futures_util::stream::once(async { opening }).chain(relayed).boxed()
        }
    };
    let events = events.map(Ok::<_, std::convert::Infallible>);
    let mut response = Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))).into_response();
    if let Some((_, decision)) = &limit {
        rate_limit_headers(&mut response, decision);
    }
    response.extensions_mut().insert(log);
    Ok(response)
}

/// One Server-Sent Event of a streamed completion (`"stream": true`).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // documents the stream's shape; `Chunks` writes the bytes
pub struct StreamEvent {
    /// A `chat.completion.chunk` as JSON (the last one carries `usage` and `velochat`), then `[DONE]`.
    pub data: String,
    pub event: Option<String>,
}
