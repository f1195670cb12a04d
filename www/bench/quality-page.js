// The benchmark page's "Answer quality" section: www/bench/quality.js in this browser, the model
// in a Web Worker as on the app page. URL parameters (?quality=1&autorun=1&models=…&sets=…&
// decoding=preset,preset-once,greedy,greedy-unguarded&rules=follow-up&threads=2&limit=N) let scripts/eval-answers.mjs drive it.
import { WorkerEngine, loadTokenizer } from '../engine/index.js';
import { answerPreset, bertFiles, chatModelSource, getModel, modelUrl } from '../app/storage.js';
import { contextsByCorpus, decodingsFor, evaluateQuality, formatQuality, questionSets } from './quality.js';

const $ = (id) => document.getElementById(id);

/**
 * Run the quality sets on each chosen model; show the table; resolve to
 * { models: [{ model, runtime, rows }] } (also left in window.qualityResults).
 */
export async function runQuality({ registry, modelIds, setNames, decodingNames, rules, threads, limit }) {
  const progress = (text) => { $('quality-progress').textContent = text; };
  const cranfield = await fetchCranfield();
  const sets = questionSets(cranfield?.questions ?? null)
    .filter((s) => !setNames || setNames.includes(s.name))
    .map((s) => (limit ? { ...s, conversations: s.conversations.slice(0, limit) } : s));
  const models = [];
  for (const id of modelIds) {
    const entry = registry.models.find((m) => m.id === id);
    const { file, options } = chatModelSource(registry, entry);
    const decodings = decodingsFor(answerPreset(registry, entry), decodingNames);
    progress(`${id}: loading`);
    // One worker holds the model and the embedder, as on the app page.
    const engine = new WorkerEngine();
    await engine.init({ threads });
    await engine.loadEmbedder(await bertFiles(registry.models.find((m) => m.kind === 'embedding')));
    const { buffer } = await getModel({ url: modelUrl(file), sha256: file.sha256 });
    const tokenizer = await loadTokenizer(buffer);
    const info = await engine.load(buffer, { ...options, transfer: true });
    const embed = (texts) => engine.embed(texts);
    const contextFor = contextsByCorpus({
      readSample: async (f) => (await fetch(`../corpus/${f}`)).text(),
      cranfieldSubset: cranfield?.subset,
      embed,
      model: { generate: (request, onToken) => engine.generate(request, onToken), countTokens: tokenizer.count, contextLength: info.contextLength },
    });
    const rows = await evaluateQuality({ sets, decodings, rules, contextFor, onProgress: (text) => progress(`${id}: ${text}`) });
    const runtime = `${navigator.userAgent.match(/Chrome\/[\d.]+/)?.[0] ?? 'browser'}, WorkerEngine, ${info.runtime.build} build, ${info.runtime.threads} thread(s)`;
    models.push({ model: id, runtime, rows });
    $('quality-table').textContent = models.map((m) => `${m.model} — ${m.runtime}\n${formatQuality(m.rows)}`).join('\n\n');
    engine.terminate();
    tokenizer.free();
  }
  progress('done');
  return { models };
}

/** eval/answers/ as the server mounts it at /eval/answers/, or null where it is not served. */
async function fetchCranfield() {
  const get = async (name) => {
    const res = await fetch(`../eval/answers/${name}`);
    return res.ok ? res.json() : null;
  };
  const [questions, subset] = await Promise.all([get('questions.json'), get('cranfield-subset.json')]);
  return questions && subset ? { questions, subset } : null;
}
