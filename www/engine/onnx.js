// The one file that touches the ONNX backend's wasm module (www/pkg-onnx/, built from onnx/):
// models exported to ONNX and run on WebGPU through wonnx. A separate module, imported only
// when an ONNX model is chosen, so pages that never use one never download it.

import { edgeError } from './errors.js';

const isNode = typeof process !== 'undefined' && !!process.versions?.node;

let ready = null;
let loaded = null;

/** Instantiate the ONNX module once; resolves to its wasm-bindgen exports. */
export function onnxModule() {
  ready ??= (async () => {
    const bindings = await import('../pkg-onnx/edgellm_onnx.js');
    let source;
    if (isNode) {
      const { readFile } = await import('node:fs/promises');
      source = await readFile(new URL('../pkg-onnx/edgellm_onnx_bg.wasm', import.meta.url));
    }
    await bindings.default(source === undefined ? undefined : { module_or_path: source });
    loaded = bindings;
    return bindings;
  })();
  return ready;
}

/** Bytes of the ONNX module's wasm memory (0 until an ONNX model or embedder was loaded). */
export function onnxMemoryBytes() {
  return loaded ? loaded.wasmMemoryBytes() : 0;
}

/**
 * Can ONNX models run here? Resolves to { available: true, adapter } or { available: false,
 * reason } — without loading the ONNX module when the runtime has no WebGPU at all.
 */
export async function webgpuStatus() {
  if (!globalThis.navigator?.gpu) {
    return { available: false, reason: 'this runtime has no WebGPU (navigator.gpu is missing); ONNX models need it, GGUF models run on the CPU' };
  }
  try {
    return { available: true, adapter: await (await onnxModule()).webgpuAdapter() };
  } catch (e) {
    return { available: false, reason: e.message };
  }
}

/** An error like the wasm module's, for failures found before it is reached. */
function webgpuUnavailable(reason) {
  return edgeError('webgpu_unavailable', reason);
}

/**
 * Export a llama-family GGUF to ONNX and load it on WebGPU. options: { template, export:
 * { context, weights: 'int8' | 'f32' } }. Resolves to an OnnxModel, whose methods match the
 * main module's WasmModel (nextToken() returns a promise).
 */
export async function loadOnnxFromGguf(bytes, options) {
  const status = await webgpuStatus();
  if (!status.available) throw webgpuUnavailable(status.reason);
  const { OnnxModel } = await onnxModule();
  return OnnxModel.fromGguf(bytes, options);
}

/**
 * An ONNX sentence embedder on WebGPU (e.g. paraphrase-MiniLM-L3-v2): the Embedder interface
 * (`dim`, `embed(texts)` → unit-length Float32Arrays, `free()`). files: { onnx, tokenizer }
 * (bytes of the .onnx graph and tokenizer.json); `seqLen`: tokens per text fixed into the graph.
 */
export class OnnxEmbedder {
  #model;

  constructor(model) {
    this.#model = model;
  }

  static async load({ onnx, tokenizer }, { seqLen = 128 } = {}) {
    const status = await webgpuStatus();
    if (!status.available) throw webgpuUnavailable(status.reason);
    const { WasmOnnxEmbedder } = await onnxModule();
    return new OnnxEmbedder(await WasmOnnxEmbedder.load(onnx, tokenizer, seqLen));
  }

  get dim() {
    return this.#model.dim();
  }

  async embed(texts) {
    const flat = await this.#model.embed(texts);
    const dim = this.dim;
    const out = [];
    for (let j = 0; j < flat.length; j += dim) out.push(flat.slice(j, j + dim));
    return out;
  }

  free() {
    this.#model.free();
  }
}
