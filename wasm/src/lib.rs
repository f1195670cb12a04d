//! The wasm-bindgen surface over the edgellm core: bytes in, a model handle out, one token per
//! call. Everything else (fetching, caching, workers, streaming as async iterators) is in
//! JavaScript under `www/engine/`.
//!
//! Every failure becomes a JavaScript `Error` with `name = "EdgeLLMError"` and a stable `code`
//! (see `edgellm::ErrorCode`), never a panic: a panic would kill the module and every model in it.
#![cfg(target_arch = "wasm32")]
// In wasm a panic kills the module and every model in it: what comes from outside must end in
// an Err with a code. test.sh runs clippy on the crates that ship to wasm with these denied.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

use edgellm::embed::{Embedder, DEFAULT_MAX_TOKENS};
use edgellm::generate::Session;
use edgellm::model::file::{ModelFile, ModelFileWriter};
use edgellm::rerank::CrossEncoder;
use edgellm::tokenizer::Tokenizer;
use edgellm::{ErrorCode, GenerateRequest, LoadOptions, Message, Model};
use serde::Serialize;
use wasm_bindgen::prelude::*;

#[wasm_bindgen]
extern "C" {
    /// `performance.now()`: present in windows, workers, Node and edge runtimes.
    #[wasm_bindgen(js_namespace = performance, js_name = now)]
    fn performance_now() -> f64;
}

/// The threaded build's `initThreadPool(n)`: starts `n` Web Workers sharing this module's
/// memory, on which the core's rayon work (matmul rows, attention heads) then runs.
#[cfg(feature = "threads")]
pub use wasm_bindgen_rayon::init_thread_pool;

/// How many threads the core computes on (1 in the single-threaded build).
#[wasm_bindgen(js_name = computeThreads)]
pub fn compute_threads() -> usize {
    edgellm::matmul::threads()
}

#[wasm_bindgen(start)]
pub fn start() {
    // Should a panic still happen, at least say where in the console.
    console_error_panic_hook::set_once();
}

fn js_error(code: ErrorCode, message: &str) -> JsValue {
    let err = js_sys::Error::new(message);
    err.set_name("EdgeLLMError");
    // Setting a property on a fresh Error object cannot fail.
    let _ = js_sys::Reflect::set(&err, &"code".into(), &code.as_str().into());
    err.into()
}

fn to_js(e: edgellm::Error) -> JsValue {
    js_error(e.code, &e.message)
}

fn to_value<T: Serialize>(value: &T) -> JsValue {
    // json_compatible: plain objects rather than `Map`s, so results can be posted and printed.
    value.serialize(&serde_wasm_bindgen::Serializer::json_compatible()).unwrap_or(JsValue::NULL)
}

fn from_value<T: serde::de::DeserializeOwned + Default>(value: JsValue, what: &str) -> Result<T, JsValue> {
    if value.is_undefined() || value.is_null() {
        return Ok(T::default());
    }
    serde_wasm_bindgen::from_value(value)
        .map_err(|e| js_error(ErrorCode::InvalidRequest, &format!("invalid {what}: {e}")))
}

/// A model file's bytes, written into wasm memory a piece at a time (a `File` or a fetch body
/// read as a stream, or bytes already in JS memory) and then handed to
/// [`WasmModel::from_model_bytes`]. Passed whole, a file is in JS memory and in wasm memory at
/// once while it loads, twice its size; written in pieces, it never is whole outside wasm
/// memory. The header goes into a buffer of its own, dropped once the model is built
/// (`edgellm::model::file`).
#[wasm_bindgen]
pub struct ModelBytes {
    writer: ModelFileWriter,
}

#[wasm_bindgen]
impl ModelBytes {
    /// Room for a file of `length` bytes (`too_large` when wasm memory cannot give it, as soon
    /// as the header says how much the tensor data needs).
    #[wasm_bindgen(constructor)]
    pub fn new(length: f64) -> Result<ModelBytes, JsValue> {
        let length = usize::try_from(byte_count(length, "the file's length")?).map_err(|_| {
            js_error(ErrorCode::TooLarge, &format!("WebAssembly memory cannot hold a file of {length} bytes"))
        })?;
        Ok(ModelBytes { writer: ModelFileWriter::new(length) })
    }

    /// Append `chunk`, the next bytes of the file; refused past the length given, and at the
    /// header for a file that is not a model edgellm reads.
    pub fn write(&mut self, chunk: &js_sys::Uint8Array) -> Result<(), JsValue> {
        let n = chunk.length() as usize;
        self.writer
            .write(n, |from, room| {
                chunk.subarray(from as u32, (from + room.len()) as u32).copy_to_uninit(room);
            })
            .map_err(to_js)
    }

    /// Bytes written so far.
    pub fn written(&self) -> f64 {
        self.writer.written() as f64
    }
}

/// A loaded model and its current generation, if any.
#[wasm_bindgen]
pub struct WasmModel {
    model: Model,
    session: Option<Session>,
}

impl WasmModel {
    /// What both constructors do once they have the file.
    fn load(file: ModelFile, options: JsValue) -> Result<WasmModel, JsValue> {
        let options: LoadOptions = from_value(options, "load options")?;
        let model = Model::load_file(file, &options, performance_now).map_err(to_js)?;
        Ok(WasmModel { model, session: None })
    }
}

#[wasm_bindgen]
impl WasmModel {
    /// Load a GGUF model from its bytes. `options`: `{ context_length?, template?, max_memory_bytes? }`.
    #[wasm_bindgen(constructor)]
    pub fn new(bytes: Vec<u8>, options: JsValue) -> Result<WasmModel, JsValue> {
        Self::load(ModelFile::Whole(bytes), options)
    }

    /// Load a GGUF model from the bytes written into `bytes` (all of them: a file cut short is
    /// refused), which it takes over. `options` as for the constructor.
    #[wasm_bindgen(js_name = fromModelBytes)]
    pub fn from_model_bytes(bytes: ModelBytes, options: JsValue) -> Result<WasmModel, JsValue> {
        Self::load(bytes.writer.finish().map_err(to_js)?, options)
    }

    /// Architecture, name, context length, tokenizer, template, tensor types, sizes.
    pub fn info(&self) -> JsValue {
        to_value(&self.model.info)
    }

    #[wasm_bindgen(js_name = loadTimings)]
    pub fn load_timings(&self) -> JsValue {
        to_value(&self.model.load_timings)
    }

    /// Begin a generation (`{ messages | prompt, max_new_tokens, stop, overflow, temperature,
    /// top_k, top_p, repetition_penalty, repeat_last_n, no_repeat_ngram_size, seed }`).
    /// Replaces any generation in progress.
    pub fn start(&mut self, request: JsValue) -> Result<(), JsValue> {
        self.session = None;
        let request: GenerateRequest = from_value(request, "generation request")?;
        self.session = Some(Session::start(&self.model, &request).map_err(to_js)?);
        Ok(())
    }

    /// Compute one token: the text it adds (possibly ""), or `undefined` when finished.
    #[wasm_bindgen(js_name = nextToken)]
    pub fn next_token(&mut self) -> Result<Option<String>, JsValue> {
        let Some(session) = self.session.as_mut() else {
            return Err(js_error(ErrorCode::InvalidRequest, "no generation in progress: call start() first"));
        };
        session.next(&mut self.model).map_err(|e| {
            session.abort();
            to_js(e)
        })
    }

    /// Stop the current generation; the next `nextToken()` returns `undefined`.
    pub fn abort(&mut self) {
        if let Some(s) = self.session.as_mut() {
            s.abort();
        }
    }

    /// `{ text, finish_reason, timings }` of the current or last generation.
    pub fn output(&self) -> JsValue {
        self.session.as_ref().map(|s| to_value(&s.output())).unwrap_or(JsValue::NULL)
    }

    /// Token ids for `text` (special tokens recognised; BOS added where the model wants it).
    pub fn tokenize(&self, text: &str) -> Result<Vec<u32>, JsValue> {
        self.model.tokenizer.encode(text, true).map_err(to_js)
    }

    /// Teacher forcing: the next-token logits after each prefix of `tokens`, `tokens.len()` rows
    /// of the vocabulary's size in one array (for comparing with llama.cpp position by position).
    #[wasm_bindgen(js_name = logitsEach)]
    pub fn logits_each(&mut self, tokens: Vec<u32>) -> Result<Vec<f32>, JsValue> {
        self.session = None;
        self.model.logits_each(&tokens).map_err(to_js)
    }

    /// The prompt text the chat template makes of `messages` (`[{ role, content }]`).
    #[wasm_bindgen(js_name = renderChat)]
    pub fn render_chat(&self, messages: JsValue) -> Result<String, JsValue> {
        let messages: Vec<Message> = from_value(messages, "messages")?;
        self.model.template.render(&messages, true).map_err(to_js)
    }
}

/// What a GGUF file is and needs, from its first bytes (`fileLength` in all): see
/// `edgellm::model::inspect`. `{ info, memory_limit_bytes, refusal }`.
#[wasm_bindgen(js_name = inspectGguf)]
pub fn inspect_gguf(prefix: &[u8], file_length: f64, options: JsValue) -> Result<JsValue, JsValue> {
    let options: LoadOptions = from_value(options, "load options")?;
    edgellm::model::inspect(prefix, byte_count(file_length, "fileLength")?, &options)
        .map(|i| to_value(&i))
        .map_err(to_js)
}

/// A length in bytes passed from JS as a number: a whole number ≥ 0.
fn byte_count(n: f64, what: &str) -> Result<u64, JsValue> {
    if !(n.is_finite() && n >= 0.0 && n.fract() == 0.0) {
        return Err(js_error(ErrorCode::InvalidRequest, &format!("{what} must be a whole number of bytes, got {n}")));
    }
    Ok(n as u64)
}

/// A model's tokenizer alone, built from a GGUF file's metadata (no weights are loaded): for
/// counting tokens synchronously on a thread that does not run the model, e.g. to fit a prompt
/// into the context.
#[wasm_bindgen]
pub struct WasmTokenizer {
    tokenizer: Tokenizer,
}

#[wasm_bindgen]
impl WasmTokenizer {
    /// From the first bytes of a GGUF file of `file_length` bytes, as many as its metadata and
    /// tensor table take: the weights never enter this module's memory, which would keep their
    /// size for good (wasm memory does not shrink) on a thread that never uses them.
    #[wasm_bindgen(constructor)]
    pub fn new(prefix: &[u8], file_length: f64) -> Result<WasmTokenizer, JsValue> {
        let gguf = edgellm::gguf::parse_prefix(prefix, byte_count(file_length, "fileLength")?).map_err(to_js)?;
        Ok(WasmTokenizer { tokenizer: Tokenizer::from_gguf(gguf.metadata()).map_err(to_js)? })
    }

    /// Token ids of `text` (special tokens recognised, no BOS).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, JsValue> {
        self.tokenizer.encode(text, false).map_err(to_js)
    }

    /// How many tokens `text` is.
    pub fn count(&self, text: &str) -> Result<usize, JsValue> {
        Ok(self.tokenizer.encode(text, false).map_err(to_js)?.len())
    }
}

/// A sentence-embedding model (BERT: config.json, model.safetensors, tokenizer.json).
#[wasm_bindgen]
pub struct WasmEmbedder {
    embedder: Embedder,
}

#[wasm_bindgen]
impl WasmEmbedder {
    #[wasm_bindgen(constructor)]
    pub fn new(config_json: &[u8], weights: &[u8], tokenizer_json: &[u8]) -> Result<WasmEmbedder, JsValue> {
        let embedder = Embedder::load(config_json, weights, tokenizer_json, DEFAULT_MAX_TOKENS).map_err(to_js)?;
        Ok(WasmEmbedder { embedder })
    }

    pub fn dim(&self) -> usize {
        self.embedder.dim
    }

    /// Unit vectors for `texts`, concatenated (`texts.length * dim()` floats).
    pub fn embed(&self, texts: Vec<String>) -> Result<Vec<f32>, JsValue> {
        let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
        Ok(self.embedder.embed(&texts).map_err(to_js)?.concat())
    }
}

/// A cross-encoder reranker (BertForSequenceClassification: config.json, model.safetensors,
/// tokenizer.json), e.g. ms-marco-MiniLM-L-6-v2.
#[wasm_bindgen]
pub struct WasmReranker {
    reranker: CrossEncoder,
}

#[wasm_bindgen]
impl WasmReranker {
    #[wasm_bindgen(constructor)]
    pub fn new(config_json: &[u8], weights: &[u8], tokenizer_json: &[u8]) -> Result<WasmReranker, JsValue> {
        Ok(WasmReranker { reranker: CrossEncoder::load(config_json, weights, tokenizer_json).map_err(to_js)? })
    }

    /// One relevance logit per passage.
    pub fn score(&self, query: &str, passages: Vec<String>) -> Result<Vec<f32>, JsValue> {
        let passages: Vec<&str> = passages.iter().map(String::as_str).collect();
        self.reranker.score(query, &passages).map_err(to_js)
    }
}

/// Bytes of WebAssembly memory in use by this module (it grows, never shrinks).
#[wasm_bindgen(js_name = wasmMemoryBytes)]
pub fn wasm_memory_bytes() -> f64 {
    (core::arch::wasm32::memory_size(0) * 65536) as f64
}

/// Names of the built-in chat templates.
#[wasm_bindgen(js_name = templatePresets)]
pub fn template_presets() -> Vec<String> {
    edgellm::template::preset_names().into_iter().map(String::from).collect()
}
