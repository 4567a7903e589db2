//! The knowledge base's vectors: chunk embeddings made at import, made again in the background for
//! whatever lacks them (the model changed, or the embeddings endpoint was down at import), and the
//! status that says how far that has come.

use super::{embed, Document, IndexedDoc, KbError, KnowledgeBase};
use serde::Serialize;
use std::sync::Arc;

/// Chunks embedded per background round (one embeddings request).
const ROUND_CHUNKS: usize = embed::BATCH;
/// After a failed round the background task waits this many sync intervals (the breaker guards
/// the rest).
pub(super) const INTERVALS_AFTER_FAILURE: u32 = 10;

/// `GET /admin/kb/status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KbStatus {
    pub documents: usize,
    pub chunks: u64,
    /// Chunks with a vector of the model in use (searched by meaning too).
    pub embedded_chunks: usize,
    /// The embeddings model in use; null when search is keywords only.
    pub model: Option<String>,
}

/// What a chunk is embedded as: its document's title, then the chunk.
fn embedding_input(title: &str, chunk: &str) -> String {
    format!("{title}\n{chunk}")
}

impl KnowledgeBase {
    /// What this base holds in memory: the search index's segments, the passages' text and their
    /// vectors (bytes, approximate; `velochat_kb_index_bytes`).
    pub fn memory_bytes(&self) -> u64 {
        let held: usize = self
            .docs
            .read()
            .values()
            .map(|d| {
                let vectors: usize = d.vectors.iter().map(|v| v.len() * std::mem::size_of::<f32>()).sum();
                d.title.len() + d.chunks.iter().map(String::len).sum::<usize>() + vectors
            })
            .sum();
        self.index.space_bytes() + held as u64
    }

    pub fn status(&self) -> KbStatus {
        let docs = self.docs.read();
        KbStatus {
            documents: self.document_count(),
            chunks: self.chunk_count(),
            embedded_chunks: docs.values().filter(|d| d.live).map(|d| d.vectors.len()).sum(),
            model: self.embedder.as_ref().map(|e| e.model.clone()),
        }
    }

    /// One vector list per document (None where embeddings are off or failed: those documents
    /// are embedded later, in the background).
    pub(super) async fn embed_chunks(
        &self,
        chunked: &[(Document, Vec<String>)],
        progress: &(dyn Fn(usize, usize) + Sync),
    ) -> Vec<Option<Vec<Vec<f32>>>> {
        let Some(embedder) = &self.embedder else {
            return vec![None; chunked.len()];
        };
        let texts: Vec<String> =
            chunked.iter().flat_map(|(d, chunks)| chunks.iter().map(|c| embedding_input(&d.title, c))).collect();
        let Some(mut vectors) = embedder.documents(&texts, progress).await else {
            return vec![None; chunked.len()];
        };
        let mut out = Vec::with_capacity(chunked.len());
        for (_, chunks) in chunked.iter().rev() {
            out.push(Some(vectors.split_off(vectors.len() - chunks.len())));
        }
        out.reverse();
        out
    }

    /// One round: returns how many documents got their vectors (0 = nothing to do).
    pub async fn embed_round(&self) -> Result<usize, KbError> {
        let Some(embedder) = &self.embedder else { return Ok(0) };
        let waiting: Vec<Arc<IndexedDoc>> = {
            let docs = self.docs.read();
            let mut chunks = 0;
            docs.values()
                .filter(|d| d.live && d.vectors.is_empty() && !d.chunks.is_empty())
                .take_while(|d| {
                    chunks += d.chunks.len();
                    chunks <= ROUND_CHUNKS
                })
                .cloned()
                .collect()
        };
        if waiting.is_empty() {
            return Ok(0);
        }
        let texts: Vec<String> =
            waiting.iter().flat_map(|d| d.chunks.iter().map(|c| embedding_input(&d.title, c))).collect();
        let Some(mut vectors) = embedder.documents(&texts, &|_, _| {}).await else {
            return Err(KbError::Embeddings);
        };
        let mut installed = Vec::with_capacity(waiting.len());
        for doc in waiting.iter().rev() {
            let own = vectors.split_off(vectors.len() - doc.chunks.len());
            let Some(bytes) = embed::encode(&embedder.model, &own) else { continue };
            // A document changed meanwhile keeps its new version; the next round embeds that.
            if let Some(version) = self.durable.kb_set_vectors(&self.site, &doc.id, doc.version, &bytes).await? {
                installed.push(IndexedDoc {
                    id: doc.id.clone(),
                    title: doc.title.clone(),
                    url: doc.url.clone(),
                    lang: doc.lang,
                    version,
                    live: true,
                    chunks: doc.chunks.clone(),
                    vectors: own,
                    blocks: super::block_slots(doc.chunks.len()),
                });
            }
        }
        let count = installed.len();
        self.install(installed).await?;
        Ok(count)
    }
}
