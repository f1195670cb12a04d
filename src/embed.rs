//! Sentence embeddings with a BERT encoder (all-MiniLM-L6-v2): safetensors weights +
//! tokenizer.json, mean pooling over real tokens, L2 normalisation — the sentence-transformers
//! recipe, so vectors compare by dot product.

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::{PaddingParams, TruncationParams};

use crate::bail;
use crate::error::{Error, ErrorCode, Result};

/// sentence-transformers truncates all-MiniLM-L6-v2 inputs here (sentence_bert_config.json).
pub const DEFAULT_MAX_TOKENS: usize = 256;

pub struct Embedder {
    model: BertModel,
    tokenizer: tokenizers::Tokenizer,
    pub dim: usize,
}

fn invalid(what: &str) -> impl Fn(String) -> Error + '_ {
    move |e| Error::new(ErrorCode::InvalidWeights, format!("{what}: {e}"))
}

impl Embedder {
    /// `config_json`: the model's config.json; `weights`: model.safetensors; `tokenizer_json`:
    /// tokenizer.json. `max_tokens`: truncation length per text.
    pub fn load(config_json: &[u8], weights: &[u8], tokenizer_json: &[u8], max_tokens: usize) -> Result<Self> {
        let config: Config = serde_json::from_slice(config_json).map_err(|e| invalid("config.json")(e.to_string()))?;
        let vb = VarBuilder::from_slice_safetensors(weights, DType::F32, &Device::Cpu)
            .map_err(|e| invalid("model.safetensors")(e.to_string()))?;
        let model = BertModel::load(vb, &config).map_err(|e| invalid("model.safetensors")(e.to_string()))?;
        let mut tokenizer =
            tokenizers::Tokenizer::from_bytes(tokenizer_json).map_err(|e| invalid("tokenizer.json")(e.to_string()))?;
        tokenizer
            .with_truncation(Some(TruncationParams { max_length: max_tokens.min(config.max_position_embeddings), ..Default::default() }))
            .map_err(|e| invalid("tokenizer.json")(e.to_string()))?;
        tokenizer.with_padding(Some(PaddingParams::default()));
        Ok(Self { model, tokenizer, dim: config.hidden_size })
    }

    /// One unit-length vector per text, computed as one padded batch.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        if texts.iter().any(|t| t.trim().is_empty()) {
            bail!(InvalidRequest, "cannot embed an empty text");
        }
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| Error::new(ErrorCode::Tokenizer, format!("tokenizing for embeddings: {e}")))?;
        let rows = |f: &dyn Fn(&tokenizers::Encoding) -> &[u32]| -> Result<Tensor> {
            let data: Vec<Vec<u32>> = encodings.iter().map(|e| f(e).to_vec()).collect();
            Ok(Tensor::new(data, &Device::Cpu)?)
        };
        let ids = rows(&|e| e.get_ids())?;
        let type_ids = rows(&|e| e.get_type_ids())?;
        let mask = rows(&|e| e.get_attention_mask())?;

        let hidden = self.model.forward(&ids, &type_ids, Some(&mask))?; // (batch, tokens, dim)
        let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?; // (batch, tokens, 1)
        let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
        let counts = mask.sum(1)?; // (batch, 1)
        let mean = summed.broadcast_div(&counts)?;
        let norms = mean.sqr()?.sum_keepdim(1)?.sqrt()?;
        Ok(mean.broadcast_div(&norms)?.to_vec2()?)
    }
}
