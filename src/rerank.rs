//! Cross-encoder reranking (BertForSequenceClassification, e.g. ms-marco-MiniLM-L-6-v2): the
//! query and a passage are read together and a classifier on the pooled [CLS] state scores how
//! well the passage answers the query. Stage 2 of retrieval uses it, when the user loads one,
//! to reorder the fused candidates.

use candle_core::{IndexOp, Module};
use candle_nn::{linear, Linear};

use crate::bail;
use crate::embed::{invalid, Encoder};
use crate::error::Result;

/// Cross-encoders see query and passage together; BERT's position table ends here.
pub const MAX_PAIR_TOKENS: usize = 512;

pub struct CrossEncoder {
    encoder: Encoder,
    pooler: Linear,
    classifier: Linear,
}

impl CrossEncoder {
    pub fn load(config_json: &[u8], weights: &[u8], tokenizer_json: &[u8]) -> Result<Self> {
        let (encoder, config, vb) = Encoder::load(config_json, weights, tokenizer_json, MAX_PAIR_TOKENS)?;
        // Hugging Face checkpoints nest the encoder (and its pooler) under "bert."; the
        // classifier sits at the top.
        let pooler_vb = if vb.contains_tensor("bert.pooler.dense.weight") {
            vb.pp("bert.pooler.dense")
        } else {
            vb.pp("pooler.dense")
        };
        let hidden = config.hidden_size;
        let pooler =
            linear(hidden, hidden, pooler_vb).map_err(|e| invalid("pooler of the cross-encoder")(e.to_string()))?;
        let classifier = linear(hidden, 1, vb.pp("classifier")).map_err(|e| {
            invalid("classifier of the cross-encoder (a single relevance logit is expected)")(e.to_string())
        })?;
        Ok(Self { encoder, pooler, classifier })
    }

    /// One relevance logit per passage for `query` (higher is more relevant).
    pub fn score(&self, query: &str, passages: &[&str]) -> Result<Vec<f32>> {
        if query.trim().is_empty() {
            bail!(InvalidRequest, "cannot rerank for an empty query");
        }
        if passages.is_empty() {
            return Ok(Vec::new());
        }
        let pairs: Vec<(&str, &str)> = passages.iter().map(|p| (query, *p)).collect();
        let (hidden, _) = self.encoder.encode(pairs)?;
        let cls = hidden.i((.., 0, ..))?; // (batch, dim)
        let pooled = self.pooler.forward(&cls)?.tanh()?;
        Ok(self.classifier.forward(&pooled)?.squeeze(1)?.to_vec1()?)
    }
}
