// Sentences that answer: the few sentences of the retrieved passages that answer the question
// (an extractive answer, shown at once, before or instead of the model's answer), and, once the
// model has answered, the sentence of each cited source that supports what it said (to highlight
// under the source).
//
// Both score sentences by embedding similarity; `embed(texts) => Promise<Float32Array[]>` is
// injected, as in retrieve.js, so this module never imports the engine. Each call embeds
// everything it needs in one `embed` call (one batch through the model, far cheaper than one call
// per sentence), and an optional `cache` (a Map from text to vector, shared between calls) lets
// supportingSentences reuse the vectors extractiveAnswer computed for the same passages.
import { analyze } from './index.js';
import { CITATION, citationStats } from './cite.js';

export const EXTRACT_DEFAULTS = Object.freeze({
  limit: 3,
  perSource: 1,
  /** Sentences with fewer words than this are fragments (a label, a list item's stub), not answers. */
  minWords: 5,
  /**
   * Weight of the lexical term in a sentence's score: (1 − w) · cosine + w · overlap, where
   * overlap is the share of the query's stemmed content terms (index.js analyze()) that the
   * sentence contains. Measured on 31 questions over www/corpus (hybrid retrieval, top 3 passages,
   * rank of the answering sentence): cosine alone puts it first for 22, MRR 0.793; w = 0.3 gives
   * 22, MRR 0.807 (0.2–0.5 are alike); with the definition cue below, 25, MRR 0.859.
   * tests/js/extract.test.mjs repeats a smaller version of this comparison.
   */
  lexicalWeight: 0.3,
  /**
   * Added to the score of a sentence that defines what a "What is X?" question asks about
   * ("X is …", "X (Y) are …", "X: …", "… is called X"): MiniLM scores "The concept behind life
   * cycle assessment is simple" above "Life cycle assessment (LCA) is a method …". On the 31
   * questions: 0.05 (with w = 0.3) takes top-1 from 22 to 25; 0.1 and 0.15 do no better on top-1.
   */
  definitionBoost: 0.05,
});

// ---- sentence splitting -------------------------------------------------------------------------

/** Abbreviations after which a period never ends a sentence (lower-case, without the final dot). */
const NEVER_ENDS = new Set(['e.g', 'i.e', 'cf', 'vs', 'viz', 'approx', 'ca', 'mr', 'mrs', 'ms', 'dr', 'prof', 'st', 'sr', 'jr', 'resp', 'incl', 'esp', 'eg', 'ie']);
/** Abbreviations that end a sentence only when no number follows: "Fig. 3", "p. 12", "No. 5". */
const BEFORE_NUMBERS = new Set(['fig', 'figs', 'eq', 'eqs', 'no', 'nos', 'vol', 'vols', 'p', 'pp', 'sec', 'ch', 'chap', 'tab', 'ref', 'refs', 'art', 'para', 'ex', 'nr']);
/** Abbreviations that may also end a sentence: they do when a capital letter follows. */
const MAY_END = new Set(['etc', 'al', 'inc', 'ltd', 'co', 'corp', 'bros']);

/** Sentence-final punctuation; closing quotes, brackets and markdown emphasis after it belong to the sentence. */
const TERMINATOR = /[.!?…]+["'”’)\]*_»]*/g;
/** Citations right after a sentence's end ("… its life.[1] The …") belong to that sentence. */
const TRAILING_CITATIONS = new RegExp(`(?:[ \\t]*${CITATION.source})+["'”’)\\]*_»]*`, 'y');
const HEADING = /^ {0,3}#{1,6}(?:[ \t]+|$)/;
const RULE = /^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$/;
const BULLET = /^[ \t]*(?:[-*+•‣◦]|\d{1,3}[.)]|>+)[ \t]+/; // list items and block quotes
const TABLE_ROW = /^[ \t]*\|/;
const SPACE = /\s/;
const LETTER_OR_DIGIT = /[\p{L}\p{N}]/u;
const WORD = /[\p{L}\p{N}]+/gu;

/**
 * Split text into sentences, each with its exact position: `text === original.slice(start, end)`,
 * trimmed. Markdown headings, list items and table rows are units of their own (their marker, such
 * as "## " or "- ", is left out), blank lines end a paragraph, and a single line break is only a
 * space (PDF and plain text are hard-wrapped). A period ends a sentence only before whitespace, so
 * "2.5" and "e.g.," never split, and not after abbreviations such as "e.g.", "i.e.", "Dr.", an
 * initial, or "Fig." before a number; "etc." and "et al." end one only before a capital letter, as
 * does any period before a lower-case word. Citations right after the end ("….[1]") stay with it.
 * @param {string} text
 * @returns {{ text: string, start: number, end: number }[]}
 */
export function splitSentences(text) {
  return sentenceUnits(String(text ?? '')).map(({ text: sentence, start, end }) => ({ text: sentence, start, end }));
}

/** splitSentences, with `heading: true` on markdown headings. */
function sentenceUnits(text) {
  const units = [];
  let block = null; // the paragraph or list item being read: { start, end }
  const flush = () => {
    if (block) splitBlock(text, block.start, block.end, units);
    block = null;
  };
  let lineStart = 0;
  for (;;) {
    let lineEnd = text.indexOf('\n', lineStart);
    if (lineEnd === -1) lineEnd = text.length;
    const line = text.slice(lineStart, lineEnd);
    let marker;
    if (line.trim() === '' || RULE.test(line)) {
      flush();
    } else if ((marker = HEADING.exec(line))) {
      flush();
      pushUnit(text, lineStart + marker[0].length, lineEnd, units, true);
    } else if (TABLE_ROW.test(line)) {
      flush();
      pushUnit(text, lineStart, lineEnd, units, false);
    } else if ((marker = BULLET.exec(line))) {
      flush();
      block = { start: lineStart + marker[0].length, end: lineEnd };
    } else if (block) {
      block.end = lineEnd;
    } else {
      block = { start: lineStart, end: lineEnd };
    }
    if (lineEnd >= text.length) break;
    lineStart = lineEnd + 1;
  }
  flush();
  return units;
}

/** Cut one paragraph (text[start, end)) at its sentence ends. */
function splitBlock(text, start, end, units) {
  const block = text.slice(start, end); // scanning a slice keeps every paragraph's scan inside it
  let sentenceStart = 0;
  TERMINATOR.lastIndex = 0;
  let match;
  while ((match = TERMINATOR.exec(block)) !== null) {
    let boundary = match.index + match[0].length;
    TRAILING_CITATIONS.lastIndex = boundary;
    if (TRAILING_CITATIONS.test(block)) boundary = TRAILING_CITATIONS.lastIndex;
    TERMINATOR.lastIndex = boundary;
    if (boundary < block.length && !SPACE.test(block[boundary])) continue; // "2.5", "e.g.,", "U.S.-based"
    if (!endsSentence(block, sentenceStart, match.index, match[0], boundary)) continue;
    pushUnit(text, start + sentenceStart, start + boundary, units, false);
    sentenceStart = boundary;
  }
  pushUnit(text, start + sentenceStart, end, units, false);
}

/** Whether the punctuation `mark` at `at` (followed by whitespace or the end) ends a sentence. */
function endsSentence(text, sentenceStart, at, mark, boundary) {
  const next = nextWordChar(text, boundary);
  if (next === null) return true; // end of the paragraph
  if (isLower(next)) return false; // sentences start with a capital; "approx. the", "… and then"
  if (!mark.startsWith('.') || mark.startsWith('..')) return true;
  let wordStart = at;
  while (wordStart > sentenceStart && !SPACE.test(text[wordStart - 1])) wordStart--;
  const word = text.slice(wordStart, at).replace(/^[^\p{L}\p{N}]+/u, '');
  const lower = word.toLowerCase();
  if (NEVER_ENDS.has(lower)) return false;
  if (BEFORE_NUMBERS.has(lower) && /\p{N}/u.test(next)) return false;
  if (/^\p{Lu}$/u.test(word)) return false; // an initial: "J. Smith"
  if (/^(?:\p{L}\.)+\p{L}$/u.test(word)) return false; // "U.S.", "a.m.": more often mid-sentence than not
  if (MAY_END.has(lower)) return isUpper(next); // "etc. The", but "et al. (2020)"
  return true;
}

/** The first letter or digit after `from` (skipping spaces, quotes, brackets, emphasis), or null. */
function nextWordChar(text, from) {
  for (let i = from; i < text.length; i++) {
    const ch = text[i];
    if (LETTER_OR_DIGIT.test(ch)) return ch;
    if (!SPACE.test(ch) && !'"\'“‘([*_«¿¡'.includes(ch)) return ch; // other punctuation counts as a start
  }
  return null;
}

const isLower = (ch) => ch !== ch.toUpperCase() && ch === ch.toLowerCase();
const isUpper = (ch) => ch !== ch.toLowerCase() && ch === ch.toUpperCase();

function pushUnit(text, start, end, units, heading) {
  let s = start;
  let e = end;
  while (s < e && SPACE.test(text[s])) s++;
  while (e > s && SPACE.test(text[e - 1])) e--;
  if (e > s) units.push({ text: text.slice(s, e), start: s, end: e, heading });
}

// ---- scoring ------------------------------------------------------------------------------------

/**
 * The sentences of the retrieved passages that best answer `query`, best first: an extractive
 * answer. Candidates are the sentences of every source except headings and fragments of fewer
 * than `minWords` words; a sentence repeated in two sources (overlapping chunks) counts once, for
 * the better-ranked source. The query and all candidates are embedded in one `embed` call.
 *
 * score = (1 − lexicalWeight) · cosine(query, sentence) + lexicalWeight · overlap, where overlap is
 * the share of the query's content terms (stemmed, stop words dropped: index.js analyze()) found
 * in the sentence, plus definitionBoost if the question is "What is X?" and the sentence defines
 * X. With lexicalWeight 0 and definitionBoost 0 the score is the plain cosine.
 *
 * Cost: the embedding of every candidate sentence, about as many tokens as the passages (with the
 * wasm MiniLM on a CPU, about a second for three 800-character passages). Pass a `cache` kept
 * per document (or filled while the model writes) and only the question is embedded (~30 ms).
 *
 * @param {object} options
 * @param {string} options.query
 * @param {{ n: number, text: string }[]} options.sources the numbered sources (prompt.js buildMessages)
 * @param {(texts: string[]) => Promise<Float32Array[]>} options.embed
 * @param {number} [options.limit] at most this many sentences
 * @param {number} [options.minScore] leave out sentences scoring below this
 * @param {number} [options.lexicalWeight] 0..1
 * @param {number} [options.definitionBoost] ≥ 0
 * @param {number} [options.minWords]
 * @param {Map<string, Float32Array>} [options.cache] text → vector, read and filled
 * @returns {Promise<{ sentences: { n: number, text: string, start: number, end: number, score: number }[], ms: number }>}
 *   start and end are offsets in the source's `text`
 */
export async function extractiveAnswer({
  query, sources, embed, limit = EXTRACT_DEFAULTS.limit, minScore,
  lexicalWeight = EXTRACT_DEFAULTS.lexicalWeight, definitionBoost = EXTRACT_DEFAULTS.definitionBoost,
  minWords = EXTRACT_DEFAULTS.minWords, cache,
}) {
  const startedAt = performance.now();
  if (typeof query !== 'string' || query.trim() === '') throw new TypeError('extractiveAnswer: query must be a non-empty string');
  validateCommon('extractiveAnswer', { sources, embed, cache, minWords });
  if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`extractiveAnswer: limit must be an integer ≥ 1, got ${limit}`);
  if (minScore != null && !Number.isFinite(minScore)) throw new RangeError(`extractiveAnswer: minScore must be a finite number, got ${minScore}`);
  if (!(lexicalWeight >= 0 && lexicalWeight <= 1)) throw new RangeError(`extractiveAnswer: lexicalWeight must be in [0, 1], got ${lexicalWeight}`);
  if (!(definitionBoost >= 0 && Number.isFinite(definitionBoost))) throw new RangeError(`extractiveAnswer: definitionBoost must be a finite number ≥ 0, got ${definitionBoost}`);

  const candidates = [];
  const seen = new Set();
  for (const source of sources) {
    for (const sentence of candidateSentences(source.text, minWords)) {
      const key = sentence.embedText.toLowerCase();
      if (seen.has(key)) continue;
      seen.add(key);
      candidates.push({ n: source.n, ...sentence });
    }
  }
  if (candidates.length === 0) return { sentences: [], ms: performance.now() - startedAt };

  const queryText = query.trim();
  const vectors = await embedAll(embed, [queryText, ...candidates.map((c) => c.embedText)], cache, new Set([queryText]));
  const queryVector = vectors.get(queryText);
  const queryTerms = new Set(analyze(queryText));
  const subject = definitionBoost > 0 ? definitionSubject(queryText) : null;
  const scored = candidates.map(({ n, text, start, end, embedText }, i) => {
    const cosine = cosineSimilarity(queryVector, vectors.get(embedText));
    let score = lexicalWeight === 0 ? cosine : (1 - lexicalWeight) * cosine + lexicalWeight * termOverlap(queryTerms, embedText);
    if (subject && definesSubject(embedText, subject)) score += definitionBoost;
    return { n, text, start, end, score, order: i };
  });
  scored.sort((a, b) => b.score - a.score || a.order - b.order);
  const sentences = scored
    .filter(({ score }) => minScore == null || score >= minScore)
    .slice(0, limit)
    .map(({ n, text, start, end, score }) => ({ n, text, start, end, score }));
  return { sentences, ms: performance.now() - startedAt };
}

/**
 * For each source, the sentence(s) that best support the answer, to highlight under the source.
 * Only the sources the answer cites are considered if it cites any of them, else all. A source
 * sentence scores its highest cosine to any sentence of the answer (citations stripped). One
 * `embed` call for the answer's and the sources' sentences.
 * @param {object} options
 * @param {string} options.answer the model's answer, with its [n] citations
 * @param {{ n: number, text: string }[]} options.sources
 * @param {(texts: string[]) => Promise<Float32Array[]>} options.embed
 * @param {number} [options.perSource] sentences per source, best first
 * @param {number} [options.minWords] shorter source sentences are skipped (unless a source has no longer one)
 * @param {Map<string, Float32Array>} [options.cache] text → vector, read and filled
 * @returns {Promise<Map<number, { start: number, end: number, text: string, score: number }[]>>}
 *   source number → its best sentences (offsets in the source's `text`), for every source considered
 */
export async function supportingSentences({
  answer, sources, embed, perSource = EXTRACT_DEFAULTS.perSource, minWords = EXTRACT_DEFAULTS.minWords, cache,
}) {
  if (typeof answer !== 'string') throw new TypeError('supportingSentences: answer must be a string');
  validateCommon('supportingSentences', { sources, embed, cache, minWords });
  if (!Number.isInteger(perSource) || perSource < 1) throw new RangeError(`supportingSentences: perSource must be an integer ≥ 1, got ${perSource}`);

  const result = new Map();
  const numbers = new Set(sources.map((s) => s.n));
  const cited = citationStats(answer).valid.filter((n) => numbers.has(n));
  const considered = cited.length > 0 ? sources.filter((s) => cited.includes(s.n)) : sources;

  const answerTexts = answerSentences(answer);
  if (answerTexts.length === 0) return result;
  const perSourceCandidates = considered.map((source) => {
    let candidates = candidateSentences(source.text, minWords);
    if (candidates.length === 0) candidates = candidateSentences(source.text, 1);
    return { source, candidates };
  });
  const texts = [...answerTexts, ...perSourceCandidates.flatMap(({ candidates }) => candidates.map((c) => c.embedText))];
  const vectors = await embedAll(embed, texts, cache, new Set(answerTexts));
  const answerVectors = answerTexts.map((text) => vectors.get(text));

  for (const { source, candidates } of perSourceCandidates) {
    if (result.has(source.n)) continue;
    const scored = candidates.map(({ text, start, end, embedText }, i) => {
      const vector = vectors.get(embedText);
      let score = -Infinity;
      for (const answerVector of answerVectors) score = Math.max(score, cosineSimilarity(answerVector, vector));
      return { start, end, text, score, order: i };
    });
    scored.sort((a, b) => b.score - a.score || a.order - b.order);
    result.set(source.n, scored.slice(0, perSource).map(({ start, end, text, score }) => ({ start, end, text, score })));
  }
  return result;
}

/**
 * Fill `cache` with the vectors of every candidate sentence of `texts` (indexed passages), a
 * batch per `embed` call so other work (a question) can run in between; stops early when
 * `signal` aborts. With the cache warm, extractiveAnswer only embeds the question (~30 ms
 * instead of about a second for three passages). Resolves to the number of sentences embedded.
 * @param {{ texts: string[], embed: (texts: string[]) => Promise<Float32Array[]>, cache: Map<string, Float32Array>, minWords?: number, batch?: number, signal?: AbortSignal }} options
 */
export async function warmSentenceVectors({ texts, embed, cache, minWords = EXTRACT_DEFAULTS.minWords, batch = 32, signal }) {
  if (!(cache instanceof Map)) throw new TypeError('warmSentenceVectors: cache must be a Map from text to vector');
  const pending = [...new Set(texts.flatMap((text) => candidateSentences(text, minWords).map((c) => c.embedText)))].filter((t) => !cache.has(t));
  let done = 0;
  for (let i = 0; i < pending.length && !signal?.aborted; i += batch) {
    const part = pending.slice(i, i + batch);
    await embedAll(embed, part, cache);
    done += part.length;
  }
  return done;
}

/**
 * Citations for an answer that cites no source (small models often cite nothing): each answer
 * sentence of `minWords` or more gets the number of the source holding its closest sentence,
 * when their cosine reaches `minScore` (a paraphrase of a source sentence scores about 0.7 with
 * MiniLM, an unrelated sentence under 0.4). The marker goes before the sentence's final
 * punctuation. The page shows such citations as added by edgellm, not by the model.
 * @returns {Promise<{ text: string, added: { n: number, sentence: string, score: number }[] }>}
 */
export async function attributeCitations({ answer, sources, embed, cache, minScore = 0.6, minWords = EXTRACT_DEFAULTS.minWords }) {
  if (typeof answer !== 'string') throw new TypeError('attributeCitations: answer must be a string');
  validateCommon('attributeCitations', { sources, embed, cache, minWords });
  const units = sentenceUnits(answer).filter((u) => !u.heading && countWords(plainText(u.text)) >= minWords);
  const perSource = sources.map((source) => ({ n: source.n, candidates: candidateSentences(source.text, minWords) }));
  if (units.length === 0 || perSource.every((s) => s.candidates.length === 0)) return { text: answer, added: [] };
  const answerTexts = units.map((u) => plainText(u.text));
  const texts = [...answerTexts, ...perSource.flatMap((s) => s.candidates.map((c) => c.embedText))];
  const vectors = await embedAll(embed, texts, cache, new Set(answerTexts));
  const added = [];
  let text = answer;
  // From the last sentence back, so earlier offsets stay valid while markers are inserted.
  for (const unit of [...units].reverse()) {
    const vector = vectors.get(plainText(unit.text));
    let best = { n: 0, score: -Infinity };
    for (const { n, candidates } of perSource) {
      for (const c of candidates) {
        const score = cosineSimilarity(vector, vectors.get(c.embedText));
        if (score > best.score) best = { n, score };
      }
    }
    if (best.score < minScore) continue;
    const end = unit.start + unit.text.replace(/[.!?…:;]+$/, '').length;
    text = `${text.slice(0, end)} [${best.n}]${text.slice(end)}`;
    added.unshift({ n: best.n, sentence: unit.text, score: best.score });
  }
  return { text, added };
}

/** The sentences of a passage worth scoring, each with the text to embed (markup and citations stripped). */
function candidateSentences(text, minWords) {
  const out = [];
  for (const unit of sentenceUnits(String(text))) {
    if (unit.heading) continue;
    const embedText = plainText(unit.text);
    if (countWords(embedText) < minWords) continue;
    out.push({ text: unit.text, start: unit.start, end: unit.end, embedText });
  }
  return out;
}

/** The answer's sentences as plain text; the whole answer if no sentence has three words. */
function answerSentences(answer) {
  const texts = [];
  for (const unit of sentenceUnits(answer)) {
    const text = plainText(unit.text);
    if (countWords(text) >= 3 && !texts.includes(text)) texts.push(text);
  }
  if (texts.length === 0) {
    const whole = plainText(answer);
    if (countWords(whole) > 0) texts.push(whole);
  }
  return texts;
}

/** Without citations, markdown emphasis and code marks, whitespace collapsed. */
function plainText(text) {
  return text.replace(CITATION, '').replace(/[*`]+/g, '').replace(/\s+/g, ' ').trim();
}

function countWords(text) {
  return text.match(WORD)?.length ?? 0;
}

/** The share of the query's terms found in the text (0 when the query has no content terms). */
function termOverlap(queryTerms, text) {
  if (queryTerms.size === 0) return 0;
  const terms = new Set(analyze(text));
  let found = 0;
  for (const term of queryTerms) if (terms.has(term)) found++;
  return found / queryTerms.size;
}

const DEFINITION_QUERIES = [
  /^\s*(?:what|who)\s+(?:is|are|was|were)\s+(.+?)[\s?.!]*$/i, // What is X? Who are X?
  /^\s*what\s+(?:does|do)\s+(.+?)\s+mean\b/i, // What does X mean?
  /^\s*(?:define|definition\s+of|meaning\s+of)\s+(.+?)[\s?.!]*$/i,
];
/** "X is …", "X (Y) are …", "X: …", "X – …": the head is what precedes the verb or the colon. */
const DEFINITION_HEAD = /^(.{1,100}?)(?:\s+(?:is|are|was|were|means|refers\s+to|denotes)\s|\s*:\s|\s+[-–—]\s)/i;
/** "… is called X", "known as X", "the so-called X": what follows names the thing defined. */
const NAMING = /\b(?:called|known\s+as|termed|referred\s+to\s+as|so-called)\s+([^,.;:()!?]+)/gi;

/** The content terms of what a definition question ("What is X?") asks about, or null for other questions. */
function definitionSubject(query) {
  for (const pattern of DEFINITION_QUERIES) {
    const match = pattern.exec(query);
    if (match) {
      const terms = new Set(analyze(match[1]));
      return terms.size > 0 ? terms : null;
    }
  }
  return null;
}

/**
 * Whether a sentence defines the subject: it opens with a head ("Life cycle assessment (LCA) is",
 * "Bolt-on:") made only of subject terms (a parenthesis, such as an abbreviation, aside), or it
 * names the subject ("… is called allocation", "an effect known as induced demand"). Only subject
 * terms may appear, so "The concept behind life cycle assessment is …" is no definition of it.
 */
function definesSubject(sentence, subject) {
  const onlySubject = (phrase) => {
    const terms = analyze(phrase.replace(/\([^)]*\)/g, ' '));
    return terms.length > 0 && terms.every((term) => subject.has(term));
  };
  const head = DEFINITION_HEAD.exec(sentence);
  if (head && onlySubject(head[1])) return true;
  for (const [, named] of sentence.matchAll(NAMING)) {
    if (onlySubject(named)) return true;
  }
  return false;
}

/**
 * Vectors for the texts (each distinct text once), from the cache or from one `embed` call.
 * `once`: texts of this call alone (a question, an answer's sentences), looked up but not stored:
 * the cache is for the passages' sentences, which come back turn after turn, and storing the
 * others would grow it by a vector or more a question for as long as the page stays open
 * (found by scripts/soak.mjs).
 */
async function embedAll(embed, texts, cache, once = new Set()) {
  const vectors = new Map();
  const missing = new Set();
  for (const text of texts) {
    if (vectors.has(text) || missing.has(text)) continue;
    const cached = cache?.get(text);
    if (cached) vectors.set(text, cached);
    else missing.add(text);
  }
  if (missing.size > 0) {
    // Shortest first: the embedder pads each batch to its longest text, so similar lengths together waste less.
    const list = [...missing].sort((a, b) => a.length - b.length);
    const embedded = await embed(list);
    if (!Array.isArray(embedded) || embedded.length !== list.length) {
      throw new TypeError(`embed must return one vector per text (${list.length}), got ${Array.isArray(embedded) ? embedded.length : typeof embedded}`);
    }
    list.forEach((text, i) => {
      const vector = embedded[i];
      if (!(vector instanceof Float32Array) || vector.length === 0) throw new TypeError(`embed returned a bad vector for text ${i}: expected a non-empty Float32Array`);
      vectors.set(text, vector);
      if (!once.has(text)) cache?.set(text, vector);
    });
  }
  return vectors;
}

/** Cosine similarity; the embedder's vectors are unit length, but dividing by the norms costs little. */
function cosineSimilarity(a, b) {
  if (a.length !== b.length) throw new RangeError(`vectors of different lengths (${a.length}, ${b.length}): one embedder for query and sentences`);
  let dot = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i] * b[i];
    aa += a[i] * a[i];
    bb += b[i] * b[i];
  }
  return aa === 0 || bb === 0 ? 0 : dot / Math.sqrt(aa * bb);
}

function validateCommon(name, { sources, embed, cache, minWords }) {
  if (!Array.isArray(sources)) throw new TypeError(`${name}: sources must be an array of { n, text }`);
  sources.forEach((source, i) => {
    if (!Number.isInteger(source?.n) || typeof source.text !== 'string') throw new TypeError(`${name}: source ${i} needs an integer n and a text string`);
  });
  if (typeof embed !== 'function') throw new TypeError(`${name}: embed(texts) is required`);
  if (cache != null && !(cache instanceof Map)) throw new TypeError(`${name}: cache must be a Map from text to vector`);
  if (!Number.isInteger(minWords) || minWords < 1) throw new RangeError(`${name}: minWords must be an integer ≥ 1, got ${minWords}`);
}
