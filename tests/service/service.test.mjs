// The HTTP service answering on a loopback port in each runtime it ships for: workerd (the
// open-source Cloudflare Workers runtime, wasm imported as a module, no threads), Deno and Node.
// The same requests, real model (SmolLM2-135M), real embedder, the sample corpus's index.
import test from 'node:test';
import assert from 'node:assert/strict';
import { ensureIndex, post, startService, streamChat } from './runtimes.mjs';

const QUESTION = 'What is life cycle assessment?';
const PARAPHRASE = 'What does life cycle assessment mean?';
const CHAT = { messages: [{ role: 'user', content: 'Name a colour.' }], max_tokens: 8 };

ensureIndex();

for (const runtime of ['workerd', 'deno', 'node']) {
  test(`service in ${runtime}: chat, embeddings, search, cited answers, the FAQ cache, bad requests`, { timeout: 600_000 }, async () => {
    const service = await startService(runtime);
    const { url } = service;
    try {
      assert.equal(service.health.runtime, runtime);
      assert.equal(service.health.model.id, 'smollm2-135m');
      assert.equal(service.health.build.build, 'single');
      assert.ok(service.health.index.chunks > 10, 'the sample corpus is indexed');

      // Streamed, the way the OpenAI client reads it.
      const streamed = await streamChat(url, CHAT);
      assert.equal(streamed.status, 200);
      assert.ok(streamed.done, 'the stream ends with [DONE]');
      assert.equal(streamed.chunks[0].object, 'chat.completion.chunk');
      assert.equal(streamed.chunks[0].choices[0].delta.role, 'assistant');
      assert.ok(streamed.text.trim().length > 0, `streamed text: ${JSON.stringify(streamed.text)}`);
      assert.ok(['stop', 'length'].includes(streamed.chunks.at(-1).choices[0].finish_reason));

      const whole = await post(url, '/v1/chat/completions', CHAT);
      assert.equal(whole.status, 200);
      assert.equal(whole.body.object, 'chat.completion');
      assert.equal(whole.body.choices[0].message.content, streamed.text, 'greedy: the same text streamed or not');
      assert.equal(whole.body.usage.completion_tokens, whole.body.timings.generatedTokens);

      const embedded = await post(url, '/v1/embeddings', { input: [QUESTION, 'bicycle repair'] });
      assert.equal(embedded.status, 200);
      assert.equal(embedded.body.data.length, 2);
      const [a, b] = embedded.body.data.map((d) => d.embedding);
      assert.equal(a.length, 384);
      assert.ok(Math.abs(Math.hypot(...a) - 1) < 1e-3, 'unit vectors');
      assert.ok(a.reduce((s, x, i) => s + x * b[i], 0) < 0.5, 'unrelated texts are far apart');

      const found = await post(url, '/v1/search', { query: QUESTION, top_k_initial: 30, top_k_final: 3 });
      assert.equal(found.status, 200);
      assert.equal(found.body.passages.length, 3);
      assert.equal(found.body.passages[0].source, 'life-cycle-assessment.md');

      // A cited answer, then the same question in other words from the cache.
      const first = await post(url, '/v1/answer', { question: QUESTION, max_tokens: 48 });
      assert.equal(first.status, 200, JSON.stringify(first.body));
      assert.equal(first.body.cached, false);
      assert.ok(first.body.answer.length > 0);
      assert.ok(first.body.sources.some((s) => s.source === 'life-cycle-assessment.md'));
      assert.match(first.body.answer, /\[\d\]/, 'the answer cites its sources');
      const again = await post(url, '/v1/answer', { question: PARAPHRASE, max_tokens: 48 });
      assert.equal(again.body.cached, true, `a paraphrase hits the cache: ${JSON.stringify(again.body).slice(0, 300)}`);
      assert.equal(again.body.answer, first.body.answer);
      assert.deepEqual(again.body.sources, first.body.sources);
      const other = await post(url, '/v1/answer', { question: QUESTION, max_tokens: 32 });
      assert.equal(other.body.cached, false, 'other settings, another cache scope');

      // The corpus changes: the cached answer no longer holds.
      const added = await post(url, '/v1/documents', { name: 'bicycles.md', text: 'A bicycle has two wheels. Chains need oil every few hundred kilometres.' });
      assert.equal(added.status, 200);
      const afterChange = await post(url, '/v1/answer', { question: QUESTION, max_tokens: 48 });
      assert.equal(afterChange.body.cached, false, 'a changed corpus misses');

      // Bad requests: a JSON error with the engine's code, and the service keeps serving.
      const bad = [
        [await post(url, '/v1/chat/completions', '{"messages": ['), 400, 'invalid_request'],
        [await post(url, '/v1/chat/completions', { ...CHAT, model: 'gpt-4o' }), 404, 'model_not_found'],
        [await post(url, '/v1/chat/completions', { messages: [{ role: 'user', content: 'word '.repeat(6000) }], max_tokens: 4 }), 400, 'context_overflow'],
        [await post(url, '/v1/embeddings', { input: 'x'.repeat(2 << 20) }), 413, 'payload_too_large'],
        [await post(url, '/v1/documents', { name: 'blank.md', text: ' \n ' }), 400, 'empty_document'],
        [await post(url, '/v1/search', { query: '' }), 400, 'empty_query'],
        [await post(url, '/v1/search', { query: QUESTION, top_k_final: 40 }), 400, 'invalid_settings'],
        [await post(url, '/v1/nothing', {}), 404, 'not_found'],
        [await post(url, '/v1/rerank', { query: 'q', documents: ['d'] }), 503, 'not_loaded'],
      ];
      for (const [{ status, body }, wantStatus, wantCode] of bad) {
        assert.equal(body.error?.code, wantCode, JSON.stringify(body));
        assert.equal(status, wantStatus, wantCode);
      }

      // A client that leaves mid-stream: its generation stops, the next request is served at once.
      const left = await streamChat(url, { messages: [{ role: 'user', content: 'Count from one to a hundred.' }], max_tokens: 400 }, { stopAfter: 3 });
      assert.equal(left.done, false);
      const next = await post(url, '/v1/chat/completions', CHAT);
      assert.equal(next.status, 200, JSON.stringify(next.body));
      const { generations } = await (await fetch(`${url}/health`)).json();
      assert.equal(generations.byFinish.aborted, 1, JSON.stringify(generations));

      const health = await (await fetch(`${url}/health`)).json();
      assert.equal(health.cache.hits, 1);
      assert.equal(health.generations.last.finishReason, 'length');
      assert.ok(health.cache.timeSavedMs > 0);
      assert.ok(health.memory.wasmBytes > 100 * 2 ** 20);
    } finally {
      await service.stop();
    }
  });
}
