//! Semantic search's half: chunk and question embeddings from the model API's `/embeddings`
//! (the same client and key as the chat calls, but a breaker and a metric of their own, so an
//! embeddings outage never opens the chat breaker). Vectors are kept with the documents in a
//! compact binary form; any failure means lexical search for that message.

use crate::completion::breaker::{Breaker, Verdict};
use crate::completion::client::Endpoint;
use crate::completion::error::AttemptError;
use crate::config::Settings;
use parking_lot::Mutex;
use prometheus::IntCounterVec;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

/// Inputs per embeddings request (OpenAI's limit).
pub const BATCH: usize = 2048;
/// Longest input, in characters: well under the model's 8,191 tokens even for dense text.
const MAX_INPUT_CHARS: usize = 24_000;
/// A batch of document chunks may take this long (it is not on a visitor's clock).
const DOCUMENT_BATCH_TIMEOUT: Duration = Duration::from_secs(60);
/// Reciprocal-rank fusion's usual constant.
pub const RRF_K: f32 = 60.0;

/// Recent questions' vectors: a visitor's "hi" or a popular question is embedded once.
struct QuestionCache {
    capacity: usize,
    vectors: HashMap<String, Arc<Vec<f32>>>,
    order: VecDeque<String>,
}

impl QuestionCache {
    fn get(&self, key: &str) -> Option<Arc<Vec<f32>>> {
        self.vectors.get(key).cloned()
    }

    fn put(&mut self, key: String, vector: Arc<Vec<f32>>) {
        if self.capacity == 0 || self.vectors.contains_key(&key) {
            return;
        }
        if self.order.len() >= self.capacity {
            if let Some(oldest) = self.order.pop_front() {
                self.vectors.remove(&oldest);
            }
        }
        self.order.push_back(key.clone());
        self.vectors.insert(key, vector);
    }
}

pub struct Embedder {
    endpoint: Endpoint,
    breaker: Arc<Breaker>,
    pub model: String,
    /// A question's embedding must arrive within this (`kb.embeddings_timeout_ms`).
    question_timeout: Duration,
    cache: Mutex<QuestionCache>,
    outcomes: Option<IntCounterVec>,
}

impl Embedder {
    /// The embedder `settings` ask for: None when `kb.embeddings_model` is `off` (or empty) or no
    /// model API key is configured.
    pub fn from_settings(
        settings: &Settings,
        client: &reqwest::Client,
        outcomes: Option<IntCounterVec>,
    ) -> Option<Self> {
        let model = settings.kb.embeddings_model_in_use(!settings.openai.api_key.is_empty())?;
        let o = &settings.openai;
        Some(Self {
            endpoint: Endpoint::new(client, &o.base_url, &o.api_key, &o.model, o.max_response_bytes),
            breaker: Breaker::new(settings.breaker.clone(), |_| {}),
            model: model.to_owned(),
            question_timeout: Duration::from_millis(settings.kb.embeddings_timeout_ms),
            cache: Mutex::new(QuestionCache {
                capacity: settings.kb.embeddings_cache,
                vectors: HashMap::new(),
                order: VecDeque::new(),
            }),
            outcomes,
        })
    }

    fn count(&self, outcome: &str) {
        if let Some(outcomes) = &self.outcomes {
            outcomes.with_label_values(&[outcome]).inc();
        }
    }

    /// The question's unit vector within `kb.embeddings_timeout_ms` (or `time_left`, if less):
    /// from the cache, or asked for; None (lexical search) on any failure.
    pub async fn question(&self, text: &str, time_left: Duration) -> Option<Arc<Vec<f32>>> {
        let key = text.trim().to_lowercase();
        if let Some(vector) = self.cache.lock().get(&key) {
            self.count("cached");
            return Some(vector);
        }
        let vector = Arc::new(self.embed(&[text], time_left.min(self.question_timeout)).await?.pop()?);
        self.cache.lock().put(key, vector.clone());
        Some(vector)
    }

    /// Unit vectors for document chunks, in batches of at most 2,048 inputs; `progress` hears how
    /// many are done. None when any batch fails (the documents stay lexical until re-embedded).
    pub async fn documents(&self, texts: &[String], progress: &(dyn Fn(usize, usize) + Sync)) -> Option<Vec<Vec<f32>>> {
        let mut out = Vec::with_capacity(texts.len());
        for batch in texts.chunks(BATCH) {
            let inputs: Vec<&str> = batch.iter().map(|t| cut(t)).collect();
            out.extend(self.embed(&inputs, DOCUMENT_BATCH_TIMEOUT).await?);
            progress(out.len(), texts.len());
        }
        Some(out)
    }

    async fn embed(&self, inputs: &[&str], timeout: Duration) -> Option<Vec<Vec<f32>>> {
        let Some(permit) = self.breaker.admit() else {
            self.count("circuit_open");
            return None;
        };
        match self.endpoint.embed(&self.model, inputs, timeout).await {
            Ok(vectors) => {
                permit.settle(Verdict::Healthy);
                self.count("ok");
                Some(vectors.into_iter().map(normalized).collect())
            }
            Err(error) => {
                permit.settle(if error.trips_breaker() { Verdict::Failed } else { Verdict::Neutral });
                self.count(if matches!(error, AttemptError::Timeout { .. }) { "timeout" } else { "failed" });
                tracing::warn!(error = %error.label(), "embeddings unavailable: lexical search only");
                None
            }
        }
    }
}

/// At most `MAX_INPUT_CHARS` characters, cut at a character boundary.
fn cut(text: &str) -> &str {
    match text.char_indices().nth(MAX_INPUT_CHARS) {
        Some((at, _)) => &text[..at],
        None => text,
    }
}

fn normalized(mut v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

/// Cosine similarity of two unit vectors (0 when their sizes differ).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() {
        return 0.0;
    }
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Binary form: the model's name, a newline, the dimension as 4 bytes little-endian, then every
/// vector's f32s little-endian (a quarter of the base64 text the first version stored).
pub fn encode(model: &str, vectors: &[Vec<f32>]) -> Option<Vec<u8>> {
    let dim = vectors.first()?.len();
    if dim == 0 || vectors.iter().any(|v| v.len() != dim) {
        return None;
    }
    let mut bytes = Vec::with_capacity(model.len() + 5 + dim * 4 * vectors.len());
    bytes.extend_from_slice(model.as_bytes());
    bytes.push(b'\n');
    bytes.extend_from_slice(&(dim as u32).to_le_bytes());
    bytes.extend(vectors.iter().flatten().flat_map(|x| x.to_le_bytes()));
    Some(bytes)
}

/// The vectors `encode` wrote, when they were made by `model` for `chunks` chunks.
pub fn decode(encoded: &[u8], model: &str, chunks: usize) -> Option<Vec<Vec<f32>>> {
    let newline = encoded.iter().position(|b| *b == b'\n')?;
    if &encoded[..newline] != model.as_bytes() {
        return None;
    }
    let rest = &encoded[newline + 1..];
    let dim = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?) as usize;
    let data = &rest[4..];
    if dim == 0 || data.len() != dim * 4 * chunks {
        return None;
    }
    let floats: Vec<f32> = data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    Some(floats.chunks(dim).map(<[f32]>::to_vec).collect())
}

/// The first version's text form (`model\ndim\nbase64`), read once so existing vectors survive the
/// upgrade until they are written again in the binary form.
pub fn decode_legacy(encoded: &str, model: &str, chunks: usize) -> Option<Vec<Vec<f32>>> {
    use base64::Engine;
    let mut parts = encoded.splitn(3, '\n');
    let (stored_model, dim, data) = (parts.next()?, parts.next()?.parse::<usize>().ok()?, parts.next()?);
    if stored_model != model || dim == 0 {
        return None;
    }
    let bytes = base64::engine::general_purpose::STANDARD.decode(data).ok()?;
    if bytes.len() != dim * 4 * chunks {
        return None;
    }
    let floats: Vec<f32> = bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    Some(floats.chunks(dim).map(<[f32]>::to_vec).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_survive_the_round_trip_only_for_their_model_and_shape() {
        let vectors = vec![normalized(vec![3.0, 4.0]), vec![0.0, 1.0]];
        let encoded = encode("text-embedding-3-small", &vectors).unwrap();
        assert_eq!(encoded.len(), "text-embedding-3-small".len() + 1 + 4 + 2 * 2 * 4, "binary, not text");
        assert_eq!(decode(&encoded, "text-embedding-3-small", 2).unwrap(), vectors);
        assert!(decode(&encoded, "other-model", 2).is_none());
        assert!(decode(&encoded, "text-embedding-3-small", 3).is_none());
        assert!((cosine(&vectors[0], &[0.6, 0.8]) - 1.0).abs() < 1e-6);
    }

    #[test]
    fn the_first_versions_text_form_is_still_read() {
        use base64::Engine;
        let bytes: Vec<u8> = [0.6f32, 0.8].iter().flat_map(|x| x.to_le_bytes()).collect();
        let legacy = format!("m\n2\n{}", base64::engine::general_purpose::STANDARD.encode(bytes));
        assert_eq!(decode_legacy(&legacy, "m", 1).unwrap(), vec![vec![0.6, 0.8]]);
        assert!(decode_legacy(&legacy, "other", 1).is_none());
    }

    #[test]
    fn the_question_cache_forgets_the_oldest_first() {
        let mut cache = QuestionCache { capacity: 2, vectors: HashMap::new(), order: VecDeque::new() };
        for key in ["a", "b", "c"] {
            cache.put(key.into(), Arc::new(vec![1.0]));
        }
        assert!(cache.get("a").is_none() && cache.get("b").is_some() && cache.get("c").is_some());
        assert_eq!(cut(&"é".repeat(MAX_INPUT_CHARS + 5)).chars().count(), MAX_INPUT_CHARS);
    }
}
