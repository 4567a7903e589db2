//! A site's settings: every one optional, unset meaning the deployment's configuration. Parsed
//! strictly (an unknown or invalid setting is refused naming its field) and stored as JSON.

use crate::config::LocalizedText;
use crate::domain::InvalidField;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const MAX_INSTRUCTIONS_CHARS: usize = 4_000;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SiteSettings {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_locale: Option<String>,
    /// intent name (or `default`) → locale → text, as `[fallback.texts]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub static_replies: Option<BTreeMap<String, LocalizedText>>,
    /// locale → text, as `[handoff.holding]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub holding_text: Option<LocalizedText>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kill_switch: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget: Option<SiteBudget>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handoff: Option<SiteHandoff>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alert_webhook_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limits: Option<SiteLimits>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_link_hosts: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SiteBudget {
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(default, deserialize_with = "whole_number")]
    pub daily_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(default, deserialize_with = "whole_number")]
    pub monthly_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub monthly_usd: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SiteHandoff {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,
    /// Write-only: stored, never answered (`SiteSettings::public`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_secret: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(default, deserialize_with = "whole_number")]
    pub sla_ms: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SiteLimits {
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(default, deserialize_with = "whole_number")]
    pub caller_per_minute: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(default, deserialize_with = "whole_number")]
    pub session_burst: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(default, deserialize_with = "whole_number")]
    pub session_per_minute: Option<u32>,
}

/// A whole number, written as JSON may write one (`9365` or `9365.0`), that fits `T`.
fn whole_number<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<u64>,
{
    let Some(number) = Option::<serde_json::Number>::deserialize(deserializer)? else {
        return Ok(None);
    };
    let whole = number.as_u64().or_else(|| {
        number.as_f64().filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= u64::MAX as f64).map(|f| f as u64)
    });
    whole
        .and_then(|n| T::try_from(n).ok())
        .map(Some)
        .ok_or_else(|| serde::de::Error::custom(format!("expected a whole number in range, got {number}")))
}

fn invalid(field: &str, message: impl Into<String>) -> InvalidField {
    InvalidField::new(field, "invalid_field", message)
}

fn check_url(field: &str, url: &Option<String>) -> Result<(), InvalidField> {
    match url {
        Some(url) if reqwest::Url::parse(url).map(|u| !matches!(u.scheme(), "http" | "https")).unwrap_or(true) => {
            Err(invalid(field, format!("`{field}` must be an http:// or https:// URL")))
        }
        _ => Ok(()),
    }
}

fn check_texts(field: &str, texts: &LocalizedText) -> Result<(), InvalidField> {
    for (locale, text) in texts {
        if locale.is_empty() || locale.chars().count() > 35 || text.trim().is_empty() || text.chars().count() > 2_000 {
            return Err(invalid(
                &format!("{field}.{locale}"),
                format!("`{field}.{locale}` must be 1–2,000 characters under a locale tag"),
            ));
        }
    }
    Ok(())
}

fn positive(field: &str, value: Option<u64>) -> Result<(), InvalidField> {
    match value {
        Some(0) => Err(invalid(field, format!("`{field}` must be greater than 0"))),
        _ => Ok(()),
    }
}

impl SiteSettings {
    /// Parses `settings` (absent = none set), naming the first field that is unknown or invalid.
    pub fn parse(raw: Option<&serde_json::Value>) -> Result<Self, InvalidField> {
        let Some(raw) = raw.filter(|v| !v.is_null()) else {
            return Ok(Self::default());
        };
        let parsed: Self = serde_path_to_error::deserialize(raw).map_err(|e| {
            let path = e.path().to_string();
            let field = if path == "." { "settings".to_owned() } else { format!("settings.{path}") };
            invalid(&field, format!("`{field}`: {}", e.inner()))
        })?;
        parsed.check()?;
        Ok(parsed)
    }

    fn check(&self) -> Result<(), InvalidField> {
        if self.instructions.as_ref().is_some_and(|t| t.chars().count() > MAX_INSTRUCTIONS_CHARS) {
            return Err(invalid(
                "settings.instructions",
                format!("`settings.instructions` must be at most {MAX_INSTRUCTIONS_CHARS} characters"),
            ));
        }
        let model_ok = |m: &String| !m.is_empty() && m.chars().count() <= 100 && !m.chars().any(char::is_whitespace);
        if self.model.as_ref().is_some_and(|m| !model_ok(m)) {
            return Err(invalid("settings.model", "`settings.model` must be a model name (1–100, no spaces)"));
        }
        if self.default_locale.as_ref().is_some_and(|l| l.is_empty() || l.chars().count() > 35) {
            return Err(invalid("settings.defaultLocale", "`settings.defaultLocale` must be a locale tag"));
        }
        for (intent, texts) in self.static_replies.iter().flatten() {
            check_texts(&format!("settings.staticReplies.{intent}"), texts)?;
        }
        if let Some(texts) = &self.holding_text {
            check_texts("settings.holdingText", texts)?;
        }
        if let Some(budget) = &self.budget {
            positive("settings.budget.dailyTokens", budget.daily_tokens)?;
            positive("settings.budget.monthlyTokens", budget.monthly_tokens)?;
            if budget.monthly_usd.is_some_and(|usd| !usd.is_finite() || usd <= 0.0) {
                return Err(invalid("settings.budget.monthlyUsd", "`settings.budget.monthlyUsd` must be above 0"));
            }
        }
        if let Some(handoff) = &self.handoff {
            check_url("settings.handoff.webhookUrl", &handoff.webhook_url)?;
            if handoff.webhook_secret.as_ref().is_some_and(|s| s.len() < 16) {
                return Err(invalid(
                    "settings.handoff.webhookSecret",
                    "`settings.handoff.webhookSecret` must be at least 16 characters",
                ));
            }
        }
        check_url("settings.alertWebhookUrl", &self.alert_webhook_url)?;
        if let Some(limits) = &self.limits {
            for (field, value) in [
                ("settings.limits.callerPerMinute", limits.caller_per_minute),
                ("settings.limits.sessionBurst", limits.session_burst),
                ("settings.limits.sessionPerMinute", limits.session_per_minute),
            ] {
                positive(field, value.map(u64::from))?;
            }
        }
        for (index, host) in self.allowed_link_hosts.iter().flatten().enumerate() {
            let ok = !host.is_empty()
                && host.len() <= 253
                && host.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.*".contains(&b));
            if !ok {
                let field = format!("settings.allowedLinkHosts[{index}]");
                return Err(invalid(&field, format!("`{field}` must be a host name")));
            }
        }
        Ok(())
    }

    /// A write keeps the stored webhook secret when the new settings leave it out (it is never
    /// read back, so a read-modify-write could not carry it).
    pub fn keep_secret_from(&mut self, previous: &SiteSettings) {
        let kept = previous.handoff.as_ref().and_then(|h| h.webhook_secret.clone());
        if let (Some(handoff), Some(kept)) = (self.handoff.as_mut(), kept) {
            handoff.webhook_secret.get_or_insert(kept);
        }
    }

    /// The settings as answered: the webhook secret left out.
    pub fn public(&self) -> serde_json::Value {
        let mut shown = self.clone();
        if let Some(handoff) = shown.handoff.as_mut() {
            handoff.webhook_secret = None;
        }
        serde_json::to_value(shown).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn refused(raw: serde_json::Value) -> String {
        SiteSettings::parse(Some(&raw)).unwrap_err().field
    }

    #[test]
    fn every_setting_round_trips_and_the_secret_is_never_shown() {
        let raw = json!({"instructions": "Be brief.", "model": "gpt-4o-mini", "defaultLocale": "fr",
            "staticReplies": {"default": {"en": "Sorry."}}, "holdingText": {"en": "Hold on."}, "killSwitch": true,
            "budget": {"dailyTokens": 10, "monthlyTokens": 100, "monthlyUsd": 2.5},
            "handoff": {"webhookUrl": "https://hooks.example/h", "webhookSecret": "0123456789abcdef", "slaMs": 1000},
            "alertWebhookUrl": "https://hooks.example/a",
            "limits": {"callerPerMinute": 5, "sessionBurst": 2, "sessionPerMinute": 3},
            "allowedLinkHosts": ["shop.example"]});
        let parsed = SiteSettings::parse(Some(&raw)).unwrap();
        assert_eq!(parsed.handoff.as_ref().unwrap().webhook_secret.as_deref(), Some("0123456789abcdef"));
        let shown = parsed.public();
        assert_eq!(shown["handoff"], json!({"webhookUrl": "https://hooks.example/h", "slaMs": 1000}));
        assert_eq!(shown["budget"]["monthlyUsd"], json!(2.5));
    }

    #[test]
    fn unknown_or_invalid_settings_name_their_field() {
        assert_eq!(refused(json!({"colour": "red"})), "settings.colour");
        assert_eq!(refused(json!({"budget": {"yearlyTokens": 1}})), "settings.budget.yearlyTokens");
        assert_eq!(refused(json!({"killSwitch": "yes"})), "settings.killSwitch");
        assert_eq!(refused(json!({"instructions": "x".repeat(4_001)})), "settings.instructions");
        assert_eq!(refused(json!({"handoff": {"webhookUrl": "ftp://x"}})), "settings.handoff.webhookUrl");
        assert_eq!(refused(json!({"limits": {"sessionBurst": 0}})), "settings.limits.sessionBurst");
        assert_eq!(refused(json!({"limits": {"sessionBurst": 2.5}})), "settings.limits.sessionBurst");
        assert_eq!(refused(json!({"limits": {"sessionBurst": 5_000_000_000_u64}})), "settings.limits.sessionBurst");
        let written_as_float = SiteSettings::parse(Some(&json!({"budget": {"dailyTokens": 9365.0}}))).unwrap();
        assert_eq!(written_as_float.budget.unwrap().daily_tokens, Some(9365));
        assert_eq!(refused(json!({"allowedLinkHosts": ["ok.example", "no spaces"]})), "settings.allowedLinkHosts[1]");
    }

    #[test]
    fn an_omitted_secret_is_kept_from_the_stored_settings() {
        let stored = SiteSettings::parse(Some(&json!({"handoff": {"webhookSecret": "0123456789abcdef"}}))).unwrap();
        let mut next = SiteSettings::parse(Some(&json!({"handoff": {"webhookUrl": "https://x.example/"}}))).unwrap();
        next.keep_secret_from(&stored);
        assert_eq!(next.handoff.unwrap().webhook_secret.as_deref(), Some("0123456789abcdef"));
    }
}
