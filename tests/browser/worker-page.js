// Runs in headless Chromium: the engine in a Web Worker, driven through WorkerEngine.
import { WorkerEngine } from '/engine/index.js';

const question = [
  { role: 'system', content: 'You are a concise assistant. Answer in one sentence.' },
  { role: 'user', content: 'What is the capital of France?' },
];

window.runWorkerTest = async (modelUrl, threads) => {
  const engine = new WorkerEngine();
  const report = { crossOriginIsolated: self.crossOriginIsolated };
  report.runtime = await engine.init({ threads });

  // Bad input first: the worker must survive it.
  try {
    await engine.load(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]));
  } catch (e) {
    report.badLoad = { name: e.name, code: e.code, message: e.message };
  }

  const t0 = performance.now();
  const bytes = await (await fetch(modelUrl)).arrayBuffer();
  report.fetchMs = performance.now() - t0;
  report.info = await engine.load(bytes, { transfer: true });

  // The page keeps running while the worker computes.
  let ticks = 0;
  const timer = setInterval(() => ticks++, 20);
  const pieces = [];
  const t1 = performance.now();
  report.result = await engine.generate({ messages: question, maxNewTokens: 24 }, (p) => pieces.push(p));
  report.generateMs = performance.now() - t1;
  clearInterval(timer);
  report.ticks = ticks;
  report.pieces = pieces;

  // Streaming as an AsyncIterable, then an abort part-way.
  let streamed = '';
  for await (const p of engine.stream({ messages: question, maxNewTokens: 24 })) streamed += p;
  report.streamed = streamed;
  const controller = new AbortController();
  let n = 0;
  try {
    await engine.generate({ prompt: '1, 2, 3, 4, 5,', maxNewTokens: 200, signal: controller.signal }, () => {
      if (++n === 3) controller.abort();
    });
  } catch (e) {
    report.abort = { name: e.name, pieces: n };
  }
  // Leaving a stream early ends its generation in the worker: the next call is not 'busy'.
  let early = 0;
  for await (const _ of engine.stream({ prompt: '1, 2, 3, 4, 5,', maxNewTokens: 200 })) if (++early === 2) break;
  report.afterBreak = { last: (await engine.lastResult()).finishReason, next: (await engine.generate({ prompt: 'Hello', maxNewTokens: 2 })).timings.generatedTokens };
  report.memory = await engine.memory();
  engine.terminate();
  return report;
};

/** Without cross-origin isolation: which build the worker gets, and that it still answers. */
window.runFallbackTest = async (modelUrl) => {
  const engine = new WorkerEngine();
  const runtime = await engine.init({ threads: 2 });
  const bytes = await (await fetch(modelUrl)).arrayBuffer();
  await engine.load(bytes, { transfer: true });
  const result = await engine.generate({ messages: question, maxNewTokens: 8 });
  engine.terminate();
  return { crossOriginIsolated: self.crossOriginIsolated, runtime, text: result.text };
};
