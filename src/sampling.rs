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
    /// Never produce an n-gram of this size twice (0 = off); Hugging Face's `no_repeat_ngram_size`.
    pub no_repeat_ngram_size: usize,
    /// Whether the repetition penalty and the n-gram ban also count the prompt's tokens, as
    /// Hugging Face's `generate` does. Off by default: in a cited answer the prompt holds the
    /// sources, and penalising their words penalises the facts the answer should copy, the "[n]"
    /// of the citations and the end-of-turn token of the chat template itself.
    pub penalize_prompt: bool,
    /// Hugging Face's `exponential_decay_length_penalty` `[start, factor]`: after `start`
    /// generated tokens the end-of-turn logits grow by |logit|·(factor^(n − start) − 1), so an
    /// answer that runs on is pulled towards ending. Unlike Hugging Face's, it applies only where
    /// the text so far ends a sentence or a line that is no heading or lead-in (`ends_sentence`):
    /// pulled anywhere, a small model ends mid-sentence
    /// ("… popularised by the Brundtland Commission in 19"). `None` = off.
    pub exponential_decay_length_penalty: Option<(usize, f32)>,
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
            penalize_prompt: false,
            exponential_decay_length_penalty: None,
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
            penalize_prompt: true,
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
        if let Some((_, factor)) = self.exponential_decay_length_penalty {
            if !(factor >= 1.0 && factor.is_finite()) {
                bail!(InvalidRequest, "exponential_decay_length_penalty's factor must be a number ≥ 1, got {factor}");
            }
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

    /// Choose the next token given the logits of the last position, every token so far (the
    /// prompt's first `prompt_len` of them), the tokens that end the turn and the answer's text
    /// so far.
    pub fn sample(
        &mut self,
        mut logits: Vec<f32>,
        tokens: &[u32],
        prompt_len: usize,
        stop_tokens: &[u32],
        text: &str,
    ) -> Result<u32> {
        let p = &self.params;
        let generated = tokens.len().saturating_sub(prompt_len);
        let context = if p.penalize_prompt { tokens } else { &tokens[tokens.len() - generated..] };
        if let Some((start, factor)) = p.exponential_decay_length_penalty {
            if generated > start && ends_sentence(text) {
                let grow = factor.powi((generated - start).min(i32::MAX as usize) as i32) - 1.0;
                for &t in stop_tokens {
                    if let Some(l) = logits.get_mut(t as usize) {
                        *l += l.abs() * grow;
                    }
                }
            }
        }
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

/// Whether `text` ends a sentence ("." "!" "?", maybe followed by a closing quote or bracket
/// and spaces) or a line that is not a heading or a lead-in ("## Stages", "The stages are:"),
/// which would leave the answer announcing what never comes.
fn ends_sentence(text: &str) -> bool {
    if text.ends_with('\n') {
        let last = text.lines().rev().map(str::trim).find(|l| !l.is_empty()).unwrap_or("");
        return !last.is_empty() && !last.starts_with('#') && !last.ends_with(':');
    }
    text.trim_end_matches([' ', '\t']).trim_end_matches(['"', '\'', ')', '”', '’', '*']).ends_with(['.', '!', '?'])
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

    #[test]
    fn the_length_penalty_ends_an_answer_at_a_sentence_end_only() {
        // Token 0 is the end of turn, a little less likely than token 1; 20 tokens past `start`
        // the penalty makes it the choice, but only where a sentence or a line has just ended.
        let params = SamplingParams { exponential_decay_length_penalty: Some((4, 1.1)), ..SamplingParams::greedy() };
        let mut sampler = Sampler::new(params).unwrap();
        let tokens: Vec<u32> = (0..30).map(|i| 2 + i % 7).collect();
        let mut choose = |text: &str| sampler.sample(vec![2.0, 2.5, 0.0], &tokens, 6, &[0], text).unwrap();
        assert_eq!(choose("It was popularised in 19"), 1);
        assert_eq!(choose("It was popularised in 1987."), 0);
        assert_eq!(choose("It was popularised in 1987 [1]. "), 0);
        assert_eq!(choose("- a list item\n"), 0);
        assert_eq!(choose("It works.\n\n## How it works\n"), 1);
        assert_eq!(choose("The stages are:\n\n"), 1);
        assert_eq!(choose("He said \"yes.\""), 0);
        assert!(!ends_sentence("the range 2.5"));
        assert!(!ends_sentence("e.g"));
    }
}
