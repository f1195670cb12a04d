// Switching models at runtime in the page, A → B → A: the worker unloads one and loads the
// other, the second load of A comes from the browser cache, and generation works each time.
// The switch back to A is made while B's answer is still streaming: the answer stops cleanly.
import test from 'node:test';
import assert from 'node:assert/strict';
import { withBrowser } from './chromium.mjs';

async function loadAndAsk(page, model) {
  await page.selectOption('#model-select', model);
  await page.click('#load');
  await page.waitForFunction(() => !document.getElementById('ask').disabled && !document.getElementById('load').disabled, null, { timeout: 180_000 });
  const status = await page.textContent('#model-status');
  await page.fill('#question', 'What is life cycle assessment?');
  await page.click('#ask');
  await page.waitForFunction(() => document.querySelector('#thread .turn:last-child .timings')?.textContent.length > 0, null, { timeout: 180_000 });
  return { status, answer: await page.textContent('#thread .turn:last-child .answer'), timings: await page.textContent('#thread .turn:last-child .timings') };
}

test('switch smollm2 → gemma3 → smollm2 without reloading the page, the last switch while an answer streams', { timeout: 900_000 }, async () => {
  await withBrowser(async ({ page, url, logs }) => {
    await page.goto(url);
    await page.waitForFunction(() => /passages indexed/.test(document.getElementById('doc-status').textContent), null, { timeout: 240_000 });
    await page.click('#documents summary');
    await page.fill('#top-k-final', '1');
    await page.fill('#chunk-size', '400');
    await page.fill('#max-new-tokens', '4');
    const a = await loadAndAsk(page, 'smollm2-135m');
    const b = await loadAndAsk(page, 'gemma3-270m');
    // A long answer from B, and A chosen while it streams: the answer is stopped, A loads.
    await page.fill('#max-new-tokens', '200');
    await page.fill('#question', 'Explain the concept of life cycle assessment.');
    await page.click('#ask');
    await page.waitForFunction(() => document.querySelector('#thread .turn:last-child')?.dataset.state === 'streaming', null, { timeout: 180_000 });
    const streaming = await page.getAttribute('#thread .turn:last-child', 'id');
    await page.fill('#max-new-tokens', '4');
    const again = await loadAndAsk(page, 'smollm2-135m');
    const interrupted = await page.evaluate((id) => {
      const li = document.getElementById(id);
      return { state: li.dataset.state, timings: li.querySelector('.timings').textContent, answer: li.querySelector('.answer').textContent };
    }, streaming);
    assert.deepEqual([interrupted.state, interrupted.timings], ['stopped', 'stopped'], JSON.stringify(interrupted));
    assert.ok(interrupted.answer.length > 0, 'what had streamed stays shown');
    assert.match(a.status, /^Smollm2.*downloaded/, a.status);
    assert.match(b.status, /^Gemma 3 270m.*downloaded/, b.status);
    assert.match(again.status, /^Smollm2.*from the browser cache/, again.status);
    // wasm memory never shrinks, but a freed model's pages are reused: loading A again after B
    // must not grow it.
    const mib = (r) => Number(/wasm memory (\d+) MiB/.exec(r.status)[1]);
    console.log(`# wasm memory after A, B, A: ${mib(a)}, ${mib(b)}, ${mib(again)} MiB`);
    assert.ok(mib(again) <= mib(b), `memory grew across switches: ${mib(a)} → ${mib(b)} → ${mib(again)} MiB`);
    for (const r of [a, b, again]) {
      assert.ok(r.answer.length > 0, JSON.stringify(r));
      assert.match(r.timings, /4 tokens at/, r.timings);
    }
    assert.ok(!logs.some((l) => l.startsWith('pageerror')), logs.join('\n'));
  });
});
