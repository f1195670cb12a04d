// A bounded loopback load test against one service in workerd: 1,000 requests, 16 at a time,
// of every endpoint, some malformed, some cancelled mid-stream. No request may fail other than
// by the designed 4xx and 429 (with Retry-After); wasm memory stays flat after warm-up and the
// process's resident memory is reported; the service is still healthy at the end.
import test from 'node:test';
import assert from 'node:assert/strict';
import { ensureIndex, post, processMemory, startService, streamChat } from '../service/runtimes.mjs';

const REQUESTS = 1000;
const CONCURRENCY = 16;
const WARM_UP = 100;
const QUESTION = 'What is life cycle assessment?';

/** Request i of the mix, and the statuses it may get. */
function request(url, i) {
  const chat = { messages: [{ role: 'user', content: `Say a word about the number ${i % 7}.` }], max_tokens: 2 };
  switch (i % 10) {
    case 0: return [streamChat(url, { ...chat, max_tokens: 64 }, { stopAfter: 2 }).then((r) => ({ status: r.status, body: r.error })), [200, 429]];
    case 1: return [post(url, '/v1/chat/completions', chat), [200, 429]];
    case 2: return [post(url, '/v1/chat/completions', '{"messages": [{"role": "user", "content": '), [400]];
    case 3: return [post(url, '/v1/chat/completions', { ...chat, model: 'no-such-model' }), [404]];
    case 4: return [post(url, '/v1/answer', { question: QUESTION, max_tokens: 16 }), [200, 429]];
    case 5: return [post(url, '/v1/embeddings', { input: [`text ${i}`, QUESTION] }), [200]];
    case 6: return [post(url, '/v1/search', { query: `${QUESTION} ${i}`, top_k_final: 3 }), [200]];
    case 7: return [post(url, '/v1/search', { query: '   ' }), [400]];
    case 8: return [fetch(`${url}/health`).then(async (r) => ({ status: r.status, body: await r.json() })), [200]];
    default: return [fetch(`${url}/v1/nowhere`).then(async (r) => ({ status: r.status, headers: r.headers, body: await r.json() })), [404]];
  }
}

test('service under load: 1,000 mixed requests against workerd', { timeout: 900_000 }, async (t) => {
  ensureIndex();
  const service = await startService('workerd');
  const statuses = {};
  const failures = [];
  let retryAfterMissing = 0;
  let warm = null;
  const startedAt = performance.now();
  try {
    let next = 0;
    const worker = async () => {
      while (next < REQUESTS) {
        const i = next++;
        const [pending, allowed] = request(service.url, i);
        const { status, headers, body } = await pending.catch((e) => ({ status: `threw ${e.message}` }));
        statuses[status] = (statuses[status] ?? 0) + 1;
        if (!allowed.includes(status)) failures.push({ i, status, body: JSON.stringify(body)?.slice(0, 200) });
        if (status === 429 && headers && !headers.get('retry-after')) retryAfterMissing++;
        if (i === WARM_UP) warm = { memory: (await (await fetch(`${service.url}/health`)).json()).memory, process: processMemory(service.pid) };
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    const seconds = (performance.now() - startedAt) / 1000;
    const health = await (await fetch(`${service.url}/health`)).json();
    const end = processMemory(service.pid);
    const mib = (b) => (b / 2 ** 20).toFixed(1);
    t.diagnostic(`${REQUESTS} requests in ${seconds.toFixed(1)} s (${(REQUESTS / seconds).toFixed(1)}/s), statuses ${JSON.stringify(statuses)}`);
    t.diagnostic(`wasm memory after warm-up ${mib(warm.memory.wasmBytes)} MiB, at the end ${mib(health.memory.wasmBytes)} MiB; ` +
      `workerd resident ${mib(warm.process.rssBytes)} → ${mib(end.rssBytes)} MiB, peak ${mib(end.peakRssBytes)} MiB`);
    t.diagnostic(`queue ${JSON.stringify(health.queue)}; cache ${JSON.stringify(health.cache)}`);
    assert.deepEqual(failures, [], 'only the designed statuses');
    assert.equal(retryAfterMissing, 0, 'every 429 says when to retry');
    assert.equal(health.status, 'ok');
    assert.equal(health.memory.wasmBytes, warm.memory.wasmBytes, 'wasm memory is flat after warm-up');
    assert.ok(end.rssBytes - warm.process.rssBytes < 128 * 2 ** 20, 'resident memory does not climb');
    assert.ok(health.cache.hits > 0, 'repeated questions come from the cache');
    assert.equal(service.exited(), null, 'workerd is still running');
  } finally {
    await service.stop();
  }
});
