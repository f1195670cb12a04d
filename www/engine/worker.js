// The engine's home in a Web Worker: owns one Engine, answers protocol.js messages.
// Start it with `new Worker(new URL('./worker.js', import.meta.url), { type: 'module' })`,
// or let WorkerEngine (client.js) do it.

import { Engine } from './core.js';
import { Embedder, Reranker } from './embedder.js';
import { OnnxEmbedder } from './onnx.js';
import { Kind, serializeError } from './protocol.js';
import { edgeError } from './errors.js';

const engine = new Engine();
let embedder = null;
let reranker = null;
const generations = new Map(); // id → AbortController

const post = (msg) => self.postMessage(msg);

async function handle(msg) {
  switch (msg.kind) {
    case Kind.INIT:
      return engine.init(msg.options);
    case Kind.LOAD:
      return engine.load(msg.bytes, msg.options);
    case Kind.GENERATE: {
      const controller = new AbortController();
      generations.set(msg.id, controller);
      try {
        for await (const text of engine.stream({ ...msg.request, signal: controller.signal })) {
          post({ kind: Kind.TOKEN, id: msg.id, text });
        }
        return engine.lastResult();
      } finally {
        generations.delete(msg.id);
      }
    }
    case Kind.INFO:
      return engine.info();
    case Kind.TOKENIZE:
      return engine.tokenize(msg.text);
    case Kind.UNLOAD:
      return engine.unload();
    case Kind.MEMORY:
      return Engine.memory();
    case Kind.LOAD_EMBEDDER:
      embedder?.free();
      embedder = null;
      // { onnx, tokenizer }: an ONNX embedder on WebGPU; { config, weights, tokenizer }: BERT on the CPU.
      embedder = msg.files.onnx ? await OnnxEmbedder.load(msg.files, msg.options) : await Embedder.load(msg.files);
      return { dim: embedder.dim };
    case Kind.EMBED:
      if (!embedder) throw edgeError('not_loaded', 'no embedding model is loaded: call loadEmbedder() first');
      return embedder.embed(msg.texts);
    case Kind.LOAD_RERANKER:
      reranker?.free();
      reranker = null;
      reranker = await Reranker.load(msg.files);
      return null;
    case Kind.RERANK:
      if (!reranker) throw edgeError('not_loaded', 'no reranker is loaded: call loadReranker() first');
      return reranker.score(msg.query, msg.passages);
    default:
      throw edgeError('invalid_request', `unknown message kind '${msg.kind}'`);
  }
}

self.onmessage = async ({ data: msg }) => {
  if (msg.kind === Kind.ABORT) {
    generations.get(msg.target)?.abort();
    return;
  }
  try {
    post({ kind: Kind.RESULT, id: msg.id, value: await handle(msg) });
  } catch (e) {
    post({ kind: Kind.ERROR, id: msg.id, error: serializeError(e) });
  }
};
