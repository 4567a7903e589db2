//! The knowledge admin service: what `/admin/kb/*` and the console read besides writes, deletes and
//! search (which the chat path shares): pages of documents, one document, search with the chat
//! path's embeddings deadline.

use super::{KbError, KnowledgeBase, Passage};
use crate::store::durable::KbRow;
use std::time::Duration;

/// One page of documents in id order.
pub struct DocumentPage {
    pub rows: Vec<KbRow>,
    /// The id to pass back as `cursor` for the next page; None on the last one.
    pub next_cursor: Option<String>,
    /// Documents matching the filter, all pages together.
    pub total: i64,
}

impl KnowledgeBase {
    /// `limit` documents after `cursor` whose id or title contains `filter` (any case).
    pub async fn page(&self, cursor: Option<&str>, filter: Option<&str>, limit: i64) -> Result<DocumentPage, KbError> {
        let (mut rows, total) = tokio::try_join!(
            self.durable.kb_list(&self.site, cursor, filter, limit + 1),
            self.durable.kb_count(&self.site, filter)
        )?;
        let more = rows.len() as i64 > limit;
        rows.truncate(limit.max(0) as usize);
        let next_cursor = if more { rows.last().map(|r| r.id.clone()) } else { None };
        Ok(DocumentPage { rows, next_cursor, total })
    }

    pub async fn document(&self, id: &str) -> Result<Option<KbRow>, KbError> {
        Ok(self.durable.kb_get(&self.site, id).await?)
    }

    /// The chat path's retrieval for `query`, best first, within the embeddings deadline.
    pub async fn search_like_chat(&self, query: &str, locale: Option<&str>, k: usize) -> Result<Vec<Passage>, KbError> {
        let timeout = Duration::from_millis(self.settings.embeddings_timeout_ms);
        self.search(query, locale, k, timeout).await
    }
}
