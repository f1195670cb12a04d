//! Model backends behind one enum, and loading a whole model (weights, tokenizer, template)
//! from GGUF bytes.

pub mod file;
pub mod gemma3;
pub mod hparams;
pub mod kv_cache;
pub mod transformer;

use std::collections::BTreeMap;
use std::io::Cursor;

use candle_core::quantized::gguf_file::Content;
use candle_core::quantized::{ggml_file, GgmlDType, QMatMul, QTensor};
use candle_core::{Device, Tensor};
use candle_transformers::models::quantized_llama;
use serde::{Deserialize, Serialize};

use crate::bail;
use crate::error::{Error, ErrorCode, Result};
use crate::gguf::{self, Gguf};
use crate::matmul::QMatrix;
use crate::template::ChatTemplate;
use crate::timing::{Clock, LoadTimings};
use crate::tokenizer::Tokenizer;
use file::{FileBytes, ModelFile};
use gemma3::Gemma3;
use hparams::{Family, HParams};
use kv_cache::KvCache;
use transformer::Transformer;

/// candle's llama builds its rotary table for this many positions; we cannot serve more.
const LLAMA_MAX_POSITIONS: usize = quantized_llama::MAX_SEQ_LEN;
/// The context served when neither the caller nor the file says otherwise, and the cap on what
/// a file may ask for by default: KV cache and rotary tables grow with it, and a browser tab
/// has little memory to spare.
pub const DEFAULT_MAX_CONTEXT: usize = 4096;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoadOptions {
    /// Context window to serve (tokens). Default: the model's, capped at 4,096.
    pub context_length: Option<usize>,
    /// Chat template preset to use instead of the file's own ("auto" = the file's or a guess).
    pub template: Option<String>,
    /// Refuse models whose estimated memory exceeds this. Default: what wasm32 can still
    /// address (4 GiB less what is in use); natively, no limit.
    pub max_memory_bytes: Option<u64>,
    /// Which implementation runs the model: `edgellm` (default: our forward pass, weights
    /// used in place, batched prefill, threads when available) or `candle` (candle's model
    /// code: the reference the fast path is tested against).
    pub backend: Option<BackendKind>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    #[default]
    Edgellm,
    Candle,
}

/// What a loaded model is, for display and for the caller's decisions.
#[derive(Debug, Clone, Serialize)]
pub struct ModelInfo {
    pub architecture: String,
    pub name: String,
    pub file_bytes: usize,
    pub gguf_version: u32,
    pub parameters: u64,
    /// As llama.cpp names the file's type ("Q4_K_M"), or its main tensor type.
    pub quantization: String,
    /// Tensor count per ggml type, e.g. {"Q4_1": 210, "F32": 61}.
    pub tensor_types: BTreeMap<String, usize>,
    /// The context served, and the one the model was trained for.
    pub context_length: usize,
    pub trained_context_length: usize,
    pub vocab_size: usize,
    pub tokenizer: crate::tokenizer::TokenizerKind,
    pub chat_template: String,
    pub bos_token: String,
    pub eos_token: String,
    pub estimated_memory_bytes: u64,
    pub backend: BackendKind,
}

/// Reads tensors out of the file's bytes on demand, with errors that name the tensor.
pub struct TensorSource<'a> {
    content: &'a Content,
    bytes: &'a [u8],
}

impl<'a> TensorSource<'a> {
    pub fn new(gguf: &'a Gguf, bytes: &'a [u8]) -> Self {
        Self { content: &gguf.content, bytes }
    }

    /// A tensor as `rows × cols` f32 values, row-major (a vector is one row): for exporters.
    pub fn dequantized(&self, name: &str) -> Result<(Vec<f32>, usize, usize)> {
        let m = self.matrix(name)?;
        let mut out = vec![0f32; m.rows * m.cols];
        for (r, row) in out.chunks_exact_mut(m.cols).enumerate() {
            m.dequantize_row(self.bytes, r, row);
        }
        Ok((out, m.rows, m.cols))
    }

    fn info(&self, name: &str) -> Result<&candle_core::quantized::gguf_file::TensorInfo> {
        match self.content.tensor_infos.get(name) {
            Some(info) => Ok(info),
            None => bail!(InvalidGguf, "the GGUF has no tensor '{name}', which this architecture needs"),
        }
    }

    /// A matrix (or a vector, as one row) used in place by our backend.
    pub fn matrix(&self, name: &str) -> Result<QMatrix> {
        let info = self.info(name)?;
        let (rows, cols) = match info.shape.dims() {
            [cols] => (1, *cols),
            [rows, cols] => (*rows, *cols),
            dims => bail!(InvalidGguf, "tensor '{name}' has shape {dims:?}; a matrix or vector was expected"),
        };
        let offset = self.content.tensor_data_offset as usize + info.offset as usize;
        QMatrix::new(name, info.ggml_dtype, rows, cols, offset, self.bytes.len())
    }

    /// A matrix of exactly `rows × cols`.
    pub fn matrix_of(&self, name: &str, rows: usize, cols: usize) -> Result<QMatrix> {
        let m = self.matrix(name)?;
        if (m.rows, m.cols) != (rows, cols) {
            bail!(InvalidGguf, "tensor '{name}' is {}×{}; this model's metadata implies {rows}×{cols}", m.rows, m.cols);
        }
        Ok(m)
    }

    /// A vector of `len` values, expanded to f32 (norm weights).
    pub fn vector(&self, name: &str, len: usize) -> Result<Vec<f32>> {
        let mut v = vec![0f32; len];
        self.matrix_of(name, 1, len)?.dequantize_row(self.bytes, 0, &mut v);
        Ok(v)
    }

    pub fn qtensor(&self, name: &str) -> Result<QTensor> {
        self.info(name)?;
        self.content
            .tensor(&mut Cursor::new(self.bytes), name, &Device::Cpu)
            .map_err(|e| Error::new(ErrorCode::InvalidGguf, format!("tensor '{name}': {e}")))
    }

    pub fn qmatmul(&self, name: &str) -> Result<QMatMul> {
        Ok(QMatMul::from_qtensor(self.qtensor(name)?)?)
    }

    /// An embedding table kept in its quantized form.
    pub fn embedding(&self, name: &str) -> Result<QuantizedEmbedding> {
        let info = &self.content.tensor_infos[name];
        let (rows, dim) = info
            .shape
            .dims2()
            .map_err(|_| Error::new(ErrorCode::InvalidGguf, format!("embedding '{name}' is not two-dimensional")))?;
        let dtype = info.ggml_dtype;
        let row_bytes = dim / dtype.block_size() * dtype.type_size();
        let start = (self.content.tensor_data_offset + info.offset) as usize;
        let raw = self.bytes[start..start + rows * row_bytes].to_vec();
        Ok(QuantizedEmbedding { raw, dtype, rows, dim, row_bytes })
    }
}

/// An embedding table that stays quantized; rows are expanded to f32 when looked up. A
/// 262k-token vocabulary expanded whole would take 671 MB of a tab's memory.
pub struct QuantizedEmbedding {
    raw: Vec<u8>,
    dtype: GgmlDType,
    rows: usize,
    dim: usize,
    row_bytes: usize,
}

impl QuantizedEmbedding {
    /// `(tokens.len(), dim)` f32 rows.
    pub fn forward(&self, tokens: &[u32]) -> Result<Tensor> {
        let mut rows = Vec::with_capacity(tokens.len());
        for &t in tokens {
            let t = t as usize;
            if t >= self.rows {
                bail!(InvalidRequest, "token id {t} is outside the embedding table of {} rows", self.rows);
            }
            let bytes = &self.raw[t * self.row_bytes..(t + 1) * self.row_bytes];
            let row = ggml_file::qtensor_from_ggml(self.dtype, bytes, vec![self.dim], &Device::Cpu)?;
            rows.push(row.dequantize(&Device::Cpu)?);
        }
        Ok(Tensor::stack(&rows, 0)?)
    }
}

enum Backend {
    /// Our forward pass over the file's bytes, which it keeps.
    Edgellm {
        model: Transformer,
        file: FileBytes,
    },
    CandleLlama(quantized_llama::ModelWeights),
    CandleGemma3(Gemma3),
}

/// Rough resident size of the loaded model: the file (the default backend keeps it and reads
/// the weights in place; candle copies the quantized weights out of it), plus what the backend
/// expands to f32, plus the KV cache for `ctx` positions.
fn estimate_memory(g: &Gguf, hp: &HParams, ctx: usize, backend: BackendKind, file_bytes: u64) -> u64 {
    let embd_f32 = match (backend, hp.family, g.content.tensor_infos.get("token_embd.weight")) {
        // candle's llama expands the embedding table to f32.
        (BackendKind::Candle, Family::Llama, Some(info)) => info.shape.elem_count() as u64 * 4,
        _ => 0,
    };
    // candle's caches are f32.
    let (weights, kv_per_position) = match backend {
        BackendKind::Edgellm => (file_bytes, KvCache::bytes_per_position(hp.n_kv_head, hp.head_dim)),
        BackendKind::Candle => (g.total_tensor_bytes(), 2 * hp.kv_dim() * 4),
    };
    let kv_cache = (ctx as u64).saturating_mul(hp.n_layer as u64).saturating_mul(kv_per_position as u64);
    weights.saturating_add(embd_f32).saturating_add(kv_cache)
}

fn memory_limit(opts: &LoadOptions) -> Option<u64> {
    if opts.max_memory_bytes.is_some() {
        return opts.max_memory_bytes;
    }
    #[cfg(target_arch = "wasm32")]
    {
        let in_use = core::arch::wasm32::memory_size(0) as u64 * 65536;
        Some((4u64 << 30).saturating_sub(in_use))
    }
    #[cfg(not(target_arch = "wasm32"))]
    None
}

fn mib(bytes: u64) -> u64 {
    bytes >> 20
}

/// What a GGUF file is and what loading it takes, from its metadata and tensor table alone.
struct Plan {
    hp: HParams,
    /// The context to serve.
    ctx: usize,
    backend: BackendKind,
    file_bytes: u64,
    estimated: u64,
    memory_limit: Option<u64>,
    /// Why it cannot be loaded here (too large), when it cannot.
    refusal: Option<Error>,
}

impl Plan {
    fn read(g: &Gguf, file_bytes: u64, opts: &LoadOptions) -> Result<Self> {
        let backend = opts.backend.unwrap_or_default();
        let hp = HParams::read(&g.content)?;
        if backend == BackendKind::Candle && !matches!(hp.family, Family::Llama | Family::Gemma3) {
            bail!(
                UnsupportedArchitecture,
                "the candle backend (the reference for tests) runs llama and gemma3; '{}' runs on the default backend",
                hp.architecture
            );
        }
        let trained_ctx = hp.trained_context;
        let max_positions =
            if hp.family == Family::Llama && backend == BackendKind::Candle { LLAMA_MAX_POSITIONS } else { usize::MAX };
        let ctx = match opts.context_length {
            Some(0) => bail!(InvalidRequest, "context_length must be at least 1"),
            Some(c) if c > trained_ctx.min(max_positions) => bail!(
                InvalidRequest,
                "context_length {c} exceeds what this model supports ({})",
                trained_ctx.min(max_positions)
            ),
            Some(c) => c,
            None => trained_ctx.min(DEFAULT_MAX_CONTEXT),
        };
        let estimated = estimate_memory(g, &hp, ctx, backend, file_bytes);
        let memory_limit = memory_limit(opts);
        let refusal = memory_limit.filter(|&limit| estimated > limit).map(|limit| {
            Error::new(
                ErrorCode::TooLarge,
                format!(
                    "this model needs about {} MiB of memory but only {} MiB are available{}",
                    mib(estimated),
                    mib(limit),
                    if cfg!(target_arch = "wasm32") { " (WebAssembly can address 4 GiB)" } else { "" }
                ),
            )
        });
        Ok(Self { hp, ctx, backend, file_bytes, estimated, memory_limit, refusal })
    }

    fn info(&self, g: &Gguf, tokenizer: &Tokenizer, template: &ChatTemplate) -> ModelInfo {
        let mut tensor_types = BTreeMap::new();
        let mut parameters = 0u64;
        for info in g.content.tensor_infos.values() {
            *tensor_types.entry(format!("{:?}", info.ggml_dtype)).or_insert(0) += 1;
            parameters += info.shape.elem_count() as u64;
        }
        let md = g.metadata();
        ModelInfo {
            architecture: self.hp.architecture.clone(),
            name: md.opt_string("general.name").ok().flatten().unwrap_or("unnamed").to_string(),
            file_bytes: self.file_bytes as usize,
            gguf_version: g.version,
            parameters,
            quantization: quantization_name(g),
            tensor_types,
            context_length: self.ctx,
            trained_context_length: self.hp.trained_context,
            vocab_size: tokenizer.vocab_size(),
            tokenizer: tokenizer.kind,
            chat_template: template.name.clone(),
            bos_token: tokenizer.token_text(tokenizer.bos),
            eos_token: tokenizer.token_text(tokenizer.eos),
            estimated_memory_bytes: self.estimated,
            backend: self.backend,
        }
    }
}

/// What [`inspect`] learns of a file before it is loaded.
#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    pub info: ModelInfo,
    /// The memory this runtime can give a model (none natively).
    pub memory_limit_bytes: Option<u64>,
    /// Why loading would be refused (`too_large`), if it would be.
    pub refusal: Option<Refusal>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Refusal {
    pub code: &'static str,
    pub message: String,
}

/// Describe a GGUF model from the first bytes of its file (`file_len` bytes in all) — the
/// header, metadata and tensor table, a few MB — without its weights: what it is, what it needs,
/// whether it fits. A prefix that ends inside the metadata or the tensor table is an
/// `invalid_gguf` error saying "truncated" (read more and try again). Other errors are those
/// loading would give: an unknown architecture, pre-tokenizer or template, a bad file.
pub fn inspect(prefix: &[u8], file_len: u64, opts: &LoadOptions) -> Result<Inspection> {
    let g = gguf::parse_prefix(prefix, file_len)?;
    let plan = Plan::read(&g, file_len, opts)?;
    let tokenizer = Tokenizer::from_gguf(g.metadata())?;
    let template = ChatTemplate::for_model(opts.template.as_deref(), g.metadata(), &tokenizer)?;
    Ok(Inspection {
        info: plan.info(&g, &tokenizer, &template),
        memory_limit_bytes: plan.memory_limit,
        refusal: plan.refusal.map(|e| Refusal { code: e.code.as_str(), message: e.message }),
    })
}

/// The file's quantization as llama.cpp names it (`general.file_type`, e.g. "Q4_K_M"), else the
/// type most of its tensor bytes have.
fn quantization_name(g: &Gguf) -> String {
    const FILE_TYPES: &[(u64, &str)] = &[
        (0, "F32"),
        (1, "F16"),
        (2, "Q4_0"),
        (3, "Q4_1"),
        (7, "Q8_0"),
        (8, "Q5_0"),
        (9, "Q5_1"),
        (10, "Q2_K"),
        (11, "Q3_K_S"),
        (12, "Q3_K_M"),
        (13, "Q3_K_L"),
        (14, "Q4_K_S"),
        (15, "Q4_K_M"),
        (16, "Q5_K_S"),
        (17, "Q5_K_M"),
        (18, "Q6_K"),
        (32, "BF16"),
    ];
    if let Ok(Some(ft)) = g.metadata().opt_uint("general.file_type") {
        if let Some((_, name)) = FILE_TYPES.iter().find(|(id, _)| *id == ft) {
            return name.to_string();
        }
    }
    let mut bytes_by_type: BTreeMap<String, u64> = BTreeMap::new();
    for (name, info) in &g.content.tensor_infos {
        *bytes_by_type.entry(format!("{:?}", info.ggml_dtype)).or_default() +=
            g.tensor_bytes.get(name).copied().unwrap_or(0);
    }
    bytes_by_type.into_iter().max_by_key(|(_, b)| *b).map(|(t, _)| t).unwrap_or_default()
}

pub struct Model {
    backend: Backend,
    /// The tokens at positions `0..` of the backend's KV cache: a new sequence that starts
    /// with some of them continues from there instead of running them again. Kept equal to
    /// what the cache really holds (see `forward`).
    kv_tokens: Vec<u32>,
    pub tokenizer: Tokenizer,
    pub template: ChatTemplate,
    pub info: ModelInfo,
    pub load_timings: LoadTimings,
    pub clock: Clock,
}

impl Model {
    /// Load from the whole GGUF file. Pass a `Vec` to hand the bytes over: the default backend
    /// keeps them and reads the weights in place (a slice is copied once).
    pub fn load(bytes: impl Into<Vec<u8>>, opts: &LoadOptions, clock: Clock) -> Result<Self> {
        Self::load_file(ModelFile::Whole(bytes.into()), opts, clock)
    }

    /// Load from a GGUF file whole or split after its header (see [`file`]): split, the header
    /// is dropped once the model is built, and only the tensor data stays.
    pub fn load_file(file: ModelFile, opts: &LoadOptions, clock: Clock) -> Result<Self> {
        let t0 = clock();
        let file_len = file.len();
        // `bytes` is what the model keeps: the whole file, or its tensor data alone.
        let (head, bytes) = match file {
            ModelFile::Whole(bytes) => (None, bytes),
            ModelFile::Split { head, tensors } => (Some(head), tensors),
        };
        let backend_kind = opts.backend.unwrap_or_default();
        let mut g = gguf::parse_prefix(head.as_deref().unwrap_or(&bytes), file_len as u64)?;
        if let Some(head) = &head {
            if g.content.tensor_data_offset != head.len() as u64 {
                bail!(
                    InvalidRequest,
                    "the header given is {} bytes, but the file's tensor data begins at {}",
                    head.len(),
                    g.content.tensor_data_offset
                );
            }
            // The tensors' offsets are into the bytes kept, which begin with the tensor data.
            g.content.tensor_data_offset = 0;
        }
        let plan = Plan::read(&g, file_len as u64, opts)?;
        if let Some(refusal) = plan.refusal {
            return Err(refusal);
        }
        let t_parse = clock();
        let tokenizer = Tokenizer::from_gguf(g.metadata())?;
        let template = ChatTemplate::for_model(opts.template.as_deref(), g.metadata(), &tokenizer)?;
        let t_tok = clock();
        let info = plan.info(&g, &tokenizer, &template);
        let (hp, ctx) = (plan.hp, plan.ctx);

        let backend = match (backend_kind, hp.family) {
            (BackendKind::Edgellm, _) => {
                let model = Transformer::load(&TensorSource { content: &g.content, bytes: &bytes }, &hp, ctx)?;
                let (embedding_rows, output_rows) = model.vocab_rows();
                if embedding_rows.min(output_rows) < tokenizer.vocab_size() {
                    bail!(
                        InvalidGguf,
                        "the embedding table has {embedding_rows} rows and the output layer {output_rows}, but the vocabulary has {} tokens",
                        tokenizer.vocab_size()
                    );
                }
                Backend::Edgellm { model, file: FileBytes::new(bytes) }
            }
            (BackendKind::Candle, Family::Llama) => {
                let content = g.content;
                let weights = quantized_llama::ModelWeights::from_gguf(content, &mut Cursor::new(&bytes), &Device::Cpu)
                    .map_err(|e| Error::new(ErrorCode::InvalidGguf, format!("loading the llama weights: {e}")))?;
                Backend::CandleLlama(weights)
            }
            (BackendKind::Candle, _) => {
                let src = TensorSource { content: &g.content, bytes: &bytes };
                Backend::CandleGemma3(Gemma3::load(&hp, &src, ctx)?)
            }
        };
        let t_weights = clock();

        Ok(Self {
            backend,
            kv_tokens: Vec::new(),
            tokenizer,
            template,
            info,
            load_timings: LoadTimings {
                parse_ms: t_parse - t0,
                tokenizer_ms: t_tok - t_parse,
                weights_ms: t_weights - t_tok,
                total_ms: t_weights - t0,
            },
            clock,
        })
    }

    pub fn context_length(&self) -> usize {
        self.info.context_length
    }

    /// Make room for a sequence of `positions` tokens up front (capped at the context).
    pub fn reserve_positions(&mut self, positions: usize) {
        if let Backend::Edgellm { model, .. } = &mut self.backend {
            model.reserve_kv(positions.min(self.info.context_length));
        }
    }

    /// The tokens a new sequence may keep from the KV cache (a prefix of them): ours. candle's
    /// caches can only be appended to or dropped, so its backends report none.
    pub fn cached_tokens(&self) -> &[u32] {
        match self.backend {
            Backend::Edgellm { .. } => &self.kv_tokens,
            Backend::CandleLlama(_) | Backend::CandleGemma3(_) => &[],
        }
    }

    /// Forget the KV cache's contents: the next generation runs its whole prompt (benchmarks
    /// of a cold prefill). The memory stays reserved.
    pub fn clear_cache(&mut self) {
        self.kv_tokens.clear();
    }

    /// Run `tokens` at positions `pos..` and return the logits of the last one. The cache keeps
    /// the positions before `pos` (at most [`Model::cached_tokens`]' length on our backend,
    /// exactly that many or 0 on candle's) and replaces the rest; `pos == 0` starts a new
    /// sequence.
    pub fn forward(&mut self, tokens: &[u32], pos: usize) -> Result<Vec<f32>> {
        if tokens.is_empty() {
            bail!(InvalidRequest, "nothing to run: the token list is empty");
        }
        if pos + tokens.len() > self.context_length() {
            bail!(
                ContextOverflow,
                "positions {pos}..{} exceed the context of {} tokens",
                pos + tokens.len(),
                self.context_length()
            );
        }
        if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= self.info.vocab_size) {
            bail!(InvalidRequest, "token id {bad} is outside the vocabulary of {}", self.info.vocab_size);
        }
        let cached = self.kv_tokens.len();
        let appends_only = !matches!(self.backend, Backend::Edgellm { .. });
        if pos > cached || (appends_only && pos != 0 && pos != cached) {
            bail!(
                InvalidRequest,
                "position {pos} does not continue the cached sequence of {cached} tokens{}",
                if appends_only { " (the candle backend can only continue it or start again at 0)" } else { "" }
            );
        }
        // Until the pass has run, the cache holds only the positions before `pos` for sure.
        self.kv_tokens.truncate(pos);
        match self.run(tokens, pos) {
            Ok(logits) => {
                self.kv_tokens.extend_from_slice(tokens);
                Ok(logits)
            }
            Err(e) => {
                // candle may have appended some layers' keys before failing: only a new
                // sequence is safe now.
                self.kv_tokens.clear();
                Err(e)
            }
        }
    }

    /// The next-token logits after each prefix of `tokens` (teacher forcing): `tokens.len()`
    /// rows of the vocabulary's size, one after another. Runs a new sequence token by token
    /// (the decode path), for comparing with another implementation position by position.
    pub fn logits_each(&mut self, tokens: &[u32]) -> Result<Vec<f32>> {
        let mut out = Vec::with_capacity(tokens.len() * self.info.vocab_size);
        for (pos, token) in tokens.iter().enumerate() {
            out.extend_from_slice(&self.forward(std::slice::from_ref(token), pos)?[..self.info.vocab_size]);
        }
        Ok(out)
    }

    fn run(&mut self, tokens: &[u32], pos: usize) -> Result<Vec<f32>> {
        let logits = match &mut self.backend {
            Backend::Edgellm { model, file } => {
                // The whole pass runs on one of rayon's threads, so each matmul's split is taken
                // up by pool threads that are still spinning from the last one; called from
                // outside the pool, every one of the ~240 splits per token would have to wake
                // sleeping threads (in wasm a futex round trip through the browser per split).
                let file = file.as_slice();
                return Ok(rayon::scope(|_| model.forward(file, tokens, pos).to_vec()));
            }
            Backend::CandleLlama(m) => {
                let input = Tensor::new(tokens, &Device::Cpu)?.unsqueeze(0)?;
                m.forward(&input, pos)?.squeeze(0)?
            }
            Backend::CandleGemma3(m) => {
                if pos == 0 {
                    m.clear_kv_cache();
                }
                m.forward(tokens, pos)?
            }
        };
        Ok(logits.to_dtype(candle_core::DType::F32)?.to_vec1()?)
    }
}
