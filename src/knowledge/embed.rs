//! Optional semantic search: chunk embeddings from the model API's embeddings endpoint (same
//! client and breaker as the chat calls), kept with the documents, searched by cosine similarity
//! and fused with the lexical ranking by reciprocal rank. Any failure means lexical only.

use crate::completion::breaker::{Breaker, Verdict};
use crate::completion::client::Endpoint;
use base64::Engine;
use std::sync::Arc;
use std::time::Duration;

/// Inputs per embeddings request.
const BATCH: usize = 128;
/// Reciprocal-rank fusion's usual constant.
pub const RRF_K: f32 = 60.0;

pub struct Embedder {
    pub endpoint: Endpoint,
    pub breaker: Arc<Breaker>,
    pub model: String,
    pub timeout: Duration,
}

impl Embedder {
    /// Unit vectors for `texts`, or None when the endpoint is unavailable (the breaker is open,
    /// it failed, or it is too slow).
    pub async fn embed(&self, texts: &[&str], timeout: Duration) -> Option<Vec<Vec<f32>>> {
        let mut out = Vec::with_capacity(texts.len());
        for batch in texts.chunks(BATCH) {
            let permit = self.breaker.admit()?;
            match self.endpoint.embed(&self.model, batch, timeout.min(self.timeout)).await {
                Ok(vectors) => {
                    permit.settle(Verdict::Healthy);
                    out.extend(vectors.into_iter().map(normalized));
                }
                Err(error) => {
                    permit.settle(if error.trips_breaker() { Verdict::Failed } else { Verdict::Neutral });
                    tracing::warn!(error = %error.label(), "embeddings unavailable: lexical search only");
                    return None;
                }
            }
        }
        Some(out)
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

/// `model`, the dimension, then every vector's f32s little-endian in base64.
pub fn encode(model: &str, vectors: &[Vec<f32>]) -> Option<String> {
    let dim = vectors.first()?.len();
    if dim == 0 || vectors.iter().any(|v| v.len() != dim) {
        return None;
    }
    let bytes: Vec<u8> = vectors.iter().flatten().flat_map(|x| x.to_le_bytes()).collect();
    Some(format!("{model}\n{dim}\n{}", base64::engine::general_purpose::STANDARD.encode(bytes)))
}

/// The vectors `encode` wrote, when they were made by `model` for `chunks` chunks.
pub fn decode(encoded: &str, model: &str, chunks: usize) -> Option<Vec<Vec<f32>>> {
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
        assert_eq!(decode(&encoded, "text-embedding-3-small", 2).unwrap(), vectors);
        assert!(decode(&encoded, "other-model", 2).is_none());
        assert!(decode(&encoded, "text-embedding-3-small", 3).is_none());
        assert!((cosine(&vectors[0], &[0.6, 0.8]) - 1.0).abs() < 1e-6);
    }
}
