//! Gemma 3 (text) over quantized GGUF weights.
//!
//! Adapted from candle-transformers 0.11 `quantized_gemma3` (MIT/Apache-2.0) where it does not
//! fit a browser:
//! - candle builds a rotary table for 131,072 positions in *every* layer (3.3 GB at load); here
//!   the tables cover only the context we serve and the two frequencies share one table each;
//! - the token embedding stays quantized and rows are expanded on lookup (candle expands the
//!   whole 262,144 × 640 table to 671 MB of f32);
//! - sliding-window layers really use their window when decoding, and keep only that much
//!   KV cache (candle attends to everything once past the prompt);
//! - the MLP uses GELU (tanh), Gemma's activation.

use candle_core::{DType, Device, IndexOp, Module, Tensor};
use candle_transformers::quantized_nn::RmsNorm;

use super::hparams::HParams;
use super::{QuantizedEmbedding, TensorSource};
use crate::error::Result;

struct Rotary {
    cos: Tensor,
    sin: Tensor,
}

impl Rotary {
    fn new(head_dim: usize, freq_base: f32, max_positions: usize, device: &Device) -> Result<Self> {
        let inv_freq: Vec<f32> =
            (0..head_dim).step_by(2).map(|i| 1.0 / freq_base.powf(i as f32 / head_dim as f32)).collect();
        let inv_freq = Tensor::new(inv_freq.as_slice(), device)?;
        let angles = Tensor::arange(0, max_positions as u32, device)?
            .to_dtype(DType::F32)?
            .reshape((max_positions, 1))?
            .matmul(&inv_freq.reshape((1, ()))?)?;
        Ok(Self { cos: angles.cos()?, sin: angles.sin()? })
    }

    fn apply(&self, x: &Tensor, pos: usize) -> Result<Tensor> {
        let seq_len = x.dim(2)?;
        let cos = self.cos.narrow(0, pos, seq_len)?;
        let sin = self.sin.narrow(0, pos, seq_len)?;
        Ok(candle_nn::rotary_emb::rope(&x.contiguous()?, &cos, &sin)?)
    }
}

struct Layer {
    wq: candle_core::quantized::QMatMul,
    wk: candle_core::quantized::QMatMul,
    wv: candle_core::quantized::QMatMul,
    wo: candle_core::quantized::QMatMul,
    q_norm: RmsNorm,
    k_norm: RmsNorm,
    attn_norm: RmsNorm,
    post_attn_norm: RmsNorm,
    ffn_norm: RmsNorm,
    post_ffn_norm: RmsNorm,
    gate: candle_core::quantized::QMatMul,
    up: candle_core::quantized::QMatMul,
    down: candle_core::quantized::QMatMul,
    /// `Some(window)` on local-attention layers.
    window: Option<usize>,
    global_rope: bool,
    /// Keys and values of earlier positions, already rotated.
    kv: Option<(Tensor, Tensor)>,
}

pub struct Gemma3 {
    embed: QuantizedEmbedding,
    embed_scale: f64,
    layers: Vec<Layer>,
    norm: RmsNorm,
    output: candle_core::quantized::QMatMul,
    rope_local: Rotary,
    rope_global: Rotary,
    n_head: usize,
    n_kv_head: usize,
    head_dim: usize,
    max_positions: usize,
}

impl Gemma3 {
    pub fn load(hp: &HParams, src: &TensorSource<'_>, max_positions: usize) -> Result<Self> {
        let (n_head, n_kv_head, head_dim) = (hp.n_head, hp.n_kv_head, hp.head_dim);
        let eps = hp.rms_eps as f64;
        let device = &Device::Cpu;
        let norm = |name: &str| -> Result<RmsNorm> { Ok(RmsNorm::from_qtensor(src.qtensor(name)?, eps)?) };
        let matmul = |name: &str| src.qmatmul(name);

        let mut layers = Vec::with_capacity(hp.n_layer);
        for i in 0..hp.n_layer {
            let p = |n: &str| format!("blk.{i}.{n}.weight");
            let local = hp.is_local_layer(i);
            layers.push(Layer {
                wq: matmul(&p("attn_q"))?,
                wk: matmul(&p("attn_k"))?,
                wv: matmul(&p("attn_v"))?,
                wo: matmul(&p("attn_output"))?,
                q_norm: norm(&p("attn_q_norm"))?,
                k_norm: norm(&p("attn_k_norm"))?,
                attn_norm: norm(&p("attn_norm"))?,
                post_attn_norm: norm(&p("post_attention_norm"))?,
                ffn_norm: norm(&p("ffn_norm"))?,
                post_ffn_norm: norm(&p("post_ffw_norm"))?,
                gate: matmul(&p("ffn_gate"))?,
                up: matmul(&p("ffn_up"))?,
                down: matmul(&p("ffn_down"))?,
                window: if local { hp.sliding_window.map(|(w, _)| w) } else { None },
                global_rope: !local,
                kv: None,
            });
        }
        Ok(Self {
            embed: src.embedding("token_embd.weight")?,
            embed_scale: hp.embed_scale as f64,
            layers,
            norm: norm("output_norm.weight")?,
            output: matmul(hp.output_tensor())?,
            rope_local: Rotary::new(head_dim, hp.rope.base_local, max_positions, device)?,
            rope_global: Rotary::new(head_dim, hp.rope.base, max_positions, device)?,
            n_head,
            n_kv_head,
            head_dim,
            max_positions,
        })
    }

    pub fn max_positions(&self) -> usize {
        self.max_positions
    }

    pub fn clear_kv_cache(&mut self) {
        for l in &mut self.layers {
            l.kv = None;
        }
    }

    /// Logits of the last position for `tokens` placed at positions `pos..`.
    pub fn forward(&mut self, tokens: &[u32], pos: usize) -> Result<Tensor> {
        let seq_len = tokens.len();
        let mut x = (self.embed.forward(tokens)?.unsqueeze(0)? * self.embed_scale)?;
        for i in 0..self.layers.len() {
            let residual = x.clone();
            let h = self.layers[i].attn_norm.forward(&x)?;
            let h = self.attention(i, &h, pos)?;
            let x1 = (self.layers[i].post_attn_norm.forward(&h)? + residual)?;
            let layer = &self.layers[i];
            let h = layer.ffn_norm.forward(&x1)?;
            let gated = (layer.gate.forward(&h)?.gelu()? * layer.up.forward(&h)?)?;
            let h = layer.post_ffn_norm.forward(&layer.down.forward(&gated)?)?;
            x = (h + x1)?;
        }
        let x = self.norm.forward(&x.i((.., seq_len - 1, ..))?)?;
        Ok(self.output.forward(&x)?.squeeze(0)?)
    }

    fn attention(&mut self, i: usize, x: &Tensor, pos: usize) -> Result<Tensor> {
        let (b, seq_len, _) = x.dims3()?;
        let (n_head, n_kv_head, head_dim) = (self.n_head, self.n_kv_head, self.head_dim);
        let rope = if self.layers[i].global_rope { &self.rope_global } else { &self.rope_local };
        let layer = &mut self.layers[i];
        let heads = |t: Tensor, n: usize| t.reshape((b, seq_len, n, head_dim))?.transpose(1, 2);
        let q = heads(layer.wq.forward(x)?, n_head)?;
        let k = heads(layer.wk.forward(x)?, n_kv_head)?;
        let v = heads(layer.wv.forward(x)?, n_kv_head)?.contiguous()?;
        let q = rope.apply(&layer.q_norm.forward(&q.contiguous()?)?, pos)?;
        let k = rope.apply(&layer.k_norm.forward(&k.contiguous()?)?, pos)?;

        let (k, v) = match layer.kv.take() {
            Some((ck, cv)) if pos > 0 => (Tensor::cat(&[&ck, &k], 2)?, Tensor::cat(&[&cv, &v], 2)?),
            _ => (k, v),
        };
        let kv_len = k.dim(2)?;
        // Position of the first cached key: the cache holds the `kv_len` positions ending here.
        let first_key = pos + seq_len - kv_len;

        // A local layer never looks further back than its window, so keep no more than that.
        layer.kv = Some(match layer.window {
            Some(w) if kv_len > w => (k.narrow(2, kv_len - w, w)?, v.narrow(2, kv_len - w, w)?),
            _ => (k.clone(), v.clone()),
        });

        let n_rep = n_head / n_kv_head;
        let k = candle_transformers::utils::repeat_kv(k, n_rep)?.contiguous()?;
        let v = candle_transformers::utils::repeat_kv(v, n_rep)?.contiguous()?;
        let scores = (q.matmul(&k.t()?)? / (head_dim as f64).sqrt())?;
        let scores = match attention_mask(seq_len, pos, first_key, kv_len, layer.window) {
            Some(mask) => scores.broadcast_add(&Tensor::from_vec(mask, (seq_len, kv_len), x.device())?)?,
            None => scores,
        };
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        let out = probs.matmul(&v)?.transpose(1, 2)?.reshape((b, seq_len, n_head * head_dim))?;
        Ok(layer.wo.forward(&out)?)
    }
}

/// Additive mask (0 or -inf) for queries at `pos..pos+seq_len` over keys at
/// `first_key..first_key+kv_len`: causal, and on local layers only the last `window` positions
/// (Hugging Face and llama.cpp: a query sees keys with `q - k < window`). `None` when nothing
/// is masked.
fn attention_mask(
    seq_len: usize,
    pos: usize,
    first_key: usize,
    kv_len: usize,
    window: Option<usize>,
) -> Option<Vec<f32>> {
    let mut any = false;
    let mask = (0..seq_len)
        .flat_map(|qi| (0..kv_len).map(move |ki| (pos + qi, first_key + ki)))
        .map(|(q, k)| {
            let hidden = k > q || window.is_some_and(|w| q - k >= w);
            any |= hidden;
            if hidden {
                f32::NEG_INFINITY
            } else {
                0.0
            }
        })
        .collect();
    any.then_some(mask)
}

#[cfg(test)]
mod tests {
    use super::attention_mask;

    #[test]
    fn decode_step_sees_everything_in_its_window() {
        assert!(attention_mask(1, 10, 0, 11, None).is_none());
        assert!(attention_mask(1, 10, 7, 4, Some(4)).is_none());
    }

    #[test]
    fn prefill_mask_is_causal_and_windowed() {
        let inf = f32::NEG_INFINITY;
        let m = attention_mask(3, 0, 0, 3, Some(2)).unwrap();
        assert_eq!(m, vec![0.0, inf, inf, 0.0, 0.0, inf, inf, 0.0, 0.0]);
    }
}
