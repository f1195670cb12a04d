//! The GGUF → ONNX exporter on any bytes: checking the model, planning the shards and writing
//! every file, which are then read back as ONNX graphs.
#![no_main]

use edgellm_onnx::export::{export_gguf, ExportOptions, WeightStorage};
use libfuzzer_sys::fuzz_target;
use protobuf::Message;
use wonnx::onnx::ModelProto;

fuzz_target!(|bytes: &[u8]| {
    for weights in [WeightStorage::Int8, WeightStorage::F32] {
        let opts = ExportOptions { context: 32, weights, max_tensor_bytes: 1 << 20, max_shard_bytes: 1 << 20 };
        let _ = export_gguf(bytes, &opts, |name, file| {
            if name.ends_with(".onnx") {
                ModelProto::parse_from_bytes(&file).expect("the exporter writes ONNX that parses");
            }
            Ok(())
        });
    }
});
