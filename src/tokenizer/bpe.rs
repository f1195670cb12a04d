//! BPE over a GGUF's vocabulary, as llama.cpp tokenizes it, for both kinds of vocabulary: the
//! text starts as single characters, and adjacent pieces merge, best pair first (the leftmost
//! among equals), until no pair may merge.
//! - SentencePiece (`llm_tokenizer_spm`): a pair may merge when its union is a token, and the
//!   union with the highest score goes first. A piece left that is no token becomes its bytes'
//!   `<0xNN>` tokens.
//! - Byte-level (`llm_tokenizer_bpe`, GPT-2's): a pair may merge when the GGUF lists it as a
//!   merge, and the merge listed first goes first. Llama 3 takes a piece that is a whole token as
//!   it is, before any merge (`ignore_merges`).
//!
//! Why not the `tokenizers` crate's BPE: it needs SentencePiece's scores turned into a ranked
//! merge list (every split of every token into two tokens — 513k merges for Gemma 3's 262k
//! tokens) and a hash map built from it, which took 1.2–1.4 s in wasm before a Gemma model
//! could answer; and for a byte-level vocabulary it keeps every token twice as heap strings,
//! plus a cache (see [`TokenTable`]). This is a `tokenizers` [`Model`], so normalizing,
//! pre-tokenizing, special tokens and decoding stay the crate's.

use std::collections::BinaryHeap;
use std::path::{Path, PathBuf};

use hashbrown::HashMap;
use tokenizers::models::TrainerWrapper;
use tokenizers::{Model, Token};

use super::token_table::TokenTable;

pub struct Bpe {
    tokens: TokenTable,
    rule: MergeRule,
    /// A piece that is a whole token is taken as it is (Llama 3).
    ignore_merges: bool,
    /// For a character that is no token and has no byte tokens either.
    unk: Option<u32>,
}

/// Which adjacent pieces may merge, and which goes first.
enum MergeRule {
    /// SentencePiece: those whose union is a token, the highest score first.
    Scores {
        scores: Vec<f32>,
        /// `<0xNN>` for each byte, for pieces that are no token (byte fallback).
        byte_tokens: Vec<Option<u32>>,
    },
    /// Byte-level: the listed merges, (left id, right id) → (rank, merged id), the lowest rank first.
    Ranks(HashMap<(u32, u32), (u32, u32)>),
}

/// One piece of the text being merged: `text[start..start + len]`, the token `id` if it is one,
/// linked to its neighbours. A piece merged into the one on its left keeps `len` 0.
#[derive(Clone, Copy)]
struct Piece {
    start: usize,
    len: usize,
    id: Option<u32>,
    prev: Option<usize>,
    next: Option<usize>,
}

/// A pair of adjacent pieces that may merge into the token `merged`. The heap pops the highest
/// priority, then the leftmost pair, as llama.cpp's `llm_bigram_spm` and `llm_bigram_bpe`
/// comparators do.
struct Candidate {
    priority: f32,
    left: usize,
    right: usize,
    merged: u32,
    /// The union's length when the pair was found: a pair whose pieces have merged since no
    /// longer adds up to it and is skipped (a piece only grows, or drops to 0).
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
        self.priority.total_cmp(&other.priority).then(other.left.cmp(&self.left))
    }
}

/// Why a vocabulary cannot be read.
#[derive(Debug)]
pub enum VocabError {
    /// The tokens' texts add up to more than 4 GiB.
    TooLarge,
    /// A merge entry that is not `left right`, or names no token.
    BadMerge(String),
}

impl Bpe {
    /// SentencePiece: `scores` has one entry per token; `unk` is the unknown token's id, if any.
    pub fn with_scores(tokens: &[&str], scores: Vec<f32>, unk: Option<u32>) -> Result<Self, VocabError> {
        let tokens = TokenTable::new(tokens).ok_or(VocabError::TooLarge)?;
        let byte_tokens = (0..=255u8).map(|b| tokens.get(&format!("<0x{b:02X}>"))).collect();
        Ok(Self { tokens, rule: MergeRule::Scores { scores, byte_tokens }, ignore_merges: false, unk })
    }

    /// Byte-level: `merges` as the GGUF lists them (`"left right"`, the first merges first).
    pub fn with_merges(tokens: &[&str], merges: &[&str], ignore_merges: bool) -> Result<Self, VocabError> {
        let tokens = TokenTable::new(tokens).ok_or(VocabError::TooLarge)?;
        let mut ranks = HashMap::with_capacity(merges.len());
        for (rank, entry) in merges.iter().enumerate() {
            let bad = || VocabError::BadMerge(entry.to_string());
            let (a, b) = entry.split_once(' ').ok_or_else(bad)?;
            let (Some(left), Some(right)) = (tokens.get(a), tokens.get(b)) else { return Err(bad()) };
            let merged = tokens.get(&format!("{a}{b}")).ok_or_else(bad)?;
            // A pair listed twice keeps its first (best) rank.
            ranks.entry((left, right)).or_insert((rank as u32, merged));
        }
        Ok(Self { tokens, rule: MergeRule::Ranks(ranks), ignore_merges, unk: None })
    }

    /// Whether `left` and `right` may merge, as a candidate.
    fn candidate(&self, text: &str, pieces: &[Piece], left: Option<usize>, right: Option<usize>) -> Option<Candidate> {
        let (left, right) = (left?, right?);
        let (l, r) = (pieces[left], pieces[right]);
        let len = l.len + r.len;
        let (priority, merged) = match &self.rule {
            MergeRule::Scores { scores, .. } => {
                let merged = self.tokens.get(&text[l.start..l.start + len])?;
                (scores[merged as usize], merged)
            }
            MergeRule::Ranks(ranks) => {
                let &(rank, merged) = ranks.get(&(l.id?, r.id?))?;
                (-(rank as f32), merged)
            }
        };
        Some(Candidate { priority, left, right, merged, len })
    }

    /// The tokens of one piece left after merging: itself when it is a token, else its bytes'
    /// tokens, else the unknown token. (Only a single character can be no token: every merge
    /// makes one. llama.cpp's `rev_merge`, which would split a merged piece again, is never
    /// reached for that reason.)
    fn emit(&self, text: &str, piece: Piece, out: &mut Vec<Token>) -> tokenizers::Result<()> {
        let span = &text[piece.start..piece.start + piece.len];
        if let Some(id) = piece.id {
            out.push(Token::new(id, span.to_string(), (piece.start, piece.start + piece.len)));
            return Ok(());
        }
        let no_token = || format!("the vocabulary has no token for '{span}', nor an unknown token");
        let MergeRule::Scores { byte_tokens, .. } = &self.rule else {
            let id = self.unk.ok_or_else(no_token)?;
            out.push(Token::new(id, self.token_text(id), (piece.start, piece.start + piece.len)));
            return Ok(());
        };
        for (i, byte) in span.bytes().enumerate() {
            let id = byte_tokens[byte as usize].or(self.unk).ok_or_else(no_token)?;
            let at = piece.start + i;
            out.push(Token::new(id, self.token_text(id), (at, at + 1)));
        }
        Ok(())
    }

    fn token_text(&self, id: u32) -> String {
        self.tokens.token(id).unwrap_or_default().to_string()
    }
}

impl Model for Bpe {
    type Trainer = TrainerWrapper;

    fn tokenize(&self, text: &str) -> tokenizers::Result<Vec<Token>> {
        if self.ignore_merges {
            if let Some(id) = self.tokens.get(text) {
                return Ok(vec![Token::new(id, text.to_string(), (0, text.len()))]);
            }
        }
        let mut pieces: Vec<Piece> = text
            .char_indices()
            .map(|(start, c)| {
                let len = c.len_utf8();
                Piece { start, len, id: self.tokens.get(&text[start..start + len]), prev: None, next: None }
            })
            .collect();
        let n = pieces.len();
        for (i, piece) in pieces.iter_mut().enumerate() {
            piece.prev = i.checked_sub(1);
            piece.next = (i + 1 < n).then_some(i + 1);
        }
        let mut heap: BinaryHeap<Candidate> =
            (1..n).filter_map(|i| self.candidate(text, &pieces, Some(i - 1), Some(i))).collect();
        while let Some(Candidate { left, right, merged, len, .. }) = heap.pop() {
            let (l, r) = (pieces[left], pieces[right]);
            if l.len == 0 || r.len == 0 || l.len + r.len != len {
                continue;
            }
            pieces[left] = Piece { len, id: Some(merged), next: r.next, ..l };
            pieces[right].len = 0;
            if let Some(next) = r.next {
                pieces[next].prev = Some(left);
            }
            heap.extend(self.candidate(text, &pieces, l.prev, Some(left)));
            heap.extend(self.candidate(text, &pieces, Some(left), r.next));
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
        self.tokens.get(token)
    }

    fn id_to_token(&self, id: u32) -> Option<String> {
        self.tokens.token(id).map(str::to_string)
    }

    fn get_vocab(&self) -> std::collections::HashMap<String, u32> {
        self.tokens.iter().map(|(t, id)| (t.to_string(), id)).collect()
    }

    fn get_vocab_size(&self) -> usize {
        self.tokens.len()
    }

    fn save(&self, _folder: &Path, _prefix: Option<&str>) -> tokenizers::Result<Vec<PathBuf>> {
        Err("edgellm reads vocabularies from GGUF files and does not save them".into())
    }

    /// The trait asks for one; edgellm never trains a vocabulary.
    fn get_trainer(&self) -> TrainerWrapper {
        tokenizers::models::bpe::BpeTrainer::default().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scored(tokens: &[(&str, f32)]) -> Bpe {
        let names: Vec<&str> = tokens.iter().map(|t| t.0).collect();
        let unk = names.iter().position(|&t| t == "<unk>").map(|i| i as u32);
        Bpe::with_scores(&names, tokens.iter().map(|t| t.1).collect(), unk).unwrap()
    }

    fn ids(m: &Bpe, text: &str) -> Vec<u32> {
        m.tokenize(text).unwrap().iter().map(|t| t.id).collect()
    }

    #[test]
    fn the_pair_with_the_highest_score_merges_first() {
        // "abc": "bc" outscores "ab", so a + bc, though "ab" + "c" would also spell it.
        let m = scored(&[("a", 0.), ("b", 0.), ("c", 0.), ("ab", -2.), ("bc", -1.), ("abc", -3.)]);
        assert_eq!(ids(&m, "abc"), [5]);
        assert_eq!(ids(&m, "abcb"), [5, 1]);
        assert_eq!(ids(&m, "cab"), [2, 3]);
    }

    #[test]
    fn among_equal_scores_the_leftmost_pair_merges_first() {
        let m = scored(&[("a", 0.), ("aa", -1.)]);
        assert_eq!(ids(&m, "aaa"), [1, 0]);
    }

    #[test]
    fn a_character_that_is_no_token_becomes_its_bytes_or_unk() {
        let m = scored(&[("<unk>", 0.), ("<0xC3>", 0.), ("<0xA9>", 0.), ("x", 0.)]);
        let tokens = m.tokenize("xé").unwrap();
        assert_eq!(tokens.iter().map(|t| t.id).collect::<Vec<_>>(), [3, 1, 2]);
        assert_eq!(tokens.iter().map(|t| t.offsets).collect::<Vec<_>>(), [(0, 1), (1, 2), (2, 3)]);
        // No byte token for 'y': the unknown token; none at all: an error, not a panic.
        assert_eq!(ids(&m, "y"), [0]);
        assert!(scored(&[("x", 0.)]).tokenize("y").is_err());
        assert!(ids(&m, "").is_empty());
    }

    const TOKENS: &[&str] = &["a", "b", "c", "ab", "bc", "abc", "cab"];

    #[test]
    fn the_merge_listed_first_goes_first_whatever_the_tokens_scores() {
        // "bc" is listed before "ab": a + bc, and "abc" cannot be reached from there.
        let m = Bpe::with_merges(TOKENS, &["b c", "a b", "ab c"], false).unwrap();
        assert_eq!(ids(&m, "abc"), [0, 4]);
        let m = Bpe::with_merges(TOKENS, &["a b", "b c", "ab c"], false).unwrap();
        assert_eq!(ids(&m, "abc"), [5]);
        // The leftmost of two equal merges; a pair that is not listed never merges.
        assert_eq!(ids(&m, "ababc"), [3, 5]);
        assert_eq!(ids(&m, "ca"), [2, 0]);
        assert!(ids(&m, "").is_empty());
    }

    #[test]
    fn ignore_merges_takes_a_whole_token_as_it_is() {
        // "cab" is a token no listed merge reaches.
        assert_eq!(ids(&Bpe::with_merges(TOKENS, &["a b"], false).unwrap(), "cab"), [2, 3]);
        assert_eq!(ids(&Bpe::with_merges(TOKENS, &["a b"], true).unwrap(), "cab"), [6]);
    }

    #[test]
    fn a_bad_merge_entry_or_an_unknown_character_is_an_error() {
        for bad in ["ab", "a x", "c c"] {
            assert!(matches!(Bpe::with_merges(TOKENS, &[bad], false), Err(VocabError::BadMerge(e)) if e == bad));
        }
        assert!(Bpe::with_merges(TOKENS, &[], false).unwrap().tokenize("ax").is_err());
    }
}
