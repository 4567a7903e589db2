//! A bounded map whose entries hold only for one generation of the index: each search reads the
//! generation before taking its searcher, and reads and fills only entries of that generation.
//! The index's query-shape rankings and its query-word analyses both live in one.

use parking_lot::Mutex;
use std::collections::HashMap;

pub struct GenerationMap<V> {
    capacity: usize,
    entries: Mutex<Entries<V>>,
}

struct Entries<V> {
    generation: u64,
    map: HashMap<Box<str>, V>,
}

impl<V: Clone> GenerationMap<V> {
    /// At most `capacity` entries; a full map is emptied rather than tracking recency.
    pub fn new(capacity: usize) -> Self {
        Self { capacity, entries: Mutex::new(Entries { generation: 0, map: HashMap::new() }) }
    }

    /// The index moved on to `generation`: every earlier entry goes, and a search that began
    /// before neither reads nor fills the map.
    pub fn advance(&self, generation: u64) {
        self.entries.lock().advance(generation);
    }

    pub fn get(&self, key: &str, generation: u64) -> Option<V> {
        let entries = self.entries.lock();
        if entries.generation != generation {
            return None;
        }
        entries.map.get(key).cloned()
    }

    pub fn put(&self, key: &str, generation: u64, value: V) {
        let mut entries = self.entries.lock();
        entries.advance(generation);
        if entries.generation != generation {
            return;
        }
        if entries.map.len() >= self.capacity {
            entries.map.clear();
        }
        entries.map.insert(key.into(), value);
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.lock().map.len()
    }
}

impl<V> Entries<V> {
    fn advance(&mut self, generation: u64) {
        if generation > self.generation {
            self.map.clear();
            self.generation = generation;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_from_before_an_index_change_is_not_served() {
        let cache = GenerationMap::new(16);
        let before = 1;
        cache.put("en:ship", before, vec![(1.0f32, 7u64)]);
        assert_eq!(cache.get("en:ship", before), Some(vec![(1.0, 7)]));
        cache.advance(before + 1);
        assert_eq!(cache.get("en:ship", before + 1), None);
        // A search that started before the change finishes after it: its ranking is not kept.
        cache.put("en:ship", before, vec![(1.0, 7)]);
        assert_eq!(cache.get("en:ship", before + 1), None);
        assert_eq!(cache.len(), 0);
    }
}
