// Model files in the browser's Cache API, keyed by their sha256 and verified on every read, so
// that a reload loads from disk and a stored entry never serves a wrong model: a corrupted one
// is deleted and downloaded again. A download resumes with HTTP Range after a dropped connection
// and is accepted only whole. Nothing here touches the DOM: what the user should be told (not
// cached, a corrupt copy replaced, a retry) comes back in return values and callbacks, which the
// pages render.
import { BERT_FILES } from '../engine/embedder.js';
import { edgeError, EdgeLLMError } from '../engine/errors.js';
import { abortError } from '../engine/scheduling.js';

/** The files of a BERT model (embedder or reranker), by the key the engine expects: the engine's one list. */
export { BERT_FILES };

const CACHE = 'edgellm-models-v1';
const keyFor = (sha256) => `/edgellm-cache/${sha256}`;

/** Requests after the first one, once a connection drops, before a download gives up. */
const RETRIES = 4;
/** The wait before the first retry, doubled at each one after it. */
const RETRY_DELAY_MS = 250;

async function sha256Hex(buffer) {
  const digest = await crypto.subtle.digest('SHA-256', buffer);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('');
}

/**
 * What the response to a request for a file's bytes from `offset` on (0: the whole file, sent
 * without a Range header) means for a download that holds `offset` bytes. `known`: the file's
 * `total` length and `etag` from an earlier response of the same download, so that the rest of
 * a file that changed meanwhile is never spliced onto the start of the old one. Returns
 * `{ use, total }`, `use` being
 *   'resume'    a 206 whose Content-Range starts at `offset`: its body continues the bytes held;
 *   'restart'   a 200: its body is the whole file from byte 0 (a server without Range support);
 *   'refetch'   any other 206 (another start, length or ETag, or no readable Content-Range):
 *               drop its body and the bytes held, and ask for the whole file;
 *   'complete'  a 416 whose Content-Range says the file is `offset` bytes long: all of it is here;
 *   'fail'      any other status, an HTTP error;
 * and `total` the file's length in bytes when the response says it, else null.
 */
export function rangeResponse(offset, { status, headers }, known = {}) {
  const etag = headers.get('ETag');
  const sameFile = (total) => (known.total == null || total == null || total === known.total) && (!known.etag || !etag || etag === known.etag);
  if (status === 200) {
    // Content-Length counts the bytes sent: the file's length only when the body is not encoded.
    const encoding = headers.get('Content-Encoding');
    const total = !encoding || encoding === 'identity' ? Number(headers.get('Content-Length') ?? NaN) : NaN;
    return { use: 'restart', total: Number.isSafeInteger(total) ? total : null };
  }
  if (status === 206) {
    const range = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(headers.get('Content-Range') ?? '');
    const total = range && range[3] !== '*' ? Number(range[3]) : known.total ?? null;
    return range && Number(range[1]) === offset && sameFile(total) ? { use: 'resume', total } : { use: 'refetch', total: null };
  }
  if (status === 416) {
    const range = /^bytes \*\/(\d+)$/.exec(headers.get('Content-Range') ?? '');
    const total = range ? Number(range[1]) : null;
    return { use: offset > 0 && total === offset && sameFile(total) ? 'complete' : 'refetch', total };
  }
  return { use: 'fail', total: null };
}

/** Wait `ms`, or reject with an AbortError as soon as `signal` aborts. */
function pause(ms, signal) {
  return new Promise((resolve, reject) => {
    const onAbort = () => { clearTimeout(timer); reject(abortError('the download')); };
    const timer = setTimeout(() => { signal?.removeEventListener('abort', onAbort); resolve(); }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Download `url` whole. After a dropped connection it asks for the rest (`Range: bytes=N-`, N
 * the bytes held) where the server allows it, else for the whole file again, up to `retries`
 * times; the bytes are accepted only when there are as many as the response said the file has
 * (Content-Length, or the Content-Range total). `onProgress({ loaded, total, retry })`: `retry`
 * counts the requests after the first, `loaded` falls back to 0 when the download restarts.
 * `signal` aborts it with an AbortError. Rejects with fetch_failed on an HTTP error, and with
 * download_incomplete when the file is still short after the retries.
 */
export async function download(url, { onProgress, signal, retries = RETRIES, retryDelayMs = RETRY_DELAY_MS } = {}) {
  let chunks = [];
  let loaded = 0;
  let known = {}; // the file's length (total) and ETag, once a response has said them
  for (let retry = 0; ; retry++) {
    if (signal?.aborted) throw abortError('the download');
    // Resume only inside a file of known length: without one, `loaded` may count decoded bytes,
    // and a Range would count the encoded ones.
    const from = known.total != null ? loaded : 0;
    if (retry > 0) onProgress?.({ loaded: from, total: known.total ?? null, retry });
    let why;
    try {
      // no-store: the verified copy in the Cache API is the one kept; the HTTP cache would hold a
      // second copy of a large file, and could answer a Range request from a stale one.
      const response = await fetch(url, { signal, cache: 'no-store', headers: from > 0 ? { Range: `bytes=${from}-` } : {} });
      const step = rangeResponse(from, response, known);
      if (step.use === 'fail') throw edgeError('fetch_failed', `download of ${url} failed: HTTP ${response.status}`);
      if (step.use === 'complete') break;
      if (step.use !== 'resume') {
        chunks = [];
        loaded = 0;
      }
      if (step.use === 'refetch') {
        await response.body?.cancel();
        known = {};
        why = `the server answered Range: bytes=${from}- with HTTP ${response.status} for other bytes`;
      } else {
        known = { total: step.total, etag: response.headers.get('ETag') };
        const reader = response.body.getReader();
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          chunks.push(value);
          loaded += value.byteLength;
          // More bytes than the length said: it was an encoded body's (a Content-Encoding the
          // response does not show across origins), so the file's length is unknown after all.
          if (known.total != null && loaded > known.total) known.total = null;
          onProgress?.({ loaded, total: known.total ?? null, retry });
        }
        // Whole as far as the headers tell; a pinned file's sha256 is checked by the caller.
        if (known.total == null || loaded === known.total) break;
        why = `the response ended at byte ${loaded} of ${known.total}`;
      }
    } catch (e) {
      if (signal?.aborted) throw abortError('the download');
      if (e instanceof EdgeLLMError) throw e;
      why = e.message; // a dropped connection: fetch, or a read of its body, rejects with a TypeError
    }
    if (retry >= retries) {
      const total = known.total ?? null;
      throw edgeError('download_incomplete', `the download of ${url} stopped at byte ${loaded}${total === null ? '' : ` of ${total}`} after ${retry + 1} attempts (${why})`, { details: { loaded, total } });
    }
    await pause(retryDelayMs * 2 ** retry, signal);
  }
  const bytes = new Uint8Array(loaded);
  let offset = 0;
  for (const c of chunks) { bytes.set(c, offset); offset += c.byteLength; }
  return bytes.buffer;
}

/**
 * The model's bytes: from the cache when present and intact, else downloaded (`download`, with
 * `onProgress` and `signal`), verified against `sha256` and cached. Resolves to
 * `{ buffer, fromCache, cached, cacheError, corrupt }`: `cached` whether the bytes are in the
 * cache now; `cacheError` why they could not be put there (a QuotaExceededError DOMException
 * when the site's storage is full, or the Cache API missing): the model loads all the same, from
 * memory, and is downloaded again next time; `corrupt` when a cached copy failed its check and
 * was replaced by the download. Progress reports carry `corrupt` too. A file without a sha256
 * (the user's own URL) is downloaded as it is and never cached: nothing could check a stored copy.
 * Rejects with integrity_mismatch when the download is not the file the sha256 names.
 */
export async function getModel({ url, sha256 }, { onProgress, signal } = {}) {
  let cache = null;
  let cacheError;
  try {
    cache = await caches.open(CACHE);
  } catch (e) {
    cacheError = e; // no Cache API here (caches undefined, or refused): download every time
  }
  let corrupt = false;
  if (cache && sha256) {
    const hit = await cache.match(keyFor(sha256)).catch(() => undefined);
    if (hit) {
      // An entry whose body cannot be read counts as corrupt too: it is replaced, never trusted.
      const buffer = await hit.arrayBuffer().catch(() => null);
      if (buffer && (await sha256Hex(buffer)) === sha256) return { buffer, fromCache: true, cached: true, corrupt: false };
      corrupt = true;
      await cache.delete(keyFor(sha256)).catch(() => {});
    }
  }
  const buffer = await download(url, { signal, onProgress: onProgress && ((p) => onProgress({ ...p, corrupt })) });
  if (!sha256) return { buffer, fromCache: false, cached: false, corrupt };
  const actual = await sha256Hex(buffer);
  if (actual !== sha256) {
    throw edgeError('integrity_mismatch', `the file downloaded from ${url} has sha256 ${actual}, not the ${sha256} its registry entry pins`, { details: { url, expected: sha256, actual } });
  }
  if (!cache) return { buffer, fromCache: false, cached: false, cacheError, corrupt };
  try {
    // A Response copies the bytes it is given, so the buffer stays the caller's to transfer.
    await cache.put(keyFor(sha256), new Response(buffer));
    return { buffer, fromCache: false, cached: true, corrupt };
  } catch (e) {
    return { buffer, fromCache: false, cached: false, cacheError: e, corrupt };
  }
}

export async function clearModels() {
  await caches.delete(CACHE);
}

/**
 * Where a registry entry's file is served: the project's model folder (beside this site, filled
 * by models/fetch.py) when the project fetches or generates it, else its public source.
 */
export function modelUrl(entry, file = entry.file) {
  const local = entry.wheels?.length || entry.files || entry.synthetic;
  return local ? new URL(`../models/${entry.dir ? `${entry.dir}/` : ''}${file}`, import.meta.url).href : entry.source;
}

/**
 * A registry BERT model's files as bytes, through the verified cache. `onResult(file, result)`
 * hears how each was got (getModel's result without its buffer), for the page to report.
 */
export async function bertFiles(entry, { signal, onResult } = {}) {
  const files = {};
  for (const [key, name] of Object.entries(BERT_FILES)) {
    const spec = entry.files.find((f) => f.file === name);
    const { buffer, ...result } = await getModel({ url: modelUrl(entry, name), sha256: spec.sha256 }, { signal });
    onResult?.(name, result);
    files[key] = new Uint8Array(buffer);
  }
  return files;
}

/** The chat models a page offers: GGUF files (run on the CPU) and their ONNX exports (WebGPU). */
export function chatModels(registry) {
  return registry.models.filter((m) => m.format === 'gguf' || (m.format === 'onnx' && m.kind !== 'embedding'));
}

/**
 * How to load a chat model: `file`, the registry entry of the GGUF to fetch (an ONNX entry is
 * exported from its `from` model's GGUF, in the engine's worker), and the engine's load options.
 */
export function chatModelSource(registry, entry) {
  const file = entry.format === 'onnx' ? registry.models.find((m) => m.id === entry.from) : entry;
  const template = entry.template === 'none' ? undefined : entry.template;
  const options = entry.format === 'onnx' ? { backend: 'webgpu', export: entry.export, template } : { template };
  return { file, options };
}

/**
 * How a model answers questions: its registry entry's `answer` preset (decoding, repetition
 * control, stop strings, answer length), or the preset of the GGUF an ONNX entry is exported
 * from; null for a model that has none (answers then use greedy decoding).
 */
export function answerPreset(registry, entry) {
  const from = entry?.from ? registry.models.find((m) => m.id === entry.from) : null;
  return entry?.answer ?? from?.answer ?? null;
}
