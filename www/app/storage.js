// Model files in the browser's Cache API, keyed by their sha256 and verified on every read, so
// a reload loads from disk and a corrupted entry is fetched again rather than used.

const CACHE = 'edgellm-models-v1';
const keyFor = (sha256) => `/edgellm-cache/${sha256}`;

async function sha256Hex(buffer) {
  const digest = await crypto.subtle.digest('SHA-256', buffer);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('');
}

/** Download `url` with byte progress, `onProgress({ loaded, total })`. */
async function download(url, onProgress) {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`download of ${url} failed: HTTP ${res.status}`);
  const total = Number(res.headers.get('Content-Length')) || null;
  const reader = res.body.getReader();
  const chunks = [];
  let loaded = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    loaded += value.byteLength;
    onProgress?.({ loaded, total });
  }
  const bytes = new Uint8Array(loaded);
  let offset = 0;
  for (const c of chunks) { bytes.set(c, offset); offset += c.byteLength; }
  return bytes.buffer;
}

/**
 * The model's bytes: from the cache when present and intact, else downloaded, verified and
 * cached. Resolves to { buffer, fromCache }.
 */
export async function getModel({ url, sha256 }, onProgress) {
  const cache = await caches.open(CACHE);
  if (sha256) {
    const hit = await cache.match(keyFor(sha256));
    if (hit) {
      const buffer = await hit.arrayBuffer();
      if ((await sha256Hex(buffer)) === sha256) return { buffer, fromCache: true };
      await cache.delete(keyFor(sha256));
    }
  }
  const buffer = await download(url, onProgress);
  if (sha256) {
    const actual = await sha256Hex(buffer);
    if (actual !== sha256) throw new Error(`the downloaded model's sha256 is ${actual}, expected ${sha256}`);
    await cache.put(keyFor(sha256), new Response(buffer.slice(0)));
  }
  return { buffer, fromCache: false };
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

/** The files of a BERT model (embedder or reranker), by the key the engine expects. */
export const BERT_FILES = Object.freeze([['config', 'config.json'], ['weights', 'model.safetensors'], ['tokenizer', 'tokenizer.json']]);

/** A registry BERT model's files as bytes, through the verified cache. */
export async function bertFiles(entry) {
  const files = {};
  for (const [key, name] of BERT_FILES) {
    const spec = entry.files.find((f) => f.file === name);
    files[key] = new Uint8Array((await getModel({ url: modelUrl(entry, name), sha256: spec.sha256 })).buffer);
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
