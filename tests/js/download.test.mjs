// Model downloads (www/app/storage.js) without a browser: what a response to a resumed request
// means (rangeResponse), and download() against the project's own server (scripts/serve.mjs)
// cutting its responses short: a resume from the bytes held where the server has Range, a restart
// from byte 0 where it has not, the catalogue's download_incomplete when a file never arrives
// whole, fetch_failed on an HTTP error, an abort; and getModel where there is no Cache API (Node):
// the model is returned uncached, and a file that is not the pinned one is refused.
import test from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer } from '../../scripts/serve.mjs';
import { download, getModel, rangeResponse, BERT_FILES } from '../../www/app/storage.js';
import { BERT_FILES as ENGINE_BERT_FILES } from '../../www/engine/embedder.js';
import { EdgeLLMError } from '../../www/engine/errors.js';

const response = (status, headers = {}) => new Response(null, { status, headers });

test('rangeResponse: a resumed request is continued only by a 206 from the bytes held, of the same file', () => {
  const known = { total: 1000, etag: '"v1"' };
  assert.deepEqual(rangeResponse(0, response(200, { 'Content-Length': '1000' })), { use: 'restart', total: 1000 });
  // A server without Range support answers the resumed request with the whole file.
  assert.deepEqual(rangeResponse(400, response(200, { 'Content-Length': '1000' }), known), { use: 'restart', total: 1000 });
  // An encoded body's Content-Length is not the file's; no length at all (chunked) is unknown too.
  assert.deepEqual(rangeResponse(0, response(200, { 'Content-Length': '300', 'Content-Encoding': 'gzip' })), { use: 'restart', total: null });
  assert.deepEqual(rangeResponse(0, response(200)), { use: 'restart', total: null });
  assert.deepEqual(rangeResponse(0, response(200, { 'Content-Length': '1000', 'Content-Encoding': 'identity' })), { use: 'restart', total: 1000 });

  assert.deepEqual(rangeResponse(400, response(206, { 'Content-Range': 'bytes 400-999/1000', ETag: '"v1"' }), known), { use: 'resume', total: 1000 });
  assert.deepEqual(rangeResponse(400, response(206, { 'Content-Range': 'bytes 400-999/*' }), known), { use: 'resume', total: 1000 });
  for (const [headers, why] of [
    [{ 'Content-Range': 'bytes 0-999/1000' }, 'starts elsewhere'],
    [{ 'Content-Range': 'bytes 399-999/1000' }, 'starts a byte early'],
    [{ 'Content-Range': 'bytes 400-1199/1200' }, 'the file grew: another file'],
    [{ 'Content-Range': 'bytes 400-999/1000', ETag: '"v2"' }, 'another ETag: another file'],
    [{}, 'no Content-Range (not exposed across origins)'],
    [{ 'Content-Range': 'bytes 400-999/1000, bytes 0-1/1000' }, 'malformed'],
  ]) {
    assert.deepEqual(rangeResponse(400, response(206, headers), known), { use: 'refetch', total: null }, why);
  }

  assert.deepEqual(rangeResponse(1000, response(416, { 'Content-Range': 'bytes */1000' }), known), { use: 'complete', total: 1000 });
  assert.equal(rangeResponse(400, response(416, { 'Content-Range': 'bytes */400' }), known).use, 'refetch', 'the file shrank');
  assert.equal(rangeResponse(400, response(416)).use, 'refetch');
  for (const status of [404, 403, 500, 503]) assert.deepEqual(rangeResponse(0, response(status)), { use: 'fail', total: null });
});

test('storage.js has no list of BERT files of its own: it re-exports the engine\'s', () => {
  assert.equal(BERT_FILES, ENGINE_BERT_FILES);
});

/** The project's server over a folder holding `file.bin` (3 MiB of random bytes), with a faults hook. */
async function withFileServer(fn) {
  const dir = mkdtempSync(join(tmpdir(), 'edgellm-download-'));
  const bytes = randomBytes(3 * 2 ** 20);
  writeFileSync(join(dir, 'file.bin'), bytes);
  const requests = []; // { range, fault } of each request for file.bin
  let fault = () => ({});
  const { server, url } = await startServer({
    port: 0,
    extraMounts: { '/t/': dir },
    faults: (req) => {
      if (!req.url.startsWith('/t/file.bin')) return {};
      const f = fault(requests.length);
      requests.push({ range: req.headers.range ?? null, fault: f });
      return f;
    },
  });
  try {
    return await fn({ url: new URL('t/file.bin', url).href, bytes, requests, setFault: (f) => { fault = f; requests.length = 0; } });
  } finally {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

const CUT = 2 ** 20;
const quick = { retryDelayMs: 1 };

test('download: whole, resumed with Range after a cut, restarted where the server has no Range, and never accepted short', async () => {
  await withFileServer(async ({ url, bytes, requests, setFault }) => {
    const same = (buffer) => Buffer.from(buffer).equals(bytes);

    const progress = [];
    assert.ok(same(await download(url, { ...quick, onProgress: (p) => progress.push(p) })));
    assert.deepEqual(requests.map((r) => r.range), [null]);
    assert.deepEqual(progress.at(-1), { loaded: bytes.length, total: bytes.length, retry: 0 });

    // Cut once: the second request asks for the rest, from the bytes received.
    setFault((n) => (n === 0 ? { cutAt: CUT } : {}));
    const resumed = [];
    assert.ok(same(await download(url, { ...quick, onProgress: (p) => resumed.push(p) })));
    assert.equal(requests.length, 2);
    const from = Number(/^bytes=(\d+)-$/.exec(requests[1].range)?.[1]);
    assert.ok(from > 0 && from <= CUT, `resumed from ${requests[1].range}`);
    assert.ok(resumed.some((p) => p.retry === 1 && p.loaded === from), 'progress says it retries from there');

    // A server without Range support sends the whole file again: the download starts over.
    setFault((n) => (n === 0 ? { ranges: false, cutAt: CUT } : { ranges: false }));
    const restarted = [];
    assert.ok(same(await download(url, { ...quick, onProgress: (p) => restarted.push(p) })));
    assert.equal(requests.length, 2);
    assert.match(requests[1].range, /^bytes=\d+-$/, 'it asked for the rest');
    assert.ok(restarted.some((p) => p.retry === 1 && p.loaded < CUT / 2), 'and counted again from 0');

    // Cut at the same byte every time: after the retries, the catalogue's error, not a short file.
    for (const ranges of [true, false]) {
      setFault(() => ({ ranges, cutAt: CUT }));
      await assert.rejects(download(url, { ...quick, retries: 3 }), (e) => {
        assert.ok(e instanceof EdgeLLMError, String(e));
        assert.equal(e.code, 'download_incomplete');
        assert.match(e.message, new RegExp(`stopped at byte \\d+ of ${bytes.length} after 4 attempts`));
        assert.ok(e.details.loaded <= CUT && e.details.total === bytes.length, JSON.stringify(e.details));
        return true;
      });
      assert.equal(requests.length, 4, `ranges: ${ranges}`);
    }
    // Cut right after the headers, on every request.
    setFault(() => ({ cutAt: 0 }));
    await assert.rejects(download(url, { ...quick, retries: 1 }), (e) => e.code === 'download_incomplete' && e.details.loaded === 0);
  });
});

test('download: an HTTP error is fetch_failed at once; an abort rejects with an AbortError, also between retries', async () => {
  await withFileServer(async ({ url, requests, setFault }) => {
    await assert.rejects(download(url.replace('file.bin', 'missing.bin'), quick), (e) => e instanceof EdgeLLMError && e.code === 'fetch_failed' && /HTTP 404/.test(e.message));

    const controller = new AbortController();
    await assert.rejects(
      download(url, { signal: controller.signal, onProgress: ({ loaded }) => { if (loaded > 2 ** 19) controller.abort(); } }),
      (e) => e instanceof DOMException && e.name === 'AbortError' && e.message === 'the download was aborted',
    );
    await assert.rejects(download(url, { signal: AbortSignal.abort() }), (e) => e.name === 'AbortError');

    // Aborted while it waits to retry (a long pause, so that the abort lands in it).
    setFault(() => ({ cutAt: CUT }));
    const waiting = new AbortController();
    const started = Date.now();
    const pending = download(url, { signal: waiting.signal, retryDelayMs: 60_000, onProgress: ({ loaded }) => { if (loaded >= CUT) setTimeout(() => waiting.abort(), 50); } });
    await assert.rejects(pending, (e) => e.name === 'AbortError');
    assert.ok(Date.now() - started < 30_000, 'the pause ended with the abort');
    assert.equal(requests.length, 1);
  });
});

test('getModel without a Cache API: the verified file is returned and said not to be cached; another file is refused', async () => {
  assert.equal(typeof globalThis.caches, 'undefined', 'this test is about a runtime without the Cache API');
  await withFileServer(async ({ url, bytes }) => {
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    const got = await getModel({ url, sha256 });
    assert.ok(Buffer.from(got.buffer).equals(bytes));
    assert.deepEqual([got.fromCache, got.cached, got.corrupt], [false, false, false]);
    assert.ok(got.cacheError instanceof Error, 'it says why it was not cached');

    const wrong = sha256.replace(/^./, (c) => (c === '0' ? '1' : '0'));
    await assert.rejects(getModel({ url, sha256: wrong }), (e) => {
      assert.ok(e instanceof EdgeLLMError);
      assert.equal(e.code, 'integrity_mismatch');
      assert.deepEqual(e.details, { url, expected: wrong, actual: sha256 });
      return true;
    });
    // No sha256 (a URL of the user's): downloaded as it is, and nothing to cache it under.
    const own = await getModel({ url });
    assert.deepEqual([own.fromCache, own.cached, own.cacheError], [false, false, undefined]);
  });
});
