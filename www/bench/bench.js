// The one benchmark, used by the page and by scripts/bench.mjs (Node and headless Chromium).
// For a model it measures the load, cold then warm (fetch / parse / tokenizer / weights) and, per question, the
// full RAG path (retrieval + embedding + generation) and the raw model, with greedy decoding of a
// fixed number of tokens so that runs compare. Repetitions give a median and min–max.
//
// Everything environment-specific is injected: `engine` (Engine or WorkerEngine), `fetchModel`,
// `retrieveContext`, `memory`. The module imports nothing but the prompt builder's contract.

export const BENCH_QUERIES = Object.freeze([
  'What is sustainability in engineering?',
  'Explain the concept of life cycle assessment.',
  'How does climate change impact engineering design?',
]);

export const BENCH_DEFAULTS = Object.freeze({ maxNewTokens: 64, repetitions: 1, queries: BENCH_QUERIES });

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/** { median, min, max } of a list of numbers. */
export function stats(xs) {
  return { median: median(xs), min: Math.min(...xs), max: Math.max(...xs) };
}

/** The per-query columns of a row, from per-query measurements (ours or a peer's). */
function summarize(queries) {
  const queryMs = queries.map((q) => q.queryMs);
  return {
    avgQueryMs: queryMs.reduce((a, b) => a + b, 0) / queryMs.length,
    queryMs: stats(queryMs),
    timeToFirstTokenMs: stats(queries.map((q) => q.timeToFirstTokenMs)),
    prefillTokS: stats(queries.map((q) => q.prefillTokS)),
    decodeTokS: stats(queries.map((q) => q.decodeTokS)),
    generatedTokens: queries.reduce((a, q) => a + q.generatedTokens, 0),
  };
}

/**
 * Benchmark one model.
 * @param {object} o
 * @param {string} o.model            registry id (the row label)
 * @param {object} o.engine           Engine / WorkerEngine
 * @param {() => Promise<{ buffer: ArrayBuffer, fetchMs: number, fromCache: boolean }>} o.fetchModel
 * @param {(question: string) => Promise<{ messages: object[], retrievalMs: number, embedMs: number }>} [o.retrieveContext]
 *        builds the RAG prompt for a question; without it only the raw model is measured
 * @param {() => Promise<{ wasmBytes: number, jsHeapBytes: number|null }>} o.memory
 * @param {(event: { model: string, step: string }) => void} [o.onProgress]
 */
export async function benchmarkModel({
  model, engine, fetchModel, retrieveContext, memory, onProgress = () => {},
  queries = BENCH_DEFAULTS.queries, maxNewTokens = BENCH_DEFAULTS.maxNewTokens, repetitions = BENCH_DEFAULTS.repetitions,
  loadOptions = {},
}) {
  let peakWasmBytes = 0;
  let peakJsHeapBytes = null;
  const sample = async () => {
    const m = await memory();
    peakWasmBytes = Math.max(peakWasmBytes, m.wasmBytes);
    if (m.jsHeapBytes != null) peakJsHeapBytes = Math.max(peakJsHeapBytes ?? 0, m.jsHeapBytes);
  };

  onProgress({ model, step: 'loading' });
  const started = performance.now();
  const { buffer, fetchMs, fromCache } = await fetchModel();
  const info = await engine.load(buffer, loadOptions);
  const load = { fetchMs, fromCache, ...info.loadTimings };
  await sample();
  // Load again: now the file comes from the browser cache (or the OS file cache in Node).
  onProgress({ model, step: 'loading again, warm' });
  const warm = await fetchModel();
  load.warm = { fetchMs: warm.fetchMs, fromCache: warm.fromCache, ...(await engine.load(warm.buffer, loadOptions)).loadTimings };
  await sample();

  const runs = [];
  for (let rep = 0; rep < repetitions; rep++) {
    for (const question of queries) {
      onProgress({ model, step: `query ${runs.length + 1}/${queries.length * repetitions}` });
      const t0 = performance.now();
      const context = retrieveContext ? await retrieveContext(question) : null;
      const messages = context?.messages ?? [{ role: 'user', content: question }];
      const { timings } = await engine.generate({ messages, maxNewTokens, ignoreEos: true, reuseCache: false });
      runs.push({
        question,
        rag: Boolean(context),
        queryMs: performance.now() - t0,
        retrievalMs: context?.retrievalMs ?? 0,
        embedMs: context?.embedMs ?? 0,
        ...timings,
      });
      await sample();
    }
  }
  // The raw model on the same questions, without retrieval or sources in the prompt.
  const raw = [];
  for (const question of queries) {
    const { timings } = await engine.generate({ messages: [{ role: 'user', content: question }], maxNewTokens, ignoreEos: true, reuseCache: false });
    raw.push(timings);
  }
  await sample();

  return {
    model,
    name: info.name,
    load,
    queries: runs,
    raw,
    ...summarize(runs),
    rawDecodeTokS: stats(raw.map((r) => r.decodeTokS)),
    retrievalMs: stats(runs.map((r) => r.retrievalMs)),
    embedMs: stats(runs.map((r) => r.embedMs)),
    totalMs: performance.now() - started,
    peakWasmBytes,
    peakJsHeapBytes,
  };
}

/** The table's Load Time: fetching the file (or reading it from the cache) and loading it. */
function loadTimeMs(load) {
  return load.totalMs + load.fetchMs;
}

const s = (ms) => `${(ms / 1000).toFixed(2)}s`;
const f1 = (x) => x.toFixed(1);

/** The reference table (Model | Load Time | Avg Query Time | Total Time) plus our columns. */
export function formatTable(rows) {
  const header = ['Model', 'Load Time', 'Avg Query Time', 'Total Time', 'Warm load', 'TTFT (median)', 'Prefill tok/s', 'Decode tok/s',
    'Tokens', 'Retrieval ms', 'Embedding ms', 'Peak wasm MiB'];
  const lines = rows.map((r) => [
    r.label ?? r.model, s(loadTimeMs(r.load)), s(r.avgQueryMs), s(r.totalMs),
    r.load.warm ? s(loadTimeMs(r.load.warm)) : '–', `${r.timeToFirstTokenMs.median.toFixed(0)} ms`,
    f1(r.prefillTokS.median), f1(r.decodeTokS.median), String(r.generatedTokens), r.retrievalMs.median.toFixed(1),
    r.embedMs.median.toFixed(1), (r.peakWasmBytes / 2 ** 20).toFixed(0),
  ]);
  return [header, header.map(() => '---'), ...lines].map((cells) => `| ${cells.join(' | ')} |`).join('\n');
}

/** One CSV line per row, the same columns as the table, numbers unformatted. */
export function toCSV(rows) {
  const cols = ['model', 'loadMs', 'fetchMs', 'parseMs', 'weightsMs', 'warmLoadMs', 'warmFetchMs', 'avgQueryMs', 'totalMs', 'ttftMs', 'prefillTokS', 'decodeTokS',
    'rawDecodeTokS', 'generatedTokens', 'retrievalMs', 'embedMs', 'peakWasmBytes', 'peakJsHeapBytes'];
  const line = (r) => [r.label ?? r.model, r.load.totalMs, r.load.fetchMs, r.load.parseMs, r.load.weightsMs,
    r.load.warm?.totalMs ?? '', r.load.warm?.fetchMs ?? '', r.avgQueryMs, r.totalMs,
    r.timeToFirstTokenMs.median, r.prefillTokS.median, r.decodeTokS.median, r.rawDecodeTokS.median, r.generatedTokens,
    r.retrievalMs.median, r.embedMs.median, r.peakWasmBytes, r.peakJsHeapBytes ?? ''].join(',');
  return [cols.join(','), ...rows.map(line)].join('\n');
}

/** A peer's result (peer-wllama.js) as a table row; it has no retrieval of its own. */
export function peerRow(model, peer) {
  const summary = summarize(peer.queries);
  return {
    model, label: `${model} (${peer.engine})`, peer: true, threads: peer.threads,
    load: { fetchMs: 0, totalMs: peer.loadMs },
    ...summary,
    rawDecodeTokS: summary.decodeTokS,
    retrievalMs: stats([0]), embedMs: stats([0]),
    totalMs: peer.loadMs + summary.avgQueryMs * peer.queries.length,
    peakWasmBytes: 0, peakJsHeapBytes: null,
  };
}

/** edgellm ÷ peer: load time (lower is better), prefill and decode speed (higher is better). */
export function ratios(ours, peer) {
  return {
    load: loadTimeMs(ours.load) / loadTimeMs(peer.load),
    prefill: ours.prefillTokS.median / peer.prefillTokS.median,
    decode: ours.decodeTokS.median / peer.decodeTokS.median,
  };
}

/** One comparison line: { model, threads, load, prefill, decode }. */
export function formatRatios(r) {
  const threads = r.threads ? `, ${r.threads} thread${r.threads > 1 ? 's' : ''}` : '';
  return `${r.model}${threads}: edgellm ÷ wllama — load time ${r.load.toFixed(2)}×, prefill ${r.prefill.toFixed(2)}×, decode ${r.decode.toFixed(2)}×`;
}
