//! The weekly review: volume, the three seed metrics, where the bot struggles (by intent), fallback
//! reasons, and tokens and cost by intent — computed from the event log — then the human loop
//! (waits for a person, SLA breaches, suggestions), unanswered questions and spend anomalies.

mod human_loop;
mod service;
mod unanswered;

pub use service::{Overview, Review};
pub use unanswered::UnansweredGroup;

use crate::config::Settings;
use crate::store::durable::SiteScope;
use crate::store::{DurableStore, EventRecord};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

/// A review window that is not a duration like `7d`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidSince {
    #[error("`{0}` is not a duration like 7d, 24h or 30m")]
    NotADuration(String),
    #[error("`{0}` is out of range")]
    OutOfRange(String),
}

/// `7d`, `24h`, `90m`, `2w`.
pub fn parse_since(text: &str) -> Result<Duration, InvalidSince> {
    let text = text.trim();
    let (number, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()));
    let n: u64 = number.parse().map_err(|_| InvalidSince::NotADuration(text.to_owned()))?;
    let seconds = match unit {
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(InvalidSince::NotADuration(text.to_owned())),
    };
    if n == 0 || n > 3650 * 24 * 60 {
        return Err(InvalidSince::OutOfRange(text.to_owned()));
    }
    Ok(Duration::from_secs(n * seconds))
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Percentiles {
    pub p50: Option<i64>,
    pub p95: Option<i64>,
    pub p99: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IntentFigures {
    pub intent: String,
    pub replies: u64,
    pub low_confidence: u64,
    pub fallbacks: u64,
    pub handoffs: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cost_usd: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub since: String,
    pub until: String,
    pub replies: u64,
    pub sessions: u64,
    /// First reply of each session, in ms.
    pub first_response_ms: Percentiles,
    /// Sessions that never reached a handoff, over all sessions.
    pub solved_without_handoff_rate: Option<f64>,
    /// Messages repeating an earlier question, over all messages.
    pub repeat_question_rate: Option<f64>,
    pub latency_ms: Percentiles,
    pub by_source: BTreeMap<String, u64>,
    pub fallback_reasons: BTreeMap<String, u64>,
    pub handoff_reasons: BTreeMap<String, u64>,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cached_tokens: u64,
    pub cost_usd: f64,
    /// Every intent (and `(none)`), busiest first: where the bot struggles and what it costs.
    pub intents: Vec<IntentFigures>,
    /// Questions the help content did not cover, near-duplicates grouped, most asked first.
    pub unanswered_questions: Vec<UnansweredGroup>,
    /// Handoffs started in the window: time to the first agent message, SLA breaches.
    pub handoffs: human_loop::HandoffFigures,
    /// Suggestions drafted from agents' answers, and decided, in the window.
    pub suggestions: human_loop::SuggestionFigures,
    pub spend_anomalies: Vec<human_loop::AnomalyEntry>,
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[i64], p: f64) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted.get(rank - 1).copied()
}

fn percentiles(mut values: Vec<i64>) -> Percentiles {
    values.sort_unstable();
    Percentiles { p50: percentile(&values, 50.0), p95: percentile(&values, 95.0), p99: percentile(&values, 99.0) }
}

fn round(value: f64, places: i32) -> f64 {
    let factor = 10f64.powi(places);
    (value * factor).round() / factor
}

/// Pure: the report of `events` (already limited to the window).
pub fn compute(events: &[EventRecord], since_ms: i64, until_ms: i64, low_confidence: f64) -> Report {
    let mut report = Report {
        since: rfc3339(since_ms),
        until: rfc3339(until_ms),
        replies: events.len() as u64,
        ..Default::default()
    };
    let mut sessions = HashSet::new();
    let mut handed_off = HashSet::new();
    let mut intents: HashMap<String, IntentFigures> = HashMap::new();
    let mut repeats = 0u64;
    for e in events {
        if !e.session_hash.is_empty() {
            sessions.insert(e.session_hash.as_str());
            if e.source == "handoff" {
                handed_off.insert(e.session_hash.as_str());
            }
        }
        repeats += u64::from(e.repeat_question);
        *report.by_source.entry(e.source.clone()).or_default() += 1;
        if let Some(reason) = &e.fallback_reason {
            *report.fallback_reasons.entry(reason.clone()).or_default() += 1;
        }
        if let Some(reason) = &e.handoff_reason {
            *report.handoff_reasons.entry(reason.clone()).or_default() += 1;
        }
        report.prompt_tokens += e.prompt_tokens as u64;
        report.completion_tokens += e.completion_tokens as u64;
        report.cached_tokens += e.cached_tokens as u64;
        report.cost_usd += e.cost_usd;
        let name = e.intent.clone().unwrap_or_else(|| "(none)".into());
        let figures =
            intents.entry(name.clone()).or_insert_with(|| IntentFigures { intent: name, ..Default::default() });
        figures.replies += 1;
        figures.low_confidence += u64::from(e.confidence.is_some_and(|c| c < low_confidence));
        figures.fallbacks += u64::from(e.source == "fallback");
        figures.handoffs += u64::from(e.source == "handoff");
        figures.prompt_tokens += e.prompt_tokens as u64;
        figures.completion_tokens += e.completion_tokens as u64;
        figures.cost_usd += e.cost_usd;
    }
    report.sessions = sessions.len() as u64;
    if !sessions.is_empty() {
        report.solved_without_handoff_rate = Some(round(1.0 - handed_off.len() as f64 / sessions.len() as f64, 4));
    }
    if !events.is_empty() {
        report.repeat_question_rate = Some(round(repeats as f64 / events.len() as f64, 4));
    }
    report.first_response_ms = percentiles(events.iter().filter(|e| e.first_reply).map(|e| e.latency_ms).collect());
    report.latency_ms = percentiles(events.iter().map(|e| e.latency_ms).collect());
    report.cost_usd = round(report.cost_usd, 6);
    let mut intents: Vec<IntentFigures> = intents
        .into_values()
        .map(|mut f| {
            f.cost_usd = round(f.cost_usd, 6);
            f
        })
        .collect();
    intents.sort_by(|a, b| b.replies.cmp(&a.replies).then_with(|| a.intent.cmp(&b.intent)));
    report.intents = intents;
    report
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

/// The review of the last `window`, of the site(s) `scope` covers.
pub async fn build(
    durable: &dyn DurableStore,
    scope: SiteScope<'_>,
    window: Duration,
    settings: &Settings,
) -> Result<Report, crate::store::StoreError> {
    let until = chrono::Utc::now().timestamp_millis();
    build_between(durable, scope, until - window.as_millis() as i64, until, settings).await
}

/// The review of `[since_ms, until_ms)`, of the site(s) `scope` covers.
pub async fn build_between(
    durable: &dyn DurableStore,
    scope: SiteScope<'_>,
    since: i64,
    until: i64,
    settings: &Settings,
) -> Result<Report, crate::store::StoreError> {
    let mut events = durable.events_in(scope, since).await?;
    events.retain(|e| e.ts_ms < until);
    let mut report = compute(&events, since, until, settings.handoff.low_confidence_threshold);
    let mut unanswered = durable.unanswered_since(scope, since).await?;
    unanswered.retain(|u| u.ts_ms < until);
    report.unanswered_questions = unanswered::group(&unanswered);
    let mut handoffs = durable.handoffs_since(scope.sessions, since).await?;
    handoffs.retain(|h| h.started_ms < until);
    report.handoffs = human_loop::handoffs(&handoffs);
    report.suggestions = human_loop::suggestions(&durable.suggestions(scope.sessions, None, 0).await?, since);
    // Spend anomalies are the deployment's (one OpenAI account): not another site's to read.
    if scope.site.is_none_or(|site| site == crate::knowledge::SITE) {
        let mut anomalies = durable.anomalies_since(since).await?;
        anomalies.retain(|a| a.at_ms < until);
        report.spend_anomalies = human_loop::anomalies(anomalies);
    }
    Ok(report)
}

/// One day of the overview: the three support metrics and the volume behind them.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Day {
    pub date: String,
    pub replies: u64,
    pub sessions: u64,
    pub first_response_ms: Percentiles,
    pub solved_without_handoff_rate: Option<f64>,
    pub repeat_question_rate: Option<f64>,
    pub fallback_reasons: BTreeMap<String, u64>,
    pub tokens: u64,
}

/// The last `days` UTC days, oldest first, each computed like the review.
pub fn daily(events: &[EventRecord], days: u32, now_ms: i64, low_confidence: f64) -> Vec<Day> {
    const DAY_MS: i64 = 86_400_000;
    let today = now_ms - now_ms.rem_euclid(DAY_MS);
    (0..i64::from(days))
        .rev()
        .map(|back| {
            let start = today - back * DAY_MS;
            let day_events: Vec<EventRecord> =
                events.iter().filter(|e| e.ts_ms >= start && e.ts_ms < start + DAY_MS).cloned().collect();
            let r = compute(&day_events, start, start + DAY_MS, low_confidence);
            Day {
                date: chrono::DateTime::from_timestamp_millis(start)
                    .map(|t| t.format("%Y-%m-%d").to_string())
                    .unwrap_or_default(),
                replies: r.replies,
                sessions: r.sessions,
                first_response_ms: Percentiles { p99: None, ..r.first_response_ms },
                solved_without_handoff_rate: r.solved_without_handoff_rate,
                repeat_question_rate: r.repeat_question_rate,
                fallback_reasons: r.fallback_reasons,
                tokens: r.prompt_tokens + r.completion_tokens,
            }
        })
        .collect()
}

fn pct(rate: Option<f64>) -> String {
    rate.map(|r| format!("{:.1} %", r * 100.0)).unwrap_or_else(|| "—".into())
}

fn ms(value: Option<i64>) -> String {
    value.map(|v| format!("{v} ms")).unwrap_or_else(|| "—".into())
}

/// Plain text for the terminal.
pub fn render_text(r: &Report) -> String {
    let mut out = String::new();
    out.push_str(&format!("velochat weekly review  {} → {}\n\n", r.since, r.until));
    out.push_str(&format!("replies {}   sessions {}\n", r.replies, r.sessions));
    out.push_str(&format!(
        "first response  p50 {}  p95 {}\nsolved without handoff  {}\nrepeat questions  {}\nlatency  p50 {}  p95 {}  p99 {}\n\n",
        ms(r.first_response_ms.p50), ms(r.first_response_ms.p95), pct(r.solved_without_handoff_rate),
        pct(r.repeat_question_rate), ms(r.latency_ms.p50), ms(r.latency_ms.p95), ms(r.latency_ms.p99)
    ));
    let counts = |title: &str, map: &BTreeMap<String, u64>, out: &mut String| {
        out.push_str(title);
        if map.is_empty() {
            out.push_str("  none\n");
        } else {
            out.push('\n');
            for (k, v) in map {
                out.push_str(&format!("  {k:<24} {v}\n"));
            }
        }
    };
    counts("replies by source", &r.by_source, &mut out);
    counts("fallback reasons", &r.fallback_reasons, &mut out);
    counts("handoff reasons", &r.handoff_reasons, &mut out);
    out.push_str(&format!(
        "\ntokens  prompt {}  completion {}  cached {}   cost ${:.4}\n\n",
        r.prompt_tokens, r.completion_tokens, r.cached_tokens, r.cost_usd
    ));
    out.push_str("intent                    replies  low-conf  fallback  handoff    tokens      cost\n");
    for i in &r.intents {
        out.push_str(&format!(
            "{:<24} {:>8} {:>9} {:>9} {:>8} {:>9} {:>9.4}\n",
            i.intent,
            i.replies,
            i.low_confidence,
            i.fallbacks,
            i.handoffs,
            i.prompt_tokens + i.completion_tokens,
            i.cost_usd
        ));
    }
    out.push_str("\nunanswered questions (not in the help content)\n");
    if r.unanswered_questions.is_empty() {
        out.push_str("  none\n");
    }
    for group in &r.unanswered_questions {
        out.push_str(&format!("  {:>5}  {}\n", group.count, group.question));
    }
    let h = &r.handoffs;
    let seconds = |v: Option<f64>| v.map(|s| format!("{s} s")).unwrap_or_else(|| "—".into());
    out.push_str(&format!(
        "\nhandoffs {}   answered {}   first agent response p50 {}  p90 {}   SLA breaches {}   waiting {}\n",
        h.handoffs,
        h.answered,
        seconds(h.first_agent_response_seconds_p50),
        seconds(h.first_agent_response_seconds_p90),
        h.sla_breaches,
        h.waiting
    ));
    let s = &r.suggestions;
    out.push_str(&format!(
        "suggestions  created {}  approved {}  rejected {}  pending now {}\n",
        s.created, s.approved, s.rejected, s.pending
    ));
    out.push_str("\nspend anomalies\n");
    if r.spend_anomalies.is_empty() {
        out.push_str("  none\n");
    }
    for a in &r.spend_anomalies {
        out.push_str(&format!(
            "  {}  {} tokens in the hour, baseline {} per hour\n",
            a.hour, a.last_hour_tokens, a.baseline_hourly_tokens
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_since("7d").unwrap(), Duration::from_secs(7 * 86_400));
        assert_eq!(parse_since("24h").unwrap(), Duration::from_secs(86_400));
        assert!(parse_since("7").is_err());
        assert!(parse_since("0d").is_err());
        assert!(parse_since("soon").is_err());
    }

    #[test]
    fn nearest_rank_percentiles() {
        assert_eq!(percentile(&[10, 20, 30, 40], 50.0), Some(20));
        assert_eq!(percentile(&[10, 20, 30, 40], 95.0), Some(40));
        assert_eq!(percentile(&[], 50.0), None);
    }
}
