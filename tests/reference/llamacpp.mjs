// llama.cpp as the reference: tokenization, next-token distributions, greedy continuations and
// native speed for a GGUF file, through node-llama-cpp's prebuilt CPU binary
// (@node-llama-cpp/linux-x64, pinned in package.json). The test suite checks edgellm against it;
// the benchmark puts its speed beside ours.
//
//   const ref = await openLlamaCpp(path, { threads: 1 });
//   const ids = ref.tokenize('<|im_start|>user\nhi<|im_end|>');   // specials parsed, no BOS added
//   const dists = await ref.teacherForced(ids);                   // Float32Array log-probs per position
//   await ref.close();
//
// Debugging: node tests/reference/llamacpp.mjs MODEL.gguf "text" [threads]
//
// Offline by construction: `build: 'never'` loads only an existing binary (the prebuilt package),
// never clones, downloads or compiles llama.cpp, and `skipDownload` makes sure of it. Loading a
// prebuilt binary on Linux first runs it once in a child node process (node-llama-cpp's
// compatibility test), so getLlama costs ~0.5 s, once per process. No sockets are opened and
// nothing is written to disk (tempDir is off).
import { getLlama, LlamaLogLevel } from 'node-llama-cpp';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';

// One Llama (the loaded binding) per process, shared by every model opened here.
let llamaPromise = null;
function llama() {
  llamaPromise ??= getLlama({
    build: 'never',
    gpu: false,
    skipDownload: true,
    progressLogs: false,
    logLevel: LlamaLogLevel.error, // llama.cpp's info/warning chatter off; real errors still print
    // 0 = no process-wide cap: each context then runs exactly the `threads` it asks for
    // (otherwise node-llama-cpp treats `threads` as a hint it may lower).
    maxThreads: 0,
  });
  return llamaPromise;
}

// Sampler options under which node-llama-cpp's returned probabilities are the raw model
// distribution: with temperature 0 its sampler chain is only llama.cpp's greedy sampler, which
// picks the argmax without touching the logits (no top-k/top-p/min-p/temperature; no repeat
// penalty, DRY or token bias, since none is given). The addon then softmaxes the logits of every
// vocabulary entry (AddonContext.cpp, SampleTokenWorker), so each result has n_vocab entries.
const RAW = { temperature: 0 };

export async function openLlamaCpp(modelPath, { threads = 1, contextSize = 512 } = {}) {
  const model = await (await llama()).loadModel({ modelPath, gpuLayers: 0 });
  // batchSize = contextSize: a whole prompt is one llama_decode, as in llama.cpp's own tools.
  // The KV cache edgellm keeps (src/model/kv_cache.rs): llama.cpp's q8_0 cache type for keys
  // and values (its default is f16), which for a quantized V takes its flash-attention path. The
  // comparison then measures the two forward passes over the same rounding of cached keys and
  // values, and the benchmark's native speed is for the same cache.
  const context = await model.createContext({
    contextSize, batchSize: contextSize, threads, sequences: 1,
    experimentalKvCacheKeyType: 'Q8_0', experimentalKvCacheValueType: 'Q8_0', flashAttention: true,
  });
  const sequence = context.getSequence();
  // GGUF tokenizer.ggml.tokens = llama_vocab_n_tokens, the size of every logits row.
  const vocabSize = model.fileInfo.metadata.tokenizer.ggml.tokens.length;
  // controlledEvaluate silently shifts the context (drops the oldest tokens) once it is full,
  // which would change every later result: refuse instead. It keeps one cell free.
  const room = context.contextSize - 1;

  async function fresh(tokens) {
    if (tokens.length === 0) throw new Error('no tokens');
    if (tokens.length > room) throw new Error(`${tokens.length} tokens exceed the context (${room}); pass a larger contextSize`);
    await sequence.clearHistory();
  }
  const ask = (what) => ({ generateNext: { ...what, options: RAW } });
  // Feed `tokens`; return the greedy next token after the last one (one output row only).
  async function step(tokens) {
    const input = tokens.map((t, i) => (i === tokens.length - 1 ? [t, ask({ token: true })] : t));
    const out = await sequence.controlledEvaluate(input);
    return out[tokens.length - 1].next.token;
  }

  return {
    vocabSize,
    bos: model.tokens.bos, // null when the model has none
    // The GGUF's own Jinja chat template (tokenizer.chat_template), or null.
    chatTemplate: model.fileInfo.metadata.tokenizer?.chat_template ?? null,
    // Whether llama.cpp itself would prepend BOS for this model (GGUF add_bos_token).
    addsBos: model.tokens.shouldPrependBosToken,

    // llama.cpp's tokenization (common_tokenize with add_special = false, parse_special = special).
    // BOS is never added unless asked for (addBos: true prepends the model's BOS token), so the
    // caller decides, as with llama_tokenize(..., add_special = false, ...).
    tokenize(text, { special = true, addBos = false } = {}) {
      const ids = Array.from(model.tokenize(text, special));
      return addBos && model.tokens.bos != null ? [model.tokens.bos, ...ids] : ids;
    },

    // llama_detokenize(remove_special = false, unparse_special = special). Default true so that
    // control tokens come back as their text (<|im_end|>) and tokenize/detokenize round-trip;
    // false renders them as nothing, as llama.cpp does when printing generated text.
    detokenize(ids, { special = true } = {}) {
      return model.detokenize(ids, special);
    },

    // For each i, llama.cpp's distribution of the token after tokens[0..=i], as log-probabilities
    // over the whole vocabulary. node-llama-cpp exposes no raw logits, only the addon's float32
    // softmax of them; its float32 sum over ~50k entries is off by up to ~1e-3, so we renormalize
    // in double: logp = log p - log Σp, i.e. logit - logsumexp(logits) to ~1e-6 (logit gaps =
    // log-prob gaps). A token more than ~103 nats below the top underflows to p = 0: -Infinity.
    // One batch, logits requested at every position; ~20 ms a position goes to the addon sorting
    // and handing over the full vocabulary as a JS Map.
    async teacherForced(tokens) {
      await fresh(tokens);
      const out = await sequence.controlledEvaluate(tokens.map((t) => [t, ask({ probabilities: true })]));
      return tokens.map((_, i) => {
        const probs = out[i].next.probabilities; // Map token -> probability, sorted high to low
        if (probs.size !== vocabSize) throw new Error(`position ${i}: ${probs.size} probabilities, vocabulary ${vocabSize}`);
        let sum = 0;
        for (const p of probs.values()) sum += p;
        const logSum = Math.log(sum);
        const logp = new Float32Array(vocabSize);
        for (const [id, p] of probs) logp[id] = Math.log(p) - logSum;
        return logp;
      });
    },

    // The n tokens llama.cpp picks greedily after the prompt (ties go to the lowest id). It does
    // not stop at an end-of-generation token: all n are returned, the caller cuts.
    async greedy(promptTokens, n) {
      await fresh(promptTokens);
      if (promptTokens.length + n - 1 > room) throw new Error(`prompt + ${n} tokens exceed the context (${room})`);
      const picked = [];
      let next = await step(promptTokens);
      while (picked.length < n) {
        picked.push(next);
        if (picked.length < n) next = await step([next]);
      }
      return picked;
    },

    // Native speed, llama-bench style but through the same calls a generation loop makes:
    // prefill = one batch of `promptTokens` tokens ending in a sampled next token; decode =
    // `genTokens` single-token steps, each one llama_decode plus a greedy sample over the
    // vocabulary. One untimed warm-up first (thread pool, first-touch of the weights).
    async speed({ promptTokens = 128, genTokens = 32 } = {}) {
      if (promptTokens + genTokens > room) throw new Error(`prompt + generated tokens exceed the context (${room})`);
      const text = 'The quick brown fox jumps over the lazy dog while the old clock ticks in the hall. ';
      let prompt = [];
      while (prompt.length < promptTokens) prompt = prompt.concat(Array.from(model.tokenize(text, false)));
      prompt = prompt.slice(0, promptTokens);
      await fresh(prompt.slice(0, 8));
      await step(prompt.slice(0, 8));
      await fresh(prompt);
      let t = performance.now();
      let next = await step(prompt);
      const prefillS = (performance.now() - t) / 1000;
      t = performance.now();
      for (let i = 0; i < genTokens; i++) next = await step([next]);
      const decodeS = (performance.now() - t) / 1000;
      return { prefillTokS: promptTokens / prefillS, decodeTokS: genTokens / decodeS, threads: context.currentThreads };
    },

    async close() {
      await context.dispose();
      await model.dispose();
    },
  };
}

// Optional: frees the shared Llama (the native backend). A process exits without it too;
// node-llama-cpp disposes it before exit.
export async function closeLlamaCpp() {
  if (llamaPromise == null) return;
  const l = await llamaPromise;
  llamaPromise = null;
  await l.dispose();
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const [modelPath, text = 'The capital of France is', threads = '1'] = process.argv.slice(2);
  if (!modelPath) {
    console.error('usage: node tests/reference/llamacpp.mjs MODEL.gguf "text" [threads]');
    process.exit(2);
  }
  const ref = await openLlamaCpp(modelPath, { threads: Number(threads) });
  const ids = ref.tokenize(text, { addBos: ref.addsBos }); // BOS only where llama.cpp would add it
  console.log(`vocab ${ref.vocabSize}, bos ${ref.bos} (llama.cpp adds it: ${ref.addsBos})`);
  console.log('tokens', JSON.stringify(ids));
  console.log('pieces', JSON.stringify(ids.map((id) => ref.detokenize([id]))));
  const last = (await ref.teacherForced(ids)).at(-1);
  const top = Array.from(last.keys()).sort((a, b) => last[b] - last[a]).slice(0, 5);
  for (const id of top) console.log(`${String(id).padStart(7)} ${last[id].toFixed(4).padStart(9)} ${JSON.stringify(ref.detokenize([id]))}`);
  await ref.close();
  await closeLlamaCpp();
}
