//! Intent fast-routing: configured patterns decide before any token is spent. The visitor's locale
//! chain is tried first, then every other locale (visitors often write in another language than
//! the site's).

use crate::config::{IntentAction, IntentRule, LocalizedText};
use regex::{RegexSet, RegexSetBuilder};

pub struct Intent {
    pub name: String,
    pub action: IntentAction,
    pub addendum: Option<String>,
    pub reply: LocalizedText,
    /// A handoff intent answered from the knowledge base when a passage is this relevant.
    pub knowledge_first_score: Option<f32>,
}

/// All patterns of all intents in one set, so a message is scanned once, not once per pattern.
pub struct IntentRouter {
    intents: Vec<Intent>,
    set: RegexSet,
    /// For each pattern of `set`: its intent (index) and locale.
    owners: Vec<(usize, String)>,
    /// Requests to act (every locale's patterns): they hand off even when knowledge could answer.
    act: RegexSet,
}

fn case_insensitive_set<'a>(patterns: impl IntoIterator<Item = &'a String>) -> RegexSet {
    RegexSetBuilder::new(patterns)
        .case_insensitive(true)
        .size_limit(64 << 20)
        .build()
        .unwrap_or_else(|e| panic!("intent patterns were validated at load: {e}"))
}

impl IntentRouter {
    /// Patterns were checked one by one at config load, so the sets compile.
    pub fn new(rules: &[IntentRule], act_patterns: &std::collections::BTreeMap<String, Vec<String>>) -> Self {
        let mut patterns = Vec::new();
        let mut owners = Vec::new();
        for (index, rule) in rules.iter().enumerate() {
            for (locale, list) in &rule.patterns {
                for pattern in list {
                    patterns.push(pattern.clone());
                    owners.push((index, locale.to_ascii_lowercase()));
                }
            }
        }
        let set = case_insensitive_set(&patterns);
        let act = case_insensitive_set(act_patterns.values().flatten());
        let intents = rules
            .iter()
            .map(|rule| Intent {
                name: rule.name.clone(),
                action: rule.action,
                addendum: (!rule.addendum.trim().is_empty()).then(|| rule.addendum.clone()),
                reply: rule.reply.clone(),
                knowledge_first_score: rule.knowledge_first_score,
            })
            .collect();
        Self { intents, set, owners, act }
    }

    /// "Cancel my order", "I want my money back for A-1001": the visitor asks for something to be
    /// done, not for information.
    pub fn asks_to_act(&self, text: &str) -> bool {
        self.act.is_match(text)
    }

    /// A request for a person: a handoff intent never answered from the knowledge base.
    pub fn asks_for_person(&self, text: &str) -> bool {
        self.route(text, None).is_some_and(|i| i.action == IntentAction::Handoff && i.knowledge_first_score.is_none())
    }

    /// The first intent (in configuration order) whose pattern matches, preferring patterns of the
    /// visitor's locale chain.
    pub fn route(&self, text: &str, locale: Option<&str>) -> Option<&Intent> {
        let matched = self.set.matches(text);
        if !matched.matched_any() {
            return None;
        }
        let chain = locale_chain(locale);
        let hits: Vec<&(usize, String)> = matched.iter().map(|i| &self.owners[i]).collect();
        let in_chain = hits.iter().filter(|(_, l)| chain.iter().any(|c| c == l)).map(|(i, _)| *i).min();
        let any = hits.iter().map(|(i, _)| *i).min();
        in_chain.or(any).map(|i| &self.intents[i])
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
        let settings = Settings::from_toml_overrides("").unwrap();
        IntentRouter::new(&settings.intents, &settings.handoff.act_patterns)
    }

    #[test]
    fn requests_to_act_are_told_from_questions_in_four_languages() {
        let router = router();
        for act in [
            "I want my money back for order A-1001",
            "cancel my order",
            "Please refund me",
            "Can you cancel my order?",
            "je veux être remboursé",
            "Annulez ma commande",
            "quiero que me devuelvan el dinero",
            "Cancela mi pedido",
            "Ich möchte eine Rückerstattung",
            "Bitte stornieren Sie meine Bestellung",
        ] {
            assert!(router.asks_to_act(act), "{act}");
        }
        for question in [
            "How long do refunds take?",
            "How do I cancel my order?",
            "Combien de temps prend un remboursement ?",
            "¿Cuánto tardan los reembolsos?",
            "Wie lange dauert eine Rückerstattung?",
        ] {
            assert!(!router.asks_to_act(question), "{question}");
        }
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
