// The built wasm package in Node: the same Engine a Web Worker or an edge runtime uses.
import test from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { openAsBlob } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { Engine } from '../../www/engine/index.js';
import { hasRelaxedSimd, wasm } from '../../www/engine/runtime.js';

const models = process.env.EDGELLM_MODELS ?? join(homedir(), '.cache', 'edgellm', 'models');
const smollm2Path = join(models, 'SmolLM2-135M-Instruct.Q4_1.gguf');
const smollm2 = await readFile(smollm2Path);
const question = [
  { role: 'system', content: 'You are a concise assistant. Answer in one sentence.' },
  { role: 'user', content: 'What is the capital of France?' },
];

test('loads SmolLM2 from bytes and answers Paris, streaming', async () => {
  const engine = new Engine();
  const info = await engine.load(smollm2);
  assert.equal(info.architecture, 'llama');
  assert.equal(info.tokenizer, 'byte_level_bpe');
  assert.equal(info.chatTemplate, 'gguf');
  // Node 20 has no relaxed SIMD (without its flag): the plain SIMD128 build.
  assert.deepEqual([info.runtime.build, info.runtime.simd], ['single', hasRelaxedSimd() ? 'relaxed' : 'simd128']);
  assert.ok(info.loadTimings.totalMs > 0 && info.loadTimings.weightsMs > 0);
  const pieces = [];
  const result = await engine.generate({ messages: question, maxNewTokens: 24 }, (p) => pieces.push(p));
  assert.match(result.text, /Paris/);
  assert.equal(pieces.join(''), result.text);
  assert.equal(result.finishReason, 'stop');
  const t = result.timings;
  assert.ok(t.promptTokens > 20 && t.generatedTokens > 3, JSON.stringify(t));
  assert.ok(t.prefillTokS > 0 && t.decodeTokS > 0 && t.timeToFirstTokenMs >= t.prefillMs, JSON.stringify(t));
  console.log(`# node: load ${info.loadTimings.totalMs.toFixed(0)} ms, prefill ${t.prefillTokS.toFixed(1)} tok/s, decode ${t.decodeTokS.toFixed(1)} tok/s, first token ${t.timeToFirstTokenMs.toFixed(0)} ms`);

  // The async iterator gives the same answer.
  let streamed = '';
  for await (const piece of engine.stream({ messages: question, maxNewTokens: 24 })) streamed += piece;
  assert.equal(streamed, result.text);
  engine.unload();
  assert.equal(engine.loaded, false);
});

test('an AbortSignal stops generation between tokens', async () => {
  const engine = new Engine();
  await engine.load(smollm2);
  const controller = new AbortController();
  let pieces = 0;
  await assert.rejects(
    engine.generate({ prompt: '1, 2, 3, 4, 5,', maxNewTokens: 200, signal: controller.signal }, () => {
      if (++pieces === 3) controller.abort();
    }),
    { name: 'AbortError' },
  );
  const aborted = await engine.lastResult();
  assert.equal(aborted.finishReason, 'aborted');
  assert.ok(aborted.timings.generatedTokens <= 5);
  // The engine is free for the next request.
  const again = await engine.generate({ prompt: 'Hello', maxNewTokens: 2 });
  assert.equal(again.timings.generatedTokens, 2);
  engine.unload();
});

test('bad input is an Error with a code, and the module stays usable', async () => {
  const engine = new Engine();
  const cases = [
    [new Uint8Array([0x50, 0x4b, 3, 4, 0, 0, 0, 0]), 'invalid_gguf', /not a GGUF file/],
    [smollm2.subarray(0, 100_000), 'invalid_gguf', /truncated/],
    [new TextEncoder().encode('GGUF\x01\x00\x00\x00'), 'invalid_gguf', /version 1/],
  ];
  for (const [bytes, code, message] of cases) {
    await assert.rejects(engine.load(bytes), (e) => e instanceof Error && e.name === 'EdgeLLMError' && e.code === code && message.test(e.message));
  }
  await assert.rejects(engine.load(smollm2, { maxMemoryBytes: 1 << 20 }), { code: 'too_large' });
  await assert.rejects(engine.load('not bytes'), { code: 'invalid_request' });
  await assert.rejects(engine.load(smollm2, { contextLength: 'big' }), { code: 'invalid_request' });

  await engine.load(smollm2, { contextLength: 64 });
  await assert.rejects(
    engine.generate({ prompt: 'word '.repeat(200), maxNewTokens: 8 }),
    (e) => e.code === 'context_overflow' && /context holds 64/.test(e.message),
  );
  await assert.rejects(engine.generate({ messages: [{ role: 'robot', content: 'x' }] }), { code: 'invalid_request' });
  await assert.rejects(engine.generate({ prompt: 'hi', topP: 0 }), { code: 'invalid_request' });
  const ok = await engine.generate({ prompt: 'word '.repeat(200), maxNewTokens: 4, overflow: 'truncate_start' });
  assert.equal(ok.timings.promptTokens, 60);
  engine.unload();
  await assert.rejects(engine.generate({ prompt: 'hi' }), { code: 'not_loaded' });
});

test('a Blob (a File) is read straight into wasm memory and answers as its bytes do', async () => {
  const engine = new Engine();
  await engine.load(smollm2);
  const fromBytes = await engine.generate({ messages: question, maxNewTokens: 12 });
  // openAsBlob: a File backed by the disk, as the page's file picker gives.
  const info = await engine.load(await openAsBlob(smollm2Path));
  assert.equal(info.architecture, 'llama');
  const fromBlob = await engine.generate({ messages: question, maxNewTokens: 12 });
  assert.deepEqual([fromBlob.text, fromBlob.finishReason], [fromBytes.text, fromBytes.finishReason]);
  assert.match(fromBlob.text, /Paris/);

  // A Response streams in as a Blob does where its length is known, and is read whole where not.
  const response = async (headers) => new Response((await openAsBlob(smollm2Path)).stream(), { headers });
  for (const headers of [{ 'Content-Length': String(smollm2.length) }, {}]) {
    await engine.load(await response(headers));
    const fromResponse = await engine.generate({ messages: question, maxNewTokens: 12 });
    assert.equal(fromResponse.text, fromBytes.text, JSON.stringify(headers));
  }
  // A body cut short of its Content-Length is refused, and says so.
  await assert.rejects(engine.load(new Response(smollm2.subarray(0, 1000), { headers: { 'Content-Length': String(smollm2.length) } })),
    (e) => e.code === 'invalid_request' && /gave 1000 of its \d+ bytes/.test(e.message));

  // A Blob that is no model, or only the start of one, is refused like such bytes.
  await assert.rejects(engine.load(new Blob(['no weights here'])), { code: 'invalid_gguf' });
  await assert.rejects(engine.load(new Blob([smollm2.subarray(0, 100_000)])), (e) => e.code === 'invalid_gguf' && /truncated/.test(e.message));
  // The wasm side of the stream checks its lengths itself.
  const { ModelBytes, WasmModel } = wasm();
  assert.throws(() => new ModelBytes(2 ** 40), { code: 'too_large' });
  assert.throws(() => new ModelBytes(-1), { code: 'invalid_request' });
  const target = new ModelBytes(8);
  target.write(new Uint8Array(5));
  assert.throws(() => target.write(new Uint8Array(4)), (e) => e.code === 'invalid_request' && /4 more bytes after 5 of a file said to have 8/.test(e.message));
  assert.throws(() => WasmModel.fromModelBytes(target, {}), (e) => e.code === 'invalid_request' && /gave 5 of its 8 bytes/.test(e.message));
  await engine.load(await openAsBlob(smollm2Path), { contextLength: 64 });
  assert.equal((await engine.generate({ prompt: 'Hi', maxNewTokens: 2 })).timings.generatedTokens, 2);
  engine.unload();
});

test("a tokenizer reads only the file's tables: the weights never enter its thread's wasm memory", () => {
  // A process of its own: wasm memory never shrinks, and this one has held whole models.
  const script = `
    import { loadTokenizer, memoryUsage } from ${JSON.stringify(new URL('../../www/engine/core.js', import.meta.url).href)};
    import { openAsBlob } from 'node:fs';
    const blob = await openAsBlob(${JSON.stringify(smollm2Path)});
    const tokenizer = await loadTokenizer(blob);
    // From a Response, only the start of its body is read (the rest is cancelled).
    const fromResponse = await loadTokenizer(new Response(blob.stream(), { headers: { 'Content-Length': String(blob.size) } }));
    const text = 'The capital of France is Paris.';
    console.log(JSON.stringify({ counts: [tokenizer.count(text), fromResponse.count(text)], wasmBytes: memoryUsage().wasmBytes }));`;
  const { counts, wasmBytes } = JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' }));
  assert.deepEqual(counts, [7, 7]);
  assert.ok(wasmBytes < smollm2.length / 2, `wasm memory ${wasmBytes} bytes for a tokenizer of a ${smollm2.length}-byte file`);
});

test('switching models frees the old one: wasm memory stops growing', async () => {
  const engine = new Engine();
  const sizes = [];
  for (let i = 0; i < 4; i++) {
    await engine.load(smollm2);
    await engine.generate({ prompt: 'Hi', maxNewTokens: 2 });
    sizes.push(Engine.memory().wasmBytes);
  }
  engine.unload();
  assert.equal(sizes[3], sizes[1], `wasm memory after each load: ${sizes}`);
});

test('an ONNX (WebGPU) load in a runtime without WebGPU says so, and the CPU path still answers', async () => {
  const { webgpuStatus } = await import('../../www/engine/index.js');
  const status = await webgpuStatus();
  assert.equal(status.available, false);
  assert.match(status.reason, /WebGPU/);
  const engine = new Engine();
  await assert.rejects(engine.load(smollm2, { backend: 'webgpu' }), (e) => e.name === 'EdgeLLMError' && e.code === 'webgpu_unavailable');
  await engine.load(smollm2);
  const { text } = await engine.generate({ messages: question, maxNewTokens: 12 });
  assert.match(text, /Paris/);
  engine.unload();
});

test('leaving a stream early aborts its generation; the engine serves the next one', async () => {
  const engine = new Engine();
  await engine.load(smollm2);
  let pieces = 0;
  for await (const _ of engine.stream({ prompt: '1, 2, 3, 4, 5,', maxNewTokens: 200 })) if (++pieces === 2) break;
  const left = await engine.lastResult();
  assert.equal(left.finishReason, 'aborted');
  assert.ok(left.timings.generatedTokens <= 3);
  const next = await engine.generate({ prompt: 'Hello', maxNewTokens: 2 });
  assert.equal(next.timings.generatedTokens, 2);
  await engine.unload();
});
