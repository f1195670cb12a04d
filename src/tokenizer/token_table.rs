//! A vocabulary's tokens, id → text and text → id, in three allocations: every token's text
//! in one string, where each ends, and a hash index of ids.
//!
//! Why not `HashMap<String, u32>` plus `Vec<String>` (the `tokenizers` crate's BPE keeps both,
//! and a cache): each token is then two heap strings and two hash buckets. For SmolLM2's 49,152
//! tokens the crate's model took 5.9 MiB and 10.8 MiB while it was built; in wasm, where memory
//! never shrinks, that is what a 94 MiB model keeps beside its file. This takes about 0.9 MiB
//! for the same vocabulary, and is built in one pass over the GGUF's token list.

use hashbrown::hash_table::{Entry, HashTable};
use hashbrown::DefaultHashBuilder;
use std::hash::BuildHasher;

pub struct TokenTable {
    /// Every token's text, one after the other, in id order.
    text: String,
    /// Where token `id` ends in `text` (it starts where `id - 1` ends).
    ends: Vec<u32>,
    /// Ids, hashed by their token's text.
    index: HashTable<u32>,
    hasher: DefaultHashBuilder,
}

impl TokenTable {
    /// When a text appears twice, the first id wins (llama.cpp does the same). None when the
    /// texts together exceed 4 GiB (a GGUF's tables cannot).
    pub fn new(tokens: &[&str]) -> Option<Self> {
        let mut text = String::with_capacity(tokens.iter().map(|t| t.len()).sum());
        let mut ends = Vec::with_capacity(tokens.len());
        for t in tokens {
            text.push_str(t);
            ends.push(u32::try_from(text.len()).ok()?);
        }
        let hasher = DefaultHashBuilder::default();
        let mut index = HashTable::with_capacity(tokens.len());
        for id in 0..tokens.len() as u32 {
            let token = span_of(&text, &ends, id);
            let same = |&other: &u32| span_of(&text, &ends, other) == token;
            let rehash = |&other: &u32| hasher.hash_one(span_of(&text, &ends, other));
            if let Entry::Vacant(slot) = index.entry(hasher.hash_one(token), same, rehash) {
                slot.insert(id);
            }
        }
        Some(Self { text, ends, index, hasher })
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn get(&self, token: &str) -> Option<u32> {
        let hash = self.hasher.hash_one(token);
        self.index.find(hash, |&id| self.span(id) == token).copied()
    }

    pub fn token(&self, id: u32) -> Option<&str> {
        ((id as usize) < self.ends.len()).then(|| self.span(id))
    }

    /// Every (text, id) the index holds: the first id of each text.
    pub fn iter(&self) -> impl Iterator<Item = (&str, u32)> {
        self.index.iter().map(|&id| (self.span(id), id))
    }

    fn span(&self, id: u32) -> &str {
        span_of(&self.text, &self.ends, id)
    }
}

/// Token `id`'s text; `id` is below `ends.len()`, and every end lies on a character boundary
/// (each was the length of `text` after a whole token was pushed).
fn span_of<'a>(text: &'a str, ends: &[u32], id: u32) -> &'a str {
    let i = id as usize;
    let start = if i == 0 { 0 } else { ends[i - 1] as usize };
    &text[start..ends[i] as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looks_tokens_up_both_ways_and_keeps_the_first_of_a_duplicate() {
        let t = TokenTable::new(&["a", "", "bc", "a", "é"]).unwrap();
        assert_eq!(t.len(), 5);
        assert_eq!(t.get("a"), Some(0));
        assert_eq!(t.get(""), Some(1));
        assert_eq!(t.get("bc"), Some(2));
        assert_eq!(t.get("é"), Some(4));
        assert_eq!(t.get("b"), None);
        assert_eq!(t.token(3), Some("a"));
        assert_eq!(t.token(5), None);
        let mut all: Vec<_> = t.iter().collect();
        all.sort_by_key(|&(_, id)| id);
        assert_eq!(all, [("a", 0), ("", 1), ("bc", 2), ("é", 4)]);
        assert_eq!(TokenTable::new(&[]).unwrap().len(), 0);
    }
}
