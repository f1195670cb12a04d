// What the service's Node and Deno entries share: their command line, and files read from the
// local disk or a URL (Deno runs node:fs through its Node compatibility, so one reader serves both).
//
//   --port 8787 --host 127.0.0.1
//   --models DIR      where relative file names are looked up (default ~/.cache/edgellm/models)
//   --model FILE      the GGUF (default SmolLM2-135M-Instruct.Q4_1.gguf); a path, a name in DIR, or a URL
//   --model-id ID     what requests' `model` must say (default: the file name without .gguf)
//   --embedder DIR    all-MiniLM-L6-v2's config.json, model.safetensors, tokenizer.json (default minilm-l6)
//   --reranker DIR    a cross-encoder's three files (default: none; /v1/rerank answers not_loaded)
//   --index FILE      the document index the page exports (default edgellm-index.json)
//   --context N       the context length to load the model with (default: the model's, capped)
//   --cache FILE      where the FAQ answer cache persists (default DIR/../service/answer-cache.json; 'none': memory only)
//   --max-queue N --max-body-bytes N --max-new-tokens N

import { openAsBlob } from 'node:fs';
import { readFile, writeFile, mkdir, rename } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join } from 'node:path';
import { edgeError } from '../engine/errors.js';

const NUMBERS = { port: 'port', context: 'contextLength', 'max-queue': 'maxQueue', 'max-body-bytes': 'maxBodyBytes', 'max-new-tokens': 'maxNewTokens' };
const STRINGS = { host: 'host', models: 'models', model: 'model', 'model-id': 'modelId', embedder: 'embedder', reranker: 'reranker', index: 'index', cache: 'cache' };

/** The command line as options; an unknown or malformed flag is an error that names it. */
export function parseArgs(args, env = {}) {
  const o = { port: 8787, host: '127.0.0.1', models: join(env.EDGELLM_CACHE ?? join(homedir(), '.cache', 'edgellm'), 'models') };
  for (let i = 0; i < args.length; i += 2) {
    const flag = args[i]?.replace(/^--/, '');
    const value = args[i + 1];
    if (value === undefined) throw edgeError('invalid_request', `${args[i]} needs a value`);
    if (Object.hasOwn(NUMBERS, flag)) {
      const n = Number(value);
      if (!Number.isInteger(n) || n < 0) throw edgeError('invalid_request', `--${flag} must be a whole number, got ${value}`);
      o[NUMBERS[flag]] = n;
    } else if (Object.hasOwn(STRINGS, flag)) {
      o[STRINGS[flag]] = value;
    } else {
      throw edgeError('invalid_request', `unknown option ${args[i]} (see www/service/local.js)`);
    }
  }
  o.cache ??= join(dirname(o.models), 'service', 'answer-cache.json');
  return o;
}

/** startService()'s arguments for these options: `read`, `files`, `cacheStore`, limits. */
export function localSources(o) {
  // `streamed`: the model, which the engine reads from a Blob or a Response straight into wasm
  // memory, never whole in JS memory.
  const read = async (name, { streamed = false } = {}) => {
    if (/^https?:\/\//.test(name)) {
      const response = await fetch(name);
      if (!response.ok) throw edgeError('fetch_failed', `${name}: HTTP ${response.status}`);
      return streamed ? response : new Uint8Array(await response.arrayBuffer());
    }
    const path = isAbsolute(name) ? name : join(o.models, name);
    try {
      return streamed ? await openAsBlob(path) : new Uint8Array(await readFile(path));
    } catch (e) {
      throw edgeError('fetch_failed', `cannot read ${path}: ${e.message}`);
    }
  };
  const cacheStore = o.cache === 'none' ? undefined : {
    load: async () => JSON.parse(await readFile(o.cache, 'utf8').catch((e) => (e.code === 'ENOENT' ? 'null' : Promise.reject(e)))),
    // Written beside and renamed over, so a crash mid-write never leaves half a file.
    save: async (json) => {
      await mkdir(dirname(o.cache), { recursive: true });
      await writeFile(`${o.cache}.tmp`, JSON.stringify(json));
      await rename(`${o.cache}.tmp`, o.cache);
    },
  };
  const files = Object.fromEntries(['model', 'embedder', 'reranker', 'index'].filter((k) => o[k] !== undefined).map((k) => [k, o[k]]));
  const limits = Object.fromEntries(['maxQueue', 'maxBodyBytes', 'maxNewTokens'].filter((k) => o[k] !== undefined).map((k) => [k, o[k]]));
  return { read, files, cacheStore, limits, modelId: o.modelId, contextLength: o.contextLength };
}
