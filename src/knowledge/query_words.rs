//! What each word of a query means to the index, remembered per index generation. Every language's
//! analyzer (lower-casing, stop words, Snowball stemmer, accent folding) works on one word at a
//! time, so a message's analysis is its words' analyses in order: a word seen before costs a map
//! lookup instead of four analyzer runs and eight term-dictionary lookups. Visitors reuse the same
//! few hundred words; unique ones (order numbers, names) are analysed once and pushed out when the
//! map is full.

use super::generation_map::GenerationMap;
use std::sync::Arc;
use tantivy::tokenizer::{SimpleTokenizer, TokenStream, Tokenizer};

/// The remembered analyses, per index generation.
pub type WordMemory = GenerationMap<Arc<WordAnalysis>>;

/// 4,096 words of at most 40 bytes and their four analyses: about 1 MiB per site's index at most
/// (a site's everyday vocabulary fits; case variants of it cannot grow the map past this).
pub const CAPACITY: usize = 4096;
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

/// Every word's analysis, in order: remembered ones from `memory`, the others from `analyse`,
/// which also says whether the word is worth remembering. `generation` is the index generation
/// read before the searcher `analyse` uses was taken.
pub fn analyse<E>(
    memory: &WordMemory,
    words: &[&str],
    generation: u64,
    mut analyse: impl FnMut(&str) -> Result<(WordAnalysis, bool), E>,
) -> Result<Vec<Arc<WordAnalysis>>, E> {
    let mut analysed: Vec<Arc<WordAnalysis>> = Vec::with_capacity(words.len());
    for (i, word) in words.iter().enumerate() {
        if let Some(analysis) = memory.get(word, generation) {
            analysed.push(analysis);
            continue;
        }
        // A word repeated in this message, analysed moments ago but not remembered.
        if let Some(earlier) = words[..i].iter().position(|w| w == word) {
            analysed.push(Arc::clone(&analysed[earlier]));
            continue;
        }
        let (analysis, remember) = analyse(word)?;
        let analysis = Arc::new(analysis);
        if remember && word.len() <= LONGEST_KEPT_WORD {
            memory.put(word, generation, Arc::clone(&analysis));
        }
        analysed.push(analysis);
    }
    Ok(analysed)
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
        let words = WordMemory::new(CAPACITY);
        let calls = std::cell::Cell::new(0);
        let query = split("ship ship to Canada");
        let analyser = |w: &str| {
            calls.set(calls.get() + 1);
            // Digits stand for a word no language knows.
            let known = !w.starts_with(|c: char| c.is_ascii_digit());
            Ok::<_, ()>((term(&w.to_lowercase(), u64::from(known)), known))
        };
        let first = analyse(&words, &query, 1, analyser).unwrap();
        assert_eq!(first.len(), 4);
        assert_eq!(first[3][0].as_ref().map(|t| &*t.text), Some("canada"));
        analyse(&words, &query, 1, analyser).unwrap();
        assert_eq!(calls.get(), 3, "a repeated word, and the second query, come from memory");
        // The index changed: every word is analysed again (its document frequency may differ).
        analyse(&words, &query, 2, analyser).unwrap();
        assert_eq!(calls.get(), 6);
        // A search that began before the change neither reads nor fills the newer map.
        analyse(&words, &split("returns"), 1, analyser).unwrap();
        assert_eq!((calls.get(), words.len()), (7, 3));
        // A word no language knows is analysed every time, never kept.
        analyse(&words, &split("order 100123"), 2, analyser).unwrap();
        analyse(&words, &split("order 100123"), 2, analyser).unwrap();
        assert_eq!((calls.get(), words.len()), (10, 4));
        // Nor is a word longer than any analyzer keeps.
        let long = "x".repeat(4000);
        analyse(&words, &[long.as_str()], 2, analyser).unwrap();
        assert_eq!((calls.get(), words.len()), (11, 4));
    }
}
