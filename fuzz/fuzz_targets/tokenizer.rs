//! The tokenizers built from GGUF metadata, on any vocabulary: tokens, types, scores, merges,
//! special-token ids and pre-tokenizer names as a hostile file could write them, then encoding
//! any text, decoding any ids (all at once and streamed one at a time).
#![no_main]

use std::collections::HashMap;

use arbitrary::Arbitrary;
use candle_core::quantized::gguf_file::Value;
use edgellm::gguf::Metadata;
use edgellm::tokenizer::{StreamDecoder, Tokenizer};
use libfuzzer_sys::fuzz_target;

/// Names the reader knows, and some it does not: most inputs should get past the name check.
const PRE_NAMES: &[&str] = &["default", "gpt2", "smollm", "llama3", "llama-bpe", "qwen2", "phi3", ""];

#[derive(Arbitrary, Debug)]
struct Input {
    sentencepiece: bool,
    pre: Option<u8>,
    tokens: Vec<String>,
    types: Option<Vec<i32>>,
    scores: Option<Vec<f32>>,
    merges: Vec<String>,
    bos: Option<u32>,
    eos: Option<u32>,
    unknown: Option<u32>,
    add_bos: Option<bool>,
    add_space_prefix: Option<bool>,
    architecture: Option<String>,
    text: String,
    ids: Vec<u32>,
}

fn strings(items: &[String]) -> Value {
    Value::Array(items.iter().map(|s| Value::String(s.clone())).collect())
}

fuzz_target!(|input: Input| {
    // A real vocabulary has up to ~260k tokens; a few thousand keep each run fast.
    if input.tokens.len() > 4096 || input.merges.len() > 4096 || input.text.len() > 4096 || input.ids.len() > 512 {
        return;
    }
    let mut md = HashMap::new();
    let model = if input.sentencepiece { "llama" } else { "gpt2" };
    md.insert("tokenizer.ggml.model".to_string(), Value::String(model.into()));
    md.insert("tokenizer.ggml.tokens".to_string(), strings(&input.tokens));
    md.insert("tokenizer.ggml.merges".to_string(), strings(&input.merges));
    if let Some(types) = &input.types {
        md.insert("tokenizer.ggml.token_type".into(), Value::Array(types.iter().map(|&t| Value::I32(t)).collect()));
    }
    if let Some(scores) = &input.scores {
        md.insert("tokenizer.ggml.scores".into(), Value::Array(scores.iter().map(|&s| Value::F32(s)).collect()));
    }
    if let Some(pre) = input.pre {
        md.insert("tokenizer.ggml.pre".into(), Value::String(PRE_NAMES[pre as usize % PRE_NAMES.len()].into()));
    }
    for (key, id) in [
        ("tokenizer.ggml.bos_token_id", input.bos),
        ("tokenizer.ggml.eos_token_id", input.eos),
        ("tokenizer.ggml.unknown_token_id", input.unknown),
    ] {
        if let Some(id) = id {
            md.insert(key.into(), Value::U32(id));
        }
    }
    for (key, flag) in [("tokenizer.ggml.add_bos_token", input.add_bos), ("tokenizer.ggml.add_space_prefix", input.add_space_prefix)] {
        if let Some(flag) = flag {
            md.insert(key.into(), Value::Bool(flag));
        }
    }
    if let Some(arch) = &input.architecture {
        md.insert("general.architecture".into(), Value::String(arch.clone()));
    }

    let Ok(tokenizer) = Tokenizer::from_gguf(Metadata::of_values(&md)) else { return };
    if let Ok(ids) = tokenizer.encode(&input.text, true) {
        let _ = tokenizer.decode(&ids);
    }
    let _ = tokenizer.decode(&input.ids);
    let mut stream = StreamDecoder::default();
    for &id in &input.ids {
        if stream.step(&tokenizer, id).is_err() {
            break;
        }
    }
    for &id in input.ids.iter().take(8) {
        let _ = tokenizer.id_to_token(id);
        let _ = tokenizer.is_stop_token(id);
    }
});
