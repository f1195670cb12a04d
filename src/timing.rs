//! Timings reported to callers, and the clock they are measured with.
//!
//! The clock is injected: `std::time::Instant` panics on wasm32-unknown-unknown, so the wasm
//! bindings pass `performance.now()` and native code uses `Instant`.

use serde::Serialize;

/// Milliseconds from an arbitrary origin, monotonic.
pub type Clock = fn() -> f64;

#[cfg(not(target_arch = "wasm32"))]
pub fn native_clock() -> f64 {
    use std::sync::OnceLock;
    use std::time::Instant;
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    ORIGIN.get_or_init(Instant::now).elapsed().as_secs_f64() * 1000.0
}

/// The default clock: `Instant` natively. On wasm32 there is no portable clock without
/// JavaScript, so this one reads 0 and the bindings always supply their own.
pub fn default_clock() -> Clock {
    #[cfg(not(target_arch = "wasm32"))]
    {
        native_clock
    }
    #[cfg(target_arch = "wasm32")]
    {
        || 0.0
    }
}

/// Where the time of a model load went.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LoadTimings {
    /// Reading and validating the GGUF header, metadata and tensor directory.
    pub parse_ms: f64,
    /// Building the tokenizer and chat template from the metadata.
    pub tokenizer_ms: f64,
    /// Turning tensor bytes into model weights.
    pub weights_ms: f64,
    pub total_ms: f64,
}

/// Where the time of one generation went.
#[derive(Debug, Clone, Default, Serialize)]
pub struct GenerationTimings {
    /// The whole prompt, whether run or taken from the cache.
    pub prompt_tokens: usize,
    /// The prompt's first tokens, whose keys and values the cache still held from the last
    /// generation (the system prompt and earlier turns of a chat), so not run again.
    pub reused_prompt_tokens: usize,
    /// The prompt tokens the prefill ran: `prompt_tokens - reused_prompt_tokens`.
    pub prefill_tokens: usize,
    pub generated_tokens: usize,
    /// Template rendering and tokenization of the prompt.
    pub tokenize_ms: f64,
    pub prefill_ms: f64,
    /// `prefill_tokens / prefill_ms`: the speed of the tokens actually run.
    pub prefill_tok_s: f64,
    /// From the request to the first generated token (tokenize + prefill + first sample).
    pub time_to_first_token_ms: f64,
    /// Time spent producing tokens after the first one.
    pub decode_ms: f64,
    pub decode_tok_s: f64,
    pub total_ms: f64,
}

pub fn per_second(count: usize, ms: f64) -> f64 {
    if ms > 0.0 {
        count as f64 * 1000.0 / ms
    } else {
        0.0
    }
}
