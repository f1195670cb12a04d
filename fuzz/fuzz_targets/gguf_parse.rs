//! The GGUF reader on any bytes: the whole-file parse, the header-only parse the page uses to
//! inspect a remote file before downloading it, where a streamed file's tensor data begins,
//! the header copy the ONNX export ships, and the hyperparameters read from what it parsed.
//! Every outcome is an `Ok` or an `Error` with a code; a panic, a hang or an allocation the
//! input's length does not justify is a bug. (The tokenizer and template built from the
//! metadata have targets of their own, and model_load runs everything together.)
#![no_main]

use edgellm::gguf;
use edgellm::model::hparams::HParams;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(g) = gguf::parse(bytes) {
        let _ = HParams::read(&g.content);
        let header = g.metadata_only(bytes);
        // What metadata_only writes is itself a GGUF, with the same metadata and no tensors.
        let again = gguf::parse(&header).expect("metadata_only writes a GGUF that parses");
        assert_eq!(again.content.metadata.len(), g.content.metadata.len());
        assert_eq!(again.arrays.len(), g.arrays.len());
        let _ = g.total_tensor_bytes();
    }
    // The same bytes as the first part of a larger file (the page reads a prefix by HTTP Range).
    for file_len in [bytes.len() as u64, bytes.len() as u64 * 4 + 4096, u64::MAX] {
        let parsed = gguf::parse_prefix(bytes, file_len);
        // Where the tensor data begins, as the engine finds it while a file streams in: known
        // exactly when the prefix parses, and "read more" only where more of the file is left.
        match (&parsed, gguf::data_start(bytes, file_len)) {
            (Ok(g), Ok(Some(start))) => assert_eq!(start as u64, g.content.tensor_data_offset),
            (Err(_), Ok(None)) => assert!((bytes.len() as u64) < file_len, "more to read of a file that has no more"),
            (Err(a), Err(b)) => assert_eq!(a.message, b.message),
            (parsed, found) => panic!("parse_prefix gave {:?}, data_start {found:?}", parsed.as_ref().err()),
        }
        if let Ok(g) = parsed {
            let _ = HParams::read(&g.content);
        }
    }
});
