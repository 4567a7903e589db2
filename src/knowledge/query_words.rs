//! What each word of a query means to the index, remembered per index generation. Every language's
//! analyzer (lower-casing, stop words, Snowball stemmer, accent folding) works on one word at a
//! time, so a message's analysis is its words' analyses in order: a word seen before costs a map
//! lookup instead of four analyzer runs and eight term-dictionary lookups. Visitors reuse the same
//! few hundred words; unique ones (order numbers, names) are analysed once and pushed out when the
//! map is full.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use tantivy::tokenizer::{SimpleTokenizer, TokenStream, Tokenizer};

/// 4,096 words of at most 40 bytes and their four analyses: about 1 MiB per site's index at most
/// (a site's everyday vocabulary fits; case variants of it cannot grow the map past this).
const CAPACITY: usize = 4096;
/// Every analyzer drops longer words (`RemoveLongFilter`): such a word is never remembered, so a
/// 4,000-character "word" cannot sit in the map.
const LONGEST_KEPT_WORD: usize = 40;

/// One word in one language's field: the indexed term it becomes, in how many chunks' bodies it
/// occurs, and whether any title holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct WordTerm {
    pub text: Box<str>,
    pub doc_freq: u64,
    pub in_titles: bool,
}

/// A word's term per language slot: `None` where the language is absent from the index, or its
/// analyzer drops the word (a stop word, over 40 bytes).
pub type WordAnalysis = [Option<WordTerm>; 4];

#[derive(Default)]
pub struct QueryWords {
    entries: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    generation: u64,
    words: HashMap<Box<str>, Arc<WordAnalysis>>,
}

/// The words of `query` as the analyzers' own tokenizer splits them (runs of letters and digits).
pub fn split(query: &str) -> Vec<&str> {
    let mut tokenizer = SimpleTokenizer::default();
    let mut stream = tokenizer.token_stream(query);
    let mut words = Vec::new();
    while stream.advance() {
        let token = stream.token();
        words.extend(query.get(token.offset_from..token.offset_to));
    }
    words
}

impl QueryWords {
    /// Every word's analysis, in order: remembered ones from the map, the others from `analyse`,
    /// which also says whether the word is worth remembering (it is, unless the index changed
    /// meanwhile). `generation` is the index generation read before the searcher `analyse` uses
    /// was taken.
    pub fn analyse<E>(
        &self,
        words: &[&str],
        generation: u64,
        mut analyse: impl FnMut(&str) -> Result<(WordAnalysis, bool), E>,
    ) -> Result<Vec<Arc<WordAnalysis>>, E> {
        let mut found: Vec<Option<Arc<WordAnalysis>>> = {
            let mut entries = self.entries.lock();
            if entries.generation < generation {
                entries.words.clear();
                entries.generation = generation;
            }
            let current = entries.generation == generation;
            words.iter().map(|w| if current { entries.words.get(*w).cloned() } else { None }).collect()
        };
        let mut fresh: Vec<(&str, Arc<WordAnalysis>)> = Vec::new();
        for (word, slot) in words.iter().zip(found.iter_mut()) {
            if slot.is_some() {
                continue;
            }
            if let Some((_, analysis)) = fresh.iter().find(|(seen, _)| seen == word) {
                *slot = Some(Arc::clone(analysis));
                continue;
            }
            let (analysis, remember) = analyse(word)?;
            let analysis = Arc::new(analysis);
            if remember && word.len() <= LONGEST_KEPT_WORD {
                fresh.push((word, Arc::clone(&analysis)));
            }
            *slot = Some(analysis);
        }
        if !fresh.is_empty() {
            let mut entries = self.entries.lock();
            if entries.generation == generation {
                if entries.words.len() + fresh.len() > CAPACITY {
                    entries.words.clear();
                }
                for (word, analysis) in fresh {
                    entries.words.insert(word.into(), analysis);
                }
            }
        }
        Ok(found.into_iter().flatten().collect())
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.lock().words.len()
    }
}

/// A message's indexed words per language slot (in bodies, in titles) and the weight (summed idf)
/// of all its words, known or not: what a perfect match would score.
pub struct Weighed<'a> {
    pub matching: [Vec<&'a str>; 4],
    pub titled: [Vec<&'a str>; 4],
    pub ceiling: [f32; 4],
}

/// Each language's terms counted once, in the message's order.
pub fn weigh(analysed: &[Arc<WordAnalysis>], total_chunks: u64) -> Weighed<'_> {
    let mut weighed = Weighed { matching: Default::default(), titled: Default::default(), ceiling: [0.0; 4] };
    // A message has a few dozen words: a list beats hashing each one.
    let mut seen: [Vec<&str>; 4] = Default::default();
    for (slot, term) in analysed.iter().flat_map(|word| word.iter().enumerate()) {
        let Some(term) = term else { continue };
        if seen[slot].contains(&&*term.text) {
            continue;
        }
        seen[slot].push(&term.text);
        weighed.ceiling[slot] += idf(term.doc_freq, total_chunks);
        if term.doc_freq > 0 {
            weighed.matching[slot].push(&term.text);
        }
        if term.in_titles {
            weighed.titled[slot].push(&term.text);
        }
    }
    weighed
}

/// tantivy's BM25 idf.
fn idf(doc_freq: u64, doc_count: u64) -> f32 {
    let x = (doc_count.saturating_sub(doc_freq) as f32 + 0.5) / (doc_freq as f32 + 0.5);
    (1.0 + x).ln()
}

/// What decides a ranking: the indexed words per language (body and title), the boosted
/// language and the pool size; words in no chunk do not change it.
pub fn query_shape(matching: &[Vec<&str>; 4], titled: &[Vec<&str>; 4], boosted: Option<&str>, limit: usize) -> String {
    let mut words: Vec<(char, usize, &str)> = Vec::new();
    for (part, terms) in [('t', matching), ('h', titled)] {
        for (slot, list) in terms.iter().enumerate() {
            words.extend(list.iter().map(|word| (part, slot, *word)));
        }
    }
    words.sort_unstable();
    let mut shape = format!("{limit}|{}|", boosted.unwrap_or(""));
    for (i, (part, slot, word)) in words.into_iter().enumerate() {
        if i > 0 {
            shape.push('\u{1f}');
        }
        shape.push(part);
        shape.push(char::from(b'0' + slot as u8));
        shape.push(':');
        shape.push_str(word);
    }
    shape
}

#[cfg(test)]
mod tests {
    use super::*;

    fn term(text: &str, doc_freq: u64) -> WordAnalysis {
        [Some(WordTerm { text: text.into(), doc_freq, in_titles: false }), None, None, None]
    }

    #[test]
    fn words_are_split_like_the_analyzers_split_them() {
        assert_eq!(split("Où est ma commande A-100123 ?"), ["Où", "est", "ma", "commande", "A", "100123"]);
    }

    #[test]
    fn a_word_is_analysed_once_per_generation() {
        let words = QueryWords::default();
        let calls = std::cell::Cell::new(0);
        let query = split("ship ship to Canada");
        let analyse = |w: &str| {
            calls.set(calls.get() + 1);
            // Digits stand for a word no language knows.
            let known = !w.starts_with(|c: char| c.is_ascii_digit());
            Ok::<_, ()>((term(&w.to_lowercase(), u64::from(known)), known))
        };
        let first = words.analyse(&query, 1, analyse).unwrap();
        assert_eq!(first.len(), 4);
        assert_eq!(first[3][0].as_ref().map(|t| &*t.text), Some("canada"));
        words.analyse(&query, 1, analyse).unwrap();
        assert_eq!(calls.get(), 3, "a repeated word, and the second query, come from memory");
        // The index changed: every word is analysed again (its document frequency may differ).
        words.analyse(&query, 2, analyse).unwrap();
        assert_eq!(calls.get(), 6);
        // A search that began before the change neither reads nor fills the newer map.
        words.analyse(&split("returns"), 1, analyse).unwrap();
        assert_eq!((calls.get(), words.len()), (7, 3));
        // A word no language knows is analysed every time, never kept.
        words.analyse(&split("order 100123"), 2, analyse).unwrap();
        words.analyse(&split("order 100123"), 2, analyse).unwrap();
        assert_eq!((calls.get(), words.len()), (10, 4));
        // Nor is a word longer than any analyzer keeps.
        let long = "x".repeat(4000);
        words.analyse(&[long.as_str()], 2, analyse).unwrap();
        assert_eq!((calls.get(), words.len()), (11, 4));
    }
}
