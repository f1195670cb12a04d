// The benchmark's peer: wllama (llama.cpp compiled to WebAssembly) on the same GGUF, the same
// messages, greedy, the same number of tokens, CPU only, the same thread count. Its numbers come
// from llama.cpp's own timings (prompt and predicted tokens per second).
import { Wllama } from '../vendor/wllama/index.js';

export async function benchmarkWllama({ buffer, prompts, maxNewTokens, threads = 1 }) {
  const wllama = new Wllama({ default: new URL('../vendor/wllama/wllama.wasm', import.meta.url).href }, { suppressNativeLog: true });
  const t0 = performance.now();
  await wllama.loadModel([new Blob([buffer])], { n_threads: threads, n_gpu_layers: 0, n_ctx: 4096 });
  const loadMs = performance.now() - t0;
  // What wllama really runs on: its threaded build needs cross-origin isolation, as ours does.
  const used = wllama.getNumThreads();
  const queries = [];
  for (const messages of prompts) {
    const t1 = performance.now();
    const r = await wllama.createChatCompletion({ messages, max_tokens: maxNewTokens, temperature: 0, ignore_eos: true });
    const t = r.timings ?? {};
    queries.push({
      queryMs: performance.now() - t1,
      promptTokens: t.prompt_n,
      prefillTokS: t.prompt_per_second,
      decodeTokS: t.predicted_per_second,
      generatedTokens: t.predicted_n,
      timeToFirstTokenMs: (t.prompt_ms ?? 0) + (t.predicted_n ? t.predicted_ms / t.predicted_n : 0),
    });
  }
  await wllama.exit();
  return { engine: `wllama ${used} thread${used > 1 ? 's' : ''}`, loadMs, threads: used, queries };
}
