// The HTTP service: a standard `fetch(request)` handler over one Engine (model, embedder,
// reranker) and a document index, the same www/rag modules the page answers with. Runtime-free:
// it needs only Request, Response, ReadableStream and TextEncoder, which workerd, Deno and Node
// all have; each runtime's entry (workerd.js, deno.js, node.js) reads the files and serves it.
//
//   POST /v1/chat/completions  OpenAI-compatible, streamed (SSE `data:` lines, `[DONE]`) or not
//   POST /v1/embeddings        OpenAI-compatible
//   POST /v1/rerank            { query, documents, top_n } → { results: [{ index, relevance_score }] }
//   POST /v1/search            the page's two stages: { query, top_k_initial, top_k_final, mode }
//   POST /v1/answer            retrieval + cited answer, from the FAQ cache when a like question was answered
//   POST /v1/documents         { name, text }: add (or replace) a document in the index, in memory
//   GET  /health               model, build, timings, memory, index, cache and queue figures
//
// Errors are `{ error: { code, message } }` with the engine's codes (www/engine/errors.js) and an
// HTTP status per code; the service keeps serving after any of them.

import { edgeError } from '../engine/errors.js';
import { retrieve, DEFAULTS as RETRIEVAL_DEFAULTS } from '../rag/retrieve.js';
import { answerQuestion } from '../rag/answer.js';
import { indexDocuments } from '../rag/pipeline.js';
import { DOCUMENT_LIMITS, checkDocumentBytes, utf8Length } from '../rag/limits.js';
import { AnswerCache, cacheScope } from '../rag/answer-cache.js';
import { GenerationQueue } from './queue.js';

/** Limits of one service; each can be set when it starts (www/service/options.js). */
export const SERVICE_DEFAULTS = Object.freeze({
  /** Request bodies beyond this are refused (413) before they are parsed. */
  maxBodyBytes: 1 << 20,
  /** Generations waiting behind the running one; beyond them a request gets 429. */
  maxQueue: 8,
  /** The longest answer a request may ask for. */
  maxNewTokens: 512,
  /** Answer length when the request names none. */
  defaultNewTokens: 256,
  /** Texts per embeddings or rerank request. */
  maxInputs: 256,
});
// POST /v1/documents is also held to DOCUMENT_LIMITS (www/rag/limits.js), the page's: a text of at
// most maxDocumentBytes (reached only with a larger maxBodyBytes) and maxChunks passages in the
// index; `limits.documents` overrides them.

const HTTP_STATUS = {
  invalid_request: 400, empty_query: 400, invalid_settings: 400, context_overflow: 400, context_budget: 400,
  no_embedder: 400, no_vectors: 400, template_error: 400, tokenizer_error: 400, empty_document: 400, unsupported_document: 400,
  document_too_large: 413, too_many_pages: 413, too_many_chunks: 413,
  empty_corpus: 409, not_found: 404, model_not_found: 404, method_not_allowed: 405, payload_too_large: 413,
  queue_full: 429, busy: 429, not_loaded: 503,
};

/** What a question's answer depends on besides the question: part of the FAQ cache's scope. */
const ANSWER_SETTINGS = ['top_k_initial', 'top_k_final', 'mode', 'max_tokens', 'temperature', 'top_p', 'seed'];

/**
 * @param {object} o
 * @param {import('../engine/index.d.ts').EngineInterface} o.engine  model and embedder loaded
 * @param {string} o.modelId        the id requests may name in `model`
 * @param {object} o.modelInfo      what engine.load() resolved to
 * @param {(text: string) => number} o.countTokens  the model's tokenizer (loadTokenizer().count)
 * @param {import('../rag/index.js').DocumentIndex} o.index
 * @param {string} o.embedderId
 * @param {boolean} [o.hasReranker]
 * @param {AnswerCache} [o.cache]
 * @param {(json: object) => Promise<void>} [o.saveCache]  persist the cache where the runtime can
 * @param {string} o.runtime        'workerd' | 'deno' | 'node' (reported by /health)
 * @param {object} [o.startup]      how long starting took, by part (reported by /health)
 * @param {Partial<typeof SERVICE_DEFAULTS> & { documents?: Partial<typeof DOCUMENT_LIMITS> }} [o.limits]
 */
export function createService({
  engine, modelId, modelInfo, countTokens, index, embedderId, hasReranker = false, cache = new AnswerCache(),
  saveCache, runtime, startup = {}, limits = {},
}) {
  const { documents: documentOverrides, ...serviceOverrides } = limits;
  const limit = { ...SERVICE_DEFAULTS, ...serviceOverrides };
  const documentLimits = Object.freeze({ ...DOCUMENT_LIMITS, ...documentOverrides });
  const queue = new GenerationQueue({ maxWaiting: limit.maxQueue });
  const counts = { requests: 0, byStatus: {} };
  /** How the generations ended, by finish reason, and the last one: a client that left shows as 'aborted'. */
  const generations = { byFinish: {}, last: null };
  const record = async () => {
    const result = await engine.lastResult();
    if (!result) return; // the generation never started (a prompt that does not fit)
    const { finishReason, timings } = result;
    generations.byFinish[finishReason] = (generations.byFinish[finishReason] ?? 0) + 1;
    generations.last = { finishReason, generatedTokens: timings.generatedTokens };
  };
  const startedAt = Date.now();
  const embed = (texts) => engine.embed(texts);
  const rerank = hasReranker ? (query, candidates) => engine.rerank(query, candidates.map((c) => c.text)) : undefined;
  let cacheSaving = Promise.resolve();

  const routes = {
    'GET /health': health,
    'POST /v1/chat/completions': chatCompletions,
    'POST /v1/embeddings': embeddings,
    'POST /v1/rerank': rerankEndpoint,
    'POST /v1/search': search,
    'POST /v1/answer': answer,
    'POST /v1/documents': addDocument,
  };

  async function handle(request) {
    const { pathname } = new URL(request.url);
    const route = routes[`${request.method} ${pathname}`];
    if (!route) {
      const known = Object.keys(routes).some((r) => r.endsWith(` ${pathname}`));
      if (known) throw edgeError('method_not_allowed', `${request.method} is not allowed on ${pathname}`);
      throw edgeError('not_found', `no endpoint ${pathname}; the service has ${Object.keys(routes).join(', ')}`);
    }
    return route(request);
  }

  function checkModel(body) {
    if (body.model !== undefined && body.model !== modelId && body.model !== embedderId) {
      throw edgeError('model_not_found', `this service runs '${modelId}' (embeddings: '${embedderId}'), not '${body.model}'`);
    }
  }

  async function health() {
    return json({
      status: 'ok',
      runtime,
      uptimeS: (Date.now() - startedAt) / 1000,
      model: {
        id: modelId, name: modelInfo.name, architecture: modelInfo.architecture, quantization: modelInfo.quantization,
        contextLength: modelInfo.contextLength, parameters: modelInfo.parameterCount ?? null,
      },
      embedder: embedderId,
      reranker: hasReranker,
      build: modelInfo.runtime,
      timings: { startup, load: modelInfo.loadTimings },
      memory: await engine.memory(),
      index: { chunks: index.size, sources: index.sources, fingerprint: index.fingerprint() },
      cache: cache.stats(),
      queue: queue.stats(),
      requests: counts,
      generations,
      limits: { ...limit, documents: documentLimits },
      endpoints: Object.keys(routes),
    });
  }

  async function chatCompletions(request) {
    const body = await readJson(request, limit.maxBodyBytes);
    checkModel(body);
    const generation = { ...decoding(body, limit), messages: chatMessages(body.messages) };
    const id = `chatcmpl-${crypto.randomUUID()}`;
    const created = Math.floor(Date.now() / 1000);
    const usage = (timings) => ({ prompt_tokens: timings.promptTokens, completion_tokens: timings.generatedTokens, total_tokens: timings.promptTokens + timings.generatedTokens });
    const chunk = (delta, finishReason = null, extra = {}) => ({
      id, object: 'chat.completion.chunk', created, model: modelId, choices: [{ index: 0, delta, finish_reason: finishReason }], ...extra,
    });

    if (!body.stream) {
      const result = await queue.run(() => engine.generate({ ...generation, signal: request.signal }).finally(record), request.signal);
      return json({
        id, object: 'chat.completion', created, model: modelId,
        choices: [{ index: 0, message: { role: 'assistant', content: result.text }, finish_reason: openAiFinish(result.finishReason) }],
        usage: usage(result.timings),
        timings: result.timings,
      });
    }
    const events = await queue.stream(async function* (signal) {
      const pieces = engine.stream({ ...generation, signal })[Symbol.asyncIterator]();
      try {
        // The first piece before the first event: a prompt that does not fit is a 400, not a broken stream.
        let next = await pieces.next();
        yield chunk({ role: 'assistant', content: '' });
        for (; !next.done; next = await pieces.next()) yield chunk({ content: next.value });
      } finally {
        await pieces.return?.();
        await record();
      }
      const result = await engine.lastResult();
      yield chunk({}, openAiFinish(result.finishReason), { usage: usage(result.timings), timings: result.timings });
    }, request.signal);
    return sse(events);
  }

  async function embeddings(request) {
    const body = await readJson(request, limit.maxBodyBytes);
    checkModel(body);
    const input = typeof body.input === 'string' ? [body.input] : body.input;
    if (!Array.isArray(input) || input.length === 0 || input.length > limit.maxInputs || !input.every((t) => typeof t === 'string')) {
      throw edgeError('invalid_request', `input must be a string or 1..${limit.maxInputs} strings`);
    }
    const vectors = await engine.embed(input);
    return json({
      object: 'list', model: embedderId,
      data: vectors.map((v, i) => ({ object: 'embedding', index: i, embedding: Array.from(v) })),
    });
  }

  async function rerankEndpoint(request) {
    const body = await readJson(request, limit.maxBodyBytes);
    if (!hasReranker) throw edgeError('not_loaded', 'this service was started without a reranker (--reranker DIR)');
    const documents = Array.isArray(body.documents) ? body.documents.map((d) => (typeof d === 'string' ? d : d?.text)) : null;
    if (typeof body.query !== 'string' || !body.query.trim()) throw edgeError('invalid_request', 'query must be a non-empty string');
    if (!documents || documents.length === 0 || documents.length > limit.maxInputs || !documents.every((d) => typeof d === 'string')) {
      throw edgeError('invalid_request', `documents must be 1..${limit.maxInputs} strings (or { text } objects)`);
    }
    const scores = await engine.rerank(body.query, documents);
    const results = scores.map((score, i) => ({ index: i, relevance_score: score })).sort((a, b) => b.relevance_score - a.relevance_score);
    return json({ model: 'reranker', results: results.slice(0, positiveInt(body.top_n, 'top_n') ?? results.length) });
  }

  function retrievalSettings(body) {
    return {
      topKInitial: positiveInt(body.top_k_initial, 'top_k_initial') ?? RETRIEVAL_DEFAULTS.topKInitial,
      topKFinal: positiveInt(body.top_k_final, 'top_k_final') ?? RETRIEVAL_DEFAULTS.topKFinal,
      mode: body.mode ?? 'hybrid',
    };
  }

  async function search(request) {
    const body = await readJson(request, limit.maxBodyBytes);
    const result = await retrieve({ index, query: body.query, embed, rerank, ...retrievalSettings(body) });
    return json({ passages: result.passages, timings: result.timings });
  }

  async function answer(request) {
    const startedAt = performance.now();
    const body = await readJson(request, limit.maxBodyBytes);
    checkModel(body);
    const question = body.question;
    if (typeof question !== 'string' || !question.trim()) throw edgeError('invalid_request', 'question must be a non-empty string');
    const settings = Object.fromEntries(ANSWER_SETTINGS.map((k) => [k, body[k] ?? null]));
    const retrieval = retrievalSettings(body);
    const [questionVector] = await engine.embed([question]);
    cache.useScope(cacheScope({ corpus: index.fingerprint(), model: modelId, settings }));
    const hit = body.cache === false ? null : cache.lookup(questionVector, question);
    if (hit) {
      return json({ ...hit.answer, cached: true, cachedQuestion: hit.question, similarity: hit.similarity, totalMs: performance.now() - startedAt });
    }
    const turn = await queue.run(() => answerQuestion({
      question, index, embed, rerank, countTokens, contextLength: modelInfo.contextLength, retrieval,
      request: { ...decoding(body, limit), signal: request.signal }, generate: (req, onToken) => engine.generate(req, onToken),
      // The request names its own decoding (OpenAI's fields), not an answer preset: it is kept as asked.
      regenerate: null,
    }), request.signal);
    const result = {
      answer: turn.attributed ? turn.attributed.text : turn.text,
      text: turn.text,
      finishReason: turn.finishReason,
      sources: turn.sources.map(({ n, id, source, page, text, score }) => ({ n, id, source, page, score, text })),
      citations: turn.citations,
      attributed: turn.attributed?.added ?? [],
      timings: { generation: turn.timings, retrieval: turn.retrieval },
    };
    if (turn.finishReason === 'stop' || turn.finishReason === 'length') {
      cache.store(questionVector, { question, answer: result, ms: turn.totalMs });
      if (saveCache) cacheSaving = cacheSaving.then(() => saveCache(cache.toJSON())).catch(() => {});
    }
    return json({ ...result, cached: false, totalMs: performance.now() - startedAt });
  }

  async function addDocument(request) {
    const body = await readJson(request, limit.maxBodyBytes);
    if (typeof body.name !== 'string' || !body.name.trim() || typeof body.text !== 'string') {
      throw edgeError('invalid_request', 'a document is { name: string, text: string }, the name non-empty');
    }
    // Refused (413, 400) before anything is embedded; the index stays as it was.
    checkDocumentBytes({ name: body.name, bytes: utf8Length(body.text), pdf: false }, documentLimits);
    const text = body.text.trim();
    if (!text) throw edgeError('empty_document', `${body.name} has no text to index (it is empty or only whitespace)`);
    const replaced = index.sources.includes(body.name);
    await indexDocuments(index, [{ name: body.name, pages: [{ page: 1, text }] }], embed, { limits: documentLimits });
    // The corpus changed: answers cached for the old one no longer hold.
    return json({ name: body.name, replaced, chunks: index.size, sources: index.sources.length, fingerprint: index.fingerprint() });
  }

  return {
    /** The fetch handler: never rejects; every failure is a JSON error response. */
    async fetch(request) {
      counts.requests++;
      let response;
      try {
        response = await handle(request);
      } catch (e) {
        response = errorResponse(e);
      }
      counts.byStatus[response.status] = (counts.byStatus[response.status] ?? 0) + 1;
      return response;
    },
    queue,
    cache,
  };
}

/**
 * How much of a refused body is still read, and thrown away, before the refusal is sent. A
 * server that answers 413 while the client is still sending and then closes makes the client
 * fail to write (EPIPE, "fetch failed" in workerd) instead of reading the 413; reading the rest
 * first is nginx's lingering close. Beyond this the connection is dropped.
 */
const DISCARD_LIMIT_BYTES = 64 << 20;

/** Read and drop what is left of a refused body, up to DISCARD_LIMIT_BYTES; errors are moot. */
async function discardRest(reader) {
  let dropped = 0;
  try {
    while (dropped <= DISCARD_LIMIT_BYTES) {
      const { done, value } = await reader.read();
      if (done) return;
      dropped += value.length;
    }
    await reader.cancel();
  } catch { /* the client went away: nothing to answer */ }
}

/** The request's JSON body, refused beyond `maxBytes` (by Content-Length, then while reading). */
async function readJson(request, maxBytes) {
  const declared = Number(request.headers.get('content-length'));
  const reader = request.body?.getReader();
  if (declared > maxBytes) {
    if (reader) await discardRest(reader);
    throw edgeError('payload_too_large', `the body is ${declared} bytes; this service accepts at most ${maxBytes}`);
  }
  const chunks = [];
  let size = 0;
  if (reader) {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.length;
      if (size > maxBytes) {
        await discardRest(reader);
        throw edgeError('payload_too_large', `the body is over ${maxBytes} bytes, the most this service accepts`);
      }
      chunks.push(value);
    }
  }
  const bytes = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) { bytes.set(c, at); at += c.length; }
  let body;
  try {
    body = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (e) {
    throw edgeError('invalid_request', `the body is not JSON: ${e.message}`);
  }
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw edgeError('invalid_request', 'the body must be a JSON object');
  return body;
}

/** OpenAI's chat messages as the engine's: roles system/user/assistant, string content (or text parts). */
function chatMessages(messages) {
  if (!Array.isArray(messages) || messages.length === 0) throw edgeError('invalid_request', 'messages must be a non-empty array');
  return messages.map((m, i) => {
    const content = Array.isArray(m?.content)
      ? m.content.map((part) => (part?.type === 'text' && typeof part.text === 'string' ? part.text : invalidPart(i))).join('')
      : m?.content;
    if (!['system', 'user', 'assistant'].includes(m?.role) || typeof content !== 'string') {
      throw edgeError('invalid_request', `messages[${i}] must be { role: 'system' | 'user' | 'assistant', content: string }`);
    }
    return { role: m.role, content };
  });
}

function invalidPart(i) {
  throw edgeError('invalid_request', `messages[${i}].content: only text parts are supported`);
}

/** The engine's decoding fields from an OpenAI-style body (greedy unless `temperature` says otherwise). */
function decoding(body, limit) {
  const maxNewTokens = positiveInt(body.max_completion_tokens ?? body.max_tokens, 'max_tokens') ?? limit.defaultNewTokens;
  if (maxNewTokens > limit.maxNewTokens) throw edgeError('invalid_request', `max_tokens may be at most ${limit.maxNewTokens}, got ${maxNewTokens}`);
  const stop = body.stop == null ? undefined : [body.stop].flat();
  if (stop && !stop.every((s) => typeof s === 'string' && s.length > 0)) throw edgeError('invalid_request', 'stop must be a string or an array of strings');
  const request = { maxNewTokens };
  if (stop) request.stop = stop;
  for (const [from, to] of [['temperature', 'temperature'], ['top_p', 'topP'], ['seed', 'seed']]) {
    if (body[from] == null) continue;
    if (typeof body[from] !== 'number' || !Number.isFinite(body[from])) throw edgeError('invalid_request', `${from} must be a number`);
    request[to] = body[from];
  }
  return request;
}

function positiveInt(value, name) {
  if (value == null) return undefined;
  if (!Number.isInteger(value) || value < 1) throw edgeError('invalid_request', `${name} must be an integer ≥ 1, got ${JSON.stringify(value)}`);
  return value;
}

/** The engine's finish reasons in OpenAI's words: 'stop' and 'length' are the same; the guards end a turn. */
function openAiFinish(reason) {
  return reason === 'length' ? 'length' : 'stop';
}

function json(value, status = 200, headers = {}) {
  return new Response(JSON.stringify(value), { status, headers: { 'content-type': 'application/json', ...headers } });
}

function errorResponse(e) {
  if (e?.name === 'AbortError') return json({ error: { code: 'aborted', message: 'the client went away' } }, 499);
  const code = typeof e?.code === 'string' ? e.code : 'internal_error';
  const status = HTTP_STATUS[code] ?? 500;
  const headers = code === 'queue_full' && e.details?.retryAfterS ? { 'retry-after': String(e.details.retryAfterS) } : {};
  return json({ error: { code, message: e?.message ?? String(e) } }, status, headers);
}

/**
 * Server-sent events from an async iterator of JSON values, ending with `data: [DONE]` as
 * OpenAI's stream does. A client that goes away cancels the stream, which ends the iterator
 * (and so aborts the generation: see GenerationQueue.stream).
 */
function sse(events) {
  const encoder = new TextEncoder();
  const stream = new ReadableStream({
    async pull(controller) {
      try {
        const { done, value } = await events.next();
        if (done) {
          controller.enqueue(encoder.encode('data: [DONE]\n\n'));
          controller.close();
        } else {
          controller.enqueue(encoder.encode(`data: ${JSON.stringify(value)}\n\n`));
        }
      } catch (e) {
        // Headers are sent: the error goes in the stream, as OpenAI's does.
        const code = typeof e?.code === 'string' ? e.code : e?.name === 'AbortError' ? 'aborted' : 'internal_error';
        controller.enqueue(encoder.encode(`data: ${JSON.stringify({ error: { code, message: e?.message ?? String(e) } })}\n\n`));
        controller.close();
      }
    },
    async cancel() {
      await events.return?.();
    },
  });
  return new Response(stream, { headers: { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' } });
}
