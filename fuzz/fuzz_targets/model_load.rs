//! `model::inspect` and `Model::load` on any bytes, and, when a model loads, a short generation and teacher forcing
//! on it: the tensor checks, the hyperparameter reading, the tokenizer and template built from
//! the metadata, and the forward pass over whatever weights the file holds. The memory budget
//! is set low, as a browser tab would, so a file that asks for more is refused up front.
#![no_main]

use edgellm::timing::native_clock;
use edgellm::{model, GenerateRequest, LoadOptions, Message, Model};
use libfuzzer_sys::fuzz_target;

/// Far above what the seed models need (a few MB), far below libFuzzer's -rss_limit_mb.
const MEMORY_BUDGET: u64 = 256 << 20;

fuzz_target!(|bytes: &[u8]| {
    let opts = LoadOptions { context_length: Some(48), max_memory_bytes: Some(MEMORY_BUDGET), ..Default::default() };
    // What the page shows of a file from its first bytes, before downloading the rest.
    let _ = model::inspect(bytes, bytes.len() as u64, &opts);
    let Ok(mut model) = Model::load(bytes, &opts, native_clock) else { return };
    let chat = vec![Message::new("system", "Be brief."), Message::new("user", "Hi! 1+1=? ünï 🙂")];
    let _ = model.template.render(&chat, true);
    let request = GenerateRequest { max_new_tokens: 3, ..GenerateRequest::chat(chat) };
    let _ = model.generate(&request, |_| true);
    if let Ok(ids) = model.tokenizer.encode("The cat sat.", true) {
        let _ = model.logits_each(&ids);
        let _ = model.tokenizer.decode(&ids);
    }
});
