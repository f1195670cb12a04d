// Browser storage faults in the real page, in headless Chromium: a stored entry never serves a
// wrong model, and nothing the browser fails to keep stops the page from working.
//   - a download cut short resumes with Range (the project's server, scripts/serve.mjs, cuts the
//     response), starts over where the server has no Range, and is never used short: a file that
//     never arrives whole is the catalogue's download_incomplete, not a loaded model; a download
//     aborts through its AbortSignal;
//   - a cached model whose bytes no longer match its sha256 is downloaded again, and the page says
//     so; the model then loaded is the right one (the same answer as before);
//   - the site's storage quota too small for a model (CDP's Storage.overrideQuotaForOrigin): the
//     model loads from memory and the page says it was not cached;
//   - IndexedDB deleted between sessions, or its record unreadable: the page rebuilds the index
//     from the sample documents, says why, and answers; IndexedDB refusing to open (as in private
//     modes): the page works, and says the index will not survive a reload.
import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { withBrowser } from './chromium.mjs';

const REGISTRY = JSON.parse(readFileSync(new URL('../../models/registry.json', import.meta.url)));
const MODEL = REGISTRY.models.find((m) => m.id === REGISTRY.default);
const MODEL_PATH = `/models/${MODEL.file}`;
const SAMPLE = JSON.parse(readFileSync(new URL('../../www/corpus/index.json', import.meta.url))).documents.map((d) => d.file);
const QUESTION = 'What is life cycle assessment?';
// Where the server cuts a faulty response of the model file (of its 94 MiB).
const CUT = 16 * 2 ** 20;

/**
 * A faults hook for the server that records each request for the model file and answers it as
 * `fault(n)` says (n: the request's number since the last `phase`).
 */
function modelFaults() {
  const requests = [];
  let fault = () => ({});
  return {
    requests,
    phase(f = () => ({})) { requests.length = 0; fault = f; },
    hook(req) {
      if (req.url.split('?')[0] !== MODEL_PATH) return {};
      const f = fault(requests.length);
      requests.push({ range: req.headers.range ?? null, ranges: f.ranges !== false, cutAt: f.cutAt ?? null });
      return f;
    },
  };
}

async function waitIndexed(page) {
  await page.waitForFunction(() => /passages indexed/.test(document.getElementById('doc-status').textContent), null, { timeout: 300_000 });
}

/** A status line's text, or null while it is hidden. */
const notice = (page, id) => page.$eval(`#${id}`, (p) => (p.hidden ? null : p.textContent));

/** A status line's text, once it shows (the page says it as it starts). */
async function waitNotice(page, id) {
  await page.waitForFunction((id) => !document.getElementById(id).hidden, id, { timeout: 60_000 });
  return notice(page, id);
}

/** Press Load and wait for the page to finish with it: what the Model section then says. */
async function load(page) {
  await page.click('#load');
  await page.waitForFunction(() => !document.getElementById('load').disabled, null, { timeout: 300_000 });
  return page.evaluate(() => {
    const status = document.getElementById('model-status');
    const cache = document.getElementById('cache-status');
    return { status: status.textContent, error: status.classList.contains('error'), code: status.dataset.code ?? null, canAsk: !document.getElementById('ask').disabled, cache: cache.hidden ? null : cache.textContent };
  });
}

/** Short, greedy answers from two sources, so that two runs of the same model agree token for token. */
async function settings(page) {
  if (!(await page.$eval('#documents details', (d) => d.open))) await page.click('#documents summary');
  await page.fill('#max-new-tokens', '12');
  await page.fill('#top-k-final', '2');
  await page.selectOption('#decoding', 'greedy');
}

/** Ask, and wait for turn `n` to end: what it shows. */
async function ask(page, n, question = QUESTION) {
  await page.fill('#question', question);
  await page.click('#ask');
  const turn = `#thread .turn[data-turn="${n}"]`;
  await page.waitForSelector(`${turn}:is([data-state="done"], [data-state="error"], [data-state="stopped"])`, { timeout: 180_000 });
  return page.$eval(turn, (li) => ({
    state: li.dataset.state,
    cached: li.dataset.cached === 'true',
    answer: li.querySelector('.answer').textContent,
    // The documents cited, without the page number a source line adds.
    sources: [...li.querySelectorAll('.sources li .meta .name')].map((s) => s.textContent.replace(/, page \d+$/, '')),
    timings: li.querySelector('.timings').textContent,
  }));
}

/** The sha256 of the model file's entry in the page's Cache API, or null when there is none. */
const cachedSha256 = (page) => page.evaluate(async (sha256) => {
  const hit = await (await caches.open('edgellm-models-v1')).match(`/edgellm-cache/${sha256}`);
  if (!hit) return null;
  const digest = await crypto.subtle.digest('SHA-256', await hit.arrayBuffer());
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('');
}, MODEL.sha256);

const documents = (page) => page.$$eval('#doc-list li span', (s) => s.map((x) => x.textContent));

const pageErrors = (logs) => logs.filter((l) => l.startsWith('pageerror'));

test('model downloads: resumed with Range after a cut, restarted without Range, never used short; a corrupt cached copy is downloaded again; an abort', { timeout: 1_200_000 }, async () => {
  const server = modelFaults();
  await withBrowser(async ({ page, url, logs }) => {
    await page.goto(url);
    await waitIndexed(page);

    // The connection drops after CUT bytes, once: the page asks for the rest and gets a 206.
    server.phase((n) => (n === 0 ? { cutAt: CUT } : {}));
    const resumed = await load(page);
    assert.ok(resumed.canAsk && !resumed.error, resumed.status);
    assert.match(resumed.status, /: downloaded in \d+ ms, loaded in/);
    assert.equal(server.requests.length, 2, JSON.stringify(server.requests));
    assert.equal(server.requests[0].range, null);
    const from = Number(/^bytes=(\d+)-$/.exec(server.requests[1].range)?.[1]);
    assert.ok(from > 0 && from <= CUT, `resumed from ${server.requests[1].range} after a cut at ${CUT}`);
    assert.equal(await cachedSha256(page), MODEL.sha256, 'the cached file is whole');
    console.log(`# resumed: cut at ${CUT}, asked for ${server.requests[1].range}`);

    // A server without Range support sends the whole file again (200): the page starts over.
    await page.click('#clear-cache');
    await page.waitForFunction(() => document.getElementById('model-status').textContent === 'Model cache cleared.');
    server.phase((n) => (n === 0 ? { ranges: false, cutAt: CUT } : { ranges: false }));
    const restarted = await load(page);
    assert.ok(restarted.canAsk && !restarted.error, restarted.status);
    assert.equal(server.requests.length, 2, JSON.stringify(server.requests));
    assert.match(server.requests[1].range ?? '', /^bytes=\d+-$/, 'it asked for the rest first');
    assert.equal(await cachedSha256(page), MODEL.sha256);

    // Cut at the same byte every time: after its retries the page reports download_incomplete,
    // with nothing loaded and nothing cached.
    await page.click('#clear-cache');
    await page.waitForFunction(() => document.getElementById('model-status').textContent === 'Model cache cleared.');
    server.phase(() => ({ cutAt: CUT }));
    const truncated = await load(page);
    assert.ok(truncated.error && !truncated.canAsk, truncated.status);
    assert.equal(truncated.code, 'download_incomplete', truncated.status);
    assert.match(truncated.status, new RegExp(`^Could not load ${MODEL.name}: the download of \\S+ stopped at byte \\d+ of ${MODEL.bytes} after 5 attempts .*Check the network connection`));
    assert.equal(server.requests.length, 5);
    assert.ok(server.requests.slice(1).every((r) => /^bytes=\d+-$/.test(r.range)), JSON.stringify(server.requests));
    assert.equal(await cachedSha256(page), null, 'a short file is never cached');
    console.log(`# truncated: ${truncated.status}`);

    // An abort (the AbortSignal of storage.js's getModel, as the page imports it).
    server.phase();
    const aborted = await page.evaluate(async (path) => {
      const { getModel } = await import('/app/storage.js');
      const controller = new AbortController();
      const onProgress = ({ loaded }) => { if (loaded > 4 * 2 ** 20) controller.abort(); };
      return getModel({ url: path }, { onProgress, signal: controller.signal }).then(() => 'resolved', (e) => `${e.name}: ${e.message}`);
    }, MODEL_PATH);
    assert.equal(aborted, 'AbortError: the download was aborted');
    assert.equal(server.requests.length, 1);

    // A good download, and its answer to a question.
    const good = await load(page);
    assert.ok(good.canAsk, good.status);
    assert.equal(good.cache, null, 'nothing to say about the cache');
    await settings(page);
    const first = await ask(page, 1);
    assert.equal(first.state, 'done', first.timings);
    assert.equal(first.cached, false);

    // One byte of the cached copy flipped: after a reload the page refuses it, downloads the
    // file again, says so, and the model it loads answers exactly as before.
    await page.evaluate(async (sha256) => {
      const cache = await caches.open('edgellm-models-v1');
      const key = `/edgellm-cache/${sha256}`;
      const bytes = new Uint8Array(await (await cache.match(key)).arrayBuffer());
      bytes[bytes.length >> 1] ^= 0xff;
      await cache.put(key, new Response(bytes));
    }, MODEL.sha256);
    assert.notEqual(await cachedSha256(page), MODEL.sha256);
    await page.reload();
    await waitIndexed(page);
    server.phase();
    const replaced = await load(page);
    assert.ok(replaced.canAsk && !replaced.error, replaced.status);
    assert.equal(server.requests.length, 1, 'the file was downloaded again');
    assert.match(replaced.status, /: downloaded again in \d+ ms/);
    assert.equal(replaced.cache, `The cached copy of ${MODEL.file} was corrupt (its sha256 did not match): it was discarded and downloaded again.`);
    assert.equal(await cachedSha256(page), MODEL.sha256, 'the cache holds the right file again');
    await settings(page);
    await page.click('#clear-answer-cache'); // so that the model answers, not the FAQ cache
    const again = await ask(page, 1);
    assert.equal(again.cached, false);
    assert.equal(again.answer, first.answer);
    assert.deepEqual(again.sources, first.sources);

    // The next load comes from the (repaired) cache, and the notice is gone.
    const fromCache = await load(page);
    assert.match(fromCache.status, /from the browser cache/);
    assert.equal(fromCache.cache, null);
    assert.deepEqual(pageErrors(logs), []);
  }, { faults: server.hook });
});

test('a storage quota too small for the model: it loads from memory, and the page says it was not cached', { timeout: 900_000 }, async () => {
  const server = modelFaults();
  await withBrowser(async ({ page, url, context, logs }) => {
    // Room for the index and the small files, not for the 90 MiB embedder weights or the model.
    const cdp = await context.newCDPSession(page);
    const origin = new URL(url).origin;
    await cdp.send('Storage.overrideQuotaForOrigin', { origin, quotaSize: 24 * 2 ** 20 });
    await page.goto(url);
    // (navigator.storage.estimate() keeps reporting the usual quota; the quota manager has the override.)
    const { quota, overrideActive } = await cdp.send('Storage.getUsageAndQuota', { origin });
    assert.deepEqual([quota, overrideActive], [24 * 2 ** 20, true], 'the quota is overridden');
    await waitIndexed(page);

    const loaded = await load(page);
    assert.ok(loaded.canAsk && !loaded.error, loaded.status);
    assert.match(loaded.status, /: downloaded \(not cached\) in \d+ ms, loaded in/);
    assert.ok(loaded.cache?.includes(`${MODEL.file} was not cached (the browser's storage quota for this site is full): it is loaded from memory, and will be downloaded again next time.`), loaded.cache);
    assert.ok(loaded.cache.includes("model.safetensors was not cached (the browser's storage quota"), 'the embedder is said too');
    assert.equal(await cachedSha256(page), null);
    await settings(page);
    const turn = await ask(page, 1);
    assert.equal(turn.state, 'done', turn.timings);
    assert.ok(turn.sources.length > 0);

    // After a reload the model is downloaded again, as the page said.
    await page.reload();
    await waitIndexed(page);
    server.phase();
    const again = await load(page);
    assert.ok(again.canAsk, again.status);
    assert.match(again.status, /downloaded \(not cached\)/);
    assert.equal(server.requests.length, 1);
    assert.deepEqual(pageErrors(logs), []);
  }, { faults: server.hook });
});

/** Delete the page's IndexedDB database (the connections store.js opens are closed after each use). */
const deleteDatabase = (page) => page.evaluate(() => new Promise((resolve, reject) => {
  const req = indexedDB.deleteDatabase('edgellm');
  req.onsuccess = () => resolve();
  req.onerror = () => reject(req.error);
  req.onblocked = () => reject(new Error('deleteDatabase blocked: a connection is open'));
}));

test('IndexedDB deleted between sessions, or its record unreadable: the page rebuilds the index from the sample documents, says why, and answers', { timeout: 1_200_000 }, async () => {
  await withBrowser(async ({ page, url, logs }) => {
    await page.goto(url);
    assert.match(await waitNotice(page, 'index-status'), /^No saved index was found in this browser \(a first visit, or its site data was cleared\)/);
    await waitIndexed(page);
    await page.setInputFiles('#files', [{ name: 'turbine.txt', mimeType: 'text/plain', buffer: Buffer.from('The Zorblax tidal turbine was commissioned in 2019.') }]);
    await page.waitForFunction(() => /Added/.test(document.getElementById('doc-status').textContent), null, { timeout: 120_000 });

    // Kept: a reload restores the index with the added document, and says nothing.
    await page.reload();
    await waitIndexed(page);
    assert.ok((await documents(page)).includes('turbine.txt'));
    assert.equal(await notice(page, 'index-status'), null);

    // Deleted between sessions: rebuilt from the sample documents, and the page answers.
    await deleteDatabase(page);
    await page.reload();
    assert.match(await waitNotice(page, 'index-status'), /^No saved index was found in this browser .*the index is built from the sample documents\.$/);
    await waitIndexed(page);
    assert.deepEqual(await documents(page), SAMPLE);
    const loaded = await load(page);
    assert.ok(loaded.canAsk, loaded.status);
    await settings(page);
    const turn = await ask(page, 1);
    assert.equal(turn.state, 'done', turn.timings);
    assert.ok(turn.sources.length > 0 && turn.sources.every((s) => SAMPLE.includes(s)), JSON.stringify(turn.sources));

    // A record DocumentIndex.fromJSON refuses: dropped (not trusted), rebuilt, said.
    await page.evaluate(() => new Promise((resolve, reject) => {
      const req = indexedDB.open('edgellm', 1);
      req.onsuccess = () => {
        const tx = req.result.transaction('rag', 'readwrite');
        tx.objectStore('rag').put({ format: 'something else', chunks: 'not a list' }, 'index-v1');
        tx.oncomplete = () => { req.result.close(); resolve(); };
        tx.onerror = () => reject(tx.error);
      };
      req.onerror = () => reject(req.error);
    }));
    await page.reload();
    assert.match(await waitNotice(page, 'index-status'), /^The saved index could not be read \(.+\): it is rebuilt from the sample documents/);
    await waitIndexed(page);
    assert.deepEqual(await documents(page), SAMPLE);
    assert.ok(logs.some((l) => /^warning: Discarding the stored index: /.test(l)), logs.join('\n'));
    assert.deepEqual(pageErrors(logs), []);
  });
});

test('IndexedDB refusing to open (as in a private window): the page indexes and answers from memory, and says the index will not survive a reload', { timeout: 900_000 }, async () => {
  await withBrowser(async ({ page, url, context, logs }) => {
    await context.addInitScript(() => {
      IDBFactory.prototype.open = function open() { throw new DOMException('The operation is insecure.', 'SecurityError'); };
    });
    await page.goto(url);
    await waitIndexed(page);
    assert.equal(await notice(page, 'index-status'), "The browser's storage (IndexedDB) is unavailable here (The operation is insecure.): documents are indexed in this tab only, and neither the index nor the answer cache will survive a reload.");
    assert.deepEqual(await documents(page), SAMPLE);

    await page.setInputFiles('#files', [{ name: 'turbine.txt', mimeType: 'text/plain', buffer: Buffer.from('The Zorblax tidal turbine was commissioned in 2019.') }]);
    await page.waitForFunction(() => /Added/.test(document.getElementById('doc-status').textContent), null, { timeout: 120_000 });
    assert.ok(!(await page.$eval('#doc-status', (p) => p.classList.contains('error'))));

    const loaded = await load(page);
    assert.ok(loaded.canAsk, loaded.status);
    await settings(page);
    const turn = await ask(page, 1, 'When was the Zorblax tidal turbine commissioned?');
    assert.equal(turn.state, 'done', turn.timings);
    assert.equal(turn.sources[0], 'turbine.txt');
    assert.ok(!logs.some((l) => /answer cache could not be saved/.test(l)), 'no attempt to save after IndexedDB refused');
    assert.deepEqual(pageErrors(logs), []);
  });
});
