//! Our forward pass (the `edgellm` backend: own kernels, batched prefill, threads) against
//! candle's model code (the `candle` backend, the un-optimised reference) on the real models:
//! same greedy tokens, logits within a stated bound, and results that do not depend on how
//! the prompt is batched or how many threads run.

mod common;

use common::{model_bytes, GEMMA3, SMOLLM2};
use edgellm::model::BackendKind;
use edgellm::timing::native_clock;
use edgellm::{LoadOptions, Message, Model};

/// The largest |Δlogit| allowed between backends (logits span about ±30). Both quantize
/// activations to 8 bits the same way and agree to 1e-5 on a one-token prompt. From the second
/// position on, these small models are chaotic: scaling SmolLM2's attention scores by 1 + 1e-6
/// moves its logits by 0.69, so float summation order alone moves them by 0.5–1.0 — as far as
/// either backend is from llama.cpp on the same file (llama-cpp-python, SmolLM2, 19 positions:
/// ours 0.55–1.04, candle 0.54–1.03, the same argmax everywhere; up to 1.5 over 32 greedy steps
/// of Gemma 3). Summing K-quant super-blocks in integers as ggml does moved one of Gemma 3's
/// 33 steps here to 2.04 over its 262k logits, while its distance from llama.cpp stayed as it
/// was (teacher-forced, 95 positions, tokens above log-prob −12: median 0.59 and max 1.05, 0.57
/// and 0.94 before; candle's 0.54 and 1.16).
const MAX_LOGIT_DIFF: f32 = 2.5;
/// Greedy steps compared, each from the same prefix (the reference's own choices).
const GREEDY_STEPS: usize = 32;

fn load(file: &str, backend: BackendKind) -> Model {
    let opts = LoadOptions { backend: Some(backend), ..Default::default() };
    Model::load(model_bytes(file), &opts, native_clock).unwrap()
}

fn messages() -> Vec<Message> {
    vec![
        Message::new("system", "Answer from the sources, citing them as [1], [2]."),
        Message::new(
            "user",
            "Sources:\n[1] Life cycle assessment counts the environmental costs of a product from raw materials to \
             disposal.\n[2] Engineers use it to compare designs before building them.\n\nQuestion: What is life \
             cycle assessment?",
        ),
    ]
}

fn prompt_tokens(model: &Model) -> Vec<u32> {
    let text = model.template.render(&messages(), true).unwrap();
    model.tokenizer.encode(&text, true).unwrap()
}

/// (best, margin over the runner-up).
fn top2(xs: &[f32]) -> (usize, f32) {
    let best = xs.iter().enumerate().fold(0, |b, (i, &v)| if v > xs[b] { i } else { b });
    let second = xs.iter().enumerate().filter(|&(i, _)| i != best).map(|(_, &v)| v).fold(f32::MIN, f32::max);
    (best, xs[best] - second)
}

/// Both backends see the same prompt and then the same tokens (the reference's greedy picks):
/// at every step their logits stay within MAX_LOGIT_DIFF and they pick the same token wherever
/// the reference's choice is clear (a margin over the runner-up wider than that noise). Where
/// it is not, either pick is an honest greedy answer and a free-running continuation may part.
fn backends_agree(file: &str) {
    let mut ours = load(file, BackendKind::Edgellm);
    let mut reference = load(file, BackendKind::Candle);
    let mut tokens = prompt_tokens(&ours);
    assert!(tokens.len() > 60, "a prompt long enough to batch: {}", tokens.len());

    let (mut a, mut b) = (ours.forward(&tokens, 0).unwrap(), reference.forward(&tokens, 0).unwrap());
    let (mut worst, mut clear, mut near_ties, mut same) = (0f32, 0, 0, 0);
    for _ in 0..GREEDY_STEPS {
        let diff = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
        worst = worst.max(diff);
        assert!(diff <= MAX_LOGIT_DIFF, "{file}: logits differ by {diff} after {} tokens", tokens.len());
        let (want, margin) = top2(&b);
        same += usize::from(top2(&a).0 == want);
        if margin > MAX_LOGIT_DIFF {
            assert_eq!(top2(&a).0, want, "{file}: a clear greedy choice differs after {} tokens", tokens.len());
            clear += 1;
        } else {
            near_ties += 1;
        }
        tokens.push(want as u32);
        let pos = tokens.len() - 1;
        a = ours.forward(&tokens[pos..], pos).unwrap();
        b = reference.forward(&tokens[pos..], pos).unwrap();
    }
    eprintln!(
        "{file}: {GREEDY_STEPS} greedy steps: {clear} clear choices, all identical; {near_ties} near-ties; \
         {same} identical in all; max |Δlogit| {worst}"
    );
    assert!(clear >= GREEDY_STEPS / 4, "{file}: too few clear choices to mean anything ({clear})");
}

#[test]
fn smollm2_q4_1_matches_candle() {
    backends_agree(SMOLLM2);
}

#[test]
fn gemma3_q4_k_m_matches_candle() {
    backends_agree(GEMMA3);
}

/// A prompt run in one batch, in uneven pieces, or one token at a time, on one thread or
/// several, gives bit-identical logits: every output element is one dot product computed the
/// same way whatever the batch or the split across threads.
#[test]
fn logits_do_not_depend_on_batching_or_threads() {
    let mut model = load(SMOLLM2, BackendKind::Edgellm);
    let tokens = prompt_tokens(&model);
    let whole = model.forward(&tokens, 0).unwrap();

    let mut pieces = Vec::new();
    let mut pos = 0;
    for len in [5, 1, 17, 3].iter().cycle() {
        if pos >= tokens.len() {
            break;
        }
        let end = (pos + len).min(tokens.len());
        pieces = model.forward(&tokens[pos..end], pos).unwrap();
        pos = end;
    }
    assert_eq!(whole, pieces, "batched prefill differs from pieces");

    // Longer than one prefill chunk (256 tokens), whole and in pieces of 100.
    let long: Vec<u32> = tokens.iter().cycle().take(300).copied().collect();
    let whole_long = model.forward(&long, 0).unwrap();
    let mut last = Vec::new();
    for (i, piece) in long.chunks(100).enumerate() {
        last = model.forward(piece, i * 100).unwrap();
    }
    assert_eq!(whole_long, last, "a prompt over one prefill chunk differs from pieces");

    let one_thread = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    let three_threads = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
    assert_eq!(whole, one_thread.install(|| model.forward(&tokens, 0).unwrap()));
    assert_eq!(whole, three_threads.install(|| model.forward(&tokens, 0).unwrap()));
}
