//! Tokenizers built from GGUF metadata alone (no tokenizer.json), on top of the `tokenizers` crate.
//!
//! GGUF files carry two kinds of vocabulary:
//! - `gpt2`: byte-level BPE with an explicit merge list (SmolLM2, Llama 3, Qwen …). The
//!   pre-tokenizer regex is not stored, only its llama.cpp name in `tokenizer.ggml.pre`,
//!   so we map the names we know to the splitter their Hugging Face tokenizer.json uses.
//! - `llama`: SentencePiece BPE (TinyLlama, Llama 2, Mistral, Gemma) with tokens and scores but no
//!   merges.
//!
//! Both are merged by [`bpe`] as llama.cpp merges them, a `tokenizers` model over a compact
//! [`token_table`].
//!
//! Control and user-defined tokens become special tokens: they are matched whole in the input
//! (so a chat template can write `<|im_start|>`) and skipped when decoding.

use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::decoders::strip::Strip;
use tokenizers::decoders::DecoderWrapper;
use tokenizers::normalizers::{Prepend, Replace, Sequence as NormalizerSequence};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence as PreTokenizerSequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::processors::PostProcessorWrapper;
use tokenizers::{AddedToken, NormalizerWrapper, SplitDelimiterBehavior, TokenizerImpl};

use crate::bail;
use crate::error::{Error, ErrorCode, Result};
use crate::gguf::Metadata;

mod bpe;
mod token_table;
use bpe::{Bpe, VocabError};

/// llama.cpp token types (`tokenizer.ggml.token_type`).
const TOKEN_NORMAL: i32 = 1;
const TOKEN_CONTROL: i32 = 3;
const TOKEN_USER_DEFINED: i32 = 4;

/// Names of end-of-turn tokens used by chat models whose GGUF does not list them as EOS.
/// Any of them present in the vocabulary as a special token also stops generation.
const END_OF_TURN_TOKENS: &[&str] = &["<end_of_turn>", "<|im_end|>", "<|eot_id|>", "<|end|>", "<|endoftext|>"];

/// Phi-3's special tokens that keep the whitespace after them (llama.cpp's list).
const PHI3_UNSTRIPPED: &[&str] = &["<unk>", "<s>", "<|endoftext|>"];
/// The Llama 3 pre-tokenizer regex (llama.cpp `llama-bpe`, Hugging Face tokenizer.json).
const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// llama.cpp's `default` pre-tokenizer: these regexes split the text one after another (each
/// splits the pieces of the one before), for byte-level vocabularies whose GGUF names none.
const DEFAULT_SPLITS: &[&str] = &[
    r"[\p{P}\$\+<=>\^~\|]+",
    r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)",
    r"\p{N}+",
    r"[0-9][0-9][0-9]",
];
/// `tokenizer.ggml.pre` values of byte-level vocabularies we split as llama.cpp does.
pub const PRE_TOKENIZERS: &[&str] = &["default", "gpt2", "smollm", "llama3", "llama-bpe", "llama-v3", "qwen2"];
/// The Qwen 2 pre-tokenizer regex (llama.cpp `qwen2`).
const QWEN2_SPLIT: &str =
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenizerKind {
    ByteLevelBpe,
    SentencePiece,
}

/// The `tokenizers` pipeline (special tokens, normalizer, pre-tokenizer, decoder) around the
/// model of either kind of vocabulary.
type Pipeline = TokenizerImpl<Bpe, NormalizerWrapper, PreTokenizerWrapper, PostProcessorWrapper, DecoderWrapper>;

pub struct Tokenizer {
    inner: Pipeline,
    pub kind: TokenizerKind,
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    /// Whether a prompt starts with BOS (`tokenizer.ggml.add_bos_token`, llama.cpp defaults).
    pub add_bos: bool,
    /// Token ids that end generation: EOS plus end-of-turn markers.
    pub stop_tokens: Vec<u32>,
}

fn tk_err(what: &str) -> impl Fn(tokenizers::Error) -> Error + '_ {
    move |e| Error::new(ErrorCode::Tokenizer, format!("{what}: {e}"))
}

impl Tokenizer {
    pub fn from_gguf(md: Metadata<'_>) -> Result<Self> {
        let model = md.string("tokenizer.ggml.model")?;
        let tokens = md.string_array("tokenizer.ggml.tokens")?;
        if tokens.is_empty() {
            bail!(MissingMetadata, "tokenizer.ggml.tokens is empty");
        }
        let types = if md.contains("tokenizer.ggml.token_type") {
            md.i32_array("tokenizer.ggml.token_type")?
        } else {
            vec![TOKEN_NORMAL; tokens.len()]
        };
        if types.len() != tokens.len() {
            bail!(MissingMetadata, "tokenizer.ggml.token_type has {} entries for {} tokens", types.len(), tokens.len());
        }
        let token_id = |key: &str| -> Result<Option<u32>> {
            match md.opt_uint(key)? {
                Some(id) if id < tokens.len() as u64 => Ok(Some(id as u32)),
                Some(id) => bail!(MissingMetadata, "{key} = {id} is outside the vocabulary of {}", tokens.len()),
                None => Ok(None),
            }
        };
        let bos = token_id("tokenizer.ggml.bos_token_id")?;
        let eos = token_id("tokenizer.ggml.eos_token_id")?;

        let (kind, mut inner, default_add_bos) = match model {
            "gpt2" => (TokenizerKind::ByteLevelBpe, byte_level_bpe(md, &tokens)?, false),
            "llama" => (TokenizerKind::SentencePiece, sentencepiece(md, &tokens)?, true),
            other => {
                bail!(Tokenizer, "tokenizer.ggml.model '{other}' is not supported (edgellm reads 'gpt2' and 'llama')")
            }
        };

        // Phi-3's chat tokens swallow the whitespace after them (`<|user|>\nHi` is `<|user|>`,
        // `▁Hi`), which its GGUF does not record: llama.cpp sets it for the family by name, for
        // every special token but these, and so do we.
        let rstrip_specials = md.opt_string("general.architecture")? == Some("phi3");
        let specials: Vec<AddedToken> = tokens
            .iter()
            .zip(&types)
            .filter(|(_, &t)| t == TOKEN_CONTROL || t == TOKEN_USER_DEFINED)
            .map(|(tok, _)| {
                let rstrip = rstrip_specials && !PHI3_UNSTRIPPED.contains(tok);
                AddedToken::from(tok.to_string(), true).normalized(false).rstrip(rstrip)
            })
            .collect();
        inner.add_special_tokens(specials).map_err(tk_err("adding the special tokens"))?;

        let mut stop_tokens: Vec<u32> = eos.into_iter().collect();
        for key in ["tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"] {
            stop_tokens.extend(token_id(key)?);
        }
        for name in END_OF_TURN_TOKENS {
            if let Some(i) = tokens.iter().position(|t| t == name) {
                if types[i] == TOKEN_CONTROL || types[i] == TOKEN_USER_DEFINED {
                    stop_tokens.push(i as u32);
                }
            }
        }
        stop_tokens.sort_unstable();
        stop_tokens.dedup();

        Ok(Self {
            inner,
            kind,
            bos,
            eos,
            add_bos: md.opt_bool("tokenizer.ggml.add_bos_token")?.unwrap_or(default_add_bos),
            stop_tokens,
        })
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// Tokens for `text`. Special tokens written in the text (`<|im_start|>`) become their ids.
    /// With `add_bos`, BOS is put in front unless the text already starts with it (chat
    /// templates often write `{{ bos_token }}` themselves).
    pub fn encode(&self, text: &str, add_bos: bool) -> Result<Vec<u32>> {
        let enc = self.inner.encode_fast(text, false).map_err(tk_err("encoding text"))?;
        let mut ids = enc.get_ids().to_vec();
        if add_bos && self.add_bos {
            if let Some(bos) = self.bos {
                if ids.first() != Some(&bos) {
                    ids.insert(0, bos);
                }
            }
        }
        Ok(ids)
    }

    /// Text for `ids`, without special tokens.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner.decode(ids, true).map_err(tk_err("decoding tokens"))
    }

    pub fn is_stop_token(&self, id: u32) -> bool {
        self.stop_tokens.contains(&id)
    }

    pub fn token_text(&self, id: Option<u32>) -> String {
        id.and_then(|i| self.id_to_token(i)).unwrap_or_default()
    }
}

/// Streaming detokenizer: turns one token at a time into text, holding back bytes until they
/// form whole UTF-8 characters (a byte-fallback token can be a third of a character).
#[derive(Default)]
pub struct StreamDecoder {
    ids: Vec<u32>,
    prefix: String,
    prefix_index: usize,
}

impl StreamDecoder {
    pub fn step(&mut self, tokenizer: &Tokenizer, id: u32) -> Result<String> {
        let chunk = tokenizers::tokenizer::step_decode_stream(
            &tokenizer.inner,
            vec![id],
            true,
            &mut self.ids,
            &mut self.prefix,
            &mut self.prefix_index,
        )
        .map_err(tk_err("decoding a streamed token"))?;
        Ok(chunk.unwrap_or_default())
    }
}

/// A vocabulary [`bpe`] cannot read, as an error with its code.
fn vocab_error(e: VocabError) -> Error {
    match e {
        VocabError::TooLarge => {
            Error::new(ErrorCode::MissingMetadata, "tokenizer.ggml.tokens add up to more than 4 GiB")
        }
        VocabError::BadMerge(m) => Error::new(
            ErrorCode::MissingMetadata,
            format!("tokenizer.ggml.merges entry '{m}' is not 'left right', two tokens whose union is a token"),
        ),
    }
}

fn byte_level_bpe(md: Metadata<'_>, tokens: &[&str]) -> Result<Pipeline> {
    let merges = md.string_array("tokenizer.ggml.merges")?;
    // llama.cpp, like Hugging Face, reads a missing name as "default".
    let pre_name = md.opt_string("tokenizer.ggml.pre")?.unwrap_or("default");
    let split = |regex: &str| -> Result<PreTokenizerWrapper> {
        let pattern = SplitPattern::Regex(regex.to_string());
        Ok(Split::new(pattern, SplitDelimiterBehavior::Isolated, false)
            .map_err(tk_err("building the pre-tokenizer"))?
            .into())
    };
    // The byte-to-unicode mapping alone, after our own splitting.
    let bytes_only = || ByteLevel::new(false, true, false).into();
    let gpt2 = ByteLevel::new(false, true, true);
    let (pre, ignore_merges): (PreTokenizerWrapper, bool) = match pre_name {
        "gpt2" => (gpt2.into(), false),
        "default" => {
            let mut steps = DEFAULT_SPLITS.iter().map(|r| split(r)).collect::<Result<Vec<_>>>()?;
            steps.push(bytes_only());
            (PreTokenizerSequence::new(steps).into(), false)
        }
        // SmolLM: every digit on its own, then GPT-2 splitting.
        "smollm" => (PreTokenizerSequence::new(vec![Digits::new(true).into(), gpt2.into()]).into(), false),
        // Llama 3 takes a piece that is a whole token as it is, before any merge (llama.cpp's
        // and Hugging Face's `ignore_merges`).
        "llama3" | "llama-bpe" | "llama-v3" => (PreTokenizerSequence::new(vec![split(LLAMA3_SPLIT)?, bytes_only()]).into(), true),
        "qwen2" => (PreTokenizerSequence::new(vec![split(QWEN2_SPLIT)?, bytes_only()]).into(), false),
        other => bail!(
            Tokenizer,
            "tokenizer.ggml.pre '{other}' is not a pre-tokenizer edgellm knows ({}); splitting the text another way would give other tokens than the model was trained on",
            PRE_TOKENIZERS.join(", ")
        ),
    };
    let mut tk = Pipeline::new(Bpe::with_merges(tokens, &merges, ignore_merges).map_err(vocab_error)?);
    tk.with_pre_tokenizer(Some(pre));
    tk.with_decoder(Some(DecoderWrapper::from(ByteLevelDecoder::default())));
    Ok(tk)
}

fn sentencepiece(md: Metadata<'_>, tokens: &[&str]) -> Result<Pipeline> {
    let scores = md.f32_array("tokenizer.ggml.scores")?;
    if scores.len() != tokens.len() {
        bail!(MissingMetadata, "tokenizer.ggml.scores has {} entries for {} tokens", scores.len(), tokens.len());
    }
    let add_space_prefix = md.opt_bool("tokenizer.ggml.add_space_prefix")?.unwrap_or(true);
    let unk =
        md.opt_uint("tokenizer.ggml.unknown_token_id")?.filter(|&id| id < tokens.len() as u64).map(|id| id as u32);
    let mut tk = Pipeline::new(Bpe::with_scores(tokens, scores, unk).map_err(vocab_error)?);

    // SentencePiece writes spaces as U+2581 and (optionally) puts one in front of the text.
    let replace = Replace::new(" ", "\u{2581}").map_err(tk_err("building the normalizer"))?;
    let normalizer: NormalizerWrapper = if add_space_prefix {
        NormalizerSequence::new(vec![Prepend::new("\u{2581}".into()).into(), replace.into()]).into()
    } else {
        replace.into()
    };
    tk.with_normalizer(Some(normalizer)).map_err(tk_err("setting the normalizer"))?;

    let mut decoders: Vec<DecoderWrapper> = vec![
        Replace::new("\u{2581}", " ").map_err(tk_err("building the decoder"))?.into(),
        ByteFallback::new().into(),
        Fuse::new().into(),
    ];
    if add_space_prefix {
        decoders.push(Strip::new(' ', 1, 0).into());
    }
    tk.with_decoder(Some(DecoderWrapper::from(DecoderSequence::new(decoders))));
    Ok(tk)
}
