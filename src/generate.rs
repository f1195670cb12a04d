//! The generation loop: prompt → tokens → prefill → one token per step, with stop rules,
//! streaming text and timings.
//!
//! A `Session` advances one token per `next()` call so that a caller can stream, yield to its
//! event loop between tokens (wasm runs on one thread) and cancel at any step. `Model::generate`
//! is the same loop for callers that just want the text.

use serde::{Deserialize, Serialize};

use crate::bail;
use crate::error::Result;
use crate::model::Model;
use crate::sampling::{Sampler, SamplingParams};
use crate::template::{ChatTemplate, Message};
use crate::timing::{per_second, Clock, GenerationTimings};
use crate::tokenizer::{StreamDecoder, Tokenizer};

pub const DEFAULT_MAX_NEW_TOKENS: usize = 256;

/// What to do when prompt + `max_new_tokens` do not fit in the context.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OverflowPolicy {
    /// Refuse with a `context_overflow` error (the default: silent truncation hides bugs).
    #[default]
    Error,
    /// Drop the oldest prompt tokens (keeping BOS) until it fits.
    TruncateStart,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct GenerateRequest {
    /// A chat, rendered with the model's chat template. Exactly one of `messages` / `prompt`.
    pub messages: Option<Vec<Message>>,
    /// Raw text, tokenized as is (BOS added where the model wants it).
    pub prompt: Option<String>,
    pub max_new_tokens: usize,
    /// Generation ends when the text contains one of these; the text returned stops before it.
    pub stop: Vec<String>,
    pub overflow: OverflowPolicy,
    /// Keep generating through end-of-turn tokens until `max_new_tokens` (benchmarks use it so
    /// every run produces the same number of tokens).
    pub ignore_eos: bool,
    #[serde(flatten)]
    pub sampling: SamplingParams,
}

impl Default for GenerateRequest {
    fn default() -> Self {
        Self {
            messages: None,
            prompt: None,
            max_new_tokens: DEFAULT_MAX_NEW_TOKENS,
            stop: Vec::new(),
            overflow: OverflowPolicy::Error,
            ignore_eos: false,
            sampling: SamplingParams::default(),
        }
    }
}

impl GenerateRequest {
    pub fn chat(messages: Vec<Message>) -> Self {
        Self { messages: Some(messages), ..Self::default() }
    }

    pub fn text(prompt: &str) -> Self {
        Self { prompt: Some(prompt.into()), ..Self::default() }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// The model produced an end-of-turn token or a stop string appeared.
    Stop,
    /// `max_new_tokens` reached.
    Length,
    /// The context window is full.
    ContextFull,
    /// The caller cancelled.
    Aborted,
}

#[derive(Debug, Clone, Serialize)]
pub struct GenerationOutput {
    pub text: String,
    pub finish_reason: FinishReason,
    pub timings: GenerationTimings,
}

/// Holds back the tail of the text that could still turn into a stop string.
struct StopStrings {
    stops: Vec<String>,
    text: String,
    emitted: usize,
}

impl StopStrings {
    /// Add `chunk`; return the text now safe to emit and whether a stop string was found.
    fn push(&mut self, chunk: &str) -> (String, bool) {
        self.text.push_str(chunk);
        let hit = self.stops.iter().filter_map(|s| self.text[self.emitted..].find(s.as_str())).min();
        if let Some(at) = hit {
            let end = self.emitted + at;
            let out = self.text[self.emitted..end].to_string();
            self.text.truncate(end);
            self.emitted = end;
            return (out, true);
        }
        // Longest suffix of the text that is a proper prefix of some stop string.
        let held = self
            .stops
            .iter()
            .flat_map(|s| (1..s.len()).filter(move |&n| s.is_char_boundary(n)).map(move |n| &s[..n]))
            .filter(|p| self.text.ends_with(p))
            .map(|p| p.len())
            .max()
            .unwrap_or(0);
        let end = (self.text.len() - held).max(self.emitted);
        let out = self.text[self.emitted..end].to_string();
        self.emitted = end;
        (out, false)
    }

    fn flush(&mut self) -> String {
        let out = self.text[self.emitted..].to_string();
        self.emitted = self.text.len();
        out
    }
}

/// What a generation needs from a model besides its forward pass. The forward pass is the
/// caller's: `Model` runs it synchronously ([`Session::next`]); the ONNX backend awaits it on
/// the GPU between [`Session::step`] and [`Session::accept`].
pub trait TextModel {
    fn tokenizer(&self) -> &Tokenizer;
    fn template(&self) -> &ChatTemplate;
    fn clock(&self) -> Clock;
    fn context_length(&self) -> usize;
}

impl TextModel for Model {
    fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }
    fn template(&self) -> &ChatTemplate {
        &self.template
    }
    fn clock(&self) -> Clock {
        self.clock
    }
    fn context_length(&self) -> usize {
        self.info.context_length
    }
}

/// The tokens the model must run next, at positions `pos..`, for the logits of the last one.
pub struct Step<'a> {
    pub tokens: &'a [u32],
    pub pos: usize,
    /// On the first step (`pos == 0`): the positions the whole generation can reach, so the
    /// model can size its KV cache once.
    pub positions: usize,
}

pub struct Session {
    tokens: Vec<u32>,
    /// Tokens already in the model's KV cache.
    cached: usize,
    max_new_tokens: usize,
    ignore_eos: bool,
    sampler: Sampler,
    decoder: StreamDecoder,
    stops: StopStrings,
    finish: Option<FinishReason>,
    timings: GenerationTimings,
    t_start: f64,
    t_first: f64,
    /// When the pending step's forward pass began.
    t_step: f64,
}

impl Session {
    /// Render and tokenize the request and check it fits; no model compute yet.
    pub fn start(model: &impl TextModel, req: &GenerateRequest) -> Result<Self> {
        let t_start = (model.clock())();
        let sampler = Sampler::new(req.sampling.clone())?;
        let text = match (&req.messages, &req.prompt) {
            (Some(m), None) => model.template().render(m, true)?,
            (None, Some(p)) => p.clone(),
            _ => bail!(InvalidRequest, "give exactly one of `messages` or `prompt`"),
        };
        if text.trim().is_empty() {
            bail!(InvalidRequest, "the prompt is empty");
        }
        if req.max_new_tokens == 0 {
            bail!(InvalidRequest, "max_new_tokens must be at least 1");
        }
        let tokenizer = model.tokenizer();
        let mut tokens = tokenizer.encode(&text, true)?;
        let ctx = model.context_length();
        if tokens.len() + req.max_new_tokens > ctx {
            match req.overflow {
                OverflowPolicy::Error => bail!(
                    ContextOverflow,
                    "the prompt is {} tokens and max_new_tokens is {}, but the context holds {ctx}; \
                     shorten the prompt, lower max_new_tokens or pass overflow: \"truncate_start\"",
                    tokens.len(),
                    req.max_new_tokens
                ),
                OverflowPolicy::TruncateStart => {
                    if req.max_new_tokens >= ctx {
                        bail!(
                            InvalidRequest,
                            "max_new_tokens {} leaves no room for a prompt in a context of {ctx}",
                            req.max_new_tokens
                        );
                    }
                    let keep_bos = usize::from(tokenizer.bos.is_some() && tokens.first() == tokenizer.bos.as_ref());
                    let room = ctx - req.max_new_tokens - keep_bos;
                    let cut = tokens.len() - keep_bos - room;
                    tokens.drain(keep_bos..keep_bos + cut);
                }
            }
        }
        let t_tokenized = (model.clock())();
        Ok(Self {
            timings: GenerationTimings {
                prompt_tokens: tokens.len(),
                tokenize_ms: t_tokenized - t_start,
                ..Default::default()
            },
            tokens,
            cached: 0,
            max_new_tokens: req.max_new_tokens,
            ignore_eos: req.ignore_eos,
            sampler,
            decoder: StreamDecoder::default(),
            stops: StopStrings {
                stops: req.stop.iter().filter(|s| !s.is_empty()).cloned().collect(),
                text: String::new(),
                emitted: 0,
            },
            finish: None,
            t_start,
            t_first: 0.0,
            t_step: 0.0,
        })
    }

    pub fn finish_reason(&self) -> Option<FinishReason> {
        self.finish
    }

    /// Prompt and generated token ids so far.
    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    pub fn text(&self) -> &str {
        &self.stops.text
    }

    pub fn abort(&mut self) {
        self.finish.get_or_insert(FinishReason::Aborted);
    }

    pub fn timings(&self) -> GenerationTimings {
        self.timings.clone()
    }

    /// Compute one token. Returns the text it adds (possibly empty while a character or a
    /// possible stop string is incomplete), or `None` once the generation has finished.
    pub fn next(&mut self, model: &mut Model) -> Result<Option<String>> {
        let Some(step) = self.step(model) else { return Ok(None) };
        let (pos, positions) = (step.pos, step.positions);
        if pos == 0 {
            // The whole generation's KV cache at once: growing it token by token would leave
            // the smaller copies behind as holes in wasm memory, which never shrinks.
            model.reserve_positions(positions);
        }
        let logits = model.forward(&self.tokens[pos..], pos)?;
        self.accept(model, logits)
    }

    /// What to run next, or `None` once the generation has finished. Follow it with
    /// [`Session::accept`] and the logits of the step's last token.
    pub fn step(&mut self, model: &impl TextModel) -> Option<Step<'_>> {
        if self.finish.is_some() {
            return None;
        }
        self.t_step = (model.clock())();
        Some(Step {
            tokens: &self.tokens[self.cached..],
            pos: self.cached,
            positions: self.tokens.len() + self.max_new_tokens,
        })
    }

    /// Sample from the logits of the last [`Session::step`]; returns the text the token adds.
    pub fn accept(&mut self, model: &impl TextModel, logits: Vec<f32>) -> Result<Option<String>> {
        let clock = model.clock();
        if self.cached == 0 {
            self.timings.prefill_ms = clock() - self.t_step;
            self.timings.prefill_tok_s = per_second(self.tokens.len(), self.timings.prefill_ms);
        }
        self.cached = self.tokens.len();
        let token = self.sampler.sample(logits, &self.tokens)?;

        let now = clock();
        self.timings.generated_tokens += 1;
        if self.timings.generated_tokens == 1 {
            self.t_first = now;
            self.timings.time_to_first_token_ms = now - self.t_start;
        }
        self.timings.decode_ms = now - self.t_first;
        self.timings.decode_tok_s = per_second(self.timings.generated_tokens - 1, self.timings.decode_ms);
        self.timings.total_ms = now - self.t_start;

        let tokenizer = model.tokenizer();
        if !self.ignore_eos && tokenizer.is_stop_token(token) {
            self.finish = Some(FinishReason::Stop);
            return Ok(Some(self.stops.flush()));
        }
        self.tokens.push(token);
        let piece = self.decoder.step(tokenizer, token)?;
        let (mut out, hit) = self.stops.push(&piece);
        if hit {
            self.finish = Some(FinishReason::Stop);
        } else if self.timings.generated_tokens >= self.max_new_tokens {
            self.finish = Some(FinishReason::Length);
        } else if self.tokens.len() >= model.context_length() {
            self.finish = Some(FinishReason::ContextFull);
        }
        if self.finish.is_some() {
            out.push_str(&self.stops.flush());
        }
        Ok(Some(out))
    }

    pub fn output(&self) -> GenerationOutput {
        GenerationOutput {
            text: self.text().to_string(),
            finish_reason: self.finish.unwrap_or(FinishReason::Aborted),
            timings: self.timings(),
        }
    }
}

impl Model {
    /// Generate to the end, calling `on_text` with each new piece of text; return `false` from
    /// it to stop early.
    pub fn generate(
        &mut self,
        req: &GenerateRequest,
        mut on_text: impl FnMut(&str) -> bool,
    ) -> Result<GenerationOutput> {
        let mut session = Session::start(self, req)?;
        while let Some(piece) = session.next(self)? {
            if !piece.is_empty() && !on_text(&piece) {
                session.abort();
            }
        }
        Ok(session.output())
    }
}

#[cfg(test)]
mod tests {
    use super::StopStrings;

    fn stops(s: &[&str]) -> StopStrings {
        StopStrings { stops: s.iter().map(|s| s.to_string()).collect(), text: String::new(), emitted: 0 }
    }

    #[test]
    fn stop_string_split_across_chunks_is_held_back_then_cut() {
        let mut s = stops(&["\nUser:"]);
        assert_eq!(s.push("Hello"), ("Hello".into(), false));
        assert_eq!(s.push(" there\nUs"), (" there".into(), false));
        assert_eq!(s.push("er: hi"), ("".into(), true));
        assert_eq!(s.text, "Hello there");
    }

    #[test]
    fn held_text_is_released_when_it_cannot_be_a_stop() {
        let mut s = stops(&["###"]);
        assert_eq!(s.push("a #"), ("a ".into(), false));
        assert_eq!(s.push("b"), ("#b".into(), false));
        assert_eq!(s.flush(), "");
    }
}
