// Sentences that answer (www/rag/extract.js): sentence splitting with exact offsets, the
// extractive answer (the sentences of the retrieved passages that answer the question) and the
// supporting sentence of each cited source, with the real all-MiniLM-L6-v2 embedder (wasm, CPU;
// needs www/pkg/ built and the model fetched, as tests/js/embedder.test.mjs does).
import test from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { Embedder } from '../../www/engine/index.js';
import { chunkDocument } from '../../www/rag/chunk.js';
import { DocumentIndex } from '../../www/rag/index.js';
import { retrieve } from '../../www/rag/retrieve.js';
import { EXTRACT_DEFAULTS, extractiveAnswer, splitSentences, supportingSentences } from '../../www/rag/extract.js';

const corpusDir = new URL('../../www/corpus/', import.meta.url);
const readCorpus = (file) => readFile(new URL(file, corpusDir), 'utf8');
const { documents } = JSON.parse(await readCorpus('index.json'));

const embedder = await Embedder.load();
/** The real embedder, counting its calls and texts. */
const calls = [];
const embed = async (texts) => {
  calls.push(texts.length);
  return embedder.embed(texts);
};

/** Each sentence is its exact, trimmed slice of the text, in order, without overlaps. */
function assertExactSlices(text, sentences) {
  let last = 0;
  for (const s of sentences) {
    assert.equal(s.text, text.slice(s.start, s.end), `offsets of ${JSON.stringify(s.text)}`);
    assert.equal(s.text, s.text.trim());
    assert.ok(s.text.length > 0);
    assert.ok(s.start >= last, `"${s.text}" overlaps the sentence before it`);
    last = s.end;
  }
}

/** The first chunk of a corpus document, as a numbered source. */
async function firstPassage(file, n) {
  const [chunk] = chunkDocument({ name: file, text: await readCorpus(file) });
  return { n, id: chunk.id, source: file, page: 1, score: null, text: chunk.text, truncated: false };
}

// ---- splitSentences -----------------------------------------------------------------------------

test('splitSentences: abbreviations, decimals, figures, headings, list items, citations, exact offsets', () => {
  const text = [
    '## Results',
    '',
    'The mean was 2.5 kg, i.e. less than expected (see Fig. 3). Smith et al. (2020) agree, e.g. in Table 2. Prices rose 3.5% vs. last year!',
    'Is that all? No: costs, etc. Then came the U.S. Army in 1999.',
    '- First item. It has two sentences',
    '  that wrap across lines.',
    '- Second item',
    '1. Numbered item: one.',
    '',
    'A quote: "It works." After the quote.[1] Cited next [2][3].\r',
    'Dr. J. R. R. Tolkien wrote it… and more. The end',
  ].join('\n');
  const sentences = splitSentences(text);
  assertExactSlices(text, sentences);
  assert.deepEqual(sentences.map((s) => s.text), [
    'Results',
    'The mean was 2.5 kg, i.e. less than expected (see Fig. 3).',
    'Smith et al. (2020) agree, e.g. in Table 2.',
    'Prices rose 3.5% vs. last year!',
    'Is that all?',
    'No: costs, etc.',
    'Then came the U.S. Army in 1999.',
    'First item.',
    'It has two sentences\n  that wrap across lines.',
    'Second item',
    'Numbered item: one.',
    'A quote: "It works."',
    'After the quote.[1]',
    'Cited next [2][3].',
    'Dr. J. R. R. Tolkien wrote it… and more.',
    'The end',
  ]);
  assert.deepEqual(sentences[0], { text: 'Results', start: 3, end: 10 });
});

test('splitSentences: empty and odd input, every corpus document, and speed', async () => {
  assert.deepEqual(splitSentences(''), []);
  assert.deepEqual(splitSentences(' \n\n \t'), []);
  assert.deepEqual(splitSentences('---\n***'), []);
  assert.deepEqual(splitSentences('No end mark'), [{ text: 'No end mark', start: 0, end: 11 }]);
  assert.deepEqual(splitSentences('...'), [{ text: '...', start: 0, end: 3 }]);
  assert.deepEqual(splitSentences('One.Two. Three'), [{ text: 'One.Two.', start: 0, end: 8 }, { text: 'Three', start: 9, end: 14 }]);
  assert.deepEqual(splitSentences(null), []);

  let all = '';
  for (const { file } of documents) {
    const text = await readCorpus(file);
    const sentences = splitSentences(text);
    assertExactSlices(text, sentences);
    assert.ok(sentences.length > 20, `${file}: ${sentences.length} sentences`);
    assert.ok(sentences.every((s) => !/^[#>-]|^\d+\.\s/.test(s.text)), `${file}: a heading or list marker was kept`);
    all += `${text}\n\n`;
  }
  const big = all.repeat(30); // about 1 MB
  const startedAt = performance.now();
  const sentences = splitSentences(big);
  const ms = performance.now() - startedAt;
  console.log(`splitSentences: ${big.length} characters, ${sentences.length} sentences in ${ms.toFixed(1)} ms`);
  assert.ok(ms < 1000, `${ms} ms`);
  assertExactSlices(big, sentences.slice(0, 2000));

  // Hostile input stays linear: runs of marks, brackets, quotes, one endless word, many tiny lines.
  const hostile = ['a. '.repeat(100_000), '.'.repeat(300_000), `x. ${'('.repeat(200_000)}`, `${'A.'.repeat(100_000)} B`,
    'w'.repeat(300_000) + '. End', '[1]. '.repeat(50_000), '- x\n'.repeat(50_000), '# h\n\n'.repeat(50_000)];
  const hostileStart = performance.now();
  for (const text of hostile) assertExactSlices(text, splitSentences(text));
  assert.ok(performance.now() - hostileStart < 3000, `hostile input took ${performance.now() - hostileStart} ms`);
});

// ---- extractiveAnswer ---------------------------------------------------------------------------

test('extractiveAnswer: the defining sentence of the right passage, best first, exact offsets, one embed call', async () => {
  const sources = [
    await firstPassage('circular-economy-and-materials.md', 1),
    await firstPassage('life-cycle-assessment.md', 2),
    await firstPassage('sustainability-in-engineering.md', 3),
  ];
  calls.length = 0;
  const { sentences, ms } = await extractiveAnswer({ query: 'What is life cycle assessment?', sources, embed });
  assert.equal(calls.length, 1, 'one embed call for the query and every sentence');
  assert.ok(sentences.length > 0 && sentences.length <= EXTRACT_DEFAULTS.limit);
  const [top] = sentences;
  assert.equal(top.n, 2, `top sentence from source ${top.n}: ${top.text}`);
  assert.match(top.text, /^Life cycle assessment \(LCA\) is a method for measuring the environmental impacts/);
  for (const s of sentences) {
    assert.equal(s.text, sources[s.n - 1].text.slice(s.start, s.end));
    assert.ok(Number.isFinite(s.score));
  }
  assert.ok(sentences.every((s, i) => i === 0 || sentences[i - 1].score >= s.score), 'best first');
  assert.ok(sentences.every((s) => s.text !== 'Life cycle assessment'), 'headings are not candidates');
  assert.ok(ms > 0);

  const circular = await extractiveAnswer({ query: 'What is a circular economy?', sources, embed, limit: 1 });
  assert.equal(circular.sentences.length, 1);
  assert.equal(circular.sentences[0].n, 1);
  assert.match(circular.sentences[0].text, /^A circular economy aims instead to keep products/);

  const sustainability = await extractiveAnswer({ query: 'Who popularised sustainable development?', sources, embed, limit: 2 });
  assert.equal(sustainability.sentences[0].n, 3);
  assert.match(sustainability.sentences[0].text, /Brundtland Commission/);

  // minScore drops weak sentences; an impossible one leaves none.
  const strict = await extractiveAnswer({ query: 'What is life cycle assessment?', sources, embed, limit: 10, minScore: 0.5 });
  assert.ok(strict.sentences.length >= 1 && strict.sentences.every((s) => s.score >= 0.5));
  assert.deepEqual((await extractiveAnswer({ query: 'What is life cycle assessment?', sources, embed, minScore: 2 })).sentences, []);
});

test('extractiveAnswer: time for 3 passages of about 800 characters, cold and with warm sentence vectors', async () => {
  const { passages } = await retrieveLexical('What is life cycle assessment?');
  const sources = passages.map((p, i) => ({ n: i + 1, ...p }));
  console.log(`passages: ${sources.map((s) => s.text.length).join(', ')} characters`);
  await embed(['warm up the embedder']);
  const cold = [];
  for (let i = 0; i < 3; i++) cold.push((await extractiveAnswer({ query: `What is life cycle assessment? (${i})`, sources, embed })).ms);
  // With the sentences' vectors cached (computed once per passage, e.g. while the model writes or
  // when the documents are indexed), only the question is embedded.
  const cache = new Map();
  await extractiveAnswer({ query: 'What does LCA measure?', sources, embed, cache });
  const warm = [];
  calls.length = 0;
  for (let i = 0; i < 3; i++) warm.push((await extractiveAnswer({ query: `Which phases does an LCA have? (${i})`, sources, embed, cache })).ms);
  assert.deepEqual(calls, [1, 1, 1], 'warm: only the question is embedded');
  const median = (xs) => [...xs].sort((a, b) => a - b)[1];
  console.log(`extractiveAnswer, 3 passages: cold ${cold.map((x) => x.toFixed(0)).join(', ')} ms (median ${median(cold).toFixed(0)}); warm cache ${warm.map((x) => x.toFixed(1)).join(', ')} ms (median ${median(warm).toFixed(1)})`);
  assert.ok(median(warm) < 250, `warm extractiveAnswer took ${median(warm)} ms`);
});

// A handful of questions over the whole default corpus: BM25 finds 3 passages, extractiveAnswer
// ranks their sentences. Prints the rank of the sentence that answers under each scoring.
const QUESTIONS = [
  { q: 'What is life cycle assessment?', gold: 'Life cycle assessment (LCA) is a method for measuring' },
  { q: 'What is allocation in LCA?', gold: 'This is called allocation' },
  { q: 'What is the bolt-on approach to teaching sustainability?', gold: 'a separate course on environmental issues' },
  { q: 'What is systems thinking?', gold: 'Systems thinking is the practice of understanding a problem' },
  { q: 'What is induced demand?', gold: 'an effect known as induced demand' },
  { q: 'Why does climate change break traditional design assumptions?', gold: 'Climate change breaks the stationarity assumption' },
  { q: 'Why do business models matter for a circular economy?', gold: 'give manufacturers a reason to design durable' },
  { q: 'What is the most common obstacle to integrating sustainability into the curriculum?', gold: 'The most common obstacle to integration' },
  { q: 'What is a functional unit?', gold: 'is the quantified service that the compared options provide' },
  { q: 'What is service learning?', gold: 'often called service learning' },
  { q: 'How does extreme heat affect transport infrastructure?', gold: 'extreme heat softens asphalt' },
  { q: 'When should stakeholder engagement start?', gold: 'Genuine engagement starts early' },
  { q: 'How can programmes measure their progress in teaching sustainability?', gold: 'Programmes can track progress by auditing' },
  { q: 'Who popularised the idea of sustainable development?', gold: 'Brundtland Commission' },
];

let lexicalIndex;
async function retrieveLexical(query) {
  if (!lexicalIndex) {
    lexicalIndex = new DocumentIndex();
    for (const { file } of documents) lexicalIndex.addChunks(chunkDocument({ name: file, text: await readCorpus(file) }));
  }
  return retrieve({ index: lexicalIndex, query, mode: 'lexical' });
}

test('extractiveAnswer: the default scoring ranks answers at least as well as cosine alone', async () => {
  const scorings = {
    'cosine only': { lexicalWeight: 0, definitionBoost: 0 },
    'cosine + lexical': { lexicalWeight: EXTRACT_DEFAULTS.lexicalWeight, definitionBoost: 0 },
    'default (+ definition cue)': {},
  };
  const cache = new Map(); // every scoring sees the same vectors
  const ranks = Object.fromEntries(Object.keys(scorings).map((name) => [name, []]));
  for (const { q, gold } of QUESTIONS) {
    const { passages } = await retrieveLexical(q);
    const sources = passages.map((p, i) => ({ n: i + 1, ...p }));
    for (const [name, options] of Object.entries(scorings)) {
      const { sentences } = await extractiveAnswer({ query: q, sources, embed, limit: 100, cache, ...options });
      const rank = sentences.findIndex((s) => s.text.includes(gold)) + 1;
      assert.ok(rank > 0, `"${q}": the answering sentence is not among the candidates`);
      ranks[name].push(rank);
    }
  }
  const summary = {};
  for (const [name, list] of Object.entries(ranks)) {
    summary[name] = { top1: list.filter((r) => r === 1).length, mrr: list.reduce((s, r) => s + 1 / r, 0) / list.length };
    console.log(`${name.padEnd(28)} ranks ${list.join(' ')}  top-1 ${summary[name].top1}/${list.length}  MRR ${summary[name].mrr.toFixed(3)}`);
  }
  assert.ok(summary['default (+ definition cue)'].top1 >= summary['cosine only'].top1);
  assert.ok(summary['default (+ definition cue)'].mrr >= summary['cosine only'].mrr);
});

// ---- supportingSentences ------------------------------------------------------------------------

test('supportingSentences: the sentence each cited source supports, only cited sources, one embed call', async () => {
  const sources = [
    await firstPassage('circular-economy-and-materials.md', 1),
    await firstPassage('life-cycle-assessment.md', 2),
    await firstPassage('sustainability-in-engineering.md', 3),
  ];
  const answer = 'LCA exposes trade-offs: a lighter car body can require a material that takes more energy to make, '
    + 'and an efficient appliance can be difficult to recycle [2]. The goal of a circular economy is to keep products '
    + 'and materials in use, at their highest value, for as long as it can [1].';
  calls.length = 0;
  const support = await supportingSentences({ answer, sources, embed });
  assert.equal(calls.length, 1);
  assert.deepEqual([...support.keys()].sort(), [1, 2], 'only the cited sources');
  const [lca] = support.get(2);
  assert.match(lca.text, /^A lighter car body may need more energy-intensive material/);
  assert.equal(lca.text, sources[1].text.slice(lca.start, lca.end));
  const [circular] = support.get(1);
  assert.match(circular.text, /^A circular economy aims instead to keep products/);

  // No (valid) citation: every source is considered; perSource sentences each, best first.
  for (const uncited of [answer.replace(/ \[\d\]/g, ''), answer.replace(/\[\d\]/g, '[9]')]) {
    const all = await supportingSentences({ answer: uncited, sources, embed, perSource: 2 });
    assert.deepEqual([...all.keys()].sort(), [1, 2, 3]);
    for (const list of all.values()) {
      assert.equal(list.length, 2);
      assert.ok(list[0].score >= list[1].score);
    }
    assert.match(all.get(2)[0].text, /^A lighter car body/);
  }

  // With the passages' vectors cached by extractiveAnswer, only the answer's sentences are embedded.
  const cache = new Map();
  await extractiveAnswer({ query: 'What is life cycle assessment?', sources, embed, cache });
  calls.length = 0;
  const cached = await supportingSentences({ answer, sources, embed, cache });
  assert.deepEqual(calls, [2], 'the two answer sentences');
  // Same sentence; the score differs only in float rounding (the vectors came from other batches).
  assert.deepEqual(cached.get(2).map(({ text, start, end }) => ({ text, start, end })), support.get(2).map(({ text, start, end }) => ({ text, start, end })));
  assert.ok(Math.abs(cached.get(2)[0].score - support.get(2)[0].score) < 1e-4);
});

// ---- contracts, with a stand-in embedder ----------------------------------------------------------

/** Bag-of-words vectors: deterministic and instant, for the contract tests. */
async function wordEmbed(texts) {
  return texts.map((text) => {
    const v = new Float32Array(64);
    for (const word of text.toLowerCase().match(/[a-z0-9]+/g) ?? []) {
      let h = 0;
      for (const ch of word) h = (h * 31 + ch.charCodeAt(0)) % 64;
      v[h] += 1;
    }
    const norm = Math.hypot(...v) || 1;
    return v.map((x) => x / norm);
  });
}

test('extractiveAnswer and supportingSentences: empty input, fragments, duplicates and bad arguments', async () => {
  assert.deepEqual((await extractiveAnswer({ query: 'anything', sources: [], embed: wordEmbed })).sentences, []);
  const fragments = [{ n: 1, text: '# A heading\n\nToo short here.\n- tiny item' }];
  assert.deepEqual((await extractiveAnswer({ query: 'heading', sources: fragments, embed: wordEmbed })).sentences, []);

  // The same sentence in two overlapping passages counts once, for the better-ranked source.
  const shared = 'Solar panels turn sunlight into electricity for the building.';
  const sources = [{ n: 1, text: `${shared} Wind turbines need steady wind to run well.` }, { n: 2, text: `Batteries store energy for later use at night. ${shared}` }];
  const { sentences } = await extractiveAnswer({ query: 'solar panels electricity', sources, embed: wordEmbed, limit: 10 });
  assert.equal(sentences.length, 3);
  assert.deepEqual(sentences.filter((s) => s.text === shared).map((s) => s.n), [1]);
  assert.equal(sentences[0].text, shared);

  const support = await supportingSentences({ answer: 'Batteries store energy for the night [2][5].', sources, embed: wordEmbed });
  assert.deepEqual([...support.keys()], [2]);
  assert.match(support.get(2)[0].text, /^Batteries/);
  assert.equal((await supportingSentences({ answer: '[1]', sources, embed: wordEmbed })).size, 0, 'an answer of citations only supports nothing');

  await assert.rejects(extractiveAnswer({ query: ' ', sources, embed: wordEmbed }), TypeError);
  await assert.rejects(extractiveAnswer({ query: 'q', sources: 'nope', embed: wordEmbed }), TypeError);
  await assert.rejects(extractiveAnswer({ query: 'q', sources, embed: null }), TypeError);
  await assert.rejects(extractiveAnswer({ query: 'q', sources, embed: wordEmbed, limit: 0 }), RangeError);
  await assert.rejects(extractiveAnswer({ query: 'q', sources, embed: wordEmbed, lexicalWeight: 2 }), RangeError);
  await assert.rejects(extractiveAnswer({ query: 'q', sources, embed: async () => [] }), /one vector per text/);
  await assert.rejects(supportingSentences({ answer: 'Batteries store energy.', sources, embed: wordEmbed, perSource: 0 }), RangeError);
  await assert.rejects(supportingSentences({ answer: 42, sources, embed: wordEmbed }), TypeError);
});
