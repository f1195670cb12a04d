//! One reading of a model's hyperparameters from its GGUF, as llama.cpp's `llm_load_hparams`
//! does it: the keys, their defaults, and what each architecture changes. Every backend, the
//! memory estimate and the ONNX exporter take their numbers from here.
//!
//! The families we run differ only in data on [`HParams`] — which norms and biases a layer has,
//! how its attention weights are stored, how positions rotate, whether the output layer is the
//! embedding table — so one forward pass serves them all.

use candle_core::quantized::gguf_file::Content;

use crate::bail;
use crate::error::Result;
use crate::gguf::Metadata;

/// `general.architecture` values we run. Mistral and Llama 3 GGUFs are `llama`.
pub const ARCHITECTURES: &[&str] = &["llama", "qwen2", "qwen3", "phi3", "gemma3"];

/// llama.cpp's defaults where a key is optional.
const DEFAULT_ROPE_BASE: f32 = 10_000.0;
const DEFAULT_CONTEXT: usize = 2048;
const GEMMA3_DEFAULT_SLIDING_WINDOW_PATTERN: usize = 6;
const GEMMA3_DEFAULT_ROPE_BASE: f32 = 1_000_000.0;
const GEMMA3_DEFAULT_ROPE_BASE_LOCAL: f32 = 10_000.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Llama,
    Qwen2,
    Qwen3,
    Phi3,
    Gemma3,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    Silu,
    GeluTanh,
}

/// How a head's dimensions pair up for rotation (llama.cpp's rope types).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeKind {
    /// `(2i, 2i + 1)`: llama.cpp's LLAMA_ROPE_TYPE_NORM (its converter permutes Llama's Q and K).
    Interleaved,
    /// `(i, i + d/2)`: LLAMA_ROPE_TYPE_NEOX (Qwen, Phi-3, Gemma).
    Neox,
}

/// Per-frequency divisors of the rotary angles, stored as tensors: Llama 3.1+'s `rope_freqs`,
/// Phi-3's LongRoPE pair (llama.cpp takes the long one when the context served exceeds the
/// original training context).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RopeFactors {
    None,
    Tensor(String),
    ShortLong { short: String, long: String },
}

#[derive(Debug, Clone)]
pub struct Rope {
    pub kind: RopeKind,
    /// Rotated dimensions of each head (`rope.dimension_count`).
    pub dims: usize,
    pub base: f32,
    /// Gemma 3's sliding-window layers rotate with their own base.
    pub base_local: f32,
    /// Multiplies every angle: `1 / rope.scaling.factor` for linear scaling.
    pub freq_scale: f32,
    /// Multiplies cos and sin (llama.cpp's `attn_factor`, LongRoPE's magnitude correction).
    pub attn_factor: f32,
    pub factors: RopeFactors,
    /// `rope.scaling.original_context_length` (default: the trained context).
    pub original_context: usize,
}

/// How a layer's attention projections are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QkvLayout {
    /// `attn_q`, `attn_k`, `attn_v`.
    Separate,
    /// Phi-3's `attn_qkv`: rows of Q, then K, then V.
    Fused,
}

/// How a layer's gated MLP input projections are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GateUpLayout {
    /// `ffn_gate` and `ffn_up`.
    Separate,
    /// Phi-3's `ffn_up` of `2·n_ff` rows: the gate's, then the up projection's.
    Fused,
}

#[derive(Debug, Clone)]
pub struct HParams {
    pub architecture: String,
    pub family: Family,
    pub n_layer: usize,
    pub n_embd: usize,
    pub n_head: usize,
    pub n_kv_head: usize,
    /// Size of each query/key/value head (`attention.key_length`; Qwen3's is not n_embd/n_head).
    pub head_dim: usize,
    pub n_ff: usize,
    /// The context the model was trained for (`context_length`).
    pub trained_context: usize,
    pub rms_eps: f32,
    pub rope: Rope,
    pub activation: Activation,
    /// The embeddings are multiplied by this (Gemma: √n_embd).
    pub embed_scale: f32,
    pub qkv: QkvLayout,
    pub gate_up: GateUpLayout,
    /// Qwen 2: `attn_q/k/v.bias`.
    pub qkv_bias: bool,
    /// Qwen 3, Gemma 3: RMSNorm of each query and key head before rotation.
    pub qk_norm: bool,
    /// Gemma 3: RMSNorm of the attention and MLP outputs before each residual add.
    pub post_norms: bool,
    /// Gemma 3: `(window, pattern)` — layer i is local (sees `window` positions back) unless
    /// `(i + 1) % pattern == 0`.
    pub sliding_window: Option<(usize, usize)>,
    /// No `output.weight`: the embedding table is the output layer too.
    pub tied_output: bool,
}

impl HParams {
    pub fn q_dim(&self) -> usize {
        self.n_head * self.head_dim
    }

    pub fn kv_dim(&self) -> usize {
        self.n_kv_head * self.head_dim
    }

    /// Whether layer `i` attends through a sliding window (and rotates with the local base).
    pub fn is_local_layer(&self, i: usize) -> bool {
        self.sliding_window.is_some_and(|(_, pattern)| (i + 1) % pattern != 0)
    }

    pub fn output_tensor(&self) -> &'static str {
        if self.tied_output {
            "token_embd.weight"
        } else {
            "output.weight"
        }
    }

    /// The rotary factors tensor to use when serving `context` positions, if any.
    pub fn rope_factors_tensor(&self, context: usize) -> Option<&str> {
        match &self.rope.factors {
            RopeFactors::None => None,
            RopeFactors::Tensor(name) => Some(name),
            RopeFactors::ShortLong { short, long } => {
                Some(if context > self.rope.original_context { long } else { short })
            }
        }
    }

    /// Read from the file's metadata (and which tensors it has: tied output, rotary factors).
    pub fn read(content: &Content) -> Result<Self> {
        let md = Metadata::of_values(&content.metadata);
        let arch = md.string("general.architecture")?.to_string();
        let family = match arch.as_str() {
            "llama" => Family::Llama,
            "qwen2" => Family::Qwen2,
            "qwen3" => Family::Qwen3,
            "phi3" => Family::Phi3,
            "gemma3" => Family::Gemma3,
            other => bail!(
                UnsupportedArchitecture,
                "architecture '{other}' is not supported; edgellm runs {} (Llama 2/3, TinyLlama, SmolLM2, Mistral, Qwen 2.5/3, Phi-3, Gemma 3)",
                ARCHITECTURES.join(", ")
            ),
        };
        let key = |k: &str| format!("{arch}.{k}");
        let uint = |k: &str| -> Result<usize> { Ok(md.uint(&key(k))? as usize) };
        let opt_uint = |k: &str| -> Result<Option<usize>> { Ok(md.opt_uint(&key(k))?.map(|v| v as usize)) };
        let float = |k: &str| -> Result<Option<f32>> {
            match md.get(&key(k)) {
                None => Ok(None),
                Some(v) => v.to_f32().map(Some).map_err(|_| {
                    crate::error::Error::new(
                        crate::error::ErrorCode::MissingMetadata,
                        format!("GGUF metadata '{}' should be a number", key(k)),
                    )
                }),
            }
        };
        let has = |name: &str| content.tensor_infos.contains_key(name);

        let n_embd = uint("embedding_length")?;
        let n_head = uint("attention.head_count")?;
        let n_kv_head = opt_uint("attention.head_count_kv")?.unwrap_or(n_head);
        if n_head == 0 || n_kv_head == 0 || n_head % n_kv_head != 0 {
            bail!(MissingMetadata, "{arch}: {n_head} attention heads cannot share {n_kv_head} KV heads");
        }
        let head_dim = opt_uint("attention.key_length")?.unwrap_or(n_embd / n_head);
        let value_dim = opt_uint("attention.value_length")?.unwrap_or(head_dim);
        if head_dim == 0 || head_dim % 2 != 0 || value_dim != head_dim {
            bail!(
                UnsupportedArchitecture,
                "{arch}: heads of {head_dim} (keys) and {value_dim} (values); edgellm needs equal, even sizes"
            );
        }
        let gemma = family == Family::Gemma3;
        let rope_dims = opt_uint("rope.dimension_count")?.unwrap_or(head_dim);
        if rope_dims != head_dim {
            bail!(
                UnsupportedArchitecture,
                "{arch}: partial rotary embeddings ({rope_dims} of {head_dim}) are not supported"
            );
        }
        let trained_context = opt_uint("context_length")?.unwrap_or(DEFAULT_CONTEXT);

        // Rope scaling: llama.cpp reads `rope.scaling.type` (none, linear, yarn, longrope) and
        // `rope.scaling.factor`; YaRN changes the angles in a way we do not compute.
        let scaling = md.opt_string(&key("rope.scaling.type"))?.unwrap_or("none");
        let factor = float("rope.scaling.factor")?.or(float("rope.scale_linear")?).unwrap_or(0.0);
        let freq_scale = match scaling {
            "none" | "longrope" => 1.0,
            "linear" => {
                if factor > 0.0 {
                    1.0 / factor
                } else {
                    1.0
                }
            }
            other => bail!(UnsupportedArchitecture, "{arch}: rope scaling '{other}' is not supported"),
        };
        let factors = if has("rope_freqs.weight") {
            RopeFactors::Tensor("rope_freqs.weight".into())
        } else if has("rope_factors_long.weight") && has("rope_factors_short.weight") {
            RopeFactors::ShortLong {
                short: "rope_factors_short.weight".into(),
                long: "rope_factors_long.weight".into(),
            }
        } else {
            RopeFactors::None
        };
        let rope = Rope {
            kind: if family == Family::Llama { RopeKind::Interleaved } else { RopeKind::Neox },
            dims: rope_dims,
            base: float("rope.freq_base")?.unwrap_or(if gemma { GEMMA3_DEFAULT_ROPE_BASE } else { DEFAULT_ROPE_BASE }),
            base_local: float("rope.local_freq_base")?.unwrap_or(GEMMA3_DEFAULT_ROPE_BASE_LOCAL),
            freq_scale,
            attn_factor: float("rope.scaling.attn_factor")?.unwrap_or(1.0),
            factors,
            original_context: opt_uint("rope.scaling.original_context_length")?.unwrap_or(trained_context),
        };

        // Phi-3 files fuse Q, K and V (and gate and up) unless they name the parts.
        let fused = family == Family::Phi3 && !has("blk.0.attn_q.weight");
        let sliding_window = if gemma {
            let pattern =
                opt_uint("attention.sliding_window_pattern")?.unwrap_or(GEMMA3_DEFAULT_SLIDING_WINDOW_PATTERN);
            Some((uint("attention.sliding_window")?, pattern.max(1)))
        } else {
            // Phi-3 files name a sliding window, which llama.cpp ignores (its converters wrote
            // wrong values); so do we.
            None
        };
        Ok(Self {
            n_layer: uint("block_count")?,
            n_embd,
            n_head,
            n_kv_head,
            head_dim,
            n_ff: uint("feed_forward_length")?,
            trained_context,
            // llama.cpp requires this key for every family we run.
            rms_eps: match float("attention.layer_norm_rms_epsilon")? {
                Some(eps) => eps,
                None => {
                    bail!(MissingMetadata, "the GGUF metadata has no '{}'", key("attention.layer_norm_rms_epsilon"))
                }
            },
            rope,
            activation: if gemma { Activation::GeluTanh } else { Activation::Silu },
            embed_scale: if gemma { (n_embd as f32).sqrt() } else { 1.0 },
            qkv: if fused { QkvLayout::Fused } else { QkvLayout::Separate },
            gate_up: if family == Family::Phi3 && !has("blk.0.ffn_gate.weight") {
                GateUpLayout::Fused
            } else {
                GateUpLayout::Separate
            },
            qkv_bias: family == Family::Qwen2 || has("blk.0.attn_q.bias"),
            qk_norm: matches!(family, Family::Qwen3 | Family::Gemma3),
            post_norms: gemma,
            sliding_window,
            tied_output: !has("output.weight"),
            architecture: arch,
            family,
        })
    }
}
