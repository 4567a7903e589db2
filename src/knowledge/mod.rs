//! The knowledge base: the site's help content, chunked and indexed, searched for every question
//! so answers can be grounded in it and cite it. Documents live in the durable store (SQLite by
//! default, PostgreSQL for replicas); each process keeps its own in-memory index and catches up
//! with changes made elsewhere by polling the site's version.

mod admin;
mod chunk;
mod doc_keys;
pub mod document;
pub mod embed;
pub mod extract;
mod generation_map;
mod index;
pub mod language;
mod query_words;
mod retrieve;
pub mod similar;
mod sites;
mod vectors;

pub use admin::DocumentPage;
pub use chunk::ChunkLimits;
pub use document::{Document, DocumentInput};
pub use retrieve::{Grounding, Passage, SourceRef};
pub use similar::same_question;
pub use sites::KnowledgeBases;
pub use vectors::KbStatus;

use crate::completion::tokens::TokenCounter;
use crate::config::KbSettings;
use crate::store::durable::KbRow;
use crate::store::{DurableStore, StoreError};
use embed::Embedder;
use index::{ChunkToIndex, IndexError, LexicalIndex};
use language::Lang;
use parking_lot::RwLock;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// The site every route uses when nothing names one (`crate::domain::SiteId::DEFAULT`).
pub const SITE: &str = "default";

#[derive(Debug, thiserror::Error)]
pub enum KbError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error("the indexing task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    #[error("the embeddings endpoint did not answer")]
    Embeddings,
}

/// A document as the index sees it (a tombstone when `!live`, so a late, older change is ignored).
#[derive(Debug)]
pub struct IndexedDoc {
    pub id: String,
    pub title: String,
    pub url: Option<String>,
    pub lang: Lang,
    pub version: i64,
    pub live: bool,
    pub chunks: Vec<String>,
    /// One unit vector per chunk, or empty (lexical only).
    pub vectors: Vec<Vec<f32>>,
    /// Each chunk's framed passage block in the reference message and its tokens, made on first
    /// use (the block is the same text every time).
    pub blocks: Vec<std::sync::OnceLock<(String, usize)>>,
}

fn block_slots(chunks: usize) -> Vec<std::sync::OnceLock<(String, usize)>> {
    (0..chunks).map(|_| std::sync::OnceLock::new()).collect()
}

impl IndexedDoc {
    fn tombstone(id: String, version: i64, lang: Lang) -> Self {
        Self {
            id,
            title: String::new(),
            url: None,
            lang,
            version,
            live: false,
            chunks: Vec::new(),
            vectors: Vec::new(),
            blocks: Vec::new(),
        }
    }
}

/// What a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub version: i64,
    /// Chunks of the (last) document written.
    pub chunks: usize,
}

pub struct KnowledgeBase {
    /// The site whose help content this is (the store's `site` column).
    site: String,
    settings: KbSettings,
    default_lang: Lang,
    durable: Arc<dyn DurableStore>,
    index: Arc<LexicalIndex>,
    docs: RwLock<HashMap<String, Arc<IndexedDoc>>>,
    /// Live documents in `docs` (asked on every chat message: not counted each time).
    live: std::sync::atomic::AtomicUsize,
    /// The highest version read back from the store.
    synced: AtomicI64,
    /// One install at a time, so the version check and the index change are one step.
    installing: tokio::sync::Mutex<()>,
    embedder: Option<Arc<Embedder>>,
}

impl KnowledgeBase {
    /// `default`'s knowledge base.
    pub fn new(
        settings: &KbSettings,
        durable: Arc<dyn DurableStore>,
        embedder: Option<Arc<Embedder>>,
    ) -> Result<Self, KbError> {
        Self::for_site(SITE, settings, durable, embedder)
    }

    pub fn for_site(
        site: &str,
        settings: &KbSettings,
        durable: Arc<dyn DurableStore>,
        embedder: Option<Arc<Embedder>>,
    ) -> Result<Self, KbError> {
        Ok(Self {
            site: site.to_owned(),
            default_lang: Lang::of_locale(Some(&settings.default_locale), Lang::En),
            settings: settings.clone(),
            durable,
            index: Arc::new(LexicalIndex::new(settings.title_boost)?),
            docs: RwLock::new(HashMap::new()),
            live: std::sync::atomic::AtomicUsize::new(0),
            synced: AtomicI64::new(0),
            installing: tokio::sync::Mutex::new(()),
            embedder,
        })
    }

    pub fn settings(&self) -> &KbSettings {
        &self.settings
    }

    pub fn durable(&self) -> &Arc<dyn DurableStore> {
        &self.durable
    }

    /// Live documents in the index.
    pub fn document_count(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }

    pub fn chunk_count(&self) -> u64 {
        self.index.len()
    }

    fn limits(&self) -> ChunkLimits {
        ChunkLimits { max_tokens: self.settings.chunk_tokens, overlap_tokens: self.settings.chunk_overlap_tokens }
    }

    /// Stores `docs` under one version and indexes them here at once (other replicas follow).
    pub async fn write(&self, docs: Vec<Document>) -> Result<Written, KbError> {
        self.write_reporting(docs, &|_, _| {}).await
    }

    /// `write`, telling `embedded` how many of the chunks have their embeddings so far.
    pub async fn write_reporting(
        &self,
        docs: Vec<Document>,
        embedded: &(dyn Fn(usize, usize) + Sync),
    ) -> Result<Written, KbError> {
        let limits = self.limits();
        let chunked: Vec<(Document, Vec<String>)> = tokio::task::spawn_blocking(move || {
            let counter = TokenCounter::o200k();
            docs.into_iter()
                .map(|doc| {
                    let chunks = chunk::chunk(&doc.body, &counter, limits);
                    (doc, chunks)
                })
                .collect()
        })
        .await?;
        let vectors = self.embed_chunks(&chunked, embedded).await;
        let now = chrono::Utc::now().timestamp_millis();
        let rows: Vec<KbRow> = chunked
            .iter()
            .zip(&vectors)
            .map(|((doc, _), vectors)| KbRow {
                id: doc.id.clone(),
                title: doc.title.clone(),
                body: doc.body.clone(),
                url: doc.url.clone(),
                locale: doc.locale.clone(),
                tags: serde_json::to_string(&doc.tags).unwrap_or_else(|_| "[]".into()),
                version: 0,
                deleted: false,
                updated_ms: now,
                vectors: vectors.as_ref().zip(self.embedder.as_ref()).and_then(|(v, e)| embed::encode(&e.model, v)),
                legacy_embeddings: None,
            })
            .collect();
        let version = self.durable.kb_upsert(&self.site, &rows).await?;
        let chunks = chunked.last().map_or(0, |(_, c)| c.len());
        let indexed = chunked
            .into_iter()
            .zip(vectors)
            .map(|((doc, chunks), vectors)| {
                self.indexed(doc.id, doc.title, doc.url, doc.locale.as_deref(), version, chunks, vectors)
            })
            .collect();
        self.install(indexed).await?;
        Ok(Written { version, chunks })
    }

    /// Tombstones a document; false when there was none.
    pub async fn delete(&self, id: &str) -> Result<bool, KbError> {
        let now = chrono::Utc::now().timestamp_millis();
        let Some(version) = self.durable.kb_delete(&self.site, id, now).await? else {
            return Ok(false);
        };
        self.install(vec![IndexedDoc::tombstone(id.to_owned(), version, self.default_lang)]).await?;
        Ok(true)
    }

    /// Applies every change stored since the last look (all of them the first time); returns how
    /// many documents changed.
    pub async fn sync(&self) -> Result<usize, KbError> {
        self.sync_to(self.durable.kb_version(&self.site).await?).await
    }

    /// `sync`, the store's version already read (a poll of every site's version reads them at once).
    pub async fn sync_to(&self, stored_version: i64) -> Result<usize, KbError> {
        let since = self.synced.load(Ordering::Acquire);
        if stored_version <= since {
            return Ok(0);
        }
        let rows = self.durable.kb_changes(&self.site, since).await?;
        let newest = rows.iter().map(|r| r.version).max().unwrap_or(since);
        let limits = self.limits();
        let model = self.embedder.as_ref().map(|e| e.model.clone());
        let default_lang = self.default_lang;
        let indexed: Vec<IndexedDoc> = tokio::task::spawn_blocking(move || {
            let counter = TokenCounter::o200k();
            rows.into_iter().map(|row| from_row(row, &counter, limits, model.as_deref(), default_lang)).collect()
        })
        .await?;
        let changed = self.install(indexed).await?;
        self.synced.fetch_max(newest, Ordering::AcqRel);
        Ok(changed)
    }

    /// Puts newer versions of documents into the map and the index; older ones are skipped.
    async fn install(&self, docs: Vec<IndexedDoc>) -> Result<usize, KbError> {
        let _one_at_a_time = self.installing.lock().await;
        let mut newest: HashMap<String, IndexedDoc> = HashMap::new();
        {
            let map = self.docs.read();
            for doc in docs {
                let known = map.get(&doc.id).map_or(i64::MIN, |d| d.version);
                let pending = newest.get(&doc.id).map_or(i64::MIN, |d| d.version);
                if doc.version > known && doc.version > pending {
                    newest.insert(doc.id.clone(), doc);
                }
            }
        }
        if newest.is_empty() {
            return Ok(0);
        }
        let newest: Vec<Arc<IndexedDoc>> = newest.into_values().map(Arc::new).collect();
        let removed: Vec<String> = newest.iter().map(|d| d.id.clone()).collect();
        let added: Vec<ChunkToIndex> = newest
            .iter()
            .filter(|d| d.live)
            .flat_map(|d| {
                d.chunks.iter().enumerate().map(move |(i, text)| ChunkToIndex {
                    doc_id: d.id.clone(),
                    chunk: i,
                    lang: d.lang,
                    text: format!("{}\n{}", d.title, text),
                    title: d.title.clone(),
                })
            })
            .collect();
        let index = self.index.clone();
        tokio::task::spawn_blocking(move || index.apply(&removed, added)).await??;
        let mut map = self.docs.write();
        for doc in &newest {
            let was_live = map.insert(doc.id.clone(), doc.clone()).is_some_and(|old| old.live);
            match (was_live, doc.live) {
                (false, true) => self.live.fetch_add(1, Ordering::Relaxed),
                (true, false) => self.live.fetch_sub(1, Ordering::Relaxed),
                _ => 0,
            };
        }
        Ok(newest.len())
    }

    #[allow(clippy::too_many_arguments)]
    fn indexed(
        &self,
        id: String,
        title: String,
        url: Option<String>,
        locale: Option<&str>,
        version: i64,
        chunks: Vec<String>,
        vectors: Option<Vec<Vec<f32>>>,
    ) -> IndexedDoc {
        let lang = Lang::of_locale(locale, self.default_lang);
        let blocks = block_slots(chunks.len());
        IndexedDoc { id, title, url, lang, version, live: true, chunks, vectors: vectors.unwrap_or_default(), blocks }
    }
}

/// A stored row as the index needs it (chunked again: chunking is deterministic).
fn from_row(
    row: KbRow,
    counter: &TokenCounter,
    limits: ChunkLimits,
    model: Option<&str>,
    default_lang: Lang,
) -> IndexedDoc {
    let lang = Lang::of_locale(row.locale.as_deref(), default_lang);
    if row.deleted {
        return IndexedDoc::tombstone(row.id, row.version, lang);
    }
    let chunks = chunk::chunk(&row.body, counter, limits);
    // Vectors of another model (or none yet) are left out: the document is searched by keywords
    // until the background task embeds it again.
    let vectors = model
        .and_then(|model| {
            let binary = row.vectors.as_deref().and_then(|v| embed::decode(v, model, chunks.len()));
            binary
                .or_else(|| row.legacy_embeddings.as_deref().and_then(|e| embed::decode_legacy(e, model, chunks.len())))
        })
        .unwrap_or_default();
    let blocks = block_slots(chunks.len());
    IndexedDoc {
        id: row.id,
        title: row.title,
        url: row.url,
        lang,
        version: row.version,
        live: true,
        chunks,
        vectors,
        blocks,
    }
}
