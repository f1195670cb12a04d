// Citations in an answer (www/rag/cite.js): which sources it cites, the answer cut into text and
// citation segments for the page, and citations that name no source. Pure JavaScript.
import test from 'node:test';
import assert from 'node:assert/strict';
import { CITATION, citationSegments, citationStats, extractCitations } from '../../www/rag/cite.js';

const join = (segments) => segments.map((s) => s.text).join('');
const cites = (segments) => segments.filter((s) => s.kind === 'cite');

test('extractCitations: first-cited order, each once, out-of-range left out (as prompt.js did)', () => {
  const answer = 'It is w2 [2], as also said in [1, 3] and again [2]. See also [7].';
  assert.deepEqual(extractCitations(answer), [2, 1, 3, 7]);
  assert.deepEqual(extractCitations(answer, 3), [2, 1, 3]);
  assert.deepEqual(extractCitations('ranges [1-3] and [2–4], years [1990-2020], none [a]'), [1, 2, 3, 4]);
  assert.deepEqual(extractCitations('no citations'), []);
  assert.deepEqual(extractCitations('adjacent [1][2] and [ 3 ,4 ]'), [1, 2, 3, 4]);
  assert.deepEqual(extractCitations('zero [0] is no source', 3), []);
  assert.deepEqual(extractCitations('[1-21] is a range, [1-22] is not'), Array.from({ length: 21 }, (_, i) => i + 1));
  assert.deepEqual(extractCitations('backwards [3-1]'), []);
});

test('CITATION matches the citation forms and no others', () => {
  const found = (text) => [...text.matchAll(CITATION)].map((m) => m[0]);
  assert.deepEqual(found('[1] [1][2] [1, 2] [1-3] [2–4] [ 5 ]'), ['[1]', '[1]', '[2]', '[1, 2]', '[1-3]', '[2–4]', '[ 5 ]']);
  assert.deepEqual(found('[a] [] [1,] [,1] [1-2-3] [-1] [1.5] [1 2] (1) {1} [[x]]'), []);
  assert.equal(CITATION.flags.includes('g'), true);
});

test('citationSegments: text and citations in order, valid and invalid numbers, joining back exactly', () => {
  const text = 'LCA counts every stage [1]. ISO 14040 sets it out [1, 4], see [2][3] and [2-5].';
  const segments = citationSegments(text, 3);
  assert.equal(join(segments), text);
  assert.deepEqual(segments, [
    { kind: 'text', text: 'LCA counts every stage ' },
    { kind: 'cite', text: '[1]', numbers: [1], valid: [1], invalid: [] },
    { kind: 'text', text: '. ISO 14040 sets it out ' },
    { kind: 'cite', text: '[1, 4]', numbers: [1, 4], valid: [1], invalid: [4] },
    { kind: 'text', text: ', see ' },
    { kind: 'cite', text: '[2]', numbers: [2], valid: [2], invalid: [] },
    { kind: 'cite', text: '[3]', numbers: [3], valid: [3], invalid: [] },
    { kind: 'text', text: ' and ' },
    { kind: 'cite', text: '[2-5]', numbers: [2, 3, 4, 5], valid: [2, 3], invalid: [4, 5] },
    { kind: 'text', text: '.' },
  ]);
});

test('citationSegments: no citation is one text segment; edges and non-citations', () => {
  assert.deepEqual(citationSegments('No citations here.', 3), [{ kind: 'text', text: 'No citations here.' }]);
  assert.deepEqual(citationSegments('', 3), [{ kind: 'text', text: '' }]);
  assert.deepEqual(citationSegments('[2]', 3), [{ kind: 'cite', text: '[2]', numbers: [2], valid: [2], invalid: [] }]);
  // Year spans, backwards ranges and letters stay text; the text around them is not split.
  assert.deepEqual(citationSegments('From [1990-2020], [3-1] and [a].', 3), [{ kind: 'text', text: 'From [1990-2020], [3-1] and [a].' }]);
  // A list keeps its real citations and skips a part that is not one.
  assert.deepEqual(cites(citationSegments('mixed [2, 1990-2020]', 3)), [{ kind: 'cite', text: '[2, 1990-2020]', numbers: [2], valid: [2], invalid: [] }]);
  // [0] and numbers past the sources are citations that name no source.
  assert.deepEqual(cites(citationSegments('x [0] y [9]', 3)).map((s) => [s.valid, s.invalid]), [[[], [0]], [[], [9]]]);
  // Without sourceCount every number ≥ 1 names a source.
  assert.deepEqual(cites(citationSegments('x [9] [1, 1]')).map((s) => [s.numbers, s.valid, s.invalid]), [[[9], [9], []], [[1], [1], []]]);
  // Brackets around a citation stay text.
  assert.deepEqual(citationSegments('[[1]]', 3).map((s) => s.kind), ['text', 'cite', 'text']);
});

test('citationStats: unique numbers in first-seen order, and whether any source is cited', () => {
  assert.deepEqual(citationStats('a [2] b [5, 2] c [1][5] d [7-8]', 3), { valid: [2, 1], invalid: [5, 7, 8], hasValid: true });
  assert.deepEqual(citationStats('only made-up sources [4] [9]', 3), { valid: [], invalid: [4, 9], hasValid: false });
  assert.deepEqual(citationStats('nothing cited', 3), { valid: [], invalid: [], hasValid: false });
  assert.deepEqual(citationStats('anything goes [12]'), { valid: [12], invalid: [], hasValid: true });
  assert.deepEqual(citationStats('no sources at all [1]', 0), { valid: [], invalid: [1], hasValid: false });
});

test('hostile strings: exact joins, no hangs, no huge ranges', () => {
  const hostile = [
    '[' + '1, '.repeat(100_000), // an unclosed list
    '['.repeat(50_000) + '1' + ']'.repeat(50_000),
    '[1]'.repeat(20_000),
    '[' + '9'.repeat(400) + ']',
    '[99999999999999999999-99999999999999999999]', // beyond safe integers: a naive range loop never ends
    '[1-9007199254740991]',
    '\u0000[1]\uD800[2]\u202E[3]</script><b>[4]</b>',
    '[１]', // full-width digits are not citations
    `${'word '.repeat(10_000)}[2]`,
  ];
  const startedAt = performance.now();
  for (const text of hostile) {
    const segments = citationSegments(text, 3);
    assert.equal(join(segments), text);
    for (const s of cites(segments)) {
      assert.ok(s.numbers.length <= 21, `a citation lists ${s.numbers.length} numbers`);
      assert.deepEqual([...s.valid, ...s.invalid].sort((a, b) => a - b), [...s.numbers].sort((a, b) => a - b));
    }
    citationStats(text, 3);
    extractCitations(text, 3);
  }
  assert.deepEqual(cites(citationSegments('[' + '9'.repeat(400) + ']', 3)), []);
  assert.deepEqual(citationStats('[99999999999999999999-99999999999999999999]'), { valid: [], invalid: [], hasValid: false });
  assert.deepEqual(citationStats('\u0000[1]\uD800[2]\u202E[3]</script><b>[4]</b>', 3), { valid: [1, 2, 3], invalid: [4], hasValid: true });
  assert.equal(citationSegments('[1]'.repeat(20_000), 3).length, 20_000);
  assert.ok(performance.now() - startedAt < 2000, `hostile strings took ${Math.round(performance.now() - startedAt)} ms`);
  assert.deepEqual(citationSegments(null), [{ kind: 'text', text: '' }]);
  assert.deepEqual(citationSegments(42), [{ kind: 'text', text: '42' }]);
});
