//! The knowledge base's part in a reply: which passages the prompt gets, the honest "not covered"
//! when none fits a real question, and the record of that question for the weekly review.

use super::flow::Prepared;
use super::intents::Intent;
use super::{ChatInput, ChatService, Reply, Route};
use crate::completion::pick_localized;
use crate::completion::tokens::TokenCounter;
use crate::domain::{FallbackReason, Source};
use crate::knowledge::{Grounding, SourceRef};
use crate::store::durable::UnansweredRecord;
use std::time::Duration;

/// Tries to write an unanswered question before giving up on it (it is a review aid, not a reply).
const UNANSWERED_ATTEMPTS: u32 = 5;

impl ChatService {
    /// Passages for this message, or nothing when the knowledge base is off for the route or empty.
    /// `answerable`: no intent has its own instructions, so "not covered" applies.
    pub(super) async fn ground(&self, input: &ChatInput, answerable: bool, counter: &TokenCounter) -> Grounding {
        let kb = self.knowledge.settings();
        let on = kb.enabled && (input.route == Route::SendChatMessage || kb.compat);
        if !on {
            return Grounding::default();
        }
        // The question's embedding may take a slice of the time left, never the model's share.
        let time_left = input.deadline.remaining() / 4;
        let locale = input.context.locale.as_deref();
        let Some(base) = self.knowledge.for_search(&input.site).await else {
            return Grounding::default();
        };
        let mut grounding = base.ground(input.user_text.as_str(), locale, answerable, time_left, counter).await;
        // Help pages are written by people who may paste a key into one: configured secrets never
        // reach the model (nor, through it, a visitor).
        if let Some(message) = grounding.message.as_mut() {
            if let std::borrow::Cow::Owned(redacted) = self.redactor.secrets(message) {
                *message = redacted;
            }
        }
        grounding
    }

    /// This message's grounding: found while preparing (knowledge-first), or searched now.
    pub(super) async fn grounding_for(
        &self,
        input: &ChatInput,
        prepared: &Prepared,
        counter: &TokenCounter,
    ) -> Grounding {
        match &prepared.grounding {
            Some(grounding) => grounding.clone(),
            None => self.ground(input, prepared.intent.is_none(), counter).await,
        }
    }

    /// Knowledge before a handoff rule: a question (not a request to act) matching a
    /// knowledge-first handoff intent, which the knowledge base answers well enough, is answered
    /// from it instead of handed off. Returns the grounding that decided it.
    pub(super) async fn knowledge_first(&self, input: &ChatInput, intent: &Intent) -> Option<Grounding> {
        let threshold = intent.knowledge_first_score?;
        if self.intents.asks_to_act(input.user_text.as_str()) {
            return None;
        }
        let counter = self.tokenizer.get().await;
        let grounding = self.ground(input, false, &counter).await;
        grounding.best.as_ref().is_some_and(|p| p.score >= threshold).then_some(grounding)
    }

    /// The reply when the model cannot give one: a passage's most relevant sentences when one is
    /// relevant enough (the model out of reach, not refused), else the static text.
    pub(super) fn without_model(
        &self,
        input: &ChatInput,
        prepared: &Prepared,
        grounding: &Grounding,
        reason: FallbackReason,
    ) -> Reply {
        let bar = if prepared.handoff_offered { 0.0 } else { self.knowledge.settings().extractive_min_score };
        let passage = grounding.best.as_ref().filter(|p| reason.knowledge_may_answer() && p.score >= bar);
        let question = input.user_text.as_str();
        let extracted = passage.and_then(|p| {
            let base = self.knowledge.loaded(&input.site)?;
            let text = base.extract_answer(p, question, input.context.locale.as_deref())?;
            Some((self.redactor.secrets(&text).into_owned(), p))
        });
        let Some((text, passage)) = extracted else {
            return self.fallback_reply(input, prepared.intent.as_deref(), reason);
        };
        let mut reply = Reply::new(text, Source::Knowledge);
        reply.fallback_reason = Some(reason);
        reply.intent = prepared.intent.clone();
        reply.sources =
            vec![SourceRef { id: passage.id.clone(), title: passage.title.clone(), url: passage.url.clone() }];
        reply
    }

    /// A knowledge-first answer keeps a person on offer, in the visitor's language.
    pub(super) fn offer_person(&self, input: &ChatInput, reply: &mut Reply) {
        let texts = &self.settings.handoff.offer;
        let locale = input.context.locale.as_deref();
        if let Some(offer) = pick_localized(texts, locale, self.default_locale(input)) {
            reply.text = format!("{}\n\n{offer}", reply.text.trim_end());
        }
        reply.handoff_offered = true;
    }

    /// The configured "not covered" text, when there is one: the reply without a model call.
    pub(super) fn not_covered_reply(&self, input: &ChatInput, prepared: &Prepared) -> Option<Reply> {
        let texts = &self.knowledge.settings().not_covered;
        if texts.is_empty() {
            return None;
        }
        let locale = input.context.locale.as_deref();
        let text = pick_localized(texts, locale, self.default_locale(input))?;
        let mut reply = Reply::new(text.to_owned(), Source::Rule);
        reply.intent = prepared.intent.clone();
        reply.not_covered = true;
        reply.confidence = Some(0.0);
        Some(reply)
    }

    /// Keeps the question (redacted like log lines) for the review's "unanswered questions".
    pub(super) fn record_unanswered(&self, input: &ChatInput) {
        self.metrics.kb_unanswered.inc();
        let session = input.session.as_ref().map(|s| s.as_str()).unwrap_or(input.request_id.as_str());
        let record = UnansweredRecord {
            ts_ms: chrono::Utc::now().timestamp_millis(),
            session_hash: self.session_hash(session),
            locale: input.context.locale.clone(),
            question: self.redactor.log_line(input.user_text.as_str()).into_owned(),
            site: input.site.stored_id(),
        };
        let durable = self.durable.clone();
        tokio::spawn(async move {
            for attempt in 1..=UNANSWERED_ATTEMPTS {
                match durable.record_unanswered(&record).await {
                    Ok(()) => return,
                    Err(e) if attempt == UNANSWERED_ATTEMPTS => {
                        tracing::error!(error = %crate::error_chain::describe(&e), "unanswered question not recorded");
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(200 << attempt)).await,
                }
            }
        });
    }
}
