// The ONNX backend in headless Chromium: a GGUF exported to ONNX in the worker and run through
// wonnx on WebGPU (SwiftShader: slow, but the arithmetic is the GPU path's), and a browser
// without WebGPU, where the ONNX model is refused with a clear error and the CPU path still works.
import test from 'node:test';
import assert from 'node:assert/strict';
import { withBrowser } from './chromium.mjs';

const SMOLLM2 = '/models/SmolLM2-135M-Instruct.Q4_1.gguf';

test('SmolLM2 exported to ONNX answers on WebGPU in a Web Worker, and the GGUF model still loads after it', { timeout: 600_000 }, async () => {
  await withBrowser(async ({ page, url, logs }) => {
    await page.goto(url + 'tests/onnx.html');
    const r = await page.evaluate((m) => window.runOnnxTest(m), SMOLLM2);
    assert.equal(r.error, undefined, JSON.stringify(r.error));
    assert.equal(r.info.runtime.build, 'webgpu');
    assert.equal(r.info.backend, 'webgpu');
    assert.match(r.info.runtime.adapter, /\S/);
    assert.equal(r.info.contextLength, 128);
    assert.match(r.result.text, /Paris/, JSON.stringify(r.result));
    assert.equal(r.pieces.join(''), r.result.text);
    assert.match(r.cpuResult.text, /Paris/);
    const t = r.result.timings;
    console.log(`# chromium WebGPU (${r.info.runtime.adapter}): export+load ${r.info.loadTimings.totalMs.toFixed(0)} ms ` +
      `(shards exported as needed: ${(r.info.shardBytes / 2 ** 20).toFixed(0)} MiB in ${r.info.shards} shards), ` +
      `prefill ${t.prefillTokS.toFixed(2)} tok/s, decode ${t.decodeTokS.toFixed(2)} tok/s; ` +
      `answer ${JSON.stringify(r.result.text)}; CPU ${JSON.stringify(r.cpuResult.text)}; ms per shard ${r.after.shardMs.map((x) => x.toFixed(0))}`);
    assert.ok(!logs.some((l) => l.startsWith('pageerror')), logs.join('\n'));
  }, { webgpu: true });
});

test('without WebGPU an ONNX model is refused with webgpu_unavailable and the GGUF model still answers', { timeout: 300_000 }, async () => {
  await withBrowser(async ({ page, url }) => {
    await page.goto(url + 'tests/onnx.html');
    const r = await page.evaluate((m) => window.runNoWebGpuTest(m), SMOLLM2);
    assert.deepEqual([r.refused?.name, r.refused?.code], ['EdgeLLMError', 'webgpu_unavailable'], JSON.stringify(r));
    assert.match(r.refused.message, /WebGPU/);
    assert.match(r.cpuResult.text, /Paris/);
  });
});

test('the ONNX MiniLM embedder runs on WebGPU in a Web Worker, matches onnxruntime and retrieves', { timeout: 600_000 }, async () => {
  const { readFile } = await import('node:fs/promises');
  const reference = JSON.parse(await readFile(new URL('../fixtures/paraphrase-minilm-reference.json', import.meta.url), 'utf8'));
  await withBrowser(async ({ page, url, logs }) => {
    await page.goto(url + 'tests/onnx.html');
    const r = await page.evaluate(([dir, s]) => window.runOnnxEmbedderTest(dir, s), ['/models/paraphrase-minilm-l3', reference.sentences]);
    assert.equal(r.error, undefined, JSON.stringify(r.error));
    assert.equal(r.loaded.dim, 384);
    const cosines = r.vectors.map((v, i) => {
      const ref = reference.embeddings[i];
      const dot = v.reduce((s, x, j) => s + x * ref[j], 0);
      return dot / Math.hypot(...ref) / Math.hypot(...v);
    });
    console.log(`# ONNX MiniLM on WebGPU: cosine to onnxruntime min ${Math.min(...cosines).toFixed(6)}`);
    for (const c of cosines) assert.ok(c >= 0.99, `cosines ${cosines}`);
    assert.equal(r.top, 'turbine.txt');
    assert.ok(!logs.some((l) => l.startsWith('pageerror')), logs.join('\n'));
  }, { webgpu: true });
});
