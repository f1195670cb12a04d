//! edgellm core: run 4-bit GGUF language models from bytes, natively and in WebAssembly.
//!
//! Data flows one way: bytes → [`gguf`] (validated header) → [`model`] (weights, plus
//! [`tokenizer`] and [`template`] from the same metadata) → [`generate`] (prefill, decode,
//! [`sampling`], stop rules, [`timing`]) → text. Nothing here knows about JavaScript; the
//! `wasm/` crate is a thin binding over this API.
//!
//! ```no_run
//! use edgellm::{GenerateRequest, LoadOptions, Message, Model};
//! let bytes = std::fs::read("SmolLM2-135M-Instruct.Q4_1.gguf").unwrap();
//! let mut model = Model::load(bytes, &LoadOptions::default(), edgellm::timing::default_clock()).unwrap();
//! let req = GenerateRequest::chat(vec![Message::new("user", "What is the capital of France?")]);
//! let out = model.generate(&req, |piece| { print!("{piece}"); true }).unwrap();
//! println!("\n{:.1} tok/s", out.timings.decode_tok_s);
//! ```

// In wasm a panic kills the module and every model in it: what comes from outside must end in
// an Err with a code. test.sh runs clippy on the crates that ship to wasm with these denied.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod embed;
pub mod error;
pub mod generate;
pub mod gguf;
pub mod kernels;
pub mod matmul;
pub mod model;
pub mod rerank;
pub mod sampling;
pub mod template;
pub mod timing;
pub mod tokenizer;

pub use error::{Error, ErrorCode, Result};
pub use generate::{
    FinishReason, GenerateRequest, GenerationOutput, OverflowPolicy, RepetitionGuard, Session, Step, TextModel,
};
pub use model::{LoadOptions, Model, ModelInfo};
pub use sampling::SamplingParams;
pub use template::{ChatTemplate, Message};
