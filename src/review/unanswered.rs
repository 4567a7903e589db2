//! "Unanswered questions": what the help content did not cover, near-duplicates grouped (the same
//! words once stemmed and stop words removed, or nearly so) and counted, most asked first.

use crate::knowledge::similar::{jaccard, terms, SAME_QUESTION};
use crate::store::durable::UnansweredRecord;
use serde::Serialize;
use std::collections::BTreeSet;

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
    use crate::knowledge::similar::same_word;

    fn asked(question: &str, locale: Option<&str>) -> UnansweredRecord {
        UnansweredRecord {
            ts_ms: 1,
            session_hash: "h".into(),
            locale: locale.map(str::to_owned),
            question: question.into(),
            site: None,
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
