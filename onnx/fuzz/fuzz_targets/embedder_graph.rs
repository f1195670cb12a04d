//! An ONNX embedder graph on any bytes, through everything its load does before asking for a
//! GPU: the protobuf parse, finding the inputs and the token output, fixing the dynamic axes,
//! shape inference with constant folding, and the rewrite for wonnx.
#![no_main]

use edgellm_onnx::embed::EmbedderGraph;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let _ = EmbedderGraph::prepare(bytes, 16);
});
