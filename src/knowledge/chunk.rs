//! Chunking: a document is cut at its headings, then packed paragraph by paragraph up to a token
//! cap; a paragraph over the cap is cut at sentences, then at words. Consecutive chunks of one
//! section share a small overlap so an answer straddling the cut is found from either side.

use crate::completion::tokens::TokenCounter;

#[derive(Debug, Clone, Copy)]
pub struct ChunkLimits {
    pub max_tokens: usize,
    pub overlap_tokens: usize,
}

/// The passages of `body`, each at most `max_tokens` tokens (a single word longer than that is the
/// only exception) and none empty.
pub fn chunk(body: &str, counter: &TokenCounter, limits: ChunkLimits) -> Vec<String> {
    let cap = limits.max_tokens.max(16);
    let mut chunks = Vec::new();
    for section in sections(body) {
        let units: Vec<(String, usize)> = section
            .split("\n\n")
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .flat_map(|paragraph| split_to_fit(paragraph, counter, cap))
            .collect();
        pack(&units, cap, limits.overlap_tokens.min(cap / 2), &mut chunks);
    }
    chunks
}

/// Text from one heading to the next (the heading line included).
fn sections(body: &str) -> Vec<String> {
    let mut sections = vec![String::new()];
    for line in body.lines() {
        let is_heading = line.trim_start().starts_with('#')
            && line.trim_start().trim_start_matches('#').starts_with(' ')
            && sections.last().is_some_and(|s| !s.trim().is_empty());
        if is_heading {
            sections.push(String::new());
        }
        if let Some(section) = sections.last_mut() {
            section.push_str(line);
            section.push('\n');
        }
    }
    sections.into_iter().filter(|s| !s.trim().is_empty()).collect()
}

/// A paragraph as units that each fit the cap: itself, else its sentences, else runs of words.
fn split_to_fit(paragraph: &str, counter: &TokenCounter, cap: usize) -> Vec<(String, usize)> {
    let tokens = counter.text_uncached(paragraph);
    if tokens <= cap {
        return vec![(paragraph.to_owned(), tokens)];
    }
    let mut units = Vec::new();
    for sentence in sentences(paragraph) {
        let tokens = counter.text_uncached(sentence);
        if tokens <= cap {
            units.push((sentence.to_owned(), tokens));
            continue;
        }
        let mut run = String::new();
        for word in sentence.split_whitespace() {
            let candidate = if run.is_empty() { word.to_owned() } else { format!("{run} {word}") };
            if !run.is_empty() && counter.text_uncached(&candidate) > cap {
                let tokens = counter.text_uncached(&run);
                units.push((std::mem::replace(&mut run, word.to_owned()), tokens));
            } else {
                run = candidate;
            }
        }
        if !run.is_empty() {
            let tokens = counter.text_uncached(&run);
            units.push((run, tokens));
        }
    }
    units
}

fn sentences(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let bytes = text.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        let ends = matches!(b, b'.' | b'!' | b'?' | b'\n') && bytes.get(i + 1).is_none_or(|n| n.is_ascii_whitespace());
        if ends {
            let sentence = text[start..=i].trim();
            if !sentence.is_empty() {
                out.push(sentence);
            }
            start = i + 1;
        }
    }
    let tail = text[start..].trim();
    if !tail.is_empty() {
        out.push(tail);
    }
    out
}

/// Greedy packing; a new chunk starts with the trailing units of the previous one that fit in
/// `overlap` tokens.
fn pack(units: &[(String, usize)], cap: usize, overlap: usize, chunks: &mut Vec<String>) {
    let mut current: Vec<usize> = Vec::new();
    let mut tokens = 0;
    for (index, (_, unit_tokens)) in units.iter().enumerate() {
        // Joining adds about one token per seam.
        if !current.is_empty() && tokens + unit_tokens + 1 > cap {
            chunks.push(join(units, &current));
            let mut carried = Vec::new();
            let mut carried_tokens = 0;
            for &previous in current.iter().rev() {
                let t = units[previous].1 + 1;
                if carried_tokens + t > overlap || carried_tokens + t + unit_tokens > cap {
                    break;
                }
                carried.insert(0, previous);
                carried_tokens += t;
            }
            current = carried;
            tokens = carried_tokens;
        }
        current.push(index);
        tokens += unit_tokens + 1;
    }
    if !current.is_empty() {
        chunks.push(join(units, &current));
    }
}

fn join(units: &[(String, usize)], picked: &[usize]) -> String {
    picked.iter().map(|&i| units[i].0.as_str()).collect::<Vec<_>>().join("\n\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: ChunkLimits = ChunkLimits { max_tokens: 60, overlap_tokens: 15 };

    #[test]
    fn headings_start_new_chunks() {
        let body = "# Returns\n\nThirty days, free.\n\n# Shipping\n\nWe ship to Canada in five days.";
        let chunks = chunk(body, &TokenCounter::o200k(), LIMITS);
        assert_eq!(chunks, ["# Returns\n\nThirty days, free.", "# Shipping\n\nWe ship to Canada in five days."]);
    }

    #[test]
    fn long_text_is_cut_under_the_cap_with_overlap() {
        let counter = TokenCounter::o200k();
        let body = (0..40).map(|i| format!("Sentence number {i} says something useful.")).collect::<Vec<_>>().join(" ");
        let chunks = chunk(&body, &counter, LIMITS);
        assert!(chunks.len() > 3, "{chunks:?}");
        for c in &chunks {
            assert!(counter.text(c) <= LIMITS.max_tokens, "{} tokens: {c}", counter.text(c));
        }
        // Each cut repeats the sentence before it.
        let last_of_first = chunks[0].split("\n\n").last().unwrap();
        assert!(chunks[1].starts_with(last_of_first), "{:?}", &chunks[..2]);
        // Nothing is lost.
        for i in 0..40 {
            assert!(chunks.iter().any(|c| c.contains(&format!("number {i} "))), "sentence {i}");
        }
    }

    #[test]
    fn an_endless_sentence_is_cut_at_words() {
        let counter = TokenCounter::o200k();
        let body = "word ".repeat(500);
        let chunks = chunk(&body, &counter, LIMITS);
        assert!(chunks.len() >= 8);
        assert!(chunks.iter().all(|c| counter.text(c) <= LIMITS.max_tokens));
    }
}
