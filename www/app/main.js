// UI wiring only. The model and the embedder run in a Web Worker (WorkerEngine); retrieval and
// prompt building are the pure modules in ../rag/; files and the index persist in the browser.
// Every piece of document text and model output reaches the page through textContent, DOM
// building, or the markdown renderer in render.js, which builds elements from parsed tokens:
// none of it is ever parsed as HTML.
import { WorkerEngine, loadTokenizer, inspectModel, EdgeLLMError, ERROR_CODES } from '../engine/index.js';
import { DocumentIndex } from '../rag/index.js';
import { indexDocuments, sampleCorpus } from '../rag/pipeline.js';
import { answerQuestion, Conversation, DECODINGS, REGENERATION } from '../rag/answer.js';
import { warmSentenceVectors } from '../rag/extract.js';
import { AnswerCache, cacheScope } from '../rag/answer-cache.js';
import { renderAnswer, renderSources, citationElement, inlineNodes } from './render.js';
import { getModel, clearModels, modelUrl, bertFiles, BERT_FILES, chatModels, chatModelSource, answerPreset } from './storage.js';
import { readDocument } from './documents.js';
import { loadIndex, saveIndex, clearIndex, loadAnswerCache, saveAnswerCache, clearAnswerCache } from './store.js';

const $ = (id) => document.getElementById(id);
const WASM32_LIMIT = 4 * 2 ** 30;

const state = {
  registry: null,
  // A crash of its worker (out of memory, a wasm trap) fails the calls in flight; the next call
  // starts a fresh worker, which recoverFromCrash fills again.
  engine: new WorkerEngine(undefined, { onCrash: (error) => recoverFromCrash(error) }),
  tokenizer: null, // synchronous token counts for the loaded model
  modelInfo: null,
  embedderReady: null, // Promise
  embedderId: null, // the registry id of the embedding model, once loaded (null: questions skip the answer cache)
  embedderLost: false, // it was in a worker that crashed: the next load of a model loads it again
  rerankerLoaded: false,
  index: new DocumentIndex(),
  conversation: new Conversation(), // what earlier turns give a new question (www/rag/answer.js)
  turns: 0, // turns shown since the last "New conversation": numbers the ids in #thread
  controller: null, // the running answer's, or null
  answering: null, // settles when the running answer has ended (Promise)
  lastLoad: null, // the last model load asked for, { work, name }: a crash repeats it
  recovering: false, // a crash's reload is running: another crash now is not retried
  loadedEntry: null, // the registry entry of the loaded model ({ name } for a file of the user's)
  ownModel: null, // the user's own GGUF being considered: { source, name, inspection }
  preset: null, // its answer preset, or null (greedy)
  maxTokensTouched: false, // the user set Max answer tokens: a model's preset no longer replaces it
  decodingTouched: false, // the user chose a decoding: a model's preset no longer resets it
  // Sentence vectors of the indexed passages, embedded in the background after indexing, so the
  // quick extractive answer only has to embed the question.
  sentenceCache: new Map(),
  // Answers to earlier questions, served again for the same question in other words
  // (www/rag/answer-cache.js); kept in IndexedDB beside the index.
  answerCache: new AnswerCache(),
  // What #cache-status says about how model files were stored, by file (noteCache).
  cacheNotices: new Map(),
  // False once IndexedDB refused to open or to save: the index (and the answer cache) then live
  // in this tab only, and the page stops trying to save them.
  indexKept: true,
};

/** Embed the indexed passages' sentences while the page is idle (batch by batch in the worker). */
async function warmSentences() {
  await state.embedderReady;
  await warmSentenceVectors({ texts: state.index.texts(), embed: (texts) => state.engine.embed(texts), cache: state.sentenceCache });
}

function say(id, text, isError = false) {
  $(id).textContent = text;
  $(id).classList.toggle('error', isError);
}

/** A status line shown only while it has something to say (#cache-status, #index-status). */
function showNotice(id, text) {
  $(id).textContent = text;
  $(id).hidden = !text;
}

function num(id) {
  return Number($(id).value);
}

// ---- models -----------------------------------------------------------------------------

/** Load the embedding model in the worker; retrieval and indexing wait for `state.embedderReady`. */
function startEmbedder() {
  state.embedderLost = false;
  state.embedderReady = loadEmbedder();
  // Awaited where it is needed, which reports a failure: not an unhandled rejection here.
  state.embedderReady.catch(() => {});
}

async function loadEmbedder() {
  const entry = state.registry.models.find((m) => m.kind === 'embedding');
  await state.engine.loadEmbedder(await bertFiles(entry, { onResult: (file, stored) => noteCache(`${entry.name}'s ${file}`, stored) }));
  state.embedderId = entry.id;
}

async function loadModel() {
  const entry = state.registry.models.find((m) => m.id === $('model-select').value);
  const { file, options } = chatModelSource(state.registry, entry);
  const bytes = file.bytes ?? entry.estimatedBytes;
  if (bytes && bytes > WASM32_LIMIT * 0.75) {
    return say('model-status', `${entry.name} does not fit in WebAssembly's 4 GiB memory (${entry.tooLarge ?? `about ${(bytes / 2 ** 30).toFixed(1)} GiB`}).`, true);
  }
  await withLoading(async () => {
    if (!file.sha256) {
      // A public file we have not pinned: its header (a few MB, by HTTP Range) says what it
      // needs before gigabytes are downloaded. Offline, or from a server without Range, the
      // download itself reports.
      const inspection = await inspectModel({ url: modelUrl(file) }).catch(() => null);
      if (inspection?.refusal) throw new Error(inspection.refusal.message);
      if (inspection) say('model-status', `${entry.name} needs about ${mib(inspection.info.estimatedMemoryBytes)}; downloading…`);
    }
    const t0 = performance.now();
    const { buffer, fromCache, ...stored } = await getModel({ url: modelUrl(file), sha256: file.sha256 }, { onProgress: showDownload });
    noteCache(file.file, stored);
    const how = fromCache ? 'from the browser cache' : `${stored.corrupt ? 'downloaded again' : 'downloaded'}${stored.cacheError ? ' (not cached)' : ''}`;
    await startModel(buffer, entry, options, `${how} in ${(performance.now() - t0).toFixed(0)} ms`);
  }, entry.name);
}

function showDownload({ loaded, total, retry = 0, corrupt = false }) {
  $('progress').value = total ? loaded / total : 0;
  const what = corrupt ? 'the cached copy was corrupt; downloading it again:' : 'downloading';
  say('model-status', `${what} ${(loaded / 2 ** 20).toFixed(0)}${total ? ` / ${(total / 2 ** 20).toFixed(0)}` : ''} MiB${retry ? ` (the connection dropped; retry ${retry})` : ''}`);
}

/**
 * Say in #cache-status what the user should know about how a model file was stored: a cached
 * copy that failed its sha256 check, discarded and downloaded again (never used), or a file the
 * browser would not cache (its storage quota for the site is full, or there is no Cache API),
 * which loads from memory now and is downloaded again next time.
 */
function noteCache(file, { cached, cacheError, corrupt }) {
  const notes = [];
  if (corrupt) notes.push(`The cached copy of ${file} was corrupt (its sha256 did not match): it was discarded and downloaded again.`);
  if (!cached && cacheError) {
    const why = cacheError.name === 'QuotaExceededError' ? "the browser's storage quota for this site is full" : cacheError.message;
    notes.push(`${file} was not cached (${why}): it is loaded from memory, and will be downloaded again next time.`);
  }
  if (notes.length) state.cacheNotices.set(file, notes.join(' '));
  else state.cacheNotices.delete(file);
  showNotice('cache-status', [...state.cacheNotices.values()].join(' '));
}

/** Run `work` with the load buttons off and the progress bar shown; failures are reported. */
async function withLoading(work, name) {
  state.lastLoad = { work, name };
  if (state.embedderLost) startEmbedder();
  $('load').disabled = $('ask').disabled = $('own-load').disabled = true;
  $('progress').hidden = false;
  delete $('model-status').dataset.code;
  try {
    // Choosing a model while an answer streams stops the answer (shown as stopped) first: the
    // worker would refuse the load as busy, and the model and tokenizer it uses are replaced.
    await stopAnswer();
    await work();
  } catch (e) {
    // A catalogue error also says what to do (a download that never completed: retry).
    const coded = e instanceof EdgeLLMError;
    const action = coded ? ERROR_CODES[e.code]?.action : null;
    say('model-status', `Could not load ${name}: ${e.message}${action ? `. ${action}` : ''}`, true);
    if (coded) $('model-status').dataset.code = e.code;
  } finally {
    $('progress').hidden = true;
    $('load').disabled = false;
    $('own-load').disabled = !state.ownModel?.inspection || Boolean(state.ownModel.inspection.refusal);
  }
}

/** Load the model in `buffer` into the worker and make it the one that answers. */
async function startModel(buffer, entry, options, how) {
  state.tokenizer?.free();
  state.tokenizer = await loadTokenizer(buffer);
  if (options.backend === 'webgpu') say('model-status', `exporting ${entry.name} to ONNX and loading it on WebGPU…`);
  state.modelInfo = await state.engine.load(buffer, { ...options, transfer: true });
  state.loadedEntry = entry;
  state.preset = answerPreset(state.registry, entry);
  renderPreset();
  const l = state.modelInfo.loadTimings;
  const { wasmBytes } = await state.engine.memory();
  say('model-status', `${state.modelInfo.name}: ${how}, ` +
    `loaded in ${l.totalMs.toFixed(0)} ms (context ${state.modelInfo.contextLength} tokens; wasm memory ${(wasmBytes / 2 ** 20).toFixed(0)} MiB; ` +
    `${describeRuntime(state.modelInfo.runtime)}).`);
  $('ask').disabled = false;
}

// ---- crash recovery ------------------------------------------------------------------------

/**
 * The engine's worker stopped (it crashed, ran out of memory, or its wasm module trapped): the
 * call in flight failed, what was loaded in the worker is gone, and the next engine call starts
 * a fresh one. Load the embedder and the last model asked for again, once: a crash during that
 * reload (a model that crashes whenever it loads) is reported and left to the user, so the page
 * cannot loop on it.
 */
async function recoverFromCrash(error) {
  state.modelInfo = null;
  state.embedderId = null;
  state.embedderLost = true;
  if (state.rerankerLoaded) {
    state.rerankerLoaded = false;
    say('reranker-status', 'Off: the engine restarted after a crash; load the reranker again to use it.', true);
  }
  if (state.recovering) return; // the reload running now fails, and says so below
  state.recovering = true;
  try {
    // The calls the crash failed report first (an answer shown as failed, a load as not done).
    await new Promise((resolve) => setTimeout(resolve, 0));
    const reload = state.lastLoad;
    say('model-status', `Restarting the engine (${error.message})${reload ? ` and loading ${reload.name} again` : ''}…`, true);
    if (reload) await withLoading(reload.work, reload.name); // loads the lost embedder too
    else startEmbedder();
    // Until the embedder is back too, a crash is this recovery's own.
    await state.embedderReady.catch(() => {});
    if (!reload) return say('model-status', `Restarted the engine after a crash (${error.message}). Pick a model and press Load.`);
    if (state.modelInfo) say('model-status', `Restarted the engine after a crash (${error.message}). ${$('model-status').textContent}`);
    else say('model-status', `${$('model-status').textContent} The engine was restarted once after a crash (${error.message}); press Load to try again.`, true);
  } finally {
    state.recovering = false;
  }
}

// ---- the user's own GGUF ----------------------------------------------------------------

const mib = (bytes) => `${(bytes / 2 ** 20).toFixed(0)} MiB`;

/** Read a GGUF's metadata (not its weights) and say what it is, or exactly why it cannot run. */
async function inspectOwn(source, name) {
  state.ownModel = { source, name, inspection: null };
  $('own-load').disabled = true;
  $('own-facts').replaceChildren();
  say('own-status', `reading ${name}'s metadata…`);
  try {
    const inspection = await inspectModel(source);
    state.ownModel.inspection = inspection;
    const { info, refusal, memoryLimitBytes } = inspection;
    const facts = [
      ['Name', info.name],
      ['Architecture', info.architecture],
      ['Parameters', `${(info.parameters / 1e6).toFixed(0)} M`],
      ['Quantization', info.quantization],
      ['File', mib(info.fileBytes)],
      ['Context', `${info.contextLength} tokens served (trained for ${info.trainedContextLength})`],
      ['Tokenizer', `${info.tokenizer === 'sentence_piece' ? 'SentencePiece' : 'byte-level BPE'}, ${info.vocabSize} tokens`],
      ['Chat template', info.chatTemplate === 'gguf' ? "the file's own" : `preset "${info.chatTemplate}" (the file has none)`],
      ['Memory needed', `about ${mib(info.estimatedMemoryBytes)}${memoryLimitBytes ? ` of ${mib(memoryLimitBytes)} WebAssembly can give` : ''}`],
    ];
    $('own-facts').replaceChildren(...facts.flatMap(([k, v]) => [element('dt', '', k), element('dd', '', v)]));
    if (refusal) say('own-status', `${name} cannot be loaded here: ${refusal.message}.`, true);
    else say('own-status', `${name} can be loaded.`);
    $('own-load').disabled = Boolean(refusal);
  } catch (e) {
    say('own-status', `${name} cannot be loaded: ${e.message}`, true);
  }
}

async function loadOwn() {
  const { source, name } = state.ownModel;
  await withLoading(async () => {
    const t0 = performance.now();
    // A file of the user's has no published sha256 to check; it is read or downloaded as it is.
    // A picked file goes to the worker as it is, which reads it straight into wasm memory.
    const buffer = source instanceof Blob ? source : (await getModel({ url: source.url }, { onProgress: showDownload })).buffer;
    await startModel(buffer, { name }, {}, source instanceof Blob ? 'read from the file' : `downloaded in ${(performance.now() - t0).toFixed(0)} ms`);
  }, name);
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
    for (const [key, name] of Object.entries(BERT_FILES)) files[key] = await readFile(name);
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

/**
 * Index documents one at a time. A document refused (over DOCUMENT_LIMITS.maxChunks, no text:
 * ../rag/limits.js) or failing leaves the index as it was, and the others are still added.
 * Resolves to { added: names, refused: [{ name, error }] }.
 */
async function addDocuments(docs) {
  await state.embedderReady;
  const settings = { size: num('chunk-size'), overlap: num('chunk-overlap') };
  const added = [];
  const refused = [];
  for (const doc of docs) {
    try {
      await indexDocuments(state.index, [doc], (texts) => state.engine.embed(texts), settings, (msg) => say('doc-status', msg));
      added.push(doc.name);
    } catch (error) {
      refused.push({ name: doc.name, error });
    }
  }
  if (added.length) await persistIndex();
  renderDocuments();
  if (added.length) warmSentences().catch(() => {}); // only a speed-up: the quick answer embeds what is missing itself
  return { added, refused };
}

/** What the page says about a file it did not add: the error's message (which names the file) and, for a catalogue code, what to do. */
function refusalText({ name, error }) {
  const message = error?.message || String(error);
  const action = error instanceof EdgeLLMError ? ERROR_CODES[error.code]?.action : null;
  return `${message.includes(name) ? '' : `${name}: `}${message}${action ? `. ${action}` : ''}`;
}

/**
 * Add the user's files. Each is read and checked on its own (documents.js: type, size, PDF
 * pages, text; then indexDocuments: passages): #doc-status names the files added and, for each
 * refused one, why and what to do (as text).
 */
async function addFiles(files) {
  const docs = [];
  const refused = [];
  for (const file of files) {
    try {
      docs.push(await readDocument(file));
    } catch (error) {
      refused.push({ name: file.name, error });
    }
  }
  let added = [];
  try {
    if (docs.length) {
      const result = await addDocuments(docs);
      added = result.added;
      refused.push(...result.refused);
    }
  } catch (e) {
    say('doc-status', e.message, true);
    return;
  }
  const parts = [];
  if (added.length) parts.push(`Added ${added.join(', ')}.`);
  if (refused.length) parts.push(`Not added: ${refused.map(refusalText).join(' ')}`);
  say('doc-status', parts.join(' '), refused.length > 0);
}

async function loadDefaultCorpus() {
  const { refused } = await addDocuments(await sampleCorpus(async (file) => (await fetch(`corpus/${file}`)).text()));
  if (refused.length) throw refused[0].error;
}

/** Save the index in IndexedDB; where that fails it stays in memory, and #index-status says so. */
async function persistIndex() {
  if (!state.indexKept) return;
  await saveIndex(state.index.toJSON()).catch((e) => indexNotKept(e, 'save'));
}

/** IndexedDB refused (to open, in some private modes or with storage off; or to save): say what that costs. */
function indexNotKept(error, step) {
  state.indexKept = false;
  const why = error?.message || String(error);
  showNotice('index-status', step === 'save'
    ? `The index could not be saved in the browser's storage (${why}): it is kept in this tab only, and what changed since it was last saved will not survive a reload.`
    : `The browser's storage (IndexedDB) is unavailable here (${why}): documents are indexed in this tab only, and neither the index nor the answer cache will survive a reload.`);
}

/**
 * The index saved in IndexedDB; else one built from the sample documents, with #index-status
 * saying why: none is saved (a first visit, or the browser's site data was cleared), the saved
 * one cannot be read (dropped, not trusted), or IndexedDB is unavailable (the page then works
 * from memory).
 */
async function restoreIndex() {
  const saved = await loadIndex().catch((e) => indexNotKept(e, 'open'));
  if (saved) {
    try {
      state.index = DocumentIndex.fromJSON(saved);
      renderDocuments();
      warmSentences().catch(() => {});
      return;
    } catch (e) {
      console.warn(`Discarding the stored index: ${e.message}`);
      await clearIndex().catch(() => {});
      showNotice('index-status', `The saved index could not be read (${e.message}): it is rebuilt from the sample documents, and documents you had added must be added again.`);
    }
  } else if (state.indexKept) {
    showNotice('index-status', 'No saved index was found in this browser (a first visit, or its site data was cleared): the index is built from the sample documents.');
  }
  say('doc-status', 'Indexing the sample documents…');
  await loadDefaultCorpus();
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
      await persistIndex();
      renderDocuments();
    });
    li.append(label, remove);
    return li;
  }));
  say('doc-status', `${state.index.sources.length} documents, ${state.index.size} passages indexed.`);
}

// ---- answer preset ----------------------------------------------------------------------

const PRESET_LABELS = {
  temperature: 'Temperature',
  topK: 'Top-k',
  topP: 'Top-p',
  repetitionPenalty: 'Repetition penalty',
  repeatLastN: 'Penalty looks back (tokens)',
  noRepeatNgramSize: 'No repeated n-grams of size',
  maxNewTokens: 'Max answer tokens',
  stop: 'Stop strings',
  repetitionGuard: 'Repetition guard',
};

/** What a preset value means where it switches something off (the engine's conventions, engine/index.d.ts). */
const PRESET_NOTES = {
  temperature: (v) => (v === 0 ? 'greedy: always the most likely token' : 'sampling'),
  topK: (v) => (v === 0 ? 'off' : null),
  topP: (v) => (v >= 1 ? 'off' : null),
  repetitionPenalty: (v) => (v === 1 ? 'off' : null),
  repeatLastN: (v) => (v === 0 ? 'all tokens' : null),
  noRepeatNgramSize: (v) => (v === 0 ? 'off' : null),
};

const words = (key) => key.replace(/([a-z])([A-Z])/g, '$1 $2').toLowerCase();

function presetValue(value) {
  if (Array.isArray(value)) return value.length ? value.map((v) => (typeof v === 'string' ? JSON.stringify(v) : presetValue(v))).join(', ') : 'none';
  if (value && typeof value === 'object') return Object.entries(value).map(([k, v]) => `${words(k)} ${presetValue(v)}`).join('; ') || 'on';
  return String(value);
}

function renderPreset() {
  const preset = state.preset;
  const presetOption = $('decoding').querySelector('option[value="preset"]');
  presetOption.disabled = !preset;
  if (!state.decodingTouched || !preset) $('decoding').value = preset ? 'preset' : 'greedy';
  if (!state.loadedEntry) say('preset-status', 'Load a model to see its answer preset.');
  else if (!preset) say('preset-status', `${state.loadedEntry.name} has no answer preset: answers use greedy decoding.`);
  else say('preset-status', `${state.loadedEntry.name}'s answer preset:`);
  $('preset').replaceChildren(...Object.entries(preset ?? {}).flatMap(([key, value]) => {
    const dt = document.createElement('dt');
    dt.textContent = PRESET_LABELS[key] ?? words(key);
    const dd = document.createElement('dd');
    const note = PRESET_NOTES[key]?.(value);
    dd.textContent = `${presetValue(value)}${note ? ` (${note})` : ''}`;
    return [dt, dd];
  }));
  if (preset) {
    const { attempts, temperature, topK, topP } = REGENERATION;
    const dt = document.createElement('dt');
    dt.textContent = 'An answer no source supports';
    const dd = document.createElement('dd');
    dd.textContent = `written again, up to ${attempts} more times (temperature ${temperature}, top-k ${topK}, top-p ${topP})`;
    $('preset').append(dt, dd);
  }
  if (preset?.maxNewTokens && !state.maxTokensTouched) $('max-new-tokens').value = String(preset.maxNewTokens);
}

/** Writing an unsupported answer again: with the preset only (greedy stays greedy, for benchmarks). */
function regenerateSetting() {
  return $('decoding').value === 'preset' && state.preset ? REGENERATION : null;
}

/** Decoding for the next answer: the preset's fields (or greedy) and the answer length. */
function decodingSettings() {
  const maxNewTokens = num('max-new-tokens') > 0 ? Math.round(num('max-new-tokens')) : (state.preset?.maxNewTokens ?? 256);
  if ($('decoding').value === 'preset' && state.preset) {
    const { maxNewTokens: _, ...preset } = state.preset;
    return { ...preset, maxNewTokens };
  }
  return { ...DECODINGS.greedy, maxNewTokens };
}

/** Retrieval for the next answer, from the Settings. */
function retrievalSettings() {
  return {
    topKInitial: num('top-k-initial'),
    topKFinal: num('top-k-final'),
    weights: { lexical: num('weight-lexical'), dense: num('weight-dense') },
  };
}

// ---- the conversation ---------------------------------------------------------------------

const FINISH = {
  stop: 'finished',
  length: 'hit max answer tokens',
  repetition: 'cut by the repetition guard',
  context_full: 'context full',
  aborted: 'stopped',
};

const fixed = (x, digits = 0) => (Number.isFinite(x) ? x.toFixed(digits) : '–');

/** "stop", or "length (hit max answer tokens)". */
const describeFinish = (reason) => `${reason}${FINISH[reason] && FINISH[reason] !== reason ? ` (${FINISH[reason]})` : ''}`;

/**
 * The timings of the answer first written: its prompt figures and first token are what the user
 * waited for (a rewrite finds the whole prompt in the KV cache). A cached answer has no attempts.
 */
const firstTimings = (result) => result.attempts?.[0]?.timings ?? result.timings ?? {};

/** What the rewrites of an unsupported answer came to. */
function describeAttempts(attempts) {
  const kept = attempts.findIndex((a) => a.supported);
  return kept > 0
    ? `written ${kept + 1} times: the first ${kept === 1 ? 'answer' : `${kept} answers`} matched no source`
    : `written ${attempts.length} times: no answer matched a source, the first is shown`;
}

function element(tag, className, text) {
  const el = document.createElement(tag);
  if (className) el.className = className;
  if (text !== undefined) el.textContent = text;
  return el;
}

/** One question and what answered it, as an <li class="turn"> of #thread. */
class TurnView {
  constructor(n, question) {
    this.n = n;
    this.sources = [];
    this.streamed = '';
    this.timer = null;
    this.lastRender = 0;
    const li = this.el = element('li', 'turn');
    li.id = `turn-${n}`;
    li.dataset.turn = String(n);
    this.setState('retrieving');
    this.questionEl = element('h3', 'question', question);
    this.quick = element('section', 'quick');
    this.quick.hidden = true;
    this.quickText = element('p', 'quick-text');
    this.quick.append(element('h4', null, 'Quick answer from your documents'), this.quickText);
    const reply = element('section', 'reply');
    this.statusEl = element('p', 'turn-status', 'Searching your documents…');
    this.cachedEl = element('p', 'answer-cached');
    this.cachedEl.hidden = true;
    this.answerEl = element('div', 'answer');
    reply.append(element('h4', null, 'Answer'), this.statusEl, this.cachedEl, this.answerEl);
    this.sourcesBlock = element('section', 'sources-block');
    this.sourcesBlock.hidden = true;
    this.sourcesList = element('ol', 'sources');
    this.sourcesBlock.append(element('h4', null, 'Sources'), this.sourcesList);
    this.timingsEl = element('p', 'timings');
    li.append(this.questionEl, this.quick, reply, this.sourcesBlock, this.timingsEl);
  }

  setState(s) {
    this.el.dataset.state = s;
    this.el.setAttribute('aria-busy', String(s === 'retrieving' || s === 'streaming' || s === 'rewriting'));
  }

  showSources(sources) {
    this.sources = sources;
    renderSources(this.sourcesList, sources, this.n);
    this.sourcesBlock.hidden = sources.length === 0;
    this.el.dataset.sources = String(sources.length);
    this.statusEl.textContent = sources.length ? 'Writing the answer…' : 'No passage matched: the model answers without sources…';
  }

  showQuick({ sentences = [], ms }) {
    this.quick.hidden = false;
    this.quick.dataset.ms = fixed(ms);
    if (sentences.length === 0) {
      this.quickText.replaceChildren('No sentence of the passages matches the question closely.');
      this.quickText.classList.add('none');
      return;
    }
    this.quickText.replaceChildren(...sentences.flatMap((s, i) => [
      ...(i ? [' '] : []), ...inlineNodes(s.text.trim()), ' ', citationElement(this.n, s.n, this.sources),
    ]));
  }

  /** A piece of the streamed answer: re-rendered at most every 100 ms. */
  stream(piece) {
    if (this.el.dataset.state !== 'streaming') {
      this.setState('streaming');
      this.statusEl.hidden = true;
    }
    this.streamed += piece;
    if (this.timer !== null) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.lastRender = performance.now();
      renderAnswer(this.answerEl, this.streamed, this.sources, { turn: this.n });
    }, Math.max(0, 100 - (performance.now() - this.lastRender)));
  }

  #settle() {
    clearTimeout(this.timer);
    this.timer = null;
    this.statusEl.hidden = true;
  }

  /** The streamed answer matched no source and is written again: what streams next replaces it. */
  rewrite({ attempt }) {
    clearTimeout(this.timer);
    this.timer = null;
    this.streamed = '';
    this.answerEl.replaceChildren();
    this.statusEl.hidden = false;
    this.statusEl.textContent = `No source supports that answer: writing it again (try ${attempt})…`;
    this.setState('rewriting');
  }

  /** The answer as answerQuestion returned it: its text is authoritative (a guard may have cut the stream). */
  finish(result) {
    this.#settle();
    this.sources = result.sources ?? this.sources;
    // An answer that cites nothing is shown with the citations edgellm attributed by similarity.
    renderAnswer(this.answerEl, result.attributed?.text ?? result.text, this.sources, { turn: this.n });
    if (!result.text.trim()) this.answerEl.replaceChildren(element('p', 'empty', '(the model gave no answer)'));
    renderSources(this.sourcesList, this.sources, this.n, result.supports);
    for (const passage of this.sourcesList.querySelectorAll('.passage')) {
      const mark = passage.querySelector('mark');
      if (mark) passage.scrollTop = Math.max(0, mark.offsetTop - passage.offsetTop - 8);
    }
    const t = result.timings ?? {};
    const first = firstTimings(result);
    const d = this.el.dataset;
    d.finishReason = result.finishReason;
    d.promptTokens = String(first.promptTokens ?? '');
    d.reusedPromptTokens = String(first.reusedPromptTokens ?? 0);
    d.generatedTokens = String(t.generatedTokens ?? '');
    d.attempts = String(result.attempts?.length ?? 1);
    d.citationsValid = (result.citations?.valid ?? []).join(',');
    d.citationsInvalid = (result.citations?.invalid ?? []).join(',');
    d.citationsAttributed = (result.attributed?.added ?? []).map((a) => a.n).join(',');
    d.followUp = String(!!result.followUp);
    d.cached = String(!!result.cached);
    this.timingsEl.textContent = (result.cached ? this.#cachedParts(result) : this.#generatedParts(result)).join(' · ');
    this.setState('done');
  }

  /** An answer served from the answer cache: the earlier turn's, marked as such. */
  finishCached(result) {
    const { question, savedMs } = result.cached;
    this.cachedEl.textContent = `Cached answer (similar question: “${question}”), saved ${fixed(savedMs / 1000, 1)} s`;
    this.cachedEl.hidden = false;
    this.showSources(result.sources);
    if (result.extractive) this.showQuick(result.extractive);
    this.finish(result);
  }

  #generatedParts(result) {
    const t = result.timings ?? {};
    const first = firstTimings(result);
    const rt = result.retrieval ?? {};
    const parts = [
      `retrieval ${fixed(rt.totalMs)} ms (embedding ${fixed(rt.embedMs)} ms${rt.rerankMs ? `, reranking ${fixed(rt.rerankMs)} ms` : ''})`,
      ...(result.extractive ? [`quick answer ${fixed(result.extractive.ms)} ms`] : []),
      `${first.promptTokens ?? '–'} prompt tokens (${first.reusedPromptTokens ?? 0} reused)`,
      `prefill ${fixed(first.prefillTokS, 1)} tok/s`,
      `first token ${fixed(first.timeToFirstTokenMs)} ms`,
      `${t.generatedTokens ?? '–'} tokens at ${fixed(t.decodeTokS, 1)} tok/s`,
      describeFinish(result.finishReason),
    ];
    if (result.attempts?.length > 1) parts.push(describeAttempts(result.attempts));
    if (result.followUp) parts.push(`follow-up: searched as “${result.retrievalQuery}”`);
    parts.push(...this.#citationNotes(result));
    return parts;
  }

  #cachedParts(result) {
    const { similarity, lookupMs } = result.cached;
    return [
      `answered from the answer cache in ${fixed(lookupMs)} ms (similarity ${fixed(similarity, 3)})`,
      `originally ${describeFinish(result.finishReason)}`,
      ...this.#citationNotes(result),
    ];
  }

  #citationNotes(result) {
    if (result.citations?.invalid?.length) return [`cites ${result.citations.invalid.map((n) => `[${n}]`).join(' ')}, which name no source`];
    if (result.attributed) return [`the model cited no source: ${[...new Set(result.attributed.added.map((a) => `[${a.n}]`))].join(' ')} added by similarity`];
    if (result.citations && !result.citations.hasValid && this.sources.length) return ['cites no source'];
    return [];
  }

  fail(error) {
    this.#settle();
    const aborted = error?.name === 'AbortError';
    if (this.streamed) renderAnswer(this.answerEl, this.streamed, this.sources, { turn: this.n });
    this.timingsEl.textContent = aborted ? 'stopped' : `error: ${error?.message ?? error}`;
    this.timingsEl.classList.toggle('error', !aborted);
    this.setState(aborted ? 'stopped' : 'error');
  }
}

function showThreadHint() {
  $('thread-empty').hidden = $('thread').children.length > 0;
}

async function ask() {
  const question = $('question').value.trim();
  if (!question || !state.tokenizer || state.controller) return;
  const view = new TurnView(++state.turns, question);
  $('thread').append(view.el);
  showThreadHint();
  view.el.scrollIntoView({ block: 'start', behavior: 'smooth' });
  $('question').value = '';
  $('ask').disabled = true;
  $('stop').disabled = false;
  const controller = state.controller = new AbortController();
  let ended;
  state.answering = new Promise((resolve) => (ended = resolve));
  try {
    const cached = await cachedAnswer(question);
    if (cached.hit) {
      view.finishCached(cached.hit);
      return;
    }
    const result = await answerQuestion({
      question,
      conversation: state.conversation,
      index: state.index,
      sentenceCache: state.sentenceCache,
      embed: (texts) => state.engine.embed(texts),
      rerank: state.rerankerLoaded ? (q, candidates) => state.engine.rerank(q, candidates.map((c) => c.text)) : undefined,
      countTokens: state.tokenizer.count,
      contextLength: state.modelInfo.contextLength,
      retrieval: retrievalSettings(),
      request: { ...decodingSettings(), signal: controller.signal },
      generate: (request, onToken) => state.engine.generate(request, onToken),
      onSources: (sources) => view.showSources(sources),
      onExtractive: (quick) => view.showQuick(quick),
      onToken: (piece) => view.stream(piece),
      regenerate: regenerateSetting(),
      onRegenerate: (next) => view.rewrite(next),
    });
    view.finish(result);
    if (cached.vector) cacheAnswer(cached.vector, result);
  } catch (e) {
    view.fail(e);
  } finally {
    if (state.controller === controller) state.controller = null;
    $('ask').disabled = !state.tokenizer || $('load').disabled;
    $('stop').disabled = true;
    ended();
  }
}

/** Stop the answer being written, if any, and wait until it has ended. */
async function stopAnswer() {
  state.controller?.abort();
  await state.answering;
}

// ---- the answer cache ---------------------------------------------------------------------

/**
 * Everything an answer depends on besides the question: the corpus, the model, and the settings
 * of retrieval, decoding and the conversation. A change of any of them empties the cache.
 */
function answerScope() {
  return cacheScope({
    corpus: state.index.fingerprint(),
    model: state.loadedEntry.id ?? `own:${state.loadedEntry.name}`,
    settings: {
      embedder: state.embedderId,
      retrieval: retrievalSettings(),
      reranker: state.rerankerLoaded,
      decoding: decodingSettings(),
      rule: state.conversation.rule,
      contextLength: state.modelInfo.contextLength,
    },
  });
}

/**
 * Look the question up in the answer cache. Only a question that stands alone is looked up (and
 * later stored): a follow-up is searched and answered with the turns before it, and under the
 * full-history rule every answer depends on them. Without the embedder there is nothing to compare.
 * @returns {Promise<{ hit?: object, vector?: Float32Array }>} the turn to show for a hit; else the
 *          question's vector if its answer may be stored
 */
async function cachedAnswer(question) {
  const context = state.conversation.contextFor(question);
  if (context.followUp || context.history.length > 0) return {};
  await state.embedderReady?.catch(() => {}); // still loading: retrieval would wait for it too
  if (!state.embedderId) return {};
  const startedAt = performance.now();
  const [vector] = await state.engine.embed([question]);
  const cache = state.answerCache;
  const invalidated = cache.useScope(answerScope());
  const hit = cache.lookup(vector, question);
  if (!hit) {
    if (invalidated) persistAnswerCache();
    renderAnswerCacheStats();
    return { vector };
  }
  const turn = {
    ...hit.answer,
    supports: new Map(hit.answer.supports),
    question,
    retrievalQuery: question,
    followUp: false,
    topic: question,
    cached: { question: hit.question, similarity: hit.similarity, savedMs: hit.savedMs, lookupMs: performance.now() - startedAt },
  };
  // Recorded like any answer, so that a follow-up to it finds its topic.
  state.conversation.record(turn);
  persistAnswerCache();
  renderAnswerCacheStats();
  return { hit: turn };
}

/** Keep an answer that ended by itself or at its length limit (not one stopped, cut or failed). */
function cacheAnswer(vector, result) {
  if (result.finishReason !== 'stop' && result.finishReason !== 'length') return;
  const answer = {
    text: result.text,
    finishReason: result.finishReason,
    sources: result.sources,
    citations: result.citations,
    attributed: result.attributed,
    supports: [...result.supports],
    extractive: result.extractive,
  };
  state.answerCache.store(vector, { question: result.question, answer, ms: result.totalMs });
  persistAnswerCache();
  renderAnswerCacheStats();
}

function persistAnswerCache() {
  if (!state.indexKept) return; // IndexedDB refused already: #index-status has said so
  saveAnswerCache(state.answerCache.toJSON()).catch((e) => console.warn(`The answer cache could not be saved: ${e.message}`));
}

/** The stored cache, or an empty one: a corrupt or foreign record is dropped, not trusted. */
async function restoreAnswerCache() {
  const saved = await loadAnswerCache().catch(() => undefined);
  if (saved === undefined) return new AnswerCache();
  try {
    return AnswerCache.fromJSON(saved);
  } catch (e) {
    console.warn(`Discarding the stored answer cache: ${e.message}`);
    await clearAnswerCache().catch(() => {});
    return new AnswerCache();
  }
}

function renderAnswerCacheStats() {
  const { entries, lookups, hits, hitRate, timeSavedMs } = state.answerCache.stats();
  say('answer-cache-status', `${entries} answers kept; ${hits} of ${lookups} questions answered from the cache (${fixed(100 * hitRate)}%), ${fixed(timeSavedMs / 1000, 1)} s saved.`);
}

// ---- export ---------------------------------------------------------------------------------

/** Download the document index as edgellm-index.json (the format of DocumentIndex.toJSON, README "Index file"). */
function exportIndex() {
  const blob = new Blob([JSON.stringify(state.index.toJSON())], { type: 'application/json' });
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = 'edgellm-index.json';
  document.body.append(a);
  a.click();
  a.remove();
  // Revoked later, not at once: the download reads the blob after click() returns.
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

function newConversation() {
  state.controller?.abort();
  state.conversation.clear();
  state.turns = 0;
  $('thread').replaceChildren();
  showThreadHint();
  $('question').focus();
}

// ---- start ------------------------------------------------------------------------------

async function init() {
  state.registry = await (await fetch('registry.json')).json();
  // Benchmark-only entries (random weights) are left to the benchmark page.
  for (const m of chatModels(state.registry).filter((m) => !m.benchmark)) {
    const size = m.bytes ? `, ${(m.bytes / 2 ** 20).toFixed(0)} MiB` : m.estimatedBytes ? `, about ${(m.estimatedBytes / 1e9).toFixed(1)} GB` : '';
    const option = new Option(`${m.name} — ${m.quantization}${size}${m.tooLarge ? ' (too large for a tab)' : ''}`, m.id);
    option.selected = m.id === state.registry.default;
    $('model-select').append(option);
  }
  say('model-status', 'Pick a model and press Load.');
  state.answerCache = await restoreAnswerCache();
  renderAnswerCacheStats();
  startEmbedder();
  await restoreIndex();
}

$('load').addEventListener('click', loadModel);
$('own-file').addEventListener('change', (e) => { const f = e.target.files[0]; if (f) inspectOwn(f, f.name); });
$('own-inspect').addEventListener('click', () => {
  const url = $('own-url').value.trim();
  if (url) inspectOwn({ url }, url.split('/').pop() || url);
});
$('own-load').addEventListener('click', loadOwn);
$('ask').addEventListener('click', ask);
$('question').addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    if (!$('ask').disabled) ask();
  }
});
$('stop').addEventListener('click', () => state.controller?.abort());
$('new-chat').addEventListener('click', newConversation);
$('max-new-tokens').addEventListener('input', () => { state.maxTokensTouched = true; });
$('decoding').addEventListener('change', () => { state.decodingTouched = true; });
$('clear-cache').addEventListener('click', async () => {
  await clearModels();
  state.cacheNotices.clear();
  showNotice('cache-status', '');
  say('model-status', 'Model cache cleared.');
});
$('files').addEventListener('change', (e) => addFiles([...e.target.files]));
$('export-index').addEventListener('click', exportIndex);
$('clear-answer-cache').addEventListener('click', () => {
  state.answerCache.clear();
  persistAnswerCache();
  renderAnswerCacheStats();
});
$('reranker-files').addEventListener('change', (e) => rerankerFromFiles(e.target.files));
$('reranker-load').addEventListener('click', () => rerankerFromUrl($('reranker-url').value));
const drop = $('drop');
drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', (e) => {
  e.preventDefault();
  drop.classList.remove('over');
  addFiles([...e.dataTransfer.files]); // a file of another type is refused, saying which types are read
});
init().catch((e) => say('doc-status', e.message, true));
