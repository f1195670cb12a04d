// "Your own GGUF" in the page, as a user meets it: a Qwen3-shaped file (models/synth.py) chosen
// from disk is described from its metadata alone — architecture, size, quantization, context,
// template, memory — then loaded in the worker and answers; a file that is not a model is
// refused with the reason, and the page stays usable.
import test from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { statSync } from 'node:fs';
import { withBrowser } from './chromium.mjs';

const fetchPy = new URL('../../models/fetch.py', import.meta.url).pathname;
const qwen3 = execFileSync('python3', [fetchPy, 'qwen3-shape'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();

const text = (page, id) => page.textContent(`#${id}`);

test('a GGUF chosen from disk is described before it loads, then loads and answers', { timeout: 600_000 }, async () => {
  await withBrowser(async ({ page, url, logs }) => {
    await page.goto(url);
    await page.waitForFunction(() => /passages indexed/.test(document.getElementById('doc-status').textContent), null, { timeout: 240_000 });
    await page.click('#own-model summary');

    await page.setInputFiles('#own-file', { name: 'notes.gguf', mimeType: 'application/octet-stream', buffer: Buffer.from('these are not the weights you are looking for') });
    await page.waitForFunction(() => /cannot be loaded/.test(document.getElementById('own-status').textContent), null, { timeout: 60_000 });
    assert.match(await text(page, 'own-status'), /notes\.gguf cannot be loaded: not a GGUF file/);
    assert.ok(await page.isDisabled('#own-load'));

    const t0 = Date.now();
    await page.setInputFiles('#own-file', qwen3);
    await page.waitForFunction(() => /can be loaded\.$/.test(document.getElementById('own-status').textContent), null, { timeout: 120_000 });
    const describedMs = Date.now() - t0;
    const facts = await text(page, 'own-facts');
    console.log(`# described in ${describedMs} ms: ${facts}`);
    assert.match(facts, /Architectureqwen3/);
    assert.match(facts, /QuantizationQ4_K_M/);
    assert.match(facts, /Context4096 tokens served \(trained for 40960\)/);
    assert.match(facts, /Tokenizerbyte-level BPE, 151936 tokens/);
    assert.match(facts, /Chat templatethe file's own/);
    assert.match(facts, /Memory neededabout \d+ MiB of \d+ MiB/);

    await page.click('#own-load');
    await page.waitForFunction(() => !document.getElementById('ask').disabled && /loaded in/.test(document.getElementById('model-status').textContent), null, { timeout: 240_000 });
    assert.match(await text(page, 'model-status'), /^Qwen3-0\.6B shape.*: read from the file, loaded in/);
    // The file went to the worker as a File, read there straight into wasm memory; the page's own
    // wasm module (its tokenizer, for counting tokens) read only the file's tables.
    const pageWasmBytes = await page.evaluate(async () => (await import('/engine/core.js')).memoryUsage().wasmBytes);
    console.log(`# the page's wasm memory beside the worker's model: ${(pageWasmBytes / 2 ** 20).toFixed(1)} MiB for a ${(statSync(qwen3).size / 2 ** 20).toFixed(1)} MiB file`);
    assert.ok(pageWasmBytes < statSync(qwen3).size / 2, `the page's wasm memory is ${pageWasmBytes} bytes`);
    await page.click('#documents summary');
    await page.fill('#max-new-tokens', '4');
    await page.fill('#question', 'What is life cycle assessment?');
    await page.click('#ask');
    await page.waitForFunction(() => document.querySelector('#thread .turn:last-child .timings')?.textContent.length > 0, null, { timeout: 240_000 });
    assert.match(await page.textContent('#thread .turn:last-child .timings'), /4 tokens at/);
    assert.ok(!logs.some((l) => l.startsWith('pageerror')), logs.join('\n'));
  });
});
