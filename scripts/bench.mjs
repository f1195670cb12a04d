// The headless benchmark: the same www/bench/bench.js in Node (the edge-worker path) and in
// headless Chromium (the page, engine in a Web Worker), printed in the reference format.
// ONNX models (registry backend "webgpu") run in Chromium with WebGPU enabled, not in Node.
//   node scripts/bench.mjs [--models smollm2-135m,smollm2-135m-onnx] [--tokens 64] [--queries 3]
//                          [--reps 1] [--threads 1,2] [--passages 3] [--no-peer] [--json FILE]
//                          [--only node|chromium] [--no-native]
// After the runs, llama.cpp itself (npm node-llama-cpp's prebuilt CPU binary, never compiled or
// downloaded) on the same GGUF files at each thread count: native speed, and our Chromium
// figures as a fraction of it.
import { execFileSync } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Engine, loadTokenizer } from '../www/engine/index.js';
import { DocumentIndex } from '../www/rag/index.js';
import { buildCitedPrompt, indexDocuments, sampleCorpus } from '../www/rag/pipeline.js';
import { BENCH_QUERIES, benchmarkModel, formatRatios, formatTable } from '../www/bench/bench.js';
import { chatModelSource } from '../www/app/storage.js';

const { values: args } = parseArgs({
  options: {
    models: { type: 'string' }, tokens: { type: 'string', default: '64' }, queries: { type: 'string', default: String(BENCH_QUERIES.length) },
    reps: { type: 'string', default: '1' }, json: { type: 'string' }, only: { type: 'string' }, threads: { type: 'string', default: '1,2' },
    passages: { type: 'string' }, 'no-peer': { type: 'boolean', default: false }, 'no-native': { type: 'boolean', default: false },
  },
});
const registry = JSON.parse(await readFile(new URL('../models/registry.json', import.meta.url)));
const modelIds = (args.models ?? registry.default).split(',');
const maxNewTokens = Number(args.tokens);
const repetitions = Number(args.reps);
const queries = BENCH_QUERIES.slice(0, Number(args.queries));
const modelsDir = join(process.env.EDGELLM_CACHE ?? join(homedir(), '.cache', 'edgellm'), 'models');

// Every benchmarked file in the cache first (fetched, or generated for a synthetic entry such as
// tinyllama-shape; a cached file is only checked), so neither runtime times a download.
const files = new Set(modelIds.map((id) => {
  const entry = registry.models.find((m) => m.id === id);
  if (!entry) throw new Error(`unknown model '${id}'; the registry has: ${registry.models.map((m) => m.id).join(', ')}`);
  return chatModelSource(registry, entry).file.id;
}));
execFileSync('python3', [new URL('../models/fetch.py', import.meta.url).pathname, ...files], { stdio: ['ignore', 'ignore', 'inherit'] });

async function inNode() {
  // Retrieval's embedder on an engine of its own, as the page keeps one in its retrieval worker.
  const retrieval = new Engine();
  await retrieval.loadEmbedder();
  const embed = (texts) => retrieval.embed(texts);
  const index = new DocumentIndex();
  const corpus = new URL('../www/corpus/', import.meta.url);
  await indexDocuments(index, await sampleCorpus((f) => readFile(new URL(f, corpus), 'utf8')), embed);
  const rows = [];
  for (const id of modelIds) {
    const entry = registry.models.find((m) => m.id === id);
    const { file, options: loadOptions } = chatModelSource(registry, entry);
    if (loadOptions.backend === 'webgpu') {
      process.stderr.write(`node: ${id} skipped: ONNX models run on WebGPU, which Node does not have (Chromium runs it)\n`);
      continue;
    }
    const engine = new Engine();
    let tokenizer;
    let contextLength;
    rows.push(await benchmarkModel({
      model: id,
      engine: {
        load: async (buffer, options) => {
          tokenizer = await loadTokenizer(buffer);
          const info = await engine.load(buffer, options);
          contextLength = info.contextLength;
          return info;
        },
        generate: (request) => engine.generate(request),
      },
      fetchModel: async () => {
        const t0 = performance.now();
        const buffer = await readFile(join(modelsDir, file.file));
        return { buffer, fromCache: true, fetchMs: performance.now() - t0 };
      },
      retrieveContext: async (question) => {
        const { messages, retrieval } = await buildCitedPrompt({ question, index, embed, countTokens: tokenizer.count, contextLength, maxNewTokens, retrieval: args.passages ? { topKFinal: Number(args.passages) } : {} });
        return { messages, retrievalMs: retrieval.timings.totalMs, embedMs: retrieval.timings.embedMs };
      },
      memory: async () => Engine.memory(),
      onProgress: ({ model, step }) => process.stderr.write(`node ${model}: ${step}\n`),
      queries, maxNewTokens, repetitions,
      loadOptions,
    }));
    engine.unload();
    tokenizer.free();
  }
  return { runtime: `node ${process.version}`, rows };
}

async function inChromium() {
  const { withBrowser } = await import('../tests/browser/chromium.mjs');
  const webgpu = modelIds.some((id) => registry.models.find((m) => m.id === id)?.backend === 'webgpu');
  return withBrowser(async ({ page, url, logs }) => {
    page.on('console', (m) => m.type() === 'error' && process.stderr.write(`chromium: ${m.text()}\n`));
    await page.goto(`${url}bench/?models=${modelIds.join(',')}&tokens=${maxNewTokens}&queries=${queries.length}&reps=${repetitions}&threads=${args.threads}` +
      `${args.passages ? `&passages=${args.passages}` : ''}${args['no-peer'] ? '&peer=0' : ''}&autorun=1`);
    const poll = setInterval(async () => process.stderr.write(`chromium: ${await page.textContent('#progress').catch(() => '')}\n`), 15000);
    try {
      await page.waitForFunction(() => window.benchResults, null, { timeout: 0 });
    } finally {
      clearInterval(poll);
    }
    const result = await page.evaluate(() => window.benchResults);
    if (result.error) throw new Error(`the benchmark page failed: ${result.error}\n${logs.join('\n')}`);
    return { runtime: `chromium (${result.crossOriginIsolated ? 'cross-origin isolated' : 'not isolated'})`, rows: result.rows, peer: result.peer };
  }, { webgpu });
}

/**
 * llama.cpp natively on each GGUF model: a prompt of `promptTokens` in one batch, then
 * `maxNewTokens` greedy single-token steps (tests/reference/llamacpp.mjs's `speed`).
 */
async function nativeLlamaCpp(promptTokens) {
  const { openLlamaCpp, closeLlamaCpp } = await import('../tests/reference/llamacpp.mjs');
  const rows = [];
  for (const id of modelIds) {
    const entry = registry.models.find((m) => m.id === id);
    if (entry.format !== 'gguf') continue;
    for (const threads of args.threads.split(',').map(Number)) {
      process.stderr.write(`llama.cpp ${id}: ${threads} thread(s)\n`);
      const ref = await openLlamaCpp(join(modelsDir, entry.file), { threads, contextSize: promptTokens + maxNewTokens + 8 });
      rows.push({ model: id, threads, promptTokens, ...(await ref.speed({ promptTokens, genTokens: maxNewTokens })) });
      await ref.close();
    }
  }
  await closeLlamaCpp();
  return rows;
}

const runs = [];
if (args.only !== 'chromium') runs.push(await inNode());
if (args.only !== 'node') runs.push(await inChromium());
for (const run of runs) {
  console.log(`\n${run.runtime} — ${queries.length} question(s) × ${repetitions}, ${maxNewTokens} greedy tokens each, full RAG path\n`);
  console.log(formatTable(run.rows));
  for (const c of run.peer?.comparisons ?? []) console.log(formatRatios(c));
}
// llama.cpp's prompt: as long as a typical benchmark question's cited prompt.
const NATIVE_PROMPT_TOKENS = 512;
const native = args['no-native'] ? [] : await nativeLlamaCpp(NATIVE_PROMPT_TOKENS);
if (native.length) console.log(`\nllama.cpp natively (node-llama-cpp's prebuilt CPU binary), ${NATIVE_PROMPT_TOKENS}-token prompt, ${maxNewTokens} greedy tokens\n`);
const chromiumRows = runs.find((r) => r.runtime.startsWith('chromium'))?.rows ?? [];
for (const n of native) {
  const ours = chromiumRows.find((r) => r.model === n.model && r.threads === n.threads && !r.peer);
  const ratio = ours ? ` — edgellm in Chromium ÷ native: prefill ${(ours.prefillTokS.median / n.prefillTokS).toFixed(2)}×, decode ${(ours.decodeTokS.median / n.decodeTokS).toFixed(2)}×` : '';
  console.log(`${n.model}, ${n.threads} thread${n.threads > 1 ? 's' : ''}: prefill ${n.prefillTokS.toFixed(1)} tok/s, decode ${n.decodeTokS.toFixed(1)} tok/s${ratio}`);
}
// The peer is measured in the browser, where wllama runs; Node has none.
const peer = runs.find((r) => r.peer)?.peer ?? { measured: false, reason: 'the peer (wllama) runs in Chromium only; pass no --only node' };
if (args.json) {
  await writeFile(args.json, JSON.stringify({ date: new Date().toISOString(), maxNewTokens, repetitions, queries, runs, peer, native }, null, 2));
  console.log(`wrote ${args.json}`);
}
