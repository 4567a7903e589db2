//! Count-only `o200k_base` byte-pair encoding (gpt-4o, gpt-4o-mini, gpt-4.1, o-series).
//!
//! tiktoken-rs keeps the 200k-token vocabulary three times over (encoder map, decoder map, sorted
//! copy) plus 128 regex clones: ~40 MiB, two thirds of velochat's idle memory. Counting needs only
//! "which rank has these bytes", so the vocabulary stays in the binary's read-only data
//! (`assets/o200k_base.vocab`, written by `scripts/o200k-vocab.py`) and a table of u32 ranks finds
//! tokens: ~2.5 MiB. The pre-tokenizer pattern and the merge rule are tiktoken's; the tests compare
//! every rank and many counts with tiktoken-rs.

use fancy_regex::Regex;
use hashbrown::{DefaultHashBuilder, HashTable};
use std::hash::BuildHasher;

/// Per rank, in rank order: one length byte, then the token's bytes.
static VOCAB: &[u8] = include_bytes!("../../assets/o200k_base.vocab");

/// tiktoken's `O200K_BASE_PAT_STR`.
const PATTERN: &str = concat!(
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
    "|",
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
    "|",
    r"\p{N}{1,3}",
    "|",
    r" ?[^\s\p{L}\p{N}]+[\r\n/]*",
    "|",
    r"\s*[\r\n]+",
    "|",
    r"\s+(?!\S)",
    "|",
    r"\s+"
);

/// Pieces this long merge with a heap (as tiktoken does) instead of rescanning all parts.
const LARGE_PIECE: usize = 100;
const NO_RANK: u32 = u32::MAX;

pub struct O200k {
    pretokenizer: Regex,
    /// Every token, as the offset in `VOCAB` of its bytes (the length byte sits just before).
    /// `VOCAB` is in rank order, so offsets order tokens exactly as their ranks do, and merging
    /// compares nothing else: no rank-to-offset table is needed (800 KB less resident memory).
    ranks: HashTable<u32>,
    hasher: DefaultHashBuilder,
    vocabulary_size: usize,
}

impl O200k {
    pub fn load() -> Self {
        let hasher = DefaultHashBuilder::default();
        let mut ranks = HashTable::with_capacity(200_000);
        for start in token_starts() {
            let bytes = token_bytes(start);
            ranks.insert_unique(hasher.hash_one(bytes), start, |&s| hasher.hash_one(token_bytes(s)));
        }
        let vocabulary_size = ranks.len();
        #[allow(clippy::expect_used)] // a constant pattern: a failure here is a build defect, caught by every test
        let pretokenizer = Regex::new(PATTERN).expect("o200k pattern compiles");
        Self { pretokenizer, ranks, hasher, vocabulary_size }
    }

    pub fn vocabulary_size(&self) -> usize {
        self.vocabulary_size
    }

    /// The number of tokens tiktoken's `encode_ordinary` would return for `text`.
    pub fn count(&self, text: &str) -> usize {
        let mut count = 0;
        let mut end = 0;
        for piece in self.pretokenizer.find_iter(text) {
            match piece {
                Ok(piece) => {
                    count += self.piece_count(piece.as_str().as_bytes());
                    end = piece.end();
                }
                // The pattern's backtracking limit: count the rest a byte a token (an upper bound,
                // which errs on the safe side of a budget) rather than fail the request.
                Err(_) => return count + (text.len() - end),
            }
        }
        count
    }

    /// The token's merge rank, as its offset in `VOCAB` (same order as tiktoken's rank), or NO_RANK.
    fn rank(&self, bytes: &[u8]) -> u32 {
        self.ranks.find(self.hasher.hash_one(bytes), |&s| token_bytes(s) == bytes).copied().unwrap_or(NO_RANK)
    }

    fn piece_count(&self, piece: &[u8]) -> usize {
        if piece.len() <= 1 || self.rank(piece) != NO_RANK {
            return piece.len().min(1);
        }
        if piece.len() < LARGE_PIECE {
            self.merge_small(piece)
        } else {
            self.merge_large(piece)
        }
    }

    /// tiktoken's `_byte_pair_merge`: repeatedly merge the adjacent pair with the lowest rank
    /// (leftmost on ties); `parts` holds (start, rank of the pair starting there).
    fn merge_small(&self, piece: &[u8]) -> usize {
        let mut parts: Vec<(usize, u32)> = (0..piece.len() - 1).map(|i| (i, self.rank(&piece[i..i + 2]))).collect();
        parts.push((piece.len() - 1, NO_RANK));
        parts.push((piece.len(), NO_RANK));
        let pair_rank = |parts: &[(usize, u32)], i: usize| {
            if i + 3 < parts.len() {
                self.rank(&piece[parts[i].0..parts[i + 3].0])
            } else {
                NO_RANK
            }
        };
        while let Some((i, _)) = lowest(&parts[..parts.len() - 1]) {
            if i > 0 {
                parts[i - 1].1 = pair_rank(&parts, i - 1);
            }
            parts[i].1 = pair_rank(&parts, i);
            parts.remove(i + 1);
        }
        parts.len() - 1
    }

    /// tiktoken's `_byte_pair_merge_large`: the same merges, found with a heap and a linked list.
    fn merge_large(&self, piece: &[u8]) -> usize {
        use std::cmp::Reverse;
        use std::collections::BinaryHeap;
        struct Part {
            prev: usize,
            end: usize,
            next_end: usize,
            next_rank: u32,
        }
        let mut parts: Vec<Part> = (0..piece.len())
            .map(|i| Part { prev: i.wrapping_sub(1), end: i + 1, next_end: i + 2, next_rank: NO_RANK })
            .collect();
        let mut heap = BinaryHeap::with_capacity(piece.len());
        for i in 0..piece.len() - 1 {
            let rank = self.rank(&piece[i..i + 2]);
            if rank != NO_RANK {
                heap.push(Reverse((rank, i)));
                parts[i].next_rank = rank;
            }
        }
        let propose =
            |parts: &mut Vec<Part>, heap: &mut BinaryHeap<Reverse<(u32, usize)>>, start: usize, end: usize| {
                parts[start].next_end = end;
                parts[start].next_rank = NO_RANK;
                if end <= piece.len() {
                    let rank = self.rank(&piece[start..end]);
                    if rank != NO_RANK {
                        heap.push(Reverse((rank, start)));
                        parts[start].next_rank = rank;
                    }
                }
            };
        let mut tokens = piece.len();
        while let Some(Reverse((rank, left))) = heap.pop() {
            if rank != parts[left].next_rank {
                continue; // superseded by a later merge
            }
            let right = parts[left].end;
            let right_end = parts[left].next_end;
            let right_next_end = parts[right].next_end;
            parts[left].end = right_end;
            propose(&mut parts, &mut heap, left, right_next_end);
            if right_end < parts.len() {
                parts[right_end].prev = left;
            }
            if left > 0 {
                let prev = parts[left].prev;
                propose(&mut parts, &mut heap, prev, right_end);
            }
            parts[right].next_rank = NO_RANK;
            tokens -= 1;
        }
        tokens
    }
}

/// Each token's offset in `VOCAB`, in rank order (a length byte, then the bytes, token after token).
fn token_starts() -> impl Iterator<Item = u32> {
    let mut at = 0;
    std::iter::from_fn(move || {
        (at < VOCAB.len()).then(|| {
            let start = at as u32 + 1;
            at += 1 + VOCAB[at] as usize;
            start
        })
    })
}

fn token_bytes(start: u32) -> &'static [u8] {
    let start = start as usize;
    &VOCAB[start..start + VOCAB[start - 1] as usize]
}

/// The leftmost part with the lowest pair rank, if any pair can merge.
fn lowest(parts: &[(usize, u32)]) -> Option<(usize, u32)> {
    let mut best: Option<(usize, u32)> = None;
    for (i, &(_, rank)) in parts.iter().enumerate() {
        if rank != NO_RANK && best.is_none_or(|(_, r)| rank < r) {
            best = Some((i, rank));
        }
    }
    best
}

#[cfg(test)]
#[path = "bpe_tests.rs"]
mod tests;
