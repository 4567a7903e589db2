//! Prompt assembly, in the order that lets OpenAI's prompt cache hit: the static system prompt
//! (byte-identical on every request), the typed context, the knowledge base's reference passages,
//! an intent addendum, the history, and last the visitor's message. Oldest history turns are dropped until the prompt fits its token budget.

use crate::completion::tokens::{TokenCounter, REPLY_PRIMING, TOKENS_PER_MESSAGE};
use crate::completion::wire::WireMessage;
use crate::domain::Turn;
use std::borrow::Cow;

pub struct PromptParts<'a> {
    pub system: &'a str,
    /// Tokens of `system` alone, when already known (the configured prompt is counted once).
    pub system_tokens: Option<usize>,
    /// The site's own instructions: a system message of their own after the fixed prompt, which
    /// stays byte-identical for every site so the prompt cache keeps working.
    pub instructions: Option<&'a str>,
    pub context_json: Option<&'a str>,
    /// Retrieved passages, framed as reference data (or the note that none matched).
    pub reference: Option<&'a str>,
    /// Tokens of `reference`'s text when the knowledge base counted them already.
    pub reference_tokens: Option<usize>,
    pub addendum: Option<&'a str>,
    pub history: &'a [Turn],
    pub user_text: &'a str,
}

pub struct Prompt<'a> {
    pub messages: Vec<WireMessage<'a>>,
    /// The prompt's size as OpenAI counts it (per-message overhead and reply priming included).
    pub tokens: usize,
    /// History turns left out to fit the budget.
    pub dropped_turns: u32,
}

pub fn assemble<'a>(counter: &TokenCounter, parts: &PromptParts<'a>, max_tokens: usize) -> Prompt<'a> {
    let system_tokens = parts.system_tokens.unwrap_or_else(|| counter.text(parts.system));
    let mut fixed = REPLY_PRIMING + TOKENS_PER_MESSAGE + counter.text("system") + system_tokens;
    fixed += parts.instructions.map_or(0, |i| counter.message("system", i));
    fixed += parts.context_json.map_or(0, |c| counter.message("system", c));
    fixed += match (parts.reference, parts.reference_tokens) {
        (Some(_), Some(tokens)) => counter.message_of("system", tokens),
        (Some(r), None) => counter.message("system", r),
        (None, _) => 0,
    };
    fixed += parts.addendum.map_or(0, |a| counter.message("system", a));
    fixed += counter.message("user", parts.user_text);
    let turn_tokens: Vec<usize> = parts.history.iter().map(|t| counter.message(t.role.as_str(), &t.content)).collect();
    let mut total = fixed + turn_tokens.iter().sum::<usize>();
    // Drop the oldest turns first; the visitor's own message is never cut.
    let mut first_kept = 0;
    while total > max_tokens && first_kept < parts.history.len() {
        total -= turn_tokens[first_kept];
        first_kept += 1;
    }
    let kept = &parts.history[first_kept..];
    let mut messages = Vec::with_capacity(kept.len() + 6);
    messages.push(WireMessage { role: "system", content: Cow::Borrowed(parts.system) });
    if let Some(instructions) = parts.instructions {
        messages.push(WireMessage { role: "system", content: Cow::Borrowed(instructions) });
    }
    if let Some(context) = parts.context_json {
        messages.push(WireMessage { role: "system", content: Cow::Borrowed(context) });
    }
    if let Some(reference) = parts.reference {
        messages.push(WireMessage { role: "system", content: Cow::Borrowed(reference) });
    }
    if let Some(addendum) = parts.addendum {
        messages.push(WireMessage { role: "system", content: Cow::Borrowed(addendum) });
    }
    messages
        .extend(kept.iter().map(|t| WireMessage { role: t.role.as_str(), content: Cow::Borrowed(t.content.as_str()) }));
    messages.push(WireMessage { role: "user", content: Cow::Borrowed(parts.user_text) });
    Prompt { messages, tokens: total, dropped_turns: first_kept as u32 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Role;

    fn turns(n: usize) -> Vec<Turn> {
        (0..n)
            .map(|i| Turn {
                role: if i % 2 == 0 { Role::User } else { Role::Assistant },
                content: format!("turn number {i} with a few more words in it"),
            })
            .collect()
    }

    /// The cookbook's count, computed independently of `assemble`.
    fn openai_count(messages: &[WireMessage<'_>]) -> usize {
        let bpe = tiktoken_rs::o200k_base().unwrap();
        messages
            .iter()
            .map(|m| 3 + bpe.encode_ordinary(m.role).len() + bpe.encode_ordinary(&m.content).len())
            .sum::<usize>()
            + 3
    }

    #[test]
    fn orders_messages_for_the_prompt_cache() {
        let history = turns(2);
        let parts = PromptParts {
            system: "SYS",
            system_tokens: None,
            instructions: None,
            context_json: Some("{\"a\":1}"),
            reference: Some("REF"),
            reference_tokens: None,
            addendum: Some("ADD"),
            history: &history,
            user_text: "hello",
        };
        let prompt = assemble(&TokenCounter::o200k(), &parts, 3000);
        let roles: Vec<&str> = prompt.messages.iter().map(|m| m.role).collect();
        assert_eq!(roles, ["system", "system", "system", "system", "user", "assistant", "user"]);
        assert_eq!(prompt.messages[0].content, "SYS");
        assert_eq!(prompt.messages[2].content, "REF");
        assert_eq!(prompt.messages.last().unwrap().content, "hello");
        assert_eq!(prompt.tokens, openai_count(&prompt.messages));
    }

    #[test]
    fn drops_oldest_turns_until_the_prompt_fits_exactly() {
        let history = turns(8);
        let parts = PromptParts {
            system: "You are helpful.",
            system_tokens: None,
            instructions: None,
            context_json: Some("{}"),
            reference: None,
            reference_tokens: None,
            addendum: None,
            history: &history,
            user_text: "what now?",
        };
        let full = openai_count(&assemble(&TokenCounter::o200k(), &parts, 100_000).messages);
        let budget = full - 25;
        let prompt = assemble(&TokenCounter::o200k(), &parts, budget);
        let sent = openai_count(&prompt.messages);
        assert_eq!(sent, prompt.tokens);
        assert!(sent <= budget);
        assert!(prompt.dropped_turns >= 1);
        // One turn fewer dropped would not have fitted.
        let first_kept = prompt.dropped_turns as usize;
        let bpe = tiktoken_rs::o200k_base().unwrap();
        let previous = &history[first_kept - 1];
        let with_previous =
            sent + 3 + bpe.encode_ordinary(previous.role.as_str()).len() + bpe.encode_ordinary(&previous.content).len();
        assert!(with_previous > budget);
    }

    #[test]
    fn a_long_user_message_goes_out_with_no_history() {
        let history = turns(4);
        let long = "word ".repeat(800);
        let parts = PromptParts {
            system: "S",
            system_tokens: None,
            instructions: None,
            context_json: None,
            reference: None,
            reference_tokens: None,
            addendum: None,
            history: &history,
            user_text: &long,
        };
        let prompt = assemble(&TokenCounter::o200k(), &parts, 300);
        assert_eq!(prompt.dropped_turns, 4);
        assert_eq!(prompt.messages.len(), 2);
        assert_eq!(prompt.messages[1].content, long.as_str());
    }
}
