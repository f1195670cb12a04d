//! Export a llama-family GGUF as static-shape ONNX graphs that wonnx can run.
//!
//! The model is cut into shards so that no protobuf, wasm buffer or GPU buffer holds the whole
//! of it (TinyLlama in f32 is 4.4 GB, past wasm32's 4 GB):
//! - `embed.onnx`: the token embedding table (a Gather graph; our host looks the rows up
//!   itself, see [`crate::llm`]);
//! - `layers-NN.onnx`: one decoder step for a group of consecutive layers;
//! - `head-N.onnx`: final RMSNorm and one slice of the output layer's vocabulary;
//! - `tokenizer.gguf`: the GGUF's metadata without tensors, so the tokenizer and chat template
//!   are still read from GGUF metadata;
//! - `model.json`: the [`Manifest`].
//!
//! A layer graph runs a batch of `T` tokens ([`Slots`]) against a KV cache the host keeps:
//! inputs are the hidden states `[T, D]`, the rotary `cos`/`sin` rows for the tokens'
//! positions `[T, 1, head_dim]`, an additive attention `mask` `[1, T, P + T]` and, per layer,
//! the past keys and values `[P, kv_dim]` (slot `j` holds position `j`; unused slots are
//! masked). The batch's keys and values are appended after the past slots inside the graph and
//! also returned, for the host to store. `P`, from the context, is fixed at export: wonnx needs
//! static shapes.
//!
//! Only operators wonnx implements appear, in the shapes its shaders accept (a MatMul with more
//! than one row needs all dimensions even):
//! - RMSNorm is Mul, ReduceMean, Add, Sqrt, Div, Mul;
//! - the interleaved rotary embedding is `x·cos + (x·R)·sin`, where `x·R` maps each pair
//!   `(a, b)` to `(−b, a)`: a MatMul of the `[heads·head_dim/2, 2]` pairs by a 2×2 constant;
//! - grouped-query attention Gathers each query head's KV head (axis 0, constant indices),
//!   then runs MatMuls stacked over heads, with the query row duplicated: wonnx's one-row
//!   MatMul computes only the first column when stacked (tests/ops.rs);
//! - SiLU is `x·Sigmoid(x)`;
//! - softmax is spelled out (see [`softmax_last_axis`]).

use serde::{Deserialize, Serialize};

use edgellm::{bail, Error, ErrorCode};
use edgellm::gguf;
use edgellm::model::hparams::{Family, HParams, RopeFactors};
use edgellm::model::TensorSource;
use edgellm::Result;
use wonnx::onnx::{ModelProto, TensorProto};
use wonnx::utils::attribute;

use crate::compact::int8_tensors;
use crate::graph::{float_tensor, GraphBuilder, Value};

pub const MANIFEST_FILE: &str = "model.json";
pub const FORMAT: &str = "edgellm-onnx-llama";
/// Added to the attention scores of masked slots (finite: WGSL gives no guarantees for inf).
pub const MASKED: f32 = -1e9;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WeightStorage {
    F32,
    /// 8-bit with a scale per 32 weights ([`crate::compact`]); expanded to f32 when loaded.
    Int8,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExportOptions {
    /// Context window fixed into the graphs (tokens). Default 1024, at most the model's.
    pub context: usize,
    pub weights: WeightStorage,
    /// The largest f32 weight a shard may give the GPU, and the most f32 weight bytes in one
    /// layer shard. WebGPU guarantees storage bindings of 128 MiB; the default stays under it.
    pub max_tensor_bytes: usize,
    pub max_shard_bytes: usize,
}

impl Default for ExportOptions {
    fn default() -> Self {
        Self { context: 1024, weights: WeightStorage::Int8, max_tensor_bytes: 64 << 20, max_shard_bytes: 64 << 20 }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Shard {
    pub file: String,
    /// `layers` shards: the decoder layers they run, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub layers: Vec<usize>,
    /// `head` shards: the vocabulary slice `[start, end)` whose logits they compute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vocab: Option<[usize; 2]>,
}

/// What the host needs to run the shards; written as `model.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub name: String,
    pub architecture: String,
    pub context: usize,
    pub n_embd: usize,
    pub n_head: usize,
    pub n_kv_head: usize,
    pub head_dim: usize,
    pub n_layer: usize,
    pub vocab: usize,
    pub rope_base: f32,
    pub weights: WeightStorage,
    /// Tokens a layer shard takes per run (see [`Slots`]).
    pub batch: usize,
    /// KV cache slots a layer shard takes as input.
    pub past_slots: usize,
    pub tokenizer: String,
    pub embed: Shard,
    pub layers: Vec<Shard>,
    pub heads: Vec<Shard>,
}

impl Manifest {
    pub fn kv_dim(&self) -> usize {
        self.n_kv_head * self.head_dim
    }
}

/// How a layer shard sees the sequence. It runs `batch` tokens at once: a prompt goes through
/// in batches (one run per batch instead of one per token: a WebGPU dispatch has a fixed cost
/// that dominates a small model's per-token work), a decode step fills one row and masks the
/// rest. Attention covers `past` cached slots (slot `j` holds position `j`) followed by the
/// batch's own keys. Sizes are multiples of 4: wonnx's many-row MatMul needs dimensions with a
/// common factor, and uses 4×4 tiles when they have 4.
#[derive(Debug, Clone, Copy)]
pub struct Slots {
    pub batch: usize,
    pub past: usize,
}

pub const BATCH: usize = 8;

impl Slots {
    pub fn new(context: usize) -> Self {
        Self { batch: BATCH, past: context.div_ceil(4) * 4 }
    }

    pub fn all(&self) -> usize {
        self.past + self.batch
    }
}

/// The model's hyperparameters, as every backend reads them; the graph below is llama's.
type Config = HParams;

/// Refuse, by name, what the graph below does not compute: other families' layers and
/// rotary embeddings other than llama's plain interleaved one.
fn check_exportable(hp: &HParams) -> Result<()> {
    if hp.family != Family::Llama {
        bail!(
            UnsupportedArchitecture,
            "the ONNX export handles llama-family models (TinyLlama, SmolLM2, Llama 2, Mistral); this GGUF is '{}' — it runs on the GGUF backend",
            hp.architecture
        );
    }
    if hp.rope.factors != RopeFactors::None || hp.rope.freq_scale != 1.0 || hp.rope.attn_factor != 1.0 {
        bail!(
            UnsupportedArchitecture,
            "the ONNX export has no rotary frequency factors or scaling (Llama 3.1+'s rope_freqs): this model runs on the GGUF backend"
        );
    }
    if hp.qkv_bias {
        bail!(UnsupportedArchitecture, "the ONNX export has no attention biases: this model runs on the GGUF backend");
    }
    Ok(())
}

/// f32 bytes of one layer's matrices.
fn layer_bytes(cfg: &Config) -> usize {
    let kv = cfg.kv_dim();
    4 * cfg.n_embd * (2 * cfg.q_dim() + 2 * kv + 3 * cfg.n_ff)
}

/// Export `gguf_bytes`, handing each file to `write(name, bytes)` as soon as it is made (so
/// only one shard is in memory at a time). Returns the manifest, also written as `model.json`.
pub fn export_gguf(
    gguf_bytes: &[u8],
    opts: &ExportOptions,
    mut write: impl FnMut(&str, Vec<u8>) -> Result<()>,
) -> Result<Manifest> {
    let exporter = Exporter::new(gguf_bytes, opts)?;
    for name in exporter.files() {
        write(&name, exporter.file(&name)?)?;
    }
    Ok(exporter.manifest)
}

/// Makes the files of an export one at a time, on request: [`crate::llm::OnnxLlm`] can load
/// straight from a GGUF, compiling each shard for the GPU as soon as it exists, so the whole
/// model is never held in memory in either form (TinyLlama's f32 shards exceed wasm32's 4 GB).
pub struct Exporter<'a> {
    gguf: gguf::Gguf<'a>,
    bytes: &'a [u8],
    cfg: Config,
    storage: WeightStorage,
    slots: Slots,
    pub manifest: Manifest,
}

impl<'a> Exporter<'a> {
    /// Check the model and plan the shards; no tensor is read yet.
    pub fn new(bytes: &'a [u8], opts: &ExportOptions) -> Result<Self> {
        let gguf = gguf::parse(bytes)?;
        let md = gguf.metadata();
        let cfg = HParams::read(&gguf.content)?;
        check_exportable(&cfg)?;
        if opts.context < 2 || opts.context > cfg.trained_context {
            bail!(InvalidRequest, "context {} must be between 2 and the model's {}", opts.context, cfg.trained_context);
        }
        let src = TensorSource::new(&gguf, bytes);
        let embed = src.matrix("token_embd.weight")?;
        let output = src.matrix(cfg.output_tensor())?;
        if embed.cols != cfg.n_embd || output.cols != cfg.n_embd {
            bail!(InvalidGguf, "the embedding table and output layer must have {} columns", cfg.n_embd);
        }
        let slots = Slots::new(opts.context);
        let per_shard = (opts.max_shard_bytes / layer_bytes(&cfg).max(1)).max(1);
        let layers = (0..cfg.n_layer)
            .collect::<Vec<_>>()
            .chunks(per_shard)
            .enumerate()
            .map(|(n, group)| Shard { file: format!("layers-{n:02}.onnx"), layers: group.to_vec(), vocab: None })
            .collect();
        let rows_per_head = (opts.max_tensor_bytes / (4 * cfg.n_embd)).max(1);
        let heads = (0..output.rows)
            .step_by(rows_per_head)
            .enumerate()
            .map(|(n, start)| Shard {
                file: format!("head-{n}.onnx"),
                layers: Vec::new(),
                vocab: Some([start, (start + rows_per_head).min(output.rows)]),
            })
            .collect();
        let manifest = Manifest {
            format: FORMAT.into(),
            name: md.opt_string("general.name")?.unwrap_or("unnamed").to_string(),
            architecture: "llama".into(),
            context: opts.context,
            n_embd: cfg.n_embd,
            n_head: cfg.n_head,
            n_kv_head: cfg.n_kv_head,
            head_dim: cfg.head_dim,
            n_layer: cfg.n_layer,
            vocab: output.rows,
            rope_base: cfg.rope.base,
            weights: opts.weights,
            batch: slots.batch,
            past_slots: slots.past,
            tokenizer: "tokenizer.gguf".into(),
            embed: Shard { file: "embed.onnx".into(), layers: Vec::new(), vocab: None },
            layers,
            heads,
        };
        Ok(Self { gguf, bytes, cfg, storage: opts.weights, slots, manifest })
    }

    /// Every file's name, the manifest last.
    pub fn files(&self) -> Vec<String> {
        let m = &self.manifest;
        let shards = [&m.embed].into_iter().chain(&m.layers).chain(&m.heads).map(|s| s.file.clone());
        [m.tokenizer.clone()].into_iter().chain(shards).chain([MANIFEST_FILE.to_string()]).collect()
    }

    /// Make the file `name`.
    pub fn file(&self, name: &str) -> Result<Vec<u8>> {
        let m = &self.manifest;
        if name == MANIFEST_FILE {
            return serde_json::to_vec_pretty(m)
                .map_err(|e| Error::new(ErrorCode::Inference, format!("writing the export's manifest: {e}")));
        }
        if name == m.tokenizer {
            return Ok(self.gguf.metadata_only(self.bytes));
        }
        let src = TensorSource::new(&self.gguf, self.bytes);
        let w = Weights { src: &src, storage: self.storage };
        let cfg = &self.cfg;
        let model = if name == m.embed.file {
            let (table, vocab, _) = src.dequantized("token_embd.weight")?;
            let mut b = GraphBuilder::default();
            let t = b.weights(w.store("token_embd", table, &[vocab as i64, cfg.n_embd as i64]));
            let ids = b.input("token", &[1]);
            let x = b.op("Gather", &[&t, &ids], vec![attribute("axis", 0i64)], &[1, cfg.n_embd as i64]);
            b.output(&x, "hidden");
            b.finish("token embedding")
        } else if let Some(shard) = m.layers.iter().find(|s| s.file == name) {
            layer_graph(cfg, &w, &shard.layers, &self.slots)?
        } else if let Some([start, end]) = m.heads.iter().find(|s| s.file == name).and_then(|s| s.vocab) {
            let output = src.matrix(cfg.output_tensor())?;
            let mut rows = vec![0f32; (end - start) * cfg.n_embd];
            for (r, row) in rows.chunks_exact_mut(cfg.n_embd).enumerate() {
                output.dequantize_row(self.bytes, start + r, row);
            }
            let mut b = GraphBuilder::default();
            let x = b.input("hidden", &[1, cfg.n_embd as i64]);
            let norm = src.vector("output_norm.weight", cfg.n_embd)?;
            let xn = rms_norm(&mut b, &x, "output_norm", norm, cfg.rms_eps);
            let wt = b.weights(w.store(
                "output",
                transpose(&rows, end - start, cfg.n_embd),
                &[cfg.n_embd as i64, (end - start) as i64],
            ));
            let logits = b.matmul(&xn, &wt);
            b.output(&logits, "logits");
            b.finish("output layer")
        } else {
            bail!(InvalidRequest, "the export has no file '{name}'");
        };
        use protobuf::Message;
        model
            .write_to_bytes()
            .map_err(|e| edgellm::Error::new(edgellm::ErrorCode::Inference, format!("writing {name}: {e}")))
    }
}

/// Reads GGUF matrices as ONNX initializers in the chosen storage.
struct Weights<'a> {
    src: &'a TensorSource<'a>,
    storage: WeightStorage,
}

impl Weights<'_> {
    /// The initializer the graph uses, and the INT8 storage's scales beside it.
    fn store(&self, name: &str, data: Vec<f32>, dims: &[i64]) -> (TensorProto, Option<TensorProto>) {
        match self.storage {
            WeightStorage::F32 => (float_tensor(name, &data, dims), None),
            WeightStorage::Int8 => {
                let [values, scales] = int8_tensors(name, &data, dims);
                (values, Some(scales))
            }
        }
    }

    /// GGUF matrix `name` (`out × in`) as the `[in, out]` right-hand side of a MatMul.
    fn matmul_rhs(&self, b: &mut GraphBuilder, name: &str, rows: usize, cols: usize) -> Result<Value> {
        let (w, r, c) = self.src.dequantized(name)?;
        if (r, c) != (rows, cols) {
            bail!(InvalidGguf, "tensor '{name}' is {r}×{c}; this model's metadata implies {rows}×{cols}");
        }
        Ok(b.weights(self.store(name, transpose(&w, rows, cols), &[cols as i64, rows as i64])))
    }
}

impl GraphBuilder {
    /// Add a weight as [`Exporter::store`] made it: the initializer the graph uses, and its scales.
    fn weights(&mut self, (main, scales): (TensorProto, Option<TensorProto>)) -> Value {
        let main = self.weight(main);
        if let Some(scales) = scales {
            self.weight(scales);
        }
        main
    }
}

fn transpose(w: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0f32; w.len()];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = w[r * cols + c];
        }
    }
    t
}

/// `x / sqrt(mean(x²) + eps) · weight` over the last axis of `x: [n, d]`.
fn rms_norm(b: &mut GraphBuilder, x: &Value, name: &str, weight: Vec<f32>, eps: f32) -> Value {
    let mut mean_dims = x.dims.clone();
    let d = mean_dims.pop().unwrap_or(1);
    mean_dims.push(1);
    let sq = b.binary("Mul", x, x);
    let last_axis = x.dims.len() as i64 - 1;
    let mean =
        b.op("ReduceMean", &[&sq], vec![attribute("axes", vec![last_axis]), attribute("keepdims", 1i64)], &mean_dims);
    let eps = b.constant(&format!("{name}.eps"), vec![eps], &[1]);
    let var = b.binary("Add", &mean, &eps);
    let rms = b.unary("Sqrt", &var);
    let normed = b.binary("Div", x, &rms);
    let w = b.constant(&format!("{name}.weight"), weight, &[d]);
    b.binary("Mul", &normed, &w)
}

/// Softmax over the last axis, from ReduceMax, Sub, Exp, ReduceSum and Div: wonnx's Softmax
/// shader starts its maximum at `log(0)`, which WGSL leaves undefined (SwiftShader's WebGPU
/// gives NaN logits with it).
fn softmax_last_axis(b: &mut GraphBuilder, x: &Value) -> Value {
    let last = x.dims.len() as i64 - 1;
    let mut reduced = x.dims.clone();
    reduced[last as usize] = 1;
    let keep = || attribute("keepdims", 1i64);
    let max = b.op("ReduceMax", &[x], vec![attribute("axes", vec![last]), keep()], &reduced);
    let shifted = b.binary("Sub", x, &max);
    let e = b.unary("Exp", &shifted);
    // ReduceSum takes its axes as an input from opset 13 on.
    let axes = b.int64_constant("softmax.axes", vec![last], &[1]);
    let sum = b.op("ReduceSum", &[&e, &axes], vec![keep()], &reduced);
    b.binary("Div", &e, &sum)
}

/// `(a, b)·R = (−b, a)`.
const PAIR_ROTATION: [f32; 4] = [0.0, 1.0, -1.0, 0.0];

/// Rotate `x: [tokens, heads, head_dim]` by the tokens' `cos`/`sin` rows
/// (`[tokens, 1, head_dim]`, each angle repeated for both members of its pair).
fn rope(b: &mut GraphBuilder, x: &Value, rot: &Value, cos: &Value, sin: &Value) -> Value {
    let pairs = b.reshape(x, &[x.dims.iter().product::<i64>() / 2, 2]);
    let rotated = b.matmul(&pairs, rot);
    let rotated = b.reshape(&rotated, &x.dims);
    let a = b.binary("Mul", x, cos);
    let c = b.binary("Mul", &rotated, sin);
    b.binary("Add", &a, &c)
}

fn layer_graph(cfg: &Config, w: &Weights<'_>, layers: &[usize], slots: &Slots) -> Result<ModelProto> {
    let (d, hd, h, kvh) = (cfg.n_embd as i64, cfg.head_dim as i64, cfg.n_head as i64, cfg.n_kv_head as i64);
    let (kv, t, past, all) = (kvh * hd, slots.batch as i64, slots.past as i64, slots.all() as i64);
    let mut b = GraphBuilder::default();
    let mut x = b.input("hidden", &[t, d]);
    let mask = b.input("mask", &[1, t, all]);
    let cos = b.input("cos", &[t, 1, hd]);
    let sin = b.input("sin", &[t, 1, hd]);
    let rot = b.constant("rope.rotation", PAIR_ROTATION.to_vec(), &[2, 2]);
    // Query head i attends with KV head i / group.
    let group = h / kvh;
    let kv_of_head = b.int64_constant("kv_of_head", (0..h).map(|i| i / group).collect(), &[h]);
    let scale = b.constant("attention.scale", vec![1.0 / (cfg.head_dim as f32).sqrt()], &[1]);
    let mut outputs = Vec::new();
    for &l in layers {
        let p = |t: &str| format!("blk.{l}.{t}.weight");
        let past_k = b.input(&format!("past_k.{l}"), &[past, kv]);
        let past_v = b.input(&format!("past_v.{l}"), &[past, kv]);
        b.set_prefix(&format!("l{l}."));

        let xn = rms_norm(&mut b, &x, "attn_norm", w.src.vector(&p("attn_norm"), cfg.n_embd)?, cfg.rms_eps);
        let wq = w.matmul_rhs(&mut b, &p("attn_q"), (h * hd) as usize, d as usize)?;
        let wk = w.matmul_rhs(&mut b, &p("attn_k"), kv as usize, d as usize)?;
        let wv = w.matmul_rhs(&mut b, &p("attn_v"), kv as usize, d as usize)?;
        let q = b.matmul(&xn, &wq);
        let k = b.matmul(&xn, &wk);
        let v = b.matmul(&xn, &wv);
        let q = b.reshape(&q, &[t, h, hd]);
        let q = rope(&mut b, &q, &rot, &cos, &sin);
        let q = b.transpose(&q, &[1, 0, 2]);
        let k = b.reshape(&k, &[t, kvh, hd]);
        let k = rope(&mut b, &k, &rot, &cos, &sin);
        let k = b.reshape(&k, &[t, kv]);

        // Past slots, then the batch's own keys and values.
        let keys = b.concat0(&past_k, &k);
        let keys = b.reshape(&keys, &[all, kvh, hd]);
        let keys_t = b.transpose(&keys, &[1, 2, 0]);
        let keys_t = b.op("Gather", &[&keys_t, &kv_of_head], vec![attribute("axis", 0i64)], &[h, hd, all]);
        let values = b.concat0(&past_v, &v);
        let values = b.reshape(&values, &[all, kvh, hd]);
        let values = b.transpose(&values, &[1, 0, 2]);
        let values = b.op("Gather", &[&values, &kv_of_head], vec![attribute("axis", 0i64)], &[h, all, hd]);
        let scores = b.matmul(&q, &keys_t);
        let scores = b.binary("Mul", &scores, &scale);
        let scores = b.binary("Add", &scores, &mask);
        let probs = softmax_last_axis(&mut b, &scores);
        let attn = b.matmul(&probs, &values);
        let attn = b.transpose(&attn, &[1, 0, 2]);
        let attn = b.reshape(&attn, &[t, h * hd]);
        let wo = w.matmul_rhs(&mut b, &p("attn_output"), d as usize, (h * hd) as usize)?;
        let attn = b.matmul(&attn, &wo);
        let x1 = b.binary("Add", &x, &attn);

        let xn = rms_norm(&mut b, &x1, "ffn_norm", w.src.vector(&p("ffn_norm"), cfg.n_embd)?, cfg.rms_eps);
        let wg = w.matmul_rhs(&mut b, &p("ffn_gate"), cfg.n_ff, d as usize)?;
        let wu = w.matmul_rhs(&mut b, &p("ffn_up"), cfg.n_ff, d as usize)?;
        let wd = w.matmul_rhs(&mut b, &p("ffn_down"), d as usize, cfg.n_ff)?;
        let gate = b.matmul(&xn, &wg);
        let up = b.matmul(&xn, &wu);
        let sig = b.unary("Sigmoid", &gate);
        let silu = b.binary("Mul", &gate, &sig);
        let act = b.binary("Mul", &silu, &up);
        let down = b.matmul(&act, &wd);
        x = b.binary("Add", &x1, &down);
        outputs.push((k, format!("k.{l}")));
        outputs.push((v, format!("v.{l}")));
    }
    b.output(&x, "hidden_out");
    for (v, name) in outputs {
        b.output(&v, &name);
    }
    Ok(b.finish(&format!("decoder layers {layers:?}")))
}
