// The cross-encoder in the wasm package agrees with the NumPy reference (same synthetic head
// as tests/rerank.rs: all-MiniLM-L6-v2 + classifier weight[i] = 0.05·sin(i+1), bias 0.1).
import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { Reranker } from '../../www/engine/index.js';

const dir = join(process.env.EDGELLM_MODELS ?? join(homedir(), '.cache', 'edgellm', 'models'), 'minilm-l6');
const reference = JSON.parse(readFileSync(new URL('../fixtures/cross-encoder-reference.json', import.meta.url)));

/** Append f32 tensors to a safetensors file: 8-byte header length, JSON header, data. */
function withTensors(safetensors, extra) {
  const headerLen = Number(new DataView(safetensors.buffer, safetensors.byteOffset).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(safetensors.subarray(8, 8 + headerLen)));
  const data = safetensors.subarray(8 + headerLen);
  const parts = [data];
  let offset = data.length;
  for (const [name, { shape, values }] of Object.entries(extra)) {
    const bytes = new Uint8Array(new Float32Array(values).buffer);
    header[name] = { dtype: 'F32', shape, data_offsets: [offset, offset + bytes.length] };
    parts.push(bytes);
    offset += bytes.length;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  let at = 8 + json.length;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}

test('wasm cross-encoder logits match the NumPy reference', async () => {
  const weights = withTensors(readFileSync(join(dir, 'model.safetensors')), {
    'classifier.weight': { shape: [1, 384], values: Array.from({ length: 384 }, (_, i) => 0.05 * Math.sin(i + 1)) },
    'classifier.bias': { shape: [1], values: [0.1] },
  });
  const reranker = await Reranker.load({ config: readFileSync(join(dir, 'config.json')), weights, tokenizer: readFileSync(join(dir, 'tokenizer.json')) });
  for (const query of new Set(reference.pairs.map((p) => p.query))) {
    const pairs = reference.pairs.filter((p) => p.query === query);
    const scores = await reranker.score(query, pairs.map((p) => p.passage));
    pairs.forEach((p, i) => assert.ok(Math.abs(scores[i] - p.logit) < 1e-4, `${query} / ${p.passage}: ${scores[i]} vs ${p.logit}`));
  }
  reranker.free();
});
