//! Static replies: chosen by intent, then by locale along its chain (`fr-CA` → `fr` → default).

use crate::config::LocalizedText;
use std::collections::BTreeMap;

/// The text for `locale` (`fr-CA` tries `fr-CA`, then `fr`), else the default locale's.
pub fn pick_localized<'a>(texts: &'a LocalizedText, locale: Option<&str>, default_locale: &str) -> Option<&'a str> {
    in_chain(texts, locale.unwrap_or(default_locale)).or_else(|| texts.get(default_locale).map(String::as_str))
}

/// The text for `locale` or one of its parents, without falling back to another language.
fn in_chain<'a>(texts: &'a LocalizedText, locale: &str) -> Option<&'a str> {
    let mut candidate = locale;
    loop {
        if let Some(text) = texts
            .get(candidate)
            .or_else(|| texts.iter().find(|(k, _)| k.eq_ignore_ascii_case(candidate)).map(|(_, v)| v))
        {
            return Some(text);
        }
        match candidate.rfind('-') {
            Some(cut) => candidate = &candidate[..cut],
            None => return None,
        }
    }
}

pub struct StaticReplies {
    by_intent: BTreeMap<String, LocalizedText>,
    default_locale: String,
}

impl StaticReplies {
    pub fn new(by_intent: BTreeMap<String, LocalizedText>, default_locale: &str) -> Self {
        Self { by_intent, default_locale: default_locale.to_owned() }
    }

    /// The visitor's language comes first: the intent's text in the locale chain, then the default
    /// text in the locale chain, then the same two in the default locale.
    pub fn pick(&self, intent: Option<&str>, locale: Option<&str>) -> &str {
        pick_static(&self.by_intent, &self.default_locale, intent, locale)
            .unwrap_or("Sorry, I can't answer right now. Please try again in a moment.")
    }
}

/// `StaticReplies::pick`'s order over any set of texts (a site's own too); None when none fits.
pub fn pick_static<'a>(
    by_intent: &'a BTreeMap<String, LocalizedText>,
    default_locale: &str,
    intent: Option<&str>,
    locale: Option<&str>,
) -> Option<&'a str> {
    let specific = intent.and_then(|name| by_intent.get(name));
    let default = by_intent.get("default");
    let chain = [locale, Some(default_locale)];
    chain
        .into_iter()
        .flatten()
        .flat_map(|loc| [specific, default].into_iter().flatten().map(move |texts| (texts, loc)))
        .find_map(|(texts, loc)| in_chain(texts, loc))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(pairs: &[(&str, &str)]) -> LocalizedText {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn walks_the_locale_chain_then_the_default() {
        let t = texts(&[("en", "hello"), ("fr", "bonjour"), ("fr-CA", "allô")]);
        assert_eq!(pick_localized(&t, Some("fr-CA"), "en"), Some("allô"));
        assert_eq!(pick_localized(&t, Some("fr-BE"), "en"), Some("bonjour"));
        assert_eq!(pick_localized(&t, Some("FR"), "en"), Some("bonjour"));
        assert_eq!(pick_localized(&t, Some("de-AT"), "en"), Some("hello"));
        assert_eq!(pick_localized(&t, None, "en"), Some("hello"));
    }

    #[test]
    fn an_intent_text_wins_over_the_default_only_when_it_exists() {
        let mut by_intent = BTreeMap::new();
        by_intent.insert("default".to_string(), texts(&[("en", "default en"), ("fr", "défaut fr")]));
        by_intent.insert("billing".to_string(), texts(&[("en", "billing en")]));
        let replies = StaticReplies::new(by_intent, "en");
        assert_eq!(replies.pick(Some("billing"), Some("en-US")), "billing en");
        // billing has no French text: the visitor's language wins over the intent
        assert_eq!(replies.pick(Some("billing"), Some("fr")), "défaut fr");
        assert_eq!(replies.pick(Some("billing"), Some("de")), "billing en");
        assert_eq!(replies.pick(Some("unknown"), Some("fr")), "défaut fr");
        assert_eq!(replies.pick(None, None), "default en");
    }
}
