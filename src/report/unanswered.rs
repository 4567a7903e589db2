//! "Unanswered questions": what the help content did not cover, near-duplicates grouped (the same
//! words once stemmed and stop words removed, or nearly so) and counted, most asked first.

use crate::knowledge::language::Lang;
use crate::store::durable::UnansweredRecord;
use serde::Serialize;
use std::collections::BTreeSet;

/// Two questions sharing this share of their words (Jaccard) are one question.
const SAME_QUESTION: f64 = 0.6;
const MAX_GROUPS: usize = 50;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UnansweredGroup {
    /// The first wording seen.
    pub question: String,
    pub count: u64,
    /// Other wordings (at most five).
    pub variants: Vec<String>,
    pub last_asked: String,
}

fn terms(question: &str, locale: Option<&str>) -> BTreeSet<String> {
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
fn same_word(a: &str, b: &str) -> bool {
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    a == b || (short.len() >= 4 && long.len() - short.len() <= 2 && long.starts_with(short))
}

/// Jaccard similarity of two word sets, a word counting as shared when the other set has it in
/// another spelling.
fn jaccard(a: &BTreeSet<String>, b: &BTreeSet<String>) -> f64 {
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

pub fn group(records: &[UnansweredRecord]) -> Vec<UnansweredGroup> {
    let mut groups: Vec<(BTreeSet<String>, UnansweredGroup)> = Vec::new();
    for record in records {
        let words = terms(&record.question, record.locale.as_deref());
        let asked = chrono::DateTime::from_timestamp_millis(record.ts_ms).map(|t| t.to_rfc3339()).unwrap_or_default();
        let same = groups.iter_mut().find(|(seen, g)| {
            jaccard(seen, &words) >= SAME_QUESTION || g.question.eq_ignore_ascii_case(&record.question)
        });
        match same {
            Some((_, group)) => {
                group.count += 1;
                group.last_asked = asked;
                let new_wording = !group.question.eq_ignore_ascii_case(&record.question)
                    && !group.variants.iter().any(|v| v.eq_ignore_ascii_case(&record.question));
                if new_wording && group.variants.len() < 5 {
                    group.variants.push(record.question.clone());
                }
            }
            None => groups.push((
                words,
                UnansweredGroup {
                    question: record.question.clone(),
                    count: 1,
                    variants: Vec::new(),
                    last_asked: asked,
                },
            )),
        }
    }
    let mut out: Vec<UnansweredGroup> = groups.into_iter().map(|(_, g)| g).collect();
    out.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.question.cmp(&b.question)));
    out.truncate(MAX_GROUPS);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asked(question: &str, locale: Option<&str>) -> UnansweredRecord {
        UnansweredRecord {
            ts_ms: 1,
            session_hash: "h".into(),
            locale: locale.map(str::to_owned),
            question: question.into(),
        }
    }

    #[test]
    fn near_duplicates_are_one_group_and_others_stay_apart() {
        let groups = group(&[
            asked("Do you sell gift cards?", None),
            asked("do you sell a gift card", None),
            asked("Can I pay with PayPal?", None),
            asked("Do you sell gift cards??", None),
            asked("Vendez-vous des cartes cadeaux ?", Some("fr")),
        ]);
        assert_eq!(groups.len(), 3, "{groups:?}");
        assert_eq!(groups[0].question, "Do you sell gift cards?");
        assert_eq!(groups[0].count, 3);
        assert_eq!(groups[0].variants, ["do you sell a gift card", "Do you sell gift cards??"]);
        assert!(groups.iter().any(|g| g.question.starts_with("Can I pay") && g.count == 1));
    }

    #[test]
    fn spellings_of_one_word_are_one_question_but_different_words_are_not() {
        let groups = group(&[
            asked("How does the loyalty programme work?", None),
            asked("how does the loyalty program work", None),
            asked("How does the loyalty card work?", None),
        ]);
        assert_eq!(groups.len(), 2, "{groups:?}");
        assert_eq!(groups[0].count, 2);
        assert!(!same_word("card", "cart") && !same_word("ship", "shipment") && same_word("programm", "program"));
    }
}
