//! Generation on the real models: answers, stop rules, sampling, context limits, timings, the
//! KV cache kept from one generation to the next, and the repetition guard.

mod common;

use common::{load, model_bytes, GEMMA3, SMOLLM2};
use edgellm::model::file::{ModelFile, ModelFileWriter};
use edgellm::model::BackendKind;
use edgellm::{
    ErrorCode, FinishReason, GenerateRequest, GenerationOutput, LoadOptions, Message, Model, OverflowPolicy,
    RepetitionGuard, SamplingParams, Session,
};

fn question() -> GenerateRequest {
    // SmolLM2-135M at 4 bits is fragile: with its own default system prompt it answers this
    // question with French nonsense, in llama.cpp too. This system prompt gives Paris in both.
    GenerateRequest::chat(vec![
        Message::new("system", "You are a concise assistant. Answer in one sentence."),
        Message::new("user", "What is the capital of France?"),
    ])
}

#[test]
fn smollm2_answers_paris_greedily_and_reports_timings() {
    let mut model = load(SMOLLM2);
    assert_eq!(model.info.architecture, "llama");
    assert_eq!(model.info.context_length, 4096, "8192 trained, capped to 4096 by default");
    let mut streamed = String::new();
    let out = model
        .generate(&question(), |piece| {
            streamed.push_str(piece);
            true
        })
        .unwrap();
    assert!(out.text.contains("Paris"), "{:?}", out.text);
    assert_eq!(streamed, out.text);
    assert_eq!(out.finish_reason, FinishReason::Stop, "ends on <|im_end|>");
    let t = &out.timings;
    assert_eq!(
        t.prompt_tokens,
        model
            .tokenizer
            .encode(&model.template.render(question().messages.as_ref().unwrap(), true).unwrap(), true)
            .unwrap()
            .len()
    );
    assert_eq!((t.reused_prompt_tokens, t.prefill_tokens), (0, t.prompt_tokens), "a fresh model has nothing cached");
    assert!(t.generated_tokens > 3 && t.generated_tokens < 20, "{t:?}");
    assert!(t.prefill_ms > 0.0 && t.prefill_tok_s > 0.0 && t.decode_tok_s > 0.0, "{t:?}");
    assert!(t.time_to_first_token_ms >= t.prefill_ms && t.total_ms >= t.time_to_first_token_ms, "{t:?}");
    let l = &model.load_timings;
    assert!(l.parse_ms > 0.0 && l.weights_ms > 0.0 && l.total_ms >= l.parse_ms + l.weights_ms, "{l:?}");
}

/// `bytes` through a ModelFileWriter in pieces of the sizes `pieces` cycles through.
fn written_in_pieces(bytes: &[u8], pieces: &[usize]) -> ModelFile {
    let mut writer = ModelFileWriter::new(bytes.len());
    let (mut at, mut sizes) = (0, pieces.iter().cycle());
    while at < bytes.len() {
        let chunk = &bytes[at..(at + sizes.next().unwrap()).min(bytes.len())];
        writer
            .write(chunk.len(), |from, room| {
                for (to, &b) in room.iter_mut().zip(&chunk[from..]) {
                    to.write(b);
                }
            })
            .unwrap();
        at += chunk.len();
        assert_eq!(writer.written(), at);
    }
    writer.finish().unwrap()
}

#[test]
fn a_file_received_in_pieces_keeps_its_tensor_data_apart_and_answers_as_the_whole_file() {
    for file in [SMOLLM2, GEMMA3] {
        let bytes = model_bytes(file);
        let data_start = edgellm::gguf::parse(&bytes).unwrap().content.tensor_data_offset as usize;
        // Pieces that end inside the header, at the first try's boundary and past it; and the
        // whole file as one piece (what the engine does with bytes already in JS memory).
        for pieces in [&[1, 4093, 65_536, 1 << 20][..], &[bytes.len()]] {
            match written_in_pieces(&bytes, pieces) {
                ModelFile::Split { head, tensors } => {
                    assert_eq!((head.len(), tensors.len()), (data_start, bytes.len() - data_start), "{file}");
                    assert!(head == bytes[..data_start] && tensors == bytes[data_start..], "{file}: the bytes as sent");
                }
                ModelFile::Whole(_) => panic!("{file}: not split"),
            }
        }
    }
    let mut whole = load(SMOLLM2);
    let bytes = model_bytes(SMOLLM2);
    let mut split =
        Model::load_file(written_in_pieces(&bytes, &[100_003]), &LoadOptions::default(), edgellm::timing::native_clock)
            .unwrap();
    let (a, b) = (whole.generate(&question(), |_| true).unwrap(), split.generate(&question(), |_| true).unwrap());
    assert!(a.text.contains("Paris") && a.text == b.text, "{:?} / {:?}", a.text, b.text);
    assert_eq!(whole.info.file_bytes, split.info.file_bytes);
}

#[test]
fn gemma3_base_model_completes_the_eiffel_tower_sentence() {
    let mut model = load(GEMMA3);
    assert_eq!(model.info.architecture, "gemma3");
    let mut req = GenerateRequest::text("The Eiffel Tower is located in the city of");
    req.max_new_tokens = 4;
    let out = model.generate(&req, |_| true).unwrap();
    assert_eq!(out.text, " Paris, France.");
    assert_eq!(out.finish_reason, FinishReason::Length);
}

#[test]
fn seeded_sampling_is_reproducible() {
    let mut model = load(SMOLLM2);
    let mut req = GenerateRequest::text("Once upon a time");
    req.max_new_tokens = 24;
    req.sampling = SamplingParams { temperature: 0.9, top_k: 40, top_p: 0.95, seed: 7, ..SamplingParams::greedy() };
    let a = model.generate(&req, |_| true).unwrap().text;
    let b = model.generate(&req, |_| true).unwrap().text;
    assert_eq!(a, b);
    let texts: std::collections::HashSet<String> = (1..=4)
        .map(|seed| {
            req.sampling.seed = seed;
            model.generate(&req, |_| true).unwrap().text
        })
        .collect();
    assert!(texts.len() > 1, "different seeds should not all give the same text: {texts:?}");
}

#[test]
fn reference_sampling_settings_run_and_never_repeat_a_trigram() {
    let mut model = load(SMOLLM2);
    let mut req =
        GenerateRequest::text("List the benefits of recycling: recycling saves energy, recycling saves energy,");
    req.max_new_tokens = 40;
    req.sampling = SamplingParams::reference();
    let mut session = Session::start(&model, &req).unwrap();
    while session.next(&mut model).unwrap().is_some() {}
    assert!(session.timings().generated_tokens > 3);
    // Hugging Face semantics: no trigram occurs twice in prompt + answer, except those the
    // prompt already repeated.
    let prompt_len = session.timings().prompt_tokens;
    let ids = session.tokens();
    for end in prompt_len..ids.len() {
        let last = &ids[end - 2..=end];
        let earlier = ids[..end].windows(3).filter(|w| *w == last).count();
        assert_eq!(earlier, 0, "trigram {last:?} repeated in {:?}", session.text());
    }
}

#[test]
fn stop_strings_and_max_new_tokens_end_generation() {
    let mut model = load(SMOLLM2);
    let mut req = GenerateRequest::text("1, 2, 3, 4, 5,");
    req.max_new_tokens = 30;
    req.stop = vec![" 8".into()];
    let out = model.generate(&req, |_| true).unwrap();
    assert_eq!(out.finish_reason, FinishReason::Stop);
    assert_eq!(out.text, " 6, 7,");

    req.stop.clear();
    req.max_new_tokens = 3;
    let out = model.generate(&req, |_| true).unwrap();
    assert_eq!((out.finish_reason, out.timings.generated_tokens), (FinishReason::Length, 3));

    // A chat answer ends on <|im_end|> after a few tokens unless told to run on (benchmarks).
    let mut chat = question();
    chat.max_new_tokens = 40;
    assert_eq!(model.generate(&chat, |_| true).unwrap().finish_reason, FinishReason::Stop);
    chat.ignore_eos = true;
    let out = model.generate(&chat, |_| true).unwrap();
    assert_eq!((out.finish_reason, out.timings.generated_tokens), (FinishReason::Length, 40));
}

#[test]
fn the_caller_can_cancel_between_tokens() {
    let mut model = load(SMOLLM2);
    let mut req = GenerateRequest::text("1, 2, 3, 4, 5,");
    req.max_new_tokens = 100;
    let mut pieces = 0;
    let out = model
        .generate(&req, |_| {
            pieces += 1;
            pieces < 5
        })
        .unwrap();
    assert_eq!(out.finish_reason, FinishReason::Aborted);
    assert!(out.timings.generated_tokens <= 6, "{:?}", out.timings);
}

#[test]
fn over_long_prompts_are_refused_or_truncated_as_asked() {
    let mut model = edgellm::Model::load(
        common::model_bytes(SMOLLM2),
        &edgellm::LoadOptions { context_length: Some(64), ..Default::default() },
        edgellm::timing::native_clock,
    )
    .unwrap();
    let long = "The quick brown fox jumps over the lazy dog. ".repeat(20);
    let mut req = GenerateRequest::text(&long);
    req.max_new_tokens = 8;
    let e = model.generate(&req, |_| true).unwrap_err();
    assert_eq!(e.code, ErrorCode::ContextOverflow);
    assert!(e.message.contains("context holds 64"), "{}", e.message);

    req.overflow = OverflowPolicy::TruncateStart;
    let out = model.generate(&req, |_| true).unwrap();
    assert_eq!(out.timings.prompt_tokens, 64 - 8);
    assert_eq!(out.timings.generated_tokens, 8);

    // The model is still usable after both.
    req.prompt = Some("Hello".into());
    assert!(model.generate(&req, |_| true).is_ok());
}

#[test]
fn invalid_requests_are_explained() {
    let mut model = load(SMOLLM2);
    let mut req = GenerateRequest::text("   ");
    assert_eq!(model.generate(&req, |_| true).unwrap_err().code, ErrorCode::InvalidRequest);
    req.prompt = Some("Hi".into());
    req.sampling.top_p = 0.0;
    let e = model.generate(&req, |_| true).unwrap_err();
    assert!(e.message.contains("top_p"), "{}", e.message);
    let both = GenerateRequest {
        prompt: Some("a".into()),
        messages: Some(vec![Message::new("user", "b")]),
        ..Default::default()
    };
    assert_eq!(model.generate(&both, |_| true).unwrap_err().code, ErrorCode::InvalidRequest);
}

/// Run `req` to the end; the output and the prompt and answer's tokens.
fn run(model: &mut Model, req: &GenerateRequest) -> (GenerationOutput, Vec<u32>) {
    let mut session = Session::start(model, req).unwrap();
    while session.next(model).unwrap().is_some() {}
    (session.output(), session.tokens().to_vec())
}

/// The same request on a cold cache: the whole prompt prefilled from position 0.
fn cold(model: &mut Model, req: &GenerateRequest) -> (GenerationOutput, Vec<u32>) {
    model.clear_cache();
    let out = run(model, req);
    assert_eq!(out.0.timings.reused_prompt_tokens, 0);
    out
}

fn assert_reused(out: &GenerationOutput, at_least: usize) {
    let t = &out.timings;
    assert!(t.reused_prompt_tokens >= at_least, "{t:?}");
    assert_eq!(t.prefill_tokens, t.prompt_tokens - t.reused_prompt_tokens, "{t:?}");
}

/// A second turn of a chat: the system prompt and the first exchange come from the cache, and
/// greedy decoding gives exactly what a cold prefill of the whole prompt gives (our logits do not
/// depend on how a sequence is split into passes: tests/backends.rs).
fn second_turn_reuses_the_first(file: &str, system: &str) {
    let mut model = common::load(file);
    let mut chat = vec![Message::new("system", system), Message::new("user", "What is the capital of France?")];
    let mut req = GenerateRequest::chat(chat.clone());
    req.max_new_tokens = 24;
    let (first, _) = run(&mut model, &req);
    assert_eq!(first.timings.reused_prompt_tokens, 0);

    chat.push(Message::new("assistant", &first.text));
    chat.push(Message::new("user", "And what is the capital of Italy?"));
    req.messages = Some(chat);
    let (warm, warm_tokens) = run(&mut model, &req);
    let (fresh, fresh_tokens) = cold(&mut model, &req);
    let t = &warm.timings;
    eprintln!(
        "{file}: first turn {} prompt + {} answer tokens ({:?}); second turn of {} prompt tokens: {} reused, {} \
         prefilled in {:.1} ms (cold: {} in {:.1} ms)",
        first.timings.prompt_tokens,
        first.timings.generated_tokens,
        first.text,
        t.prompt_tokens,
        t.reused_prompt_tokens,
        t.prefill_tokens,
        t.prefill_ms,
        fresh.timings.prefill_tokens,
        fresh.timings.prefill_ms
    );
    // At least the whole first prompt (the answer's text may tokenize otherwise than it was
    // generated: then the common prefix ends there).
    assert_reused(&warm, first.timings.prompt_tokens);
    assert_eq!(fresh.timings.prefill_tokens, t.prompt_tokens);
    assert_eq!((warm_tokens, &warm.text, warm.finish_reason), (fresh_tokens, &fresh.text, fresh.finish_reason));
}

#[test]
fn smollm2_second_chat_turn_reuses_the_cache_and_answers_as_a_cold_prefill() {
    second_turn_reuses_the_first(SMOLLM2, "You are a concise assistant. Answer in one sentence.");
}

#[test]
fn gemma3_second_chat_turn_reuses_the_cache_and_answers_as_a_cold_prefill() {
    second_turn_reuses_the_first(GEMMA3, "You are a concise assistant. Answer in one sentence.");
}

#[test]
fn a_prompt_sharing_nothing_reuses_nothing_and_the_same_prompt_reuses_all_but_its_last_token() {
    let mut model = common::load(SMOLLM2);
    let mut req = GenerateRequest::text("Once upon a time");
    req.max_new_tokens = 12;
    let (a, _) = run(&mut model, &req);
    let (b, _) = run(&mut model, &req);
    assert_eq!(b.timings.reused_prompt_tokens, b.timings.prompt_tokens - 1, "{:?}", b.timings);
    assert_reused(&b, 1);
    assert_eq!((&a.text, a.finish_reason), (&b.text, b.finish_reason));
    // A benchmark asks for a cold prefill of the same prompt, and gets it.
    req.reuse_cache = false;
    let (cold_again, _) = run(&mut model, &req);
    assert_eq!(
        (cold_again.timings.reused_prompt_tokens, cold_again.timings.prefill_tokens),
        (0, cold_again.timings.prompt_tokens)
    );
    assert_eq!(cold_again.text, a.text);
    req.reuse_cache = true;

    req.prompt = Some("Photosynthesis turns light into".into());
    let first_tokens: Vec<u32> =
        ["Once upon a time", "Photosynthesis"].iter().map(|p| model.tokenizer.encode(p, true).unwrap()[0]).collect();
    assert_ne!(first_tokens[0], first_tokens[1], "the two prompts must differ from their first token");
    let (c, _) = run(&mut model, &req);
    assert_eq!((c.timings.reused_prompt_tokens, c.timings.prefill_tokens), (0, c.timings.prompt_tokens));
    assert_eq!(c.text, cold(&mut model, &req).0.text);
}

#[test]
fn an_aborted_generation_or_a_failed_pass_leaves_a_cache_that_is_still_right() {
    let mut model = common::load(SMOLLM2);
    let mut req = GenerateRequest::text("The three primary colours are");
    req.max_new_tokens = 30;
    let mut pieces = 0;
    let aborted = model
        .generate(&req, |_| {
            pieces += 1;
            pieces < 4
        })
        .unwrap();
    assert_eq!(aborted.finish_reason, FinishReason::Aborted);
    // The cache holds the prompt and the answer tokens that were run, nothing else.
    let prompt = model.tokenizer.encode("The three primary colours are", true).unwrap();
    let cached = model.cached_tokens().to_vec();
    assert_eq!(&cached[..prompt.len()], &prompt[..]);
    assert_eq!(cached.len(), prompt.len() + aborted.timings.generated_tokens - 1);

    // A pass refused before it runs changes nothing; one that skips positions is refused.
    assert_eq!(model.forward(&[u32::MAX], 3).unwrap_err().code, ErrorCode::InvalidRequest);
    assert_eq!(model.forward(&[1], cached.len() + 1).unwrap_err().code, ErrorCode::InvalidRequest);
    assert_eq!(model.cached_tokens(), &cached[..]);

    let (warm, warm_tokens) = run(&mut model, &req);
    assert_eq!(warm.timings.reused_prompt_tokens, prompt.len() - 1);
    let (fresh, fresh_tokens) = cold(&mut model, &req);
    assert_eq!((warm_tokens, warm.text), (fresh_tokens, fresh.text));
}

/// Gemma 3's local layers see 512 positions back. A second sequence that keeps the first 600
/// positions of the cache and replaces the rest gives the logits of a pass from 0, bit for bit:
/// the cache is indexed by absolute position and nothing past `pos` is read before it is written.
#[test]
fn gemma3_going_back_in_the_cache_past_the_sliding_window_matches_a_pass_from_zero() {
    let mut model = common::load(GEMMA3);
    let text = "The river flows past the old mill and under the stone bridge. ".repeat(60);
    let a = model.tokenizer.encode(&text, true).unwrap();
    assert!(a.len() > 700, "{}", a.len());
    let mut b = a[..600].to_vec();
    b.extend(
        model.tokenizer.encode(" Then the story turned to the city and its many lights at night.", false).unwrap(),
    );
    model.forward(&a[..700], 0).unwrap();
    let resumed = model.forward(&b[600..], 600).unwrap();
    assert_eq!(model.cached_tokens(), &b[..]);
    assert_eq!(resumed, model.forward(&b, 0).unwrap());
}

#[test]
fn the_candle_backends_reuse_nothing() {
    let opts = LoadOptions { backend: Some(BackendKind::Candle), ..Default::default() };
    let mut model = Model::load(common::model_bytes(SMOLLM2), &opts, edgellm::timing::native_clock).unwrap();
    let mut req = GenerateRequest::text("Once upon a time");
    req.max_new_tokens = 4;
    let (a, _) = run(&mut model, &req);
    let (b, _) = run(&mut model, &req);
    assert_eq!(b.timings.reused_prompt_tokens, 0);
    assert_eq!(a.text, b.text);
}

/// Greedy SmolLM2 asked to repeat a phrase loops on it from its first token; told about days at
/// home, it repeats the line with the day's number changed (a near loop).
#[test]
fn the_repetition_guard_ends_real_loops_and_cuts_the_repeats() {
    let mut model = common::load(SMOLLM2);
    let mut req = GenerateRequest::chat(vec![Message::new("user", "Repeat the phrase 'I love you' many times.")]);
    req.max_new_tokens = 48;
    let mut streamed = String::new();
    let out = model
        .generate(&req, |piece| {
            streamed.push_str(piece);
            true
        })
        .unwrap();
    assert_eq!((out.finish_reason, out.text.as_str()), (FinishReason::Repetition, "I love you,"));
    assert!(out.timings.generated_tokens <= 24, "{:?}", out.timings);
    assert!(streamed.starts_with("I love you, I love you, I love you"), "streamed before it was found: {streamed:?}");

    // Off, or a fixed-length run: the loop goes on to max_new_tokens.
    for req in [
        GenerateRequest { repetition_guard: RepetitionGuard::OFF, ..req.clone() },
        GenerateRequest { ignore_eos: true, ..req.clone() },
    ] {
        let raw = model.generate(&req, |_| true).unwrap();
        assert_eq!((raw.finish_reason, raw.timings.generated_tokens), (FinishReason::Length, 48));
        assert!(raw.text.starts_with(&out.text) && raw.text.matches("I love you").count() > 8, "{:?}", raw.text);
    }

    let mut req = GenerateRequest::text("Day 1: I rested at home.\nDay 2: I rested at home.\nDay 3:");
    req.max_new_tokens = 64;
    let out = model.generate(&req, |_| true).unwrap();
    assert_eq!((out.finish_reason, out.text.as_str()), (FinishReason::Repetition, " I rested at home."));
    assert!(out.timings.generated_tokens < 48, "{:?}", out.timings);
}

#[test]
fn gemma3_base_model_loop_is_cut_after_one_copy() {
    let mut model = common::load(GEMMA3);
    let mut req = GenerateRequest::text("1, 2, 1, 2, 1, 2,");
    req.max_new_tokens = 40;
    let out = model.generate(&req, |_| true).unwrap();
    assert_eq!((out.finish_reason, out.text.as_str()), (FinishReason::Repetition, " 1, 2,"));
    assert!(out.timings.generated_tokens <= 24, "{:?}", out.timings);
}
