// One generation at a time per engine, with a bounded queue behind it. The engine computes one
// answer at a time (its KV cache is one conversation); requests beyond the queue's places are
// refused at once with `queue_full` and a Retry-After estimate, so a burst cannot pile up
// unbounded memory or waiting time.

import { edgeError } from '../engine/errors.js';
import { abortError } from '../engine/scheduling.js';

export class GenerationQueue {
  #maxWaiting;
  #running = false;
  #waiting = []; // { grant, refuse }
  #served = 0;
  #rejected = 0;
  #abandoned = 0;
  #busyMs = 0;

  /** @param {{ maxWaiting: number }} options places behind the running generation */
  constructor({ maxWaiting }) {
    this.#maxWaiting = maxWaiting;
  }

  /** Run `task()` when its turn comes; the turn is given up if `signal` aborts while waiting. */
  async run(task, signal) {
    const release = await this.#acquire(signal);
    try {
      return await task();
    } finally {
      release();
    }
  }

  /**
   * An async iterator over `makeEvents(signal)`'s values that holds the turn until it ends. It
   * resolves once the turn is granted and the first value is computed, so that an error before
   * any output (a prompt that does not fit) is still an ordinary error response. Its return()
   * (a client that went away) aborts `signal`, which ends the generation.
   */
  async stream(makeEvents, signal) {
    const release = await this.#acquire(signal);
    const controller = new AbortController();
    const forward = () => controller.abort();
    signal?.addEventListener('abort', forward, { once: true });
    let ended = false;
    const end = () => {
      if (ended) return;
      ended = true;
      signal?.removeEventListener('abort', forward);
      release();
    };
    const events = makeEvents(controller.signal);
    const step = async () => {
      try {
        const r = await events.next();
        if (r.done) end();
        return r;
      } catch (e) {
        end();
        throw e;
      }
    };
    let first = await step();
    return {
      next() {
        if (first) {
          const r = first;
          first = null;
          return Promise.resolve(r);
        }
        return step();
      },
      async return() {
        controller.abort();
        try {
          await events.return();
        } finally {
          end();
        }
        return { done: true, value: undefined };
      },
    };
  }

  /** { running, waiting, maxWaiting, served, rejected, abandoned, meanMs } */
  stats() {
    return {
      running: this.#running, waiting: this.#waiting.length, maxWaiting: this.#maxWaiting,
      served: this.#served, rejected: this.#rejected, abandoned: this.#abandoned,
      meanMs: this.#served ? this.#busyMs / this.#served : null,
    };
  }

  /** Resolves to release() once this request's turn has come; rejects with queue_full when no place is left. */
  #acquire(signal) {
    if (signal?.aborted) return Promise.reject(abortError());
    if (!this.#running) {
      this.#running = true;
      return Promise.resolve(this.#releaser());
    }
    if (this.#waiting.length >= this.#maxWaiting) {
      this.#rejected++;
      const meanMs = this.#served ? this.#busyMs / this.#served : 1000;
      const retryAfterS = Math.max(1, Math.ceil((meanMs * (this.#waiting.length + 1)) / 1000));
      return Promise.reject(edgeError('queue_full', `a generation is running and ${this.#waiting.length} more are waiting, the most this service queues`, { details: { retryAfterS } }));
    }
    return new Promise((resolve, reject) => {
      const place = {
        grant: () => { signal?.removeEventListener('abort', leave); resolve(this.#releaser()); },
      };
      const leave = () => {
        const at = this.#waiting.indexOf(place);
        if (at >= 0) this.#waiting.splice(at, 1);
        this.#abandoned++;
        reject(abortError());
      };
      signal?.addEventListener('abort', leave, { once: true });
      this.#waiting.push(place);
    });
  }

  #releaser() {
    const startedAt = performance.now();
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#served++;
      this.#busyMs += performance.now() - startedAt;
      const next = this.#waiting.shift();
      if (next) next.grant();
      else this.#running = false;
    };
  }
}
