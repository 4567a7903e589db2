//! One visitor message, top to bottom: `prepare` (validate, limit, route, session) decides what it
//! can without the model; `model_reply` asks it; `conclude` settles state, spend and records.

use super::{ChatError, ChatInput, ChatService, Reply, Route};
use crate::completion::fallback::pick_static;
use crate::completion::pick_localized;
use crate::config::{IntentAction, LocalizedText};
use crate::domain::Verifier;
use crate::domain::{compact_history, CompactedHistory, HandoffReason, InvalidField, Role, SessionId, Source, Turn};
use crate::human_loop::TransitionContext;
use crate::rate::Decision;
use crate::store::{LimitKind, Mode};

/// Everything known about a message before the model is asked; owned, so a stream can carry it.
pub struct Prepared {
    pub turns: Vec<Turn>,
    pub intent: Option<String>,
    pub addendum: Option<String>,
    pub limit: Option<(LimitKind, Decision)>,
    pub first_reply: bool,
    pub new_session: bool,
    pub repeat_question: bool,
    pub transcript: Vec<Turn>,
    /// A reply decided without the model (rule, handoff notice, holding notice).
    pub decided: Option<Reply>,
    /// Passages already found (a knowledge-first intent was answered from them).
    pub grounding: Option<crate::knowledge::Grounding>,
    /// A handoff intent answered from the knowledge base: the reply offers a person.
    pub handoff_offered: bool,
}

impl ChatService {
    pub async fn chat(&self, mut input: ChatInput) -> Result<Reply, ChatError> {
        let prepared = self.prepare(&input).await?;
        // Compacted into `prepared.turns`; the raw entries are not kept while the model is asked.
        input.history = Vec::new();
        let reply = match &prepared.decided {
            Some(decided) => decided.clone(),
            None => self.model_reply(&input, &prepared).await,
        };
        Ok(self.conclude(&input, &prepared, reply).await)
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

    pub(super) async fn prepare(&self, input: &ChatInput) -> Result<Prepared, ChatError> {
        // Limits first: a flood is refused before any signature is verified or history compacted.
        let limit =
            self.check_limits(input).await.map_err(|(kind, decision)| ChatError::RateLimited(kind, decision))?;
        let history = self.compact(input)?;
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
        let mut prepared = Prepared {
            transcript: self.transcript(&history.turns, input.user_text.as_str()),
            turns: history.turns,
            intent: routed.map(|i| i.name.clone()),
            addendum: routed.and_then(|i| i.addendum.clone()),
            limit,
            first_reply: false,
            new_session: false,
            repeat_question: false,
            decided: None,
            grounding: None,
            handoff_offered: false,
        };
        if let Some(session) = &input.session {
            let mut handoff_intent = false;
            if let Some(intent) = routed.filter(|i| i.action == IntentAction::Handoff) {
                prepared.grounding = self.knowledge_first(input, intent).await;
                prepared.handoff_offered = prepared.grounding.is_some();
                handoff_intent = !prepared.handoff_offered;
            }
            self.enter_session(input, session, handoff_intent, &mut prepared).await?;
        }
        if prepared.decided.is_none() {
            if let Some(intent) = routed.filter(|i| i.action == IntentAction::Reply) {
                let locale = input.context.locale.as_deref();
                let text = pick_localized(&intent.reply, locale, self.default_locale(input)).unwrap_or_default();
                let mut reply = Reply::new(text.to_owned(), Source::Rule);
                reply.intent = Some(intent.name.clone());
                prepared.decided = Some(reply);
            }
        }
        Ok(prepared)
    }

    /// The message arrives in its session: a handoff it triggers, or a human already owning the
    /// session, decides the reply here.
    async fn enter_session(
        &self,
        input: &ChatInput,
        session: &SessionId,
        handoff_intent: bool,
        prepared: &mut Prepared,
    ) -> Result<(), ChatError> {
        let (id, rid) = (session.as_str(), input.request_id.as_str());
        let arrival = self.arrive(id, rid, input.user_text.as_str(), handoff_intent).await?;
        let state = arrival.state;
        prepared.first_reply = state.turns == 1;
        prepared.new_session = arrival.new_session;
        prepared.repeat_question = state.last_repeat_count >= 2;
        let ours = state.transition_by(rid).cloned();
        if ours.is_some() {
            let ctx = TransitionContext {
                intent: prepared.intent.as_deref(),
                context: Some(&input.context),
                transcript: &prepared.transcript,
                message: None,
                awaited: true,
            };
            self.human.publish_transition(id, &state, rid, ctx).await;
        }
        if state.mode != Mode::Human {
            return Ok(());
        }
        let mut reply = match ours {
            Some(t) => self.handoff_reply(input, &self.settings.handoff.notice, HandoffReason::parse(&t.reason)),
            None => {
                self.human.forward_to_agent(id, &state, &input.context, input.user_text.as_str()).await;
                if self.human.sla_overdue(id, &state) {
                    let started = state.human_since_ms.unwrap_or_default();
                    self.human.breach(id, i64::from(state.handoffs), started, state.handoff_reason.as_deref()).await;
                    self.handoff_reply(input, &self.settings.handoff.sla_notice, Some(HandoffReason::SlaBreached))
                } else {
                    let holding = input.site.settings.holding_text.as_ref().unwrap_or(&self.settings.handoff.holding);
                    self.handoff_reply(input, holding, Some(HandoffReason::HumanMode))
                }
            }
        };
        reply.intent = prepared.intent.clone();
        prepared.decided = Some(reply);
        Ok(())
    }

    /// The model's answer, or the static fallback below it.
    pub(super) async fn model_reply(&self, input: &ChatInput, prepared: &Prepared) -> Reply {
        let context_json = (input.route == Route::SendChatMessage).then(|| input.context.to_json());
        let counter = self.tokenizer.get().await;
        let grounding = self.grounding_for(input, prepared, &counter).await;
        if grounding.not_covered {
            if let Some(reply) = self.not_covered_reply(input, prepared) {
                return reply;
            }
        }
        let (messages, _) = self.prompt_messages(
            &counter,
            input,
            &prepared.turns,
            context_json.as_deref(),
            &grounding,
            prepared.addendum.as_deref(),
        );
        let call = self.ask_model(input, &messages).await;
        let mut reply = match call.outcome {
            Ok((answer, completion)) => {
                let mut reply = Reply::new(answer.reply, Source::Model);
                reply.intent = prepared.intent.clone().or(answer.intent);
                // Nothing in the help content backs a "not covered" answer: it counts as unsure.
                reply.confidence = Some(if grounding.not_covered { 0.0 } else { answer.confidence });
                reply.needs_human = answer.needs_human;
                reply.truncated = completion.finish_reason.as_deref() == Some("length");
                reply.completion_id = completion.id;
                reply.model = Some(completion.model);
                reply.sources = grounding.sources;
                reply.not_covered = grounding.not_covered;
                reply
            }
            Err(reason) => {
                let mut reply = self.without_model(input, prepared, &grounding, reason);
                reply.model = call.model;
                reply
            }
        };
        if prepared.handoff_offered {
            self.offer_person(input, &mut reply);
        }
        reply.usage = call.usage;
        reply.upstream_ms = call.upstream_ms;
        reply.attempts = call.attempts;
        reply
    }

    pub(super) fn fallback_reply(
        &self,
        input: &ChatInput,
        intent: Option<&str>,
        reason: crate::domain::FallbackReason,
    ) -> Reply {
        let locale = input.context.locale.as_deref();
        // The site's own texts first, then the deployment's.
        let site = input.site.settings.static_replies.as_ref();
        let text = site
            .and_then(|texts| pick_static(texts, self.default_locale(input), intent, locale))
            .unwrap_or_else(|| self.replies.pick(intent, locale));
        let mut reply = Reply::new(text.to_owned(), Source::Fallback);
        reply.fallback_reason = Some(reason);
        reply.intent = intent.map(str::to_owned);
        reply
    }

    /// After the reply is known: confidence-driven handoffs, spending, the signature, records.
    pub(super) async fn conclude(&self, input: &ChatInput, prepared: &Prepared, mut reply: Reply) -> Reply {
        if let Some(session) = &input.session {
            let (id, rid) = (session.as_str(), input.request_id.as_str());
            reply.repeat_question = prepared.repeat_question;
            reply.session_mode = Some(if reply.source == Source::Handoff { Mode::Human } else { Mode::Bot });
            if reply.source == Source::Model || reply.not_covered {
                let after = self.after_model(id, rid, reply.confidence.unwrap_or(1.0), reply.needs_human).await;
                // The reply stands even if the shared session could not take the confidence update.
                let after = after.inspect_err(|e| tracing::error!(error = %e, "confidence not recorded")).ok();
                let ours = after.as_ref().and_then(|a| a.transition_by(rid)).filter(|t| t.to == Mode::Human).cloned();
                if let (Some(t), Some(after)) = (ours, after.as_ref()) {
                    let ctx = TransitionContext {
                        intent: reply.intent.as_deref(),
                        context: Some(&input.context),
                        transcript: &prepared.transcript,
                        message: None,
                        awaited: true,
                    };
                    self.human.publish_transition(id, after, rid, ctx).await;
                    let notice =
                        self.handoff_reply(input, &self.settings.handoff.notice, HandoffReason::parse(&t.reason));
                    reply = Reply {
                        text: notice.text,
                        source: Source::Handoff,
                        handoff_reason: notice.handoff_reason,
                        ..reply
                    };
                }
                if let Some(after) = &after {
                    reply.session_mode = Some(after.mode);
                }
            }
        }
        if reply.not_covered {
            self.record_unanswered(input);
        }
        let cost = self.spend(input, &reply).await;
        if let Some(session) = &input.session {
            reply.signature = Some(self.signer.sign(session.as_str(), &reply.text));
        }
        reply.limit = prepared.limit;
        self.record_reply(input, &reply, prepared.first_reply, prepared.new_session, cost);
        reply
    }

    /// The site's default locale, else the deployment's.
    pub(super) fn default_locale<'a>(&'a self, input: &'a ChatInput) -> &'a str {
        input.site.settings.default_locale.as_deref().unwrap_or(&self.settings.fallback.default_locale)
    }

    fn handoff_reply(&self, input: &ChatInput, texts: &LocalizedText, reason: Option<HandoffReason>) -> Reply {
        let text =
            pick_localized(texts, input.context.locale.as_deref(), self.default_locale(input)).unwrap_or_default();
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
    async fn spend(&self, input: &ChatInput, reply: &Reply) -> u64 {
        let usage = &reply.usage;
        if usage.prompt_tokens + usage.completion_tokens == 0 {
            return 0;
        }
        let model = reply.model.as_deref().unwrap_or(&self.ladder.primary.model);
        let cost = self.budget.cost(model, usage);
        let tokens = usage.total_tokens.max(usage.prompt_tokens + usage.completion_tokens);
        let add = crate::store::UsageTotals { tokens, usd_micros: cost };
        self.budget.record_site(self.store.as_ref(), &input.site, add).await;
        let booked = self.budget.record(self.store.as_ref(), &self.metrics, usage, cost).await;
        if let Some(anomaly) = booked.anomaly {
            self.keep_anomaly(anomaly);
        }
        cost
    }
}
