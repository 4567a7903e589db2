//! The chat service, built once from the settings and the collaborators it shares with the rest of
//! the process (stores, HTTP clients, metrics, the event queue, the knowledge base, the human loop).

use super::intents::IntentRouter;
use super::{ChatService, Quotas};
use crate::budget::Budget;
use crate::completion::breaker::Breaker;
use crate::completion::client::Endpoint;
use crate::completion::tokens::SharedTokenizer;
use crate::completion::{Ladder, LadderSettings, StaticReplies};
use crate::config::Settings;
use crate::guard::{OutputFilter, Redactor, Signer};
use crate::human_loop::HumanLoop;
use crate::knowledge::embed::Embedder;
use crate::knowledge::{KbError, KnowledgeBases};
use crate::rate::Quota;
use crate::store::{DurableStore, StateStore};
use crate::telemetry::{secrets_of, EventSink, Metrics};
use std::sync::Arc;
use std::time::Duration;

/// What the chat service uses but does not own.
pub struct Collaborators {
    pub store: Arc<dyn StateStore>,
    pub durable: Arc<dyn DurableStore>,
    /// The model API's client (the shared one unless `openai.h2c`).
    pub upstream: reqwest::Client,
    /// Where budget alerts and spend anomalies are queued.
    pub alerts: crate::support::SupportOutbox,
    pub metrics: Arc<Metrics>,
    pub events: EventSink,
    pub signer: Signer,
    pub redactor: Arc<Redactor>,
    pub knowledge: Arc<KnowledgeBases>,
    pub intents: Arc<IntentRouter>,
    pub human: Arc<HumanLoop>,
}

fn ms(value: u64) -> Duration {
    Duration::from_millis(value)
}

impl ChatService {
    pub fn new(settings: Arc<Settings>, with: Collaborators) -> Self {
        let s = &settings;
        let tokenizer = SharedTokenizer::default();
        tokenizer.warm();
        let l = &s.limits;
        let o = &s.openai;
        let ladder = ladder(s, &with.upstream, &with.metrics);
        Self {
            ladder,
            knowledge: with.knowledge,
            redactor: with.redactor.clone(),
            replies: StaticReplies::new(s.fallback.texts.clone(), &s.fallback.default_locale),
            intents: with.intents,
            output: OutputFilter::new(
                &s.output.allowed_link_hosts,
                &s.prompt.system,
                s.output.leak_window_chars,
                with.redactor,
            ),
            tokenizer,
            system_tokens: std::sync::OnceLock::new(),
            budget: Budget::new(s.budget.clone(), with.alerts),
            quotas: Quotas {
                session: Quota { burst: l.session_burst, per_minute: l.session_per_minute },
                visitor: Quota { burst: l.visitor_burst, per_minute: l.visitor_per_minute },
                caller: Quota { burst: l.caller_per_minute, per_minute: l.caller_per_minute },
            },
            prompt_cache_key: if o.prompt_cache_key.is_empty() {
                format!("velochat-{}", o.model)
            } else {
                o.prompt_cache_key.clone()
            },
            store: with.store,
            durable: with.durable,
            signer: with.signer,
            metrics: with.metrics,
            events: with.events,
            human: with.human,
            settings,
        }
    }
}

/// The redactor for everything kept or logged: the configured secrets and key shapes.
pub fn redactor(settings: &Settings) -> Arc<Redactor> {
    let secrets = secrets_of(settings);
    Arc::new(Redactor::new(secrets.iter().map(String::as_str)))
}

/// Every site's knowledge base; fails only when the index cannot be created. The embeddings model
/// has its own breaker: its outage never opens the chat's.
pub fn knowledge_base(
    settings: &Settings,
    upstream: &reqwest::Client,
    durable: Arc<dyn DurableStore>,
    metrics: &Metrics,
) -> Result<Arc<KnowledgeBases>, KbError> {
    let embedder = Embedder::from_settings(settings, upstream, Some(metrics.kb_embeddings.clone()));
    Ok(Arc::new(KnowledgeBases::new(&settings.kb, durable, embedder)?))
}

/// Primary model, optional fallback model, breaker and the deadline arithmetic.
fn ladder(s: &Settings, upstream: &reqwest::Client, metrics: &Arc<Metrics>) -> Ladder {
    let o = &s.openai;
    let primary = Endpoint::new(upstream, &o.base_url, &o.api_key, &o.model, o.max_response_bytes);
    let secondary = (!o.fallback_model.trim().is_empty()).then(|| {
        let base = if o.fallback_base_url.is_empty() { &o.base_url } else { &o.fallback_base_url };
        let key = if o.fallback_api_key.is_empty() { &o.api_key } else { &o.fallback_api_key };
        Endpoint::new(upstream, base, key, &o.fallback_model, o.max_response_bytes)
    });
    let circuit_metrics = metrics.clone();
    let breaker = Breaker::new(s.breaker.clone(), move |state| circuit_metrics.circuit_state.set(state.gauge()));
    Ladder {
        primary,
        secondary,
        breaker,
        settings: LadderSettings {
            attempt_timeout: ms(o.timeout_ms),
            fallback_reserve: ms(s.deadline.fallback_reserve_ms),
            min_attempt: ms(s.deadline.min_attempt_ms),
            max_retries: s.retry.max_retries,
            backoff_base: ms(s.retry.backoff_base_ms),
            backoff_max: ms(s.retry.backoff_max_ms),
            slow_call: ms(s.breaker.slow_call_ms),
        },
    }
}
