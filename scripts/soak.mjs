// The soak: the real page (www/index.html, engine in its Web Worker) in headless Chromium, asked
// question after question over the sample corpus with short answers, to show that nothing grows
// while a tab stays open: wasm memory, the worker's JS heap and the page's, sampled after a
// forced garbage collection every K questions, and the time each question takes.
//   node scripts/soak.mjs [--questions 1000] [--model smollm2-135m] [--tokens 16] [--every K] [--json FILE]
// Not part of ./test.sh (1,000 questions take about an hour on two cores); tests/browser/soak.test.mjs
// runs the same code for 20.
import { execFileSync } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { REFERENCE_QUESTIONS } from '../www/bench/quality.js';
import { chatModelSource } from '../www/app/storage.js';

const MiB = 2 ** 20;

/**
 * Growth allowed from the warm-up sample (the first at ≥ 10% of the questions) to the last: a
 * leak of 10 KB a question shows over 1,000 questions. wasm memory never shrinks but reuses
 * freed pages, so without a leak it only grows while the KV cache reaches the longest prompt yet.
 */
export const SOAK_BOUNDS = Object.freeze({ wasmBytes: 8 * MiB, workerHeapBytes: 8 * MiB, pageHeapBytes: 8 * MiB });

const METRICS = Object.freeze({ wasmBytes: 'wasm memory', workerHeapBytes: "worker's JS heap", pageHeapBytes: "page's JS heap" });

const readJson = async (path) => JSON.parse(await readFile(new URL(path, import.meta.url), 'utf8'));

/**
 * Varied questions on the sample corpus: the reference system's, and both sides of the answer
 * cache's paraphrase and hard-negative pairs (eval/faq/pairs.json), without repeats.
 */
export async function soakQuestions() {
  const { pairs } = await readJson('../eval/faq/pairs.json');
  return [...new Set([...REFERENCE_QUESTIONS, ...pairs.flatMap((p) => [p.a, p.b])])];
}

/**
 * Ask `questions` questions in the page with `model` loaded, answers of `maxNewTokens` tokens.
 * Every `every` questions, and before the first: "New conversation" (the thread's DOM and the
 * conversation would otherwise grow by design, one turn a question), a garbage collection in the
 * page and the worker, and a sample { asked, wasmBytes, workerHeapBytes, pageHeapBytes }. The
 * answer cache is cleared before each question, so that every one is generated.
 * Resolves to { model, info (the load status line), questions, maxNewTokens, every, samples,
 * latencies (ms, one a question), failures (turns not answered), pageErrors }.
 */
export async function soak({ questions = 1000, model, maxNewTokens = 16, every, onSample = () => {}, onProgress = () => {} } = {}) {
  const registry = await readJson('../models/registry.json');
  model ??= registry.default;
  if (!registry.models.some((m) => m.id === model)) throw new Error(`unknown model '${model}'`);
  every ??= Math.max(1, Math.round(questions / 20));
  const list = await soakQuestions();
  const { withBrowser } = await import('../tests/browser/chromium.mjs'); // playwright, only for a run
  return withBrowser(async ({ page, url, logs, context }) => {
    const cdp = await context.newCDPSession(page);
    const inWorker = await workerDevTools(cdp);
    await page.goto(url);
    await page.waitForFunction(() => /passages indexed/.test(document.getElementById('doc-status').textContent), null, { timeout: 300_000 });
    await page.selectOption('#model-select', model);
    await page.click('#documents summary');
    await page.fill('#max-new-tokens', String(maxNewTokens));
    await page.click('#load');
    await page.waitForFunction(() => !document.getElementById('ask').disabled, null, { timeout: 300_000 });
    const info = await page.textContent('#model-status');
    onProgress(info);

    const engineWorker = () => {
      const worker = page.workers().find((w) => w.url().endsWith('/engine/worker.js'));
      if (!worker) throw new Error('the engine worker is gone');
      return worker;
    };
    const samples = [];
    // Each sample after a full garbage collection in the page and in the worker: what is live,
    // not what the collector has not reached yet.
    const sample = async (asked) => {
      await page.evaluate(() => document.getElementById('new-chat').click());
      // wasm memory as engine.memory() gives it (core.js memoryUsage()), read in the worker.
      const { wasmBytes } = await engineWorker().evaluate(async () => (await import('/engine/core.js')).memoryUsage());
      await inWorker('HeapProfiler.collectGarbage');
      const { usedSize: workerHeapBytes } = await inWorker('Runtime.getHeapUsage');
      await cdp.send('HeapProfiler.collectGarbage');
      const { usedSize: pageHeapBytes } = await cdp.send('Runtime.getHeapUsage');
      const s = { asked, wasmBytes, workerHeapBytes, pageHeapBytes };
      samples.push(s);
      onSample(s);
    };

    await sample(0);
    const latencies = [];
    const failures = [];
    for (let i = 0; i < questions; i++) {
      const question = list[i % list.length];
      const turn = await page.evaluate(async (question) => {
        const $ = (id) => document.getElementById(id);
        $('clear-answer-cache').click();
        const before = document.querySelectorAll('#thread .turn').length;
        $('question').value = question;
        const t0 = performance.now();
        $('ask').click();
        const li = document.querySelector('#thread .turn:last-child');
        if (document.querySelectorAll('#thread .turn').length !== before + 1) return { state: 'not asked', ms: 0 };
        // Ended, and the page ready for the next question (its Ask button back).
        while (!['done', 'error', 'stopped'].includes(li.dataset.state) || $('ask').disabled) await new Promise((r) => setTimeout(r, 5));
        return {
          ms: performance.now() - t0,
          state: li.dataset.state,
          finishReason: li.dataset.finishReason,
          generatedTokens: Number(li.dataset.generatedTokens),
          promptTokens: Number(li.dataset.promptTokens),
          note: li.querySelector('.timings').textContent,
        };
      }, question);
      latencies.push(turn.ms);
      if (turn.state !== 'done') failures.push({ question, ...turn });
      if ((i + 1) % every === 0 || i + 1 === questions) {
        await sample(i + 1);
        onProgress(`${i + 1}/${questions} questions`);
      }
    }
    const pageErrors = logs.filter((l) => l.startsWith('pageerror'));
    return { model, info, questions, maxNewTokens, every, samples, latencies, failures, pageErrors };
  });
}

/**
 * A DevTools method on the page's engine worker: `(method, params) → its result`. Playwright
 * gives DevTools sessions for pages only, so the worker is reached through the page's session as
 * an attached target (the non-flattened protocol: messages wrapped in Target.sendMessageToTarget).
 * Workers have no performance.memory; Runtime.getHeapUsage is exact.
 */
async function workerDevTools(cdp) {
  const sessions = new Map(); // worker URL → sessionId, the latest worker of that URL
  const waiting = new Map(); // message id → resolve
  let nextId = 0;
  cdp.on('Target.attachedToTarget', ({ sessionId, targetInfo }) => sessions.set(targetInfo.url, sessionId));
  cdp.on('Target.receivedMessageFromTarget', ({ message }) => {
    const { id, result, error } = JSON.parse(message);
    waiting.get(id)?.(error ? Promise.reject(new Error(`${error.message} (${error.code})`)) : result);
    waiting.delete(id);
  });
  await cdp.send('Target.setAutoAttach', { autoAttach: true, waitForDebuggerOnStart: false, flatten: false });
  return async (method, params = {}) => {
    const sessionId = [...sessions].find(([url]) => url.endsWith('/engine/worker.js'))?.[1];
    if (!sessionId) throw new Error('the engine worker has no DevTools session');
    const id = ++nextId;
    const reply = new Promise((resolve) => waiting.set(id, resolve));
    await cdp.send('Target.sendMessageToTarget', { sessionId, message: JSON.stringify({ id, method, params }) });
    return reply;
  };
}

/**
 * Whether memory is flat after warm-up: for each metric the growth from the warm-up sample
 * (the first at ≥ 10% of the questions) to the last, against `bounds`, and the slope after
 * warm-up (least squares, bytes a question). `flat`: every measured metric within its bound.
 */
export function verdict(samples, bounds = SOAK_BOUNDS) {
  const last = samples.at(-1);
  const warm = samples.find((s) => s.asked >= 0.1 * last.asked && s.asked > 0) ?? last;
  const after = samples.filter((s) => s.asked >= warm.asked);
  const metrics = {};
  for (const key of Object.keys(METRICS)) {
    if (after.some((s) => typeof s[key] !== 'number')) continue; // not reported here
    const growth = last[key] - warm[key];
    metrics[key] = { warm: warm[key], last: last[key], growth, bound: bounds[key], slope: slope(after.map((s) => [s.asked, s[key]])), flat: growth <= bounds[key] };
  }
  return { warmAt: warm.asked, lastAt: last.asked, metrics, flat: Object.values(metrics).every((m) => m.flat) };
}

/** Least-squares slope of [x, y] points (0 for fewer than two distinct x). */
function slope(points) {
  const n = points.length;
  const mx = points.reduce((a, [x]) => a + x, 0) / n;
  const my = points.reduce((a, [, y]) => a + y, 0) / n;
  const sxx = points.reduce((a, [x]) => a + (x - mx) ** 2, 0);
  return sxx ? points.reduce((a, [x, y]) => a + (x - mx) * (y - my), 0) / sxx : 0;
}

const quantile = (sorted, q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];

/** The curve as a table (one row per sample, with the latency of the questions since the one before), then the verdict. */
export function formatSoak({ samples, latencies, failures, questions, every }, v = verdict(samples)) {
  const mib = (b) => (typeof b === 'number' ? (b / MiB).toFixed(1) : '–');
  const rows = [
    '| questions | wasm MiB | worker heap MiB | page heap MiB | latency mean ms | latency max ms |',
    '|---|---|---|---|---|---|',
  ];
  samples.forEach((s, i) => {
    const block = latencies.slice(i ? samples[i - 1].asked : 0, s.asked);
    const mean = block.length ? (block.reduce((a, b) => a + b, 0) / block.length).toFixed(0) : '–';
    const max = block.length ? Math.max(...block).toFixed(0) : '–';
    rows.push(`| ${s.asked} | ${mib(s.wasmBytes)} | ${mib(s.workerHeapBytes)} | ${mib(s.pageHeapBytes)} | ${mean} | ${max} |`);
  });
  const sorted = [...latencies].sort((a, b) => a - b);
  const lines = [
    rows.join('\n'),
    '',
    `${questions} questions, sampled every ${every}; latency per question (click to answer shown): ` +
      `median ${quantile(sorted, 0.5).toFixed(0)} ms, p95 ${quantile(sorted, 0.95).toFixed(0)} ms, max ${sorted.at(-1).toFixed(0)} ms; ` +
      `${failures.length} not answered${failures.length ? ` (first: ${JSON.stringify(failures[0])})` : ''}.`,
  ];
  for (const [key, m] of Object.entries(v.metrics)) {
    lines.push(`${METRICS[key]}: ${mib(m.warm)} MiB at question ${v.warmAt} → ${mib(m.last)} MiB at ${v.lastAt}, ` +
      `growth ${(m.growth / MiB).toFixed(2)} MiB (bound ${(m.bound / MiB).toFixed(0)}), slope ${(m.slope / 1024).toFixed(2)} KiB/question${m.flat ? '' : ' — GROWS'}`);
  }
  lines.push(`verdict: ${v.flat ? 'flat after warm-up' : 'NOT flat after warm-up'}`);
  return lines.join('\n');
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values: args } = parseArgs({
    options: {
      questions: { type: 'string', default: '1000' }, model: { type: 'string' }, tokens: { type: 'string', default: '16' },
      every: { type: 'string' }, json: { type: 'string' },
    },
  });
  const registry = await readJson('../models/registry.json');
  const model = args.model ?? registry.default;
  const entry = registry.models.find((m) => m.id === model);
  if (!entry) throw new Error(`unknown model '${model}'; the registry has: ${registry.models.map((m) => m.id).join(', ')}`);
  // The chat model and the embedder in the cache first (fetched, or only checked), as the page
  // reads them from /models/.
  const embedder = registry.models.find((m) => m.kind === 'embedding');
  execFileSync('python3', [fileURLToPath(new URL('../models/fetch.py', import.meta.url)), chatModelSource(registry, entry).file.id, embedder.id], { stdio: ['ignore', 'ignore', 'inherit'] });
  const started = performance.now();
  const result = await soak({
    questions: Number(args.questions), model, maxNewTokens: Number(args.tokens), every: args.every ? Number(args.every) : undefined,
    onProgress: (line) => process.stderr.write(`soak: ${line}\n`),
  });
  const v = verdict(result.samples);
  console.log(formatSoak(result, v));
  console.log(`(${((performance.now() - started) / 60000).toFixed(1)} min; ${result.info})`);
  if (result.pageErrors.length) console.log(`page errors:\n${result.pageErrors.join('\n')}`);
  if (args.json) await writeFile(args.json, JSON.stringify({ ...result, verdict: v }, null, 1));
  process.exitCode = v.flat && result.failures.length === 0 && result.pageErrors.length === 0 ? 0 : 1;
}
