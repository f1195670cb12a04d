// The engine's home in a Web Worker: owns one Engine and runs what protocol.js messages ask of
// it. Start it with `new Worker(new URL('./worker.js', import.meta.url), { type: 'module' })`,
// or let WorkerEngine (client.js) do it.

import { Engine } from './core.js';
import { Kind, METHODS, serializeError } from './protocol.js';
import { edgeError } from './errors.js';

const engine = new Engine();
const controllers = new Map(); // id → AbortController of a generation or load in progress
let trapped = null; // why the wasm module is unusable, once it trapped

const post = (msg) => self.postMessage(msg);

async function handle(msg, signal) {
  if (msg.kind === Kind.GENERATE) {
    for await (const text of engine.stream({ ...msg.request, signal })) {
      post({ kind: Kind.TOKEN, id: msg.id, text });
    }
    return engine.lastResult();
  }
  if (msg.kind === Kind.CALL && msg.method === 'load') {
    const [bytes, options] = msg.args ?? [];
    return engine.load(bytes, { ...options, signal });
  }
  if (msg.kind === Kind.CALL && METHODS.includes(msg.method)) return engine[msg.method](...(msg.args ?? []));
  throw edgeError('invalid_request', `unknown message: kind '${msg.kind}'${msg.method ? `, method '${msg.method}'` : ''}`);
}

self.onmessage = async ({ data: msg }) => {
  if (msg.kind === Kind.ABORT) {
    controllers.get(msg.target)?.abort();
    return;
  }
  if (trapped) {
    post({ kind: Kind.ERROR, id: msg.id, error: serializeError(edgeError('worker_crashed', trapped)) });
    return;
  }
  const controller = new AbortController();
  controllers.set(msg.id, controller);
  try {
    post({ kind: Kind.RESULT, id: msg.id, value: await handle(msg, controller.signal) });
  } catch (e) {
    if (e instanceof WebAssembly.RuntimeError) {
      // A trap: on wasm32 a Rust panic aborts (panic = "abort"), and so does an allocation that
      // wasm memory cannot grow for. The trap unwinds no Rust code, so the module's heap and
      // borrows are left mid-update: nothing may run in it again, here or in any model it holds.
      // The page is told to end this worker and start a fresh one; until it does, every request
      // is refused.
      trapped = `its wasm module trapped (${e.message}): a Rust panic, or out of memory`;
      post({ kind: Kind.CRASHED, reason: trapped });
      return;
    }
    post({ kind: Kind.ERROR, id: msg.id, error: serializeError(e) });
  } finally {
    controllers.delete(msg.id);
  }
};
