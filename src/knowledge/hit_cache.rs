//! Remembered top hits per query shape. Visitors ask the same few questions in many wordings, and
//! most words of a message (an order number, a name) are in no chunk: two messages whose words
//! that *are* in the index are the same get the same ranking. So the ranking is kept by that set
//! of indexed words (per language, body and title, with the boost and pool size) and reused until
//! the index changes; each message still gets its own relevance (its unknown words weigh in).

use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// 4,096 query shapes of up to 20 hits each: well under 1 MiB.
const CAPACITY: usize = 4096;

/// One ranked chunk: tantivy's score and the packed fast-field value (document key, chunk, language).
pub type RankedHit = (f32, u64);

#[derive(Default)]
pub struct HitCache {
    /// Bumped after every index change that is visible to searchers.
    generation: AtomicU64,
    entries: Mutex<HashMap<String, (u64, Vec<RankedHit>)>>,
}

impl HitCache {
    /// The generation to tag a search with: read *before* taking the searcher, so an entry is never
    /// tagged newer than the index it was computed from.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Called after the index reloads: every earlier entry stops counting.
    pub fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.entries.lock().clear();
    }

    pub fn get(&self, shape: &str) -> Option<Vec<RankedHit>> {
        let current = self.generation();
        self.entries.lock().get(shape).filter(|(generation, _)| *generation == current).map(|(_, hits)| hits.clone())
    }

    pub fn put(&self, shape: String, generation: u64, hits: &[RankedHit]) {
        if generation != self.generation() {
            return;
        }
        let mut entries = self.entries.lock();
        if entries.len() >= CAPACITY {
            entries.clear();
        }
        entries.insert(shape, (generation, hits.to_vec()));
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_from_before_an_index_change_is_not_served() {
        let cache = HitCache::default();
        let before = cache.generation();
        cache.put("en:ship".into(), before, &[(1.0, 7)]);
        assert_eq!(cache.get("en:ship"), Some(vec![(1.0, 7)]));
        cache.invalidate();
        assert_eq!(cache.get("en:ship"), None);
        // A search that started before the change finishes after it: its ranking is not kept.
        cache.put("en:ship".into(), before, &[(1.0, 7)]);
        assert_eq!(cache.get("en:ship"), None);
        assert_eq!(cache.len(), 0);
    }
}
