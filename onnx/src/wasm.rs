//! The ONNX backend's wasm-bindgen surface (its own module, `www/pkg-onnx/`): `OnnxModel` has
//! the same methods as the main module's `WasmModel` — load, `start(request)`, `nextToken()`,
//! `abort()`, `output()` — except that loading and `nextToken()` return promises, since the
//! GPU answers asynchronously.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use edgellm::generate::Session;
use edgellm::{ErrorCode, GenerateRequest, Message};
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;

use crate::export::{export_gguf, ExportOptions, Exporter};
use crate::llm::OnnxLlm;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = performance, js_name = now)]
    fn performance_now() -> f64;
}

#[wasm_bindgen(start)]
pub fn start() {
    console_error_panic_hook::set_once();
}

fn js_error(code: ErrorCode, message: &str) -> JsValue {
    let err = js_sys::Error::new(message);
    err.set_name("EdgeLLMError");
    let _ = js_sys::Reflect::set(&err, &"code".into(), &code.as_str().into());
    err.into()
}

fn to_js(e: edgellm::Error) -> JsValue {
    js_error(e.code, &e.message)
}

fn to_value<T: Serialize>(value: &T) -> JsValue {
    value.serialize(&serde_wasm_bindgen::Serializer::json_compatible()).unwrap_or(JsValue::NULL)
}

fn from_value<T: serde::de::DeserializeOwned + Default>(value: JsValue, what: &str) -> Result<T, JsValue> {
    if value.is_undefined() || value.is_null() {
        return Ok(T::default());
    }
    serde_wasm_bindgen::from_value(value)
        .map_err(|e| js_error(ErrorCode::InvalidRequest, &format!("invalid {what}: {e}")))
}

/// The WebGPU adapter ONNX models would run on, or a `webgpu_unavailable` error saying why not.
#[wasm_bindgen(js_name = webgpuAdapter)]
pub async fn webgpu_adapter() -> Result<String, JsValue> {
    crate::runtime::check_gpu().await.map_err(to_js)
}

/// Export a llama-family GGUF as ONNX shards: a `Map` of file name → bytes (see
/// `export.rs`; `model.json` is the manifest).
#[wasm_bindgen(js_name = exportGguf)]
pub fn export_gguf_js(bytes: &[u8], options: JsValue) -> Result<js_sys::Map, JsValue> {
    let options: ExportOptions = from_value(options, "export options")?;
    let files = js_sys::Map::new();
    export_gguf(bytes, &options, |name, data| {
        files.set(&name.into(), &js_sys::Uint8Array::from(data.as_slice()).into());
        Ok(())
    })
    .map_err(to_js)?;
    Ok(files)
}

#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct LoadOptions {
    /// Chat template preset instead of the GGUF's own.
    template: Option<String>,
    /// How to export when loading from a GGUF.
    export: ExportOptions,
}

/// What `info()` reports, in the main module's `ModelInfo` terms where they apply.
#[derive(Serialize)]
struct Info<'a> {
    architecture: &'a str,
    name: &'a str,
    backend: &'static str,
    adapter: &'a str,
    context_length: usize,
    vocab_size: usize,
    chat_template: &'a str,
    weights: crate::export::WeightStorage,
    shard_bytes: usize,
    shards: usize,
    /// Time spent in each layer shard, then each head shard, since loading.
    shard_ms: &'a [f64],
}

struct Inner {
    llm: OnnxLlm,
    session: Option<Session>,
}

/// An exported model on WebGPU. Methods take `&self` and the state sits behind a `RefCell`:
/// a call that arrives while `nextToken()` awaits the GPU gets a `busy` error instead of
/// wasm-bindgen's aliasing panic, which would kill the module.
#[wasm_bindgen]
pub struct OnnxModel {
    inner: Rc<RefCell<Inner>>,
    aborted: Rc<std::cell::Cell<bool>>,
}

fn busy() -> JsValue {
    let err = js_error(ErrorCode::InvalidRequest, "the ONNX model is busy computing a token");
    let _ = js_sys::Reflect::set(&err, &"code".into(), &"busy".into());
    err
}

#[wasm_bindgen]
impl OnnxModel {
    /// Export `bytes` (a llama-family GGUF) and load the result. options: { template,
    /// export: { context, weights: "int8" | "f32", max_tensor_bytes, max_shard_bytes } }.
    #[wasm_bindgen(js_name = fromGguf)]
    pub async fn from_gguf(bytes: Vec<u8>, options: JsValue) -> Result<OnnxModel, JsValue> {
        let options: LoadOptions = from_value(options, "load options")?;
        // Fail before the export's work when there is no GPU to run the result.
        crate::runtime::check_gpu().await.map_err(to_js)?;
        // Each shard is exported when the loader asks for it and compiled for the GPU at once.
        let exporter = Exporter::new(&bytes, &options.export).map_err(to_js)?;
        let llm = OnnxLlm::load(exporter, options.template.as_deref(), performance_now).await.map_err(to_js)?;
        Ok(Self::wrap(llm))
    }

    /// Load exported files: a `Map` of file name → `Uint8Array` (what `exportGguf` returns).
    #[wasm_bindgen(js_name = fromFiles)]
    pub async fn from_files(files: js_sys::Map, options: JsValue) -> Result<OnnxModel, JsValue> {
        let options: LoadOptions = from_value(options, "load options")?;
        let mut owned = HashMap::new();
        files.for_each(&mut |value, key| {
            if let (Some(name), Ok(bytes)) = (key.as_string(), value.dyn_into::<js_sys::Uint8Array>()) {
                owned.insert(name, bytes.to_vec());
            }
        });
        let read = |name: &str| {
            owned.remove(name).ok_or_else(|| {
                edgellm::Error::new(ErrorCode::InvalidOnnx, format!("the exported model has no file '{name}'"))
            })
        };
        let llm = OnnxLlm::load(read, options.template.as_deref(), performance_now).await.map_err(to_js)?;
        Ok(Self::wrap(llm))
    }

    fn wrap(llm: OnnxLlm) -> OnnxModel {
        OnnxModel { inner: Rc::new(RefCell::new(Inner { llm, session: None })), aborted: Rc::default() }
    }

    pub fn info(&self) -> Result<JsValue, JsValue> {
        let inner = self.inner.try_borrow().map_err(|_| busy())?;
        let m = &inner.llm.manifest;
        Ok(to_value(&Info {
            architecture: &m.architecture,
            name: &m.name,
            backend: "webgpu",
            adapter: &inner.llm.adapter,
            context_length: m.context,
            vocab_size: inner.llm.tokenizer.vocab_size(),
            chat_template: &inner.llm.template.name,
            weights: m.weights,
            shard_bytes: inner.llm.file_bytes,
            shards: 1 + m.layers.len() + m.heads.len(),
            shard_ms: &inner.llm.shard_ms,
        }))
    }

    /// Load timings; from a GGUF, `weightsMs` includes exporting each shard.
    #[wasm_bindgen(js_name = loadTimings)]
    pub fn load_timings(&self) -> Result<JsValue, JsValue> {
        let inner = self.inner.try_borrow().map_err(|_| busy())?;
        Ok(to_value(&inner.llm.load_timings))
    }

    pub fn start(&self, request: JsValue) -> Result<(), JsValue> {
        let mut inner = self.inner.try_borrow_mut().map_err(|_| busy())?;
        inner.session = None;
        let request: GenerateRequest = from_value(request, "generation request")?;
        let session = Session::start(&inner.llm, &request).map_err(to_js)?;
        inner.session = Some(session);
        self.aborted.set(false);
        Ok(())
    }

    /// Resolves to the next piece of text (possibly empty), or `undefined` when finished.
    #[wasm_bindgen(js_name = nextToken)]
    pub fn next_token(&self) -> js_sys::Promise {
        let (inner, aborted) = (self.inner.clone(), self.aborted.clone());
        wasm_bindgen_futures::future_to_promise(async move {
            let mut guard = inner.try_borrow_mut().map_err(|_| busy())?;
            let Inner { llm, session, .. } = &mut *guard;
            let Some(session) = session.as_mut() else {
                return Err(js_error(ErrorCode::InvalidRequest, "no generation in progress: call start() first"));
            };
            if aborted.get() {
                session.abort();
            }
            match llm.next(session).await {
                Ok(Some(piece)) => Ok(piece.into()),
                Ok(None) => Ok(JsValue::UNDEFINED),
                Err(e) => {
                    session.abort();
                    Err(to_js(e))
                }
            }
        })
    }

    /// Stop after the token being computed.
    pub fn abort(&self) {
        self.aborted.set(true);
        if let Ok(mut inner) = self.inner.try_borrow_mut() {
            if let Some(s) = inner.session.as_mut() {
                s.abort();
            }
        }
    }

    pub fn output(&self) -> Result<JsValue, JsValue> {
        let inner = self.inner.try_borrow().map_err(|_| busy())?;
        Ok(inner.session.as_ref().map(|s| to_value(&s.output())).unwrap_or(JsValue::NULL))
    }

    pub fn tokenize(&self, text: &str) -> Result<Vec<u32>, JsValue> {
        let inner = self.inner.try_borrow().map_err(|_| busy())?;
        inner.llm.tokenizer.encode(text, true).map_err(to_js)
    }

    #[wasm_bindgen(js_name = renderChat)]
    pub fn render_chat(&self, messages: JsValue) -> Result<String, JsValue> {
        let messages: Vec<Message> = from_value(messages, "messages")?;
        let inner = self.inner.try_borrow().map_err(|_| busy())?;
        inner.llm.template.render(&messages, true).map_err(to_js)
    }
}

/// Bytes of this module's wasm memory.
#[wasm_bindgen(js_name = wasmMemoryBytes)]
pub fn wasm_memory_bytes() -> f64 {
    (core::arch::wasm32::memory_size(0) * 65536) as f64
}

/// An ONNX sentence embedder (e.g. paraphrase-MiniLM-L3-v2) on WebGPU, for retrieval.
#[wasm_bindgen]
pub struct WasmOnnxEmbedder {
    embedder: Rc<crate::embed::OnnxEmbedder>,
}

#[wasm_bindgen]
impl WasmOnnxEmbedder {
    /// `seq_len`: tokens per text fixed into the graph (texts are padded or cut to it).
    pub async fn load(onnx: Vec<u8>, tokenizer_json: Vec<u8>, seq_len: usize) -> Result<WasmOnnxEmbedder, JsValue> {
        let embedder = crate::embed::OnnxEmbedder::load(&onnx, &tokenizer_json, seq_len).await.map_err(to_js)?;
        Ok(WasmOnnxEmbedder { embedder: Rc::new(embedder) })
    }

    pub fn dim(&self) -> usize {
        self.embedder.dim
    }

    /// Resolves to the texts' unit-length vectors, concatenated in one Float32Array.
    pub fn embed(&self, texts: Vec<String>) -> js_sys::Promise {
        let embedder = self.embedder.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            let vectors = embedder.embed(&refs).await.map_err(to_js)?;
            Ok(js_sys::Float32Array::from(vectors.concat().as_slice()).into())
        })
    }
}
