// Scoring the FAQ cache's threshold on eval/faq/pairs.json: shared by scripts/eval-faq.mjs (the
// report) and tests/js/answer-cache.test.mjs (the regression check), so both judge the same way.
// A pair is a hit when AnswerCache.lookup, having stored one question, serves it for the other:
// the key terms agree and the cosine similarity of the embeddings reaches the threshold. Beside
// it, the embedding alone (similarity ≥ threshold), to show what the key terms add. A hit on a
// `same: false` pair is a false hit.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { dot } from '../../www/rag/vectors.js';
import { AnswerCache } from '../../www/rag/answer-cache.js';

export const PAIRS_FILE = join(dirname(fileURLToPath(import.meta.url)), 'pairs.json');
/** Fewer pairs of a class than this and its rate says too little. */
const MIN_PER_CLASS = 60;

/** The pairs, checked: two non-empty, different questions and a boolean `same` each, no pair twice. */
export function loadPairs(file = PAIRS_FILE) {
  const { pairs } = JSON.parse(readFileSync(file, 'utf8'));
  const seen = new Set();
  pairs.forEach((p, i) => {
    if (typeof p.a !== 'string' || !p.a.trim() || typeof p.b !== 'string' || !p.b.trim()) throw new Error(`${file}: pair ${i} needs two questions a and b`);
    if (typeof p.same !== 'boolean') throw new Error(`${file}: pair ${i} needs same: true or false`);
    if (p.a === p.b) throw new Error(`${file}: pair ${i} asks the same text twice`);
    const key = [p.a, p.b].sort().join('\n');
    if (seen.has(key)) throw new Error(`${file}: pair ${i} (${p.a} / ${p.b}) is listed twice`);
    seen.add(key);
  });
  for (const same of [true, false]) {
    const n = pairs.filter((p) => p.same === same).length;
    if (n < MIN_PER_CLASS) throw new Error(`${file}: ${n} pairs with same: ${same}, at least ${MIN_PER_CLASS} wanted`);
  }
  return pairs;
}

/**
 * Each pair with the cosine similarity of its questions (`embed` → unit Float32Arrays) and
 * `cached`: the similarity a cache holding `a` reports when asked `b`, or null where it never
 * serves `a` for `b` (their key terms differ).
 */
export async function scorePairs(pairs, embed) {
  const texts = [...new Set(pairs.flatMap((p) => [p.a, p.b]))];
  const vectors = new Map((await embed(texts)).map((v, i) => [texts[i], v]));
  return pairs.map((p) => {
    // The lowest threshold the cache accepts, so that lookup reports every similarity it would weigh.
    const cache = new AnswerCache({ threshold: Number.MIN_VALUE });
    cache.store(vectors.get(p.a), { question: p.a, answer: null, ms: 0 });
    const cached = cache.lookup(vectors.get(p.b), p.b)?.similarity ?? null;
    return { ...p, similarity: dot(vectors.get(p.a), vectors.get(p.b)), cached };
  });
}

/**
 * Paraphrase hit rate and false hits at `threshold`: of the cache (key terms and embedding), or
 * with `{ embeddingOnly: true }` of the cosine similarity alone.
 */
export function atThreshold(scored, threshold, { embeddingOnly = false } = {}) {
  const hit = (p) => (embeddingOnly ? p.similarity : p.cached ?? -Infinity) >= threshold;
  const paraphrases = scored.filter((p) => p.same);
  const negatives = scored.filter((p) => !p.same);
  const hits = paraphrases.filter(hit).length;
  const falseHitPairs = negatives.filter(hit);
  return {
    threshold,
    paraphrases: paraphrases.length,
    hits,
    hitRate: hits / paraphrases.length,
    negatives: negatives.length,
    falseHits: falseHitPairs.length,
    falseHitRate: falseHitPairs.length / negatives.length,
    falseHitPairs,
  };
}

/** The thresholds reported: 0.70, 0.71, … 0.99. */
export const THRESHOLDS = Array.from({ length: 30 }, (_, i) => Math.round((0.7 + i * 0.01) * 100) / 100);

/**
 * The threshold to use: at least the lowest reported one with no false hit plus `margin` (the
 * negatives measured are a sample: an unseen one a little more similar than the worst of them must
 * still miss); and, where that leaves room, raised to the highest that still keeps every
 * paraphrase the lowest one keeps, less `margin` on that side too — as far from the negatives as
 * the paraphrases allow. null when every reported threshold has a false hit.
 * @returns {{ lowest: number, threshold: number } | null} lowest: the first rule alone
 */
export function recommend(scored, { margin = 0.02, embeddingOnly = false } = {}) {
  const round = (t) => Math.round(t * 100) / 100;
  const first = THRESHOLDS.find((t) => atThreshold(scored, t, { embeddingOnly }).falseHits === 0);
  if (first === undefined) return null;
  const lowest = round(first + margin);
  const hits = atThreshold(scored, lowest, { embeddingOnly }).hits;
  const highest = THRESHOLDS.filter((t) => atThreshold(scored, t, { embeddingOnly }).hits === hits).at(-1) ?? lowest;
  return { lowest, threshold: Math.max(lowest, round(highest - margin)) };
}

/** min, quartiles and max of the similarities of one class. */
export function distribution(scored, same) {
  const values = scored.filter((p) => p.same === same).map((p) => p.similarity).sort((x, y) => x - y);
  const at = (q) => {
    const i = (values.length - 1) * q;
    const lo = Math.floor(i);
    return values[lo] + (values[Math.ceil(i)] - values[lo]) * (i - lo);
  };
  return { n: values.length, min: values[0], q1: at(0.25), median: at(0.5), q3: at(0.75), max: values.at(-1) };
}
