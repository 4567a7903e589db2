//! What a handed-off session said (redacted, per handoff "episode"), agents' messages with the
//! first-response time, and the knowledge-base suggestion drafted from an agent's answer when the
//! session goes back to the bot.

use super::ownership::{SessionView, TransitionContext};
use super::{now_ms, HumanLoop};
use crate::domain::AgentMessage;
use crate::store::durable::{HandoffRecord, SessionMessage, SessionScope, SuggestionRecord};
use crate::store::{SessionState, StoreError, Transition};

/// The visitor messages kept in the session state: the ones that lead to a handoff.
pub const RECENT_VISITOR: usize = 3;
/// Longer messages are cut before they are stored.
const MAX_STORED_CHARS: usize = 2000;

fn stored(session_id: &str, episode: i64, role: &str, text: String, at_ms: i64) -> SessionMessage {
    SessionMessage { session_id: session_id.to_owned(), episode, role: role.to_owned(), text, author: None, at_ms }
}

impl HumanLoop {
    /// `text` as it may be kept: redacted like log lines, bounded.
    pub fn keepable(&self, text: &str) -> String {
        let short: String = text.chars().take(MAX_STORED_CHARS).collect();
        self.with.redactor.log_line(&short).into_owned()
    }

    /// A handoff happened: its record (for the first-response time and the SLA) and what led to it.
    pub(super) async fn handoff_recorded(
        &self,
        id: &str,
        state: &SessionState,
        transition: &Transition,
        ctx: &TransitionContext<'_>,
    ) {
        let episode = i64::from(state.handoffs);
        let record = HandoffRecord {
            session_id: id.to_owned(),
            episode,
            started_ms: transition.at_ms,
            reason: transition.reason.clone(),
            awaited: ctx.awaited,
            first_agent_ms: None,
            sla_breached: false,
            released_ms: None,
        };
        // The visitor's latest messages as this service saw them (callers such as the Velo kit send
        // no history, so the request's transcript may hold only the last message).
        let at = transition.at_ms;
        let led_to_it: Vec<SessionMessage> =
            state.recent_visitor.iter().map(|t| stored(id, episode, "visitor", t.clone(), at)).collect();
        self.with.transcripts.handoff(record, led_to_it);
    }

    /// A visitor's message while a person owns the session, as a transcript line.
    pub(super) fn visitor_line(&self, id: &str, state: &SessionState, text: &str) -> SessionMessage {
        stored(id, i64::from(state.handoffs), "visitor", self.keepable(text), now_ms())
    }

    /// A person from the team wrote in the chat: the session becomes theirs (if it was not), the
    /// message is kept, and the first one after a handoff times the wait. Err only when the
    /// message could not be kept (the caller answers 503 and may retry).
    pub async fn agent_message(&self, id: &str, message: &AgentMessage) -> Result<SessionView, StoreError> {
        let now = now_ms();
        let state = self.hand_to_agent(id, now, true).await?;
        let episode = i64::from(state.handoffs);
        // The handoff this message answers, and what the visitor said, are written before it.
        self.with.transcripts.flush().await;
        let row = SessionMessage {
            author: message.author.clone(),
            ..stored(id, episode, "agent", self.keepable(&message.text), now)
        };
        self.with.durable.append_messages(&[row]).await?;
        self.wake_feeds();
        match self.with.durable.handoff_answered(id, episode, now).await {
            Ok(Some((started_ms, true))) => {
                self.with.metrics.handoff_first_response.observe((now - started_ms).max(0) as f64 / 1000.0);
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "first agent response not recorded"),
        }
        Ok(SessionView::of(id, &state))
    }

    /// The session is the bot's again: close the handoff and draft a suggestion from the answer.
    pub(super) async fn handoff_ended(&self, id: &str, state: &SessionState, at_ms: i64) {
        let episode = i64::from(state.handoffs);
        self.with.transcripts.flush().await;
        if let Err(e) = self.with.durable.handoff_released(id, episode, at_ms).await {
            tracing::warn!(error = %e, "handoff release not recorded");
        }
        if let Err(e) = self.draft_suggestion(id, episode).await {
            tracing::error!(error = %e, "suggestion not drafted");
        }
    }

    /// One suggestion per exchange that mattered: each substantive answer of the team with the
    /// visitor's message(s) just before it (greetings, requests for a person and pleasantries
    /// skipped), unless a pending suggestion already asks the same question.
    async fn draft_suggestion(&self, id: &str, episode: i64) -> Result<(), StoreError> {
        let messages = self.with.durable.session_messages(id, episode).await?;
        let asks_for_person = |text: &str| (self.with.asks_for_person)(text);
        let found =
            super::exchanges::exchanges(messages.iter().map(|m| (m.role.as_str(), m.text.as_str())), asks_for_person);
        if found.is_empty() {
            return Ok(());
        }
        let mut pending = self.with.durable.suggestions(SessionScope::of_session(id), Some("pending"), 0).await?;
        for exchange in found {
            if pending.iter().any(|p| crate::knowledge::same_question(&p.question, &exchange.question, None)) {
                tracing::info!("suggestion not drafted: a pending one asks the same question");
                continue;
            }
            let record = SuggestionRecord {
                id: uuid::Uuid::now_v7().simple().to_string(),
                session_id: id.to_owned(),
                question: exchange.question,
                answer: exchange.answer,
                status: "pending".to_owned(),
                created_ms: now_ms(),
                decided_ms: None,
            };
            self.with.durable.insert_suggestion(&record).await?;
            self.with.metrics.kb_suggestions.with_label_values(&["created"]).inc();
            tracing::info!(suggestion = %record.id, "knowledge-base suggestion drafted from an agent's answer");
            pending.push(record);
        }
        Ok(())
    }
}
