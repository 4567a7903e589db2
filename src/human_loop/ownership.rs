//! Session ownership: handoffs and handbacks, and the admin operations on a session.
//! Every change goes through one atomic store update; the request that made a transition (and only
//! it) records it durably and tells the support team.

use super::{now_ms, HumanLoop};
use crate::domain::{HandoffReason, Turn, TypedContext};
use crate::store::{Mode, SessionState, StoreError};
use crate::support::{EventKind, SupportEvent};
use serde::Serialize;

/// A session as the admin API shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionView {
    pub session_id: String,
    pub mode: Mode,
    pub human_since_ms: Option<i64>,
    pub handoff_reason: Option<String>,
    pub low_confidence_streak: u32,
    pub turns: u32,
    pub handoffs: u32,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
}

impl SessionView {
    pub(crate) fn of(session_id: &str, s: &SessionState) -> Self {
        Self {
            // A site's prefix is the store's business, not the caller's.
            session_id: crate::domain::visible_session_id(session_id).to_owned(),
            mode: s.mode,
            human_since_ms: s.human_since_ms,
            handoff_reason: s.handoff_reason.clone(),
            low_confidence_streak: s.low_confidence_streak,
            turns: s.turns,
            handoffs: s.handoffs,
            first_seen_ms: s.first_seen_ms,
            last_seen_ms: s.last_seen_ms,
        }
    }
}

/// What a transition needs for its support event.
pub struct TransitionContext<'a> {
    pub intent: Option<&'a str>,
    pub context: Option<&'a TypedContext>,
    pub transcript: &'a [Turn],
    pub message: Option<&'a str>,
    /// A handoff someone waits on (false when an agent's own message made it).
    pub awaited: bool,
}

impl TransitionContext<'_> {
    /// For transitions made outside a visitor's message (admin release, agent takeover, timeout).
    pub const NONE: TransitionContext<'static> =
        TransitionContext { intent: None, context: None, transcript: &[], message: None, awaited: true };
}

impl HumanLoop {
    /// Loads the session; after a restart or an eviction, a human owner is recovered from the
    /// durable store so the bot never talks over an agent.
    pub async fn load_or_recover(&self, id: &str) -> Option<SessionState> {
        if let Some(state) = self.with.store.load_session(id).await {
            return Some(state);
        }
        if self.maybe_owned.lock().as_ref().is_some_and(|owned| !owned.contains(id)) {
            return None;
        }
        let human = match self.with.durable.human_session(id).await {
            Ok(human) => human?,
            Err(e) => {
                tracing::warn!(error = %e, "durable human-session lookup failed");
                return None;
            }
        };
        let recovered = self
            .with
            .store
            .update_session(id, &|s| {
                if s.mode == Mode::Bot && s.turns == 0 {
                    s.mode = Mode::Human;
                    s.human_since_ms = Some(human.since_ms);
                    s.handoff_reason = Some(human.reason.clone());
                }
            })
            .await;
        match recovered {
            Ok(state) => Some(state),
            Err(e) => {
                tracing::warn!(error = %e, "recovering the human owner failed");
                None
            }
        }
    }

    /// No person owns the session any more, durably; then it leaves the owners' list.
    async fn clear_owner(&self, id: &str) -> Result<bool, StoreError> {
        let cleared = self.with.durable.clear_human(id).await?;
        if let Some(owned) = self.maybe_owned.lock().as_mut() {
            owned.remove(id);
        }
        Ok(cleared)
    }

    /// Records a transition this request made: durably, then as a support event.
    pub async fn publish_transition(
        &self,
        id: &str,
        state: &SessionState,
        request_id: &str,
        ctx: TransitionContext<'_>,
    ) {
        let Some(transition) = state.transition_by(request_id) else {
            return;
        };
        let kind = match transition.to {
            Mode::Human => {
                // Listed before it is written, so a lookup never misses it.
                if let Some(owned) = self.maybe_owned.lock().as_mut() {
                    owned.insert(id.to_owned());
                }
                if let Err(e) = self.with.durable.set_human(id, transition.at_ms, &transition.reason).await {
                    tracing::error!(error = %e, "could not record human ownership durably");
                }
                self.with.metrics.sessions_handed_off.inc();
                self.handoff_recorded(id, state, transition, &ctx).await;
                EventKind::Handoff
            }
            Mode::Bot => {
                if let Err(e) = self.clear_owner(id).await {
                    tracing::error!(error = %e, "could not clear human ownership durably");
                }
                self.handoff_ended(id, state, transition.at_ms).await;
                EventKind::Released
            }
        };
        tracing::info!(event = kind.as_str(), reason = %transition.reason, "session owner changed");
        let _ = self
            .with
            .support
            .publish(SupportEvent {
                kind,
                session_id: id,
                reason: Some(&transition.reason),
                intent: ctx.intent,
                context: ctx.context,
                transcript: ctx.transcript,
                message: ctx.message,
                waited_ms: None,
            })
            .await;
    }

    /// Forwards a visitor message to the agent who owns the session, and keeps it in the transcript.
    pub async fn forward_to_agent(&self, id: &str, state: &SessionState, context: &TypedContext, text: &str) {
        self.with.transcripts.line(self.visitor_line(id, state, text));
        let _ = self
            .with
            .support
            .publish(SupportEvent {
                kind: EventKind::Message,
                session_id: id,
                reason: None,
                intent: None,
                context: Some(context),
                transcript: &[],
                message: Some(text),
                waited_ms: None,
            })
            .await;
    }

    pub async fn session_view(&self, id: &str) -> Option<SessionView> {
        self.load_or_recover(id).await.map(|s| SessionView::of(id, &s))
    }

    /// Returns the session to the bot (admin release or timeout). None when the session is unknown.
    pub async fn release(&self, id: &str, reason: &str) -> Result<Option<SessionView>, StoreError> {
        if self.load_or_recover(id).await.is_none() {
            return Ok(None);
        }
        let request_id = format!("{reason}:{}", uuid::Uuid::now_v7());
        let now = now_ms();
        let state = self.with.store.update_session(id, &|s| s.hand_back(reason, now, &request_id)).await?;
        if state.transition_by(&request_id).is_none() {
            // Already the bot's: make sure no stale durable owner remains.
            let _ = self.clear_owner(id).await;
        }
        self.publish_transition(id, &state, &request_id, TransitionContext::NONE).await;
        self.wake_feeds();
        Ok(Some(SessionView::of(id, &state)))
    }

    /// A human agent stepped in (Wix Chat business-side message): the bot goes quiet.
    pub async fn take_over(&self, id: &str) -> Result<SessionView, StoreError> {
        let state = self.hand_to_agent(id, now_ms(), false).await?;
        Ok(SessionView::of(id, &state))
    }

    /// The session becomes a person's at `now` (a no-op when it is already); `answered` when the
    /// agent's own message, sent at `now`, is what makes it theirs (nobody waited for that handoff).
    /// The caller's `now` stamps the handoff, so what led to it never sorts after that message.
    pub(super) async fn hand_to_agent(&self, id: &str, now: i64, answered: bool) -> Result<SessionState, StoreError> {
        let request_id = format!("takeover:{}", uuid::Uuid::now_v7());
        self.load_or_recover(id).await;
        let state = self
            .with
            .store
            .update_session(id, &|s| {
                if s.first_seen_ms == 0 {
                    s.first_seen_ms = now;
                    s.last_seen_ms = now;
                }
                s.hand_over(HandoffReason::AgentTakeover.as_str(), now, &request_id);
                if answered {
                    s.first_agent_ms.get_or_insert(now);
                }
            })
            .await?;
        if state.transition_by(&request_id).is_some() {
            self.with.metrics.handoffs.with_label_values(&[HandoffReason::AgentTakeover.as_str()]).inc();
            let ctx = TransitionContext { awaited: !answered, ..TransitionContext::NONE };
            self.publish_transition(id, &state, &request_id, ctx).await;
        }
        Ok(state)
    }

    /// Erases everything kept about a session (privacy requests). Returns durable rows removed.
    pub async fn erase(&self, id: &str) -> Result<u64, StoreError> {
        self.with.store.delete_session(id).await;
        self.with.durable.erase_session(id, &self.session_hash(id)).await
    }

    /// Releases sessions whose human owner has held them past `handoff.release_after_ms`.
    pub async fn release_expired(&self) -> usize {
        let cutoff = now_ms() - self.with.settings.handoff.release_after_ms as i64;
        let expired = match self.with.durable.human_sessions_before(cutoff).await {
            Ok(list) => list,
            Err(e) => {
                tracing::warn!(error = %e, "could not list expired human sessions");
                return 0;
            }
        };
        let mut released = 0;
        for session in expired {
            match self.release(&session.session_id, "timeout").await {
                Ok(Some(_)) => released += 1,
                Ok(None) => {
                    let _ = self.clear_owner(&session.session_id).await;
                }
                Err(e) => tracing::warn!(error = %e, "timed-out session not released; retried on the next sweep"),
            }
        }
        released
    }
}
