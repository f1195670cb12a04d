// Two-stage retrieval over a DocumentIndex.
//  Stage 1 (recall): the top `topKInitial` chunks by BM25 and the top `topKInitial` by embedding
//    similarity, fused by weighted reciprocal rank fusion (RRF) into one list of `topKInitial`
//    candidates. RRF uses only ranks, so BM25 scores and cosines need no calibration to mix.
//  Stage 2 (precision): the `topKFinal` passages the model will read. Without a reranker they are
//    the head of the fused list; with one (a cross-encoder, say) its scores reorder the candidates.
// Embedding is injected (`embed`), so this module never imports the engine and runs anywhere.

import { edgeError } from '../engine/errors.js'; // the error catalogue: a leaf module, no engine runtime

export const DEFAULTS = Object.freeze({
  topKInitial: 30,
  topKFinal: 3,
  rrfK: 60, // the constant of Cormack, Clarke & Büttcher (2009): damps the weight of the very top ranks
  weights: Object.freeze({ lexical: 1, dense: 1 }),
});

export const MODES = Object.freeze(['hybrid', 'lexical', 'dense']);

/**
 * Retrieve the passages that answer `query`.
 * @param {object} options
 * @param {import('./index.js').DocumentIndex} options.index
 * @param {string} options.query
 * @param {(texts: string[]) => Promise<Float32Array[]>} [options.embed] needed for 'hybrid' and 'dense'
 * @param {number} [options.topKInitial] candidates per retriever and after fusion (stage 1)
 * @param {number} [options.topKFinal] passages returned (stage 2)
 * @param {{ lexical?: number, dense?: number }} [options.weights] RRF weight of each retriever
 * @param {number} [options.rrfK]
 * @param {(query: string, candidates: object[]) => Promise<number[]>|number[]} [options.rerank] one score per candidate, higher is better
 * @param {'hybrid'|'lexical'|'dense'} [options.mode]
 */
export async function retrieve({
  index, query, embed,
  topKInitial = DEFAULTS.topKInitial, topKFinal = DEFAULTS.topKFinal,
  weights = DEFAULTS.weights, rrfK = DEFAULTS.rrfK, rerank, mode = 'hybrid',
}) {
  const startedAt = performance.now();
  validateSettings({ topKInitial, topKFinal, weights, rrfK, mode });
  if (typeof query !== 'string' || query.trim() === '') throw edgeError('empty_query', 'The question is empty.');
  if (!index || index.size === 0) throw edgeError('empty_corpus', 'No documents are indexed yet: add a document before asking.');
  const useLexical = mode !== 'dense';
  const useDense = mode !== 'lexical';
  if (useDense && typeof embed !== 'function') throw edgeError('no_embedder', `Mode "${mode}" needs an embed(texts) function; use mode "lexical" without one.`);
  if (useDense && index.vectorCount === 0) throw edgeError('no_vectors', `Mode "${mode}" needs chunk embeddings, and none are indexed; use mode "lexical" or index with vectors.`);
  const { lexical: lexicalWeight = DEFAULTS.weights.lexical, dense: denseWeight = DEFAULTS.weights.dense } = weights;

  const timings = { lexicalMs: 0, embedMs: 0, denseMs: 0, fuseMs: 0, rerankMs: 0, totalMs: 0 };
  let lexical = [];
  let dense = [];
  let mark = performance.now();
  if (useLexical) {
    lexical = index.searchLexical(query, topKInitial);
    timings.lexicalMs = performance.now() - mark;
  }
  if (useDense) {
    mark = performance.now();
    const [queryVector] = await embed([query]);
    timings.embedMs = performance.now() - mark;
    mark = performance.now();
    dense = index.searchDense(queryVector, topKInitial);
    timings.denseMs = performance.now() - mark;
  }

  mark = performance.now();
  // With one retriever the fused order is that retriever's order; keep its own score then, since
  // a BM25 score or a cosine says more than 1/(k + rank).
  const fused = mode === 'hybrid'
    ? reciprocalRankFusion([{ results: lexical, weight: lexicalWeight }, { results: dense, weight: denseWeight }], rrfK)
    : (useLexical ? lexical : dense);
  const candidates = describeCandidates(fused.slice(0, topKInitial), index, lexical, dense);
  timings.fuseMs = performance.now() - mark;

  let finalOrder = candidates;
  if (rerank) {
    mark = performance.now();
    finalOrder = await rerankCandidates(rerank, query, candidates);
    timings.rerankMs = performance.now() - mark;
  }
  const passages = finalOrder.slice(0, topKFinal).map(({ id, text, source, page, score, rerankScore }, i) => ({
    id, text, source, page, score: rerankScore ?? score, rank: i + 1,
  }));
  timings.totalMs = performance.now() - startedAt;
  return { passages, candidates, timings };
}

/**
 * Weighted reciprocal rank fusion: score(d) = Σ weight_r / (k + rank_r(d)), ranks from 1.
 * Ties keep first-seen order (the first list's order, then the next's), so results are stable.
 * @param {{ results: { id: string }[], weight?: number }[]} rankings
 * @returns {{ id: string, score: number }[]} best first
 */
export function reciprocalRankFusion(rankings, k = DEFAULTS.rrfK) {
  const scores = new Map();
  for (const { results, weight = 1 } of rankings) {
    results.forEach(({ id }, i) => scores.set(id, (scores.get(id) ?? 0) + weight / (k + i + 1)));
  }
  return [...scores].map(([id, score]) => ({ id, score })).sort((a, b) => b.score - a.score);
}

/** Throw an EdgeLLMError ('invalid_settings') that names the bad setting. */
export function validateSettings({ topKInitial = DEFAULTS.topKInitial, topKFinal = DEFAULTS.topKFinal, weights = DEFAULTS.weights, rrfK = DEFAULTS.rrfK, mode = 'hybrid' } = {}) {
  const invalid = (message) => edgeError('invalid_settings', message);
  if (!Number.isInteger(topKInitial) || topKInitial < 1) throw invalid(`topKInitial must be an integer ≥ 1, got ${topKInitial}`);
  if (!Number.isInteger(topKFinal) || topKFinal < 1) throw invalid(`topKFinal must be an integer ≥ 1, got ${topKFinal}`);
  if (topKFinal > topKInitial) throw invalid(`topKFinal (${topKFinal}) cannot be larger than topKInitial (${topKInitial}): stage 2 picks from stage 1's candidates`);
  if (!MODES.includes(mode)) throw invalid(`mode must be one of ${MODES.join(', ')}, got ${mode}`);
  if (!(rrfK >= 0 && Number.isFinite(rrfK))) throw invalid(`rrfK must be a finite number ≥ 0, got ${rrfK}`);
  if (weights === null || typeof weights !== 'object') throw invalid('weights must be an object like { lexical: 1, dense: 1 }');
  for (const [name, weight] of Object.entries(weights)) {
    if (name !== 'lexical' && name !== 'dense') throw invalid(`unknown weight "${name}" (expected lexical, dense)`);
    if (!(weight >= 0 && Number.isFinite(weight))) throw invalid(`weights.${name} must be a finite number ≥ 0, got ${weight}`);
  }
}

/** Stage-1 candidates with their chunk and each retriever's rank and score (null where absent). */
function describeCandidates(fused, index, lexical, dense) {
  const lexicalRank = new Map(lexical.map(({ id, score }, i) => [id, { rank: i + 1, score }]));
  const denseRank = new Map(dense.map(({ id, score }, i) => [id, { rank: i + 1, score }]));
  return fused.map(({ id, score }) => ({
    ...index.get(id),
    score,
    lexicalRank: lexicalRank.get(id)?.rank ?? null,
    lexicalScore: lexicalRank.get(id)?.score ?? null,
    denseRank: denseRank.get(id)?.rank ?? null,
    denseScore: denseRank.get(id)?.score ?? null,
  }));
}

/** Reorder candidates by the reranker's scores; ties keep the fused order. */
async function rerankCandidates(rerank, query, candidates) {
  const scores = await rerank(query, candidates);
  if (!Array.isArray(scores) || scores.length !== candidates.length || !scores.every(Number.isFinite)) {
    throw edgeError('invalid_rerank', `rerank must return one finite score per candidate (${candidates.length}), got ${Array.isArray(scores) ? `${scores.length} values` : typeof scores}`);
  }
  return candidates.map((candidate, i) => ({ ...candidate, rerankScore: scores[i] })).sort((a, b) => b.rerankScore - a.rerankScore);
}
