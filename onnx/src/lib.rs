//! edgellm's ONNX backend: llama-family GGUF models exported as static-shape ONNX graphs
//! ([`export`]) and run shard by shard on WebGPU through wonnx ([`llm`]), and ONNX sentence
//! embedders ([`embed`]). Its own crate and wasm module because wonnx's wgpu 0.16 needs
//! web-sys 0.3.64, which must not constrain the main module.

// In wasm a panic kills the module and every model in it: what comes from outside must end in
// an Err with a code. test.sh runs clippy on the crates that ship to wasm with these denied.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod compact;
pub mod embed;
pub mod export;
pub mod graph;
pub mod llm;
pub mod runtime;
pub mod static_shapes;
#[cfg(target_arch = "wasm32")]
mod wasm;
