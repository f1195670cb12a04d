//! paraphrase-MiniLM-L3-v2 as ONNX through wonnx (natively: Mesa's lavapipe Vulkan on the CPU),
//! with its dynamic axes fixed to (1, 128), against onnxruntime on the original dynamic graph
//! (tests/fixtures/paraphrase_minilm_reference.py → paraphrase-minilm-reference.json).

use std::path::PathBuf;
use std::time::Instant;

use edgellm::ErrorCode;
use edgellm_onnx::embed::OnnxEmbedder;

const SEQ_LEN: usize = 128;

fn model_file(name: &str) -> Vec<u8> {
    let dir = std::env::var_os("EDGELLM_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/edgellm/models"))
        .join("paraphrase-minilm-l3");
    let path = dir.join(name);
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run `python3 models/fetch.py paraphrase-minilm-l3-onnx`", path.display()))
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (norm(a) * norm(b))
}

#[test]
fn vectors_agree_with_onnxruntime_on_the_dynamic_graph() {
    let fixture: serde_json::Value =
        serde_json::from_str(include_str!("../../tests/fixtures/paraphrase-minilm-reference.json")).unwrap();
    let sentences: Vec<&str> = fixture["sentences"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
    let expected: Vec<Vec<f32>> = fixture["embeddings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect())
        .collect();
    let pair = |key: &str| -> (usize, usize) {
        let p = fixture[key].as_array().unwrap();
        (p[0].as_u64().unwrap() as usize, p[1].as_u64().unwrap() as usize)
    };

    let started = Instant::now();
    let embedder = pollster::block_on(OnnxEmbedder::load(
        &model_file("paraphrase-MiniLM-L3-v2.onnx"),
        &model_file("tokenizer.json"),
        SEQ_LEN,
    ))
    .unwrap();
    println!("load (graph fixing + GPU session): {:.1?}", started.elapsed());
    assert_eq!(embedder.dim, 384);

    let started = Instant::now();
    let vectors = pollster::block_on(embedder.embed(&sentences)).unwrap();
    println!("embed {} sentences: {:.1?}", sentences.len(), started.elapsed());

    let mut min_cosine = f32::INFINITY;
    for (i, (got, want)) in vectors.iter().zip(&expected).enumerate() {
        let norm = got.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "sentence {i}: norm {norm}");
        let c = cosine(got, want);
        println!("sentence {i}: cosine {c:.9} with onnxruntime");
        assert!(c >= 0.99, "sentence {i} ({:?}): cosine {c} with onnxruntime", sentences[i]);
        min_cosine = min_cosine.min(c);
    }
    println!("min cosine with onnxruntime: {min_cosine:.9}");

    let ((a, b), (c, d)) = (pair("related"), pair("unrelated"));
    let (related, unrelated) = (cosine(&vectors[a], &vectors[b]), cosine(&vectors[c], &vectors[d]));
    println!("related pair {related:.4}, unrelated pair {unrelated:.4}");
    assert!(related > unrelated + 0.2, "related {related} vs unrelated {unrelated}");

    assert_eq!(pollster::block_on(embedder.embed(&["ok", "  "])).unwrap_err().code, ErrorCode::InvalidRequest);
}

#[test]
fn unusable_inputs_are_refused_before_any_gpu_work() {
    let tokenizer = model_file("tokenizer.json");
    let e = pollster::block_on(OnnxEmbedder::load(b"not protobuf", &tokenizer, SEQ_LEN)).err().unwrap();
    assert_eq!(e.code, ErrorCode::InvalidOnnx);

    let onnx = model_file("paraphrase-MiniLM-L3-v2.onnx");
    let e = pollster::block_on(OnnxEmbedder::load(&onnx, &tokenizer, 127)).err().unwrap();
    assert_eq!(e.code, ErrorCode::UnsupportedShape, "{}", e.message);
}
