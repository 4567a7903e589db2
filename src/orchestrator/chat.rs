//! One visitor message, top to bottom.

use super::intents::Intent;
use super::session::TransitionContext;
use super::{ChatError, ChatInput, Orchestrator, Reply, Route};
use crate::completion::pick_localized;
use crate::config::{IntentAction, LocalizedText};
use crate::domain::Verifier;
use crate::domain::{compact_history, CompactedHistory, HandoffReason, InvalidField, Role, SessionId, Source, Turn};
use crate::store::Mode;

impl Orchestrator {
    pub async fn chat(&self, input: ChatInput) -> Result<Reply, ChatError> {
        let history = self.compact(&input)?;
        let limit =
            self.check_limits(&input).await.map_err(|(kind, decision)| ChatError::RateLimited(kind, decision))?;
        self.metrics.user_messages.inc();
        for (reason, count) in history.dropped.by_reason() {
            if count > 0 {
                self.metrics.history_dropped.with_label_values(&[reason]).inc_by(u64::from(count));
            }
        }
        if history.dropped.unsigned > 0 {
            tracing::info!(
                unsigned_turns_dropped = history.dropped.unsigned,
                "history turns without a valid signature dropped"
            );
        }
        let routed = self.intents.route(input.user_text.as_str(), input.context.locale.as_deref());
        let (mut reply, first_reply, new_session) = match &input.session {
            Some(session) => self.chat_in_session(&input, session, &history.turns, routed).await,
            None => (self.bot_reply(&input, &history.turns, routed).await, false, false),
        };
        let cost = self.spend(&reply).await;
        if let Some(session) = &input.session {
            reply.signature = Some(self.signer.sign(session.as_str(), &reply.text));
        }
        reply.limit = limit;
        self.record_reply(&input, &reply, first_reply, new_session, cost);
        Ok(reply)
    }

    fn compact(&self, input: &ChatInput) -> Result<CompactedHistory, InvalidField> {
        let h = &self.settings.history;
        if input.history.len() > h.max_entries {
            let message = format!("`history` must have at most {} entries", h.max_entries);
            return Err(InvalidField::new("history", "too_many_entries", message));
        }
        let session = input.session.as_ref().map(SessionId::as_str).unwrap_or("");
        let verify = |content: &str, signature: &str| self.signer.verify(session, content, signature);
        let verifier: Option<Verifier<'_>> = input.verify_history.then_some(&verify);
        compact_history(&input.history, h.max_turns, h.max_content_chars, verifier)
    }

    async fn chat_in_session(
        &self,
        input: &ChatInput,
        session: &SessionId,
        turns: &[Turn],
        routed: Option<&Intent>,
    ) -> (Reply, bool, bool) {
        let id = session.as_str();
        let rid = input.request_id.as_str();
        let intent_handoff = routed.is_some_and(|i| i.action == IntentAction::Handoff);
        let arrival = self.arrive(id, rid, input.user_text.as_str(), intent_handoff).await;
        let state = arrival.state;
        let first_reply = state.turns == 1;
        let transcript = self.transcript(turns, input.user_text.as_str());
        let intent_name = routed.map(|i| i.name.as_str());
        let ctx = || TransitionContext {
            intent: intent_name,
            context: Some(&input.context),
            transcript: &transcript,
            message: None,
        };
        let ours = state.transition_by(rid).cloned();
        if ours.is_some() {
            self.publish_transition(id, &state, rid, ctx()).await;
        }
        if state.mode == Mode::Human {
            let mut reply = match ours {
                Some(t) => self.handoff_reply(input, &self.settings.handoff.notice, HandoffReason::parse(&t.reason)),
                None => {
                    self.forward_to_agent(id, &input.context, input.user_text.as_str()).await;
                    self.handoff_reply(input, &self.settings.handoff.holding, Some(HandoffReason::HumanMode))
                }
            };
            reply.intent = intent_name.map(str::to_owned);
            reply.session_mode = Some(Mode::Human);
            return (reply, first_reply, arrival.new_session);
        }
        let mut reply = self.bot_reply(input, turns, routed).await;
        reply.repeat_question = state.last_repeat_count >= 2;
        reply.session_mode = Some(Mode::Bot);
        if reply.source == Source::Model {
            let confidence = reply.confidence.unwrap_or(1.0);
            let after = self.after_model(id, rid, confidence, reply.needs_human).await;
            if let Some(t) = after.transition_by(rid).filter(|t| t.to == Mode::Human).cloned() {
                self.publish_transition(id, &after, rid, ctx()).await;
                let notice = self.handoff_reply(input, &self.settings.handoff.notice, HandoffReason::parse(&t.reason));
                reply = Reply {
                    text: notice.text,
                    source: Source::Handoff,
                    handoff_reason: notice.handoff_reason,
                    ..reply
                };
            }
            reply.session_mode = Some(after.mode);
        }
        (reply, first_reply, arrival.new_session)
    }

    /// The bot answers: a rule's static reply, or the model (with the static fallback below it).
    /// In a session, handoff intents never get here; without one nothing can be handed over, so
    /// the model answers them.
    async fn bot_reply(&self, input: &ChatInput, turns: &[Turn], routed: Option<&Intent>) -> Reply {
        let locale = input.context.locale.as_deref();
        let default_locale = &self.settings.fallback.default_locale;
        if let Some(intent) = routed.filter(|i| i.action == IntentAction::Reply) {
            let text = pick_localized(&intent.reply, locale, default_locale).unwrap_or_default();
            let mut reply = Reply::new(text.to_owned(), Source::Rule);
            reply.intent = Some(intent.name.clone());
            return reply;
        }
        let context_json = (input.route == Route::SendChatMessage).then(|| input.context.to_json());
        let messages = self.prompt_messages(input, turns, context_json.as_deref(), routed);
        let call = self.ask_model(input, &messages).await;
        let intent_name = routed.map(|i| i.name.clone());
        let mut reply = match call.outcome {
            Ok((answer, completion)) => {
                let mut reply = Reply::new(answer.reply, Source::Model);
                reply.intent = intent_name.or(answer.intent);
                reply.confidence = Some(answer.confidence);
                reply.needs_human = answer.needs_human;
                reply.truncated = completion.finish_reason.as_deref() == Some("length");
                reply.completion_id = completion.id;
                reply.model = Some(completion.model);
                reply
            }
            Err(reason) => {
                let mut reply =
                    Reply::new(self.replies.pick(intent_name.as_deref(), locale).to_owned(), Source::Fallback);
                reply.fallback_reason = Some(reason);
                reply.intent = intent_name;
                reply.model = call.model;
                reply
            }
        };
        reply.usage = call.usage;
        reply.upstream_ms = call.upstream_ms;
        reply.attempts = call.attempts;
        reply
    }

    fn handoff_reply(&self, input: &ChatInput, texts: &LocalizedText, reason: Option<HandoffReason>) -> Reply {
        let text = pick_localized(texts, input.context.locale.as_deref(), &self.settings.fallback.default_locale)
            .unwrap_or_default();
        let mut reply = Reply::new(text.to_owned(), Source::Handoff);
        reply.handoff_reason = reason;
        reply
    }

    /// The latest turns and the new message, for the support team.
    fn transcript(&self, turns: &[Turn], user_text: &str) -> Vec<Turn> {
        let keep = self.settings.handoff.transcript_turns.max(1);
        let mut transcript: Vec<Turn> = turns.iter().rev().take(keep - 1).rev().cloned().collect();
        transcript.push(Turn { role: Role::User, content: user_text.to_owned() });
        transcript
    }

    /// Books the tokens a reply cost against the budgets; returns its cost in micro-dollars.
    async fn spend(&self, reply: &Reply) -> u64 {
        let usage = &reply.usage;
        if usage.prompt_tokens + usage.completion_tokens == 0 {
            return 0;
        }
        let model = reply.model.as_deref().unwrap_or(&self.ladder.primary.model);
        let cost = self.budget.cost(model, usage);
        self.budget.record(self.store.as_ref(), &self.metrics, usage, cost).await;
        cost
    }
}
