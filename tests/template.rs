//! Chat templates: every preset renders the exact prompt format of its model family, and the
//! GGUF's own Jinja template is used when present.

mod common;

use common::{model_bytes, GgufWriter, SMOLLM2, V};
use edgellm::gguf;
use edgellm::template::{preset_names, ChatTemplate, Message};
use edgellm::tokenizer::Tokenizer;

/// A minimal llama-style vocabulary whose BOS/EOS are <s> and </s>.
fn llama_tokenizer() -> (Vec<u8>, Tokenizer) {
    let tokens = ["<unk>", "<s>", "</s>", "\u{2581}", "a"];
    let mut w = GgufWriter::header(3, 0, 7);
    w.kv("general.architecture", V::Str("llama"))
        .kv("tokenizer.ggml.model", V::Str("llama"))
        .kv("tokenizer.ggml.tokens", V::Strs(&tokens))
        .kv("tokenizer.ggml.scores", V::F32s(&[0.0; 5]))
        .kv("tokenizer.ggml.token_type", V::I32s(&[2, 3, 3, 1, 1]))
        .kv("tokenizer.ggml.bos_token_id", V::U32(1))
        .kv("tokenizer.ggml.eos_token_id", V::U32(2));
    let bytes = w.bytes();
    let tk = Tokenizer::from_gguf(gguf::parse(&bytes).unwrap().metadata()).unwrap();
    (bytes, tk)
}

fn chat() -> Vec<Message> {
    vec![
        Message::new("system", "Be brief."),
        Message::new("user", "Hi"),
        Message::new("assistant", "Hello."),
        Message::new("user", "What is LCA?"),
    ]
}

fn render(name: &str) -> String {
    let (_, tk) = llama_tokenizer();
    ChatTemplate::preset(name, &tk).unwrap().render(&chat(), true).unwrap()
}

#[test]
fn zephyr_is_tinyllamas_format() {
    assert_eq!(
        render("zephyr"),
        "<|system|>\nBe brief.</s>\n<|user|>\nHi</s>\n<|assistant|>\nHello.</s>\n<|user|>\nWhat is LCA?</s>\n<|assistant|>\n"
    );
}

#[test]
fn chatml() {
    assert_eq!(
        render("chatml"),
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello.<|im_end|>\n\
         <|im_start|>user\nWhat is LCA?<|im_end|>\n<|im_start|>assistant\n"
    );
}

#[test]
fn llama3() {
    assert_eq!(
        render("llama3"),
        "<s><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>\
         <|start_header_id|>assistant<|end_header_id|>\n\nHello.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nWhat is LCA?<|eot_id|>\
         <|start_header_id|>assistant<|end_header_id|>\n\n"
    );
}

#[test]
fn mistral_puts_the_system_prompt_in_the_first_instruction() {
    assert_eq!(render("mistral"), "<s>[INST] Be brief.\n\nHi [/INST]Hello.</s>[INST] What is LCA? [/INST]");
}

#[test]
fn gemma_uses_model_turns_and_folds_the_system_prompt() {
    assert_eq!(
        render("gemma"),
        "<s><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\nHello.<end_of_turn>\n\
         <start_of_turn>user\nWhat is LCA?<end_of_turn>\n<start_of_turn>model\n"
    );
}

#[test]
fn every_preset_is_tested() {
    assert_eq!(preset_names(), ["zephyr", "chatml", "llama3", "mistral", "gemma"]);
}

#[test]
fn gguf_template_is_used_when_present() {
    let bytes = model_bytes(SMOLLM2);
    let g = gguf::parse(&bytes).unwrap();
    let tk = Tokenizer::from_gguf(g.metadata()).unwrap();
    let t = ChatTemplate::for_model(None, g.metadata(), &tk).unwrap();
    assert_eq!(t.name, "gguf");
    // SmolLM2's own template adds its default system prompt when the chat has none.
    assert_eq!(
        t.render(&[Message::new("user", "Hi")], true).unwrap(),
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n\
         <|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    );
    assert_eq!(ChatTemplate::for_model(Some("chatml"), g.metadata(), &tk).unwrap().name, "chatml");
}

#[test]
fn a_model_without_a_template_gets_a_preset_guessed_from_its_vocabulary() {
    let (bytes, tk) = llama_tokenizer();
    let g = gguf::parse(&bytes).unwrap();
    assert_eq!(ChatTemplate::for_model(None, g.metadata(), &tk).unwrap().name, "zephyr");
}

#[test]
fn bad_requests_are_refused_with_a_reason() {
    let (_, tk) = llama_tokenizer();
    let t = ChatTemplate::preset("chatml", &tk).unwrap();
    let e = t.render(&[Message::new("robot", "x")], true).unwrap_err();
    assert_eq!(e.code, edgellm::ErrorCode::InvalidRequest);
    assert!(e.message.contains("robot"));
    assert_eq!(t.render(&[], true).unwrap_err().code, edgellm::ErrorCode::InvalidRequest);
    let e = ChatTemplate::preset("alpaca", &tk).unwrap_err();
    assert!(e.message.contains("zephyr"), "{}", e.message);
}

/// A template comes from the file: one that loops or allocates without end is stopped by the
/// fuel budget or the output cap with a template_error, quickly, and the model's own templates
/// still render a long conversation within both.
#[test]
fn hostile_templates_are_stopped_in_bounded_time_and_output() {
    use edgellm::template::MAX_TEMPLATE_OUTPUT;
    let (_, tk) = llama_tokenizer();
    let hostile = [
        // 10^10 iterations.
        "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
        // A string doubled 40 times: a terabyte.
        "{% set ns = namespace(s='ab') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}",
        // 100 MB in one repetition, written out 100 times.
        "{% for i in range(100) %}{{ 'x' * 100000000 }}{% endfor %}",
        // Output past the cap from a cheap loop.
        "{% for i in range(100000) %}{{ 'y' * 1000 }}{% endfor %}",
        // Unbounded recursion.
        "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
    ];
    for source in hostile {
        let mut w = GgufWriter::header(3, 0, 1);
        w.kv("tokenizer.chat_template", V::Str(source));
        let bytes = w.bytes();
        let g = gguf::parse(&bytes).unwrap();
        let started = std::time::Instant::now();
        let result = ChatTemplate::for_model(None, g.metadata(), &tk).and_then(|t| t.render(&chat(), true));
        let e = result.expect_err(source);
        assert_eq!(e.code, edgellm::ErrorCode::Template, "{source}: {}", e.message);
        assert!(started.elapsed().as_secs_f64() < 5.0, "{source} took {:?}", started.elapsed());
    }

    let bytes = model_bytes(SMOLLM2);
    let g = gguf::parse(&bytes).unwrap();
    let tk = Tokenizer::from_gguf(g.metadata()).unwrap();
    let own = ChatTemplate::for_model(None, g.metadata(), &tk).unwrap();
    let long: Vec<Message> = (0..200)
        .map(|i| Message::new(if i % 2 == 0 { "user" } else { "assistant" }, &"A sentence of a long chat. ".repeat(20)))
        .collect();
    let chat = own.render(&long, true).unwrap();
    assert!(chat.len() > 100_000 && chat.len() < MAX_TEMPLATE_OUTPUT);
}
