//! Prompt token counting with OpenAI's own tokenizer (`o200k_base`, used by gpt-4o and gpt-4o-mini)
//! from tiktoken-rs, which bundles the encoding (no network at run time): each message costs 3
//! tokens plus its role and content, and the reply is primed with 3 more.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::hash::RandomState;
use std::sync::{LazyLock, OnceLock};
use tiktoken_rs::CoreBPE;

const SHARDS: usize = 16;
/// 16 × 4,096 remembered counts: about 1 MiB.
const SHARD_CAPACITY: usize = 4096;
/// Seeded per process, so a visitor cannot aim texts at one shard.
static HASHER: LazyLock<RandomState> = LazyLock::new(RandomState::new);
static COUNTS: LazyLock<Vec<Mutex<HashMap<u64, u32>>>> =
    LazyLock::new(|| (0..SHARDS).map(|_| Mutex::new(HashMap::with_capacity(SHARD_CAPACITY))).collect());

pub const TOKENS_PER_MESSAGE: usize = 3;
pub const REPLY_PRIMING: usize = 3;

#[derive(Clone, Copy)]
pub struct TokenCounter {
    bpe: &'static CoreBPE,
}

static O200K: OnceLock<CoreBPE> = OnceLock::new();

/// The encoding's tables are built from data inside the tiktoken-rs crate; failing to build them
/// is a broken build, not a runtime condition.
#[allow(clippy::expect_used)]
fn load_o200k() -> CoreBPE {
    tiktoken_rs::o200k_base().expect("tiktoken-rs bundles o200k_base")
}

impl TokenCounter {
    /// Loads the bundled encoding once per process (no network).
    pub fn o200k() -> Self {
        Self { bpe: O200K.get_or_init(load_o200k) }
    }

    /// Tokens in `text`. History turns and the context are sent again with every message of a
    /// conversation, so counts are remembered (by a 64-bit hash of the text) instead of re-encoding.
    pub fn text(&self, text: &str) -> usize {
        if text.len() < 16 {
            return self.count_fresh(text);
        }
        let key = std::hash::BuildHasher::hash_one(&*HASHER, text);
        let shard = &COUNTS[(key as usize) % SHARDS];
        if let Some(count) = shard.lock().get(&key) {
            return *count as usize;
        }
        let count = self.count_fresh(text);
        let mut shard = shard.lock();
        if shard.len() >= SHARD_CAPACITY {
            shard.clear();
        }
        shard.insert(key, count as u32);
        count
    }

    /// Tokens in `text`, not remembered: for one-off texts (knowledge chunks) that would only push
    /// conversation turns out of the cache.
    pub fn text_uncached(&self, text: &str) -> usize {
        self.count_fresh(text)
    }

    fn count_fresh(&self, text: &str) -> usize {
        self.bpe.encode_ordinary(text).len()
    }

    pub fn message(&self, role: &str, content: &str) -> usize {
        TOKENS_PER_MESSAGE + self.role(role) + self.text(content)
    }

    /// A message whose content's tokens are already known.
    pub fn message_of(&self, role: &str, content_tokens: usize) -> usize {
        TOKENS_PER_MESSAGE + self.role(role) + content_tokens
    }

    /// Every role OpenAI accepts is one token in o200k_base (a test checks it); skip the encoder.
    fn role(&self, role: &str) -> usize {
        match role {
            "system" | "developer" | "user" | "assistant" | "tool" => 1,
            other => self.count_fresh(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembered_counts_equal_fresh_ones() {
        let counter = TokenCounter::o200k();
        let text = "Hi, I ordered a rain jacket last week and it has not arrived yet.";
        let fresh = counter.count_fresh(text);
        assert_eq!(counter.text(text), fresh);
        assert_eq!(counter.text(text), fresh, "second call from the cache");
    }

    #[test]
    fn known_roles_are_one_token() {
        let counter = TokenCounter::o200k();
        for role in ["system", "developer", "user", "assistant", "tool"] {
            assert_eq!(counter.role(role), counter.count_fresh(role), "{role}");
        }
        assert_eq!(counter.role("function_call_output"), counter.count_fresh("function_call_output"));
    }

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
