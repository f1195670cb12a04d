// The one file that touches the wasm module: which build runs here, and its bindings.
//
// Two builds of the same crate (build.sh):
//   pkg/          single-threaded; runs everywhere (pages, workers, Node, edge runtimes);
//   pkg-threads/  shared memory, rayon's pool on Web Workers (wasm-bindgen-rayon). Usable only
//                 in a cross-origin-isolated Web Worker: the memory is a SharedArrayBuffer, and
//                 the thread that calls into the model blocks while the pool works, which a
//                 window's main thread may not.
// `initWasm()` picks the threaded build where it can run and the single one otherwise; a
// module is instantiated once per thread (per worker), so the first call decides.

import { edgeError } from './errors.js';

const isNode = typeof process !== 'undefined' && !!process.versions?.node;
/** More threads than this gain little on a 135M–1B model and take cores from the page. */
const MAX_THREADS = 4;

let ready = null;
let current = null;

/** Why the threaded build cannot run here, or null if it can. */
export function threadsUnavailableReason() {
  if (isNode) return 'Node runs the single-threaded build';
  if (typeof SharedArrayBuffer !== 'function' || globalThis.crossOriginIsolated !== true) {
    return 'the page is not cross-origin isolated (it needs COOP/COEP headers), so it cannot share memory between threads';
  }
  if (typeof WorkerGlobalScope === 'undefined' || !(globalThis instanceof WorkerGlobalScope)) {
    return 'threads need the engine in a Web Worker (WorkerEngine): a window may not block while they work';
  }
  return null;
}

/** The thread count `initWasm()` uses when not told: all cores up to 4 where threads can run. */
export function defaultThreads() {
  if (threadsUnavailableReason()) return 1;
  return Math.max(1, Math.min(globalThis.navigator?.hardwareConcurrency ?? 1, MAX_THREADS));
}

/**
 * Instantiate the wasm module once. options: { source, threads }. `source`: a URL, the .wasm
 * bytes or a compiled WebAssembly.Module of the single-threaded build (edge runtimes import
 * it); default: the file beside pkg/edgellm.js. `threads`: 1 for the single-threaded build,
 * more for the threaded one where it can run (otherwise the single one, and `runtime().fallback`
 * says why). Resolves to runtime().
 */
export function initWasm({ source, threads } = {}) {
  ready ??= instantiate(source, threads ?? defaultThreads());
  return ready;
}

async function instantiate(source, threads) {
  let fallback = null;
  if (threads > 1 && source !== undefined) fallback = 'a module source was given, and sources are of the single-threaded build';
  if (threads > 1 && (fallback ??= threadsUnavailableReason())) threads = 1;
  if (threads > 1) {
    const bindings = await import('../pkg-threads/edgellm.js');
    await bindings.default();
    await bindings.initThreadPool(threads);
    current = { bindings, build: 'threads', threads: bindings.computeThreads(), fallback };
  } else {
    const bindings = await import('../pkg/edgellm.js');
    if (source === undefined && isNode) {
      const { readFile } = await import('node:fs/promises');
      source = await readFile(new URL('../pkg/edgellm_bg.wasm', import.meta.url));
    }
    await bindings.default(source === undefined ? undefined : { module_or_path: source });
    current = { bindings, build: 'single', threads: 1, fallback };
  }
  return runtime();
}

/** { build: 'single' | 'threads', threads, fallback } once initialised, else null. */
export function runtime() {
  return current && { build: current.build, threads: current.threads, fallback: current.fallback };
}

/** The wasm-bindgen exports (WasmModel, WasmTokenizer, …) of the build in use. */
export function wasm() {
  if (!current) throw edgeError('not_initialised', 'edgellm: the wasm module is not initialised (await initWasm() first)');
  return current.bindings;
}
