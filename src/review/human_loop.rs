//! The review's human-loop sections: how long visitors waited for a person and how often the SLA
//! was missed, what the team's answers taught the bot, and the spend anomalies alerted.

use crate::store::durable::{AnomalyRecord, HandoffRecord, SuggestionRecord};
use serde::Serialize;

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HandoffFigures {
    /// Handoffs started in the window.
    pub handoffs: u64,
    /// Of those a visitor waited on (not started by an agent's own message), answered by a person.
    pub answered: u64,
    /// Handoff to the first agent message, in seconds (handoffs someone waited on).
    pub first_agent_response_seconds_p50: Option<f64>,
    pub first_agent_response_seconds_p90: Option<f64>,
    pub sla_breaches: u64,
    /// Still open and unanswered.
    pub waiting: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SuggestionFigures {
    pub created: u64,
    pub approved: u64,
    pub rejected: u64,
    /// Pending now, whenever created.
    pub pending: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AnomalyEntry {
    pub hour: String,
    pub last_hour_tokens: i64,
    pub baseline_hourly_tokens: i64,
    pub factor: Option<f64>,
}

fn nearest_rank(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted.get(rank - 1).map(|v| (v * 10.0).round() / 10.0)
}

pub fn handoffs(records: &[HandoffRecord]) -> HandoffFigures {
    let mut waits: Vec<f64> = records
        .iter()
        .filter(|h| h.awaited)
        .filter_map(|h| h.first_agent_ms.map(|at| (at - h.started_ms).max(0) as f64 / 1000.0))
        .collect();
    waits.sort_by(f64::total_cmp);
    HandoffFigures {
        handoffs: records.len() as u64,
        answered: waits.len() as u64,
        first_agent_response_seconds_p50: nearest_rank(&waits, 50.0),
        first_agent_response_seconds_p90: nearest_rank(&waits, 90.0),
        sla_breaches: records.iter().filter(|h| h.sla_breached).count() as u64,
        waiting: records.iter().filter(|h| h.first_agent_ms.is_none() && h.released_ms.is_none()).count() as u64,
    }
}

pub fn suggestions(records: &[SuggestionRecord], since_ms: i64) -> SuggestionFigures {
    let decided = |status: &str| {
        records.iter().filter(|s| s.status == status && s.decided_ms.is_some_and(|at| at >= since_ms)).count() as u64
    };
    SuggestionFigures {
        created: records.iter().filter(|s| s.created_ms >= since_ms).count() as u64,
        approved: decided("approved"),
        rejected: decided("rejected"),
        pending: records.iter().filter(|s| s.status == "pending").count() as u64,
    }
}

pub fn anomalies(records: Vec<AnomalyRecord>) -> Vec<AnomalyEntry> {
    records
        .into_iter()
        .map(|a| AnomalyEntry {
            hour: a.hour,
            last_hour_tokens: a.last_hour_tokens,
            baseline_hourly_tokens: a.baseline_tokens,
            factor: a.factor,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handoff(started: i64, first_agent: Option<i64>, awaited: bool, breached: bool) -> HandoffRecord {
        HandoffRecord {
            session_id: "s".into(),
            episode: 1,
            started_ms: started,
            reason: "intent".into(),
            awaited,
            first_agent_ms: first_agent,
            sla_breached: breached,
            released_ms: None,
        }
    }

    #[test]
    fn waits_count_only_handoffs_someone_waited_on() {
        let figures = handoffs(&[
            handoff(0, Some(10_000), true, false),
            handoff(0, Some(30_000), true, false),
            handoff(0, Some(400_000), true, true),
            handoff(0, Some(0), false, false),
            handoff(0, None, true, true),
        ]);
        assert_eq!((figures.handoffs, figures.answered, figures.sla_breaches, figures.waiting), (5, 3, 2, 1));
        assert_eq!(figures.first_agent_response_seconds_p50, Some(30.0));
        assert_eq!(figures.first_agent_response_seconds_p90, Some(400.0));
    }
}
