//! SentencePiece BPE over a GGUF's tokens and scores, as llama.cpp tokenizes it
//! (`llm_tokenizer_spm`): the text starts as single characters, and the adjacent pair whose union
//! is a token with the highest score merges first (the leftmost among equals), until no union is
//! a token; a piece left that is no token becomes its bytes' `<0xNN>` tokens.
//!
//! Why not the `tokenizers` crate's BPE: it needs the scores turned into a ranked merge list (every
//! split of every token into two tokens — 513k merges for Gemma 3's 262k tokens) and a hash map
//! built from it, which took 1.2–1.4 s in wasm before a Gemma model could answer. This needs the
//! token → id map alone. It is a `tokenizers` [`Model`], so normalizing, special tokens and
//! decoding stay the crate's.

use std::collections::{BinaryHeap, HashMap};
use std::path::{Path, PathBuf};

use tokenizers::models::bpe::Vocab;
use tokenizers::models::TrainerWrapper;
use tokenizers::{Model, Token};

pub struct SentencePieceBpe {
    vocab: Vocab,
    tokens: Vec<String>,
    scores: Vec<f32>,
    /// `<0xNN>` for each byte, for pieces that are no token (byte fallback).
    byte_tokens: Vec<Option<u32>>,
    /// Where a byte has no `<0xNN>` token either.
    unk: Option<u32>,
}

/// One piece of the text being merged: `text[start..start + len]`, linked to its neighbours.
/// A piece merged into the one on its left keeps `len` 0.
#[derive(Clone, Copy)]
struct Piece {
    start: usize,
    len: usize,
    prev: Option<usize>,
    next: Option<usize>,
}

/// A pair of adjacent pieces whose union is a token. The heap pops the highest score, then the
/// leftmost pair, as llama.cpp's `llm_bigram_spm` comparator does.
struct Candidate {
    score: f32,
    left: usize,
    right: usize,
    /// The union's length when the pair was found: a pair whose pieces have merged since no
    /// longer adds up to it and is skipped.
    len: usize,
}

impl PartialEq for Candidate {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}
impl Eq for Candidate {}
impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Candidate {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.score.total_cmp(&other.score).then(other.left.cmp(&self.left))
    }
}

impl SentencePieceBpe {
    /// `scores` has one entry per token; `unk` is the unknown token's id, if any.
    pub fn new(tokens: &[&str], scores: Vec<f32>, unk: Option<u32>) -> Self {
        let vocab = super::vocab_map(tokens);
        let byte_tokens = (0..=255u8).map(|b| vocab.get(&format!("<0x{b:02X}>")).copied()).collect();
        Self { vocab, tokens: tokens.iter().map(|t| t.to_string()).collect(), scores, byte_tokens, unk }
    }

    fn push_candidate(
        &self,
        text: &str,
        pieces: &[Piece],
        left: Option<usize>,
        right: Option<usize>,
        heap: &mut BinaryHeap<Candidate>,
    ) {
        let (Some(left), Some(right)) = (left, right) else { return };
        let (start, len) = (pieces[left].start, pieces[left].len + pieces[right].len);
        if let Some(&id) = self.vocab.get(&text[start..start + len]) {
            heap.push(Candidate { score: self.scores[id as usize], left, right, len });
        }
    }

    /// The tokens of one piece left after merging: itself when it is a token, else its bytes.
    /// (Only a single character can be no token: every merge makes one. llama.cpp's `rev_merge`,
    /// which would split a merged piece again, is never reached for that reason.)
    fn emit(&self, text: &str, piece: Piece, out: &mut Vec<Token>) -> tokenizers::Result<()> {
        let span = &text[piece.start..piece.start + piece.len];
        if let Some(&id) = self.vocab.get(span) {
            out.push(Token::new(id, span.to_string(), (piece.start, piece.start + piece.len)));
            return Ok(());
        }
        for (i, byte) in span.bytes().enumerate() {
            let id = self.byte_tokens[byte as usize].or(self.unk).ok_or_else(|| {
                format!("the vocabulary has neither <0x{byte:02X}> nor an unknown token for a character of '{span}'")
            })?;
            let at = piece.start + i;
            out.push(Token::new(id, self.tokens[id as usize].clone(), (at, at + 1)));
        }
        Ok(())
    }
}

impl Model for SentencePieceBpe {
    type Trainer = TrainerWrapper;

    fn tokenize(&self, text: &str) -> tokenizers::Result<Vec<Token>> {
        let mut pieces: Vec<Piece> =
            text.char_indices().map(|(start, c)| Piece { start, len: c.len_utf8(), prev: None, next: None }).collect();
        let n = pieces.len();
        for (i, piece) in pieces.iter_mut().enumerate() {
            piece.prev = i.checked_sub(1);
            piece.next = (i + 1 < n).then_some(i + 1);
        }
        let mut heap = BinaryHeap::new();
        for i in 1..n {
            self.push_candidate(text, &pieces, Some(i - 1), Some(i), &mut heap);
        }
        while let Some(Candidate { left, right, len, .. }) = heap.pop() {
            let (l, r) = (pieces[left], pieces[right]);
            if l.len == 0 || r.len == 0 || l.len + r.len != len {
                continue;
            }
            pieces[left].len = len;
            pieces[left].next = r.next;
            pieces[right].len = 0;
            if let Some(next) = r.next {
                pieces[next].prev = Some(left);
            }
            self.push_candidate(text, &pieces, l.prev, Some(left), &mut heap);
            self.push_candidate(text, &pieces, Some(left), r.next, &mut heap);
        }
        let mut out = Vec::with_capacity(n);
        let mut at = (n > 0).then_some(0);
        while let Some(i) = at {
            self.emit(text, pieces[i], &mut out)?;
            at = pieces[i].next;
        }
        Ok(out)
    }

    fn token_to_id(&self, token: &str) -> Option<u32> {
        self.vocab.get(token).copied()
    }

    fn id_to_token(&self, id: u32) -> Option<String> {
        self.tokens.get(id as usize).cloned()
    }

    fn get_vocab(&self) -> HashMap<String, u32> {
        self.vocab.iter().map(|(t, &id)| (t.clone(), id)).collect()
    }

    fn get_vocab_size(&self) -> usize {
        self.tokens.len()
    }

    fn save(&self, _folder: &Path, _prefix: Option<&str>) -> tokenizers::Result<Vec<PathBuf>> {
        Err("edgellm reads SentencePiece vocabularies from GGUF files and does not save them".into())
    }

    /// The trait asks for one; edgellm never trains a vocabulary.
    fn get_trainer(&self) -> TrainerWrapper {
        tokenizers::models::bpe::BpeTrainer::default().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(tokens: &[(&str, f32)]) -> SentencePieceBpe {
        let names: Vec<&str> = tokens.iter().map(|t| t.0).collect();
        let unk = names.iter().position(|&t| t == "<unk>").map(|i| i as u32);
        SentencePieceBpe::new(&names, tokens.iter().map(|t| t.1).collect(), unk)
    }

    fn ids(m: &SentencePieceBpe, text: &str) -> Vec<u32> {
        m.tokenize(text).unwrap().iter().map(|t| t.id).collect()
    }

    #[test]
    fn the_pair_with_the_highest_score_merges_first() {
        // "abc": "bc" outscores "ab", so a + bc, though "ab" + "c" would also spell it.
        let m = model(&[("a", 0.), ("b", 0.), ("c", 0.), ("ab", -2.), ("bc", -1.), ("abc", -3.)]);
        assert_eq!(ids(&m, "abc"), [5]);
        assert_eq!(ids(&m, "abcb"), [5, 1]);
        assert_eq!(ids(&m, "cab"), [2, 3]);
    }

    #[test]
    fn among_equal_scores_the_leftmost_pair_merges_first() {
        let m = model(&[("a", 0.), ("aa", -1.)]);
        assert_eq!(ids(&m, "aaa"), [1, 0]);
    }

    #[test]
    fn a_character_that_is_no_token_becomes_its_bytes_or_unk() {
        let m = model(&[("<unk>", 0.), ("<0xC3>", 0.), ("<0xA9>", 0.), ("x", 0.)]);
        let tokens = m.tokenize("xé").unwrap();
        assert_eq!(tokens.iter().map(|t| t.id).collect::<Vec<_>>(), [3, 1, 2]);
        assert_eq!(tokens.iter().map(|t| t.offsets).collect::<Vec<_>>(), [(0, 1), (1, 2), (2, 3)]);
        // No byte token for 'y': the unknown token; none at all: an error, not a panic.
        assert_eq!(ids(&m, "y"), [0]);
        assert!(model(&[("x", 0.)]).tokenize("y").is_err());
        assert!(ids(&m, "").is_empty());
    }
}
