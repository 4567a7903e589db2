//! The knowledge base's vectors: chunk embeddings made at import, made again in the background for
//! whatever lacks them (the model changed, or the embeddings endpoint was down at import), and the
//! status that says how far that has come.

use super::{embed, Document, IndexedDoc, KbError, KnowledgeBase, SITE};
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;

/// Chunks embedded per background round (one embeddings request).
const ROUND_CHUNKS: usize = embed::BATCH;
/// After a failed round the background task waits this many sync intervals (the breaker guards
/// the rest).
const INTERVALS_AFTER_FAILURE: u32 = 10;

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

    /// Embeds, in rounds, the live documents that have no vectors of the model in use, and keeps
    /// them with the documents (a version bump, so other replicas read them too). Search stays by
    /// keywords for a document until its round is done.
    pub fn spawn_embedding(
        self: &Arc<Self>,
        stop: tokio_util::sync::CancellationToken,
    ) -> Option<tokio::task::JoinHandle<()>> {
        self.embedder.as_ref()?;
        let kb = self.clone();
        let every = Duration::from_millis(self.settings.sync_interval_ms.max(50));
        Some(tokio::spawn(async move {
            loop {
                let pause = match kb.embed_round().await {
                    Ok(0) => every,
                    Ok(_) => Duration::ZERO,
                    Err(e) => {
                        tracing::warn!(error = %crate::error_chain::describe(&e), "background embedding round failed");
                        every * INTERVALS_AFTER_FAILURE
                    }
                };
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(pause) => {}
                }
            }
        }))
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
            if let Some(version) = self.durable.kb_set_vectors(SITE, &doc.id, doc.version, &bytes).await? {
                installed.push(IndexedDoc {
                    id: doc.id.clone(),
                    title: doc.title.clone(),
                    url: doc.url.clone(),
                    lang: doc.lang,
                    version,
                    live: true,
                    chunks: doc.chunks.clone(),
                    vectors: own,
                    block_tokens: super::token_slots(doc.chunks.len()),
                });
            }
        }
        let count = installed.len();
        self.install(installed).await?;
        Ok(count)
    }
}
