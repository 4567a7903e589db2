//! Language-aware analysis: the four languages with stemming and stop words, how a locale maps to
//! one, and whether a visitor's message is a real question.

use tantivy::tokenizer::{
    AsciiFoldingFilter, Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer, StopWordFilter, TextAnalyzer,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lang {
    En,
    Fr,
    Es,
    De,
}

impl Lang {
    pub const ALL: [Lang; 4] = [Lang::En, Lang::Fr, Lang::Es, Lang::De];

    /// `fr-CA` → French; anything else (or nothing) → `default`.
    pub fn of_locale(locale: Option<&str>, default: Lang) -> Lang {
        let primary = locale.and_then(|l| l.split(['-', '_']).next()).map(str::to_ascii_lowercase);
        match primary.as_deref() {
            Some("en") => Lang::En,
            Some("fr") => Lang::Fr,
            Some("es") => Lang::Es,
            Some("de") => Lang::De,
            _ => default,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Fr => "fr",
            Lang::Es => "es",
            Lang::De => "de",
        }
    }

    fn tantivy(self) -> Language {
        match self {
            Lang::En => Language::English,
            Lang::Fr => Language::French,
            Lang::Es => Language::Spanish,
            Lang::De => Language::German,
        }
    }

    /// Words, lower-cased, stop words out, stemmed (Snowball), then accents folded so `envío` and
    /// `envio` meet.
    pub fn analyzer(self) -> TextAnalyzer {
        let builder =
            TextAnalyzer::builder(SimpleTokenizer::default()).filter(RemoveLongFilter::limit(40)).filter(LowerCaser);
        let stop = match self {
            // tantivy's English list is Lucene's 33 words; questions need Snowball's ("you", "do", "how").
            Lang::En => Some(StopWordFilter::remove(ENGLISH_STOP_WORDS.split_whitespace().map(str::to_owned))),
            _ => StopWordFilter::new(self.tantivy()),
        };
        match stop {
            Some(stop) => builder.filter(stop).filter(Stemmer::new(self.tantivy())).filter(AsciiFoldingFilter).build(),
            None => builder.filter(Stemmer::new(self.tantivy())).filter(AsciiFoldingFilter).build(),
        }
    }
}

/// The Snowball project's English stop words (https://snowballstem.org/, BSD licence), the list
/// tantivy uses for its other languages.
const ENGLISH_STOP_WORDS: &str = "i me my myself we our ours ourselves you your yours yourself yourselves he him his himself she her hers herself it its itself they them their theirs themselves what which who whom this that these those am is are was were be been being have has had having do does did doing would should could ought i'm you're he's she's it's we're they're i've you've we've they've i'd you'd he'd she'd we'd they'd i'll you'll he'll she'll we'll they'll isn't aren't wasn't weren't hasn't haven't hadn't doesn't don't didn't won't wouldn't shan't shouldn't can't cannot couldn't mustn't let's that's who's what's here's there's when's where's why's how's a an the and but if or because as until while of at by for with about against between into through during before after above below to from up down in out on off over under again further then once here there when where why how all any both each few more most other some such no nor not only own same so than too very can will just";

const QUESTION_STARTS: &[&str] = &[
    // en
    "what", "how", "where", "when", "why", "who", "which", "can", "could", "do", "does", "did", "is", "are", "will",
    "would", "should", "may", "have", "has", // fr
    "comment", "pourquoi", "où", "quand", "quel", "quelle", "quels", "quelles", "combien", "est-ce", "puis-je",
    "pouvez", // es
    "qué", "que", "cómo", "como", "dónde", "donde", "cuándo", "cuando", "cuál", "cual", "por", "puedo", "hay",
    // de
    "was", "wie", "wo", "wann", "warum", "welche", "welcher", "kann", "können", "gibt", "habt", "haben",
];

/// A question worth answering from the help content: a question mark, or at least three words
/// opening with an interrogative ("how do I return this"). Greetings and thanks are not.
pub fn is_question(text: &str) -> bool {
    let words: Vec<&str> = text.split_whitespace().collect();
    if text.contains(['?', '¿']) {
        return words.len() >= 2 || text.chars().filter(|c| c.is_alphabetic()).count() >= 4;
    }
    let first = words.first().map(|w| w.trim_matches(|c: char| !c.is_alphanumeric() && c != '-').to_lowercase());
    words.len() >= 3 && first.is_some_and(|w| QUESTION_STARTS.contains(&w.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms(lang: Lang, text: &str) -> Vec<String> {
        let mut analyzer = lang.analyzer();
        let mut stream = analyzer.token_stream(text);
        let mut out = Vec::new();
        while stream.advance() {
            out.push(stream.token().text.clone());
        }
        out
    }

    #[test]
    fn each_language_stems_and_drops_its_stop_words() {
        assert_eq!(terms(Lang::En, "The shipping of orders"), ["ship", "order"]);
        assert_eq!(terms(Lang::Fr, "les livraisons au Canada"), ["livraison", "canad"]);
        assert_eq!(terms(Lang::Es, "los envíos a Canadá"), ["envi", "canad"]);
        assert_eq!(terms(Lang::De, "die Lieferungen nach Kanada"), ["liefer", "kanada"]);
    }

    #[test]
    fn locales_map_to_languages() {
        assert_eq!(Lang::of_locale(Some("fr-CA"), Lang::En), Lang::Fr);
        assert_eq!(Lang::of_locale(Some("pt-BR"), Lang::En), Lang::En);
        assert_eq!(Lang::of_locale(None, Lang::De), Lang::De);
    }

    #[test]
    fn questions_are_told_from_chatter() {
        for q in [
            "Do you ship to Canada?",
            "how do I return a jacket",
            "¿Hacen envíos a Canadá?",
            "Wie lange dauert die Lieferung",
        ] {
            assert!(is_question(q), "{q}");
        }
        for not in ["hi", "thanks a lot!", "ok", "great, bye"] {
            assert!(!is_question(not), "{not}");
        }
    }
}
