// The Benchmark view: runs www/bench/bench.js on the chosen models in this browser, shows the
// reference-format table and a bar chart, exports JSON/CSV, keeps earlier runs. URL parameters
// (?models=a,b&tokens=16&queries=1&reps=1&threads=1,2&passages=3&peer=0&autorun=1) let scripts/bench.mjs drive it headless.
import { WorkerEngine, loadTokenizer } from '../engine/index.js';
import { DocumentIndex } from '../rag/index.js';
import { buildCitedPrompt, indexDocuments, sampleCorpus } from '../rag/pipeline.js';
import { getModel, modelUrl, bertFiles, chatModels, chatModelSource } from '../app/storage.js';
import { BENCH_QUERIES, benchmarkModel, formatRatios, formatTable, peerRow, ratios, toCSV } from './bench.js';
import { benchmarkWllama } from './peer-wllama.js';
import { runQuality } from './quality-page.js';
import { DEFAULT_RULE } from '../rag/answer.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const HISTORY_KEY = 'edgellm-bench-history';
let registry;
let lastRun = null;

/** Thread counts to measure, e.g. "1,2" (?threads= or the form); 2+ needs cross-origin isolation. */
function threadCounts() {
  return [...new Set($('threads').value.split(',').map((t) => Number(t.trim())).filter((t) => t >= 1))];
}

/** ?passages=N: cited passages per question (TOP_K_FINAL); default the pipeline's. */
function passagesSetting() {
  return params.has('passages') ? { topKFinal: Number(params.get('passages')) } : {};
}

async function run() {
  $('run').disabled = true;
  const ids = [...document.querySelectorAll('#models input:checked')].map((i) => i.value);
  const queries = $('queries').value.split('\n').map((q) => q.trim()).filter(Boolean);
  const maxNewTokens = Number($('tokens').value);
  const repetitions = Number($('reps').value);
  const progress = (text) => { $('progress').textContent = text; };
  try {
    // Retrieval (embeddings) runs in its own worker; each model × thread count gets a fresh
    // engine worker, since a worker's wasm build and thread pool are fixed once chosen.
    const retrieval = new WorkerEngine();
    progress('indexing the sample corpus…');
    await retrieval.loadEmbedder(await bertFiles(registry.models.find((m) => m.kind === 'embedding')));
    const embed = (texts) => retrieval.embed(texts);
    const index = new DocumentIndex();
    await indexDocuments(index, await sampleCorpus(async (f) => (await fetch(`../corpus/${f}`)).text()), embed);
    const rows = [];
    const comparisons = [];
    for (const id of ids) {
      const entry = registry.models.find((m) => m.id === id);
      const { file, options: loadOptions } = chatModelSource(registry, entry);
      const onGpu = loadOptions.backend === 'webgpu';
      // An ONNX model runs on the GPU: one row, whatever the CPU thread counts.
      for (const threads of onGpu ? [1] : threadCounts()) {
        const engine = new WorkerEngine();
        let runtime = await engine.init({ threads });
        const label = onGpu ? `${id} (edgellm WebGPU)` : `${id} (edgellm ${runtime.threads} thread${runtime.threads > 1 ? 's' : ''}${runtime.simd === 'relaxed' ? ', relaxed SIMD' : ''})`;
        if (runtime.threads !== threads) progress(`${label}: ${threads} threads unavailable — ${runtime.fallback}`);
        let tokenizer = null;
        let contextLength = 0;
        const prompts = []; // the RAG messages of each question, replayed to the peer
        const row = await benchmarkModel({
          model: id,
          engine: {
            load: async (buffer, options) => {
              tokenizer?.free();
              tokenizer = await loadTokenizer(buffer);
              const info = await engine.load(buffer, { ...options, transfer: true });
              contextLength = info.contextLength;
              runtime = info.runtime;
              return info;
            },
            generate: (request) => engine.generate(request),
          },
          fetchModel: async () => {
            const t0 = performance.now();
            const { buffer, fromCache } = await getModel({ url: modelUrl(file), sha256: file.sha256 });
            return { buffer, fromCache, fetchMs: performance.now() - t0 };
          },
          retrieveContext: async (question) => {
            const { messages, retrieval: r } = await buildCitedPrompt({ question, index, embed, countTokens: tokenizer.count, contextLength, maxNewTokens, retrieval: passagesSetting() });
            prompts.push(messages);
            return { messages, retrievalMs: r.timings.totalMs, embedMs: r.timings.embedMs };
          },
          memory: () => engine.memory(),
          onProgress: ({ step }) => progress(`${label}: ${step}`),
          queries, maxNewTokens, repetitions,
          loadOptions,
        });
        engine.terminate();
        tokenizer?.free();
        rows.push({ ...row, label, threads: runtime.threads, runtime });
        show(rows, comparisons);
        // wllama runs GGUF models on the CPU; the GGUF model's own rows carry that comparison.
        if ($('peer').checked && !onGpu) {
          progress(`${id}: the same questions on wllama, ${threads} thread(s)`);
          const { buffer } = await getModel({ url: modelUrl(file), sha256: file.sha256 });
          const peer = peerRow(id, await benchmarkWllama({ buffer, prompts: prompts.slice(0, queries.length), maxNewTokens, threads }));
          rows.push(peer);
          comparisons.push({ model: id, threads: runtime.threads, peerThreads: peer.threads, ...ratios(row, peer) });
          show(rows, comparisons);
        }
      }
    }
    retrieval.terminate();
    lastRun = {
      date: new Date().toISOString(), userAgent: navigator.userAgent, crossOriginIsolated, maxNewTokens, repetitions, queries, rows,
      peer: $('peer').checked ? { measured: true, engine: 'wllama (llama.cpp in wasm), CPU, the same thread counts', comparisons } : { measured: false, reason: 'peer comparison not selected' },
    };
    const history = JSON.parse(localStorage.getItem(HISTORY_KEY) ?? '[]');
    history.unshift({ date: lastRun.date, table: formatTable(rows) });
    localStorage.setItem(HISTORY_KEY, JSON.stringify(history.slice(0, 20)));
    renderHistory();
    progress('done');
    window.benchResults = lastRun;
  } catch (e) {
    progress(`error: ${e.message}`);
    window.benchResults = { error: e.message };
  } finally {
    $('run').disabled = false;
    $('export-json').disabled = $('export-csv').disabled = !lastRun;
  }
}

function show(rows, comparisons = []) {
  $('table').textContent = [formatTable(rows), ...comparisons.map((c) => formatRatios(c))].join('\n');
  // Bars: decode tok/s and average query time, scaled to the largest value.
  const bars = (label, value, max, unit) => {
    const row = document.createElement('div');
    const bar = document.createElement('span');
    bar.className = 'bar';
    bar.style.width = `${Math.max(1, (value / max) * 60)}%`;
    row.append(`${label} `, bar, ` ${value.toFixed(1)} ${unit}`);
    return row;
  };
  const maxDecode = Math.max(...rows.map((r) => r.decodeTokS.median));
  const maxQuery = Math.max(...rows.map((r) => r.avgQueryMs / 1000));
  $('chart').replaceChildren(
    ...rows.map((r) => bars(`${r.model} decode`, r.decodeTokS.median, maxDecode, 'tok/s')),
    ...rows.map((r) => bars(`${r.model} avg query`, r.avgQueryMs / 1000, maxQuery, 's')),
  );
}

function renderHistory() {
  const history = JSON.parse(localStorage.getItem(HISTORY_KEY) ?? '[]');
  $('history').replaceChildren(...history.map((h) => {
    const li = document.createElement('li');
    const pre = document.createElement('pre');
    pre.textContent = h.table;
    li.append(h.date, pre);
    return li;
  }));
}

function download(name, type, text) {
  const a = document.createElement('a');
  a.href = URL.createObjectURL(new Blob([text], { type }));
  a.download = name;
  a.click();
  URL.revokeObjectURL(a.href);
}

async function init() {
  registry = await (await fetch('../registry.json')).json();
  const chosen = params.get('models')?.split(',') ?? [registry.default];
  for (const m of chatModels(registry)) {
    const label = document.createElement('label');
    const box = Object.assign(document.createElement('input'), { type: 'checkbox', value: m.id, checked: chosen.includes(m.id) });
    label.append(box, ` ${m.name} (${m.quantization})`);
    $('models').append(label);
  }
  const n = Number(params.get('queries') ?? BENCH_QUERIES.length);
  $('queries').value = BENCH_QUERIES.slice(0, n).join('\n');
  if (params.has('tokens')) $('tokens').value = params.get('tokens');
  if (params.has('reps')) $('reps').value = params.get('reps');
  $('threads').value = params.get('threads') ?? (crossOriginIsolated && navigator.hardwareConcurrency > 1 ? '1,2' : '1');
  $('peer').checked = params.get('peer') !== '0';
  renderHistory();
  if (params.get('autorun') === '1') await (params.get('quality') === '1' ? quality() : run());
}

/** The answer-quality run on the checked models (URL parameters choose sets, decodings, rules). */
async function quality() {
  $('quality-run').disabled = true;
  const list = (name) => params.get(name)?.split(',').filter(Boolean);
  try {
    window.qualityResults = await runQuality({
      registry,
      modelIds: [...document.querySelectorAll('#models input:checked')].map((i) => i.value),
      setNames: list('sets'),
      decodingNames: list('decoding') ?? ['preset', 'preset-once', 'greedy', 'greedy-unguarded'],
      rules: list('rules') ?? [DEFAULT_RULE],
      threads: Number(params.get('threads') ?? (crossOriginIsolated ? 2 : 1)),
      limit: params.has('limit') ? Number(params.get('limit')) : undefined,
    });
  } catch (e) {
    $('quality-progress').textContent = `error: ${e.message}`;
    window.qualityResults = { error: e.message };
  } finally {
    $('quality-run').disabled = false;
  }
}

$('run').addEventListener('click', run);
$('quality-run').addEventListener('click', quality);
$('export-json').addEventListener('click', () => download('edgellm-bench.json', 'application/json', JSON.stringify(lastRun, null, 2)));
$('export-csv').addEventListener('click', () => download('edgellm-bench.csv', 'text/csv', toCSV(lastRun.rows)));
init().catch((e) => { $('progress').textContent = e.message; window.benchResults = { error: e.message }; });
