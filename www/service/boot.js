// Starting the service: read the model, the embedder, the optional reranker and the document
// index through the runtime's `read(name)`, load them into one Engine, restore the FAQ cache, and
// build the fetch handler. Each runtime's entry supplies `read` (a file system, a binding, URLs)
// and, where it has storage, `cacheStore`; everything else is here, once.

import { Engine, loadTokenizer } from '../engine/core.js';
import { BERT_FILES } from '../engine/embedder.js';
import { edgeError } from '../engine/errors.js';
import { DocumentIndex } from '../rag/index.js';
import { AnswerCache } from '../rag/answer-cache.js';
import { createService } from './service.js';

/** The files a service reads, by name as `read` understands them (relative to the models folder). */
export const DEFAULT_FILES = Object.freeze({
  model: 'SmolLM2-135M-Instruct.Q4_1.gguf',
  embedder: 'minilm-l6',
  reranker: null,
  index: 'edgellm-index.json',
});

/**
 * @param {object} o
 * @param {(name: string, options?: { streamed?: boolean }) => Promise<Uint8Array | Blob | Response>} o.read
 *   bytes of a file named as in DEFAULT_FILES; with `streamed` (asked for the model) a Blob or a
 *   Response may come back instead, which the engine reads straight into wasm memory
 * @param {Partial<typeof DEFAULT_FILES>} [o.files]
 * @param {string} [o.modelId]     what `model` in requests must say (default: the file name without .gguf)
 * @param {number} [o.contextLength]
 * @param {string | URL | BufferSource | WebAssembly.Module} [o.wasm]  the single-threaded module (workerd imports it)
 * @param {{ load(): Promise<object|null>, save(json: object): Promise<void> }} [o.cacheStore]
 * @param {string} o.runtime       'workerd' | 'deno' | 'node'
 * @param {object} [o.limits]      SERVICE_DEFAULTS overrides
 * @param {(line: string) => void} [o.log]
 */
export async function startService({ read, files: chosen = {}, modelId, contextLength, wasm, cacheStore, runtime, limits, log = () => {} }) {
  const files = { ...DEFAULT_FILES, ...chosen };
  const startup = {};
  const timed = async (name, work) => {
    const t0 = performance.now();
    const value = await work();
    startup[`${name}Ms`] = performance.now() - t0;
    return value;
  };
  const engine = new Engine();
  await timed('wasm', () => engine.init({ wasm, threads: 1 }));
  const { modelInfo, tokenizer } = await loadModel(engine, () => read(files.model, { streamed: true }), contextLength, timed);
  log(`model ${files.model}: ${modelInfo.name} (${modelInfo.architecture}), context ${modelInfo.contextLength}`);

  const bert = async (dir) => Object.fromEntries(await Promise.all(Object.entries(BERT_FILES).map(async ([k, f]) => [k, await read(`${dir}/${f}`)])));
  const { dim } = await timed('loadEmbedder', async () => engine.loadEmbedder(await bert(files.embedder)));
  if (files.reranker) await timed('loadReranker', async () => engine.loadReranker(await bert(files.reranker)));

  const index = await timed('loadIndex', async () => DocumentIndex.fromJSON(new TextDecoder().decode(await read(files.index))));
  if (index.dimensions !== null && index.dimensions !== dim) {
    throw edgeError('invalid_request', `${files.index} holds ${index.dimensions}-dimensional vectors, and the embedder ${files.embedder} makes ${dim}: build the index with the same embedder`);
  }
  log(`index ${files.index}: ${index.size} passages of ${index.sources.length} documents`);

  const cache = await restoreCache(cacheStore, log);
  return createService({
    engine, modelId: modelId ?? files.model.split('/').at(-1).replace(/\.gguf$/i, ''), modelInfo, countTokens: tokenizer.count,
    index, embedderId: files.embedder, hasReranker: !!files.reranker, cache,
    saveCache: cacheStore ? (json) => cacheStore.save(json) : undefined, runtime, startup, limits,
  });
}

/**
 * The model and its tokenizer. A function of its own so that the file's bytes, when `read` gives
 * bytes, are held by no closure of the service once wasm memory has them: a variable that any
 * closure in startService used would be kept as long as the service's handlers are.
 */
async function loadModel(engine, readModel, contextLength, timed) {
  const source = await timed('readModel', readModel);
  // A Response's body can be read once: the tokenizer reads the file's tables from a clone, and
  // the original keeps those first bytes (a few MB) until the model's load reads them.
  const tokenizer = await loadTokenizer(source instanceof Response ? source.clone() : source);
  const modelInfo = await timed('loadModel', () => engine.load(source, contextLength ? { contextLength } : {}));
  return { modelInfo, tokenizer };
}

/** The FAQ cache as stored, or a fresh one when there is none or it cannot be read (said in the log). */
async function restoreCache(cacheStore, log) {
  const stored = await cacheStore?.load().catch((e) => {
    log(`answer cache: not read (${e.message}); starting empty`);
    return null;
  });
  if (!stored) return new AnswerCache();
  try {
    return AnswerCache.fromJSON(stored);
  } catch (e) {
    log(`answer cache: the stored one is unusable (${e.message}); starting empty`);
    return new AnswerCache();
  }
}
