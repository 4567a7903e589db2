//! A string that never prints: keys and secrets read from configuration.

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use std::fmt;

#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The raw value, for the one place that must send or compare it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.trim().is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "[redacted]" })
    }
}

/// Environment values arrive untyped (`VELOCHAT_ADMIN_KEY=12345` parses as a number), so a secret
/// accepts any scalar and keeps its text.
struct ScalarText;

impl Visitor<'_> for ScalarText {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_owned())
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
        Ok(v)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_char<E: de::Error>(self, v: char) -> Result<String, E> {
        Ok(v.to_string())
    }
}

pub(crate) fn scalar_text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    d.deserialize_any(ScalarText)
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        scalar_text(d).map(Secret)
    }
}

/// A list given either as a TOML array or as one comma-separated string (`VELOCHAT_API_KEYS=a,b`).
pub(crate) fn comma_list<'de, D: Deserializer<'de>, T: From<String>>(d: D) -> Result<Vec<T>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        Many(Vec<SecretText>),
        One(SecretText),
    }
    #[derive(Deserialize)]
    struct SecretText(#[serde(deserialize_with = "scalar_text")] String);

    let items = match OneOrMany::deserialize(d)? {
        OneOrMany::Many(items) => items.into_iter().map(|s| s.0).collect::<Vec<_>>(),
        OneOrMany::One(text) => text.0.split(',').map(str::to_owned).collect(),
    };
    Ok(items.into_iter().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).map(T::from).collect())
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

/// Booleans from env may be written `on`/`off`/`yes`/`no`/`1`/`0` (`VELOCHAT_KILL_SWITCH=on`).
pub(crate) fn flexible_bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    let text = scalar_text(d)?;
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "on" | "yes" | "1" => Ok(true),
        "false" | "off" | "no" | "0" | "" => Ok(false),
        other => Err(de::Error::custom(format!("expected true/false/on/off, found `{other}`"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_never_prints_its_value() {
        let secret = Secret::new("sk-live-123");
        assert_eq!(format!("{secret:?}"), "[redacted]");
        assert_eq!(secret.expose(), "sk-live-123");
    }

    #[test]
    fn a_comma_separated_string_becomes_a_trimmed_list() {
        #[derive(Deserialize)]
        struct Keys {
            #[serde(deserialize_with = "comma_list")]
            keys: Vec<Secret>,
        }
        let parsed: Keys = serde_json::from_str(r#"{"keys": " a , b,,c "}"#).unwrap();
        let keys: Vec<&str> = parsed.keys.iter().map(Secret::expose).collect();
        assert_eq!(keys, ["a", "b", "c"]);
        let parsed: Keys = serde_json::from_str(r#"{"keys": ["x", 42]}"#).unwrap();
        let keys: Vec<&str> = parsed.keys.iter().map(Secret::expose).collect();
        assert_eq!(keys, ["x", "42"]);
    }

    #[test]
    fn switch_words_parse_as_booleans() {
        #[derive(Deserialize)]
        struct Flag {
            #[serde(deserialize_with = "flexible_bool")]
            on: bool,
        }
        for (text, expected) in [("\"on\"", true), ("\"off\"", false), ("true", true), ("1", true)] {
            let flag: Flag = serde_json::from_str(&format!("{{\"on\": {text}}}")).unwrap();
            assert_eq!(flag.on, expected, "{text}");
        }
        assert!(serde_json::from_str::<Flag>("{\"on\": \"maybe\"}").is_err());
    }
}
