//! Per-session state: who owns the conversation, and the signals that decide handoffs.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Bot,
    Human,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Bot => "bot",
            Mode::Human => "human",
        }
    }
}

/// A normalised question: its word set as stable 32-bit hashes (FNV-1a, identical on every replica).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    pub words: Vec<u32>,
    pub count: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionState {
    pub mode: Mode,
    /// Unix ms when a human took over.
    #[serde(default)]
    pub human_since_ms: Option<i64>,
    #[serde(default)]
    pub handoff_reason: Option<String>,
    #[serde(default)]
    pub low_confidence_streak: u32,
    #[serde(default)]
    pub recent_questions: Vec<Fingerprint>,
    #[serde(default)]
    pub turns: u32,
    #[serde(default)]
    pub first_seen_ms: i64,
    #[serde(default)]
    pub last_seen_ms: i64,
    /// Handoffs so far; the webhook event id of each handoff derives from it.
    #[serde(default)]
    pub handoffs: u32,
    /// The last change of owner, and which request made it (so exactly one request reports it).
    #[serde(default)]
    pub last_transition: Option<Transition>,
    /// How often the latest question has now been asked (set by the request that recorded it).
    #[serde(default)]
    pub last_repeat_count: u32,
    /// The visitor's latest messages (redacted, newest last): what led to a handoff.
    #[serde(default)]
    pub recent_visitor: Vec<String>,
    /// When the first agent message of the current handoff arrived.
    #[serde(default)]
    pub first_agent_ms: Option<i64>,
    /// Bumped on every write; the Redis store compares it to detect concurrent writers.
    #[serde(default)]
    pub version: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Transition {
    pub to: Mode,
    pub reason: String,
    pub request_id: String,
    pub at_ms: i64,
}

impl SessionState {
    /// Bot → human. A no-op when a human already owns the session.
    pub fn hand_over(&mut self, reason: &str, now_ms: i64, request_id: &str) {
        if self.mode == Mode::Human {
            return;
        }
        self.mode = Mode::Human;
        self.human_since_ms = Some(now_ms);
        self.handoff_reason = Some(reason.to_owned());
        self.low_confidence_streak = 0;
        self.first_agent_ms = None;
        self.handoffs += 1;
        self.last_transition = Some(Transition {
            to: Mode::Human,
            reason: reason.to_owned(),
            request_id: request_id.to_owned(),
            at_ms: now_ms,
        });
    }

    /// Human → bot, with a clean slate for the handoff signals. A no-op in bot mode.
    pub fn hand_back(&mut self, reason: &str, now_ms: i64, request_id: &str) {
        if self.mode == Mode::Bot {
            return;
        }
        self.mode = Mode::Bot;
        self.human_since_ms = None;
        self.handoff_reason = None;
        self.low_confidence_streak = 0;
        self.recent_questions.clear();
        self.recent_visitor.clear();
        self.first_agent_ms = None;
        self.last_transition = Some(Transition {
            to: Mode::Bot,
            reason: reason.to_owned(),
            request_id: request_id.to_owned(),
            at_ms: now_ms,
        });
    }

    /// Keeps `text` among the latest `keep` visitor messages.
    pub fn remember_visitor(&mut self, text: &str, keep: usize) {
        self.recent_visitor.push(text.to_owned());
        let excess = self.recent_visitor.len().saturating_sub(keep);
        self.recent_visitor.drain(..excess);
    }

    /// The transition `request_id` made, if it made one.
    pub fn transition_by(&self, request_id: &str) -> Option<&Transition> {
        self.last_transition.as_ref().filter(|t| t.request_id == request_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_over_and_back_record_who_did_it() {
        let mut s = SessionState { low_confidence_streak: 1, ..Default::default() };
        s.hand_over("refund", 10, "r1");
        assert_eq!((s.mode, s.handoffs, s.low_confidence_streak), (Mode::Human, 1, 0));
        assert!(s.transition_by("r1").is_some());
        s.hand_over("again", 11, "r2");
        assert!(s.transition_by("r2").is_none(), "already human: no second handoff");
        s.hand_back("released", 12, "admin");
        assert_eq!(s.mode, Mode::Bot);
        assert_eq!(s.transition_by("admin").map(|t| t.to), Some(Mode::Bot));
    }
}
