//! The cross-encoder path (pair encoding, [CLS] pooler, classifier) against an independent NumPy
//! implementation (tests/fixtures/cross_encoder_reference.py). No trained cross-encoder is
//! available offline, so the model is all-MiniLM-L6-v2's encoder and pooler with a classifier
//! head given by a formula both sides compute: weight[i] = 0.05·sin(i+1), bias 0.1.

use std::collections::HashMap;

use candle_core::{Device, Tensor};
use edgellm::rerank::CrossEncoder;

fn minilm_dir() -> std::path::PathBuf {
    std::env::var_os("EDGELLM_MODELS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/edgellm/models"))
        .join("minilm-l6")
}

fn read(file: &str) -> Vec<u8> {
    std::fs::read(minilm_dir().join(file))
        .unwrap_or_else(|e| panic!("{file}: {e} (run python3 models/fetch.py minilm-l6)"))
}

/// all-MiniLM-L6-v2's tensors plus the formula classifier, as safetensors bytes.
fn cross_encoder_weights() -> Vec<u8> {
    let mut tensors: HashMap<String, Tensor> =
        candle_core::safetensors::load_buffer(&read("model.safetensors"), &Device::Cpu).unwrap();
    let weight: Vec<f32> = (0..384).map(|i| 0.05 * ((i + 1) as f32).sin()).collect();
    tensors.insert("classifier.weight".into(), Tensor::from_vec(weight, (1, 384), &Device::Cpu).unwrap());
    tensors.insert("classifier.bias".into(), Tensor::new(&[0.1f32], &Device::Cpu).unwrap());
    let path = std::env::temp_dir().join(format!("edgellm-cross-encoder-{}.safetensors", std::process::id()));
    candle_core::safetensors::save(&tensors, &path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).ok();
    bytes
}

#[test]
fn cross_encoder_logits_match_the_numpy_reference() {
    let fixture: serde_json::Value =
        serde_json::from_str(include_str!("fixtures/cross-encoder-reference.json")).unwrap();
    let weights = cross_encoder_weights();
    let reranker = CrossEncoder::load(&read("config.json"), &weights, &read("tokenizer.json")).unwrap();
    let pairs = fixture["pairs"].as_array().unwrap();
    assert_eq!(pairs.len(), 5);
    for query in ["How does life cycle assessment work?", "What is the capital of France?"] {
        let mine: Vec<&serde_json::Value> = pairs.iter().filter(|p| p["query"] == query).collect();
        let passages: Vec<&str> = mine.iter().map(|p| p["passage"].as_str().unwrap()).collect();
        // One batch per query: padding must not change the logits.
        let scores = reranker.score(query, &passages).unwrap();
        for (p, score) in mine.iter().zip(&scores) {
            let expected = p["logit"].as_f64().unwrap() as f32;
            assert!((score - expected).abs() < 1e-4, "{query} / {}: {score} vs {expected}", p["passage"]);
        }
    }
}

#[test]
fn an_encoder_without_a_classifier_is_refused() {
    let e =
        CrossEncoder::load(&read("config.json"), &read("model.safetensors"), &read("tokenizer.json")).err().unwrap();
    assert_eq!(e.code, edgellm::ErrorCode::InvalidWeights);
    assert!(e.message.contains("classifier"), "{}", e.message);
}
