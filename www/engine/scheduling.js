// Cooperative scheduling for the engine's long loops (token by token, batch by batch): let
// other tasks run between two steps, and the error an abort ends a loop with.

/** Let other tasks (an abort message, a UI event, another request) run between two steps. */
export function yieldToEventLoop() {
  if (typeof setImmediate === 'function') return new Promise((r) => setImmediate(r));
  // A MessageChannel task runs after tasks already queued (an abort message) and, unlike a
  // nested setTimeout, is not clamped to 4 ms. scheduler.yield() would not do: its
  // continuation is prioritised over the queued message.
  if (typeof MessageChannel === 'function') {
    return new Promise((r) => {
      const { port1, port2 } = new MessageChannel();
      port1.onmessage = () => { port1.close(); r(); };
      port2.postMessage(null);
    });
  }
  return new Promise((r) => setTimeout(r, 0));
}

/**
 * What an aborted generation (or download: `what` names it) rejects with: a DOMException named
 * 'AbortError', as fetch does.
 */
export function abortError(what = 'the generation') {
  return new DOMException(`${what} was aborted`, 'AbortError');
}
