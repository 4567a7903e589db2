//! Checks that need more than types: ranges, URLs, CIDRs, regexes, and texts that must exist.

use super::settings::*;
use std::net::SocketAddr;

/// A configuration problem, always naming the key it is about.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration: `{key}`: {message}")]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self { key: key.into(), message: message.into() }
    }

    pub(super) fn from_figment(err: figment::Error) -> Self {
        let source = err.metadata.as_ref().map(|m| format!(" (from {})", m.name)).unwrap_or_default();
        let key = if err.path.is_empty() { "config".to_owned() } else { err.path.join(".") };
        Self::new(key, format!("{}{source}", err.kind))
    }
}

fn check(ok: bool, key: &str, message: &str) -> Result<(), ConfigError> {
    if ok {
        Ok(())
    } else {
        Err(ConfigError::new(key, message))
    }
}

fn check_url(value: &str, key: &str) -> Result<(), ConfigError> {
    let url = reqwest::Url::parse(value).map_err(|e| ConfigError::new(key, format!("`{value}` is not a URL: {e}")))?;
    check(matches!(url.scheme(), "http" | "https") && url.host().is_some(), key, "must be an http(s) URL with a host")
}

fn check_localized(texts: &LocalizedText, default_locale: &str, key: &str) -> Result<(), ConfigError> {
    check(
        texts.get(default_locale).is_some_and(|t| !t.trim().is_empty()),
        key,
        &format!("must have a non-empty text for the default locale `{default_locale}`"),
    )
}

impl Settings {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        self.validate_server()?;
        self.validate_upstream()?;
        self.validate_conversation()?;
        self.validate_guards()?;
        self.validate_outcomes()?;
        self.validate_storage()?;
        self.validate_knowledge()?;
        self.validate_intents()
    }

    fn validate_knowledge(&self) -> Result<(), ConfigError> {
        let k = &self.kb;
        let languages = ["en", "fr", "es", "de"];
        check(languages.contains(&k.default_locale.as_str()), "kb.default_locale", "must be en, fr, es or de")?;
        check((32..=2000).contains(&k.chunk_tokens), "kb.chunk_tokens", "must be between 32 and 2000")?;
        check(
            k.chunk_overlap_tokens <= k.chunk_tokens / 2,
            "kb.chunk_overlap_tokens",
            "must be at most half of kb.chunk_tokens",
        )?;
        check((1..=20).contains(&k.top_k), "kb.top_k", "must be between 1 and 20")?;
        check(k.max_tokens >= 50, "kb.max_tokens", "must be at least 50")?;
        check((0.0..=1.0).contains(&k.min_score), "kb.min_score", "must be between 0 and 1")?;
        check(
            (0.0..=1.0).contains(&k.embeddings_min_similarity),
            "kb.embeddings_min_similarity",
            "must be between 0 and 1",
        )?;
        check(k.embeddings_timeout_ms >= 1, "kb.embeddings_timeout_ms", "must be at least 1")?;
        check((0.0..=1.0).contains(&k.semantic_weight), "kb.semantic_weight", "must be from 0 to 1")?;
        check((0.0..=10.0).contains(&k.title_boost), "kb.title_boost", "must be from 0 to 10")?;
        check(k.sync_interval_ms >= 50, "kb.sync_interval_ms", "must be at least 50")?;
        check(k.import_limit_bytes >= 65_536, "kb.import_limit_bytes", "must be at least 65536")?;
        if !k.not_covered.is_empty() {
            check_localized(&k.not_covered, &self.fallback.default_locale, "kb.not_covered")?;
        }
        Ok(())
    }

    fn validate_server(&self) -> Result<(), ConfigError> {
        let s = &self.server;
        s.addr.parse::<SocketAddr>().map_err(|_| {
            ConfigError::new("server.addr", format!("`{}` is not an address like 127.0.0.1:8080", s.addr))
        })?;
        check(s.body_limit_bytes >= 1024, "server.body_limit_bytes", "must be at least 1024")?;
        check(s.header_read_timeout_ms > 0, "server.header_read_timeout_ms", "must be above 0")?;
        check(s.worker_threads <= 1024, "server.worker_threads", "must be at most 1024 (0 = automatic)")?;
        check(
            s.tls_cert.is_empty() == s.tls_key.is_empty(),
            "server.tls_cert",
            "tls_cert and tls_key must be set together",
        )?;
        for (key, path) in [("server.tls_cert", &s.tls_cert), ("server.tls_key", &s.tls_key)] {
            check(
                path.is_empty() || std::path::Path::new(path).is_file(),
                key,
                &format!("`{path}` is not a readable file"),
            )?;
        }
        let ca = &self.openai.ca_cert;
        check(
            ca.is_empty() || std::path::Path::new(ca).is_file(),
            "openai.ca_cert",
            &format!("`{ca}` is not a readable file"),
        )?;
        let level = &self.telemetry.log_level;
        tracing_subscriber::EnvFilter::try_new(level)
            .map_err(|e| ConfigError::new("telemetry.log_level", format!("`{level}`: {e}")))?;
        Ok(())
    }

    fn validate_upstream(&self) -> Result<(), ConfigError> {
        let o = &self.openai;
        check_url(&o.base_url, "openai.base_url")?;
        if !o.fallback_base_url.is_empty() {
            check_url(&o.fallback_base_url, "openai.fallback_base_url")?;
        }
        check(!o.model.trim().is_empty(), "openai.model", "must not be empty")?;
        check((0.0..=2.0).contains(&o.temperature), "openai.temperature", "must be between 0 and 2")?;
        check(o.max_completion_tokens >= 1, "openai.max_completion_tokens", "must be at least 1")?;
        check(o.compat_max_tokens >= 1, "openai.compat_max_tokens", "must be at least 1")?;
        check(o.timeout_ms >= 1, "openai.timeout_ms", "must be above 0")?;
        check(o.connect_timeout_ms >= 1, "openai.connect_timeout_ms", "must be above 0")?;
        check(o.max_response_bytes >= 1024, "openai.max_response_bytes", "must be at least 1024")?;
        let d = &self.deadline;
        check(d.total_ms >= 100, "deadline.total_ms", "must be at least 100")?;
        check(d.fallback_reserve_ms < d.total_ms, "deadline.fallback_reserve_ms", "must be below deadline.total_ms")?;
        check(self.retry.max_retries <= 1, "retry.max_retries", "must be 0 or 1 (attempts never exceed 2)")?;
        check(
            self.retry.backoff_base_ms <= self.retry.backoff_max_ms,
            "retry.backoff_base_ms",
            "must not exceed retry.backoff_max_ms",
        )?;
        let b = &self.breaker;
        check(b.consecutive_failures >= 1, "breaker.consecutive_failures", "must be at least 1")?;
        check(b.window >= 1, "breaker.window", "must be at least 1")?;
        check(b.failure_rate > 0.0 && b.failure_rate <= 1.0, "breaker.failure_rate", "must be above 0 and at most 1")?;
        check(b.open_ms >= 1, "breaker.open_ms", "must be above 0")
    }

    fn validate_conversation(&self) -> Result<(), ConfigError> {
        let h = &self.history;
        check(h.max_entries >= 1, "history.max_entries", "must be at least 1")?;
        check(h.max_prompt_tokens >= 100, "history.max_prompt_tokens", "must be at least 100")?;
        check(h.max_content_chars >= 1, "history.max_content_chars", "must be at least 1")?;
        check(!self.prompt.system.trim().is_empty(), "prompt.system", "must not be empty")?;
        let locale = &self.fallback.default_locale;
        let default = self.fallback.texts.get("default").ok_or_else(|| {
            ConfigError::new("fallback.texts.default", "must exist (the reply when no intent text fits)")
        })?;
        check_localized(default, locale, "fallback.texts.default")?;
        check_localized(&self.handoff.notice, locale, "handoff.notice")?;
        check_localized(&self.handoff.holding, locale, "handoff.holding")?;
        check_localized(&self.handoff.sla_notice, locale, "handoff.sla_notice")
    }

    fn validate_guards(&self) -> Result<(), ConfigError> {
        let l = &self.limits;
        for (key, value) in [
            ("limits.session_burst", l.session_burst),
            ("limits.session_per_minute", l.session_per_minute),
            ("limits.visitor_burst", l.visitor_burst),
            ("limits.visitor_per_minute", l.visitor_per_minute),
            ("limits.ip_burst", l.ip_burst),
            ("limits.ip_per_minute", l.ip_per_minute),
            ("limits.caller_per_minute", l.caller_per_minute),
        ] {
            check(value >= 1, key, "must be at least 1")?;
        }
        check(l.max_tracked_keys >= 16, "limits.max_tracked_keys", "must be at least 16")?;
        check(l.sweep_interval_ms >= 1, "limits.sweep_interval_ms", "must be above 0")?;
        for proxy in &l.trusted_proxies {
            crate::domain::parse_cidr(proxy)
                .map_err(|e| ConfigError::new("limits.trusted_proxies", format!("`{proxy}`: {e}")))?;
        }
        check(self.output.leak_window_chars >= 10, "output.leak_window_chars", "must be at least 10")?;
        for host in &self.output.allowed_link_hosts {
            check(
                !host.contains('/') && !host.contains(':'),
                "output.allowed_link_hosts",
                &format!("`{host}` must be a bare host name like example.com"),
            )?;
        }
        Ok(())
    }

    fn validate_outcomes(&self) -> Result<(), ConfigError> {
        let h = &self.handoff;
        check(
            (0.0..=1.0).contains(&h.low_confidence_threshold),
            "handoff.low_confidence_threshold",
            "must be between 0 and 1",
        )?;
        check(
            (0.0..=1.0).contains(&h.repeat_similarity) && h.repeat_similarity > 0.0,
            "handoff.repeat_similarity",
            "must be above 0 and at most 1",
        )?;
        check(h.recent_questions >= 1, "handoff.recent_questions", "must be at least 1")?;
        check(self.sessions.max_sessions >= 1, "sessions.max_sessions", "must be at least 1")?;
        check(self.sessions.ttl_ms >= 1000, "sessions.ttl_ms", "must be at least 1000")?;
        let w = &self.webhook;
        if !w.url.is_empty() {
            check_url(&w.url, "webhook.url")?;
        }
        check(w.timeout_ms >= 1, "webhook.timeout_ms", "must be above 0")?;
        check(w.retry_base_ms >= 1, "webhook.retry_base_ms", "must be above 0")?;
        check(w.retry_base_ms <= w.retry_max_ms, "webhook.retry_base_ms", "must not exceed webhook.retry_max_ms")?;
        check(w.poll_interval_ms >= 1, "webhook.poll_interval_ms", "must be above 0")?;
        check(w.lease_ms >= 100, "webhook.lease_ms", "must be at least 100")?;
        let b = &self.budget;
        check(b.monthly_usd >= 0.0, "budget.monthly_usd", "must not be negative")?;
        check(
            b.anomaly_factor.is_finite() && b.anomaly_factor >= 0.0,
            "budget.anomaly_factor",
            "must be 0 (off) or above",
        )?;
        if !b.alert_webhook_url.is_empty() {
            check_url(&b.alert_webhook_url, "budget.alert_webhook_url")?;
        }
        for (model, price) in &b.prices {
            check(
                price.prompt >= 0.0 && price.cached >= 0.0 && price.completion >= 0.0,
                &format!("budget.prices.{model}"),
                "prices must not be negative",
            )?;
        }
        check(self.events.queue_capacity >= 1, "events.queue_capacity", "must be at least 1")?;
        check(self.events.retention_days >= 1, "events.retention_days", "must be at least 1")
    }

    fn validate_storage(&self) -> Result<(), ConfigError> {
        let s = &self.storage;
        let db = s.database_url.expose();
        check(
            db.starts_with("sqlite:") || db.starts_with("postgres://") || db.starts_with("postgresql://"),
            "storage.database_url",
            "must start with sqlite:, postgres:// or postgresql://",
        )?;
        let redis = s.redis_url.expose();
        check(
            redis.is_empty() || redis.starts_with("redis://") || redis.starts_with("rediss://"),
            "storage.redis_url",
            "must start with redis:// or rediss://",
        )?;
        check(s.expected_replicas >= 1, "storage.expected_replicas", "must be at least 1")?;
        check(s.connect_timeout_ms <= 600_000, "storage.connect_timeout_ms", "must be at most 600000 (10 minutes)")?;
        check(s.redis_poll_ms >= 10, "storage.redis_poll_ms", "must be at least 10")
    }

    fn validate_intents(&self) -> Result<(), ConfigError> {
        let mut seen = std::collections::HashSet::new();
        for (index, intent) in self.intents.iter().enumerate() {
            let key = format!("intents[{index}]");
            check(!intent.name.trim().is_empty(), &format!("{key}.name"), "must not be empty")?;
            check(
                seen.insert(intent.name.as_str()),
                &format!("{key}.name"),
                &format!("`{}` is used by two intents", intent.name),
            )?;
            check(
                intent.patterns.values().any(|p| !p.is_empty()),
                &format!("{key}.patterns"),
                "needs at least one pattern",
            )?;
            for (locale, patterns) in &intent.patterns {
                for pattern in patterns {
                    regex::RegexBuilder::new(pattern).case_insensitive(true).build().map_err(|e| {
                        ConfigError::new(format!("{key}.patterns.{locale}"), format!("`{pattern}`: {e}"))
                    })?;
                }
            }
            if intent.action == IntentAction::Reply {
                check_localized(&intent.reply, &self.fallback.default_locale, &format!("{key}.reply"))?;
            }
            if let Some(score) = intent.knowledge_first_score {
                check((0.0..=1.0).contains(&score), &format!("{key}.knowledge_first_score"), "must be from 0 to 1")?;
            }
        }
        for (locale, patterns) in &self.handoff.act_patterns {
            for pattern in patterns {
                regex::RegexBuilder::new(pattern).case_insensitive(true).build().map_err(|e| {
                    ConfigError::new(format!("handoff.act_patterns.{locale}"), format!("`{pattern}`: {e}"))
                })?;
            }
        }
        check_localized(&self.handoff.offer, &self.fallback.default_locale, "handoff.offer")?;
        check(
            (0.0..=1.01).contains(&self.kb.extractive_min_score),
            "kb.extractive_min_score",
            "must be from 0 to 1 (1.01 = never)",
        )
    }
}
