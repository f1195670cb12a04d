// The retrieval layer (www/rag): chunking, the BM25 + dense index, two-stage retrieval with
// reciprocal rank fusion, prompt building with citations and a token budget, and the default corpus.
// Pure JavaScript: no model, no DOM, no network.
import test from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { CHUNK_DEFAULTS, chunkDocument, chunkText } from '../../www/rag/chunk.js';
import { analyze, DocumentIndex } from '../../www/rag/index.js';
import { DEFAULTS, reciprocalRankFusion, retrieve } from '../../www/rag/retrieve.js';
import { buildMessages, EXAMPLE_EXCHANGE, SYSTEM_PROMPT, withoutSourceHeadings } from '../../www/rag/prompt.js';
import { extractCitations } from '../../www/rag/cite.js';

const corpusDir = new URL('../../www/corpus/', import.meta.url);
const countWords = (text) => text.split(/\s+/).filter(Boolean).length;

/** Deterministic prose: numbered sentences of varying length, in paragraphs of five. */
function prose(sentences) {
  const out = [];
  for (let i = 0; i < sentences; i++) {
    out.push(`Sentence ${i} talks about ${'renewable energy systems '.repeat(1 + (i % 4)).trim()} in engineering.`);
    if (i % 5 === 4) out.push('\n\n');
  }
  return out.join(' ').replace(/ \n\n /g, '\n\n');
}

// ---- chunking -----------------------------------------------------------------------------------

test('chunkText: chunks within size, exact slices, overlapping, covering the whole text', () => {
  const text = prose(60);
  const size = 300;
  const overlap = 60;
  const chunks = chunkText(text, { size, overlap, source: 'a.md', page: 2 });
  assert.ok(chunks.length > 5, `${chunks.length} chunks`);
  chunks.forEach((chunk, i) => {
    assert.ok(chunk.text.length <= size, `chunk ${i} is ${chunk.text.length} chars`);
    if (i < chunks.length - 1) assert.ok(chunk.text.length >= size / 2, `chunk ${i} is only ${chunk.text.length} chars`);
    assert.equal(chunk.text, text.slice(chunk.start, chunk.end));
    assert.equal(chunk.text, chunk.text.trim());
    assert.equal(chunk.source, 'a.md');
    assert.equal(chunk.page, 2);
    assert.equal(chunk.id, `a.md#p2.${i}`);
  });
  for (let i = 1; i < chunks.length; i++) {
    const shared = chunks[i - 1].end - chunks[i].start;
    assert.ok(shared > 0 && shared <= overlap, `chunks ${i - 1} and ${i} share ${shared} chars`);
  }
  assert.equal(chunks[0].start, 0);
  assert.equal(chunks.at(-1).end, text.trimEnd().length);
});

test('chunkText: ends at a paragraph, else a sentence, and never splits a word', () => {
  const first = 'Life cycle assessment counts every stage. '.repeat(4).trim(); // 171 chars
  const text = `${first}\n\n${'Another paragraph follows here, with more words in it. '.repeat(6)}`;
  const [chunk] = chunkText(text, { size: 250, overlap: 40 });
  assert.equal(chunk.text, first, 'the chunk should end at the blank line, not fill its window');

  const sentences = 'Engineers design for a changing climate. '.repeat(20);
  for (const c of chunkText(sentences, { size: 200, overlap: 50 }).slice(0, -1)) {
    assert.ok(c.text.endsWith('.'), `should end at a sentence: ${JSON.stringify(c.text.slice(-20))}`);
  }

  const words = 'sustainability '.repeat(100);
  for (const c of chunkText(words, { size: 100, overlap: 30 })) {
    assert.ok(c.start === 0 || /\s/.test(words[c.start - 1]), 'starts at a word');
    assert.ok(/\s/.test(words[c.end] ?? ' '), 'ends at a word');
    assert.match(c.text, /^(sustainability ?)+$/);
  }
});

test('chunkText: text without spaces is cut hard and keeps the exact overlap', () => {
  const chunks = chunkText('x'.repeat(1000), { size: 400, overlap: 100 });
  assert.deepEqual(chunks.map((c) => [c.start, c.end]), [[0, 400], [300, 700], [600, 1000]]);
});

test('chunkText: defaults, empty text, and settings validation', () => {
  assert.deepEqual(CHUNK_DEFAULTS, { size: 800, overlap: 120 });
  const chunks = chunkText(prose(100));
  assert.ok(chunks.every((c) => c.text.length <= 800));
  assert.ok(chunks.slice(1).every((c, i) => chunks[i].end - c.start <= 120 && chunks[i].end > c.start));
  assert.deepEqual(chunkText('  \n\n '), []);
  assert.throws(() => chunkText('abc', { size: 100, overlap: 100 }), /overlap \(100\) must be smaller than chunk size \(100\)/);
  assert.throws(() => chunkText('abc', { size: 0 }), /chunk size must be a positive integer/);
  assert.throws(() => chunkText('abc', { size: 10.5, overlap: 2 }), /chunk size must be a positive integer/);
  assert.throws(() => chunkText('abc', { overlap: -1 }), /overlap must be a non-negative integer/);
  assert.throws(() => chunkText(42), /text must be a string/);
});

test('chunkDocument: keeps page numbers; plain text is page 1', () => {
  const pdf = chunkDocument({ name: 'report.pdf', pages: [{ page: 1, text: prose(10) }, { page: 2, text: prose(30) }, { page: 3, text: '' }] }, { size: 400, overlap: 50 });
  assert.deepEqual([...new Set(pdf.map((c) => c.page))], [1, 2]);
  assert.equal(new Set(pdf.map((c) => c.id)).size, pdf.length, 'ids are unique');
  assert.ok(pdf.every((c) => c.source === 'report.pdf'));
  const page2 = prose(30);
  assert.ok(pdf.filter((c) => c.page === 2).every((c) => page2.slice(c.start, c.end) === c.text), 'offsets are within the page');

  const plain = chunkDocument({ name: 'notes.txt', text: 'Just one short page.' });
  assert.deepEqual(plain, [{ id: 'notes.txt#p1.0', text: 'Just one short page.', source: 'notes.txt', page: 1, start: 0, end: 20 }]);
  assert.throws(() => chunkDocument({ name: 'x', pages: [{ page: 1, text: 'a' }, { page: 1, text: 'b' }] }), /lists page 1 twice/);
  assert.throws(() => chunkDocument({ name: '', text: 'a' }), /non-empty string name/);
  assert.throws(() => chunkDocument({ name: 'x', text: 'a' }, { size: 50, overlap: 60 }), /must be smaller/);
});

// ---- the index ----------------------------------------------------------------------------------

test('analyze: lower-cases, drops stop words, stems', () => {
  assert.deepEqual(analyze('The Engineers were engineering sustainable designs.'), ['engin', 'engin', 'sustain', 'design']);
  assert.deepEqual(analyze('what is it?'), []);
});

/**
 * Four chunks whose BM25 and dense rankings for the query "solar" are known by construction:
 * lexical a > b > c (term frequency 3, 2, 1; d lacks the term); dense for [1, 0, 0]: c > d > b > a.
 */
function solarIndex(IndexClass = DocumentIndex) {
  const index = new IndexClass();
  index.addChunks([
    { id: 'a', text: 'solar solar solar energy', source: 'one.md', page: 1 },
    { id: 'b', text: 'solar solar storage energy', source: 'one.md', page: 2 },
    { id: 'c', text: 'solar grid storage energy', source: 'two.md', page: 1 },
    { id: 'd', text: 'wind turbine storage energy', source: 'two.md', page: 1 },
  ], [
    new Float32Array([0, 1, 0]),
    new Float32Array([0.6, 0.8, 0]),
    new Float32Array([1, 0, 0]),
    new Float32Array([0.8, 0.6, 0]),
  ]);
  return index;
}
const embedSolar = async (texts) => texts.map(() => new Float32Array([1, 0, 0]));

test('DocumentIndex: BM25 and dense search rank as constructed', () => {
  const index = solarIndex();
  assert.equal(index.size, 4);
  assert.equal(index.dimensions, 3);
  const lexical = index.searchLexical('Solar?', 10);
  assert.deepEqual(lexical.map((r) => r.id), ['a', 'b', 'c']);
  assert.ok(lexical[0].score > lexical[1].score && lexical[1].score > lexical[2].score);
  assert.deepEqual(index.searchLexical('solar', 2).map((r) => r.id), ['a', 'b']);
  assert.deepEqual(index.searchLexical('the of and', 10), [], 'stop words match nothing');

  const dense = index.searchDense(new Float32Array([1, 0, 0]), 10);
  assert.deepEqual(dense.map((r) => r.id), ['c', 'd', 'b', 'a']);
  assert.deepEqual(dense.map((r) => Math.round(r.score * 1e6) / 1e6), [1, 0.8, 0.6, 0]);
  assert.equal(index.get('c').source, 'two.md');

  assert.throws(() => index.addChunks([{ id: 'a', text: 'again' }]), /duplicate chunk id "a"/);
  assert.throws(() => index.addChunks([{ id: 'e', text: 'x' }], [new Float32Array(2)]), /2 dimensions, the index has 3/);
  assert.throws(() => index.addChunks([{ id: 'e', text: 'x' }], []), /expected 1 vectors/);
  assert.throws(() => index.searchDense(new Float32Array(2), 3), /3 dimensions/);
  assert.throws(() => index.searchLexical('solar', 0), /k must be a positive integer/);
  assert.equal(index.size, 4, 'failed adds add nothing');
});

test('DocumentIndex: removeSource drops a document from both searches', () => {
  const index = solarIndex();
  assert.equal(index.removeSource('one.md'), 2);
  assert.equal(index.size, 2);
  assert.deepEqual(index.sources, ['two.md']);
  assert.equal(index.get('a'), undefined);
  assert.deepEqual(index.searchLexical('solar', 10).map((r) => r.id), ['c']);
  assert.deepEqual(index.searchDense(new Float32Array([1, 0, 0]), 10).map((r) => r.id), ['c', 'd']);
  assert.equal(index.removeSource('missing.md'), 0);
  // The removed ids can be indexed again (re-indexing an edited document).
  index.addChunks([{ id: 'a', text: 'solar again', source: 'one.md', page: 1 }], [new Float32Array([0, 0, 1])]);
  assert.equal(index.size, 3);
});

test('DocumentIndex: toJSON / fromJSON round-trip through a JSON string', () => {
  const index = solarIndex();
  index.addChunks([{ id: 'e', text: 'solar without a vector', source: 'three.md', page: null }]);
  const restored = DocumentIndex.fromJSON(JSON.stringify(index));
  assert.equal(restored.size, 5);
  assert.equal(restored.vectorCount, 4);
  assert.deepEqual(restored.toJSON(), index.toJSON());
  assert.deepEqual(restored.searchLexical('solar energy', 10), index.searchLexical('solar energy', 10));
  assert.deepEqual(restored.searchDense(new Float32Array([0.6, 0.8, 0]), 10), index.searchDense(new Float32Array([0.6, 0.8, 0]), 10));
  assert.deepEqual(restored.get('e'), index.get('e'));
  assert.throws(() => DocumentIndex.fromJSON({ format: 'other' }), /not a version 1 edgellm document index/);
});

// ---- retrieval ----------------------------------------------------------------------------------

test('retrieve: hybrid order is exactly weighted RRF with k = 60', async () => {
  const index = solarIndex();
  const rrf = (lexicalRank, denseRank, { lexical = 1, dense = 1 } = {}) =>
    (lexicalRank ? lexical / (60 + lexicalRank) : 0) + (denseRank ? dense / (60 + denseRank) : 0);

  const result = await retrieve({ index, query: 'solar', embed: embedSolar });
  // lexical ranks a1 b2 c3; dense ranks c1 d2 b3 a4
  const expected = [['c', rrf(3, 1)], ['a', rrf(1, 4)], ['b', rrf(2, 3)], ['d', rrf(null, 2)]];
  assert.deepEqual(result.candidates.map((c) => c.id), expected.map(([id]) => id));
  result.candidates.forEach((c, i) => assert.ok(Math.abs(c.score - expected[i][1]) < 1e-12, `${c.id}: ${c.score} vs ${expected[i][1]}`));
  assert.deepEqual(result.candidates.map((c) => [c.lexicalRank, c.denseRank]), [[3, 1], [1, 4], [2, 3], [null, 2]]);
  assert.deepEqual(result.passages.map((p) => [p.id, p.rank, p.source, p.page]), [['c', 1, 'two.md', 1], ['a', 2, 'one.md', 1], ['b', 3, 'one.md', 2]]);
  assert.equal(result.passages[0].text, 'solar grid storage energy');
  assert.ok(Math.abs(result.passages[0].score - rrf(3, 1)) < 1e-12);
  for (const key of ['lexicalMs', 'embedMs', 'denseMs', 'fuseMs', 'rerankMs', 'totalMs']) assert.ok(result.timings[key] >= 0, key);

  const weights = { lexical: 2, dense: 1 };
  const weighted = await retrieve({ index, query: 'solar', embed: embedSolar, weights });
  const expectedWeighted = [['a', rrf(1, 4, weights)], ['c', rrf(3, 1, weights)], ['b', rrf(2, 3, weights)], ['d', rrf(null, 2, weights)]];
  assert.deepEqual(weighted.candidates.map((c) => c.id), expectedWeighted.map(([id]) => id));
  weighted.candidates.forEach((c, i) => assert.ok(Math.abs(c.score - expectedWeighted[i][1]) < 1e-12));

  const lexicalOnly = await retrieve({ index, query: 'solar', mode: 'lexical' });
  assert.deepEqual(lexicalOnly.passages.map((p) => p.id), ['a', 'b', 'c']);
  assert.equal(lexicalOnly.timings.embedMs, 0);
  const denseOnly = await retrieve({ index, query: 'solar', embed: embedSolar, mode: 'dense' });
  assert.deepEqual(denseOnly.passages.map((p) => [p.id, Math.round(p.score * 10) / 10]), [['c', 1], ['d', 0.8], ['b', 0.6]]);
});

test('reciprocalRankFusion: ties keep first-seen order', () => {
  const fused = reciprocalRankFusion([{ results: [{ id: 'x' }] }, { results: [{ id: 'y' }] }], 60);
  assert.deepEqual(fused, [{ id: 'x', score: 1 / 61 }, { id: 'y', score: 1 / 61 }]);
});

/** 40 chunks that all match "energy", with distinct unit vectors, recording the k each search is asked for. */
function largeIndex() {
  class RecordingIndex extends DocumentIndex {
    asked = [];
    searchLexical(query, k) { this.asked.push(['lexical', k]); return super.searchLexical(query, k); }
    searchDense(vector, k) { this.asked.push(['dense', k]); return super.searchDense(vector, k); }
  }
  const index = new RecordingIndex();
  const chunks = Array.from({ length: 40 }, (_, i) => ({ id: `c${i}`, text: `energy ${'efficiency '.repeat(i % 7)}topic${i}`, source: `doc${i % 5}.md`, page: 1 }));
  const vectors = chunks.map((_, i) => new Float32Array([Math.cos(i / 10), Math.sin(i / 10)]));
  index.addChunks(chunks, vectors);
  return index;
}
const embedLarge = async (texts) => texts.map(() => new Float32Array([1, 0]));

test('retrieve: 30 candidates and 3 passages by default; custom topK honoured', async () => {
  assert.deepEqual(DEFAULTS, { topKInitial: 30, topKFinal: 3, rrfK: 60, weights: { lexical: 1, dense: 1 } });
  const index = largeIndex();
  const union = new Set([...index.searchLexical('energy efficiency', 30), ...index.searchDense(new Float32Array([1, 0]), 30)].map((r) => r.id));
  assert.ok(union.size > 30, 'the two lists together hold more than 30 chunks');
  index.asked = [];
  const byDefault = await retrieve({ index, query: 'energy efficiency', embed: embedLarge });
  assert.equal(byDefault.candidates.length, 30, 'the fused list is cut to topKInitial');
  assert.equal(byDefault.passages.length, 3);
  assert.deepEqual(byDefault.passages.map((p) => p.id), byDefault.candidates.slice(0, 3).map((c) => c.id), 'without a reranker stage 2 keeps the fused order');
  assert.deepEqual(index.asked, [['lexical', 30], ['dense', 30]]);

  index.asked = [];
  const custom = await retrieve({ index, query: 'energy efficiency', embed: embedLarge, topKInitial: 8, topKFinal: 5 });
  assert.equal(custom.candidates.length, 8);
  assert.deepEqual(custom.passages.map((p) => p.rank), [1, 2, 3, 4, 5]);
  assert.deepEqual(index.asked, [['lexical', 8], ['dense', 8]]);

  const one = await retrieve({ index, query: 'energy', mode: 'lexical', topKInitial: 1, topKFinal: 1 });
  assert.equal(one.passages.length, 1);
});

test('retrieve: a reranker reorders the stage-1 candidates', async () => {
  const index = largeIndex();
  let seen = null;
  // Scores by topic number: an order unrelated to the fusion's, so its effect is visible and predictable.
  const rerank = async (query, candidates) => {
    seen = { query, count: candidates.length, hasText: candidates.every((c) => typeof c.text === 'string') };
    return candidates.map((c) => Number(c.id.slice(1)));
  };
  const result = await retrieve({ index, query: 'energy', embed: embedLarge, rerank });
  assert.deepEqual(seen, { query: 'energy', count: 30, hasText: true });
  const expected = result.candidates.map((c) => c.id).sort((a, b) => Number(b.slice(1)) - Number(a.slice(1))).slice(0, 3);
  assert.deepEqual(result.passages.map((p) => p.id), expected);
  assert.deepEqual(result.passages.map((p) => p.score), expected.map((id) => Number(id.slice(1))));
  await assert.rejects(retrieve({ index, query: 'energy', embed: embedLarge, rerank: () => [1, 2] }), { code: 'invalid_rerank' });
});

test('retrieve: invalid settings and missing inputs are explicit errors', async () => {
  const index = largeIndex();
  const call = (options) => retrieve({ index, query: 'energy', embed: embedLarge, ...options });
  await assert.rejects(call({ topKInitial: 3, topKFinal: 5 }), { code: 'invalid_settings', message: /topKFinal \(5\) cannot be larger than topKInitial \(3\)/ });
  await assert.rejects(call({ topKFinal: 0 }), { code: 'invalid_settings', message: /topKFinal must be an integer ≥ 1/ });
  await assert.rejects(call({ topKInitial: 2.5 }), { code: 'invalid_settings', message: /topKInitial must be an integer ≥ 1, got 2.5/ });
  await assert.rejects(call({ topKInitial: '30' }), { code: 'invalid_settings' });
  await assert.rejects(call({ mode: 'semantic' }), { code: 'invalid_settings', message: /mode must be one of hybrid, lexical, dense/ });
  await assert.rejects(call({ weights: { lexical: -1 } }), { code: 'invalid_settings', message: /weights.lexical/ });
  await assert.rejects(call({ weights: { bm25: 1 } }), { code: 'invalid_settings', message: /unknown weight "bm25"/ });
  await assert.rejects(call({ query: '   ' }), { code: 'empty_query' });
  await assert.rejects(call({ embed: undefined }), { code: 'no_embedder' });

  const lexicalOnlyIndex = new DocumentIndex();
  lexicalOnlyIndex.addChunks([{ id: 'x', text: 'energy' }]);
  await assert.rejects(retrieve({ index: lexicalOnlyIndex, query: 'energy', embed: embedLarge }), { code: 'no_vectors' });
});

test('retrieve: an empty corpus is an explicit error', async () => {
  await assert.rejects(retrieve({ index: new DocumentIndex(), query: 'What is LCA?', mode: 'lexical' }), (error) => {
    assert.equal(error.code, 'empty_corpus');
    assert.match(error.message, /No documents are indexed/);
    return true;
  });
  const index = solarIndex();
  index.removeSource('one.md');
  index.removeSource('two.md');
  await assert.rejects(retrieve({ index, query: 'solar', embed: embedSolar }), { code: 'empty_corpus' });
});

// ---- prompt -------------------------------------------------------------------------------------

const passages = [1, 2, 3].map((n) => ({
  id: `p${n}`, source: `doc${n}.md`, page: n === 3 ? null : n, score: 1 / n,
  text: Array.from({ length: 60 }, (_, i) => `w${n}_${i}`).join(' '),
}));

test('buildMessages: numbered sources match the prompt, and citations map back to them', () => {
  const { messages, sources, tokens } = buildMessages({ question: 'What is it?', passages, countTokens: countWords, contextBudget: 10_000 });
  assert.deepEqual(messages.map((m) => m.role), ['system', 'user', 'assistant', 'user']);
  assert.equal(messages[0].content, SYSTEM_PROMPT);
  assert.match(SYSTEM_PROMPT, /concisely/);
  assert.match(SYSTEM_PROMPT, /\[1\]/);
  assert.deepEqual(messages.slice(1, 3), EXAMPLE_EXCHANGE);
  assert.match(EXAMPLE_EXCHANGE[1].content, /\[1\]\.$/, 'the worked answer cites its source');
  assert.deepEqual(sources.map((s) => [s.n, s.source, s.page, s.score, s.truncated]), [[1, 'doc1.md', 1, 1, false], [2, 'doc2.md', 2, 0.5, false], [3, 'doc3.md', null, 1 / 3, false]]);
  const user = messages.at(-1).content;
  for (const s of sources) {
    const label = s.page == null ? `[${s.n}] ${s.source}` : `[${s.n}] ${s.source}, page ${s.page}`;
    assert.ok(user.includes(`${label}\n${s.text}`), `prompt shows ${label} with its text`);
  }
  assert.ok(user.indexOf('[1] doc1.md') < user.indexOf('[2] doc2.md') && user.indexOf('[2] doc2.md') < user.indexOf('[3] doc3.md'));
  assert.ok(user.endsWith('Question: What is it?'));
  assert.equal(tokens, messages.reduce((n, m) => n + countWords(m.content), 0));

  const answer = 'It is w2 [2], as also said in [1, 3] and again [2]. See also [7].';
  assert.deepEqual(extractCitations(answer), [2, 1, 3, 7]);
  assert.deepEqual(extractCitations(answer, sources.length).map((n) => sources[n - 1].source), ['doc2.md', 'doc1.md', 'doc3.md']);
  assert.deepEqual(extractCitations('ranges [1-3] and [2–4], years [1990-2020], none [a]'), [1, 2, 3, 4]);
  assert.deepEqual(extractCitations('no citations'), []);
});

test('withoutSourceHeadings: a source heading copied from the prompt onto a line of its own goes, nothing else', () => {
  const { sources } = buildMessages({ question: 'What is it?', passages, countTokens: countWords, contextBudget: 10_000 });
  assert.equal(withoutSourceHeadings(`[2] doc2.md, page 2\n${passages[1].text}`, sources), passages[1].text);
  assert.equal(withoutSourceHeadings('First.\n  [3] doc3.md \nSecond [1].', sources), 'First.\nSecond [1].');
  assert.equal(withoutSourceHeadings('[4] doc1.md, page 1\nCopied.', sources), 'Copied.', 'a copied heading with a number of its own');
  for (const kept of [
    'It is w2 [2].', // a citation in prose
    '[2] doc2.md, page 2 says it is w2.', // the heading begins a sentence of the answer's own
    '[1] doc1.md, page 2', // no source is doc1.md, page 2
    '[2] doc4.md', // nor doc4.md
    '',
  ]) assert.equal(withoutSourceHeadings(kept, sources), kept);
});

test('buildMessages: the token budget holds, and lower-ranked passages go first', () => {
  const build = (budget, list = passages) => buildMessages({ question: 'What is it?', passages: list, countTokens: countWords, contextBudget: budget });
  const twoPassages = build(10_000, passages.slice(0, 2)).tokens;

  const exact = build(twoPassages);
  assert.deepEqual(exact.sources.map((s) => s.source), ['doc1.md', 'doc2.md'], 'passage 3 is dropped, not 1 or 2');
  assert.equal(exact.tokens, twoPassages);

  const roomForPart = build(twoPassages + 30);
  assert.deepEqual(roomForPart.sources.map((s) => [s.source, s.truncated]), [['doc1.md', false], ['doc2.md', false], ['doc3.md', true]]);
  assert.ok(roomForPart.tokens <= twoPassages + 30);
  assert.ok(roomForPart.sources[2].text.endsWith(' …'));
  assert.ok(passages[2].text.startsWith(roomForPart.sources[2].text.slice(0, -2)), 'truncation keeps the beginning, whole words');
  assert.ok(roomForPart.messages.at(-1).content.includes(`[3] doc3.md\n${roomForPart.sources[2].text}`));

  // From room for all three passages down to room for the instructions and question alone.
  const fixed = build(10_000, []).tokens;
  let previous = Infinity;
  for (let budget = fixed + 200; budget >= fixed; budget -= 7) {
    const { sources, tokens } = build(budget);
    assert.ok(tokens <= budget, `${tokens} tokens over a budget of ${budget}`);
    assert.deepEqual(sources.map((s) => s.n), sources.map((_, i) => i + 1));
    assert.deepEqual(sources.map((s) => s.id), passages.slice(0, sources.length).map((p) => p.id), 'kept passages are the top-ranked ones');
    assert.ok(sources.length <= previous, 'a smaller budget never keeps more passages');
    previous = sources.length;
  }
  assert.equal(previous, 0, 'at the smallest budget no passage fits, rather than a useless scrap of one');

  assert.throws(() => build(10), (error) => error.code === 'context_budget' && /over the context budget of 10/.test(error.message));
});

test('buildMessages: conversation memory keeps the last 3 exchanges, without old citations, oldest dropped first', () => {
  const history = [1, 2, 3, 4].flatMap((n) => [
    { role: 'user', content: `question ${n}` },
    { role: 'assistant', content: `answer ${n} [1], more [2, 3].` },
  ]);
  const roomy = buildMessages({ question: 'And then?', passages: passages.slice(0, 1), history, countTokens: countWords, contextBudget: 10_000 });
  assert.deepEqual(roomy.messages.slice(1 + EXAMPLE_EXCHANGE.length, -1), [2, 3, 4].flatMap((n) => [
    { role: 'user', content: `question ${n}` },
    { role: 'assistant', content: `answer ${n}, more.` },
  ]));
  assert.equal(roomy.messages.at(-1).role, 'user');

  const one = buildMessages({ question: 'And then?', passages: passages.slice(0, 1), history, countTokens: countWords, contextBudget: 10_000, historyExchanges: 1 });
  assert.deepEqual(one.messages.slice(1 + EXAMPLE_EXCHANGE.length, -1).map((m) => m.content), ['question 4', 'answer 4, more.']);

  // Room for the passage and two exchanges: the oldest of the three goes, the passage stays.
  const exchangeTokens = countWords('question 4') + countWords('answer 4, more.');
  const tight = buildMessages({ question: 'And then?', passages: passages.slice(0, 1), history, countTokens: countWords, contextBudget: roomy.tokens - exchangeTokens });
  assert.deepEqual(tight.messages.slice(1 + EXAMPLE_EXCHANGE.length, -1).map((m) => m.content), ['question 3', 'answer 3, more.', 'question 4', 'answer 4, more.']);
  assert.equal(tight.sources.length, 1);
  assert.ok(tight.tokens <= roomy.tokens - exchangeTokens);
});

// ---- the default corpus -------------------------------------------------------------------------

test('default corpus: each sample question finds its document in the BM25 top 3', async () => {
  const { documents } = JSON.parse(await readFile(new URL('index.json', corpusDir), 'utf8'));
  assert.ok(documents.length >= 6 && documents.length <= 8, `${documents.length} documents`);
  const index = new DocumentIndex();
  for (const { file, title } of documents) {
    const text = await readFile(new URL(file, corpusDir), 'utf8');
    const words = countWords(text);
    assert.ok(words >= 400 && words <= 900, `${file} has ${words} words`);
    assert.ok(text.startsWith(`# ${title}\n`), `${file} starts with its title`);
    index.addChunks(chunkDocument({ name: file, text }));
  }

  const expectations = {
    'What is sustainability in engineering?': 'sustainability-in-engineering.md',
    'Explain the concept of life cycle assessment.': 'life-cycle-assessment.md',
    'How does climate change impact engineering design?': 'climate-change-and-engineering-design.md',
  };
  for (const [query, file] of Object.entries(expectations)) {
    const { passages: top3 } = await retrieve({ index, query, mode: 'lexical' });
    assert.equal(top3.length, 3);
    assert.ok(top3.some((p) => p.source === file), `"${query}" → ${top3.map((p) => p.source).join(', ')}`);
  }
});
