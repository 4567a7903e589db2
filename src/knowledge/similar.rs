//! Whether two wordings ask one question: their words once stemmed, stop words removed, compared
//! with a tolerance for spelling (the review groups unanswered questions with it; the human loop
//! skips a suggestion a pending one already asks).

use super::language::Lang;
use std::collections::BTreeSet;

/// Two questions sharing this share of their words (Jaccard) are one question.
pub const SAME_QUESTION: f64 = 0.6;

pub fn terms(question: &str, locale: Option<&str>) -> BTreeSet<String> {
    let mut analyzer = Lang::of_locale(locale, Lang::En).analyzer();
    let mut stream = analyzer.token_stream(question);
    let mut out = BTreeSet::new();
    while stream.advance() {
        out.insert(stream.token().text.clone());
    }
    out
}

/// One word, once stemmed, in two spellings: equal, or one a prefix of the other by at most two
/// letters (British and American spellings stem apart: `programm` and `program`).
pub fn same_word(a: &str, b: &str) -> bool {
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    a == b || (short.len() >= 4 && long.len() - short.len() <= 2 && long.starts_with(short))
}

/// Jaccard similarity of two word sets, a word counting as shared when the other set has it in
/// another spelling.
pub fn jaccard(a: &BTreeSet<String>, b: &BTreeSet<String>) -> f64 {
    let shared = a.iter().filter(|word| b.iter().any(|other| same_word(word, other))).count();
    let union = a.len() + b.len() - shared;
    if union == 0 {
        return 1.0;
    }
    shared as f64 / union as f64
}

/// Two wordings of one question (stemmed words, stop words aside), in `locale`'s language.
pub fn same_question(a: &str, b: &str, locale: Option<&str>) -> bool {
    a.eq_ignore_ascii_case(b) || jaccard(&terms(a, locale), &terms(b, locale)) >= SAME_QUESTION
}
