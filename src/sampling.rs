//! Logits → next token: penalties on the logits, then candle's seeded `LogitsProcessor`.

use candle_core::{Device, Tensor};
use candle_transformers::generation::{LogitsProcessor, Sampling};
use candle_transformers::utils::apply_repeat_penalty;
use serde::{Deserialize, Serialize};

use crate::bail;
use crate::error::Result;

/// How to pick each token. `temperature == 0` is greedy (argmax) and ignores the rest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SamplingParams {
    pub temperature: f64,
    /// Keep only the k most likely tokens (0 = off).
    pub top_k: usize,
    /// Keep the smallest set of tokens whose probability reaches p (1.0 = off).
    pub top_p: f64,
    /// > 1 discourages tokens already in the context (1.0 = off); Hugging Face semantics.
    pub repetition_penalty: f32,
    /// How many recent tokens the repetition penalty looks at (0 = the whole context).
    pub repeat_last_n: usize,
    /// Never produce an n-gram of this size twice in the context, prompt included (0 = off);
    /// Hugging Face's `no_repeat_ngram_size`.
    pub no_repeat_ngram_size: usize,
    pub seed: u64,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self::greedy()
    }
}

impl SamplingParams {
    pub fn greedy() -> Self {
        Self {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            repetition_penalty: 1.0,
            repeat_last_n: 64,
            no_repeat_ngram_size: 0,
            seed: 299_792_458,
        }
    }

    /// The settings of the system edgellm replaces (its Hugging Face `generate` call).
    pub fn reference() -> Self {
        Self {
            temperature: 0.2,
            top_k: 50,
            top_p: 0.8,
            repetition_penalty: 1.15,
            repeat_last_n: 0,
            no_repeat_ngram_size: 3,
            ..Self::greedy()
        }
    }

    pub fn validate(&self) -> Result<()> {
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            bail!(InvalidRequest, "temperature must be a number ≥ 0, got {}", self.temperature);
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            bail!(InvalidRequest, "top_p must be in (0, 1], got {}", self.top_p);
        }
        if !(self.repetition_penalty > 0.0 && self.repetition_penalty.is_finite()) {
            bail!(InvalidRequest, "repetition_penalty must be > 0, got {}", self.repetition_penalty);
        }
        Ok(())
    }

    fn candle_sampling(&self) -> Sampling {
        let temperature = self.temperature;
        let top_k = self.top_k > 0;
        let top_p = self.top_p < 1.0;
        match (temperature > 0.0, top_k, top_p) {
            (false, _, _) => Sampling::ArgMax,
            (true, false, false) => Sampling::All { temperature },
            (true, true, false) => Sampling::TopK { k: self.top_k, temperature },
            (true, false, true) => Sampling::TopP { p: self.top_p, temperature },
            (true, true, true) => Sampling::TopKThenTopP { k: self.top_k, p: self.top_p, temperature },
        }
    }
}

pub struct Sampler {
    params: SamplingParams,
    processor: LogitsProcessor,
}

impl Sampler {
    pub fn new(params: SamplingParams) -> Result<Self> {
        params.validate()?;
        let processor = LogitsProcessor::from_sampling(params.seed, params.candle_sampling());
        Ok(Self { params, processor })
    }

    /// Choose the next token given the logits of the last position and every token so far.
    pub fn sample(&mut self, mut logits: Vec<f32>, context: &[u32]) -> Result<u32> {
        let p = &self.params;
        if p.no_repeat_ngram_size > 0 {
            for banned in banned_ngram_tokens(context, p.no_repeat_ngram_size) {
                if let Some(l) = logits.get_mut(banned as usize) {
                    *l = f32::NEG_INFINITY;
                }
            }
        }
        let n = logits.len();
        let mut logits = Tensor::from_vec(logits, n, &Device::Cpu)?;
        if p.repetition_penalty != 1.0 {
            let window = match p.repeat_last_n {
                0 => context,
                n => &context[context.len().saturating_sub(n)..],
            };
            logits = apply_repeat_penalty(&logits, p.repetition_penalty, window)?;
        }
        Ok(self.processor.sample(&logits)?)
    }
}

/// Tokens that would complete an n-gram already present in `context`.
pub fn banned_ngram_tokens(context: &[u32], n: usize) -> Vec<u32> {
    if n == 0 || context.len() < n {
        return Vec::new();
    }
    let prefix = &context[context.len() - (n - 1)..];
    context.windows(n).filter(|w| &w[..n - 1] == prefix).map(|w| w[n - 1]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ngram_ban_finds_completions() {
        // "a b c a b" → the 3-gram "a b c" exists, so after "a b" the token c is banned.
        assert_eq!(banned_ngram_tokens(&[1, 2, 3, 1, 2], 3), vec![3]);
        assert!(banned_ngram_tokens(&[1, 2, 3, 4], 3).is_empty());
        assert_eq!(banned_ngram_tokens(&[5, 5], 1), vec![5, 5]);
    }
}
