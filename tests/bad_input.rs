//! Broken and hostile GGUF files: each gets an error that names the problem, nothing panics
//! or allocates what the file only claims, and the next load still works.

mod common;

use common::{load, model_bytes, GgufWriter, SMOLLM2, V};
use edgellm::timing::native_clock;
use edgellm::{Error, ErrorCode, GenerateRequest, LoadOptions, Model};

fn load_err(bytes: &[u8]) -> Error {
    match Model::load(bytes, &LoadOptions::default(), native_clock) {
        Ok(_) => panic!("a broken file loaded"),
        Err(e) => e,
    }
}

fn assert_err(bytes: &[u8], code: ErrorCode, needle: &str) {
    let e = load_err(bytes);
    assert_eq!(e.code, code, "{e}");
    assert!(e.message.contains(needle), "expected {needle:?} in: {}", e.message);
}

/// Hyper-parameters of a 1-layer llama, enough to pass the architecture checks.
const LLAMA_HEADER: &[(&str, V)] = &[
    ("general.architecture", V::Str("llama")),
    ("llama.block_count", V::U32(1)),
    ("llama.embedding_length", V::U32(32)),
    ("llama.attention.head_count", V::U32(1)),
    ("llama.feed_forward_length", V::U32(64)),
    ("llama.attention.layer_norm_rms_epsilon", V::F32(1e-5)),
    ("llama.context_length", V::U32(64)),
];

/// [`LLAMA_HEADER`] but for the key `skip`.
fn llama_header_without(w: &mut GgufWriter, skip: &str) {
    for (key, value) in LLAMA_HEADER.iter().filter(|(k, _)| *k != skip) {
        w.kv(key, value.clone());
    }
}

fn llama_header(w: &mut GgufWriter) {
    llama_header_without(w, "");
}

/// A file with one tensor entry and `data` bytes of tensor data.
fn one_tensor(name: &str, dims: &[u64], ty: u32, offset: u64, data: usize) -> Vec<u8> {
    let mut w = GgufWriter::header(3, 1, 0);
    w.tensor(name, dims, ty, offset).data(&vec![0; data]);
    w.bytes()
}

#[test]
fn not_a_gguf_file() {
    assert_err(b"PK\x03\x04 this is a zip", ErrorCode::InvalidGguf, "not a GGUF file");
    assert_err(b"", ErrorCode::InvalidGguf, "truncated");
    assert_err(b"GGU", ErrorCode::InvalidGguf, "truncated");
}

#[test]
fn unsupported_versions() {
    for v in [1, 4, u32::MAX] {
        assert_err(&GgufWriter::header(v, 0, 0).bytes(), ErrorCode::InvalidGguf, &format!("version {v}"));
    }
}

#[test]
fn truncated_real_file_at_every_stage() {
    let bytes = model_bytes(SMOLLM2);
    for cut in [10, 23, 500, 1_000_000, 1_500_000, bytes.len() / 2, bytes.len() - 1] {
        let e = load_err(&bytes[..cut]);
        assert_eq!(e.code, ErrorCode::InvalidGguf, "cut at {cut}: {e}");
        assert!(e.message.contains("truncated"), "cut at {cut}: {}", e.message);
    }
}

#[test]
fn counts_and_lengths_larger_than_the_file() {
    assert_err(&GgufWriter::header(3, u64::MAX, 0).bytes(), ErrorCode::InvalidGguf, "cannot fit");
    assert_err(&GgufWriter::header(3, 0, 1 << 40).bytes(), ErrorCode::InvalidGguf, "cannot fit");

    let mut w = GgufWriter::header(3, 0, 1);
    w.u64(u64::MAX); // key length
    assert_err(&w.bytes(), ErrorCode::InvalidGguf, "truncated");

    let mut w = GgufWriter::header(3, 0, 1);
    w.str("tokenizer.ggml.tokens").u32(9).u32(8).u64(1 << 60); // array of 2^60 strings
    assert_err(&w.bytes(), ErrorCode::InvalidGguf, "cannot fit");

    let mut w = GgufWriter::header(3, 0, 1);
    w.str("general.name").u32(8).u64(u64::MAX - 3); // string that wraps a naive bounds check
    assert_err(&w.bytes(), ErrorCode::InvalidGguf, "general.name");
}

#[test]
fn malformed_values() {
    let mut w = GgufWriter::header(3, 0, 1);
    w.str("flag").u32(7);
    w.buf.push(2);
    assert_err(&w.bytes(), ErrorCode::InvalidGguf, "bool");

    let mut w = GgufWriter::header(3, 0, 1);
    w.str("x").u32(99).u32(0);
    assert_err(&w.bytes(), ErrorCode::InvalidGguf, "unknown value type 99");

    let mut w = GgufWriter::header(3, 0, 2);
    w.kv("a", V::U32(1)).kv("a", V::U32(2));
    assert_err(&w.bytes(), ErrorCode::InvalidGguf, "appears twice");

    let mut bad_utf8 = GgufWriter::header(3, 0, 1);
    bad_utf8.str("general.name").u32(8).u64(2);
    bad_utf8.buf.extend_from_slice(&[0xff, 0xfe]);
    assert_err(&bad_utf8.bytes(), ErrorCode::InvalidGguf, "UTF-8");
}

/// Arrays of 256 items or more (a vocabulary, its scores and types) are read where they lie in
/// the file: the same items as the short arrays of the same values, the same type errors, and a
/// bad item anywhere in one refused when the file is parsed.
#[test]
fn large_metadata_arrays_are_read_in_place() {
    let words: Vec<String> = (0..300).map(|i| format!("w{i}·")).collect();
    let strs: Vec<&str> = words.iter().map(String::as_str).collect();
    let floats: Vec<f32> = (0..300).map(|i| i as f32 * 0.5 - 7.0).collect();
    let ints: Vec<i32> = (0..300).map(|i| i - 150).collect();
    let file = |n: usize| {
        let mut w = GgufWriter::header(3, 0, 3);
        w.kv("a.strs", V::Strs(&strs[..n])).kv("a.f32s", V::F32s(&floats[..n])).kv("a.i32s", V::I32s(&ints[..n]));
        w.bytes()
    };
    for n in [3, 255, 256, 300] {
        let bytes = file(n);
        let g = edgellm::gguf::parse(&bytes).unwrap();
        assert_eq!(g.arrays.len(), if n >= 256 { 3 } else { 0 }, "{n} items");
        let md = g.metadata();
        assert_eq!(md.string_array("a.strs").unwrap(), strs[..n]);
        assert_eq!(md.f32_array("a.f32s").unwrap(), floats[..n]);
        assert_eq!(md.i32_array("a.i32s").unwrap(), ints[..n]);
        assert!(md.contains("a.strs") && !md.contains("a.none"));
        let e = md.f32_array("a.i32s").unwrap_err();
        assert_eq!(e.code, ErrorCode::MissingMetadata);
        assert!(e.message.contains("'a.i32s' should be an array of f32"), "{e}");
        assert!(md.string_array("a.f32s").unwrap_err().message.contains("an array of strings"));
    }

    // Bad UTF-8 in the last of 300 strings; the file cut inside the strings and inside the numbers.
    let mut w = GgufWriter::header(3, 0, 1);
    w.str("a.strs").u32(9).u32(8).u64(300);
    for word in &strs[..299] {
        w.str(word);
    }
    w.u64(2).buf.extend_from_slice(&[0xc3, 0x28]);
    assert_err(&w.bytes(), ErrorCode::InvalidGguf, "'a.strs' item 299 is not valid UTF-8");
    let whole = file(300);
    for cut in [60, whole.len() / 2, whole.len() - 5] {
        let e = edgellm::gguf::parse(&whole[..cut]).err().unwrap();
        assert_eq!(e.code, ErrorCode::InvalidGguf, "cut at {cut}: {e}");
        assert!(e.message.contains("truncated") || e.message.contains("cannot fit"), "cut at {cut}: {e}");
    }
    let mut w = GgufWriter::header(3, 0, 1);
    w.str("a.flags").u32(9).u32(7).u64(300);
    w.buf.extend(std::iter::repeat_n(1, 299).chain([2]));
    assert_err(&w.bytes(), ErrorCode::InvalidGguf, "'a.flags' item 299 is a bool with byte value 2");
}

#[test]
fn hostile_tensor_directory() {
    // Dimensions whose product overflows u64.
    assert_err(&one_tensor("t", &[1 << 40, 1 << 40], 0, 0, 0), ErrorCode::InvalidGguf, "overflows");

    assert_err(&one_tensor("t", &[1, 1, 1, 1, 1], 0, 0, 0), ErrorCode::InvalidGguf, "5 dimensions");

    // Data outside the file: 2^31 f32 values claimed, 32 bytes present.
    assert_err(
        &one_tensor("blk.0.attn_q.weight", &[1 << 31], 0, 0, 32),
        ErrorCode::InvalidGguf,
        "'blk.0.attn_q.weight' needs bytes 0..8589934592",
    );

    // Offset past the end.
    assert_err(&one_tensor("t", &[8], 0, 1 << 20, 32), ErrorCode::InvalidGguf, "truncated");

    // Not a whole number of quantization blocks.
    assert_err(&one_tensor("t", &[33], 2, 0, 64), ErrorCode::InvalidGguf, "block size");
}

#[test]
fn unknown_quantization_is_named() {
    assert_err(
        &one_tensor("blk.0.ffn_up.weight", &[256], 16, 0, 256),
        ErrorCode::UnsupportedTensorType,
        "'blk.0.ffn_up.weight' uses quantization IQ2_XXS",
    );
    assert_err(&one_tensor("t", &[256], 77, 0, 256), ErrorCode::UnsupportedTensorType, "unknown type 77");
}

#[test]
fn unsupported_architecture() {
    let mut w = GgufWriter::header(3, 0, 1);
    w.kv("general.architecture", V::Str("mamba"));
    assert_err(&w.bytes(), ErrorCode::UnsupportedArchitecture, "'mamba'");
    assert_err(&GgufWriter::header(3, 0, 0).bytes(), ErrorCode::MissingMetadata, "general.architecture");
}

/// A 1-layer llama header with a three-token SentencePiece vocabulary, then `extra` entries.
fn llama_with_vocab(scores: &[f32], extra: &[(&str, V)]) -> Vec<u8> {
    let mut w = GgufWriter::header(3, 0, LLAMA_HEADER.len() as u64 + 4 + extra.len() as u64);
    llama_header(&mut w);
    w.kv("tokenizer.ggml.model", V::Str("llama"))
        .kv("tokenizer.ggml.tokens", V::Strs(&["<unk>", "<s>", "</s>"]))
        .kv("tokenizer.ggml.scores", V::F32s(scores))
        .kv("tokenizer.ggml.token_type", V::I32s(&[2, 3, 3]));
    for (key, value) in extra {
        w.kv(key, value.clone());
    }
    w.bytes()
}

#[test]
fn missing_tokenizer_and_weights() {
    let mut w = GgufWriter::header(3, 0, LLAMA_HEADER.len() as u64);
    llama_header(&mut w);
    assert_err(&w.bytes(), ErrorCode::MissingMetadata, "tokenizer.ggml.model");
    // The hyperparameters are read first (as llama.cpp reads them), before the vocabulary.
    let mut w = GgufWriter::header(3, 0, LLAMA_HEADER.len() as u64 - 1);
    llama_header_without(&mut w, "llama.feed_forward_length");
    assert_err(&w.bytes(), ErrorCode::MissingMetadata, "llama.feed_forward_length");

    assert_err(&llama_with_vocab(&[0.0; 2], &[]), ErrorCode::MissingMetadata, "scores has 2 entries for 3 tokens");
    assert_err(
        &llama_with_vocab(&[0.0; 3], &[("tokenizer.ggml.bos_token_id", V::U32(7))]),
        ErrorCode::MissingMetadata,
        "bos_token_id = 7 is outside the vocabulary",
    );
    let no_tensors = llama_with_vocab(&[0.0; 3], &[("llama.rope.dimension_count", V::U32(32))]);
    assert_err(&no_tensors, ErrorCode::InvalidGguf, "the GGUF has no tensor 'blk.0.attn_norm.weight'");
    // The reference backend reports the same file in its own words.
    let candle = LoadOptions { backend: Some(edgellm::model::BackendKind::Candle), ..Default::default() };
    let e = Model::load(&no_tensors[..], &candle, native_clock).err().unwrap();
    assert_eq!(e.code, ErrorCode::InvalidGguf, "{e}");
}

#[test]
fn a_model_larger_than_the_memory_budget_is_refused_up_front() {
    let bytes = model_bytes(SMOLLM2);
    let opts = LoadOptions { max_memory_bytes: Some(64 << 20), ..Default::default() };
    let e = Model::load(bytes, &opts, native_clock).err().unwrap();
    assert_eq!(e.code, ErrorCode::TooLarge);
    assert!(e.message.contains("only 64 MiB are available"), "{}", e.message);
}

/// The real file with one u32 metadata value overwritten.
fn smollm2_with(key: &str, value: u32) -> Vec<u8> {
    let mut bytes = model_bytes(SMOLLM2);
    let at = bytes.windows(key.len()).position(|w| w == key.as_bytes()).unwrap() + key.len();
    assert_eq!(u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()), 4, "{key} is a u32");
    bytes[at + 4..at + 8].copy_from_slice(&value.to_le_bytes());
    bytes
}

#[test]
fn metadata_that_contradicts_the_tensors() {
    assert_err(
        &smollm2_with("llama.feed_forward_length", 1024),
        ErrorCode::InvalidGguf,
        "tensor 'blk.0.ffn_gate.weight' is 1536×576; this model's metadata implies 1024×576",
    );
    assert_err(
        &smollm2_with("llama.attention.head_count_kv", 2),
        ErrorCode::MissingMetadata,
        "9 attention heads cannot share 2",
    );
    assert_err(&smollm2_with("llama.block_count", 31), ErrorCode::InvalidGguf, "no tensor 'blk.30.attn_norm.weight'");
}

#[test]
fn the_next_load_still_works() {
    for bad in [&b"GGUF"[..], &model_bytes(SMOLLM2)[..4096]] {
        load_err(bad);
    }
    let mut model = load(SMOLLM2);
    let mut req = GenerateRequest::text("Hello");
    req.max_new_tokens = 2;
    assert_eq!(model.generate(&req, |_| true).unwrap().timings.generated_tokens, 2);
}

/// What a ModelFileWriter says of `bytes` sent in 64 KiB pieces as the first bytes of a file of
/// `declared` bytes: the first error, from a write or from finish.
fn write_err(bytes: &[u8], declared: usize) -> Error {
    use edgellm::model::file::ModelFileWriter;
    let mut writer = ModelFileWriter::new(declared);
    for chunk in bytes.chunks(64 << 10) {
        let copy = |from: usize, room: &mut [std::mem::MaybeUninit<u8>]| {
            for (to, &b) in room.iter_mut().zip(&chunk[from..]) {
                to.write(b);
            }
        };
        if let Err(e) = writer.write(chunk.len(), copy) {
            return e;
        }
    }
    writer.finish().err().expect("a broken file was received")
}

#[test]
fn a_file_received_in_pieces_is_refused_at_its_header_or_when_it_ends_short() {
    let real = model_bytes(SMOLLM2);
    // Not a GGUF: refused at the first piece, not after the 90 MiB it claims.
    let e = write_err(&[b'x'; 1 << 20], 90 << 20);
    assert_eq!(e.code, ErrorCode::InvalidGguf, "{e}");
    assert!(e.message.contains("not a GGUF file"), "{e}");
    // A real header whose file is said to be shorter than its tensors need.
    let e = write_err(&real[..4 << 20], 4 << 20);
    assert_eq!(e.code, ErrorCode::InvalidGguf, "{e}");
    assert!(e.message.contains("is the file truncated?"), "{e}");
    // The file ends before the length it was given: the header was fine, the tensor data short.
    let e = write_err(&real[..real.len() / 2], real.len());
    assert_eq!(e.code, ErrorCode::InvalidRequest, "{e}");
    assert!(e.message.contains(&format!("of its {} bytes", real.len())), "{e}");
    // More bytes than the length given.
    let e = write_err(&[&real[..], &[0]].concat(), real.len());
    assert_eq!(e.code, ErrorCode::InvalidRequest, "{e}");
    assert!(e.message.contains("said to have"), "{e}");
    // The header cut off within the file's length: still reading, and then short.
    let e = write_err(&real[..1000], real.len());
    assert_eq!(e.code, ErrorCode::InvalidRequest, "{e}");
    // And the next load works.
    load(SMOLLM2);
}
