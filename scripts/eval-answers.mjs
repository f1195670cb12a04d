// The answer-quality command: www/bench/quality.js (the page's own answerQuestion) over the
// reference questions on the sample corpus and the Cranfield gold-answer set (eval/answers/), with
// each model's answer preset beside plain greedy decoding, in Node and in headless Chromium
// (the benchmark page, engine in a Web Worker).
//   node scripts/eval-answers.mjs [--models smollm2-135m,gemma3-270m] [--only node|chromium]
//        [--sets reference-conversation,reference-fresh,cranfield,cranfield-conversations]
//        [--decoding preset,preset-once,greedy,greedy-unguarded] [--rules follow-up|all|a,b] [--limit N] [--threads 2] [--json FILE]
// --limit N keeps the first N conversations of each set (a quick look); the figures in the README
// are from full runs.
import { readFile, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Engine, Embedder, loadTokenizer } from '../www/engine/index.js';
import { CONVERSATION_RULES, DEFAULT_RULE } from '../www/rag/answer.js';
import { contextsByCorpus, decodingsFor, evaluateQuality, formatQuality, questionSets } from '../www/bench/quality.js';
import { answerPreset, chatModelSource } from '../www/app/storage.js';

const { values: args } = parseArgs({
  options: {
    models: { type: 'string' }, only: { type: 'string' }, sets: { type: 'string' }, decoding: { type: 'string', default: 'preset,preset-once,greedy,greedy-unguarded' },
    rules: { type: 'string', default: DEFAULT_RULE }, limit: { type: 'string' }, threads: { type: 'string', default: '2' }, json: { type: 'string' },
  },
});
const registry = JSON.parse(await readFile(new URL('../models/registry.json', import.meta.url)));
const modelIds = (args.models ?? registry.default).split(',');
const rules = args.rules === 'all' ? [...CONVERSATION_RULES] : args.rules.split(',');
const decodingNames = args.decoding.split(',');
const modelsDir = join(process.env.EDGELLM_CACHE ?? join(homedir(), '.cache', 'edgellm'), 'models');
const evalDir = new URL('../eval/answers/', import.meta.url);
const cranfield = {
  questions: JSON.parse(await readFile(new URL('questions.json', evalDir))),
  subset: JSON.parse(await readFile(new URL('cranfield-subset.json', evalDir))),
};

/** The sets to run, each cut to --limit conversations. */
function chosenSets() {
  const all = questionSets(cranfield.questions);
  const names = args.sets?.split(',') ?? all.map((s) => s.name);
  const unknown = names.filter((n) => !all.some((s) => s.name === n));
  if (unknown.length) throw new Error(`unknown set(s) ${unknown.join(', ')}; the sets are ${all.map((s) => s.name).join(', ')}`);
  return all.filter((s) => names.includes(s.name))
    .map((s) => (args.limit ? { ...s, conversations: s.conversations.slice(0, Number(args.limit)) } : s));
}

async function inNode() {
  const embedder = await Embedder.load();
  const embed = (texts) => embedder.embed(texts);
  const corpus = new URL('../www/corpus/', import.meta.url);
  const results = [];
  for (const id of modelIds) {
    const entry = registry.models.find((m) => m.id === id);
    if (!entry) throw new Error(`unknown model ${id}`);
    const { file, options } = chatModelSource(registry, entry);
    if (options.backend === 'webgpu') {
      process.stderr.write(`node: ${id} skipped: ONNX models run on WebGPU (Chromium)\n`);
      continue;
    }
    const buffer = await readFile(join(modelsDir, file.file));
    const engine = new Engine();
    const info = await engine.load(buffer, options);
    const tokenizer = await loadTokenizer(buffer);
    const contextFor = contextsByCorpus({
      readSample: (f) => readFile(new URL(f, corpus), 'utf8'),
      cranfieldSubset: cranfield.subset,
      embed,
      model: { generate: (request, onToken) => engine.generate(request, onToken), countTokens: tokenizer.count, contextLength: info.contextLength },
    });
    const rows = await evaluateQuality({
      sets: chosenSets(), decodings: decodingsFor(answerPreset(registry, entry), decodingNames), rules, contextFor,
      onProgress: (text) => process.stderr.write(`node ${id}: ${text}\r`),
    });
    results.push({ model: id, runtime: `node ${process.version}, ${info.runtime.build} build, ${info.runtime.threads} thread(s)`, rows });
    engine.unload();
    tokenizer.free();
  }
  embedder.free();
  return results;
}

async function inChromium() {
  const { withBrowser } = await import('../tests/browser/chromium.mjs');
  return withBrowser(async ({ page, url, logs }) => {
    page.on('console', (m) => m.type() === 'error' && process.stderr.write(`chromium: ${m.text()}\n`));
    const q = new URLSearchParams({
      quality: '1', autorun: '1', models: modelIds.join(','), sets: chosenSets().map((s) => s.name).join(','), decoding: decodingNames.join(','),
      rules: rules.join(','), threads: args.threads, ...(args.limit ? { limit: args.limit } : {}),
    });
    await page.goto(`${url}bench/?${q}`);
    const poll = setInterval(async () => process.stderr.write(`chromium: ${await page.textContent('#quality-progress').catch(() => '')}\r`), 10000);
    try {
      await page.waitForFunction(() => window.qualityResults, null, { timeout: 0 });
    } finally {
      clearInterval(poll);
    }
    const result = await page.evaluate(() => window.qualityResults);
    if (result.error) throw new Error(`the benchmark page failed: ${result.error}\n${logs.join('\n')}`);
    return result.models;
  });
}

const runs = [];
if (args.only !== 'chromium') runs.push({ where: 'node', models: await inNode() });
if (args.only !== 'node') runs.push({ where: 'chromium', models: await inChromium() });
for (const run of runs) {
  for (const { model, runtime, rows } of run.models) {
    console.log(`\n${model} — ${runtime}`);
    console.log(formatQuality(rows));
    for (const row of rows.filter((r) => r.summary.perTurn.length > 1)) {
      const perTurn = row.summary.perTurn.map((t) => `turn ${t.turn}: ${(t.timeToFirstTokenMs / 1000).toFixed(2)} s, ${t.promptTokens} prompt tokens (${t.reusedPromptTokens} reused)`);
      console.log(`  ${row.set} · ${row.decoding} · ${row.rule}: ${perTurn.join('; ')}`);
    }
  }
}
if (args.json) {
  await writeFile(args.json, JSON.stringify({ date: new Date().toISOString(), runs }, null, 2));
  console.log(`wrote ${args.json}`);
}
