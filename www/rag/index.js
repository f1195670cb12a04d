// The document index: every chunk, searchable two ways.
//  - lexical: BM25 over stemmed, stop-word-filtered terms, by the `minisearch` package;
//  - dense: one embedding per chunk (Float32Array, L2-normalised by the embedder, so cosine
//    similarity is a dot product), searched exhaustively — a private corpus in a browser tab is
//    thousands of chunks, where a linear scan takes milliseconds and needs no approximate index.
// Chunks are kept here, not in minisearch, so the index is the one place to look a chunk up.
// Vendored copies made by build.sh (the page has no bundler; Node reads the same files).
import MiniSearch from '../vendor/minisearch.js';
import { stemmer } from '../vendor/stemmer.js';

import { dot, floatsToBase64, base64ToFloats } from './vectors.js';

// Re-exported: the vector encoding of toJSON, for whoever reads or writes index files.
export { floatsToBase64, base64ToFloats };

/**
 * BM25 parameters. k1 1.5 and b 0.75 are the classic values (and those of the Cranfield reference
 * run, see scripts/eval-retrieval.mjs). d = 0 turns off minisearch's default BM25+ term bonus, so
 * scores are plain BM25.
 */
export const BM25_DEFAULTS = Object.freeze({ k1: 1.5, b: 0.75 });

/**
 * English function words, which carry no topic and would otherwise only add noise to BM25.
 * Shared with the answer cache's key terms (www/rag/answer-cache.js), which keep a few of them.
 */
export const STOP_WORDS = new Set(`
a about above after again against all am an and any are as at be because been before being below
between both but by can could did do does doing down during each few for from further had has have
having he her here hers herself him himself his how i if in into is it its itself just me more most
my myself no nor not now of off on once only or other our ours ourselves out over own same she
should so some such than that the their theirs them themselves then there these they this those
through to too under until up very was we were what when where which while who whom why will with
would you your yours yourself yourselves s t d ll m o re ve y
`.trim().split(/\s+/));

/**
 * Text → index terms: lower-case, split on anything that is not a letter or digit, drop stop
 * words, Porter-stem. Used for documents and queries alike, so both meet as the same terms.
 * Done in minisearch's `tokenize` (not `processTerm`) so that minisearch's document length, which
 * it counts on tokenizer output, counts content terms only, as BM25 intends.
 */
export function analyze(text) {
  return stemmedWords(text, (word) => !STOP_WORDS.has(word));
}

/** The Porter stems of the words of `text` (lower-cased, letters and digits) that `keep(word)` accepts, in order. */
export function stemmedWords(text, keep) {
  const terms = [];
  for (const word of text.toLowerCase().split(/[^\p{L}\p{N}]+/u)) {
    if (word !== '' && keep(word)) terms.push(stemmer(word));
  }
  return terms;
}

export class DocumentIndex {
  /** @type {Map<string, object>} chunk id → chunk */
  #chunks = new Map();
  /** @type {Map<string, Float32Array>} chunk id → unit embedding */
  #vectors = new Map();
  #dimensions = null;
  #bm25;
  #lexical;
  /** fingerprint() memoised; null after any change to the chunks */
  #fingerprint = null;

  /** @param {{ bm25?: { k1?: number, b?: number } }} [options] */
  constructor({ bm25 = {} } = {}) {
    this.#bm25 = { ...BM25_DEFAULTS, ...bm25 };
    this.#lexical = new MiniSearch({
      fields: ['text'],
      tokenize: analyze,
      processTerm: (term) => term,
      searchOptions: { bm25: { k: this.#bm25.k1, b: this.#bm25.b, d: 0 } },
    });
  }

  /** Number of chunks. */
  get size() { return this.#chunks.size; }

  /** Embedding length, or null while no chunk has a vector. */
  get dimensions() { return this.#dimensions; }

  /** Number of chunks that have an embedding (dense search only sees these). */
  get vectorCount() { return this.#vectors.size; }

  /** Source names (documents) in the index, in the order they were added. */
  get sources() { return [...new Set([...this.#chunks.values()].map((chunk) => chunk.source))]; }

  /** Number of chunks of one source (document); 0 when it is not in the index. */
  sourceSize(source) {
    let n = 0;
    for (const chunk of this.#chunks.values()) if (chunk.source === source) n++;
    return n;
  }

  get(id) { return this.#chunks.get(id); }

  /** The text of every chunk, in insertion order. */
  texts() { return [...this.#chunks.values()].map((chunk) => chunk.text); }

  has(id) { return this.#chunks.has(id); }

  /**
   * Add chunks (from chunkDocument), with their embeddings if dense search is wanted.
   * All-or-nothing: a bad chunk or vector throws before anything is added.
   * @param {{ id: string, text: string, source?: string, page?: number }[]} chunks
   * @param {Float32Array[]} [vectors] one per chunk, same order
   */
  addChunks(chunks, vectors) {
    if (!Array.isArray(chunks)) throw new TypeError('addChunks: chunks must be an array');
    if (vectors != null && (!Array.isArray(vectors) || vectors.length !== chunks.length)) {
      throw new TypeError(`addChunks: expected ${chunks.length} vectors (one per chunk), got ${Array.isArray(vectors) ? vectors.length : typeof vectors}`);
    }
    const ids = new Set();
    let dimensions = this.#dimensions;
    chunks.forEach((chunk, i) => {
      if (typeof chunk?.id !== 'string' || chunk.id === '') throw new TypeError(`addChunks: chunk ${i} needs a non-empty string id`);
      if (typeof chunk.text !== 'string') throw new TypeError(`addChunks: chunk "${chunk.id}" needs a text string`);
      if (this.#chunks.has(chunk.id) || ids.has(chunk.id)) throw new Error(`addChunks: duplicate chunk id "${chunk.id}" (remove the source first to re-index it)`);
      ids.add(chunk.id);
      if (vectors) {
        const vector = vectors[i];
        if (!(vector instanceof Float32Array) || vector.length === 0) throw new TypeError(`addChunks: vector ${i} must be a non-empty Float32Array`);
        dimensions ??= vector.length;
        if (vector.length !== dimensions) throw new RangeError(`addChunks: vector ${i} has ${vector.length} dimensions, the index has ${dimensions} (one embedder per index)`);
      }
    });

    chunks.forEach((chunk, i) => {
      const stored = { id: chunk.id, text: chunk.text, source: chunk.source ?? null, page: chunk.page ?? null, start: chunk.start ?? null, end: chunk.end ?? null };
      this.#chunks.set(chunk.id, stored);
      if (vectors) this.#vectors.set(chunk.id, vectors[i]);
    });
    this.#dimensions = dimensions;
    this.#fingerprint = null;
    this.#lexical.addAll(chunks.map(({ id, text }) => ({ id, text })));
  }

  /** Remove every chunk of one source (document). Returns how many chunks were removed. */
  removeSource(source) {
    const ids = [...this.#chunks.values()].filter((chunk) => chunk.source === source).map((chunk) => chunk.id);
    for (const id of ids) {
      this.#chunks.delete(id);
      this.#vectors.delete(id);
    }
    // discardAll drops the documents at once and cleans minisearch's term lists up lazily.
    this.#lexical.discardAll(ids);
    if (this.#vectors.size === 0) this.#dimensions = null;
    if (ids.length > 0) this.#fingerprint = null;
    return ids.length;
  }

  /**
   * A short string that names the corpus's content, e.g. "c42-d384-9f1c…" (chunks, dimensions,
   * hash): what caches keyed on "the same documents" compare (www/rag/answer-cache.js). Two
   * indexes have the same fingerprint when they hold the same chunks in the same order — id,
   * text, source and page of each, whether it has a vector — with the same BM25 parameters and
   * dimensions; so it survives toJSON/fromJSON and reloads, and changes with addChunks and
   * removeSource. Of each vector only its first few components are hashed: enough to tell
   * another embedder of the same dimension apart, without hashing megabytes of floats.
   * The hash is FNV-1a 64 over UTF-16 code units (length-prefixed fields, so "ab"+"c" ≠ "a"+"bc"):
   * not cryptographic — it detects change, it does not resist forgery. Computed once (a few ms for
   * thousands of chunks) and memoised until the chunks change.
   */
  fingerprint() {
    if (this.#fingerprint !== null) return this.#fingerprint;
    const hash = new Fnv1a64();
    hash.field(`edgellm-index-fingerprint-v1 k1=${this.#bm25.k1} b=${this.#bm25.b} d=${this.#dimensions}`);
    for (const chunk of this.#chunks.values()) {
      hash.field(chunk.id).field(chunk.text).field(chunk.source ?? '').field(String(chunk.page ?? ''));
      const vector = this.#vectors.get(chunk.id);
      hash.field(vector ? 'v' : '-');
      if (vector) hash.words(new Uint16Array(vector.buffer, vector.byteOffset, Math.min(vector.length, FINGERPRINT_COMPONENTS) * 2));
    }
    this.#fingerprint = `c${this.#chunks.size}-d${this.#dimensions ?? 0}-${hash.hex()}`;
    return this.#fingerprint;
  }

  /**
   * BM25 search. Scores are plain BM25 sums over query terms.
   * @returns {{ id: string, score: number }[]} best first, at most k
   */
  searchLexical(query, k) {
    assertK(k);
    // minisearch multiplies each BM25 sum by the number of distinct query terms matched (a
    // coordination bonus). Dividing it out gives the standard BM25 ranking, which also ranks better
    // on the Cranfield evaluation.
    return this.#lexical.search(String(query))
      .map(({ id, score, queryTerms }) => ({ id, score: score / Math.max(1, queryTerms.length) }))
      .sort((a, b) => b.score - a.score)
      .slice(0, k);
  }

  /**
   * Nearest chunks by cosine similarity (dot product of unit vectors).
   * @param {Float32Array} queryVector an embedding from the same embedder as the chunks
   * @returns {{ id: string, score: number }[]} best first, at most k
   */
  searchDense(queryVector, k) {
    assertK(k);
    if (this.#vectors.size === 0) return [];
    if (!(queryVector instanceof Float32Array) || queryVector.length !== this.#dimensions) {
      throw new RangeError(`searchDense: the query vector must be a Float32Array of ${this.#dimensions} dimensions, got ${queryVector?.length ?? typeof queryVector}`);
    }
    const scored = [];
    for (const [id, vector] of this.#vectors) scored.push({ id, score: dot(queryVector, vector) });
    return scored.sort((a, b) => b.score - a.score).slice(0, k);
  }

  /**
   * A JSON-safe snapshot (for IndexedDB or a file). Vectors are base64 of their float32 bytes,
   * about 2.5× smaller than number arrays. The BM25 index is not stored: fromJSON rebuilds it
   * from the chunk texts, which is fast and keeps minisearch's internal format out of storage.
   */
  toJSON() {
    return {
      format: 'edgellm-document-index',
      version: 1,
      bm25: { ...this.#bm25 },
      dimensions: this.#dimensions,
      chunks: [...this.#chunks.values()].map((chunk) => ({ ...chunk })),
      vectors: Object.fromEntries([...this.#vectors].map(([id, vector]) => [id, floatsToBase64(vector)])),
    };
  }

  /** Rebuild an index from toJSON() output (or its JSON.parse'd string). */
  static fromJSON(json) {
    const data = typeof json === 'string' ? JSON.parse(json) : json;
    if (data?.format !== 'edgellm-document-index' || data.version !== 1) {
      throw new Error(`DocumentIndex.fromJSON: not a version 1 edgellm document index (format ${data?.format}, version ${data?.version})`);
    }
    const index = new DocumentIndex({ bm25: data.bm25 });
    // One by one, to keep the original order even where only some chunks have vectors.
    for (const chunk of data.chunks) {
      const hasVector = Object.hasOwn(data.vectors, chunk.id);
      index.addChunks([chunk], hasVector ? [base64ToFloats(data.vectors[chunk.id])] : undefined);
    }
    return index;
  }
}

function assertK(k) {
  if (!Number.isInteger(k) || k < 1) throw new RangeError(`k must be a positive integer, got ${k}`);
}

/** Vector components per chunk that fingerprint() hashes. */
const FINGERPRINT_COMPONENTS = 8;

/**
 * FNV-1a with 64-bit state, fed 16-bit units, in four 16-bit limbs (JavaScript numbers multiply
 * exactly only up to 2^53, and BigInt would be far slower). Prime 2^40 + 0x1b3: multiplying is
 * `h * 0x1b3 + (h << 40)`, limb by limb with carries.
 */
class Fnv1a64 {
  #h = [0x2325, 0x8422, 0x9ce4, 0xcbf2]; // offset basis 0xcbf29ce484222325, low limb first

  /** Mix in one 16-bit unit. */
  unit(u) {
    const h = this.#h;
    h[0] ^= u & 0xffff;
    const t0 = h[0] * 0x1b3;
    let t1 = h[1] * 0x1b3;
    let t2 = h[2] * 0x1b3 + (h[0] << 8);
    const t3 = h[3] * 0x1b3 + (h[1] << 8);
    t1 += t0 >>> 16;
    t2 += t1 >>> 16;
    h[0] = t0 & 0xffff;
    h[1] = t1 & 0xffff;
    h[2] = t2 & 0xffff;
    h[3] = (t3 + (t2 >>> 16)) & 0xffff;
  }

  words(units) {
    for (let i = 0; i < units.length; i++) this.unit(units[i]);
    return this;
  }

  /** A string, prefixed by its length, so that field boundaries are part of the hash. */
  field(text) {
    this.unit(text.length >>> 16);
    this.unit(text.length);
    for (let i = 0; i < text.length; i++) this.unit(text.charCodeAt(i));
    return this;
  }

  hex() {
    return this.#h.map((limb) => limb.toString(16).padStart(4, '0')).reverse().join('');
  }
}
