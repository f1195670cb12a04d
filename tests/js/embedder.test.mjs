// all-MiniLM-L6-v2 in the wasm package agrees with the independent NumPy reference.
import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Embedder } from '../../www/engine/index.js';

const reference = JSON.parse(readFileSync(new URL('../fixtures/minilm-reference.json', import.meta.url)));
const dot = (a, b) => a.reduce((s, x, i) => s + x * b[i], 0);

test('wasm embeddings match the NumPy reference (cosine >= 0.99)', async () => {
  const embedder = await Embedder.load();
  assert.equal(embedder.dim, 384);
  const vectors = await embedder.embed(reference.sentences);
  assert.equal(vectors.length, reference.sentences.length);
  vectors.forEach((v, i) => {
    assert.ok(v instanceof Float32Array && v.length === 384);
    const cosine = dot(v, reference.embeddings[i]) / Math.sqrt(dot(v, v) * dot(reference.embeddings[i], reference.embeddings[i]));
    assert.ok(cosine >= 0.99, `sentence ${i}: cosine ${cosine}`);
  });
  await assert.rejects(embedder.embed(['fine', '']), { code: 'invalid_request' });
  embedder.free();
});

test('broken embedding files are refused with invalid_weights', async () => {
  const files = { config: new TextEncoder().encode('{}'), weights: new Uint8Array(8), tokenizer: new TextEncoder().encode('{}') };
  await assert.rejects(Embedder.load(files), (e) => e.code === 'invalid_weights' && /config\.json/.test(e.message));
});
