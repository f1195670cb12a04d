// Aborting a load on the Engine itself (Node, the same thread): before it begins the loaded model
// stays; once its wasm call has run the new model is freed and none is loaded. Loads asked for
// together run one after the other. (In a Web Worker: tests/browser/crash.test.mjs.)
import test from 'node:test';
import assert from 'node:assert/strict';
import { openAsBlob } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { Engine } from '../../www/engine/index.js';

const models = process.env.EDGELLM_MODELS ?? join(homedir(), '.cache', 'edgellm', 'models');
const smollm2Path = join(models, 'SmolLM2-135M-Instruct.Q4_1.gguf');
const smollm2 = await readFile(smollm2Path);
const hello = { prompt: 'Hello', maxNewTokens: 2 };
// An AbortError is a DOMException, whose `code` is its legacy number: only EdgeLLMErrors' are kept.
const rejection = (promise) => promise.then(() => null, (e) => ({ name: e.name, message: e.message, ...(typeof e.code === 'string' ? { code: e.code } : {}) }));

test('an aborted load rejects with an AbortError; the engine stays usable', async () => {
  const engine = new Engine();
  assert.equal((await rejection(engine.load(smollm2, { signal: AbortSignal.abort() }))).name, 'AbortError');
  await engine.load(smollm2);

  // abort() at once reaches the load before it begins: the model loaded before stays.
  const early = rejection(engine.load(smollm2));
  engine.abort();
  assert.deepEqual(await early, { name: 'AbortError', message: 'the load was aborted' });
  assert.equal((await engine.generate(hello)).timings.generatedTokens, 2);

  // An abort two turns of the event loop later lands after the (uninterruptible) wasm call: the
  // old model was freed before it, the new one after it, and nothing is loaded.
  const controller = new AbortController();
  const late = rejection(engine.load(smollm2, { signal: controller.signal }));
  setImmediate(() => setImmediate(() => controller.abort()));
  assert.equal((await late).name, 'AbortError');
  assert.equal((await rejection(engine.generate(hello))).code, 'not_loaded');

  // Two loads asked for together run in order; the second's model is the one loaded.
  const [first, second] = await Promise.all([engine.load(smollm2), engine.load(smollm2, { contextLength: 512 })]);
  assert.notEqual(first.contextLength, 512);
  assert.equal(second.contextLength, 512);
  assert.equal((await engine.info()).contextLength, 512);
  assert.equal((await engine.generate(hello)).timings.generatedTokens, 2);
  engine.unload();
});

test('a load read from a Blob or a Response stops at the next chunk when aborted; its bytes are freed', async () => {
  const engine = new Engine();
  await engine.load(smollm2);
  const before = Engine.memory().wasmBytes;
  for (let i = 0; i < 3; i++) {
    const controller = new AbortController();
    const load = rejection(engine.load(await openAsBlob(smollm2Path), { signal: controller.signal }));
    // A few turns of the event loop in: the file is being read, chunk by chunk.
    setTimeout(() => controller.abort(), 5);
    assert.equal((await load).name, 'AbortError');
    assert.equal((await rejection(engine.generate(hello))).code, 'not_loaded');
  }
  // Where the abort lands is certain with a body of 1 MiB chunks that aborts as its third is asked
  // for: the read stops at the next chunk, never taking the rest of the file.
  const controller = new AbortController();
  const chunk = 2 ** 20;
  let pulls = 0;
  const body = new ReadableStream({
    pull(stream) {
      if (++pulls === 3) controller.abort();
      const at = (pulls - 1) * chunk;
      if (at >= smollm2.length) stream.close();
      else stream.enqueue(smollm2.slice(at, at + chunk));
    },
  }, { highWaterMark: 0 });
  const response = new Response(body, { headers: { 'Content-Length': String(smollm2.length) } });
  assert.equal((await rejection(engine.load(response, { signal: controller.signal }))).name, 'AbortError');
  assert.ok(pulls <= 4, `${pulls} chunks of ${Math.ceil(smollm2.length / chunk)} read after the abort`);
  // Each aborted read freed what it had written: four of them took no more memory than one load.
  assert.equal(Engine.memory().wasmBytes, before);
  await engine.load(await openAsBlob(smollm2Path));
  assert.equal((await engine.generate(hello)).timings.generatedTokens, 2);
  engine.unload();
});
