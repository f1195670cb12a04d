// The page's answer cache in headless Chromium: a question asked again in other words is
// answered from the cache (marked, same answer and sources, no generation); adding a document
// changes the corpus and empties it; the cache survives a reload in IndexedDB, and a corrupt
// stored one is dropped. And "Export index" downloads an index file that DocumentIndex.fromJSON
// reads back with the sample corpus in it.
import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { withBrowser } from './chromium.mjs';
import { DocumentIndex } from '../../www/rag/index.js';

const SAMPLE = JSON.parse(readFileSync(new URL('../../www/corpus/index.json', import.meta.url))).documents.map((d) => d.file);
const QUESTION = 'What is life cycle assessment?';
const PARAPHRASE = 'Can you explain what a life cycle assessment is?';
// A short answer keeps the test fast; the cache keeps what ended at the length limit too.
const SETTINGS = { 'max-new-tokens': 12, 'top-k-final': 2 };

async function waitIndexed(page) {
  await page.waitForFunction(() => /passages indexed/.test(document.getElementById('doc-status').textContent), null, { timeout: 240_000 });
}

async function loadModel(page) {
  await page.click('#load');
  await page.waitForFunction(() => !document.getElementById('ask').disabled, null, { timeout: 120_000 });
  await page.click('#documents summary');
  for (const [id, value] of Object.entries(SETTINGS)) await page.fill(`#${id}`, String(value));
}

/** Ask, wait for turn `n` to end; what it shows. */
async function ask(page, n, question) {
  await page.fill('#question', question);
  await page.click('#ask');
  const turn = `#thread .turn[data-turn="${n}"]`;
  await page.waitForSelector(`${turn}:is([data-state="done"], [data-state="error"], [data-state="stopped"])`, { timeout: 120_000 });
  return page.$eval(turn, (li) => ({
    state: li.dataset.state,
    finishReason: li.dataset.finishReason,
    cached: li.querySelector('.answer-cached:not([hidden])')?.textContent ?? null,
    answer: li.querySelector('.answer').textContent,
    sources: [...li.querySelectorAll('.sources li')].map((s) => ({ name: s.querySelector('.meta .name').textContent, text: s.querySelector('.passage').textContent })),
    citations: [...li.querySelectorAll('.answer a.cite')].map((a) => a.getAttribute('href')),
    timings: li.querySelector('.timings').textContent,
  }));
}

test('a question asked again is answered from the cache until the corpus changes; the index exports', { timeout: 540_000 }, async () => {
  await withBrowser(async ({ page, url, logs }) => {
    await page.goto(url);
    await waitIndexed(page);
    await loadModel(page);

    const first = await ask(page, 1, QUESTION);
    assert.equal(first.state, 'done', first.timings);
    assert.ok(['stop', 'length'].includes(first.finishReason), first.finishReason);
    assert.equal(first.cached, null);
    assert.ok(first.answer.trim() && first.sources.length > 0);

    const again = await ask(page, 2, PARAPHRASE);
    assert.match(again.cached ?? '', /^Cached answer \(similar question: “What is life cycle assessment\?”\), saved \d+\.\d s$/);
    assert.equal(again.answer, first.answer);
    assert.deepEqual(again.sources, first.sources);
    // Citations link to this turn's own source list, as for a fresh answer.
    assert.deepEqual(again.citations, first.citations.map((href) => href.replace(/^#source-1-/, '#source-2-')));
    assert.match(again.timings, /^answered from the answer cache in \d+ ms \(similarity 0\.\d{3}\)/);
    assert.match(await page.textContent('#answer-cache-status'), /1 answers kept; 1 of 2 questions answered from the cache \(50%\), \d+\.\d s saved/);
    console.log(`# first: ${first.timings}\n# again: ${again.timings} | ${again.cached}`);

    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#export-index')]);
    assert.equal(download.suggestedFilename(), 'edgellm-index.json');
    const exported = DocumentIndex.fromJSON(readFileSync(await download.path(), 'utf8'));
    assert.deepEqual(exported.sources, SAMPLE);
    assert.equal(exported.vectorCount, exported.size);
    assert.equal(exported.dimensions, 384);

    // Another document: another corpus, so the same paraphrase is answered afresh.
    await page.setInputFiles('#files', [{ name: 'turbine.txt', mimeType: 'text/plain', buffer: Buffer.from('The Zorblax tidal turbine was commissioned in 2019.') }]);
    await page.waitForFunction(() => /Added/.test(document.getElementById('doc-status').textContent), null, { timeout: 120_000 });
    const fresh = await ask(page, 3, PARAPHRASE);
    assert.equal(fresh.state, 'done', fresh.timings);
    assert.equal(fresh.cached, null, 'the corpus changed: no cached answer');
    assert.match(fresh.timings, /^retrieval \d+ ms/);

    // After a reload the cache comes back from IndexedDB, with the answer stored for the new corpus.
    await page.reload();
    await waitIndexed(page);
    await loadModel(page);
    const restored = await ask(page, 1, QUESTION);
    assert.match(restored.cached ?? '', /similar question: “Can you explain what a life cycle assessment is\?”/);
    assert.equal(restored.answer, fresh.answer);
    assert.ok(!logs.some((l) => l.startsWith('pageerror') || /answer cache/.test(l)), logs.join('\n'));

    // A corrupt stored cache is dropped with a warning, not trusted.
    await page.evaluate(() => new Promise((resolve, reject) => {
      const req = indexedDB.open('edgellm', 1);
      req.onsuccess = () => {
        const tx = req.result.transaction('rag', 'readwrite');
        tx.objectStore('rag').put({ format: 'edgellm-answer-cache', version: 1, scope: null, dimensions: 384, entries: [{ question: 'q', answer: 'a', ms: 1, vector: 'AAAA' }] }, 'answer-cache-v1');
        tx.oncomplete = () => { req.result.close(); resolve(); };
        tx.onerror = () => reject(tx.error);
      };
      req.onerror = () => reject(req.error);
    }));
    await page.reload();
    await waitIndexed(page);
    assert.ok(logs.some((l) => /^warning: Discarding the stored answer cache: AnswerCache\.fromJSON: /.test(l)), logs.join('\n'));
    assert.match(await page.textContent('#answer-cache-status'), /^0 answers kept; 0 of 0 questions/);
  });
});
