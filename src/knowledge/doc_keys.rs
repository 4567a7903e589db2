//! How a hit names its chunk: a document key, chunk number and language slot packed in one
//! fast-field value, and the document ids behind the keys.

use std::collections::HashMap;
use std::sync::Arc;

/// A chunk's document key, chunk number and language slot in one u64 (40, 20 and 4 bits).
pub fn pack(key: u64, chunk: usize, slot: usize) -> u64 {
    (key << 24) | ((chunk as u64 & 0xF_FFFF) << 4) | (slot as u64 & 0xF)
}

pub fn unpack(packed: u64) -> (u64, usize, usize) {
    (packed >> 24, ((packed >> 4) & 0xF_FFFF) as usize, (packed & 0xF) as usize)
}

/// Document ids by a number the index keeps in a fast field. A document indexed again gets a new
/// number, and the old one is forgotten once its chunks are gone from the index.
#[derive(Default)]
pub struct DocKeys {
    pub ids: HashMap<u64, Arc<str>>,
    pub by_id: HashMap<Arc<str>, u64>,
    pub next: u64,
}
