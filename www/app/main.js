// UI wiring only: the engine runs in a worker (WorkerEngine), models come from storage.js.
// Model output is shown with textContent: it is never parsed as HTML.
import { WorkerEngine } from '../engine/index.js';
import { getModel, clearModels } from './storage.js';

const $ = (id) => document.getElementById(id);
const WASM32_LIMIT = 4 * 2 ** 30;
let engine = null;
let registry = null;
let controller = null;

function status(text, isError = false) {
  $('model-status').textContent = text;
  $('model-status').classList.toggle('error', isError);
}

async function init() {
  registry = await (await fetch('registry.json')).json();
  for (const m of registry.models.filter((m) => m.format === 'gguf')) {
    const option = new Option(`${m.name} — ${m.quantization}${m.bytes ? `, ${(m.bytes / 2 ** 20).toFixed(0)} MiB` : ''}`, m.id);
    option.selected = m.id === registry.default;
    $('model-select').append(option);
  }
  status(`crossOriginIsolated: ${self.crossOriginIsolated}. Pick a model and press Load.`);
}

async function load() {
  const entry = registry.models.find((m) => m.id === $('model-select').value);
  if (entry.bytes && entry.bytes > WASM32_LIMIT * 0.75) {
    return status(`${entry.name} is too large for WebAssembly's 4 GiB memory.`, true);
  }
  $('load').disabled = $('ask').disabled = true;
  const progress = $('progress');
  progress.hidden = false;
  try {
    const url = entry.wheels.length ? `models/${entry.file}` : entry.source;
    const t0 = performance.now();
    const { buffer, fromCache } = await getModel({ url, sha256: entry.sha256 }, ({ loaded, total }) => {
      progress.value = total ? loaded / total : 0;
      status(`downloading ${(loaded / 2 ** 20).toFixed(0)}${total ? ` / ${(total / 2 ** 20).toFixed(0)}` : ''} MiB`);
    });
    const fetchMs = performance.now() - t0;
    engine?.terminate();
    engine = new WorkerEngine();
    const info = await engine.load(buffer, { transfer: true, template: entry.template === 'none' ? undefined : entry.template });
    status(`${info.name}: ${fromCache ? 'from cache' : 'downloaded'} in ${fetchMs.toFixed(0)} ms, loaded in ${info.loadTimings.totalMs.toFixed(0)} ms ` +
      `(context ${info.contextLength} tokens, template ${info.chatTemplate}).`);
    $('ask').disabled = false;
  } catch (e) {
    status(`Could not load ${entry.name}: ${e.message}`, true);
  } finally {
    progress.hidden = true;
    $('load').disabled = false;
  }
}

async function ask() {
  const question = $('question').value.trim();
  if (!question) return;
  $('answer').textContent = '';
  $('timings').textContent = '';
  $('ask').disabled = true;
  $('stop').disabled = false;
  controller = new AbortController();
  try {
    const messages = [
      { role: 'system', content: 'You are a concise assistant. Answer in one sentence.' },
      { role: 'user', content: question },
    ];
    const r = await engine.generate({ messages, maxNewTokens: 256, signal: controller.signal }, (piece) => {
      $('answer').append(piece);
    });
    const t = r.timings;
    $('timings').textContent = `${t.promptTokens} prompt tokens · prefill ${t.prefillTokS.toFixed(1)} tok/s · first token ${t.timeToFirstTokenMs.toFixed(0)} ms · ` +
      `${t.generatedTokens} tokens at ${t.decodeTokS.toFixed(1)} tok/s · ${r.finishReason}`;
  } catch (e) {
    $('timings').textContent = e.name === 'AbortError' ? 'stopped' : `error: ${e.message}`;
  } finally {
    $('ask').disabled = false;
    $('stop').disabled = true;
  }
}

$('load').addEventListener('click', load);
$('ask').addEventListener('click', ask);
$('stop').addEventListener('click', () => controller?.abort());
$('clear-cache').addEventListener('click', async () => { await clearModels(); status('Model cache cleared.'); });
init().catch((e) => status(e.message, true));
