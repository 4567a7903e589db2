//! Asking the model: the gates that keep money in the bank (kill switch, key, budget), the prompt,
//! the ladder, and reading the answer back as plain, safe text.

use super::prompt::{assemble, PromptParts};
use super::{ChatInput, ChatService, Route};
use crate::completion::client::Completion;
use crate::completion::structured::{self, ModelAnswer};
use crate::completion::tokens::TokenCounter;
use crate::completion::wire::{ChatRequest, StreamOptions, Usage, WireMessage};
use crate::domain::{FallbackReason, Turn};
use crate::guard::OutputProblem;
use bytes::Bytes;

pub(super) struct ModelCall {
    pub outcome: Result<(ModelAnswer, Completion), FallbackReason>,
    /// Tokens spent even when the answer was unusable (a blocked leak still costs).
    pub usage: Usage,
    pub model: Option<String>,
    pub upstream_ms: u64,
    pub attempts: u32,
}

impl ModelCall {
    fn refused(reason: FallbackReason) -> Self {
        Self { outcome: Err(reason), usage: Usage::default(), model: None, upstream_ms: 0, attempts: 0 }
    }
}

impl ChatService {
    /// Why the model must not be asked right now, if it must not.
    pub(super) async fn model_gate(&self, site: &crate::sites::Site) -> Option<FallbackReason> {
        if self.site_kill_switch(site).await {
            return Some(FallbackReason::KillSwitch);
        }
        if !self.ladder.primary.has_key() {
            return Some(FallbackReason::NoApiKey);
        }
        if self.budget.exhausted(self.store.as_ref(), &self.metrics).await.is_some() {
            return Some(FallbackReason::BudgetExhausted);
        }
        if self.budget.site_exhausted(self.store.as_ref(), site).await.is_some() {
            return Some(FallbackReason::BudgetExhausted);
        }
        None
    }

    /// The messages for this request, trimmed to the token budget (drops are counted), and their
    /// token count.
    pub(super) fn prompt_messages<'a>(
        &'a self,
        counter: &TokenCounter,
        input: &'a ChatInput,
        history: &'a [Turn],
        context_json: Option<&'a str>,
        grounding: &'a crate::knowledge::Grounding,
        addendum: Option<&'a str>,
    ) -> (Vec<WireMessage<'a>>, usize) {
        let (system, system_tokens) = match &input.overrides.system_prompt {
            Some(own) => (own.as_str(), None),
            None => {
                let system = self.settings.prompt.system.as_str();
                (system, Some(*self.system_tokens.get_or_init(|| counter.text(system))))
            }
        };
        let user_text = input.user_text.as_str();
        let (reference, reference_tokens) = (grounding.message.as_deref(), grounding.tokens);
        let parts = PromptParts {
            system,
            system_tokens,
            instructions: input.site.settings.instructions.as_deref(),
            context_json,
            reference,
            reference_tokens,
            addendum,
            history,
            user_text,
        };
        let prompt = assemble(counter, &parts, self.settings.history.max_prompt_tokens);
        if prompt.dropped_turns > 0 {
            self.metrics.history_dropped.with_label_values(&["tokens"]).inc_by(u64::from(prompt.dropped_turns));
        }
        (prompt.messages, prompt.tokens)
    }

    pub(super) fn safety_identifier(&self, input: &ChatInput) -> Option<String> {
        let id = input.caller.visitor_id.as_deref().or(input.session.as_ref().map(|s| s.as_str()))?;
        Some(crate::guard::hashed_id(self.settings.privacy.hash_salt.expose(), "safety", id))
    }

    /// Serialises the request for one endpoint (the fallback model differs only in `model`).
    pub(super) fn request_body(
        &self,
        input: &ChatInput,
        messages: &[WireMessage<'_>],
        model: &str,
        safety: Option<&str>,
        stream: bool,
    ) -> Bytes {
        let o = &self.settings.openai;
        let ov = &input.overrides;
        let structured = input.route == Route::SendChatMessage && o.structured_output;
        let request = ChatRequest {
            model,
            messages,
            temperature: Some(ov.temperature.unwrap_or(o.temperature)),
            max_completion_tokens: Some(ov.max_tokens.unwrap_or(o.max_completion_tokens)),
            response_format: if structured { Some(structured::response_format()) } else { ov.response_format.as_ref() },
            safety_identifier: safety,
            prompt_cache_key: Some(&self.prompt_cache_key),
            stream: stream.then_some(true),
            // Always ask for usage: streamed tokens are booked like any others.
            stream_options: stream.then_some(StreamOptions { include_usage: true }),
            passthrough: ov.passthrough.as_ref(),
        };
        // Exact size: the body waits in the HTTP/2 send queue while thousands of requests open.
        Bytes::from(serde_json::to_vec(&request).unwrap_or_default().into_boxed_slice())
    }

    /// The model for the primary endpoint: the caller's allowed choice, else the site's, else the
    /// configured one.
    pub(super) fn primary_model<'a>(&'a self, input: &'a ChatInput) -> &'a str {
        let site = input.site.settings.model.as_deref();
        input.overrides.model.as_deref().or(site).unwrap_or(&self.ladder.primary.model)
    }

    pub(super) async fn ask_model(&self, input: &ChatInput, messages: &[WireMessage<'_>]) -> ModelCall {
        if let Some(reason) = self.model_gate(&input.site).await {
            return ModelCall::refused(reason);
        }
        let safety = self.safety_identifier(input);
        let safety = safety.as_deref();
        let primary_model = self.primary_model(input);
        let run = self
            .ladder
            .run(&input.deadline, |endpoint, is_primary, timeout, cut| async move {
                let model = if is_primary { primary_model } else { endpoint.model.as_str() };
                let make_body = || self.request_body(input, messages, model, safety, false);
                endpoint.complete(make_body, timeout, cut).await
            })
            .await;
        self.count_attempts(run.attempts, run.result.is_ok());
        let upstream_ms = run.upstream_time.as_millis() as u64;
        self.metrics.upstream_duration.observe(run.upstream_time.as_secs_f64());
        let mut call = ModelCall {
            outcome: Err(FallbackReason::UpstreamError),
            usage: Usage::default(),
            model: run.model,
            upstream_ms,
            attempts: run.attempts,
        };
        if !run.errors.is_empty() {
            tracing::info!(attempts = run.attempts, errors = ?run.errors, "upstream attempts failed");
        }
        let completion = match run.result {
            Ok(completion) => completion,
            Err(reason) => {
                call.outcome = Err(reason);
                return call;
            }
        };
        call.usage = completion.usage.unwrap_or_default();
        let answer = if input.route == Route::SendChatMessage {
            structured::read_answer(&completion.content)
        } else {
            Some(ModelAnswer {
                reply: completion.content.clone(),
                confidence: 1.0,
                intent: None,
                needs_human: false,
                structured: false,
            })
        };
        call.outcome = match answer {
            None => Err(FallbackReason::UpstreamInvalid),
            Some(mut answer) => {
                match self.output.apply_for(&answer.reply, input.site.settings.allowed_link_hosts.as_deref()) {
                    Ok(clean) => {
                        answer.reply = clean;
                        Ok((answer, completion))
                    }
                    Err(OutputProblem::Leak) => {
                        tracing::warn!("reply repeated the system prompt: blocked");
                        Err(FallbackReason::LeakBlocked)
                    }
                    Err(OutputProblem::Empty) => Err(FallbackReason::UpstreamInvalid),
                }
            }
        };
        call
    }

    /// Failed attempts and the final one's outcome.
    pub(super) fn count_attempts(&self, attempts: u32, succeeded: bool) {
        if attempts == 0 {
            return;
        }
        let failures = if succeeded { attempts - 1 } else { attempts };
        self.metrics.upstream_attempts.with_label_values(&["failure"]).inc_by(u64::from(failures));
        if succeeded {
            self.metrics.upstream_attempts.with_label_values(&["success"]).inc();
        }
    }
}
