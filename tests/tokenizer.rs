//! Tokenizers built from GGUF metadata, checked against independent implementations:
//! llama.cpp (ids pinned below, produced by llama-cpp-python 0.3.36 from the same files) and
//! npm llama-tokenizer-js (the LLaMA-2 / TinyLlama SentencePiece vocabulary).

mod common;

use common::{model_bytes, GgufWriter, GEMMA3, SMOLLM2, V};
use edgellm::gguf;
use edgellm::tokenizer::{StreamDecoder, Tokenizer, TokenizerKind};

fn tokenizer_of(bytes: &[u8]) -> Tokenizer {
    Tokenizer::from_gguf(gguf::parse(bytes).unwrap().metadata()).unwrap()
}

const TEXTS: [&str; 5] = [
    "Hello world",
    "What is the capital of France?",
    "  leading spaces and 1234567 digits!",
    "naïve café — «quotes» 🦙",
    "<|im_start|>user\nhi<|im_end|>\n",
];

/// Streaming pieces must concatenate to the whole decode and never contain half a character.
fn assert_streams_cleanly(tk: &Tokenizer, ids: &[u32]) {
    let mut stream = StreamDecoder::default();
    let mut streamed = String::new();
    for &id in ids {
        let piece = stream.step(tk, id).unwrap();
        assert!(!piece.contains('\u{FFFD}'), "piece {piece:?} of {ids:?} has a broken character");
        streamed.push_str(&piece);
    }
    assert_eq!(streamed, tk.decode(ids).unwrap());
}

#[test]
fn smollm2_byte_level_bpe_matches_llama_cpp() {
    let tk = tokenizer_of(&model_bytes(SMOLLM2));
    assert_eq!(tk.kind, TokenizerKind::ByteLevelBpe);
    assert!(!tk.add_bos);
    let expected: [&[u32]; 5] = [
        &[19556, 905],
        &[1780, 314, 260, 3575, 282, 4649, 47],
        &[216, 2899, 5600, 284, 216, 33, 34, 35, 36, 37, 38, 39, 18638, 17],
        &[3546, 46494, 37366, 1841, 23708, 385, 2346, 20306, 15107, 116, 243],
        &[1, 4093, 198, 6004, 2, 198],
    ];
    for (text, ids) in TEXTS.iter().zip(expected) {
        assert_eq!(tk.encode(text, true).unwrap(), ids, "{text:?}");
        assert_streams_cleanly(&tk, ids);
    }
    assert_eq!(tk.decode(&[1780, 314, 260, 3575, 282, 4649, 47]).unwrap(), "What is the capital of France?");
    assert!(tk.is_stop_token(2), "<|im_end|> ends a turn");
}

#[test]
fn gemma3_sentencepiece_matches_llama_cpp() {
    let tk = tokenizer_of(&model_bytes(GEMMA3));
    assert_eq!(tk.kind, TokenizerKind::SentencePiece);
    assert_eq!(tk.bos, Some(2));
    let expected: [&[u32]; 5] = [
        &[9259, 1902],
        &[3689, 563, 506, 5279, 529, 7001, 236881],
        &[138, 26016, 9952, 532, 236743, 236770, 236778, 236800, 236812, 236810, 236825, 236832, 26798, 236888],
        &[1789, 238527, 560, 33443, 2192, 2789, 52231, 237167, 236743, 478, 397, 404, 391],
        &[236820, 236909, 548, 236779, 3041, 111038, 2364, 107, 2202, 236820, 236909, 548, 236779, 643, 111038, 107],
    ];
    for (text, ids) in TEXTS.iter().zip(expected) {
        let mut with_bos = vec![2];
        with_bos.extend_from_slice(ids);
        assert_eq!(tk.encode(text, true).unwrap(), with_bos, "{text:?}");
        assert_eq!(tk.encode(text, false).unwrap(), ids, "{text:?}");
        assert_streams_cleanly(&tk, ids);
    }
    let end_of_turn = tk.token_to_id("<end_of_turn>").unwrap();
    assert!(tk.is_stop_token(end_of_turn), "Gemma's <end_of_turn> must stop generation");
    assert!(tk.is_stop_token(1), "and so must its EOS");
}

/// A TinyLlama-shaped GGUF (tokenizer only) from llama-tokenizer-js's vocabulary and merge
/// ranks: <unk>, <s>, </s>, then 256 byte tokens, then normal pieces.
#[test]
fn llama_sentencepiece_matches_llama_tokenizer_js() {
    let json_path = std::env::temp_dir().join(format!("edgellm-llama-vocab-{}.json", std::process::id()));
    let status = std::process::Command::new("node")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/llama-vocab.mjs"))
        .arg(&json_path)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("node is needed to read npm llama-tokenizer-js (./test.sh installs it)");
    assert!(status.success(), "tests/fixtures/llama-vocab.mjs failed: run `npm ci` first");
    let fixture: serde_json::Value = serde_json::from_slice(&std::fs::read(&json_path).unwrap()).unwrap();
    std::fs::remove_file(&json_path).ok();

    let tokens: Vec<&str> = fixture["tokens"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
    assert_eq!(tokens.len(), 32000);
    let types: Vec<i32> = (0..tokens.len())
        .map(|i| match i {
            0 => 2,
            1 | 2 => 3,
            3..=258 => 6,
            _ => 1,
        })
        .collect();
    let scores: Vec<f32> = fixture["scores"].as_array().unwrap().iter().map(|s| s.as_f64().unwrap() as f32).collect();
    let mut w = GgufWriter::header(3, 0, 9);
    w.kv("general.architecture", V::Str("llama"))
        .kv("tokenizer.ggml.model", V::Str("llama"))
        .kv("tokenizer.ggml.tokens", V::Strs(&tokens))
        .kv("tokenizer.ggml.scores", V::F32s(&scores))
        .kv("tokenizer.ggml.token_type", V::I32s(&types))
        .kv("tokenizer.ggml.bos_token_id", V::U32(1))
        .kv("tokenizer.ggml.eos_token_id", V::U32(2))
        .kv("tokenizer.ggml.unknown_token_id", V::U32(0))
        .kv("tokenizer.ggml.add_bos_token", V::Bool(true));
    let tk = tokenizer_of(&w.bytes());

    let cases = fixture["cases"].as_array().unwrap();
    assert!(cases.len() >= 15);
    for case in cases {
        let text = case["text"].as_str().unwrap();
        let expected: Vec<u32> = case["ids"].as_array().unwrap().iter().map(|i| i.as_u64().unwrap() as u32).collect();
        let ids = tk.encode(text, true).unwrap();
        assert_eq!(ids, expected, "{text:?}");
        assert_eq!(tk.decode(&ids).unwrap(), text, "round trip of {text:?}");
        assert_streams_cleanly(&tk, &ids[1..]);
    }
}
