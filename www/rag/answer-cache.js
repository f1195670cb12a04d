// The FAQ answer cache: a question asked again in other words gets the answer already given,
// with its sources, instead of a new generation (seconds of decoding on a small CPU).
//
// "Asked again" means, within one scope — the same corpus (DocumentIndex.fingerprint()), the
// same model and the same settings (retrieval, decoding, conversation rule); a different scope
// drops every entry — both of:
//  1. the question's embedding (a unit vector from the same embedder as the cached questions)
//     has a cosine similarity of at least `threshold` with a cached question's; and
//  2. both questions have the same key terms in the same order (keyTerms below): their stemmed
//     content words, with the few function words that change what is asked kept (who, when,
//     why, how, not, most, before, should …) and the words that only ask for an explanation dropped
//     (mean, explain, define …). "What is X?", "What does X mean?" and "Can you explain what X
//     is?" agree; "the first phase" and "the second phase", "heat" and "cool" a house, "Does A
//     increase B?" and "Does B increase A?" do not.
//
// Why both: a false hit serves the answer to a different question, with sources that may not
// even mention what was asked, while a miss only costs the time of generating — so a false hit is
// far worse than a miss, and the rule is chosen for none on hard negatives (same topic, different
// question). MiniLM's cosine alone cannot do that: minimal pairs ("first"/"last" principle, 0.96;
// "1-in-100"/"1-in-10-year flood", 0.93) score as high as real paraphrases, and swapped roles
// ("Is reuse better than recycling?" vs the reverse, 0.99) higher than any of them, so a threshold
// free of false hits would hit no paraphrase at all. The key terms catch exactly those; the
// embedding still has to agree, for pairs whose words match but whose meaning does not.
// scripts/eval-faq.mjs measures both on eval/faq/pairs.json.
//
// Pure like the rest of www/rag/: vectors come in, nothing is embedded here. The page keeps one
// cache in IndexedDB, the HTTP service one per process; both persist it with toJSON/fromJSON.
import { STOP_WORDS, stemmedWords } from './index.js';
import { dot, floatsToBase64, base64ToFloats } from './vectors.js';
import { edgeError } from '../engine/errors.js';

/**
 * Cosine similarity from which a cached question with the same key terms counts as the same
 * question. Measured with all-MiniLM-L6-v2 on eval/faq/pairs.json (76 paraphrases, 81 hard
 * negatives; node scripts/eval-faq.mjs): at 0.90 the cache serves 18/76 paraphrases (23.7%) with
 * 0/81 false hits. No hard negative shares its partner's key terms, so every threshold from 0.70
 * is free of false hits (the lowest, plus a 0.02 margin, is 0.72); 0.90 sits as far above that as
 * the paraphrases allow — the 18 score 0.922 to 0.977 — with 0.02 of margin under them, against
 * unseen pairs whose key terms agree but whose meaning does not. The cosine alone has false hits
 * at every threshold up to 0.99 (45/81 at 0.70, 18/81 at 0.90, 2/81 at 0.99) and serves no
 * paraphrase from 0.98 on.
 */
export const DEFAULT_THRESHOLD = 0.9;
/** Entries kept (least recently used go first): a lookup scans them all, a few hundred take well under a millisecond. */
export const DEFAULT_CAPACITY = 256;

const FORMAT = 'edgellm-answer-cache';
const VERSION = 1;
/** How far from 1 a "unit" vector's length may be (float32 rounding is far smaller). */
const UNIT_TOLERANCE = 1e-3;

/**
 * The scope a cached answer is valid in, as a stable string: the corpus fingerprint, the model
 * id and the settings that change an answer. Object keys are sorted at every depth, so
 * `{ a, b }` and `{ b, a }` name the same scope; arrays keep their order (it may matter).
 * @param {{ corpus: string, model: string, settings?: object }} scope
 */
export function cacheScope({ corpus, model, settings = {} } = {}) {
  if (typeof corpus !== 'string' || corpus === '') throw new TypeError('cacheScope: corpus must be a non-empty string (DocumentIndex.fingerprint())');
  if (typeof model !== 'string' || model === '') throw new TypeError('cacheScope: model must be a non-empty string (the model id)');
  if (settings === null || typeof settings !== 'object' || Array.isArray(settings)) throw new TypeError('cacheScope: settings must be an object');
  return JSON.stringify({ corpus, model, settings: sortedKeys(settings) });
}

/** A copy of a JSON-like value with every object's keys in sorted order. */
function sortedKeys(value) {
  if (Array.isArray(value)) return value.map(sortedKeys);
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(Object.keys(value).sort().map((key) => [key, sortedKeys(value[key])]));
}

/**
 * Stop words that change what a question asks: who, when, where, why or how (a person, a time, a
 * place, a reason, a method — "How are X chosen?" is not "Are X chosen?"), negation, degree and
 * quantity, order in time, obligation. What and which, tense, articles and pronouns do not.
 */
const KEPT_FUNCTION_WORDS = new Set('who whom when where why how not no nor most more few all only before after above below against should would could'.split(' '));
/** Words that only ask for an explanation: "What does X mean?" asks what "What is X?" asks. */
const FRAMING_WORDS = new Set('mean means meant meaning explain explains explanation define defined definition describe description tell term terms idea concept please'.split(' '));

/**
 * What a question asks about, as a string to compare: its stemmed content words (kept function
 * words included, framing words left out), each once, in the order they first appear. Order
 * matters — "Does A increase B?" is not "Does B increase A?" — and costs a few paraphrases that
 * reorder ("the difference between X and Y" vs "how X differs from Y").
 */
export function keyTerms(question) {
  const terms = stemmedWords(String(question), (word) => !FRAMING_WORDS.has(word) && (!STOP_WORDS.has(word) || KEPT_FUNCTION_WORDS.has(word)));
  return [...new Set(terms)].join(' ');
}

export class AnswerCache {
  /** @type {Map<number, { question: string, terms: string, answer: unknown, ms: number, vector: Float32Array }>} oldest use first */
  #entries = new Map();
  #nextKey = 0;
  #scope = null;
  /** Dimension of the cached vectors, or null while the cache is empty. */
  #dimensions = null;
  #lookups = 0;
  #hits = 0;
  #timeSavedMs = 0;
  #invalidations = 0;

  /** @param {{ capacity?: number, threshold?: number }} [options] */
  constructor({ capacity = DEFAULT_CAPACITY, threshold = DEFAULT_THRESHOLD } = {}) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`AnswerCache: capacity must be a positive integer, got ${capacity}`);
    if (typeof threshold !== 'number' || !(threshold > 0 && threshold <= 1)) throw new RangeError(`AnswerCache: threshold must be a cosine similarity in (0, 1], got ${threshold}`);
    this.capacity = capacity;
    this.threshold = threshold;
  }

  /** The scope the entries belong to (a cacheScope() string), or null before the first useScope. */
  get scope() { return this.#scope; }

  get size() { return this.#entries.size; }

  /**
   * Bind the cache to `scope`. A scope other than the current one means the corpus, the model or
   * the settings changed, so no cached answer may be served any more: every entry is dropped.
   * @returns {boolean} whether the scope changed
   */
  useScope(scope) {
    if (typeof scope !== 'string') throw new TypeError('useScope: scope must be a string (from cacheScope())');
    if (scope === this.#scope) return false;
    if (this.#scope !== null) this.#invalidations++;
    this.#scope = scope;
    this.#drop();
    return true;
  }

  /**
   * The cached answer of the question most similar to `vector` among those with the same key
   * terms as `question`, if it is at least `threshold` similar; the hit becomes the most recently
   * used entry. A vector of another dimension than the cache's (another embedder) never matches.
   * @param {Float32Array} vector the question's unit embedding
   * @param {string} question the question's text (for its key terms; required: without them the
   *        threshold alone serves false hits, see the top of this file)
   * @returns {{ question: string, answer: unknown, similarity: number, savedMs: number } | null}
   */
  lookup(vector, question) {
    assertUnitVector(vector, 'lookup');
    if (typeof question !== 'string') throw new TypeError('lookup(vector, question): the question text is needed too (its key terms must match a cached question\'s)');
    this.#lookups++;
    if (vector.length !== this.#dimensions) return null;
    const terms = keyTerms(question);
    // A question of function words alone ("What is it?") says too little to be the same as another.
    if (terms === '') return null;
    let best = null;
    let bestSimilarity = -Infinity;
    for (const [key, entry] of this.#entries) {
      if (entry.terms !== terms) continue;
      const similarity = dot(vector, entry.vector);
      if (similarity > bestSimilarity) {
        best = key;
        bestSimilarity = similarity;
      }
    }
    if (best === null || bestSimilarity < this.threshold) return null;
    const entry = this.#entries.get(best);
    this.#entries.delete(best);
    this.#entries.set(best, entry);
    this.#hits++;
    this.#timeSavedMs += entry.ms;
    return { question: entry.question, answer: copyJson(entry.answer), similarity: bestSimilarity, savedMs: entry.ms };
  }

  /**
   * Cache an answer. `answer` is copied through JSON (so later changes to the caller's object do
   * not reach the cache, and what is cached is exactly what toJSON can persist); `ms` is what
   * producing it took, credited to timeSavedMs at each hit. A vector of another dimension than
   * the cached ones means the embedder changed: the cache is emptied first (counted as an
   * invalidation) rather than refusing, since the new embedder's answers are the useful ones now.
   * @param {Float32Array} vector the question's unit embedding (copied)
   * @param {{ question: string, answer: unknown, ms: number }} entry
   */
  store(vector, { question, answer, ms } = {}) {
    assertUnitVector(vector, 'store');
    if (typeof question !== 'string') throw new TypeError('store: question must be a string');
    if (typeof ms !== 'number' || !Number.isFinite(ms) || ms < 0) throw new RangeError(`store: ms must be a finite, non-negative number, got ${ms}`);
    const copied = copyJson(answer);
    if (copied === undefined) throw new TypeError('store: answer must be JSON-serialisable');
    if (this.#dimensions !== null && vector.length !== this.#dimensions) {
      this.#invalidations++;
      this.#drop();
    }
    this.#dimensions = vector.length;
    this.#entries.set(this.#nextKey++, { question, terms: keyTerms(question), answer: copied, ms, vector: Float32Array.from(vector) });
    while (this.#entries.size > this.capacity) this.#entries.delete(this.#entries.keys().next().value);
  }

  /** Drop every entry; the scope and the counters stay. */
  clear() {
    this.#drop();
  }

  stats() {
    return {
      entries: this.#entries.size,
      capacity: this.capacity,
      threshold: this.threshold,
      lookups: this.#lookups,
      hits: this.#hits,
      hitRate: this.#lookups ? this.#hits / this.#lookups : 0,
      timeSavedMs: this.#timeSavedMs,
      invalidations: this.#invalidations,
    };
  }

  /**
   * A JSON-safe snapshot: the scope, the counters and the entries, least recently used first
   * (so fromJSON restores the LRU order), each vector as base64 of its float32 bytes.
   */
  toJSON() {
    return {
      format: FORMAT,
      version: VERSION,
      scope: this.#scope,
      dimensions: this.#dimensions,
      capacity: this.capacity,
      threshold: this.threshold,
      stats: { lookups: this.#lookups, hits: this.#hits, timeSavedMs: this.#timeSavedMs, invalidations: this.#invalidations },
      entries: [...this.#entries.values()].map(({ question, answer, ms, vector }) => ({ question, answer, ms, vector: floatsToBase64(vector) })),
    };
  }

  /**
   * Rebuild a cache from toJSON() output (or its JSON string). Everything is checked — a stored
   * cache may be corrupt or come from elsewhere — and anything off rejects the whole file with an
   * `invalid_request` EdgeLLMError. `options` (capacity, threshold) are this run's, not the
   * file's: a threshold re-measured since applies to old entries too. Beyond `capacity`, the most
   * recently used entries are kept.
   */
  static fromJSON(json, options = {}) {
    const reject = (why) => edgeError('invalid_request', `AnswerCache.fromJSON: ${why}`);
    let data = json;
    if (typeof json === 'string') {
      try {
        data = JSON.parse(json);
      } catch (e) {
        throw edgeError('invalid_request', `AnswerCache.fromJSON: not JSON (${e.message})`, { cause: e });
      }
    }
    if (data === null || typeof data !== 'object' || Array.isArray(data)) throw reject('not an object');
    if (data.format !== FORMAT || data.version !== VERSION) {
      throw reject(`not a version ${VERSION} ${FORMAT} (format ${JSON.stringify(data.format)}, version ${JSON.stringify(data.version)})`);
    }
    if (data.scope !== null && typeof data.scope !== 'string') throw reject('scope must be a string or null');
    if (!Array.isArray(data.entries)) throw reject('entries must be an array');
    const dimensions = data.dimensions;
    if (data.entries.length > 0 && !(Number.isInteger(dimensions) && dimensions > 0)) throw reject(`dimensions must be a positive integer, got ${JSON.stringify(dimensions)}`);
    const counter = (name, integer) => {
      const value = data.stats?.[name];
      if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || (integer && !Number.isInteger(value))) {
        throw reject(`stats.${name} must be a ${integer ? 'non-negative integer' : 'non-negative number'}, got ${JSON.stringify(value)}`);
      }
      return value;
    };
    const stats = { lookups: counter('lookups', true), hits: counter('hits', true), timeSavedMs: counter('timeSavedMs', false), invalidations: counter('invalidations', true) };
    if (stats.hits > stats.lookups) throw reject(`stats.hits (${stats.hits}) exceeds stats.lookups (${stats.lookups})`);

    // Base64 of d float32s is exactly this long: checked before decoding anything.
    const base64Length = 4 * Math.ceil((dimensions * 4) / 3);
    const entries = data.entries.map((entry, i) => {
      if (entry === null || typeof entry !== 'object') throw reject(`entry ${i} is not an object`);
      if (typeof entry.question !== 'string') throw reject(`entry ${i}: question must be a string`);
      if (typeof entry.ms !== 'number' || !Number.isFinite(entry.ms) || entry.ms < 0) throw reject(`entry ${i}: ms must be a finite, non-negative number`);
      if (!Object.hasOwn(entry, 'answer') || entry.answer === undefined) throw reject(`entry ${i} has no answer`);
      if (typeof entry.vector !== 'string' || entry.vector.length !== base64Length) {
        throw reject(`entry ${i}: vector must be base64 of ${dimensions} float32s (${base64Length} characters), got ${typeof entry.vector === 'string' ? `${entry.vector.length} characters` : typeof entry.vector}`);
      }
      let vector;
      try {
        vector = base64ToFloats(entry.vector);
      } catch (e) {
        throw edgeError('invalid_request', `AnswerCache.fromJSON: entry ${i}: vector is not valid base64 (${e.message})`, { cause: e });
      }
      if (vector.length !== dimensions) throw reject(`entry ${i}: vector has ${vector.length} dimensions, the cache ${dimensions}`);
      if (!isUnit(vector)) throw reject(`entry ${i}: vector is not a finite unit vector`);
      return { question: entry.question, terms: keyTerms(entry.question), answer: entry.answer, ms: entry.ms, vector };
    });

    const cache = new AnswerCache(options);
    cache.#scope = data.scope;
    cache.#dimensions = entries.length ? dimensions : null;
    for (const entry of entries.slice(-cache.capacity)) cache.#entries.set(cache.#nextKey++, { ...entry, answer: copyJson(entry.answer) });
    cache.#lookups = stats.lookups;
    cache.#hits = stats.hits;
    cache.#timeSavedMs = stats.timeSavedMs;
    cache.#invalidations = stats.invalidations;
    return cache;
  }

  #drop() {
    this.#entries.clear();
    this.#dimensions = null;
  }
}

function assertUnitVector(vector, where) {
  if (!(vector instanceof Float32Array) || vector.length === 0) throw new TypeError(`${where}: the vector must be a non-empty Float32Array`);
  // A longer vector would score above 1 against everything and turn misses into false hits.
  if (!isUnit(vector)) throw new RangeError(`${where}: the vector must be a finite unit vector (an embedder's normalised output)`);
}

function isUnit(vector) {
  const norm = Math.sqrt(dot(vector, vector));
  return Number.isFinite(norm) && Math.abs(norm - 1) <= UNIT_TOLERANCE;
}

/** A deep copy through JSON; undefined for what JSON cannot hold at the top. */
function copyJson(value) {
  const text = JSON.stringify(value);
  return text === undefined ? undefined : JSON.parse(text);
}
