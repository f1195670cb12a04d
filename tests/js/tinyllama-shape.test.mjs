// The mission's model size in Node: a TinyLlama-1.1B-shaped Q4_K_M file (models/synth.py: the
// real layout, tensor types and LLaMA-2 vocabulary, random weights) loads with its SentencePiece
// vocabulary and generates a fixed number of tokens through our Q4_K and Q6_K kernels — the same
// tokens whether the prompt is prefilled at once or token by token — within 1.3× the file in
// wasm memory. Its speed is the benchmark's business (scripts/bench.mjs --models tinyllama-shape).
import test from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { Engine } from '../../www/engine/index.js';

const fetchPy = new URL('../../models/fetch.py', import.meta.url).pathname;
// Generated once, then cached; fetch.py prints where the file lies.
const file = execFileSync('python3', [fetchPy, 'tinyllama-shape'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();

test('a TinyLlama-1.1B-shaped Q4_K_M file loads and generates in Node, within 1.3× its size', { timeout: 300_000 }, async () => {
  const bytes = await readFile(file);
  const engine = new Engine();
  const info = await engine.load(bytes);
  assert.equal(info.architecture, 'llama');
  assert.equal(info.tokenizer, 'sentence_piece');
  assert.equal(info.vocabSize, 32000);
  assert.deepEqual(Object.keys(info.tensorTypes).sort(), ['F32', 'Q4K', 'Q6K'], JSON.stringify(info.tensorTypes));
  const request = { messages: [{ role: 'user', content: 'What is life cycle assessment?' }], maxNewTokens: 8, ignoreEos: true, temperature: 0 };
  const first = await engine.generate({ ...request, reuseCache: false });
  assert.equal(first.timings.generatedTokens, 8);
  assert.equal(first.finishReason, 'length');
  const t = first.timings;
  const peak = Engine.memory().wasmBytes;
  console.log(`# node: tinyllama-shape ${(bytes.length / 2 ** 20).toFixed(0)} MiB, load ${info.loadTimings.totalMs.toFixed(0)} ms, ` +
    `${t.promptTokens} prompt tokens at ${t.prefillTokS.toFixed(1)} tok/s, decode ${t.decodeTokS.toFixed(1)} tok/s, ` +
    `wasm memory ${(peak / 2 ** 20).toFixed(0)} MiB (${(peak / bytes.length).toFixed(2)}× the file)`);
  assert.ok(peak <= 1.3 * bytes.length, `wasm memory ${peak} for a file of ${bytes.length}`);
  // The same prompt again, the cache reused up to its last token: that token and every later
  // one now run one at a time (the decode path), and must give the same tokens as the batch.
  const again = await engine.generate(request);
  assert.equal(again.timings.reusedPromptTokens, t.promptTokens - 1);
  assert.equal(again.text, first.text);
  engine.unload();
});
