//! An answer without the model: the sentences of a passage that share the most words with the
//! question, in their own order, as plain text (Markdown and headings stripped), under a length cap.

use super::language::Lang;
use std::collections::HashSet;

/// Longest extracted answer, in characters.
pub const MAX_CHARS: usize = 600;

/// The question's words as the index sees them (stemmed, stop words out).
fn terms(lang: Lang, text: &str) -> HashSet<String> {
    let mut analyzer = lang.analyzer();
    let mut stream = analyzer.token_stream(text);
    let mut out = HashSet::new();
    while stream.advance() {
        out.insert(stream.token().text.clone());
    }
    out
}

/// One line of Markdown as plain text: no heading marks, list bullets, emphasis, code ticks or link
/// targets (`[text](url)` keeps its text).
fn plain_line(line: &str) -> String {
    let line = line.trim();
    let line = line.trim_start_matches('#').trim_start_matches('>').trim_start();
    let line =
        line.strip_prefix("- ").or_else(|| line.strip_prefix("* ")).or_else(|| line.strip_prefix("+ ")).unwrap_or(line);
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(open) = rest.find('[') {
        let (before, after) = rest.split_at(open);
        out.push_str(before);
        match after.find("](").and_then(|close| after[close..].find(')').map(|end| (close, close + end))) {
            Some((close, end)) => {
                out.push_str(&after[1..close]);
                rest = &after[end + 1..];
            }
            None => {
                out.push('[');
                rest = &after[1..];
            }
        }
    }
    out.push_str(rest);
    out.replace(['*', '`'], "").replace("__", "")
}

/// Whether a line is a Markdown heading (it names a section; it is not an answer).
fn is_heading(line: &str) -> bool {
    line.trim_start().starts_with('#')
}

/// Sentences of `text` (headings dropped), each trimmed.
fn sentences(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty() && !is_heading(l)) {
        let plain = plain_line(line);
        let mut start = 0;
        let chars: Vec<(usize, char)> = plain.char_indices().collect();
        for (i, &(at, c)) in chars.iter().enumerate() {
            let next_is_space = chars.get(i + 1).is_none_or(|(_, n)| n.is_whitespace());
            if matches!(c, '.' | '!' | '?') && next_is_space {
                let end = at + c.len_utf8();
                out.push(plain[start..end].trim().to_owned());
                start = end;
            }
        }
        if !plain[start..].trim().is_empty() {
            out.push(plain[start..].trim().to_owned());
        }
    }
    out.retain(|s| s.chars().any(char::is_alphanumeric));
    out
}

/// The most relevant sentences of `passage` for `question`, at most `MAX_CHARS` characters, or
/// None when no sentence shares a word with the question.
pub fn answer(passage: &str, question: &str, lang: Lang) -> Option<String> {
    let wanted = terms(lang, question);
    let sentences = sentences(passage);
    let mut scored: Vec<(usize, usize)> = sentences
        .iter()
        .enumerate()
        .map(|(i, s)| (i, terms(lang, s).intersection(&wanted).count()))
        .filter(|(_, overlap)| *overlap > 0)
        .collect();
    if scored.is_empty() {
        return None;
    }
    // Most shared words first; among equals, the earlier sentence (help pages lead with the answer).
    scored.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let (best, best_overlap) = scored[0];
    let mut chosen: Vec<usize> = Vec::new();
    let mut length = 0;
    // Sentences nearly as relevant as the best (three quarters of its shared words) join it.
    let close = scored.into_iter().take(3).filter(|(_, overlap)| overlap * 4 >= best_overlap * 3);
    for (i, _) in close {
        let extra = sentences[i].chars().count() + usize::from(!chosen.is_empty());
        if length + extra <= MAX_CHARS {
            length += extra;
            chosen.push(i);
        }
    }
    if chosen.is_empty() {
        // The best sentence alone is too long: cut it at a word.
        let cut: String = sentences[best].chars().take(MAX_CHARS - 1).collect();
        let at_word = cut.rsplit_once(' ').map_or(cut.as_str(), |(head, _)| head);
        return Some(format!("{at_word}…"));
    }
    chosen.sort_unstable();
    Some(chosen.iter().map(|&i| sentences[i].as_str()).collect::<Vec<_>>().join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = "# Returns and refunds\n\nYou can return any item within 30 days. \
        **Refunds** reach your card within 5 to 7 business days after we receive the item.\n\n\
        ## Exchanges\n\n- Exchanges are free: see [our exchange page](https://help.example.com/x).\n\
        Gift cards cannot be returned.";

    #[test]
    fn the_sentences_sharing_the_questions_words_answer_in_their_order() {
        let answer = answer(PAGE, "How long do refunds take?", Lang::En).unwrap();
        assert!(answer.starts_with("Refunds reach your card within 5 to 7 business days"), "{answer}");
        assert!(!answer.contains('#') && !answer.contains("**") && !answer.contains("]("), "{answer}");
        assert!(answer.chars().count() <= MAX_CHARS);
    }

    #[test]
    fn markdown_links_keep_their_text_and_headings_are_dropped() {
        let answer = answer(PAGE, "Are exchanges free?", Lang::En).unwrap();
        assert!(answer.starts_with("Exchanges are free: see our exchange page."), "{answer}");
        assert!(!answer.contains("Exchanges\n") && !answer.contains("https://"), "{answer}");
    }

    #[test]
    fn nothing_shared_is_no_answer_and_a_long_sentence_is_cut_at_a_word() {
        assert_eq!(answer(PAGE, "Do you sell bicycles?", Lang::En), None);
        let long = format!("Refunds {}.", "take a while ".repeat(80));
        let cut = answer(&long, "refunds", Lang::En).unwrap();
        assert!(cut.ends_with('…') && cut.chars().count() <= MAX_CHARS, "{cut}");
    }

    #[test]
    fn other_languages_are_stemmed_as_the_index_does() {
        let page = "Les remboursements arrivent sous 7 jours. La livraison est gratuite.";
        assert_eq!(
            answer(page, "Combien de temps prend un remboursement ?", Lang::Fr).as_deref(),
            Some("Les remboursements arrivent sous 7 jours.")
        );
    }
}
