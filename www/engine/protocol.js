// The messages between a WorkerEngine (client.js) and the engine worker (worker.js), tagged by
// `kind`. Requests carry an `id`; the worker answers each with exactly one `result` or `error`
// of the same id (after any number of `token` messages for a generation), unless it reports
// `crashed`: then the requests still open get no answer. Every Engine method but the generation
// is one CALL of that method with its arguments, so the worker is a mechanical proxy and the two
// engines cannot drift apart.

import { EdgeLLMError } from './errors.js';

export const Kind = Object.freeze({
  // page → worker
  CALL: 'call', // { id, method, args }           → result: what engine[method](...args) resolved to
  GENERATE: 'generate', // { id, request }        → token* then result { text, finishReason, timings }
  ABORT: 'abort', // { target }                     (no reply; the generation or load ends with an AbortError)
  // worker → page
  TOKEN: 'token', // { id, text }
  RESULT: 'result', // { id, value }
  ERROR: 'error', // { id, error: { name, code, message } }
  // The wasm module trapped (a Rust panic, out of memory): the worker is unusable, and answers
  // none of the requests still open. The page ends it, as it does a worker that crashed.
  CRASHED: 'crashed', // { reason }
});

/** The Engine methods a CALL may name: all of its interface except stream/generate and abort. */
export const METHODS = Object.freeze([
  'init', 'load', 'info', 'lastResult', 'tokenize', 'logitsEach', 'renderChat', 'unload', 'memory',
  'loadEmbedder', 'embed', 'loadReranker', 'rerank',
]);

/**
 * An error as plain data, so that it survives postMessage with its name and code. An error
 * without a string code of its own (a TypeError, a DOMException's numeric code) is 'internal_error'.
 */
export function serializeError(e) {
  return { name: e?.name ?? 'Error', code: typeof e?.code === 'string' ? e.code : 'internal_error', message: e?.message ?? String(e) };
}

/** The page's copy of the worker's error: an EdgeLLMError with the same code (or an AbortError). */
export function deserializeError({ name, code, message }) {
  // DOMException has a read-only `code` of its own; an abort needs none.
  if (name === 'AbortError') return new DOMException(message, 'AbortError');
  // The code is kept as sent (the worker runs the same catalogue); a name other than
  // EdgeLLMError (a TypeError turned 'internal_error') is kept in details.
  return new EdgeLLMError(code ?? 'internal_error', message, name && name !== 'EdgeLLMError' ? { details: { name } } : undefined);
}
