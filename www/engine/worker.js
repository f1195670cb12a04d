// The engine's home in a Web Worker: owns one Engine and runs what protocol.js messages ask of
// it. Start it with `new Worker(new URL('./worker.js', import.meta.url), { type: 'module' })`,
// or let WorkerEngine (client.js) do it.

import { Engine } from './core.js';
import { Kind, METHODS, serializeError } from './protocol.js';
import { edgeError } from './errors.js';

const engine = new Engine();
const generations = new Map(); // id → AbortController

const post = (msg) => self.postMessage(msg);

async function handle(msg) {
  if (msg.kind === Kind.GENERATE) {
    const controller = new AbortController();
    generations.set(msg.id, controller);
    try {
      for await (const text of engine.stream({ ...msg.request, signal: controller.signal })) {
        post({ kind: Kind.TOKEN, id: msg.id, text });
      }
      return engine.lastResult();
    } finally {
      generations.delete(msg.id);
    }
  }
  if (msg.kind === Kind.CALL && METHODS.includes(msg.method)) return engine[msg.method](...(msg.args ?? []));
  throw edgeError('invalid_request', `unknown message: kind '${msg.kind}'${msg.method ? `, method '${msg.method}'` : ''}`);
}

self.onmessage = async ({ data: msg }) => {
  if (msg.kind === Kind.ABORT) {
    generations.get(msg.target)?.abort();
    return;
  }
  try {
    post({ kind: Kind.RESULT, id: msg.id, value: await handle(msg) });
  } catch (e) {
    post({ kind: Kind.ERROR, id: msg.id, error: serializeError(e) });
  }
};
