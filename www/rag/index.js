// The document index: every chunk, searchable two ways.
//  - lexical: BM25 over stemmed, stop-word-filtered terms, by the `minisearch` package;
//  - dense: one embedding per chunk (Float32Array, L2-normalised by the embedder, so cosine
//    similarity is a dot product), searched exhaustively — a private corpus in a browser tab is
//    thousands of chunks, where a linear scan takes milliseconds and needs no approximate index.
// Chunks are kept here, not in minisearch, so the index is the one place to look a chunk up.
// Vendored copies made by build.sh (the page has no bundler; Node reads the same files).
import MiniSearch from '../vendor/minisearch.js';
import { stemmer } from '../vendor/stemmer.js';

/**
 * BM25 parameters. k1 1.5 and b 0.75 are the classic values (and those of the Cranfield reference
 * run, see scripts/eval-retrieval.mjs). d = 0 turns off minisearch's default BM25+ term bonus, so
 * scores are plain BM25.
 */
export const BM25_DEFAULTS = Object.freeze({ k1: 1.5, b: 0.75 });

/** English function words, which carry no topic and would otherwise only add noise to BM25. */
const STOP_WORDS = new Set(`
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
  const terms = [];
  for (const word of text.toLowerCase().split(/[^\p{L}\p{N}]+/u)) {
    if (word !== '' && !STOP_WORDS.has(word)) terms.push(stemmer(word));
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
    return ids.length;
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

function dot(a, b) {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += a[i] * b[i];
  return sum;
}

// btoa/atob exist in browsers and in Node ≥ 16, so this runs in both without Buffer.
function floatsToBase64(vector) {
  const bytes = new Uint8Array(vector.buffer, vector.byteOffset, vector.byteLength);
  let binary = '';
  const STEP = 0x8000; // String.fromCharCode takes its bytes as arguments; stay far below the argument limit.
  for (let i = 0; i < bytes.length; i += STEP) binary += String.fromCharCode(...bytes.subarray(i, i + STEP));
  return btoa(binary);
}

function base64ToFloats(base64) {
  const binary = atob(base64);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return new Float32Array(bytes.buffer);
}
