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
    /// every run produces the same number of tokens). It also turns the repetition guard off:
    /// a benchmark needs its fixed token count even when the model loops.
    pub ignore_eos: bool,
    /// Keep the prompt prefix the model's KV cache already holds (the default). `false` prefills
    /// the whole prompt: benchmarks measure a cold prefill with it.
    pub reuse_cache: bool,
    /// End the generation when the output starts repeating itself (on by default; `false` or
    /// `{ "min_span": 0 }` turns it off). See [`RepetitionGuard`].
    #[serde(deserialize_with = "guard_or_bool")]
    pub repetition_guard: RepetitionGuard,
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
            reuse_cache: true,
            repetition_guard: RepetitionGuard::default(),
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
    /// The output started repeating itself ([`RepetitionGuard`]); the text ends before the
    /// repeats.
    Repetition,
}

#[derive(Debug, Clone, Serialize)]
pub struct GenerationOutput {
    pub text: String,
    pub finish_reason: FinishReason,
    pub timings: GenerationTimings,
}

/// Ends a generation whose output has started repeating itself. Small models, greedy ones
/// above all, fall into loops — the same sentence again and again, or a numbered list whose
/// items differ only in their number — and then spend the rest of `max_new_tokens` on text
/// nobody can use. The sampling penalties (`repetition_penalty`, `no_repeat_ngram_size`)
/// change every choice and so the answer; this changes no choice, it only stops.
///
/// It looks at the generated tokens alone, never the prompt: an answer that quotes its sources
/// is copying them, not looping. Two rules, checked after every token:
///
/// - **Exact loop**: the last `min_span` tokens already occurred, in a row, earlier in the
///   output (occurrences may overlap, so a loop with a period of 4 tokens is caught 16 + 4
///   tokens in, a whole repeated paragraph 16 tokens into its second copy).
/// - **Near loop**: for some period p from 4 to `max_near_period` tokens, the last
///   max(3p, 24) tokens equal the tokens p before them except for at most one token in every
///   p — the same stretch again and again with one token changed, such as a counter
///   ("1. Recycling saves energy.\n2. Recycling saves energy.\n3. …"), which the exact rule
///   never sees. Four or more copies are seen before it fires. Periods under 4 are left alone
///   (counting, "1, 2, 3,", changes one token in every 2), and a list whose items differ in
///   more than one token each — real content — never matches.
///
/// When a rule fires, the text ends where the first repeat begins (moved to the nearest end of
/// a sentence or line, else of a clause, within one copy), so the answer keeps one copy. The
/// repeats already streamed stay streamed: the final text is the one to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RepetitionGuard {
    /// Exact loops: how many tokens must repeat in a row (default 16, about a sentence). Shorter
    /// verbatim repeats — a phrase used again, a short line of code — occur in good answers; a
    /// longer one (a refrain, a copied block of code) ends the answer, so raise it for those.
    /// 0 turns the whole guard off.
    pub min_span: usize,
    /// Near loops: the longest repeating stretch looked for, in tokens (default 32, a long
    /// line); 0 turns this rule off.
    pub max_near_period: usize,
}

const DEFAULT_MIN_SPAN: usize = 16;
const DEFAULT_MAX_NEAR_PERIOD: usize = 32;
/// Near loops shorter than this are not looked for: counting changes 1 token in every 2.
const NEAR_MIN_PERIOD: usize = 4;
/// A near loop must hold over this many tokens, and over 3 periods: enough copies that a short
/// legitimate list (three items that differ only in a number) is not cut.
const NEAR_MIN_TOKENS: usize = 24;
const NEAR_PERIODS: usize = 3;

impl Default for RepetitionGuard {
    fn default() -> Self {
        Self { min_span: DEFAULT_MIN_SPAN, max_near_period: DEFAULT_MAX_NEAR_PERIOD }
    }
}

/// `repetition_guard` also takes `true` (the defaults), `false` (off) and `null` (the defaults:
/// JavaScript passes `undefined` options on as such).
fn guard_or_bool<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<RepetitionGuard, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum GuardOrBool {
        Bool(bool),
        Guard(RepetitionGuard),
    }
    Ok(match Option::<GuardOrBool>::deserialize(d)? {
        None | Some(GuardOrBool::Bool(true)) => RepetitionGuard::default(),
        Some(GuardOrBool::Bool(false)) => RepetitionGuard::OFF,
        Some(GuardOrBool::Guard(g)) => g,
    })
}

/// A loop at the end of an output: from `start + period` on, every token repeats the one
/// `period` before it (in a near loop, all but one token in each period).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Loop {
    pub start: usize,
    pub period: usize,
}

impl Loop {
    /// The first token of the first repeat: the text should end before it.
    pub fn first_repeat(&self) -> usize {
        self.start + self.period
    }
}

impl RepetitionGuard {
    pub const OFF: Self = Self { min_span: 0, max_near_period: 0 };

    /// Whether `generated` (the output's tokens, without the prompt) ends in a loop.
    pub fn find_loop(&self, generated: &[u32]) -> Option<Loop> {
        if self.min_span == 0 {
            return None;
        }
        exact_loop(generated, self.min_span).or_else(|| near_loop(generated, self.max_near_period))
    }
}

fn exact_loop(g: &[u32], span: usize) -> Option<Loop> {
    let n = g.len();
    if n <= span {
        return None;
    }
    let tail = &g[n - span..];
    // The nearest earlier occurrence: the shortest period, which reaches back furthest.
    let period = (1..=n - span).find(|&p| g[n - span - p..n - p] == *tail)?;
    // Back to where the copying began.
    let mut start = n - span - period;
    while start > 0 && g[start - 1] == g[start - 1 + period] {
        start -= 1;
    }
    Some(Loop { start, period })
}

fn near_loop(g: &[u32], max_period: usize) -> Option<Loop> {
    let n = g.len();
    'period: for p in NEAR_MIN_PERIOD..=max_period {
        let len = (NEAR_PERIODS * p).max(NEAR_MIN_TOKENS);
        if n < len + p {
            break; // longer periods need more tokens still
        }
        // Walk back comparing each token with the one p before; a differing token is allowed
        // only if no other differs within p of it (one change per copy). Over the last `len`
        // tokens that must hold; further back, where it stops holding is where the loop began.
        let (mut changed, mut changed_lately): (Option<usize>, bool) = (None, false);
        let mut j = n;
        while j > p {
            let i = j - 1;
            if g[i] != g[i - p] {
                if changed.is_some_and(|c| c - i < p) {
                    if i >= n - len {
                        continue 'period;
                    }
                    break;
                }
                changed = Some(i);
                changed_lately |= i >= n - len;
            }
            j = i;
        }
        // Exact copies are the other rule's (whose `min_span` the caller may have raised).
        if changed_lately {
            return Some(Loop { start: j - p, period: p });
        }
    }
    None
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

    /// End the text at `len` (a character boundary) and return what is left of it to emit;
    /// what was already emitted past `len` cannot be taken back.
    fn cut(&mut self, len: usize) -> String {
        self.text.truncate(len);
        let out = self.text.get(self.emitted..).unwrap_or("").to_string();
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
    /// The tokens whose keys and values the model's cache holds at positions `0..`, which a
    /// new generation may keep instead of running again from position 0: the next turn of a
    /// chat shares the system prompt and the earlier turns. A model whose cache cannot be cut
    /// back to a prefix reports none (the default), and every generation starts at 0.
    fn cached_tokens(&self) -> &[u32] {
        &[]
    }
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
    fn cached_tokens(&self) -> &[u32] {
        Model::cached_tokens(self)
    }
}

/// How many of `prompt`'s first tokens the cache already holds. At least the last prompt token
/// is always run: its logits choose the first new token.
fn reusable(cached: &[u32], prompt: &[u32]) -> usize {
    let common = cached.iter().zip(prompt).take_while(|(a, b)| a == b).count();
    common.min(prompt.len().saturating_sub(1))
}

/// The tokens the model must run next, at positions `pos..`, for the logits of the last one.
pub struct Step<'a> {
    pub tokens: &'a [u32],
    pub pos: usize,
    /// On the first step (`first`): the positions the whole generation can reach, so the
    /// model can size its KV cache once.
    pub positions: usize,
    /// Whether this is the prefill: the prompt's tokens from `pos` on (those before `pos` are
    /// in the cache already).
    pub first: bool,
}

pub struct Session {
    tokens: Vec<u32>,
    /// Tokens already in the model's KV cache: on the first step the prompt prefix taken from
    /// the cache, then everything up to the last token.
    cached: usize,
    /// Whether the prompt has been run (the first step accepted).
    prefilled: bool,
    max_new_tokens: usize,
    ignore_eos: bool,
    reuse_cache: bool,
    /// `OFF` when `ignore_eos`.
    guard: RepetitionGuard,
    /// Length of the text after each generated token, for cutting a loop off.
    text_ends: Vec<usize>,
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
    /// Render and tokenize the request and check it fits; no model compute yet. The prompt
    /// prefix `model` already has in its cache will not be run again (see
    /// [`TextModel::cached_tokens`]).
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
        let mut session = Self {
            timings: GenerationTimings {
                prompt_tokens: tokens.len(),
                tokenize_ms: t_tokenized - t_start,
                ..Default::default()
            },
            tokens,
            cached: 0,
            prefilled: false,
            max_new_tokens: req.max_new_tokens,
            ignore_eos: req.ignore_eos,
            reuse_cache: req.reuse_cache,
            // A fixed-length run (a benchmark) must get its token count even from a loop.
            guard: if req.ignore_eos { RepetitionGuard::OFF } else { req.repetition_guard },
            text_ends: Vec::new(),
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
        };
        session.reuse(model);
        Ok(session)
    }

    /// Take the prompt prefix the model's cache holds now.
    fn reuse(&mut self, model: &impl TextModel) {
        let prompt = &self.tokens[..self.timings.prompt_tokens];
        self.cached = if self.reuse_cache { reusable(model.cached_tokens(), prompt) } else { 0 };
        self.timings.reused_prompt_tokens = self.cached;
        self.timings.prefill_tokens = prompt.len() - self.cached;
    }

    pub fn finish_reason(&self) -> Option<FinishReason> {
        self.finish
    }

    /// Prompt and generated token ids so far.
    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    /// The answer so far. Streamed pieces cannot be taken back, so where the two differ this
    /// is the one to keep: a stop string is never in it, and when the repetition guard ends a
    /// generation the repeats it streamed are cut off here.
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
        if step.first {
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
        if !self.prefilled {
            // Again: another generation may have used the model since `start`.
            self.reuse(model);
        }
        self.t_step = (model.clock())();
        Some(Step {
            tokens: &self.tokens[self.cached..],
            pos: self.cached,
            positions: self.tokens.len() + self.max_new_tokens,
            first: !self.prefilled,
        })
    }

    /// Sample from the logits of the last [`Session::step`]; returns the text the token adds.
    pub fn accept(&mut self, model: &impl TextModel, logits: Vec<f32>) -> Result<Option<String>> {
        let clock = model.clock();
        if !self.prefilled {
            self.prefilled = true;
            self.timings.prefill_ms = clock() - self.t_step;
            self.timings.prefill_tok_s = per_second(self.timings.prefill_tokens, self.timings.prefill_ms);
        }
        self.cached = self.tokens.len();
        let token = self.sampler.sample(
            logits,
            &self.tokens,
            self.timings.prompt_tokens,
            &model.tokenizer().stop_tokens,
            &self.stops.text,
        )?;

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
        let emitted_before = self.stops.emitted;
        let (mut out, hit) = self.stops.push(&piece);
        self.text_ends.push(self.stops.text.len());
        if hit {
            self.finish = Some(FinishReason::Stop);
        } else if let Some(found) = self.guard.find_loop(&self.tokens[self.timings.prompt_tokens..]) {
            self.finish = Some(FinishReason::Repetition);
            self.stops.emitted = emitted_before;
            return Ok(Some(self.stops.cut(self.loop_cut(found))));
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

    /// Where the text should end for a loop found in the generated tokens: before the first
    /// repeat, moved to the nearest end of a sentence or line (else of a clause) within one
    /// period either way. Where a copy begins is arbitrary — "Hello. Hi there| . Hi there"
    /// copies from the first "." on — so the cut seldom falls where a reader would put it.
    /// Forward it keeps only tokens that copy their earlier twin (a near loop's changed token
    /// begins the next copy); back it stays within the first copy. Trailing whitespace goes.
    fn loop_cut(&self, found: Loop) -> usize {
        let generated = &self.tokens[self.timings.prompt_tokens..];
        let text_at = |c: usize| if c == 0 { 0 } else { self.text_ends[c - 1] };
        let ends_with =
            |c: usize, marks: &[char]| self.stops.text[..text_at(c)].trim_end_matches([' ', '\t']).ends_with(marks);
        let first = found.first_repeat();
        let copies =
            |&c: &usize| c == first || (c <= generated.len() && generated[c - 1] == generated[c - 1 - found.period]);
        let forward: Vec<usize> = (first..first + found.period).take_while(copies).collect();
        let back = (found.start + 1..first).rev();
        let nearest = |marks: &[char]| {
            let ahead = forward.iter().copied().find(|&c| ends_with(c, marks));
            let behind = back.clone().find(|&c| ends_with(c, marks));
            match (ahead, behind) {
                (Some(a), Some(b)) => Some(if a - first < first - b { a } else { b }),
                (a, b) => a.or(b),
            }
        };
        let cut = nearest(&['\n', '.', '!', '?']).or_else(|| nearest(&[',', ';', ':'])).unwrap_or(first);
        self.stops.text[..text_at(cut)].trim_end().len()
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
    use super::*;
    use crate::tokenizer::Tokenizer;

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

    /// `prefix`, then `unit` `copies` times; in a near loop each copy's token at `counter` is
    /// its number.
    fn looping(prefix: &[u32], unit: &[u32], copies: usize, counter: Option<usize>) -> Vec<u32> {
        let mut g = prefix.to_vec();
        for i in 0..copies {
            let mut u = unit.to_vec();
            if let Some(c) = counter {
                u[c] = 1000 + i as u32;
            }
            g.extend(u);
        }
        g
    }

    /// A stream with no repeat of four tokens in a row: each token is a distinct "word".
    fn prose(n: usize) -> Vec<u32> {
        (0..n as u32).map(|i| (i * 7919) % 5003).collect()
    }

    #[test]
    fn an_exact_loop_is_found_once_min_span_tokens_repeat() {
        let guard = RepetitionGuard::default();
        let prefix = [1, 2, 3];
        let unit = [10, 11, 12, 13, 14];
        // The last 16 tokens occur earlier only once 16 + 5 loop tokens are out.
        let g = looping(&prefix, &unit, 4, None);
        assert_eq!(g.len(), 3 + 20);
        assert_eq!(guard.find_loop(&g), None);
        let g = looping(&prefix, &unit, 5, None);
        let found = guard.find_loop(&g).unwrap();
        assert_eq!(found, Loop { start: 3, period: 5 });
        assert_eq!(&g[..found.first_repeat()], &[1, 2, 3, 10, 11, 12, 13, 14]);

        // One token repeated forever, and a whole paragraph copied.
        let g: Vec<u32> = [5, 6].into_iter().chain([9; 17]).collect();
        assert_eq!(guard.find_loop(&g), Some(Loop { start: 2, period: 1 }));
        let para = prose(40);
        let g: Vec<u32> = para.iter().chain(&para[..16]).copied().collect();
        assert_eq!(guard.find_loop(&g), Some(Loop { start: 0, period: 40 }));
    }

    #[test]
    fn a_loop_starts_where_the_copying_does() {
        // The token before the first copy equals the copy's last: the loop reaches back one.
        let g = looping(&[1, 14], &[10, 11, 12, 13, 14], 5, None);
        assert_eq!(RepetitionGuard::default().find_loop(&g), Some(Loop { start: 1, period: 5 }));
    }

    #[test]
    fn a_near_loop_changing_one_token_per_copy_is_found() {
        let guard = RepetitionGuard::default();
        // "1. Recycling saves energy .\n" with the number changing: period 6.
        let unit = [0, 20, 21, 22, 23, 24];
        assert_eq!(guard.find_loop(&looping(&[1, 2], &unit, 4, Some(0))), None, "24 tokens: too few copies");
        let g = looping(&[1, 2], &unit, 5, Some(0));
        assert_eq!(guard.find_loop(&g), Some(Loop { start: 2, period: 6 }));
        // The exact rule alone never sees it.
        assert_eq!(RepetitionGuard { max_near_period: 0, ..guard }.find_loop(&looping(&[], &unit, 40, Some(0))), None);
    }

    #[test]
    fn normal_output_is_not_a_loop() {
        let guard = RepetitionGuard::default();
        for n in 0..300 {
            assert_eq!(guard.find_loop(&prose(n)), None, "{n} tokens");
        }
        // Counting: one change in every 2 tokens ("1, 2, 3,").
        let counting: Vec<u32> = (0..100).flat_map(|i| [1000 + i, 5]).collect();
        assert_eq!(guard.find_loop(&counting), None);
        // A list whose items differ in two tokens each.
        let mut list = Vec::new();
        for i in 0..20 {
            list.extend([1000 + i, 20, 21, 2000 + i, 23, 24]);
        }
        assert_eq!(guard.find_loop(&list), None);
        // A phrase used twice, under 16 tokens.
        let phrase = prose(12);
        let g: Vec<u32> = phrase.iter().chain(&prose(50)[20..]).chain(&phrase).copied().collect();
        assert_eq!(guard.find_loop(&g), None);
        assert_eq!(RepetitionGuard::OFF.find_loop(&[7; 100]), None);
    }

    #[test]
    fn repetition_guard_takes_a_struct_or_a_bool() {
        let parse = |json: &str| serde_json::from_str::<GenerateRequest>(json).unwrap().repetition_guard;
        assert_eq!(parse(r#"{"prompt": "a"}"#), RepetitionGuard::default());
        assert_eq!(parse(r#"{"repetition_guard": false}"#), RepetitionGuard::OFF);
        assert_eq!(parse(r#"{"repetition_guard": true}"#), RepetitionGuard::default());
        assert_eq!(parse(r#"{"repetition_guard": null}"#), RepetitionGuard::default());
        assert_eq!(
            parse(r#"{"repetition_guard": {"min_span": 24}}"#),
            RepetitionGuard { min_span: 24, max_near_period: DEFAULT_MAX_NEAR_PERIOD }
        );
        assert!(serde_json::from_str::<GenerateRequest>(r#"{"repetition_guard": {"span": 3}}"#).is_err());
        assert_eq!(serde_json::to_string(&FinishReason::Repetition).unwrap(), r#""repetition""#);
    }

    /// A model without weights: a byte-level tokenizer over "a".."z", " ", "." and "\n", whose
    /// "forward pass" the test plays by handing `accept` logits that pick the next scripted token.
    struct Scripted {
        tokenizer: Tokenizer,
        template: ChatTemplate,
    }

    impl TextModel for Scripted {
        fn tokenizer(&self) -> &Tokenizer {
            &self.tokenizer
        }
        fn template(&self) -> &ChatTemplate {
            &self.template
        }
        fn clock(&self) -> Clock {
            || 0.0
        }
        fn context_length(&self) -> usize {
            4096
        }
    }

    /// One token per character (GPT-2's byte-level alphabet, no merges), and ChatML's markers.
    fn scripted() -> Scripted {
        use candle_core::quantized::gguf_file::Value;
        let mut tokens: Vec<String> = ["<|im_start|>", "<|im_end|>"].map(String::from).to_vec();
        let mut types = vec![3, 3];
        for c in ('a'..='z').chain('A'..='Z').chain('0'..='9').chain(".,:!?".chars()).chain(['Ġ', 'Ċ']) {
            tokens.push(c.to_string());
            types.push(1);
        }
        let md: std::collections::HashMap<String, Value> = [
            ("tokenizer.ggml.model", Value::String("gpt2".into())),
            ("tokenizer.ggml.tokens", Value::Array(tokens.into_iter().map(Value::String).collect())),
            ("tokenizer.ggml.token_type", Value::Array(types.into_iter().map(Value::I32).collect())),
            ("tokenizer.ggml.merges", Value::Array(Vec::new())),
            ("tokenizer.ggml.eos_token_id", Value::U32(1)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let tokenizer = Tokenizer::from_gguf(crate::gguf::Metadata::of_values(&md)).unwrap();
        let template = ChatTemplate::preset("chatml", &tokenizer).unwrap();
        Scripted { tokenizer, template }
    }

    /// Run `req` on `model`, the model "choosing" the tokens of `script` in turn.
    fn run_script(model: &Scripted, req: &GenerateRequest, script: &[u32]) -> (GenerationOutput, String) {
        let mut session = Session::start(model, req).unwrap();
        let (mut streamed, mut script) = (String::new(), script.iter());
        while let Some(step) = session.step(model) {
            let _ = step.tokens;
            let mut logits = vec![0f32; model.tokenizer.vocab_size()];
            logits[*script.next().expect("the script ran out") as usize] = 1.0;
            streamed.push_str(&session.accept(model, logits).unwrap().unwrap());
        }
        (session.output(), streamed)
    }

    #[test]
    fn a_looping_stream_stops_with_repetition_and_the_repeats_cut() {
        let model = scripted();
        let t = |s: &str| model.tokenizer.encode(s, false).unwrap();
        let mut req = GenerateRequest::text("Say it again.");
        req.max_new_tokens = 200;
        let script: Vec<u32> = t("Sure. Hi there. Hi there. Hi there. Hi there. Hi there. Hi there.");
        let (out, streamed) = run_script(&model, &req, &script);
        assert_eq!(out.finish_reason, FinishReason::Repetition);
        assert_eq!(out.text, "Sure. Hi there.");
        assert!(streamed.starts_with("Sure. Hi there. Hi there."), "streamed before it was found: {streamed:?}");

        // A numbered list that repeats its item: the first item is kept.
        let script = t("Here:\n1 good item.\n2 good item.\n3 good item.\n4 good item.\n5 good item.\n6 good item.\n");
        let (out, _) = run_script(&model, &req, &script);
        assert_eq!((out.finish_reason, out.text.as_str()), (FinishReason::Repetition, "Here:\n1 good item."));

        // Off, or a fixed-length run: the loop goes on to max_new_tokens.
        req.max_new_tokens = 40;
        let script = t(&"ab ".repeat(20));
        for req in [
            GenerateRequest { repetition_guard: RepetitionGuard::OFF, ..req.clone() },
            GenerateRequest { ignore_eos: true, ..req.clone() },
        ] {
            let (out, streamed) = run_script(&model, &req, &script);
            assert_eq!((out.finish_reason, out.timings.generated_tokens), (FinishReason::Length, 40));
            assert_eq!(out.text, streamed);
        }
    }

    #[test]
    fn a_normal_stream_is_not_cut_and_a_copied_prompt_is_no_loop() {
        let model = scripted();
        let t = |s: &str| model.tokenizer.encode(s, false).unwrap();
        let passage = "the quick brown fox jumps over the lazy dog.";
        let mut req = GenerateRequest::text(&format!("copy this: {passage}"));
        req.max_new_tokens = 200;
        let answer = format!("{passage} and then it ran away into the woods near the river.");
        let mut script = t(&answer);
        script.push(model.tokenizer.eos.unwrap());
        let (out, streamed) = run_script(&model, &req, &script);
        assert_eq!((out.finish_reason, out.text.as_str()), (FinishReason::Stop, answer.as_str()));
        assert_eq!(streamed, answer);
    }
}
