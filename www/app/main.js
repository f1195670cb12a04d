// UI wiring only. The model and the embedder run in a Web Worker (WorkerEngine); retrieval and
// prompt building are the pure modules in ../rag/; files and the index persist in the browser.
// Every piece of document text and model output reaches the page through textContent/append of
// strings: none of it is ever parsed as HTML.
import { WorkerEngine, loadTokenizer } from '../engine/index.js';
import { DocumentIndex } from '../rag/index.js';
import { buildCitedPrompt, indexDocuments, sampleCorpus } from '../rag/pipeline.js';
import { getModel, clearModels, modelUrl, bertFiles, BERT_FILES, chatModels, chatModelSource } from './storage.js';
import { readDocument, ACCEPTED } from './documents.js';
import { loadIndex, saveIndex } from './store.js';

const $ = (id) => document.getElementById(id);
const WASM32_LIMIT = 4 * 2 ** 30;

const state = {
  registry: null,
  engine: new WorkerEngine(),
  tokenizer: null, // synchronous token counts for the loaded model
  modelInfo: null,
  embedderReady: null, // Promise
  rerankerLoaded: false,
  index: new DocumentIndex(),
  history: [], // { role, content } of earlier exchanges
  controller: null,
};

function say(id, text, isError = false) {
  $(id).textContent = text;
  $(id).classList.toggle('error', isError);
}

function num(id) {
  return Number($(id).value);
}

// ---- models -----------------------------------------------------------------------------

async function loadEmbedder() {
  await state.engine.loadEmbedder(await bertFiles(state.registry.models.find((m) => m.kind === 'embedding')));
}

async function loadModel() {
  const entry = state.registry.models.find((m) => m.id === $('model-select').value);
  const { file, options } = chatModelSource(state.registry, entry);
  if (file.bytes && file.bytes > WASM32_LIMIT * 0.75) {
    return say('model-status', `${entry.name} is too large for WebAssembly's 4 GiB memory.`, true);
  }
  $('load').disabled = $('ask').disabled = true;
  $('progress').hidden = false;
  try {
    const t0 = performance.now();
    const { buffer, fromCache } = await getModel({ url: modelUrl(file), sha256: file.sha256 }, ({ loaded, total }) => {
      $('progress').value = total ? loaded / total : 0;
      say('model-status', `downloading ${(loaded / 2 ** 20).toFixed(0)}${total ? ` / ${(total / 2 ** 20).toFixed(0)}` : ''} MiB`);
    });
    const fetchMs = performance.now() - t0;
    state.tokenizer?.free();
    state.tokenizer = await loadTokenizer(buffer);
    if (options.backend === 'webgpu') say('model-status', `exporting ${file.name} to ONNX and loading it on WebGPU…`);
    state.modelInfo = await state.engine.load(buffer, { ...options, transfer: true });
    const l = state.modelInfo.loadTimings;
    const { wasmBytes } = await state.engine.memory();
    say('model-status', `${state.modelInfo.name}: ${fromCache ? 'from the browser cache' : 'downloaded'} in ${fetchMs.toFixed(0)} ms, ` +
      `loaded in ${l.totalMs.toFixed(0)} ms (context ${state.modelInfo.contextLength} tokens; wasm memory ${(wasmBytes / 2 ** 20).toFixed(0)} MiB; ` +
      `${describeRuntime(state.modelInfo.runtime)}).`);
    $('ask').disabled = false;
  } catch (e) {
    say('model-status', `Could not load ${entry.name}: ${e.message}`, true);
  } finally {
    $('progress').hidden = true;
    $('load').disabled = false;
  }
}

/** "WebGPU (adapter)", "2 threads" or "1 thread (why not more)". */
function describeRuntime({ build, adapter, threads, fallback }) {
  if (build === 'webgpu') return `WebGPU: ${adapter}`;
  return threads > 1 ? `${threads} threads` : `1 thread${fallback ? ` — ${fallback}` : ''}`;
}

async function loadReranker(readFile) {
  try {
    say('reranker-status', 'loading the reranker…');
    const files = {};
    for (const [key, name] of BERT_FILES) files[key] = await readFile(name);
    await state.engine.loadReranker(files);
    state.rerankerLoaded = true;
    say('reranker-status', 'On: the final passages are the top of the fused candidates reordered by the cross-encoder.');
  } catch (e) {
    say('reranker-status', `Could not load the reranker: ${e.message}`, true);
  }
}

function rerankerFromFiles(fileList) {
  const byName = new Map([...fileList].map((f) => [f.name, f]));
  return loadReranker(async (name) => {
    if (!byName.has(name)) throw new Error(`${name} was not among the chosen files`);
    return new Uint8Array(await byName.get(name).arrayBuffer());
  });
}

function rerankerFromUrl(base) {
  return loadReranker(async (name) => {
    const res = await fetch(new URL(name, base.endsWith('/') ? base : `${base}/`));
    if (!res.ok) throw new Error(`${name}: HTTP ${res.status}`);
    return new Uint8Array(await res.arrayBuffer());
  });
}

// ---- documents --------------------------------------------------------------------------

async function addDocuments(docs) {
  await state.embedderReady;
  const settings = { size: num('chunk-size'), overlap: num('chunk-overlap') };
  await indexDocuments(state.index, docs, (texts) => state.engine.embed(texts), settings, (msg) => say('doc-status', msg));
  await saveIndex(state.index.toJSON());
  renderDocuments();
}

async function addFiles(files) {
  try {
    const docs = [];
    for (const file of files) docs.push(await readDocument(file));
    await addDocuments(docs);
    say('doc-status', `Added ${docs.map((d) => d.name).join(', ')}.`);
  } catch (e) {
    say('doc-status', e.message, true);
  }
}

async function loadDefaultCorpus() {
  await addDocuments(await sampleCorpus(async (file) => (await fetch(`corpus/${file}`)).text()));
}

function renderDocuments() {
  const list = $('doc-list');
  list.replaceChildren(...state.index.sources.map((name) => {
    const li = document.createElement('li');
    const label = document.createElement('span');
    label.textContent = name;
    const remove = document.createElement('button');
    remove.textContent = 'Remove';
    remove.addEventListener('click', async () => {
      state.index.removeSource(name);
      await saveIndex(state.index.toJSON());
      renderDocuments();
    });
    li.append(label, remove);
    return li;
  }));
  say('doc-status', `${state.index.sources.length} documents, ${state.index.size} passages indexed.`);
}

// ---- questions --------------------------------------------------------------------------

function renderSources(sources) {
  $('sources').replaceChildren(...sources.map((s) => {
    const li = document.createElement('li');
    li.value = s.n;
    const meta = document.createElement('div');
    meta.className = 'meta';
    meta.textContent = `${s.source}${s.page ? `, page ${s.page}` : ''} — score ${s.score?.toFixed(4) ?? '–'}`;
    const passage = document.createElement('div');
    passage.className = 'passage';
    passage.textContent = s.text;
    li.append(meta, passage);
    return li;
  }));
}

async function ask() {
  const question = $('question').value.trim();
  if (!question || !state.tokenizer) return;
  $('answer').textContent = '';
  $('sources').replaceChildren();
  $('timings').textContent = '';
  $('ask').disabled = true;
  $('stop').disabled = false;
  state.controller = new AbortController();
  try {
    const { messages, sources, retrieval } = await buildCitedPrompt({
      question,
      history: state.history,
      index: state.index,
      embed: (texts) => state.engine.embed(texts),
      countTokens: state.tokenizer.count,
      contextLength: state.modelInfo.contextLength,
      maxNewTokens: num('max-new-tokens'),
      retrieval: {
        topKInitial: num('top-k-initial'),
        topKFinal: num('top-k-final'),
        weights: { lexical: num('weight-lexical'), dense: num('weight-dense') },
        rerank: state.rerankerLoaded ? (q, candidates) => state.engine.rerank(q, candidates.map((c) => c.text)) : undefined,
      },
    });
    renderSources(sources);
    const result = await state.engine.generate(
      { messages, maxNewTokens: num('max-new-tokens'), signal: state.controller.signal },
      (piece) => $('answer').append(piece),
    );
    state.history.push({ role: 'user', content: question }, { role: 'assistant', content: result.text });
    const t = result.timings;
    const rt = retrieval.timings;
    $('timings').textContent = `retrieval ${rt.totalMs.toFixed(0)} ms (embedding ${rt.embedMs.toFixed(0)} ms${state.rerankerLoaded ? `, reranking ${rt.rerankMs.toFixed(0)} ms` : ''}) · ` +
      `${t.promptTokens} prompt tokens · prefill ${t.prefillTokS.toFixed(1)} tok/s · first token ${t.timeToFirstTokenMs.toFixed(0)} ms · ` +
      `${t.generatedTokens} tokens at ${t.decodeTokS.toFixed(1)} tok/s · ${result.finishReason}`;
  } catch (e) {
    $('timings').textContent = e.name === 'AbortError' ? 'stopped' : `error: ${e.message}`;
  } finally {
    $('ask').disabled = false;
    $('stop').disabled = true;
  }
}

// ---- start ------------------------------------------------------------------------------

async function init() {
  state.registry = await (await fetch('registry.json')).json();
  for (const m of chatModels(state.registry)) {
    const option = new Option(`${m.name} — ${m.quantization}${m.bytes ? `, ${(m.bytes / 2 ** 20).toFixed(0)} MiB` : ''}`, m.id);
    option.selected = m.id === state.registry.default;
    $('model-select').append(option);
  }
  say('model-status', 'Pick a model and press Load.');
  state.embedderReady = loadEmbedder();
  const saved = await loadIndex();
  if (saved) {
    state.index = DocumentIndex.fromJSON(saved);
    renderDocuments();
  } else {
    say('doc-status', 'Indexing the sample documents…');
    await loadDefaultCorpus();
  }
}

$('load').addEventListener('click', loadModel);
$('ask').addEventListener('click', ask);
$('stop').addEventListener('click', () => state.controller?.abort());
$('new-chat').addEventListener('click', () => {
  state.history = [];
  $('answer').textContent = '';
  $('sources').replaceChildren();
});
$('clear-cache').addEventListener('click', async () => {
  await clearModels();
  say('model-status', 'Model cache cleared.');
});
$('files').addEventListener('change', (e) => addFiles([...e.target.files]));
$('reranker-files').addEventListener('change', (e) => rerankerFromFiles(e.target.files));
$('reranker-load').addEventListener('click', () => rerankerFromUrl($('reranker-url').value));
const drop = $('drop');
drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', (e) => {
  e.preventDefault();
  drop.classList.remove('over');
  addFiles([...e.dataTransfer.files].filter((f) => ACCEPTED.some((ext) => f.name.toLowerCase().endsWith(ext))));
});
init().catch((e) => say('doc-status', e.message, true));
