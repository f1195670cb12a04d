//! Runs an exported model ([`crate::export`]) on the GPU, one token at a time: the host looks
//! up the token's embedding, computes the rotary row and the mask for its position, runs the
//! layer shards in order (each returns the new keys and values, which the host stores in its
//! KV cache) and the head shards, and hands the logits to the same `Session` (sampling, stop
//! rules, timings) as the GGUF path.

use protobuf::Message;

use edgellm::bail;
use edgellm::generate::{GenerateRequest, GenerationOutput, Session, TextModel};
use edgellm::gguf;
use edgellm::timing::{Clock, LoadTimings};
use edgellm::tokenizer::Tokenizer;
use edgellm::{ChatTemplate, Error, ErrorCode, Result};
use wonnx::onnx::ModelProto;
use wonnx::utils::InputTensor;

use crate::compact::{expand_int8, Table};
use crate::export::{Manifest, Shard, FORMAT, MASKED};
use crate::runtime;

/// The files of an exported model, by name (`model.json`, the shards, `tokenizer.gguf`).
pub trait ModelFiles {
    fn read(&mut self, name: &str) -> Result<Vec<u8>>;
}

impl<F: FnMut(&str) -> Result<Vec<u8>>> ModelFiles for F {
    fn read(&mut self, name: &str) -> Result<Vec<u8>> {
        self(name)
    }
}

/// A GGUF exported shard by shard as the loader asks for each file.
impl ModelFiles for crate::export::Exporter<'_> {
    fn read(&mut self, name: &str) -> Result<Vec<u8>> {
        self.file(name)
    }
}

/// Counts the bytes of the files read through it.
struct Counted<F> {
    files: F,
    bytes: usize,
}

impl<F: ModelFiles> ModelFiles for Counted<F> {
    fn read(&mut self, name: &str) -> Result<Vec<u8>> {
        let data = self.files.read(name)?;
        self.bytes += data.len();
        Ok(data)
    }
}

struct LayerShard {
    session: wonnx::Session,
    layers: Vec<usize>,
    what: String,
}

struct HeadShard {
    session: wonnx::Session,
    vocab: [usize; 2],
    what: String,
}

pub struct OnnxLlm {
    pub manifest: Manifest,
    pub tokenizer: Tokenizer,
    pub template: ChatTemplate,
    pub clock: Clock,
    pub load_timings: LoadTimings,
    /// The GPU adapter the shards run on.
    pub adapter: String,
    /// Bytes of the model's files (shards as stored: int8 or f32).
    pub file_bytes: usize,
    embed: Table,
    layers: Vec<LayerShard>,
    heads: Vec<HeadShard>,
    /// Per layer, keys and values of the `past_slots` positions, `kv_dim` values each.
    k_cache: Vec<Vec<f32>>,
    v_cache: Vec<Vec<f32>>,
    /// Milliseconds spent in each shard (layer shards first, then heads) since loading.
    pub shard_ms: Vec<f64>,
}

fn parse_shard(bytes: &[u8], shard: &Shard) -> Result<ModelProto> {
    ModelProto::parse_from_bytes(bytes)
        .map_err(|e| Error::new(ErrorCode::InvalidOnnx, format!("{}: not an ONNX model: {e}", shard.file)))
}

impl OnnxLlm {
    /// Load the model from its files: the manifest first, then each shard, compiled for the
    /// GPU as it is read. `template` overrides the GGUF's chat template, as in `LoadOptions`.
    pub async fn load(files: impl ModelFiles, template: Option<&str>, clock: Clock) -> Result<Self> {
        let t0 = clock();
        let mut files = Counted { files, bytes: 0 };
        let adapter = runtime::check_gpu().await?;
        let manifest: Manifest = serde_json::from_slice(&files.read(crate::export::MANIFEST_FILE)?)
            .map_err(|e| Error::new(ErrorCode::InvalidOnnx, format!("model.json: {e}")))?;
        if manifest.format != FORMAT {
            bail!(InvalidOnnx, "model.json: format '{}' is not '{FORMAT}'", manifest.format);
        }
        if manifest.batch == 0
            || manifest.context == 0
            || manifest.past_slots < manifest.context
            || !manifest.head_dim.is_multiple_of(2)
        {
            bail!(
                InvalidOnnx,
                "model.json: batch {}, context {}, past slots {} and head size {} do not fit together",
                manifest.batch,
                manifest.context,
                manifest.past_slots,
                manifest.head_dim
            );
        }
        let meta = files.read(&manifest.tokenizer)?;
        let g = gguf::parse(&meta)?;
        let tokenizer = Tokenizer::from_gguf(g.metadata())?;
        let template = ChatTemplate::for_model(template, g.metadata(), &tokenizer)?;
        if tokenizer.vocab_size() > manifest.vocab {
            bail!(InvalidOnnx, "the tokenizer has {} tokens but the model {}", tokenizer.vocab_size(), manifest.vocab);
        }
        let t_tok = clock();

        let embed_model = parse_shard(&files.read(&manifest.embed.file)?, &manifest.embed)?;
        let embed = Table::from_initializers(&embed_model, "token_embd")?;
        if embed.rows() < tokenizer.vocab_size() {
            bail!(InvalidOnnx, "the embedding table has {} rows for {} tokens", embed.rows(), tokenizer.vocab_size());
        }
        drop(embed_model);

        let mut layers = Vec::new();
        for shard in &manifest.layers {
            let what = format!("{} (layers {:?})", shard.file, shard.layers);
            let session = compile(&mut files, shard, &what).await?;
            layers.push(LayerShard { session, layers: shard.layers.clone(), what });
        }
        let covered: Vec<usize> = layers.iter().flat_map(|l| l.layers.iter().copied()).collect();
        if covered != (0..manifest.n_layer).collect::<Vec<_>>() {
            bail!(InvalidOnnx, "model.json: the layer shards cover layers {covered:?}, not 0..{}", manifest.n_layer);
        }
        let mut heads = Vec::new();
        let mut next = 0;
        for shard in &manifest.heads {
            let Some(vocab) = shard.vocab.filter(|v| v[0] == next && v[1] > v[0]) else {
                bail!(InvalidOnnx, "model.json: head shard {} does not continue the vocabulary at {next}", shard.file);
            };
            next = vocab[1];
            let what = format!("{} (vocabulary {}..{})", shard.file, vocab[0], vocab[1]);
            heads.push(HeadShard { session: compile(&mut files, shard, &what).await?, vocab, what });
        }
        if next != manifest.vocab {
            bail!(InvalidOnnx, "model.json: the head shards end at token {next}, not {}", manifest.vocab);
        }
        let t_weights = clock();
        let (layers_len, heads_len) = (layers.len(), heads.len());
        let cache = vec![vec![0f32; manifest.past_slots * manifest.kv_dim()]; manifest.n_layer];
        Ok(Self {
            load_timings: LoadTimings {
                parse_ms: 0.0,
                tokenizer_ms: t_tok - t0,
                weights_ms: t_weights - t_tok,
                total_ms: t_weights - t0,
            },
            manifest,
            tokenizer,
            template,
            clock,
            adapter,
            file_bytes: files.bytes,
            embed,
            layers,
            heads,
            k_cache: cache.clone(),
            v_cache: cache,
            shard_ms: vec![0.0; layers_len + heads_len],
        })
    }

    /// Run `tokens` at positions `pos..`; return the logits of the last one.
    pub async fn forward(&mut self, tokens: &[u32], pos: usize) -> Result<Vec<f32>> {
        if tokens.is_empty() {
            bail!(InvalidRequest, "nothing to run: the token list is empty");
        }
        if pos + tokens.len() > self.manifest.context {
            bail!(
                ContextOverflow,
                "positions {pos}..{} exceed the context of {} tokens fixed when the model was exported",
                pos + tokens.len(),
                self.manifest.context
            );
        }
        if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= self.tokenizer.vocab_size()) {
            bail!(InvalidRequest, "token id {bad} is outside the vocabulary of {}", self.tokenizer.vocab_size());
        }
        let mut hidden = Vec::new();
        for (i, batch) in tokens.chunks(self.manifest.batch).enumerate() {
            hidden = self.run_batch(batch, pos + i * self.manifest.batch).await?;
        }
        let clock = self.clock;
        let mut logits = Vec::with_capacity(self.manifest.vocab);
        for (i, head) in self.heads.iter().enumerate() {
            let t0 = clock();
            let out = runtime::run(&head.session, &[("hidden", hidden.as_slice().into())], &head.what).await?;
            self.shard_ms[self.layers.len() + i] += clock() - t0;
            let chunk = &out["logits"];
            if chunk.len() != head.vocab[1] - head.vocab[0] {
                bail!(Inference, "{} returned {} logits", head.what, chunk.len());
            }
            logits.extend_from_slice(chunk);
        }
        Ok(logits)
    }

    /// Up to one batch of tokens through the layers, storing their keys and values; returns
    /// the last token's final hidden state.
    async fn run_batch(&mut self, tokens: &[u32], pos: usize) -> Result<Vec<f32>> {
        let m = &self.manifest;
        let (n, t, past, d) = (tokens.len(), m.batch, m.past_slots, m.n_embd);
        let (all, kv_dim, head_dim) = (past + t, m.kv_dim(), m.head_dim);
        let mut hidden = vec![0f32; t * d];
        for (row, &token) in hidden.chunks_exact_mut(d).zip(tokens) {
            row.copy_from_slice(&self.embed.row(token as usize));
        }
        // Row i sees the cached positions before `pos` and the batch's tokens up to itself.
        // Unused rows (a batch not full) copy the last real row's mask; their results are dropped.
        let mut mask = vec![MASKED; t * all];
        for (i, row) in mask.chunks_exact_mut(all).enumerate() {
            row[..pos].fill(0.0);
            row[past..=past + i.min(n - 1)].fill(0.0);
        }
        let (mut cos, mut sin) = (vec![0f32; t * head_dim], vec![0f32; t * head_dim]);
        for (i, (c, s)) in cos.chunks_exact_mut(head_dim).zip(sin.chunks_exact_mut(head_dim)).enumerate() {
            let p = (pos + i) as f32;
            for j in 0..head_dim / 2 {
                let theta = p * m.rope_base.powf(-2.0 * j as f32 / head_dim as f32);
                c[2 * j..2 * j + 2].fill(theta.cos());
                s[2 * j..2 * j + 2].fill(theta.sin());
            }
        }
        for (i, shard) in self.layers.iter().enumerate() {
            let t0 = (self.clock)();
            let names: Vec<(String, String)> =
                shard.layers.iter().map(|l| (format!("past_k.{l}"), format!("past_v.{l}"))).collect();
            let mut inputs: Vec<(&str, InputTensor)> = vec![
                ("hidden", hidden.as_slice().into()),
                ("mask", mask.as_slice().into()),
                ("cos", cos.as_slice().into()),
                ("sin", sin.as_slice().into()),
            ];
            for (&l, (k, v)) in shard.layers.iter().zip(&names) {
                inputs.push((k, self.k_cache[l].as_slice().into()));
                inputs.push((v, self.v_cache[l].as_slice().into()));
            }
            let mut out = runtime::run(&shard.session, &inputs, &shard.what).await?;
            self.shard_ms[i] += (self.clock)() - t0;
            for &l in &shard.layers {
                let (k, v) = (out.remove(&format!("k.{l}")), out.remove(&format!("v.{l}")));
                let (Some(k), Some(v)) = (k, v) else {
                    bail!(Inference, "{} did not return layer {l}'s keys", shard.what)
                };
                let span = pos * kv_dim..(pos + n) * kv_dim;
                self.k_cache[l][span.clone()].copy_from_slice(&k[..n * kv_dim]);
                self.v_cache[l][span].copy_from_slice(&v[..n * kv_dim]);
            }
            hidden = out.remove("hidden_out").ok_or_else(|| Error::new(ErrorCode::Inference, "no hidden_out"))?;
        }
        Ok(hidden[(n - 1) * d..n * d].to_vec())
    }

    /// Generate to the end (the async twin of `Model::generate`).
    pub async fn generate(
        &mut self,
        req: &GenerateRequest,
        mut on_text: impl FnMut(&str) -> bool,
    ) -> Result<GenerationOutput> {
        let mut session = Session::start(self, req)?;
        while let Some(piece) = self.next(&mut session).await? {
            if !piece.is_empty() && !on_text(&piece) {
                session.abort();
            }
        }
        Ok(session.output())
    }

    /// One token of `session` (see `Session::next`).
    pub async fn next(&mut self, session: &mut Session) -> Result<Option<String>> {
        let Some(step) = session.step(self) else { return Ok(None) };
        let (tokens, pos) = (step.tokens.to_vec(), step.pos);
        let logits = self.forward(&tokens, pos).await?;
        session.accept(self, logits)
    }
}

async fn compile(files: &mut impl ModelFiles, shard: &Shard, what: &str) -> Result<wonnx::Session> {
    let mut model = parse_shard(&files.read(&shard.file)?, shard)?;
    expand_int8(&mut model)?;
    runtime::session(model, what).await
}

impl TextModel for OnnxLlm {
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
        self.manifest.context
    }
}
