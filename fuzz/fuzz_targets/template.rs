//! Chat templates as a hostile GGUF could write them (`tokenizer.chat_template`), rendered with
//! any conversation: parsing and rendering must end in bounded time and output (TEMPLATE_FUEL,
//! MAX_TEMPLATE_OUTPUT) with either a chat or a `template_error`.
//!
//! The input is the template, then NUL-separated message texts (roles cycle system, user,
//! assistant, user …), so the seeds are simply real templates.
#![no_main]

use std::collections::HashMap;
use std::sync::OnceLock;

use candle_core::quantized::gguf_file::Value;
use edgellm::gguf::Metadata;
use edgellm::template::{ChatTemplate, Message, MAX_TEMPLATE_OUTPUT};
use edgellm::tokenizer::Tokenizer;
use libfuzzer_sys::fuzz_target;

const ROLES: &[&str] = &["system", "user", "assistant", "user", "assistant"];

/// A small byte-level vocabulary with the special tokens templates refer to.
fn tokenizer() -> &'static Tokenizer {
    static TOKENIZER: OnceLock<Tokenizer> = OnceLock::new();
    TOKENIZER.get_or_init(|| {
        let tokens = ["<s>", "</s>", "<|im_start|>", "<|im_end|>", "a", "b", "ab"];
        let mut md = HashMap::new();
        md.insert("tokenizer.ggml.model".to_string(), Value::String("gpt2".into()));
        md.insert(
            "tokenizer.ggml.tokens".to_string(),
            Value::Array(tokens.iter().map(|t| Value::String(t.to_string())).collect()),
        );
        md.insert("tokenizer.ggml.merges".to_string(), Value::Array(vec![Value::String("a b".into())]));
        md.insert("tokenizer.ggml.bos_token_id".to_string(), Value::U32(0));
        md.insert("tokenizer.ggml.eos_token_id".to_string(), Value::U32(1));
        Tokenizer::from_gguf(Metadata::of_values(&md)).expect("the fixed vocabulary builds")
    })
}

fuzz_target!(|bytes: &[u8]| {
    let text = String::from_utf8_lossy(bytes);
    let mut parts = text.split('\0');
    let source = parts.next().unwrap_or_default();
    let mut messages: Vec<Message> =
        parts.take(64).enumerate().map(|(i, content)| Message::new(ROLES[i % ROLES.len()], content)).collect();
    if messages.is_empty() {
        messages = vec![Message::new("system", "Be brief."), Message::new("user", "Hello")];
    }
    let mut md = HashMap::new();
    md.insert("tokenizer.chat_template".to_string(), Value::String(source.to_string()));
    let Ok(template) = ChatTemplate::for_model(None, Metadata::of_values(&md), tokenizer()) else { return };
    for add_generation_prompt in [true, false] {
        if let Ok(chat) = template.render(&messages, add_generation_prompt) {
            assert!(chat.len() <= MAX_TEMPLATE_OUTPUT);
        }
    }
});
