// The service in workerd (the open-source Cloudflare Workers runtime), started with the config
// beside this file:  npx workerd serve www/service/workerd.capnp --directory-path files=DIR
// workerd forbids compiling WebAssembly from bytes at run time, so the single-threaded module
// is imported, compiled when the worker is deployed; it has no threads either. The model,
// embedder and index are read through the FILES binding (a disk service over DIR; on Cloudflare,
// an R2 bucket has the same get-by-name shape), the FAQ cache persists through STATE when the
// config binds a writable one. The first request starts the engine; later ones share it.

import wasmModule from '../pkg/edgellm_bg.wasm';
import { startService } from './boot.js';
import { edgeError } from '../engine/errors.js';

let starting = null;

/** A file of the FILES binding as bytes, or `streamed` (the model) as the Response itself. */
async function readBinding(binding, name, { streamed = false } = {}) {
  const response = await binding.fetch(`http://files/${name.split('/').map(encodeURIComponent).join('/')}`);
  if (!response.ok) throw edgeError('fetch_failed', `${name}: HTTP ${response.status} from the FILES binding`);
  return streamed ? response : new Uint8Array(await response.arrayBuffer());
}

function stateStore(binding) {
  const url = 'http://state/answer-cache.json';
  return {
    load: async () => {
      const response = await binding.fetch(url);
      return response.status === 404 ? null : response.json();
    },
    save: async (json) => {
      const response = await binding.fetch(url, { method: 'PUT', body: JSON.stringify(json) });
      if (!response.ok) throw new Error(`STATE: HTTP ${response.status}`);
    },
  };
}

/** The text bindings that name the files (workerd.capnp), absent ones left to boot.js's defaults. */
function chosenFiles(env) {
  const names = { model: env.MODEL, embedder: env.EMBEDDER, reranker: env.RERANKER, index: env.INDEX };
  return Object.fromEntries(Object.entries(names).filter(([, v]) => v));
}

export default {
  async fetch(request, env) {
    starting ??= startService({
      read: (name, options) => readBinding(env.FILES, name, options),
      files: chosenFiles(env),
      modelId: env.MODEL_ID || undefined,
      contextLength: env.CONTEXT_LENGTH ? Number(env.CONTEXT_LENGTH) : undefined,
      wasm: wasmModule,
      cacheStore: env.STATE ? stateStore(env.STATE) : undefined,
      runtime: 'workerd',
      log: (line) => console.log(line),
    });
    let service;
    try {
      service = await starting;
    } catch (e) {
      starting = null; // the next request tries again (a file may have been put in place since)
      const error = { code: typeof e?.code === 'string' ? e.code : 'internal_error', message: `the service could not start: ${e?.message ?? e}` };
      return new Response(JSON.stringify({ error }), { status: 503, headers: { 'content-type': 'application/json' } });
    }
    return service.fetch(request);
  },
};
