// The one file that touches the wasm module: which build runs here, and its bindings.
//
// Three builds of the same crate (build.sh):
//   pkg/          single-threaded, SIMD128; runs everywhere (pages, workers, Node, edge runtimes);
//   pkg-relaxed/  single-threaded, SIMD128 + relaxed SIMD (its 8-bit dot product: the quantized
//                 matmuls' inner loop in one instruction), where the engine has relaxed SIMD;
//   pkg-threads/  shared memory, rayon's pool on Web Workers (wasm-bindgen-rayon), relaxed SIMD.
//                 Usable only in a cross-origin-isolated Web Worker: the memory is a
//                 SharedArrayBuffer, and the thread that calls into the model blocks while the
//                 pool works, which a window's main thread may not.
// `initWasm()` picks the threaded build where it can run, else the relaxed one where the engine
// validates relaxed SIMD, else the plain one; a module is instantiated once per thread (per
// worker), so the first call decides. Every engine with threads and relaxed SIMD has both;
// one with threads but no relaxed SIMD runs single-threaded (`fallback` says so) rather than
// carrying a fourth build.

import { edgeError } from './errors.js';

const isNode = typeof process !== 'undefined' && !!process.versions?.node;
/** More threads than this gain little on a 135M–1B model and take cores from the page. */
const MAX_THREADS = 4;

let ready = null;
let current = null;

/**
 * A module of one function using `i32x4.relaxed_dot_i8x16_i7x16_add_s` (binaryen's wasm-as of
 * `(func (result v128) v128.const ×3, i32x4.relaxed_dot_i8x16_i7x16_add_s)`): an engine that
 * validates it runs the relaxed builds.
 */
const RELAXED_SIMD_PROBE = new Uint8Array([
  0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 61, 1, 59, 0,
  253, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  253, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  253, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  253, 147, 2, 11,
]);

/**
 * Whether this engine has WebAssembly relaxed SIMD (Chromium ≥ 114; Node ≥ 22). Node 20 has it
 * only behind --experimental-wasm-relaxed-simd, where its results change when V8 tiers the code
 * up (tests/kernels.rs fails there and passes in Chromium), so Node before 22 never gets it.
 */
export function hasRelaxedSimd() {
  if (isNode && Number(process.versions.node.split('.')[0]) < 22) return false;
  try {
    return WebAssembly.validate(RELAXED_SIMD_PROBE);
  } catch {
    return false;
  }
}

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
  const relaxed = source === undefined && hasRelaxedSimd();
  if (threads > 1 && source !== undefined) fallback = 'a module source was given, and sources are of the single-threaded build';
  if (threads > 1 && !relaxed) fallback ??= 'the threaded build uses relaxed SIMD, which this engine does not have';
  if (threads > 1 && (fallback ??= threadsUnavailableReason())) threads = 1;
  if (threads > 1) {
    const bindings = await import('../pkg-threads/edgellm.js');
    await bindings.default();
    await bindings.initThreadPool(threads);
    current = { bindings, build: 'threads', simd: 'relaxed', threads: bindings.computeThreads(), fallback };
  } else {
    const dir = relaxed ? 'pkg-relaxed' : 'pkg';
    const bindings = await (relaxed ? import('../pkg-relaxed/edgellm.js') : import('../pkg/edgellm.js'));
    if (source === undefined && isNode) {
      const { readFile } = await import('node:fs/promises');
      source = await readFile(new URL(`../${dir}/edgellm_bg.wasm`, import.meta.url));
    }
    await bindings.default(source === undefined ? undefined : { module_or_path: source });
    current = { bindings, build: 'single', simd: relaxed ? 'relaxed' : 'simd128', threads: 1, fallback };
  }
  return runtime();
}

/**
 * { build: 'single' | 'threads', simd: 'relaxed' | 'simd128', threads, fallback } once
 * initialised, else null.
 */
export function runtime() {
  return current && { build: current.build, simd: current.simd, threads: current.threads, fallback: current.fallback };
}

/** The wasm-bindgen exports (WasmModel, WasmTokenizer, …) of the build in use. */
export function wasm() {
  if (!current) throw edgeError('not_initialised', 'edgellm: the wasm module is not initialised (await initWasm() first)');
  return current.bindings;
}
