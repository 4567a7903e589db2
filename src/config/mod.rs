//! Configuration: embedded defaults → `VELOCHAT_CONFIG` file → named env variables → generic
//! `VELOCHAT__SECTION__KEY` variables; then checked, with every message naming its key.

pub mod pem;
mod secret;
mod settings;
mod validate;

pub use secret::Secret;
pub use settings::*;
pub use validate::ConfigError;

use figment::providers::{Env, Format, Toml};
use figment::Figment;

/// The shipped defaults, compiled in so the binary runs anywhere without files.
pub const DEFAULT_TOML: &str = include_str!("../../config/default.toml");

/// Named environment variables and the key each one sets. `.env.example` lists the same.
pub const NAMED_ENV: &[(&str, &str)] = &[
    ("VELOCHAT_ADDR", "server.addr"),
    ("VELOCHAT_WORKER_THREADS", "server.worker_threads"),
    ("VELOCHAT_TLS_CERT", "server.tls_cert"),
    ("VELOCHAT_TLS_KEY", "server.tls_key"),
    ("OPENAI_API_KEY", "openai.api_key"),
    ("OPENAI_BASE_URL", "openai.base_url"),
    ("OPENAI_MODEL", "openai.model"),
    ("VELOCHAT_API_KEYS", "auth.api_keys"),
    ("VELOCHAT_ADMIN_KEY", "auth.admin_key"),
    ("VELOCHAT_ALLOW_ANONYMOUS", "auth.allow_anonymous"),
    ("VELOCHAT_LIMIT_SESSION_BURST", "limits.session_burst"),
    ("VELOCHAT_LIMIT_SESSION_PER_MINUTE", "limits.session_per_minute"),
    ("VELOCHAT_LIMIT_VISITOR_BURST", "limits.visitor_burst"),
    ("VELOCHAT_LIMIT_VISITOR_PER_MINUTE", "limits.visitor_per_minute"),
    ("VELOCHAT_LIMIT_IP_BURST", "limits.ip_burst"),
    ("VELOCHAT_LIMIT_IP_PER_MINUTE", "limits.ip_per_minute"),
    ("VELOCHAT_LIMIT_CALLER_PER_MINUTE", "limits.caller_per_minute"),
    ("VELOCHAT_TRUSTED_PROXIES", "limits.trusted_proxies"),
    ("VELOCHAT_SIGNING_KEY", "signing.key"),
    ("VELOCHAT_KILL_SWITCH", "kill_switch.enabled"),
    ("VELOCHAT_HANDOFF_WEBHOOK_URL", "webhook.url"),
    ("VELOCHAT_HANDOFF_SLA_MS", "handoff.sla_ms"),
    ("VELOCHAT_WEBHOOK_SECRET", "webhook.secret"),
    ("VELOCHAT_BUDGET_MONTHLY_TOKENS", "budget.monthly_tokens"),
    ("VELOCHAT_BUDGET_DAILY_TOKENS", "budget.daily_tokens"),
    ("VELOCHAT_BUDGET_MONTHLY_USD", "budget.monthly_usd"),
    ("VELOCHAT_ALERT_WEBHOOK_URL", "budget.alert_webhook_url"),
    ("VELOCHAT_KB_ENABLED", "kb.enabled"),
    ("VELOCHAT_KB_EMBEDDINGS_MODEL", "kb.embeddings_model"),
    ("DATABASE_URL", "storage.database_url"),
    ("REDIS_URL", "storage.redis_url"),
    ("VELOCHAT_LOG_LEVEL", "telemetry.log_level"),
    ("VELOCHAT_LOG_FORMAT", "telemetry.log_format"),
];

/// Prefix of the generic scheme: `VELOCHAT__OPENAI__TIMEOUT_MS=5000` sets `openai.timeout_ms`.
pub const GENERIC_ENV_PREFIX: &str = "VELOCHAT__";

impl Settings {
    /// Loads from the process environment (and the file it names). An empty variable counts as
    /// unset (a copied `.env.example` leaves many empty), so it never overrides a default.
    pub fn load() -> Result<Settings, ConfigError> {
        let mut figment = Figment::new().merge(Toml::string(DEFAULT_TOML));
        let empty: Vec<String> =
            std::env::vars_os().filter(|(_, v)| v.is_empty()).filter_map(|(k, _)| k.into_string().ok()).collect();
        let is_set = move |key: &str| !empty.iter().any(|e| e.eq_ignore_ascii_case(key));
        if let Some(path) = std::env::var("VELOCHAT_CONFIG").ok().filter(|p| !p.is_empty()) {
            if !std::path::Path::new(&path).is_file() {
                return Err(ConfigError::new("VELOCHAT_CONFIG", format!("`{path}` is not a readable file")));
            }
            figment = figment.merge(Toml::file(path));
        }
        let set = is_set.clone();
        let named = Env::raw().filter_map(move |key| {
            if !set(key.as_str()) {
                return None;
            }
            NAMED_ENV.iter().find(|(name, _)| key.as_str().eq_ignore_ascii_case(name)).map(|(_, path)| (*path).into())
        });
        let generic = Env::prefixed(GENERIC_ENV_PREFIX)
            .filter(move |key| is_set(&format!("{GENERIC_ENV_PREFIX}{key}")))
            .split("__");
        figment = figment.merge(named).merge(generic);
        Self::from_figment(figment)
    }

    /// The embedded defaults with `overrides` (TOML) on top; for tests and tools.
    pub fn from_toml_overrides(overrides: &str) -> Result<Settings, ConfigError> {
        let figment = Figment::new().merge(Toml::string(DEFAULT_TOML)).merge(Toml::string(overrides));
        Self::from_figment(figment)
    }

    fn from_figment(figment: Figment) -> Result<Settings, ConfigError> {
        let settings: Settings = figment.extract().map_err(ConfigError::from_figment)?;
        settings.validate()?;
        Ok(settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_defaults_load_and_validate() {
        let settings = Settings::from_toml_overrides("").unwrap();
        assert_eq!(settings.server.addr, "127.0.0.1:8080");
        assert_eq!(settings.history.max_turns, 8);
        assert_eq!(settings.openai.model, "gpt-4o-mini");
        assert!(settings.openai.api_key.is_empty());
        assert!(settings.intents.iter().any(|i| i.name == "human_request"));
    }

    #[test]
    fn an_unknown_key_is_refused_by_name() {
        let err = Settings::from_toml_overrides("[openai]\ntimout_ms = 5").unwrap_err();
        assert!(err.to_string().contains("timout_ms"), "{err}");
    }

    #[test]
    fn a_wrongly_typed_value_names_its_key() {
        let err = Settings::from_toml_overrides("[limits]\nsession_burst = \"many\"").unwrap_err();
        assert!(err.to_string().contains("limits.session_burst"), "{err}");
    }
}
