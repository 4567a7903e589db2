//! A visitor's message in its session: turn count, repeats, the release timeout, and the handoffs
//! the message or the model's confidence call for. Every change is one atomic store update; the
//! human loop records and announces the transitions.

use super::repeat;
use super::ChatService;
use crate::domain::HandoffReason;
use crate::human_loop::RECENT_VISITOR;
use crate::store::{Mode, SessionState, StoreError};

/// What the arrival of a message did to its session.
pub(super) struct Arrival {
    pub state: SessionState,
    pub new_session: bool,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl ChatService {
    /// Records the message: turn count, repeat detection, the release timeout, and a handoff when
    /// the intent asks for one or the question comes for the N-th time.
    pub(super) async fn arrive(
        &self,
        id: &str,
        request_id: &str,
        text: &str,
        intent_handoff: bool,
    ) -> Result<Arrival, StoreError> {
        let existed = self.human.load_or_recover(id).await.is_some();
        let h = &self.settings.handoff;
        let words = repeat::words(text);
        let kept = self.human.keepable(text);
        let now = now_ms();
        let release_after = h.release_after_ms as i64;
        let state = self
            .store
            .update_session(id, &|s| {
                if s.first_seen_ms == 0 {
                    s.first_seen_ms = now;
                }
                s.last_seen_ms = now;
                s.turns += 1;
                s.last_repeat_count = 0;
                s.remember_visitor(&kept, RECENT_VISITOR);
                if s.mode == Mode::Human {
                    if s.human_since_ms.is_some_and(|since| now - since >= release_after) {
                        s.hand_back("timeout", now, request_id);
                    } else {
                        return;
                    }
                }
                let count =
                    repeat::record(&mut s.recent_questions, words.clone(), h.repeat_similarity, h.recent_questions);
                s.last_repeat_count = count;
                if intent_handoff {
                    s.hand_over(HandoffReason::Intent.as_str(), now, request_id);
                } else if count >= h.repeat_count {
                    s.hand_over(HandoffReason::RepeatedQuestion.as_str(), now, request_id);
                }
            })
            .await?;
        Ok(Arrival { state, new_session: !existed })
    }

    /// After a model reply: the low-confidence streak, and a handoff on `needsHuman` or on exactly
    /// the K-th consecutive low-confidence reply.
    pub(super) async fn after_model(
        &self,
        id: &str,
        request_id: &str,
        confidence: f64,
        needs_human: bool,
    ) -> Result<SessionState, StoreError> {
        let h = &self.settings.handoff;
        let now = now_ms();
        let low = confidence < h.low_confidence_threshold;
        self.store
            .update_session(id, &|s| {
                if s.mode == Mode::Human {
                    return;
                }
                s.low_confidence_streak = if low { s.low_confidence_streak + 1 } else { 0 };
                if needs_human && h.on_needs_human {
                    s.hand_over(HandoffReason::NeedsHuman.as_str(), now, request_id);
                } else if s.low_confidence_streak >= h.low_confidence_count {
                    s.hand_over(HandoffReason::LowConfidence.as_str(), now, request_id);
                }
            })
            .await
    }
}
