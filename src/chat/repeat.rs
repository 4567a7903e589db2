//! Repeat-question detection: questions reduced to their word sets and compared by Jaccard
//! similarity, so "Where is my order??" and "where is my order" are the same question.

use crate::store::Fingerprint;

/// FNV-1a of the lowercased word: stable across processes and replicas (std's hasher is randomly
/// seeded). ASCII words are lowercased byte by byte without a new string (most words, every message).
fn fnv1a_lowercase(word: &str) -> u32 {
    let hash_bytes = |bytes: &mut dyn Iterator<Item = u8>| {
        bytes.fold(0x811c_9dc5_u32, |hash, byte| (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193))
    };
    if word.is_ascii() {
        hash_bytes(&mut word.bytes().map(|b| b.to_ascii_lowercase()))
    } else {
        hash_bytes(&mut word.to_lowercase().bytes())
    }
}

/// The question's distinct words (lowercased, letters and digits only), hashed and sorted.
pub fn words(text: &str) -> Vec<u32> {
    let mut words: Vec<u32> =
        text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(fnv1a_lowercase).collect();
    words.sort_unstable();
    words.dedup();
    words.truncate(64);
    words
}

pub fn similarity(a: &[u32], b: &[u32]) -> f64 {
    if a.is_empty() && b.is_empty() {
        return 1.0;
    }
    let (mut i, mut j, mut shared) = (0, 0, 0usize);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                shared += 1;
                i += 1;
                j += 1;
            }
        }
    }
    shared as f64 / (a.len() + b.len() - shared) as f64
}

/// Records a question among the recent ones and returns how often it has now been asked
/// (1 = first time). Keeps at most `keep` distinct questions, most recent last.
pub fn record(recent: &mut Vec<Fingerprint>, question: Vec<u32>, threshold: f64, keep: usize) -> u32 {
    if let Some(pos) = recent.iter().position(|f| similarity(&f.words, &question) >= threshold) {
        let mut seen = recent.remove(pos);
        seen.count += 1;
        let count = seen.count;
        recent.push(seen);
        return count;
    }
    recent.push(Fingerprint { words: question, count: 1 });
    if recent.len() > keep {
        let excess = recent.len() - keep;
        recent.drain(..excess);
    }
    1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_hashes_are_fnv1a_of_the_lowercased_word() {
        // Stored in Redis and compared across replicas: the values must never drift.
        assert_eq!(fnv1a_lowercase(""), 0x811c_9dc5);
        assert_eq!(fnv1a_lowercase("a"), 0xe40c_292c);
        assert_eq!(fnv1a_lowercase("Order"), fnv1a_lowercase("order"));
        assert_eq!(fnv1a_lowercase("ÜBER"), fnv1a_lowercase("über"));
        assert_ne!(fnv1a_lowercase("über"), fnv1a_lowercase("uber"));
    }

    #[test]
    fn punctuation_and_case_do_not_make_a_new_question() {
        assert_eq!(words("Where is my order??"), words("where IS my order"));
        assert_eq!(similarity(&words("Where is my order"), &words("where is my order")), 1.0);
        assert!(similarity(&words("Where is my order"), &words("How do I reset my password")) < 0.3);
    }

    #[test]
    fn counts_repeats_of_similar_questions() {
        let mut recent = Vec::new();
        assert_eq!(record(&mut recent, words("Where is my order?"), 0.8, 10), 1);
        assert_eq!(record(&mut recent, words("How do I pay?"), 0.8, 10), 1);
        assert_eq!(record(&mut recent, words("where is my order"), 0.8, 10), 2);
        assert_eq!(record(&mut recent, words("Where is my order!!"), 0.8, 10), 3);
        assert_eq!(recent.len(), 2);
    }

    #[test]
    fn keeps_only_the_most_recent_questions() {
        let mut recent = Vec::new();
        for i in 0..20 {
            record(&mut recent, words(&format!("question number {i} alpha{i}")), 0.8, 5);
        }
        assert_eq!(recent.len(), 5);
    }
}
