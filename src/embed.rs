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
    encoder: Encoder,
    pub dim: usize,
}

pub(crate) fn invalid(what: &str) -> impl Fn(String) -> Error + '_ {
    move |e| Error::new(ErrorCode::InvalidWeights, format!("{what}: {e}"))
}

/// A BERT encoder with its tokenizer, as both the embedder and the cross-encoder use it.
pub(crate) struct Encoder {
    model: BertModel,
    tokenizer: tokenizers::Tokenizer,
}

impl Encoder {
    /// The encoder, its config, and the weights for any task head on top of it.
    pub fn load<'a>(
        config_json: &[u8],
        weights: &'a [u8],
        tokenizer_json: &[u8],
        max_tokens: usize,
    ) -> Result<(Self, Config, VarBuilder<'a>)> {
        let config: Config = serde_json::from_slice(config_json).map_err(|e| invalid("config.json")(e.to_string()))?;
        let vb = VarBuilder::from_slice_safetensors(weights, DType::F32, &Device::Cpu)
            .map_err(|e| invalid("model.safetensors")(e.to_string()))?;
        let model = BertModel::load(vb.clone(), &config).map_err(|e| invalid("model.safetensors")(e.to_string()))?;
        let mut tokenizer =
            tokenizers::Tokenizer::from_bytes(tokenizer_json).map_err(|e| invalid("tokenizer.json")(e.to_string()))?;
        // The file's own settings (all-MiniLM's pads every input to 128) are for training; pad
        // a batch to its longest input and truncate where the model was trained to.
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_tokens.min(config.max_position_embeddings),
                ..Default::default()
            }))
            .map_err(|e| invalid("tokenizer.json")(e.to_string()))?;
        tokenizer.with_padding(Some(PaddingParams::default()));
        Ok((Self { model, tokenizer }, config, vb))
    }

    /// Run the encoder on a padded batch: hidden states (batch, tokens, dim) and the attention
    /// mask (batch, tokens) as f32.
    pub fn encode<'s, E: Into<tokenizers::EncodeInput<'s>> + Send>(&self, inputs: Vec<E>) -> Result<(Tensor, Tensor)> {
        let encodings = self
            .tokenizer
            .encode_batch(inputs, true)
            .map_err(|e| Error::new(ErrorCode::Tokenizer, format!("tokenizing for the encoder: {e}")))?;
        let rows = |f: &dyn Fn(&tokenizers::Encoding) -> &[u32]| -> Result<Tensor> {
            let data: Vec<Vec<u32>> = encodings.iter().map(|e| f(e).to_vec()).collect();
            Ok(Tensor::new(data, &Device::Cpu)?)
        };
        let ids = rows(&|e| e.get_ids())?;
        let type_ids = rows(&|e| e.get_type_ids())?;
        let mask = rows(&|e| e.get_attention_mask())?;
        let hidden = self.model.forward(&ids, &type_ids, Some(&mask))?;
        Ok((hidden, mask.to_dtype(DType::F32)?))
    }
}

impl Embedder {
    /// `config_json`: the model's config.json; `weights`: model.safetensors; `tokenizer_json`:
    /// tokenizer.json. `max_tokens`: truncation length per text.
    pub fn load(config_json: &[u8], weights: &[u8], tokenizer_json: &[u8], max_tokens: usize) -> Result<Self> {
        let (encoder, config, _) = Encoder::load(config_json, weights, tokenizer_json, max_tokens)?;
        Ok(Self { encoder, dim: config.hidden_size })
    }

    /// One unit-length vector per text, computed as one padded batch.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        if texts.iter().any(|t| t.trim().is_empty()) {
            bail!(InvalidRequest, "cannot embed an empty text");
        }
        let (hidden, mask) = self.encoder.encode(texts.to_vec())?; // (batch, tokens, dim)
        let mask = mask.unsqueeze(2)?; // (batch, tokens, 1)
        let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
        let counts = mask.sum(1)?; // (batch, 1)
        let mean = summed.broadcast_div(&counts)?;
        let norms = mean.sqr()?.sum_keepdim(1)?.sqrt()?;
        Ok(mean.broadcast_div(&norms)?.to_vec2()?)
    }
}
