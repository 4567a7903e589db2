//! Intent fast-routing: configured patterns decide before any token is spent. The visitor's locale
//! chain is tried first, then every other locale (visitors often write in another language than
//! the site's).

use crate::config::{IntentAction, IntentRule, LocalizedText};
use regex::{Regex, RegexBuilder};

pub struct Intent {
    pub name: String,
    pub action: IntentAction,
    pub addendum: Option<String>,
    pub reply: LocalizedText,
    /// (locale, compiled pattern)
    patterns: Vec<(String, Regex)>,
}

pub struct IntentRouter {
    intents: Vec<Intent>,
}

impl IntentRouter {
    /// Patterns were checked at config load; one that still fails to compile is skipped.
    pub fn new(rules: &[IntentRule]) -> Self {
        let intents = rules
            .iter()
            .map(|rule| Intent {
                name: rule.name.clone(),
                action: rule.action,
                addendum: (!rule.addendum.trim().is_empty()).then(|| rule.addendum.clone()),
                reply: rule.reply.clone(),
                patterns: rule
                    .patterns
                    .iter()
                    .flat_map(|(locale, list)| list.iter().map(move |p| (locale, p)))
                    .filter_map(|(locale, p)| {
                        RegexBuilder::new(p)
                            .case_insensitive(true)
                            .build()
                            .ok()
                            .map(|re| (locale.to_ascii_lowercase(), re))
                    })
                    .collect(),
            })
            .collect();
        Self { intents }
    }

    /// The first intent (in configuration order) whose pattern matches, preferring patterns of the
    /// visitor's locale chain.
    pub fn route(&self, text: &str, locale: Option<&str>) -> Option<&Intent> {
        let chain = locale_chain(locale);
        let in_chain = |l: &str| chain.iter().any(|c| c == l);
        self.intents
            .iter()
            .find(|i| i.patterns.iter().any(|(l, re)| in_chain(l) && re.is_match(text)))
            .or_else(|| self.intents.iter().find(|i| i.patterns.iter().any(|(_, re)| re.is_match(text))))
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.intents.iter().map(|i| i.name.as_str())
    }
}

/// `fr-CA` → [`fr-ca`, `fr`].
fn locale_chain(locale: Option<&str>) -> Vec<String> {
    let mut chain = Vec::new();
    let mut current = locale.unwrap_or("").to_ascii_lowercase();
    while !current.is_empty() {
        chain.push(current.clone());
        match current.rfind('-') {
            Some(cut) => current.truncate(cut),
            None => break,
        }
    }
    chain
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    fn router() -> IntentRouter {
        IntentRouter::new(&Settings::from_toml_overrides("").unwrap().intents)
    }

    fn routed(text: &str, locale: Option<&str>) -> Option<String> {
        router().route(text, locale).map(|i| i.name.clone())
    }

    #[test]
    fn the_default_intents_route_their_phrasings() {
        for text in [
            "Can I talk to a human?",
            "connect me to an agent please",
            "I want to speak with a person",
            "REPRESENTATIVE",
            "let me chat with someone real",
        ] {
            assert_eq!(routed(text, Some("en-US")).as_deref(), Some("human_request"), "{text}");
        }
        assert_eq!(routed("Je veux parler à un conseiller", Some("fr-CA")).as_deref(), Some("human_request"));
        assert_eq!(routed("quiero hablar con una persona", None).as_deref(), Some("human_request"));
        assert_eq!(routed("I want a refund for order A-1", Some("en")).as_deref(), Some("refund"));
        assert_eq!(routed("je veux être remboursé", Some("fr")).as_deref(), Some("refund"));
        assert_eq!(routed("Why was I charged twice on my invoice?", Some("en")).as_deref(), Some("billing"));
        assert_eq!(routed("The app crashes when I log in", Some("en")).as_deref(), Some("technical"));
        assert_eq!(routed("Where is my order?", Some("en")), None);
    }

    #[test]
    fn locale_chains_walk_to_the_language() {
        assert_eq!(locale_chain(Some("fr-CA")), ["fr-ca", "fr"]);
        assert!(locale_chain(None).is_empty());
    }
}
