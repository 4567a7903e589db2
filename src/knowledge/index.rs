//! The lexical index: tantivy, in memory, BM25 over one text field per language (each with its
//! own stemmer and stop words). A chunk is indexed in its document's language; a query is analysed
//! for every language and the visitor's own is boosted.

use super::language::Lang;
use parking_lot::Mutex;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use tantivy::collector::TopDocs;
use tantivy::query::{BooleanQuery, BoostQuery, Occur, Query, TermQuery};
use tantivy::schema::{Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, Value, STORED, STRING};
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};

/// The visitor's language counts this much more when ranking (not when thresholding).
const OWN_LANGUAGE_BOOST: f32 = 1.5;
const WRITER_MEMORY_BYTES: usize = 32 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
#[error("the knowledge index failed: {0}")]
pub struct IndexError(#[from] tantivy::TantivyError);

/// One chunk to index: `text` is what is searched (the title and the passage); `title` is also
/// searched on its own, boosted.
pub struct ChunkToIndex {
    pub doc_id: String,
    pub chunk: usize,
    pub lang: Lang,
    pub text: String,
    pub title: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LexicalHit {
    pub doc_id: String,
    pub chunk: usize,
    /// BM25 with the language boost: for ranking.
    pub score: f32,
    /// The score over what a chunk of average length holding every query term once would get,
    /// capped at 1: the share of the question's weight (rare words weigh more) the chunk matches.
    /// Comparable across queries, so one threshold serves all of them.
    pub relevance: f32,
}

struct Fields {
    id: Field,
    chunk: Field,
    lang: Field,
    text: [Field; 4],
    title: [Field; 4],
}

pub struct LexicalIndex {
    index: Index,
    reader: IndexReader,
    writer: Mutex<IndexWriter>,
    fields: Fields,
    /// Languages with at least one chunk: a query skips the others' analysis and lookups.
    present: [AtomicBool; 4],
    /// How much more a query word counts in a title.
    title_boost: f32,
}

fn lang_slot(lang: Lang) -> usize {
    Lang::ALL.iter().position(|l| *l == lang).unwrap_or(0)
}

impl LexicalIndex {
    pub fn new(title_boost: f32) -> Result<Self, IndexError> {
        let mut schema = Schema::builder();
        let id = schema.add_text_field("doc_id", STRING | STORED);
        let chunk = schema.add_u64_field("chunk", STORED);
        let lang = schema.add_u64_field("lang", STORED);
        let mut analysed = |name: &str, lang: Lang| {
            let indexing = TextFieldIndexing::default()
                .set_tokenizer(&format!("velochat_{}", lang.code()))
                .set_index_option(IndexRecordOption::WithFreqs);
            schema.add_text_field(
                &format!("{name}_{}", lang.code()),
                TextOptions::default().set_indexing_options(indexing),
            )
        };
        let text = Lang::ALL.map(|lang| analysed("text", lang));
        let title = Lang::ALL.map(|lang| analysed("title", lang));
        let index = Index::create_in_ram(schema.build());
        for lang in Lang::ALL {
            index.tokenizers().register(&format!("velochat_{}", lang.code()), lang.analyzer());
        }
        let writer = index.writer_with_num_threads(1, WRITER_MEMORY_BYTES)?;
        let reader = index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into()?;
        let present = Lang::ALL.map(|_| AtomicBool::new(false));
        let fields = Fields { id, chunk, lang, text, title };
        Ok(Self { index, reader, writer: Mutex::new(writer), fields, present, title_boost })
    }

    /// Removes every chunk of `removed` documents, adds `added` chunks, and makes it searchable.
    pub fn apply(&self, removed: &[String], added: Vec<ChunkToIndex>) -> Result<(), IndexError> {
        let mut writer = self.writer.lock();
        for id in removed {
            writer.delete_term(Term::from_field_text(self.fields.id, id));
        }
        for chunk in added {
            let mut doc = TantivyDocument::default();
            doc.add_text(self.fields.id, &chunk.doc_id);
            doc.add_u64(self.fields.chunk, chunk.chunk as u64);
            doc.add_u64(self.fields.lang, lang_slot(chunk.lang) as u64);
            doc.add_text(self.fields.text[lang_slot(chunk.lang)], &chunk.text);
            doc.add_text(self.fields.title[lang_slot(chunk.lang)], &chunk.title);
            writer.add_document(doc)?;
        }
        writer.commit()?;
        self.reader.reload()?;
        let searcher = self.reader.searcher();
        for (slot, field) in self.fields.text.iter().enumerate() {
            let mut tokens = 0;
            for segment in searcher.segment_readers() {
                tokens += segment.inverted_index(*field)?.total_num_tokens();
            }
            self.present[slot].store(tokens > 0, Ordering::Relaxed);
        }
        Ok(())
    }

    /// The best `limit` chunks for `query`, best first.
    pub fn search(&self, query: &str, visitor: Option<Lang>, limit: usize) -> Result<Vec<LexicalHit>, IndexError> {
        let searcher = self.reader.searcher();
        let total = searcher.num_docs();
        if total == 0 || limit == 0 {
            return Ok(Vec::new());
        }
        let mut matching: [Vec<TermQuery>; 4] = Default::default();
        let mut titled: [Vec<TermQuery>; 4] = Default::default();
        let mut ceiling = [0f32; 4];
        for lang in Lang::ALL {
            let slot = lang_slot(lang);
            if !self.present[slot].load(Ordering::Relaxed) {
                continue;
            }
            let field = self.fields.text[slot];
            let mut analyzer = self.index.tokenizer_for_field(field)?;
            let mut stream = analyzer.token_stream(query);
            let mut seen = HashSet::new();
            while stream.advance() {
                let text = stream.token().text.clone();
                if !seen.insert(text.clone()) {
                    continue;
                }
                let term = Term::from_field_text(field, &text);
                let doc_freq = searcher.doc_freq(&term)?;
                ceiling[slot] += idf(doc_freq, total);
                if doc_freq > 0 {
                    matching[slot].push(TermQuery::new(term, IndexRecordOption::WithFreqs));
                }
                let in_titles = Term::from_field_text(self.fields.title[slot], &text);
                if self.title_boost > 0.0 && searcher.doc_freq(&in_titles)? > 0 {
                    titled[slot].push(TermQuery::new(in_titles, IndexRecordOption::WithFreqs));
                }
            }
        }
        // The visitor's language is boosted only when another language matches too: a boost
        // changes nothing within one language, and plain term clauses let tantivy skip
        // non-competitive blocks (block-max WAND) instead of scoring every posting.
        let mixed = matching.iter().filter(|m| !m.is_empty()).count() > 1;
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for lang in Lang::ALL {
            let slot = lang_slot(lang);
            let boost = if mixed && visitor == Some(lang) { OWN_LANGUAGE_BOOST } else { 1.0 };
            ceiling[slot] *= boost;
            for term_query in std::mem::take(&mut matching[slot]) {
                let clause: Box<dyn Query> = if boost == 1.0 {
                    Box::new(term_query)
                } else {
                    Box::new(BoostQuery::new(Box::new(term_query), boost))
                };
                clauses.push((Occur::Should, clause));
            }
            // Title words rank a chunk higher (its relevance, over the body's ceiling, stays capped at 1).
            for term_query in std::mem::take(&mut titled[slot]) {
                clauses
                    .push((Occur::Should, Box::new(BoostQuery::new(Box::new(term_query), boost * self.title_boost))));
            }
        }
        if clauses.is_empty() {
            return Ok(Vec::new());
        }
        let top = searcher.search(&BooleanQuery::new(clauses), &TopDocs::with_limit(limit))?;
        let mut hits = Vec::with_capacity(top.len());
        for (score, address) in top {
            let doc: TantivyDocument = searcher.doc(address)?;
            let doc_id = doc.get_first(self.fields.id).and_then(|v| v.as_str()).unwrap_or_default().to_owned();
            let chunk = doc.get_first(self.fields.chunk).and_then(|v| v.as_u64()).unwrap_or(0) as usize;
            let slot = doc.get_first(self.fields.lang).and_then(|v| v.as_u64()).unwrap_or(0) as usize;
            let own_ceiling = ceiling.get(slot).copied().unwrap_or(0.0);
            let relevance = if own_ceiling > 0.0 { (score / own_ceiling).min(1.0) } else { 0.0 };
            hits.push(LexicalHit { doc_id, chunk, score, relevance });
        }
        Ok(hits)
    }

    /// Chunks indexed (deleted ones excluded once committed).
    pub fn len(&self) -> u64 {
        self.reader.searcher().num_docs()
    }
}

/// tantivy's BM25 idf.
fn idf(doc_freq: u64, doc_count: u64) -> f32 {
    let x = (doc_count.saturating_sub(doc_freq) as f32 + 0.5) / (doc_freq as f32 + 0.5);
    (1.0 + x).ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index_of(docs: &[(&str, Lang, &str)]) -> LexicalIndex {
        let index = LexicalIndex::new(0.5).unwrap();
        let added = docs
            .iter()
            .map(|(id, lang, text)| ChunkToIndex {
                doc_id: (*id).to_owned(),
                chunk: 0,
                lang: *lang,
                text: (*text).to_owned(),
                title: text.lines().next().unwrap_or_default().to_owned(),
            })
            .collect();
        index.apply(&[], added).unwrap();
        index
    }

    #[test]
    fn only_shared_meaningful_words_match() {
        let index = index_of(&[
            ("returns", Lang::En, "Returns policy\nYou can return any item within 30 days for a full refund."),
            ("ship", Lang::En, "Shipping\nWe ship to Canada in 5 days."),
        ]);
        let hits = index.search("Do you sell gift cards?", None, 5).unwrap();
        assert!(hits.is_empty(), "{hits:?}");
        let hits = index.search("Do you ship to Canada?", None, 5).unwrap();
        assert_eq!(hits.len(), 1, "{hits:?}");
        assert_eq!(hits[0].doc_id, "ship");
        assert!(hits[0].relevance > 0.5, "{hits:?}");
    }
}
