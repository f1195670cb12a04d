// The engine's worker stopping under it — terminate(), an uncaught error, a wasm trap — and
// aborted loads, on the worker test page; then the page itself recovering from a crash.
import test from 'node:test';
import assert from 'node:assert/strict';
import { withBrowser } from './chromium.mjs';

const MODEL = '/models/SmolLM2-135M-Instruct.Q4_1.gguf';

test('a stopped worker fails its pending calls with worker_crashed, and the next call starts a fresh one', { timeout: 300_000 }, async () => {
  await withBrowser(async ({ page, url, logs }) => {
    await page.goto(url + 'tests/worker.html');
    const r = await page.evaluate((model) => window.runCrashTest(model), MODEL);
    const crashed = (o) => assert.equal(o.code, 'worker_crashed', JSON.stringify(o));

    // terminate(): the streaming generation and the call waiting behind it; no onCrash (asked for).
    crashed(r.terminated.generation);
    crashed(r.terminated.memory);
    assert.equal(r.terminated.pieces, 3, 'no token of the stopped worker arrives after terminate()');
    assert.equal(r.terminated.crashes, 0);
    // An uncaught error in the worker: onCrash hears of it once.
    crashed(r.uncaught);
    assert.deepEqual(r.crashesAfterUncaught, ['worker_crashed']);
    // A trap: the trapping call and the one queued behind it; the worker says why.
    crashed(r.trap.call);
    crashed(r.trap.queued);
    assert.match(r.trap.call.message, /trapped \(unreachable\)/, r.trap.call.message);
    assert.deepEqual(r.trap.crashes, ['worker_crashed', 'worker_crashed']);

    for (const [what, fresh] of Object.entries({ terminate: r.afterTerminate, uncaught: r.afterUncaught, trap: r.afterTrap })) {
      // The fresh worker has no model: not_loaded, as in a new engine.
      assert.equal(fresh.call.code, 'not_loaded', `${what}: ${JSON.stringify(fresh.call)}`);
      assert.equal(fresh.started, 1, `${what}: one fresh worker`);
      // init({ threads: 1 }) was replayed to it: not the default of the cores (2 here).
      assert.equal(fresh.runtime.build, 'single', `${what}: ${JSON.stringify(fresh.runtime)}`);
      assert.equal(fresh.generated, 4, `${what}: ${JSON.stringify(fresh)}`);
      assert.match(fresh.text, /capital/i, `${what}: ${fresh.text}`);
    }
    assert.equal(r.workers, 4);

    assert.deepEqual(r.passedWorker.before, { ok: true });
    crashed(r.passedWorker.after);
    assert.match(r.passedWorker.after.message, /cannot start another/);
    assert.ok(!logs.some((l) => l.startsWith('pageerror')), logs.join('\n'));
  });
});

test('an aborted load rejects with an AbortError and leaves the engine usable', { timeout: 300_000 }, async () => {
  await withBrowser(async ({ page, url, logs }) => {
    await page.goto(url + 'tests/worker.html');
    const r = await page.evaluate((model) => window.runLoadAbortTest(model), MODEL);
    console.log(`# aborted loads: ${r.delays.map((d) => `${d.ms} ms → ${d.ok ? 'loaded' : d.name}, ${d.left}`).join('; ')}; ` +
      `wasm memory ${(r.memoryLoaded / 2 ** 20).toFixed(0)} → ${(r.memoryAfter / 2 ** 20).toFixed(0)} MiB`);
    assert.equal(r.preAborted.name, 'AbortError', JSON.stringify(r.preAborted));
    // Aborted at once: the abort lands before the worker frees the model it has.
    assert.equal(r.signal.name, 'AbortError', JSON.stringify(r.signal));
    assert.match(r.signal.message, /the load was aborted/);
    assert.equal(r.signal.left, 'kept');
    for (const d of r.delays) {
      // Later aborts land before, or during the wasm call (no model left), or after it (loaded).
      if (d.ok) assert.equal(d.left, 'kept', JSON.stringify(d));
      else {
        assert.equal(d.name, 'AbortError', JSON.stringify(d));
        assert.ok(['kept', 'not_loaded'].includes(d.left), JSON.stringify(d));
      }
    }
    // An aborted load's model is freed, not kept: repeated aborts do not grow wasm memory past
    // two models' room (the freed model's pages are reused).
    assert.ok(r.memoryAfter <= r.memoryLoaded * 2, `${r.memoryLoaded} → ${r.memoryAfter}`);
    assert.equal(r.generation.name, 'AbortError', JSON.stringify(r.generation));
    assert.ok(r.generation.pieces >= 3 && r.generation.pieces <= 5, JSON.stringify(r.generation));
    assert.equal(r.after, 4);
    assert.ok(!logs.some((l) => l.startsWith('pageerror')), logs.join('\n'));
  });
});

const turn = (page) => page.evaluate(() => {
  const li = document.querySelector('#thread .turn:last-child');
  return { state: li?.dataset.state, timings: li?.querySelector('.timings')?.textContent };
});
/** The page's engine workers, in the order they started (a terminated one may stay listed in page.workers()). */
function engineWorkers(page) {
  const started = [];
  page.on('worker', (w) => w.url().endsWith('/engine/worker.js') && started.push(w));
  return started;
}
// An uncaught error in the page's engine worker: a crash, as the page sees one.
const crash = (worker) => worker.evaluate(() => { setTimeout(() => { throw new Error('test: crash'); }); });
const ready = (page) => page.waitForFunction(() => !document.getElementById('ask').disabled && !document.getElementById('load').disabled, null, { timeout: 180_000 });

async function ask(page, question) {
  await page.fill('#question', question);
  await page.click('#ask');
  await page.waitForFunction(() => ['done', 'error', 'stopped'].includes(document.querySelector('#thread .turn:last-child')?.dataset.state), null, { timeout: 180_000 });
  return turn(page);
}

test('the page reloads the model and the embedder once after its worker crashes mid-answer', { timeout: 600_000 }, async () => {
  await withBrowser(async ({ page, url, logs }) => {
    const workers = engineWorkers(page);
    await page.goto(url);
    await page.waitForFunction(() => /passages indexed/.test(document.getElementById('doc-status').textContent), null, { timeout: 240_000 });
    await page.click('#documents summary');
    await page.fill('#top-k-final', '1');
    await page.fill('#max-new-tokens', '200');
    await page.click('#load');
    await ready(page);

    // Crash while the answer streams: the turn fails, the page says so and reloads by itself.
    await page.fill('#question', 'Explain the concept of life cycle assessment.');
    await page.click('#ask');
    await page.waitForFunction(() => document.querySelector('#thread .turn:last-child')?.dataset.state === 'streaming', null, { timeout: 180_000 });
    assert.equal(workers.length, 1);
    await crash(workers[0]);
    await page.waitForFunction(() => document.querySelector('#thread .turn:last-child')?.dataset.state === 'error', null, { timeout: 60_000 });
    const failed = await turn(page);
    assert.match(failed.timings, /error: the engine worker stopped: .*test: crash/, failed.timings);
    await page.waitForFunction(() => /^Restarted the engine after a crash/.test(document.getElementById('model-status').textContent), null, { timeout: 180_000 });
    await ready(page);
    const status = await page.textContent('#model-status');
    assert.match(status, /Smollm2.*from the browser cache.*loaded in/, status);
    assert.equal(workers.length, 2, 'one fresh worker');
    await page.fill('#max-new-tokens', '4');
    // Retrieval needs the reloaded embedder; the answer the reloaded model.
    const answered = await ask(page, 'What is life cycle assessment?');
    assert.equal(answered.state, 'done', JSON.stringify(answered));
    assert.match(answered.timings, /4 tokens at/, answered.timings);

    // A worker that cannot start any more (its script fails to load): one reload is tried, it
    // fails, and the page stops there instead of starting worker after worker.
    let starts = 0;
    await page.route('**/engine/worker.js', (route) => {
      starts++;
      return route.fulfill({ status: 404, body: 'gone' });
    });
    await crash(workers.at(-1));
    await page.waitForFunction(() => /press Load to try again/.test(document.getElementById('model-status').textContent), null, { timeout: 120_000 });
    const gaveUp = await page.textContent('#model-status');
    await page.waitForTimeout(3000);
    console.log(`# after a crash with no worker able to start: ${starts} start(s) tried; "${gaveUp}"`);
    assert.ok(starts >= 1 && starts <= 3, `${starts} worker starts`);
    assert.equal(await page.isDisabled('#ask'), true, 'no model: no questions');
    const tried = starts;
    await page.waitForTimeout(3000);
    assert.equal(starts, tried, 'no further restarts by itself');

    // The user's Load works again once a worker can start: model and embedder.
    await page.unroute('**/engine/worker.js');
    await page.click('#load');
    await ready(page);
    const again = await ask(page, 'What is sustainability in engineering?');
    assert.equal(again.state, 'done', JSON.stringify(again));
    assert.ok(!logs.some((l) => l.startsWith('pageerror')), logs.join('\n'));
  });
});
