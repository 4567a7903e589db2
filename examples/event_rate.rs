//! How many events a second one replica's event writer puts into the database (issue 18's target:
//! ≥ 5,000/s into the local PostgreSQL). Used by bench/events; not part of the service.
//!   cargo run --profile fastrel --example event_rate -- postgres://postgres@127.0.0.1:5432/db 100000
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Instant;
use velochat::store::EventRecord;
use velochat::telemetry::{EventSink, Metrics};

fn event(n: usize) -> EventRecord {
    EventRecord {
        ts_ms: 1_764_000_000_000 + n as i64,
        request_id: format!("rate-{n}"),
        session_hash: format!("s{}", n / 5),
        route: "send_chat_message".into(),
        intent: (n % 3 == 0).then(|| "order".into()),
        source: "model".into(),
        fallback_reason: None,
        handoff_reason: (n % 50 == 0).then(|| "intent".into()),
        latency_ms: 12,
        upstream_ms: 10,
        prompt_tokens: 412,
        completion_tokens: 38,
        cached_tokens: 0,
        cost_usd: 0.000_1,
        confidence: (n % 50 != 0).then_some(0.9),
        repeat_question: false,
        first_reply: n % 5 == 0,
        model: Some("gpt-4o-mini".into()),
        // Every tenth event another site's: both ways of the column.
        site: (n % 10 == 0).then(|| "acme".into()),
    }
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let url = args.next().expect("a DATABASE_URL");
    let count: usize = args.next().map(|n| n.parse().expect("a count")).unwrap_or(100_000);
    let store = velochat::store::durable::connect(&url).await.expect("the database");
    let metrics = Arc::new(Metrics::new());
    let stop = tokio_util::sync::CancellationToken::new();
    let (sink, writer) = EventSink::start(store.clone(), count, metrics.clone(), stop.clone());
    let started = Instant::now();
    for n in 0..count {
        sink.record(event(n));
    }
    stop.cancel();
    writer.await.expect("the writer ends");
    let seconds = started.elapsed().as_secs_f64();
    let written = store.events_since(0).await.expect("read back").len();
    println!(
        "{count} events recorded, {written} rows written in {seconds:.2} s: {:.0} events/s, {} dropped",
        written as f64 / seconds,
        metrics.events_dropped.get()
    );
}
