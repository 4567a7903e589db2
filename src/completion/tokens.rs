//! Prompt token counting with OpenAI's own tokenizer (`o200k_base`, used by gpt-4o and gpt-4o-mini):
//! each message costs 3 tokens plus its role and content, and the reply is primed with 3 more.

use tiktoken_rs::CoreBPE;

pub const TOKENS_PER_MESSAGE: usize = 3;
pub const REPLY_PRIMING: usize = 3;

#[derive(Clone, Copy)]
pub struct TokenCounter {
    bpe: &'static CoreBPE,
}

impl TokenCounter {
    /// Loads the bundled encoding once per process (no network).
    pub fn o200k() -> Self {
        Self { bpe: tiktoken_rs::o200k_base_singleton() }
    }

    pub fn text(&self, text: &str) -> usize {
        self.bpe.encode_ordinary(text).len()
    }

    pub fn message(&self, role: &str, content: &str) -> usize {
        TOKENS_PER_MESSAGE + self.text(role) + self.text(content)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_like_openai_cookbook() {
        let counter = TokenCounter::o200k();
        assert_eq!(counter.text("hello world"), 2);
        assert_eq!(counter.message("user", "hello world"), 3 + 1 + 2);
    }
}
