//! The ONNX path against the GGUF path on the real SmolLM2-135M: the same model exported to
//! static-shape ONNX shards and run through wonnx (natively: Mesa's lavapipe Vulkan on the CPU)
//! must give the same logits and the same greedy tokens as candle's model code.

use std::collections::HashMap;
use std::path::PathBuf;

use edgellm::model::BackendKind;
use edgellm::timing::native_clock;
use edgellm::{LoadOptions, Model};
use edgellm_onnx::export::{export_gguf, ExportOptions, WeightStorage};
use edgellm_onnx::llm::OnnxLlm;

fn smollm2() -> Vec<u8> {
    let dir = std::env::var("EDGELLM_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/edgellm/models"));
    let path = dir.join("SmolLM2-135M-Instruct.Q4_1.gguf");
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run `python3 models/fetch.py smollm2-135m`", path.display()))
}

fn export(bytes: &[u8], opts: &ExportOptions) -> HashMap<String, Vec<u8>> {
    let mut files = HashMap::new();
    export_gguf(bytes, opts, |name, data| {
        files.insert(name.to_string(), data);
        Ok(())
    })
    .unwrap();
    files
}

fn load(files: &HashMap<String, Vec<u8>>) -> OnnxLlm {
    let read = |name: &str| Ok(files[name].clone());
    pollster::block_on(OnnxLlm::load(read, None, native_clock)).unwrap()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn argmax(v: &[f32]) -> usize {
    v.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap().0
}

/// The reference's greedy tokens and each step's logits, teacher-forced on both sides.
fn compare(weights: WeightStorage, steps: usize) -> (f32, Vec<u32>, Vec<u32>, Vec<f32>) {
    let bytes = smollm2();
    let files = export(&bytes, &ExportOptions { context: 64, weights, ..Default::default() });
    let sizes: usize = files.values().map(|f| f.len()).sum();
    eprintln!("{weights:?} export: {:.1} MiB in {} files", sizes as f64 / (1 << 20) as f64, files.len());
    let mut onnx = load(&files);
    let opts = LoadOptions { backend: Some(BackendKind::Candle), ..Default::default() };
    let mut reference = Model::load(bytes.as_slice(), &opts, native_clock).unwrap();
    let mut tokens = reference.tokenizer.encode("The three primary colors are", true).unwrap();
    let mut want_logits = reference.forward(&tokens, 0).unwrap();
    let mut got_logits = pollster::block_on(onnx.forward(&tokens, 0)).unwrap();
    let (mut worst, mut want, mut got, mut margins) = (0f32, Vec::new(), Vec::new(), Vec::new());
    for _ in 0..steps {
        worst = worst.max(max_abs_diff(&got_logits, &want_logits));
        let (w, g) = (argmax(&want_logits) as u32, argmax(&got_logits) as u32);
        want.push(w);
        got.push(g);
        margins.push(margin(&want_logits));
        tokens.push(w);
        let pos = tokens.len() - 1;
        want_logits = reference.forward(&tokens[pos..], pos).unwrap();
        got_logits = pollster::block_on(onnx.forward(&tokens[pos..], pos)).unwrap();
    }
    eprintln!("{weights:?}: max |Δlogit| over {steps} steps {worst}");
    eprintln!(
        "  reference {:?}\n  onnx      {:?}",
        reference.tokenizer.decode(&want).unwrap(),
        reference.tokenizer.decode(&got).unwrap()
    );
    (worst, want, got, margins)
}

/// How far the best logit is ahead of the runner-up.
fn margin(v: &[f32]) -> f32 {
    let best = argmax(v);
    v[best] - v.iter().enumerate().filter(|&(i, _)| i != best).map(|(_, &x)| x).fold(f32::MIN, f32::max)
}

/// f32 shards compute with the exact dequantized weights; candle multiplies 8-bit-quantized
/// activations, hence a difference of a fraction of a logit (tests/backends.rs explains why
/// these models amplify any such difference).
#[test]
fn f32_export_matches_candle_logits_and_greedy_tokens() {
    let (worst, want, got, _) = compare(WeightStorage::F32, 16);
    assert!(worst < 2.0, "logits differ by {worst}");
    assert_eq!(got, want, "greedy tokens differ");
}

/// 8-bit storage moves logits a little more, enough to flip a near-tie; every clear choice
/// (the reference's best ahead by more than one logit) must be kept.
#[test]
fn int8_export_keeps_clear_greedy_choices() {
    let (worst, want, got, margins) = compare(WeightStorage::Int8, 16);
    assert!(worst < 2.0, "logits differ by {worst}");
    let clear: Vec<usize> = (0..want.len()).filter(|&i| margins[i] > 1.0).collect();
    eprintln!("margins {margins:?}");
    assert!(clear.len() >= want.len() / 4, "only {} clear choices", clear.len());
    eprintln!("{} of {} greedy tokens identical", (0..want.len()).filter(|&i| got[i] == want[i]).count(), want.len());
    for i in clear {
        assert_eq!(got[i], want[i], "step {i}: the reference's choice is {} logits ahead", margins[i]);
    }
}

fn load_err(files: &HashMap<String, Vec<u8>>) -> edgellm::Error {
    let read = |name: &str| {
        files
            .get(name)
            .cloned()
            .ok_or_else(|| edgellm::Error::new(edgellm::ErrorCode::InvalidOnnx, format!("no file {name}")))
    };
    match pollster::block_on(OnnxLlm::load(read, None, native_clock)) {
        Ok(_) => panic!("the broken export loaded"),
        Err(e) => e,
    }
}

/// Bad exports and models the exporter cannot take are refused with errors naming the file or
/// the reason, before any GPU work on them.
#[test]
fn broken_exports_and_unsupported_models_are_refused_clearly() {
    let bytes = smollm2();
    let good = export(&bytes, &ExportOptions { context: 16, ..Default::default() });

    let mut truncated = good.clone();
    let layer = truncated.get_mut("layers-00.onnx").unwrap();
    layer.truncate(layer.len() / 2);
    let e = load_err(&truncated);
    assert_eq!(e.code, edgellm::ErrorCode::InvalidOnnx, "{e}");
    assert!(e.message.contains("layers-00.onnx"), "{e}");

    let mut hostile = good.clone();
    let manifest = String::from_utf8(hostile["model.json"].clone()).unwrap().replace("\"batch\": 8", "\"batch\": 0");
    hostile.insert("model.json".into(), manifest.into_bytes());
    let e = load_err(&hostile);
    assert_eq!(e.code, edgellm::ErrorCode::InvalidOnnx, "{e}");
    assert!(e.message.contains("batch 0"), "{e}");

    let mut missing = good.clone();
    missing.remove("head-1.onnx");
    assert!(load_err(&missing).message.contains("head-1.onnx"));

    // Gemma 3 is not a llama-family model; the GGUF path runs it, the exporter refuses it.
    let dir = PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/edgellm/models");
    if let Ok(gemma) = std::fs::read(dir.join("gemma-3-270m-q4_k_m.gguf")) {
        let e = export_gguf(&gemma, &ExportOptions::default(), |_, _| Ok(())).unwrap_err();
        assert_eq!(e.code, edgellm::ErrorCode::UnsupportedArchitecture, "{e}");
    }
    let e = export_gguf(&bytes[..bytes.len() / 3], &ExportOptions::default(), |_, _| Ok(())).unwrap_err();
    assert_eq!(e.code, edgellm::ErrorCode::InvalidGguf, "{e}");
    let e = export_gguf(&bytes, &ExportOptions { context: 1 << 20, ..Default::default() }, |_, _| Ok(())).unwrap_err();
    assert_eq!(e.code, edgellm::ErrorCode::InvalidRequest, "{e}");

    // The model still loads and runs after all that.
    let mut llm = load(&good);
    let logits = pollster::block_on(llm.forward(&[1, 2, 3], 0)).unwrap();
    assert_eq!(logits.len(), llm.manifest.vocab);
    let e = pollster::block_on(llm.forward(&[1; 20], 0)).unwrap_err();
    assert_eq!(e.code, edgellm::ErrorCode::ContextOverflow, "{e}");
}
