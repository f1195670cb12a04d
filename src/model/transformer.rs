//! The forward pass we run by default: llama-family models and Gemma 3 over quantized weights
//! used in place in the file's bytes (see [`crate::matmul`]).
//!
//! Why not candle's model code (kept as the `candle` backend, the reference tests/backends.rs
//! compares logits and greedy choices with): for a 135M model in a browser its costs were not the
//! arithmetic — every op allocated a tensor, prefill ran the quantized matmuls one token at a
//! time, candle's llama copied the weights and expanded the embedding table to f32, and
//! nothing used a second thread. Here every buffer is allocated once and reused, prefill
//! multiplies whole tiles of tokens, and matmuls and attention heads are split across rayon's
//! pool.
//!
//! The arithmetic follows candle's llama and our Gemma 3 adaptation step for step (RMSNorm,
//! interleaved or NeoX rotary, grouped-query attention, SiLU or tanh-GELU gated MLP).

use rayon::prelude::*;

use crate::bail;
use crate::error::Result;
use crate::gguf::Metadata;
use crate::matmul::{grown, matmul_each, DisjointOut, QMatrix, Scratch};
use crate::model::TensorSource;

const GEMMA3_DEFAULT_SLIDING_WINDOW_PATTERN: usize = 6;
const GEMMA3_DEFAULT_ROPE_FREQ_LOCAL: f32 = 10_000.0;
const GEMMA3_DEFAULT_ROPE_FREQ_GLOBAL: f32 = 1_000_000.0;
/// The KV cache grows in steps of this many positions (it is sized by what a generation
/// uses, not by the whole context window).
const KV_GROWTH: usize = 64;
/// A long prompt runs through the layers this many tokens at a time: enough to read each weight
/// once for many tokens, while the activation buffers stay a few MB instead of growing with
/// the prompt. (Results are the same for any split: tests/backends.rs.)
const PREFILL_CHUNK: usize = 256;
/// Multiply-adds of one head below which attention stays on one thread.
const ATTENTION_WORK_PER_TASK: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Activation {
    Silu,
    GeluTanh,
}

#[derive(Debug, Clone)]
struct Config {
    n_embd: usize,
    n_head: usize,
    n_kv_head: usize,
    head_dim: usize,
    n_ff: usize,
    eps: f32,
    /// NeoX rotary pairs `(i, i + d/2)`; otherwise ggml's llama pairs `(2i, 2i + 1)`.
    rope_neox: bool,
    rope_base: f32,
    /// Gemma 3's local (sliding-window) layers rotate with their own base.
    rope_base_local: f32,
    embed_scale: f32,
    activation: Activation,
    max_positions: usize,
}

struct Layer {
    attn_norm: Vec<f32>,
    wq: QMatrix,
    wk: QMatrix,
    wv: QMatrix,
    wo: QMatrix,
    /// Gemma 3: RMSNorm of each query and key head before rotation.
    q_norm: Option<Vec<f32>>,
    k_norm: Option<Vec<f32>>,
    /// Gemma 3: RMSNorm of the attention and MLP outputs before the residual add.
    post_attn_norm: Option<Vec<f32>>,
    post_ffn_norm: Option<Vec<f32>>,
    ffn_norm: Vec<f32>,
    gate: QMatrix,
    up: QMatrix,
    down: QMatrix,
    /// `Some(w)`: a query sees only keys less than `w` positions back.
    window: Option<usize>,
    local_rope: bool,
    /// Keys and values (rotated) of positions `0..kv_len`, `n_kv_head·head_dim` per position.
    k_cache: Vec<f32>,
    v_cache: Vec<f32>,
}

/// Buffers of one forward pass, grown to the largest batch seen and then reused.
#[derive(Default)]
struct Buffers {
    x: Vec<f32>,
    normed: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    attn: Vec<f32>,
    proj: Vec<f32>,
    gate: Vec<f32>,
    up: Vec<f32>,
    scores: Vec<f32>,
    cos: Vec<f32>,
    sin: Vec<f32>,
    cos_local: Vec<f32>,
    sin_local: Vec<f32>,
    last: Vec<f32>,
    logits: Vec<f32>,
    matmul: Scratch,
}

pub struct Transformer {
    cfg: Config,
    layers: Vec<Layer>,
    embed: QMatrix,
    output: QMatrix,
    output_norm: Vec<f32>,
    kv_len: usize,
    buf: Buffers,
}

impl Transformer {
    /// `arch` is "llama" or "gemma3"; `file` the whole GGUF, whose tensors stay where they are.
    pub fn load(src: &TensorSource<'_>, arch: &str, max_positions: usize) -> Result<Self> {
        let md = Metadata(&src.content.metadata);
        let key = |k: &str| format!("{arch}.{k}");
        let uint = |k: &str| -> Result<usize> { Ok(md.uint(&key(k))? as usize) };
        let float = |k: &str, default: f32| md.get(&key(k)).and_then(|v| v.to_f32().ok()).unwrap_or(default);
        let gemma = arch == "gemma3";

        let n_embd = uint("embedding_length")?;
        let n_head = uint("attention.head_count")?;
        let n_kv_head = md.opt_uint(&key("attention.head_count_kv"))?.map_or(n_head, |v| v as usize);
        if n_head == 0 || n_kv_head == 0 || n_head % n_kv_head != 0 {
            bail!(MissingMetadata, "{arch}: {n_head} attention heads cannot share {n_kv_head} KV heads");
        }
        let head_dim = md.opt_uint(&key("attention.key_length"))?.map_or(n_embd / n_head, |v| v as usize);
        if head_dim == 0 || head_dim % 2 != 0 {
            bail!(MissingMetadata, "{arch}: head size {head_dim} is not a positive even number");
        }
        if !gemma {
            let rope_dim = md.opt_uint(&key("rope.dimension_count"))?.map_or(head_dim, |v| v as usize);
            if rope_dim != head_dim {
                bail!(
                    UnsupportedArchitecture,
                    "partial rotary embeddings ({rope_dim} of {head_dim}) are not supported"
                );
            }
        }
        let n_layer = uint("block_count")?;
        let n_ff = uint("feed_forward_length")?;
        let cfg = Config {
            n_embd,
            n_head,
            n_kv_head,
            head_dim,
            n_ff,
            eps: float("attention.layer_norm_rms_epsilon", 1e-6),
            rope_neox: gemma,
            rope_base: float("rope.freq_base", if gemma { GEMMA3_DEFAULT_ROPE_FREQ_GLOBAL } else { 10_000.0 }),
            rope_base_local: float("rope.local_freq_base", GEMMA3_DEFAULT_ROPE_FREQ_LOCAL),
            embed_scale: if gemma { (n_embd as f32).sqrt() } else { 1.0 },
            activation: if gemma { Activation::GeluTanh } else { Activation::Silu },
            max_positions,
        };
        let (window, pattern) = if gemma {
            let pattern = md.opt_uint(&key("attention.sliding_window_pattern"))?;
            (
                Some(uint("attention.sliding_window")?),
                pattern.map_or(GEMMA3_DEFAULT_SLIDING_WINDOW_PATTERN, |p| p as usize).max(1),
            )
        } else {
            (None, 1)
        };

        let t = src;
        let (q_dim, kv_dim) = (n_head * head_dim, n_kv_head * head_dim);
        let mut layers = Vec::with_capacity(n_layer);
        for i in 0..n_layer {
            let p = |n: &str| format!("blk.{i}.{n}.weight");
            let gemma_norm = |n: &str, len: usize| -> Result<Option<Vec<f32>>> {
                if gemma {
                    Ok(Some(t.vector(&p(n), len)?))
                } else {
                    Ok(None)
                }
            };
            let local = window.is_some() && (i + 1) % pattern != 0;
            layers.push(Layer {
                attn_norm: t.vector(&p("attn_norm"), n_embd)?,
                wq: t.matrix_of(&p("attn_q"), q_dim, n_embd)?,
                wk: t.matrix_of(&p("attn_k"), kv_dim, n_embd)?,
                wv: t.matrix_of(&p("attn_v"), kv_dim, n_embd)?,
                wo: t.matrix_of(&p("attn_output"), n_embd, q_dim)?,
                q_norm: gemma_norm("attn_q_norm", head_dim)?,
                k_norm: gemma_norm("attn_k_norm", head_dim)?,
                post_attn_norm: gemma_norm("post_attention_norm", n_embd)?,
                post_ffn_norm: gemma_norm("post_ffw_norm", n_embd)?,
                ffn_norm: t.vector(&p("ffn_norm"), n_embd)?,
                gate: t.matrix_of(&p("ffn_gate"), n_ff, n_embd)?,
                up: t.matrix_of(&p("ffn_up"), n_ff, n_embd)?,
                down: t.matrix_of(&p("ffn_down"), n_embd, n_ff)?,
                window: if local { window } else { None },
                local_rope: local,
                k_cache: Vec::new(),
                v_cache: Vec::new(),
            });
        }
        let embed = t.matrix("token_embd.weight")?;
        if embed.cols != n_embd {
            bail!(InvalidGguf, "token_embd.weight has rows of {}, not the embedding length {n_embd}", embed.cols);
        }
        let output_name = if t.has("output.weight") { "output.weight" } else { "token_embd.weight" };
        let output = t.matrix(output_name)?;
        if output.cols != n_embd {
            bail!(InvalidGguf, "{output_name} has rows of {}, not the embedding length {n_embd}", output.cols);
        }
        Ok(Self {
            output_norm: t.vector("output_norm.weight", n_embd)?,
            cfg,
            layers,
            embed,
            output,
            kv_len: 0,
            buf: Buffers::default(),
        })
    }

    /// Rows of the embedding table and of the output layer (each must cover the vocabulary).
    pub fn vocab_rows(&self) -> (usize, usize) {
        (self.embed.rows, self.output.rows)
    }

    /// Logits of the last of `tokens`, placed at positions `pos..`, after the cached positions
    /// before `pos`; `pos == 0` starts a new sequence. The caller has checked ids and positions
    /// against vocabulary and context.
    ///
    /// `pos` may be below the cached length (a new prompt that shares only a prefix with the
    /// last sequence): the keys and values from `pos` on are overwritten before any query
    /// reads them, because a query at position p reads positions up to p alone. The cache is
    /// indexed by absolute position — sliding-window layers too, which look back from p — so
    /// what is kept is exactly what a pass from 0 would have written.
    pub fn forward(&mut self, file: &[u8], tokens: &[u32], pos: usize) -> &[f32] {
        debug_assert!(pos <= self.kv_len, "positions must continue the cached sequence or go back in it");
        self.kv_len = pos;
        self.reserve_kv(pos + tokens.len());
        let mut last_rows = 0;
        for (i, chunk) in tokens.chunks(PREFILL_CHUNK).enumerate() {
            self.run_layers(file, chunk, pos + i * PREFILL_CHUNK);
            last_rows = chunk.len();
        }
        let (c, buf) = (&self.cfg, &mut self.buf);
        let last = grown(&mut buf.last, c.n_embd);
        rms_norm_rows(&buf.x[(last_rows - 1) * c.n_embd..last_rows * c.n_embd], &self.output_norm, c.eps, last);
        let logits = grown(&mut buf.logits, self.output.rows);
        self.output.matmul(file, last, logits, &mut buf.matmul);
        logits
    }

    /// Run `tokens` at `pos..` through every layer, leaving their hidden states in `buf.x`
    /// and their keys and values in the cache.
    fn run_layers(&mut self, file: &[u8], tokens: &[u32], pos: usize) {
        let c = self.cfg.clone();
        let n = tokens.len();
        let (q_dim, kv_dim) = (c.n_head * c.head_dim, c.n_kv_head * c.head_dim);
        let buf = &mut self.buf;

        let x = grown(&mut buf.x, n * c.n_embd);
        for (row, &t) in x.chunks_exact_mut(c.n_embd).zip(tokens) {
            self.embed.dequantize_row(file, t as usize, row);
            if c.embed_scale != 1.0 {
                row.iter_mut().for_each(|v| *v *= c.embed_scale);
            }
        }
        rotary_table(&c, c.rope_base, pos, n, &mut buf.cos, &mut buf.sin);
        if self.layers.iter().any(|l| l.local_rope) {
            rotary_table(&c, c.rope_base_local, pos, n, &mut buf.cos_local, &mut buf.sin_local);
        }

        for layer in &mut self.layers {
            let x = &mut buf.x[..n * c.n_embd];
            let normed = grown(&mut buf.normed, n * c.n_embd);
            rms_norm_rows(x, &layer.attn_norm, c.eps, normed);

            // Attention.
            let q = grown(&mut buf.q, n * q_dim);
            let k = grown(&mut buf.k, n * kv_dim);
            let v = grown(&mut buf.v, n * kv_dim);
            matmul_each(
                file,
                normed,
                &mut [(&layer.wq, &mut *q), (&layer.wk, &mut *k), (&layer.wv, &mut *v)],
                &mut buf.matmul,
            );
            if let (Some(qn), Some(kn)) = (&layer.q_norm, &layer.k_norm) {
                rms_norm_rows_in_place(q, qn, c.eps);
                rms_norm_rows_in_place(k, kn, c.eps);
            }
            let (cos, sin) = if layer.local_rope { (&buf.cos_local, &buf.sin_local) } else { (&buf.cos, &buf.sin) };
            rotate(&c, q, n, cos, sin);
            rotate(&c, k, n, cos, sin);
            layer.k_cache[pos * kv_dim..(pos + n) * kv_dim].copy_from_slice(k);
            layer.v_cache[pos * kv_dim..(pos + n) * kv_dim].copy_from_slice(v);
            let attn = grown(&mut buf.attn, n * q_dim);
            let scores = grown(&mut buf.scores, c.n_head * (pos + n));
            attend(&c, layer, q, pos, n, scores, attn);
            let proj = grown(&mut buf.proj, n * c.n_embd);
            layer.wo.matmul(file, attn, proj, &mut buf.matmul);
            if let Some(post) = &layer.post_attn_norm {
                rms_norm_rows_in_place(proj, post, c.eps);
            }
            x.iter_mut().zip(proj.iter()).for_each(|(x, p)| *x += p);

            // Gated MLP.
            rms_norm_rows(x, &layer.ffn_norm, c.eps, normed);
            let gate = grown(&mut buf.gate, n * c.n_ff);
            let up = grown(&mut buf.up, n * c.n_ff);
            matmul_each(file, normed, &mut [(&layer.gate, &mut *gate), (&layer.up, &mut *up)], &mut buf.matmul);
            match c.activation {
                Activation::Silu => gate.iter_mut().zip(up.iter()).for_each(|(g, u)| *g = *g / (1.0 + (-*g).exp()) * u),
                Activation::GeluTanh => gate.iter_mut().zip(up.iter()).for_each(|(g, u)| *g = gelu_tanh(*g) * u),
            }
            layer.down.matmul(file, gate, proj, &mut buf.matmul);
            if let Some(post) = &layer.post_ffn_norm {
                rms_norm_rows_in_place(proj, post, c.eps);
            }
            x.iter_mut().zip(proj.iter()).for_each(|(x, p)| *x += p);
        }
        self.kv_len = pos + n;
    }

    /// Make room in every layer's cache for `positions`, growing in steps (a reallocation
    /// copies the cache, so it should be rare) and never past the context served.
    pub fn reserve_kv(&mut self, positions: usize) {
        let kv_dim = self.cfg.n_kv_head * self.cfg.head_dim;
        for layer in &mut self.layers {
            if layer.k_cache.len() < positions * kv_dim {
                let grown = positions.next_multiple_of(KV_GROWTH).min(self.cfg.max_positions).max(positions);
                for cache in [&mut layer.k_cache, &mut layer.v_cache] {
                    // Exactly this much: `resize` alone may double the capacity.
                    cache.reserve_exact(grown * kv_dim - cache.len());
                    cache.resize(grown * kv_dim, 0.0);
                }
            }
        }
    }
}

/// cos and sin of `position · base^(−2i/d)` for the `n` positions from `pos`, as candle
/// computes them (f32 throughout).
fn rotary_table(c: &Config, base: f32, pos: usize, n: usize, cos: &mut Vec<f32>, sin: &mut Vec<f32>) {
    let half = c.head_dim / 2;
    let (cos, sin) = (grown(cos, n * half), grown(sin, n * half));
    for t in 0..n {
        for i in 0..half {
            let inv_freq = 1.0 / base.powf((2 * i) as f32 / c.head_dim as f32);
            let angle = (pos + t) as f32 * inv_freq;
            cos[t * half + i] = angle.cos();
            sin[t * half + i] = angle.sin();
        }
    }
}

/// Rotate every head of every row of `x` (rows of whole heads) by its position's angles.
fn rotate(c: &Config, x: &mut [f32], n: usize, cos: &[f32], sin: &[f32]) {
    let (d, half) = (c.head_dim, c.head_dim / 2);
    let heads_per_row = x.len() / d / n;
    for (h, head) in x.chunks_exact_mut(d).enumerate() {
        let t = h / heads_per_row;
        let (cos, sin) = (&cos[t * half..][..half], &sin[t * half..][..half]);
        if c.rope_neox {
            let (a, b) = head.split_at_mut(half);
            for i in 0..half {
                let (x0, x1) = (a[i], b[i]);
                a[i] = x0 * cos[i] - x1 * sin[i];
                b[i] = x0 * sin[i] + x1 * cos[i];
            }
        } else {
            for (i, pair) in head.chunks_exact_mut(2).enumerate() {
                let (x0, x1) = (pair[0], pair[1]);
                pair[0] = x0 * cos[i] - x1 * sin[i];
                pair[1] = x0 * sin[i] + x1 * cos[i];
            }
        }
    }
}

/// Causal grouped-query attention of the `n` queries at `pos..` over the cached keys, each
/// head on its own task. `scores` has room for `n_head` rows of `pos + n`.
fn attend(c: &Config, layer: &Layer, q: &[f32], pos: usize, n: usize, scores: &mut [f32], out: &mut [f32]) {
    let (d, group) = (c.head_dim, c.n_head / c.n_kv_head);
    let (q_dim, kv_dim) = (c.n_head * d, c.n_kv_head * d);
    let scale = 1.0 / (d as f32).sqrt();
    assert!(q.len() >= n * q_dim && out.len() >= n * q_dim && layer.k_cache.len() >= (pos + n) * kv_dim);
    let out_ptr = DisjointOut(out.as_mut_ptr());
    // Early in a generation a head is too little work to hand to another thread.
    let heads_per_task = if n * (pos + n) * d < ATTENTION_WORK_PER_TASK { c.n_head } else { 1 };
    scores.par_chunks_mut(pos + n).enumerate().with_min_len(heads_per_task).for_each(|(h, scores)| {
        let out_ptr = out_ptr;
        let kv_head = h / group;
        for t in 0..n {
            let p = pos + t;
            let first = layer.window.map_or(0, |w| (p + 1).saturating_sub(w));
            let query = &q[t * q_dim + h * d..][..d];
            let s = &mut scores[first..=p];
            let mut max = f32::NEG_INFINITY;
            for (j, s) in (first..=p).zip(s.iter_mut()) {
                *s = dot(query, &layer.k_cache[j * kv_dim + kv_head * d..][..d]) * scale;
                max = if *s > max { *s } else { max };
            }
            s.iter_mut().for_each(|s| *s = exp_non_positive(*s - max));
            let sum = sum(s);
            // SAFETY: head h of query t is out[t·q_dim + h·d..][..d], in bounds (asserted) and
            // written by this task alone.
            let o = unsafe { std::slice::from_raw_parts_mut(out_ptr.0.add(t * q_dim + h * d), d) };
            o.fill(0.0);
            for (j, &w) in (first..=p).zip(s.iter()) {
                let value = &layer.v_cache[j * kv_dim + kv_head * d..][..d];
                let w = w / sum;
                o.iter_mut().zip(value).for_each(|(o, v)| *o += w * v);
            }
        }
    });
}

/// eˣ for x ≤ 0 (softmax scores less their maximum), without a branch so the compiler can
/// vectorise it: Cephes' expf (range reduction by ln 2, degree-6 polynomial, within 2 ulp).
/// Rust's `f32::exp` is a libm call per element in wasm, 8% of a long prefill.
#[inline(always)]
fn exp_non_positive(x: f32) -> f32 {
    // Below −87, eˣ is under f32's smallest normal; 2⁻¹²⁶ is as good as zero next to e⁰ = 1.
    let x = if x > -87.0 { x } else { -87.0 };
    let n = (x * std::f32::consts::LOG2_E + 0.5).floor();
    let r = x - n * 0.693_359_4 - n * -2.121_944_4e-4;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r + 1.666_666_5e-1)
        * r
        + 5.000_000_1e-1;
    let y = p * r * r + r + 1.0;
    y * f32::from_bits(((n as i32 + 127) << 23) as u32)
}

/// Σ with eight independent sums (SIMD lanes).
#[inline]
fn sum(xs: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let chunks = xs.chunks_exact(8);
    let tail: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for i in 0..8 {
            acc[i] += c[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// f32 dot product with eight independent sums, which the compiler turns into SIMD lanes.
#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ac.remainder().iter().zip(bc.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ac.zip(bc) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// `out = rms_norm(x)`, row by row.
fn rms_norm_rows(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    out.copy_from_slice(x);
    rms_norm_rows_in_place(out, w, eps);
}

/// candle's RmsNorm, `x / sqrt(mean(x²) + eps) · w`, on each row (rows as long as `w`).
fn rms_norm_rows_in_place(x: &mut [f32], w: &[f32], eps: f32) {
    for row in x.chunks_exact_mut(w.len()) {
        let scale = (row.iter().map(|v| v * v).sum::<f32>() / w.len() as f32 + eps).sqrt();
        row.iter_mut().zip(w).for_each(|(x, w)| *x = *x / scale * w);
    }
}

fn gelu_tanh(x: f32) -> f32 {
    const SQRT_TWO_OVER_PI: f32 = 0.797_884_6;
    0.5 * x * (1.0 + (SQRT_TWO_OVER_PI * x * (1.0 + 0.044715 * x * x)).tanh())
}

#[cfg(test)]
mod tests {
    use super::exp_non_positive;

    #[test]
    fn fast_exp_is_within_two_ulp_of_libm() {
        for i in 0..=200_000 {
            let x = -(i as f32) * 1e-3 * (1.0 + i as f32 * 1e-5);
            let (got, want) = (exp_non_positive(x), x.exp());
            if x <= -87.0 {
                assert!(got <= 1.7e-38, "e^{x}: {got}, where e^-87 = 1.65e-38 is the floor");
                continue;
            }
            let ulps = (got.to_bits() as i64 - want.to_bits() as i64).abs();
            assert!(ulps <= 2, "e^{x}: {got} vs {want} ({ulps} ulp)");
        }
    }
}
