//! The lexical index: tantivy, in memory, BM25 over one text field per language (each with its
//! own stemmer and stop words). A chunk is indexed in its document's language; a query is analysed
//! for every language and the visitor's own is boosted.

use super::doc_keys::{pack, unpack, DocKeys};
use super::generation_map::GenerationMap;
use super::language::Lang;
use super::query_words::{self, Weighed, WordAnalysis, WordMemory, WordTerm};
use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use tantivy::collector::TopDocs;
use tantivy::query::{BooleanQuery, BoostQuery, Occur, Query, TermQuery};
use tantivy::schema::{Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, FAST, STRING};
use tantivy::tokenizer::TextAnalyzer;
use tantivy::{DocAddress, Index, IndexReader, IndexWriter, ReloadPolicy, Searcher, TantivyDocument, Term};

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
    pub doc_id: Arc<str>,
    pub chunk: usize,
    /// BM25 with the language boost: for ranking.
    pub score: f32,
    /// The score over what a chunk of average length holding every query term once would get,
    /// capped at 1: the share of the question's weight (rare words weigh more) the chunk matches.
    /// Comparable across queries, so one threshold serves all of them.
    pub relevance: f32,
}

struct Fields {
    /// The document id, indexed (not stored) so a document's chunks can be deleted by it.
    id: Field,
    /// Which document (its key in `DocKeys`), chunk and language a hit is, packed in one fast-field
    /// column (`pack`): read per hit without touching tantivy's compressed document store.
    hit: Field,
    text: [Field; 4],
    title: [Field; 4],
}

pub struct LexicalIndex {
    index: Index,
    reader: IndexReader,
    /// One change at a time. The writer (its indexing thread and memory arena) exists only while
    /// a change is applied: a thousand sites' idle indexes hold none.
    writing: Mutex<()>,
    fields: Fields,
    /// Languages with at least one chunk: a query skips the others' analysis and lookups.
    present: [AtomicBool; 4],
    /// How much more a query word counts in a title.
    title_boost: f32,
    keys: RwLock<DocKeys>,
    /// Bumped after every change searchers can see; the two maps below hold for one generation.
    generation: AtomicU64,
    /// Top hits per query shape. Visitors ask the same few questions in many wordings, and most
    /// words of a message (an order number, a name) are in no chunk: messages whose indexed words
    /// are the same share a ranking (each still gets its own relevance: its unknown words weigh in).
    ranked: GenerationMap<Vec<RankedHit>>,
    words: WordMemory,
}

/// 4,096 query shapes of up to 20 hits each: well under 1 MiB.
const RANKINGS: usize = 4096;

/// One ranked chunk: tantivy's score and the packed fast-field value (document key, chunk, language).
type RankedHit = (f32, u64);

const HIT_FIELD: &str = "hit";

fn lang_slot(lang: Lang) -> usize {
    Lang::ALL.iter().position(|l| *l == lang).unwrap_or(0)
}

impl LexicalIndex {
    pub fn new(title_boost: f32) -> Result<Self, IndexError> {
        let mut schema = Schema::builder();
        let id = schema.add_text_field("doc_id", STRING);
        let hit = schema.add_u64_field(HIT_FIELD, FAST);
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
        let reader = index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into()?;
        let present = Lang::ALL.map(|_| AtomicBool::new(false));
        let fields = Fields { id, hit, text, title };
        let (keys, generation) = (RwLock::new(DocKeys::default()), AtomicU64::new(0));
        let (ranked, words) = (GenerationMap::new(RANKINGS), WordMemory::new(query_words::CAPACITY));
        let writing = Mutex::new(());
        Ok(Self { index, reader, writing, fields, present, title_boost, keys, generation, ranked, words })
    }

    /// Removes every chunk of `removed` documents, adds `added` chunks, and makes it searchable.
    pub fn apply(&self, removed: &[String], added: Vec<ChunkToIndex>) -> Result<(), IndexError> {
        let _one_at_a_time = self.writing.lock();
        let mut writer: IndexWriter = self.index.writer_with_num_threads(1, WRITER_MEMORY_BYTES)?;
        for id in removed {
            writer.delete_term(Term::from_field_text(self.fields.id, id));
        }
        // Every document added gets a fresh key; the keys it (or a removed document) had before stay
        // resolvable until the commit below has replaced their chunks.
        let mut stale: Vec<u64> = Vec::new();
        let mut fresh: HashMap<String, u64> = HashMap::new();
        {
            let mut keys = self.keys.write();
            stale.extend(removed.iter().filter_map(|id| keys.by_id.get(id.as_str()).copied()));
            for chunk in &added {
                if fresh.contains_key(&chunk.doc_id) {
                    continue;
                }
                stale.extend(keys.by_id.get(chunk.doc_id.as_str()).copied());
                keys.next += 1;
                let (key, id) = (keys.next, Arc::<str>::from(chunk.doc_id.as_str()));
                keys.ids.insert(key, id.clone());
                keys.by_id.insert(id, key);
                fresh.insert(chunk.doc_id.clone(), key);
            }
        }
        for chunk in added {
            let key = fresh[&chunk.doc_id];
            let mut doc = TantivyDocument::default();
            doc.add_text(self.fields.id, &chunk.doc_id);
            doc.add_u64(self.fields.hit, pack(key, chunk.chunk, lang_slot(chunk.lang)));
            doc.add_text(self.fields.text[lang_slot(chunk.lang)], &chunk.text);
            doc.add_text(self.fields.title[lang_slot(chunk.lang)], &chunk.title);
            writer.add_document(doc)?;
        }
        writer.commit()?;
        // Merges the commit started finish before the writer (and its threads) go.
        writer.wait_merging_threads()?;
        self.reader.reload()?;
        // The languages present are settled before the generation moves on: what a search
        // remembers under the new generation is analysed with them.
        let searcher = self.reader.searcher();
        for (slot, field) in self.fields.text.iter().enumerate() {
            let mut tokens = 0;
            for segment in searcher.segment_readers() {
                tokens += segment.inverted_index(*field)?.total_num_tokens();
            }
            self.present[slot].store(tokens > 0, Ordering::Relaxed);
        }
        let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        self.ranked.advance(generation);
        self.words.advance(generation);
        {
            let mut keys = self.keys.write();
            for key in stale {
                if let Some(id) = keys.ids.remove(&key) {
                    if keys.by_id.get(&id) == Some(&key) {
                        keys.by_id.remove(&id);
                    }
                }
            }
        }
        Ok(())
    }

    /// The best `limit` chunks for `query`, best first.
    pub fn search(&self, query: &str, visitor: Option<Lang>, limit: usize) -> Result<Vec<LexicalHit>, IndexError> {
        // Read before the searcher is taken: nothing is remembered under a newer generation than
        // the index it was computed from.
        let generation = self.generation.load(Ordering::Acquire);
        let searcher = self.reader.searcher();
        let total = searcher.num_docs();
        if total == 0 || limit == 0 {
            return Ok(Vec::new());
        }
        let mut analyzers: [Option<TextAnalyzer>; 4] = Default::default();
        let words = query_words::split(query);
        let analysed =
            query_words::analyse(&self.words, &words, generation, |w| self.analyse_word(&searcher, &mut analyzers, w))?;
        let Weighed { matching, titled, mut ceiling } = query_words::weigh(&analysed, total);
        // The visitor's language is boosted only when another language matches too: a boost
        // changes nothing within one language, and plain term clauses let tantivy skip
        // non-competitive blocks (block-max WAND) instead of scoring every posting.
        let mixed = matching.iter().filter(|m| !m.is_empty()).count() > 1;
        let boost_of = |lang: Lang| if mixed && visitor == Some(lang) { OWN_LANGUAGE_BOOST } else { 1.0 };
        for lang in Lang::ALL {
            ceiling[lang_slot(lang)] *= boost_of(lang);
        }
        let boosted = mixed.then_some(visitor).flatten().map(Lang::code);
        let shape = query_words::query_shape(&matching, &titled, boosted, limit);
        let ranked = match self.ranked.get(&shape, generation) {
            Some(ranked) => ranked,
            None => {
                let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
                for lang in Lang::ALL {
                    let (slot, boost) = (lang_slot(lang), boost_of(lang));
                    for word in &matching[slot] {
                        let term = Term::from_field_text(self.fields.text[slot], word);
                        let term_query = TermQuery::new(term, IndexRecordOption::WithFreqs);
                        let clause: Box<dyn Query> = if boost == 1.0 {
                            Box::new(term_query)
                        } else {
                            Box::new(BoostQuery::new(Box::new(term_query), boost))
                        };
                        clauses.push((Occur::Should, clause));
                    }
                    // Title words rank a chunk higher (its relevance, over the body's ceiling, stays capped at 1).
                    for word in &titled[slot] {
                        let term = Term::from_field_text(self.fields.title[slot], word);
                        let term_query = Box::new(TermQuery::new(term, IndexRecordOption::WithFreqs));
                        clauses.push((Occur::Should, Box::new(BoostQuery::new(term_query, boost * self.title_boost))));
                    }
                }
                if clauses.is_empty() {
                    return Ok(Vec::new());
                }
                let top = searcher.search(&BooleanQuery::new(clauses), &TopDocs::with_limit(limit))?;
                let ranked = self.packed(&searcher, top)?;
                self.ranked.put(&shape, generation, ranked.clone());
                ranked
            }
        };
        let keys = self.keys.read();
        let mut hits = Vec::with_capacity(ranked.len());
        for (score, packed) in ranked {
            let (key, chunk, slot) = unpack(packed);
            // A document replaced after this searcher was taken: its old chunks are not answers.
            let Some(doc_id) = keys.ids.get(&key) else { continue };
            let own_ceiling = ceiling.get(slot).copied().unwrap_or(0.0);
            let relevance = if own_ceiling > 0.0 { (score / own_ceiling).min(1.0) } else { 0.0 };
            hits.push(LexicalHit { doc_id: Arc::clone(doc_id), chunk, score, relevance });
        }
        Ok(hits)
    }

    /// One word in every language present (`analyzers` made on first use in a search): its term
    /// and how often that occurs in bodies and titles; and whether it is worth remembering (some
    /// language knows it, or drops it as a stop word).
    fn analyse_word(
        &self,
        searcher: &Searcher,
        analyzers: &mut [Option<TextAnalyzer>; 4],
        word: &str,
    ) -> Result<(WordAnalysis, bool), IndexError> {
        let (mut analysis, mut remember) = (WordAnalysis::default(), false);
        for (slot, out) in analysis.iter_mut().enumerate() {
            if !self.present[slot].load(Ordering::Relaxed) {
                continue;
            }
            let field = self.fields.text[slot];
            let analyzer = match &mut analyzers[slot] {
                Some(analyzer) => analyzer,
                empty => empty.insert(self.index.tokenizer_for_field(field)?),
            };
            let mut stream = analyzer.token_stream(word);
            if !stream.advance() {
                remember = true;
                continue;
            }
            let text = std::mem::take(&mut stream.token_mut().text);
            let doc_freq = searcher.doc_freq(&Term::from_field_text(field, &text))?;
            let in_titles = self.title_boost > 0.0
                && searcher.doc_freq(&Term::from_field_text(self.fields.title[slot], &text))? > 0;
            remember |= doc_freq > 0 || in_titles;
            *out = Some(WordTerm { text: text.into_boxed_str(), doc_freq, in_titles });
        }
        Ok((analysis, remember))
    }

    /// Each hit's packed fast-field value, the column opened once per segment.
    fn packed(&self, searcher: &Searcher, top: Vec<(f32, DocAddress)>) -> Result<Vec<RankedHit>, IndexError> {
        let mut columns = HashMap::new();
        let mut ranked = Vec::with_capacity(top.len());
        for (score, address) in top {
            let column = match columns.entry(address.segment_ord) {
                std::collections::hash_map::Entry::Occupied(open) => open.into_mut(),
                std::collections::hash_map::Entry::Vacant(slot) => {
                    slot.insert(searcher.segment_reader(address.segment_ord).fast_fields().u64(HIT_FIELD)?)
                }
            };
            ranked.push((score, column.first(address.doc_id).unwrap_or(0)));
        }
        Ok(ranked)
    }

    /// Chunks indexed (deleted ones excluded once committed).
    /// Bytes the index's segments take in memory (tantivy's own account).
    pub fn space_bytes(&self) -> u64 {
        self.reader.searcher().space_usage().map(|u| u.total().get_bytes()).unwrap_or(0)
    }

    pub fn len(&self) -> u64 {
        self.reader.searcher().num_docs()
    }
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
        // Words remembered as in no chunk are looked up again once the index has changed.
        let gift = ChunkToIndex {
            doc_id: "gift".to_owned(),
            chunk: 0,
            lang: Lang::En,
            text: "Gift cards\nWe sell gift cards.".to_owned(),
            title: "Gift cards".to_owned(),
        };
        index.apply(&[], vec![gift]).unwrap();
        let hits = index.search("Do you sell gift cards?", None, 5).unwrap();
        assert_eq!(hits.iter().map(|h| &*h.doc_id).collect::<Vec<_>>(), ["gift"]);
        let hits = index.search("Do you ship to Canada?", None, 5).unwrap();
        assert_eq!(hits.len(), 1, "{hits:?}");
        assert_eq!(&*hits[0].doc_id, "ship");
        assert!(hits[0].relevance > 0.5, "{hits:?}");
    }

    #[test]
    fn a_replaced_or_removed_document_answers_with_its_current_chunks_only() {
        let index = index_of(&[("tents", Lang::En, "Tents\nOur tents ship to Norway.")]);
        let chunk = |id: &str, n: usize, text: &str| ChunkToIndex {
            doc_id: id.to_owned(),
            chunk: n,
            lang: Lang::En,
            text: text.to_owned(),
            title: "Tents".to_owned(),
        };
        // Ranked (and remembered) before the change: the change must not be answered from memory.
        assert_eq!(index.search("ship to Norway", None, 5).unwrap().len(), 1);
        let replaced =
            vec![chunk("tents", 0, "Tents\nOur tents ship to Finland."), chunk("tents", 1, "Stoves ship to Norway.")];
        index.apply(&["tents".to_owned()], replaced).unwrap();
        let hits = index.search("ship to Norway", None, 5).unwrap();
        assert_eq!(hits.iter().map(|h| (&*h.doc_id, h.chunk)).collect::<Vec<_>>()[0], ("tents", 1), "{hits:?}");
        assert_eq!(hits.len(), 2, "both chunks of the new version match `ship`: {hits:?}");
        index.apply(&["tents".to_owned()], Vec::new()).unwrap();
        assert!(index.search("ship to Norway", None, 5).unwrap().is_empty());
        assert!(index.keys.read().ids.is_empty(), "a removed document's key is forgotten");
    }

    #[test]
    fn messages_with_the_same_indexed_words_share_a_ranking_but_not_a_relevance() {
        let index = index_of(&[
            ("ship", Lang::En, "Shipping\nWe ship to Canada in 5 days."),
            ("returns", Lang::En, "Returns\nReturn any item within 30 days."),
        ]);
        let first = index.search("Do you ship to Canada? Order A-100001", None, 5).unwrap();
        let second = index.search("Do you ship to Canada? Order A-100002", None, 5).unwrap();
        assert_eq!(index.ranked.len(), 1, "one shape: the order numbers are in no chunk");
        assert_eq!((&*first[0].doc_id, first[0].score), (&*second[0].doc_id, second[0].score));
        let plain = index.search("Do you ship to Canada?", None, 5).unwrap();
        assert_eq!(plain[0].score, first[0].score);
        assert!(plain[0].relevance > first[0].relevance, "unknown words still lower the share matched");
        assert_eq!(index.ranked.len(), 1);
    }
}
