//! The forward pass we run by default, one for every family [`HParams`] describes (Llama 2/3,
//! Mistral, Qwen 2/3, Phi-3, Gemma 3), over quantized weights used in place in the file's bytes
//! (see [`crate::matmul`]).
//!
//! Why not candle's model code (kept as the `candle` backend, the reference tests/backends.rs
//! compares logits and greedy choices with): for a 135M model in a browser its costs were not the
//! arithmetic — every op allocated a tensor, prefill ran the quantized matmuls one token at a
//! time, candle's llama copied the weights and expanded the embedding table to f32, and
//! nothing used a second thread. Here every buffer is allocated once and reused, prefill
//! multiplies whole tiles of tokens, and matmuls and attention heads are split across rayon's
//! pool.
//!
//! The arithmetic follows llama.cpp's graphs step for step (RMSNorm, interleaved or NeoX rotary
//! with frequency factors, grouped-query attention, SiLU or tanh-GELU gated MLP); the families'
//! differences are optional steps on a layer (biases, per-head norms, post-norms, fused
//! projections split after the matmul).

use std::ops::RangeInclusive;

use rayon::prelude::*;

use crate::bail;
use crate::error::Result;
use crate::kernels::{self, Q8Row, Q8Rows, WeightFormat};
use crate::matmul::{grown, matmul_each, DisjointOut, QMatrix, Scratch};
use crate::model::hparams::{Activation, GateUpLayout, HParams, QkvLayout, RopeKind};
use crate::model::kv_cache::{padded_head_dim, KvCache};
use crate::model::TensorSource;

/// A long prompt runs through the layers this many tokens at a time, so the activation buffers
/// stay ~1.3 MiB for SmolLM2 instead of growing with the prompt (256 took 7 MiB more and was no
/// faster). 32 rather than 64 brought SmolLM2's peak at 2,048 positions from 1.32× to 1.30× its
/// file; prefill measured the same at 1 thread and ~2–3% slower at 2 before the matmuls' single
/// pass per input (README, "Memory with a full context"). Results are the same for any split:
/// tests/backends.rs.
const PREFILL_CHUNK: usize = 32;
/// Multiply-adds of a layer's attention below which it stays on one thread.
const ATTENTION_WORK_PER_TASK: usize = 64 * 1024;
/// Query heads that share a KV head read each cached key together, this many at a time: the key
/// is unpacked once for all of them (the kernels' multi-row path).
const HEADS_PER_TILE: usize = 4;
/// Queries of one attention task, at most: a long prompt's attention is split by tokens too, so
/// that a model with one KV head still uses every thread.
const TOKENS_PER_TASK: usize = 16;

/// The hyperparameters, and what follows from them for the context we serve.
#[derive(Debug, Clone)]
struct Config {
    hp: HParams,
    max_positions: usize,
    /// Divisors of the rotary frequencies (Llama 3's `rope_freqs`, Phi-3's short or long
    /// factors), `rope.dims / 2` of them.
    rope_factors: Option<Vec<f32>>,
}

/// A layer's query, key and value projections.
enum QkvWeights {
    Separate {
        q: QMatrix,
        k: QMatrix,
        v: QMatrix,
    },
    /// One matrix whose output rows are Q, then K, then V (Phi-3).
    Fused(QMatrix),
}

/// A layer's gate and up projections.
enum GateUpWeights {
    Separate {
        gate: QMatrix,
        up: QMatrix,
    },
    /// One matrix whose output rows are the gate's, then the up projection's (Phi-3).
    Fused(QMatrix),
}

struct Layer {
    attn_norm: Vec<f32>,
    qkv: QkvWeights,
    /// Qwen 2: biases added to the query, key and value projections.
    qkv_bias: Option<[Vec<f32>; 3]>,
    wo: QMatrix,
    /// Qwen 3, Gemma 3: RMSNorm of each query and key head before rotation.
    q_norm: Option<Vec<f32>>,
    k_norm: Option<Vec<f32>>,
    /// Gemma 3: RMSNorm of the attention and MLP outputs before the residual add.
    post_attn_norm: Option<Vec<f32>>,
    post_ffn_norm: Option<Vec<f32>>,
    ffn_norm: Vec<f32>,
    gate_up: GateUpWeights,
    down: QMatrix,
    /// `Some(w)`: a query sees only keys less than `w` positions back.
    window: Option<usize>,
    local_rope: bool,
    /// Keys (rotated) and values of positions `0..kv_len`.
    kv: KvCache,
}

/// Buffers of one forward pass, grown to the largest batch seen and then reused.
#[derive(Default)]
struct Buffers {
    x: Vec<f32>,
    normed: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    /// The queries, each head padded to whole blocks and quantized for the cached keys.
    q_padded: Vec<f32>,
    queries: Q8Rows,
    attn: Vec<f32>,
    proj: Vec<f32>,
    gate: Vec<f32>,
    up: Vec<f32>,
    /// A fused projection's whole output, before it is split.
    fused: Vec<f32>,
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
    /// The model `hp` describes, its weights left where they are in the file; KV cache and
    /// rotary tables for at most `max_positions`.
    pub fn load(src: &TensorSource<'_>, hp: &HParams, max_positions: usize) -> Result<Self> {
        let t = src;
        let (n_embd, n_ff, head_dim) = (hp.n_embd, hp.n_ff, hp.head_dim);
        let (q_dim, kv_dim) = (hp.q_dim(), hp.kv_dim());
        let mut layers = Vec::with_capacity(hp.n_layer);
        for i in 0..hp.n_layer {
            let p = |n: &str| format!("blk.{i}.{n}.weight");
            let optional = |present: bool, n: &str, len: usize| -> Result<Option<Vec<f32>>> {
                present.then(|| t.vector(&p(n), len)).transpose()
            };
            // In file order, so that a file cut short is reported at its first missing tensor.
            let attn_norm = t.vector(&p("attn_norm"), n_embd)?;
            let qkv = match hp.qkv {
                QkvLayout::Separate => QkvWeights::Separate {
                    q: t.matrix_of(&p("attn_q"), q_dim, n_embd)?,
                    k: t.matrix_of(&p("attn_k"), kv_dim, n_embd)?,
                    v: t.matrix_of(&p("attn_v"), kv_dim, n_embd)?,
                },
                QkvLayout::Fused => QkvWeights::Fused(t.matrix_of(&p("attn_qkv"), q_dim + 2 * kv_dim, n_embd)?),
            };
            let qkv_bias = if hp.qkv_bias {
                let bias = |n: &str, len: usize| t.vector(&format!("blk.{i}.{n}.bias"), len);
                Some([bias("attn_q", q_dim)?, bias("attn_k", kv_dim)?, bias("attn_v", kv_dim)?])
            } else {
                None
            };
            let gate_up = match hp.gate_up {
                GateUpLayout::Separate => GateUpWeights::Separate {
                    gate: t.matrix_of(&p("ffn_gate"), n_ff, n_embd)?,
                    up: t.matrix_of(&p("ffn_up"), n_ff, n_embd)?,
                },
                GateUpLayout::Fused => GateUpWeights::Fused(t.matrix_of(&p("ffn_up"), 2 * n_ff, n_embd)?),
            };
            let local = hp.is_local_layer(i);
            layers.push(Layer {
                attn_norm,
                qkv,
                qkv_bias,
                wo: t.matrix_of(&p("attn_output"), n_embd, q_dim)?,
                q_norm: optional(hp.qk_norm, "attn_q_norm", head_dim)?,
                k_norm: optional(hp.qk_norm, "attn_k_norm", head_dim)?,
                post_attn_norm: optional(hp.post_norms, "post_attention_norm", n_embd)?,
                post_ffn_norm: optional(hp.post_norms, "post_ffw_norm", n_embd)?,
                ffn_norm: t.vector(&p("ffn_norm"), n_embd)?,
                gate_up,
                down: t.matrix_of(&p("ffn_down"), n_embd, n_ff)?,
                window: if local { hp.sliding_window.map(|(w, _)| w) } else { None },
                local_rope: local,
                kv: KvCache::new(hp.n_kv_head, head_dim),
            });
        }
        let embed = t.matrix("token_embd.weight")?;
        if embed.cols != n_embd {
            bail!(InvalidGguf, "token_embd.weight has rows of {}, not the embedding length {n_embd}", embed.cols);
        }
        let output_name = hp.output_tensor();
        let output = t.matrix(output_name)?;
        if output.cols != n_embd {
            bail!(InvalidGguf, "{output_name} has rows of {}, not the embedding length {n_embd}", output.cols);
        }
        let rope_factors = match hp.rope_factors_tensor(max_positions) {
            Some(name) => Some(t.vector(name, hp.rope.dims / 2)?),
            None => None,
        };
        Ok(Self {
            output_norm: t.vector("output_norm.weight", n_embd)?,
            cfg: Config { hp: hp.clone(), max_positions, rope_factors },
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
        let (hp, buf) = (&self.cfg.hp, &mut self.buf);
        let last = grown(&mut buf.last, hp.n_embd);
        rms_norm_rows(&buf.x[(last_rows - 1) * hp.n_embd..last_rows * hp.n_embd], &self.output_norm, hp.rms_eps, last);
        let logits = grown(&mut buf.logits, self.output.rows);
        self.output.matmul(file, last, logits, &mut buf.matmul);
        logits
    }

    /// Run `tokens` at `pos..` through every layer, leaving their hidden states in `buf.x`
    /// and their keys and values in the cache.
    fn run_layers(&mut self, file: &[u8], tokens: &[u32], pos: usize) {
        let Self { cfg, layers, embed, buf, .. } = self;
        let hp = &cfg.hp;
        let (n, n_embd, n_ff, eps) = (tokens.len(), hp.n_embd, hp.n_ff, hp.rms_eps);
        let (q_dim, kv_dim) = (hp.q_dim(), hp.kv_dim());

        let x = grown(&mut buf.x, n * n_embd);
        for (row, &t) in x.chunks_exact_mut(n_embd).zip(tokens) {
            embed.dequantize_row(file, t as usize, row);
            if hp.embed_scale != 1.0 {
                row.iter_mut().for_each(|v| *v *= hp.embed_scale);
            }
        }
        rotary_table(cfg, hp.rope.base, pos, n, &mut buf.cos, &mut buf.sin);
        if layers.iter().any(|l| l.local_rope) {
            rotary_table(cfg, hp.rope.base_local, pos, n, &mut buf.cos_local, &mut buf.sin_local);
        }

        for layer in layers.iter_mut() {
            let x = &mut buf.x[..n * n_embd];
            let normed = grown(&mut buf.normed, n * n_embd);
            rms_norm_rows(x, &layer.attn_norm, eps, normed);

            // Attention.
            let q = grown(&mut buf.q, n * q_dim);
            let k = grown(&mut buf.k, n * kv_dim);
            let v = grown(&mut buf.v, n * kv_dim);
            match &layer.qkv {
                QkvWeights::Separate { q: wq, k: wk, v: wv } => {
                    matmul_each(file, normed, &mut [(wq, &mut *q), (wk, &mut *k), (wv, &mut *v)], &mut buf.matmul)
                }
                QkvWeights::Fused(w) => {
                    let fused = grown(&mut buf.fused, n * (q_dim + 2 * kv_dim));
                    w.matmul(file, normed, fused, &mut buf.matmul);
                    split_rows(fused, &mut [(&mut *q, q_dim), (&mut *k, kv_dim), (&mut *v, kv_dim)]);
                }
            }
            if let Some([bq, bk, bv]) = &layer.qkv_bias {
                add_rows(q, bq);
                add_rows(k, bk);
                add_rows(v, bv);
            }
            if let (Some(qn), Some(kn)) = (&layer.q_norm, &layer.k_norm) {
                rms_norm_rows_in_place(q, qn, eps);
                rms_norm_rows_in_place(k, kn, eps);
            }
            let (cos, sin) = if layer.local_rope { (&buf.cos_local, &buf.sin_local) } else { (&buf.cos, &buf.sin) };
            rotate(hp, q, n, cos, sin);
            rotate(hp, k, n, cos, sin);
            layer.kv.write(pos, k, v);
            quantize_queries(hp, q, &mut buf.q_padded, &mut buf.queries);
            let attn = grown(&mut buf.attn, n * q_dim);
            attend(hp, layer, &buf.queries, pos, n, &mut buf.scores, attn);
            let proj = grown(&mut buf.proj, n * n_embd);
            layer.wo.matmul(file, attn, proj, &mut buf.matmul);
            if let Some(post) = &layer.post_attn_norm {
                rms_norm_rows_in_place(proj, post, eps);
            }
            x.iter_mut().zip(proj.iter()).for_each(|(x, p)| *x += p);

            // Gated MLP.
            rms_norm_rows(x, &layer.ffn_norm, eps, normed);
            let gate = grown(&mut buf.gate, n * n_ff);
            let up = grown(&mut buf.up, n * n_ff);
            match &layer.gate_up {
                GateUpWeights::Separate { gate: wg, up: wu } => {
                    matmul_each(file, normed, &mut [(wg, &mut *gate), (wu, &mut *up)], &mut buf.matmul)
                }
                GateUpWeights::Fused(w) => {
                    let fused = grown(&mut buf.fused, n * 2 * n_ff);
                    w.matmul(file, normed, fused, &mut buf.matmul);
                    split_rows(fused, &mut [(&mut *gate, n_ff), (&mut *up, n_ff)]);
                }
            }
            match hp.activation {
                Activation::Silu => gate.iter_mut().zip(up.iter()).for_each(|(g, u)| *g = *g / (1.0 + (-*g).exp()) * u),
                Activation::GeluTanh => gate.iter_mut().zip(up.iter()).for_each(|(g, u)| *g = gelu_tanh(*g) * u),
            }
            layer.down.matmul(file, gate, proj, &mut buf.matmul);
            if let Some(post) = &layer.post_ffn_norm {
                rms_norm_rows_in_place(proj, post, eps);
            }
            x.iter_mut().zip(proj.iter()).for_each(|(x, p)| *x += p);
        }
        self.kv_len = pos + n;
    }

    /// Make room in every layer's cache for `positions` (never much past the context served).
    pub fn reserve_kv(&mut self, positions: usize) {
        for layer in &mut self.layers {
            layer.kv.grow_to(positions, self.cfg.max_positions);
        }
    }
}

/// cos and sin of the `n` positions from `pos`, as llama.cpp's rope computes them: angle
/// `position · freq_scale · base^(−2i/d) / factor_i`, both scaled by `attn_factor` (f32
/// throughout).
fn rotary_table(c: &Config, base: f32, pos: usize, n: usize, cos: &mut Vec<f32>, sin: &mut Vec<f32>) {
    let rope = &c.hp.rope;
    let half = rope.dims / 2;
    let (cos, sin) = (grown(cos, n * half), grown(sin, n * half));
    for t in 0..n {
        for i in 0..half {
            let factor = c.rope_factors.as_ref().map_or(1.0, |f| f[i]);
            let inv_freq = rope.freq_scale / base.powf((2 * i) as f32 / rope.dims as f32) / factor;
            let angle = (pos + t) as f32 * inv_freq;
            cos[t * half + i] = angle.cos() * rope.attn_factor;
            sin[t * half + i] = angle.sin() * rope.attn_factor;
        }
    }
}

/// Rotate every head of every row of `x` (rows of whole heads) by its position's angles.
fn rotate(hp: &HParams, x: &mut [f32], n: usize, cos: &[f32], sin: &[f32]) {
    let (d, half) = (hp.head_dim, hp.head_dim / 2);
    let heads_per_row = x.len() / d / n;
    for (h, head) in x.chunks_exact_mut(d).enumerate() {
        let t = h / heads_per_row;
        let (cos, sin) = (&cos[t * half..][..half], &sin[t * half..][..half]);
        if hp.rope.kind == RopeKind::Neox {
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

/// Each head of each row of `q` padded with zeros to whole blocks and quantized, one row of
/// `queries` per head (row `t·n_head + h`), as ggml quantizes the query for a Q8_0 key.
fn quantize_queries(hp: &HParams, q: &[f32], padded: &mut Vec<f32>, queries: &mut Q8Rows) {
    let (d, dp) = (hp.head_dim, padded_head_dim(hp.head_dim));
    let heads = q.len() / d;
    let padded = grown(padded, heads * dp);
    for (to, from) in padded.chunks_exact_mut(dp).zip(q.chunks_exact(d)) {
        to[..d].copy_from_slice(from);
        to[d..].fill(0.0);
    }
    queries.quantize(padded, dp);
}

/// Causal grouped-query attention of the `n` queries at `pos..` over the cached keys. A task
/// takes up to [`HEADS_PER_TILE`] query heads of one KV head and up to [`TOKENS_PER_TASK`] of
/// the queries; `scores` is grown to a tile of score rows per task.
fn attend(hp: &HParams, layer: &Layer, queries: &Q8Rows, pos: usize, n: usize, scores: &mut Vec<f32>, out: &mut [f32]) {
    let (d, group, q_dim, width) = (hp.head_dim, hp.n_head / hp.n_kv_head, hp.q_dim(), pos + n);
    let scale = 1.0 / (d as f32).sqrt();
    assert!(out.len() >= n * q_dim && layer.kv.capacity() >= width);
    let tiles_per_group = group.div_ceil(HEADS_PER_TILE);
    let token_ranges = n.div_ceil(TOKENS_PER_TASK);
    let tasks = hp.n_kv_head * tiles_per_group * token_ranges;
    let scores = grown(scores, tasks * HEADS_PER_TILE * width);
    let out_ptr = DisjointOut(out.as_mut_ptr());
    // Early in a generation attention is too little work to hand to another thread.
    let tasks_per_thread = if hp.n_head * n * width * d < ATTENTION_WORK_PER_TASK { tasks } else { 1 };
    scores.par_chunks_mut(HEADS_PER_TILE * width).enumerate().with_min_len(tasks_per_thread).for_each(
        |(task, scores)| {
            let out_ptr = out_ptr;
            let (tile, range) = (task / token_ranges, task % token_ranges);
            let kv_head = tile / tiles_per_group;
            let first_head = kv_head * group + tile % tiles_per_group * HEADS_PER_TILE;
            let heads = first_head..(first_head + HEADS_PER_TILE).min((kv_head + 1) * group);
            for t in range * TOKENS_PER_TASK..((range + 1) * TOKENS_PER_TASK).min(n) {
                let p = pos + t;
                let keys = layer.window.map_or(0, |w| (p + 1).saturating_sub(w))..=p;
                // A tile of three repeats its last head (the fourth score row is left unread).
                let rows: [Q8Row; HEADS_PER_TILE] =
                    std::array::from_fn(|i| queries.row(t * hp.n_head + (heads.start + i).min(heads.end - 1)));
                key_scores(&layer.kv, kv_head, &rows, heads.len(), keys.clone(), scale, scores, width);
                for (i, h) in heads.clone().enumerate() {
                    let s = &mut scores[i * width..][keys.clone()];
                    let max = s.iter().fold(f32::NEG_INFINITY, |m, &s| if s > m { s } else { m });
                    s.iter_mut().for_each(|s| *s = exp_non_positive(*s - max));
                    let sum = sum(s);
                    // SAFETY: head h of query t is out[t·q_dim + h·d..][..d], in bounds (asserted)
                    // and written by this task alone.
                    let o = unsafe { std::slice::from_raw_parts_mut(out_ptr.0.add(t * q_dim + h * d), d) };
                    o.fill(0.0);
                    for (j, &w) in keys.clone().zip(s.iter()) {
                        layer.kv.add_value(j, kv_head, w / sum, o);
                    }
                }
            }
        },
    );
}

/// `scores[i·width + j] = scale · qᵢ·kⱼ` for the first `count` of the query rows `rows` and
/// the keys `keys` of KV head `kv_head` (three take the four-row path).
#[allow(clippy::too_many_arguments)]
fn key_scores(
    kv: &KvCache,
    kv_head: usize,
    rows: &[Q8Row; HEADS_PER_TILE],
    count: usize,
    keys: RangeInclusive<usize>,
    scale: f32,
    scores: &mut [f32],
    width: usize,
) {
    let [a, b, c, d] = rows;
    match count {
        1 => key_tile(kv, kv_head, [a], keys, scale, scores, width),
        2 => key_tile(kv, kv_head, [a, b], keys, scale, scores, width),
        _ => key_tile(kv, kv_head, [a, b, c, d], keys, scale, scores, width),
    }
}

/// [`key_scores`] for `N` rows.
fn key_tile<const N: usize>(
    kv: &KvCache,
    kv_head: usize,
    rows: [&Q8Row; N],
    keys: RangeInclusive<usize>,
    scale: f32,
    scores: &mut [f32],
    width: usize,
) {
    for j in keys {
        let s = kernels::dots(WeightFormat::Q8_0, kv.key(j, kv_head), rows);
        for (i, s) in s.into_iter().enumerate() {
            scores[i * width + j] = s * scale;
        }
    }
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

/// Split each row of `fused` into consecutive pieces of the given widths, row by row.
fn split_rows(fused: &[f32], parts: &mut [(&mut [f32], usize)]) {
    let width: usize = parts.iter().map(|(_, w)| w).sum();
    for (r, row) in fused.chunks_exact(width).enumerate() {
        let mut start = 0;
        for (out, w) in parts.iter_mut() {
            out[r * *w..(r + 1) * *w].copy_from_slice(&row[start..start + *w]);
            start += *w;
        }
    }
}

/// Add `bias` to every row of `x`.
fn add_rows(x: &mut [f32], bias: &[f32]) {
    for row in x.chunks_exact_mut(bias.len()) {
        row.iter_mut().zip(bias).for_each(|(x, b)| *x += b);
    }
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
