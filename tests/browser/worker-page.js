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

/** A call's outcome as data: `{ ok: true }`, or the error's name, code and message. */
const outcome = (promise) => promise.then(() => ({ ok: true }), (e) => ({ name: e.name, code: e.code, message: e.message }));

/**
 * Three ways the worker stops — terminate(), an uncaught error in it, a wasm trap inside an
 * engine call — each with calls pending; after each, the next call starts a fresh worker, which
 * has no model until one is loaded again. The workers come from the test-only crash-worker.js.
 */
window.runCrashTest = async (modelUrl) => {
  const bytes = new Uint8Array(await (await fetch(modelUrl)).arrayBuffer());
  let workers = 0;
  let current = null;
  const crashes = [];
  const engine = new WorkerEngine(() => {
    workers++;
    return (current = new Worker('/tests/crash-worker.js', { type: 'module' }));
  }, { onCrash: (e) => crashes.push(e.code) });
  const report = { runtime: await engine.init({ threads: 1 }) };
  const count = { prompt: '1, 2, 3, 4, 5,', maxNewTokens: 200 };
  const freshWorker = async () => {
    const before = workers;
    const call = await outcome(engine.generate({ prompt: 'Hello', maxNewTokens: 2 }));
    const info = await engine.load(bytes);
    const result = await engine.generate({ messages: question, maxNewTokens: 4 });
    return { call, started: workers - before, runtime: info.runtime, generated: result.timings.generatedTokens, text: result.text };
  };

  // terminate() while a generation streams and another call waits.
  await engine.load(bytes);
  let pieces = 0;
  let memory = null;
  const generation = outcome(engine.generate(count, () => {
    if (++pieces !== 3) return;
    memory = outcome(engine.memory());
    engine.terminate();
  }));
  report.terminated = { generation: await generation, memory: await memory, pieces, crashes: crashes.length };
  report.afterTerminate = await freshWorker();

  // An uncaught error in the worker, part-way through a generation.
  pieces = 0;
  report.uncaught = await outcome(engine.generate(count, () => {
    if (++pieces === 2) current.postMessage({ kind: 'test:throw' });
  }));
  report.crashesAfterUncaught = [...crashes];
  report.afterUncaught = await freshWorker();

  // A wasm trap inside an engine call, with a generation queued behind it.
  current.postMessage({ kind: 'test:arm-trap' });
  const trapped = outcome(engine.tokenize('Hello'));
  const queued = outcome(engine.generate(count));
  report.trap = { call: await trapped, queued: await queued, crashes: [...crashes] };
  report.afterTrap = await freshWorker();
  report.workers = workers;
  engine.terminate();

  // A Worker passed in (the constructor's former argument) works, and is not replaced once stopped.
  const passed = new WorkerEngine(new Worker('/engine/worker.js', { type: 'module' }));
  report.passedWorker = { before: await outcome(passed.memory()) };
  passed.terminate();
  report.passedWorker.after = await outcome(passed.memory());
  return report;
};

/**
 * Aborting loads — a signal aborted before the call, one aborted just after it, abort() at
 * increasing delays — and abort() during a generation: each rejects with an AbortError and the
 * engine goes on working. Whether an aborted load kept the model loaded before it (the abort
 * landed before the load began) or left none (it landed during the wasm call) is reported.
 */
window.runLoadAbortTest = async (modelUrl) => {
  const bytes = new Uint8Array(await (await fetch(modelUrl)).arrayBuffer());
  const engine = new WorkerEngine();
  const report = {};
  /** What an aborted load left: the model before it ('kept') or none ('none'). */
  const left = async () => {
    const r = await outcome(engine.generate({ prompt: 'Hello', maxNewTokens: 2 }));
    return r.ok ? 'kept' : r.code;
  };
  report.preAborted = await outcome(engine.load(bytes, { signal: AbortSignal.abort() }));
  await engine.load(bytes);
  report.memoryLoaded = (await engine.memory()).wasmBytes;

  const controller = new AbortController();
  const signalled = outcome(engine.load(bytes, { signal: controller.signal }));
  controller.abort();
  report.signal = { ...(await signalled), left: await left() };

  report.delays = [];
  for (const ms of [0, 20, 40, 80, 160]) {
    if ((await left()) !== 'kept') await engine.load(bytes);
    const started = performance.now();
    const load = outcome(engine.load(bytes));
    const timer = setTimeout(() => engine.abort(), ms);
    const r = await load;
    clearTimeout(timer); // a load done before its abort: the abort must not reach the next call
    report.delays.push({ ms, ...r, tookMs: performance.now() - started, left: await left() });
  }
  report.memoryAfter = (await engine.memory()).wasmBytes;

  // abort() (no signal) during a generation.
  await engine.load(bytes);
  let pieces = 0;
  report.generation = { ...(await outcome(engine.generate({ prompt: '1, 2, 3, 4, 5,', maxNewTokens: 200 }, () => {
    if (++pieces === 3) engine.abort();
  }))), pieces };
  report.after = (await engine.generate({ messages: question, maxNewTokens: 4 })).timings.generatedTokens;
  engine.terminate();
  return report;
};
