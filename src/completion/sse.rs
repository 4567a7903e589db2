//! OpenAI's streamed chat completion: Server-Sent Events split off the upstream bytes and decoded
//! into the pieces a relay needs (text, finish reason, usage, an error, the end).

use super::wire::Usage;
use serde_json::Value;

/// Upstream bytes waiting for an event end are capped (API10: never trust an upstream's size).
const MAX_PENDING: usize = 1024 * 1024;

/// What one upstream SSE event carried.
#[derive(Debug)]
pub enum StreamPiece {
    Text(String),
    Finish(String),
    Usage(Usage),
    Error(String),
    Done,
}

/// The upstream sent more than `MAX_PENDING` bytes without ending an event.
#[derive(Debug)]
pub struct Oversized;

/// Turns chunks of upstream bytes into pieces, holding an unfinished event between chunks.
#[derive(Default)]
pub struct SseDecoder {
    pending: Vec<u8>,
}

impl SseDecoder {
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<StreamPiece>, Oversized> {
        self.pending.extend_from_slice(bytes);
        if self.pending.len() > MAX_PENDING {
            return Err(Oversized);
        }
        Ok(take_events(&mut self.pending).iter().flat_map(|data| parse_event(data)).collect())
    }
}

fn parse_event(data: &str) -> Vec<StreamPiece> {
    if data.trim() == "[DONE]" {
        return vec![StreamPiece::Done];
    }
    let Ok(value) = serde_json::from_str::<Value>(data) else {
        return vec![StreamPiece::Error("undecodable stream event".into())];
    };
    if let Some(error) = value.get("error") {
        let message =
            error.get("message").and_then(Value::as_str).unwrap_or("upstream error").chars().take(200).collect();
        return vec![StreamPiece::Error(message)];
    }
    let mut pieces = Vec::new();
    if let Some(choice) = value["choices"].get(0) {
        if let Some(text) = choice["delta"]["content"].as_str().filter(|t| !t.is_empty()) {
            pieces.push(StreamPiece::Text(text.to_owned()));
        }
        if let Some(finish) = choice["finish_reason"].as_str() {
            pieces.push(StreamPiece::Finish(finish.to_owned()));
        }
    }
    if let Some(usage) = value.get("usage").filter(|u| !u.is_null()) {
        if let Ok(usage) = serde_json::from_value(usage.clone()) {
            pieces.push(StreamPiece::Usage(usage));
        }
    }
    pieces
}

/// Where the first complete event ends (its blank line included): SSE allows LF, CRLF or CR line
/// ends, and gateways in front of OpenAI-compatible models use CRLF.
fn event_end(pending: &[u8]) -> Option<usize> {
    (0..pending.len()).find_map(|i| {
        let rest = &pending[i..];
        if rest.starts_with(b"\r\n\r\n") {
            Some(i + 4)
        } else if rest.starts_with(b"\n\n") || rest.starts_with(b"\r\r") {
            Some(i + 2)
        } else {
            None
        }
    })
}

/// Splits complete SSE events off `pending`, returning their `data:` payloads.
fn take_events(pending: &mut Vec<u8>) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(end) = event_end(pending) {
        let event: Vec<u8> = pending.drain(..end).collect();
        let text = String::from_utf8_lossy(&event).replace("\r\n", "\n").replace('\r', "\n");
        let data: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("data:")).map(str::trim_start).collect();
        if !data.is_empty() {
            out.push(data.join("\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{SseDecoder, StreamPiece};

    #[test]
    fn an_event_split_across_chunks_is_decoded_once_it_ends() {
        let mut decoder = SseDecoder::default();
        let first = decoder.push(b"data: {\"choices\":[{\"delta\":{\"content\":\"Hel").expect("small");
        assert!(first.is_empty());
        let rest = decoder.push(b"lo\"},\"finish_reason\":null}]}\n\ndata: [DONE]\n\n").expect("small");
        assert!(matches!(&rest[..], [StreamPiece::Text(t), StreamPiece::Done] if t == "Hello"), "{rest:?}");
    }

    #[test]
    fn events_ended_by_crlf_or_cr_are_decoded_like_lf_ones() {
        let mut decoder = SseDecoder::default();
        let crlf = decoder.push(b"data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\r\n\r\ndata: [DONE]\r\n\r\n");
        assert!(matches!(&crlf.expect("small")[..], [StreamPiece::Text(t), StreamPiece::Done] if t == "Hi"));
        let cr = SseDecoder::default().push(b"data: [DONE]\r\r").expect("small");
        assert!(matches!(&cr[..], [StreamPiece::Done]), "{cr:?}");
    }

    #[test]
    fn an_endless_event_is_refused() {
        let mut decoder = SseDecoder::default();
        assert!(decoder.push(&vec![b'a'; 2 * 1024 * 1024]).is_err());
    }
}
