// The built package in headless Chromium, inside a Web Worker.
import test from 'node:test';
import assert from 'node:assert/strict';
import { withBrowser } from './chromium.mjs';

// Both wasm builds: the single-threaded one and the threaded one (rayon on Web Workers).
for (const threads of [1, 2]) {
test(`SmolLM2 answers in a Web Worker in Chromium on ${threads} thread(s); bad input and abort leave it usable`, { timeout: 300_000 }, async () => {
  await withBrowser(async ({ page, url, logs }) => {
    await page.goto(url + 'tests/worker.html');
    const r = await page.evaluate((threads) => window.runWorkerTest('/models/SmolLM2-135M-Instruct.Q4_1.gguf', threads), threads);
    assert.ok(r.crossOriginIsolated, 'the server sends COOP/COEP');
    // Chromium has relaxed SIMD, so both builds it gets are the relaxed ones.
    assert.deepEqual(r.runtime, { build: threads > 1 ? 'threads' : 'single', simd: 'relaxed', threads, fallback: null });
    assert.deepEqual([r.badLoad.name, r.badLoad.code], ['EdgeLLMError', 'invalid_gguf'], JSON.stringify(r.badLoad));
    assert.match(r.result.text, /Paris/, JSON.stringify(r.result));
    assert.equal(r.pieces.join(''), r.result.text);
    assert.equal(r.streamed, r.result.text);
    assert.deepEqual(r.afterBreak, { last: 'aborted', next: 2 }, 'breaking out of stream() aborts the generation');
    // The abort crosses to the worker while it computes: it lands within a token or two.
    assert.equal(r.abort?.name, 'AbortError');
    assert.ok(r.abort.pieces >= 3 && r.abort.pieces <= 5, JSON.stringify(r.abort));
    // 20 ms ticks kept firing on the page while the worker generated.
    assert.ok(r.ticks > r.generateMs / 20 / 3, `page ticks ${r.ticks} during ${r.generateMs.toFixed(0)} ms`);
    const t = r.result.timings;
    console.log(`# chromium worker, ${threads} thread(s): fetch ${r.fetchMs.toFixed(0)} ms, load ${r.info.loadTimings.totalMs.toFixed(0)} ms, ` +
      `prefill ${t.prefillTokS.toFixed(1)} tok/s, decode ${t.decodeTokS.toFixed(1)} tok/s, first token ${t.timeToFirstTokenMs.toFixed(0)} ms, ` +
      `wasm memory ${(r.memory.wasmBytes / 2 ** 20).toFixed(0)} MiB`);
    assert.ok(!logs.some((l) => l.startsWith('pageerror')), logs.join('\n'));
  });
});
}

test('a page without cross-origin isolation falls back to the single-threaded build and says why', { timeout: 300_000 }, async () => {
  await withBrowser(async ({ page, url }) => {
    await page.goto(url + 'tests/worker.html');
    const r = await page.evaluate(() => window.runFallbackTest('/models/SmolLM2-135M-Instruct.Q4_1.gguf'));
    assert.equal(r.crossOriginIsolated, false);
    assert.equal(r.runtime.build, 'single');
    assert.equal(r.runtime.threads, 1);
    assert.match(r.runtime.fallback, /cross-origin isolated/);
    assert.match(r.text, /Paris/);
  }, { isolated: false });
});
