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

/// The tokenizer, loaded once per process off the request path: start-up does not wait for its
/// ~200k-entry tables, and a request that needs them before they are ready awaits the one load.
#[derive(Clone, Default)]
pub struct SharedTokenizer {
    cell: std::sync::Arc<tokio::sync::OnceCell<TokenCounter>>,
}

impl SharedTokenizer {
    /// Starts loading in the background.
    pub fn warm(&self) {
        let me = self.clone();
        tokio::spawn(async move {
            me.get().await;
        });
    }

    pub async fn get(&self) -> TokenCounter {
        *self
            .cell
            .get_or_init(|| async {
                tokio::task::spawn_blocking(TokenCounter::o200k).await.unwrap_or_else(|_| TokenCounter::o200k())
            })
            .await
    }

    pub fn is_loaded(&self) -> bool {
        self.cell.initialized()
    }
}
