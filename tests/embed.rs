//! all-MiniLM-L6-v2 through candle's BERT against an independent NumPy implementation of the
//! same model (tests/fixtures/minilm_reference.py → minilm-reference.json).

use edgellm::embed::{Embedder, DEFAULT_MAX_TOKENS};

fn embedder() -> Embedder {
    let dir = std::env::var_os("EDGELLM_MODELS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/edgellm/models"))
        .join("minilm-l6");
    let read = |f: &str| {
        std::fs::read(dir.join(f)).unwrap_or_else(|e| panic!("{f}: {e} (run python3 models/fetch.py minilm-l6)"))
    };
    Embedder::load(&read("config.json"), &read("model.safetensors"), &read("tokenizer.json"), DEFAULT_MAX_TOKENS)
        .unwrap()
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (norm(a) * norm(b))
}

#[test]
fn vectors_agree_with_the_numpy_reference() {
    let fixture: serde_json::Value = serde_json::from_str(include_str!("fixtures/minilm-reference.json")).unwrap();
    let sentences: Vec<&str> = fixture["sentences"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
    let expected: Vec<Vec<f32>> = fixture["embeddings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect())
        .collect();

    let e = embedder();
    assert_eq!(e.dim, 384);
    // One padded batch of every sentence (short, accented, 159 and 256+ tokens) …
    let batch = e.embed(&sentences).unwrap();
    // … and one at a time: padding must not change a vector.
    for (i, s) in sentences.iter().enumerate() {
        let alone = &e.embed(&[s]).unwrap()[0];
        let c = cosine(&batch[i], &expected[i]);
        assert!(c >= 0.999, "sentence {i}: cosine {c} with the reference");
        assert!(cosine(alone, &batch[i]) > 0.99999, "sentence {i}: batch and single differ");
        let norm: f32 = batch[i].iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4);
    }
}

#[test]
fn empty_text_is_refused() {
    let e = embedder();
    assert_eq!(e.embed(&["ok", "  "]).unwrap_err().code, edgellm::ErrorCode::InvalidRequest);
    assert!(e.embed(&[]).unwrap().is_empty());
}
