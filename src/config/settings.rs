//! The shape of configuration, exactly as `config/default.toml` spells it. Unknown keys are refused
//! so a typo never silently falls back to a default.

use super::secret::{comma_list, flexible_bool, Secret};
use serde::Deserialize;
use std::collections::BTreeMap;

/// Texts keyed by locale (`en`, `fr`, `fr-CA`, ...).
pub type LocalizedText = BTreeMap<String, String>;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub openai: OpenAiSettings,
    pub prompt: PromptSettings,
    pub history: HistorySettings,
    pub deadline: DeadlineSettings,
    pub retry: RetrySettings,
    pub breaker: BreakerSettings,
    pub kill_switch: KillSwitchSettings,
    pub fallback: FallbackSettings,
    pub auth: AuthSettings,
    pub limits: LimitSettings,
    pub signing: SigningSettings,
    pub output: OutputSettings,
    pub privacy: PrivacySettings,
    pub sessions: SessionSettings,
    pub handoff: HandoffSettings,
    pub webhook: WebhookSettings,
    pub storage: StorageSettings,
    pub budget: BudgetSettings,
    pub events: EventSettings,
    pub telemetry: TelemetrySettings,
    pub kb: KbSettings,
    #[serde(default)]
    pub intents: Vec<IntentRule>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub addr: String,
    pub body_limit_bytes: usize,
    pub shutdown_delay_ms: u64,
    pub drain_timeout_ms: u64,
    pub header_read_timeout_ms: u64,
    /// 0 = automatic: one per CPU the process may use.
    pub worker_threads: usize,
    pub tls_cert: String,
    pub tls_key: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenAiSettings {
    pub api_key: Secret,
    pub base_url: String,
    pub model: String,
    pub temperature: f32,
    pub max_completion_tokens: u32,
    pub timeout_ms: u64,
    pub connect_timeout_ms: u64,
    pub max_response_bytes: usize,
    #[serde(deserialize_with = "flexible_bool")]
    pub structured_output: bool,
    pub prompt_cache_key: String,
    pub fallback_model: String,
    pub fallback_base_url: String,
    pub fallback_api_key: Secret,
    #[serde(deserialize_with = "comma_list")]
    pub allowed_models: Vec<String>,
    pub compat_system_prompt: CompatSystemPrompt,
    pub compat_max_tokens: u32,
    #[serde(deserialize_with = "flexible_bool")]
    pub h2c: bool,
    /// PEM file of extra roots trusted for the upstream (a corporate proxy, a private gateway).
    pub ca_cert: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CompatSystemPrompt {
    Keep,
    Replace,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromptSettings {
    pub system: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistorySettings {
    pub max_turns: usize,
    pub max_entries: usize,
    pub max_prompt_tokens: usize,
    #[serde(deserialize_with = "flexible_bool")]
    pub require_signatures: bool,
    pub max_content_chars: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadlineSettings {
    pub total_ms: u64,
    pub fallback_reserve_ms: u64,
    pub min_attempt_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrySettings {
    pub max_retries: u32,
    pub backoff_base_ms: u64,
    pub backoff_max_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakerSettings {
    pub consecutive_failures: u32,
    pub window: usize,
    pub failure_rate: f64,
    pub open_ms: u64,
    pub slow_call_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KillSwitchSettings {
    #[serde(deserialize_with = "flexible_bool")]
    pub enabled: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FallbackSettings {
    pub default_locale: String,
    /// intent name (or `default`) → locale → text
    pub texts: BTreeMap<String, LocalizedText>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    #[serde(deserialize_with = "comma_list")]
    pub api_keys: Vec<Secret>,
    pub admin_key: Secret,
    #[serde(deserialize_with = "flexible_bool")]
    pub allow_anonymous: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitSettings {
    pub session_burst: u32,
    pub session_per_minute: u32,
    pub visitor_burst: u32,
    pub visitor_per_minute: u32,
    pub ip_burst: u32,
    pub ip_per_minute: u32,
    pub caller_per_minute: u32,
    #[serde(deserialize_with = "comma_list")]
    pub trusted_proxies: Vec<String>,
    pub max_tracked_keys: usize,
    pub sweep_interval_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigningSettings {
    pub key: Secret,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSettings {
    #[serde(deserialize_with = "comma_list")]
    pub allowed_link_hosts: Vec<String>,
    pub leak_window_chars: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrivacySettings {
    pub hash_salt: Secret,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionSettings {
    pub ttl_ms: u64,
    pub max_sessions: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HandoffSettings {
    pub low_confidence_threshold: f64,
    pub low_confidence_count: u32,
    pub repeat_count: u32,
    pub repeat_similarity: f64,
    pub recent_questions: usize,
    #[serde(deserialize_with = "flexible_bool")]
    pub on_needs_human: bool,
    pub release_after_ms: u64,
    pub transcript_turns: usize,
    /// How long a visitor may wait for the first agent message; 0 = no SLA.
    pub sla_ms: u64,
    pub notice: LocalizedText,
    pub holding: LocalizedText,
    /// Sent instead of `holding` once the SLA is breached and the visitor is still waiting.
    pub sla_notice: LocalizedText,
    /// locale → case-insensitive regexes: a request to act, which hands off even when a
    /// knowledge-first intent could be answered from the knowledge base.
    #[serde(default)]
    pub act_patterns: BTreeMap<String, Vec<String>>,
    /// Appended to a knowledge-first answer: a person is still on offer.
    pub offer: LocalizedText,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    pub url: String,
    pub secret: Secret,
    pub timeout_ms: u64,
    pub retry_base_ms: u64,
    pub retry_max_ms: u64,
    pub poll_interval_ms: u64,
    pub lease_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageSettings {
    pub database_url: Secret,
    pub redis_url: Secret,
    pub redis_key_prefix: String,
    pub expected_replicas: u32,
    pub redis_poll_ms: u64,
    pub connect_timeout_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetSettings {
    pub monthly_tokens: u64,
    pub daily_tokens: u64,
    pub monthly_usd: f64,
    #[serde(deserialize_with = "flexible_bool")]
    pub hard_stop: bool,
    pub alert_webhook_url: String,
    /// Alert when the last hour's tokens exceed this × the median hour of the previous 7 days
    /// (0 = off)…
    pub anomaly_factor: f64,
    /// …and at least this many tokens.
    pub anomaly_min_tokens: u64,
    /// model → USD per million tokens
    pub prices: BTreeMap<String, ModelPrice>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelPrice {
    pub prompt: f64,
    pub cached: f64,
    pub completion: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventSettings {
    pub queue_capacity: usize,
    pub retention_days: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetrySettings {
    pub log_level: String,
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Pretty,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntentRule {
    pub name: String,
    pub action: IntentAction,
    /// locale → case-insensitive regexes
    #[serde(default)]
    pub patterns: BTreeMap<String, Vec<String>>,
    /// For `model`: an extra system message.
    #[serde(default)]
    pub addendum: String,
    /// For `reply`: the static reply by locale.
    #[serde(default)]
    pub reply: LocalizedText,
    /// For `handoff`: a question the knowledge base answers with a passage at least this relevant
    /// (0–1) is answered from it, a person offered, unless it asks to act. None = always hand off.
    #[serde(default)]
    pub knowledge_first_score: Option<f32>,
}

/// Merging keyword and semantic results: a convex combination of their normalised scores (Bruch
/// et al., 2023), or reciprocal-rank fusion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fusion {
    Convex,
    Rrf,
}

impl KbSettings {
    /// The embeddings model search uses: none when `embeddings_model` is `off` (or empty) or there
    /// is no model API key to call it with.
    pub fn embeddings_model_in_use(&self, has_api_key: bool) -> Option<&str> {
        let model = self.embeddings_model.trim();
        (has_api_key && !model.is_empty() && !model.eq_ignore_ascii_case("off")).then_some(model)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IntentAction {
    Model,
    Reply,
    Handoff,
}

impl OpenAiSettings {
    /// The models callers may ask for: `allowed_models`, else the model and its fallback.
    pub fn allowed_models(&self) -> Vec<String> {
        if !self.allowed_models.is_empty() {
            return self.allowed_models.clone();
        }
        let mut models = vec![self.model.clone()];
        if !self.fallback_model.is_empty() && self.fallback_model != self.model {
            models.push(self.fallback_model.clone());
        }
        models
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KbSettings {
    #[serde(deserialize_with = "flexible_bool")]
    pub enabled: bool,
    #[serde(deserialize_with = "flexible_bool")]
    pub compat: bool,
    pub default_locale: String,
    pub chunk_tokens: usize,
    pub chunk_overlap_tokens: usize,
    pub top_k: usize,
    pub max_tokens: usize,
    pub min_score: f32,
    pub embeddings_model: String,
    pub embeddings_min_similarity: f32,
    pub embeddings_timeout_ms: u64,
    /// Recent questions whose vectors are kept in memory.
    pub embeddings_cache: usize,
    /// How the keyword and semantic lists are merged.
    pub fusion: Fusion,
    /// For `convex`: the semantic score's weight (the keyword score gets the rest).
    pub semantic_weight: f32,
    /// A query word in a document's title counts this much more than in its body.
    pub title_boost: f32,
    pub sync_interval_ms: u64,
    pub import_limit_bytes: usize,
    pub not_covered: LocalizedText,
    /// A passage at least this relevant answers, as extracted sentences, when the model cannot.
    pub extractive_min_score: f32,
}
