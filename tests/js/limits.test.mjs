// Document limits (www/rag/limits.js): each refusal is a catalogue error naming the document, its
// size and the limit, checked where documents enter — the page's reader (www/app/documents.js),
// indexDocuments (www/rag/pipeline.js) and the service's POST /v1/documents — and a refusal
// leaves the index as it was.
import test from 'node:test';
import assert from 'node:assert/strict';

import { ERROR_CODES, EdgeLLMError } from '../../www/engine/errors.js';
import {
  DOCUMENT_LIMITS, DOCUMENT_TYPES, checkDocumentType, checkDocumentBytes, checkPdfPages, checkDocumentText, checkChunks,
  formatBytes, utf8Length,
} from '../../www/rag/limits.js';
import { readDocument, ACCEPTED } from '../../www/app/documents.js';

const MiB = 2 ** 20;
const DOCUMENT_CODES = ['unsupported_document', 'document_too_large', 'too_many_pages', 'too_many_chunks', 'empty_document'];

/** assert.throws / rejects matcher: an EdgeLLMError with `code` whose message matches every pattern. */
const refusal = (code, ...patterns) => (e) => {
  assert.ok(e instanceof EdgeLLMError, `not an EdgeLLMError: ${e?.stack ?? e}`);
  assert.equal(e.code, code, e.message);
  for (const pattern of patterns) assert.match(e.message, pattern);
  return true;
};

/** A File-like that refuses to be read: a size check must come before any reading. */
const unreadable = (name, size) => ({
  name, size,
  text: () => assert.fail(`${name} was read`),
  arrayBuffer: () => assert.fail(`${name} was read`),
});

test('limits: one frozen object, and the catalogue states the same numbers', () => {
  assert.ok(Object.isFrozen(DOCUMENT_LIMITS));
  assert.deepEqual(DOCUMENT_LIMITS, { maxDocumentBytes: 20 * MiB, maxPdfBytes: 50 * MiB, maxPdfPages: 500, maxChunks: 5_000 });
  for (const code of DOCUMENT_CODES) assert.equal(ERROR_CODES[code]?.origin, 'documents', code);
  assert.match(ERROR_CODES.document_too_large.what, new RegExp(`${formatBytes(DOCUMENT_LIMITS.maxDocumentBytes)} for text.*${formatBytes(DOCUMENT_LIMITS.maxPdfBytes)} for a PDF`));
  assert.match(ERROR_CODES.too_many_pages.what, new RegExp(`\\(${DOCUMENT_LIMITS.maxPdfPages};`));
  assert.match(ERROR_CODES.too_many_chunks.what, new RegExp(`\\(${DOCUMENT_LIMITS.maxChunks.toLocaleString('en-US')};`));
  for (const type of DOCUMENT_TYPES) assert.match(ERROR_CODES.unsupported_document.what, new RegExp(`\\${type}\\b`));
  assert.equal(ACCEPTED, DOCUMENT_TYPES, 'the page accepts exactly the types the limits know');
});

test('limits: sizes are shown rounded up, so an oversize file never reads as the limit', () => {
  assert.equal(formatBytes(512), '512 bytes');
  assert.equal(formatBytes(3 * 1024 + 512), '3.5 KiB');
  assert.equal(formatBytes(20 * MiB), '20 MiB');
  assert.equal(formatBytes(20 * MiB + 1), '20.1 MiB');
  for (const text of ['', 'plain', 'héllo', '€uro', 'emoji 😀 and a lone \ud800 surrogate', 'x'.repeat(1000)]) {
    assert.equal(utf8Length(text), new TextEncoder().encode(text).length, JSON.stringify(text.slice(0, 30)));
  }
});

test('limits: types, bytes, PDF pages, text and passages, each refused with its number and limit', () => {
  for (const name of ['a.txt', 'B.MD', 'c.markdown', 'd.html', 'e.HTM', 'f.pdf']) checkDocumentType(name);
  assert.throws(() => checkDocumentType('report.docx'), refusal('unsupported_document', /^report\.docx: only \.txt, \.md/, /not \.docx/));
  assert.throws(() => checkDocumentType('README'), refusal('unsupported_document', /^README: only/));

  checkDocumentBytes({ name: 'a.txt', bytes: DOCUMENT_LIMITS.maxDocumentBytes });
  assert.throws(() => checkDocumentBytes({ name: 'a.txt', bytes: DOCUMENT_LIMITS.maxDocumentBytes + 1 }),
    refusal('document_too_large', /^a\.txt is 20\.1 MiB; edgellm reads text, Markdown and HTML documents of up to 20 MiB$/));
  checkDocumentBytes({ name: 'book.pdf', bytes: 40 * MiB });
  assert.throws(() => checkDocumentBytes({ name: 'book.pdf', bytes: 60 * MiB }), refusal('document_too_large', /^book\.pdf is 60 MiB; edgellm reads PDF files of up to 50 MiB$/));
  assert.throws(() => checkDocumentBytes({ name: 'text.pdf', bytes: 30 * MiB, pdf: false }), refusal('document_too_large', /up to 20 MiB/));
  assert.throws(() => checkDocumentBytes({ name: 'a.txt', bytes: 2000 }, { ...DOCUMENT_LIMITS, maxDocumentBytes: 1024 }), refusal('document_too_large', /is 2 KiB.*up to 1 KiB/));

  checkPdfPages('book.pdf', 500);
  assert.throws(() => checkPdfPages('book.pdf', 501), (e) => {
    assert.deepEqual(e.details, { name: 'book.pdf', pages: 501, limit: 500 });
    return refusal('too_many_pages', /^book\.pdf has 501 pages; edgellm reads PDFs of up to 500 pages$/)(e);
  });

  checkDocumentText({ name: 'a.txt', pages: [{ page: 1, text: ' ' }, { page: 2, text: 'x' }] });
  assert.throws(() => checkDocumentText({ name: 'a.txt', pages: [] }), refusal('empty_document', /^a\.txt has no text to index$/));
  assert.throws(() => checkDocumentText({ name: 'scan.pdf', pages: [{ page: 1, text: ' \n\t' }] }), refusal('empty_document', /scan\.pdf has no text.*scanned PDF/));

  checkChunks({ name: 'a.txt', chunks: 10, indexed: DOCUMENT_LIMITS.maxChunks - 10 });
  assert.throws(() => checkChunks({ name: 'a.txt', chunks: 0, indexed: 0 }), refusal('empty_document', /a\.txt has no text/));
  assert.throws(() => checkChunks({ name: 'big.md', chunks: 700, indexed: 4_500 }),
    refusal('too_many_chunks', /^big\.md makes 700 passages and the index already holds 4500: together over the 5000 passages edgellm indexes \(room for 500 more\)$/));
  assert.throws(() => checkChunks({ name: 'x.md', chunks: 3, indexed: 5 }, { ...DOCUMENT_LIMITS, maxChunks: 4 }), refusal('too_many_chunks', /room for 0 more/));
});

test("limits: the page's reader refuses before reading, and an empty file after", async () => {
  await assert.rejects(readDocument(unreadable('big.txt', 21 * MiB)), refusal('document_too_large', /^big\.txt is 21 MiB;.*up to 20 MiB/));
  await assert.rejects(readDocument(unreadable('big.pdf', 51 * MiB)), refusal('document_too_large', /^big\.pdf is 51 MiB;.*PDF files of up to 50 MiB/));
  await assert.rejects(readDocument(unreadable('slides.pptx', 10)), refusal('unsupported_document', /^slides\.pptx: only/));
  await assert.rejects(readDocument(new File([' \n \n'], 'blank.md')), refusal('empty_document', /^blank\.md has no text to index$/));
  await assert.rejects(readDocument(new File([], 'empty.txt')), refusal('empty_document', /^empty\.txt/));
  assert.deepEqual(await readDocument(new File(['  Some text.\n'], 'notes.txt')), { name: 'notes.txt', pages: [{ page: 1, text: 'Some text.' }] });
});

/** A stand-in embedder: a deterministic unit vector per text, and a count of texts embedded. */
function fakeEmbedder() {
  const calls = { texts: 0 };
  const embed = async (texts) => {
    calls.texts += texts.length;
    return texts.map((t) => {
      const v = new Float32Array(4);
      v[t.length % 4] = 1;
      return v;
    });
  };
  return { embed, calls };
}

const words = (n, word = 'word') => Array.from({ length: n }, (_, i) => `${word}${i}`).join(' ');

test('limits: indexDocuments refuses past maxChunks before embedding, leaving the index as it was', async () => {
  const { DocumentIndex } = await import('../../www/rag/index.js');
  const { indexDocuments } = await import('../../www/rag/pipeline.js');
  const limits = { ...DOCUMENT_LIMITS, maxChunks: 10 };
  const settings = { size: 100, overlap: 0, limits };
  const index = new DocumentIndex();
  const { embed, calls } = fakeEmbedder();

  await indexDocuments(index, [{ name: 'a.txt', text: words(60) }], embed, settings); // 5 passages
  const a = index.size;
  assert.ok(a >= 5 && a <= 8, `a.txt made ${a} passages`);
  const fingerprint = index.fingerprint();
  const embedded = calls.texts;

  // b.txt would take the index past 10: refused before a text is embedded; the documents before it stay.
  await assert.rejects(indexDocuments(index, [{ name: 'c.txt', text: 'A short one.' }, { name: 'b.txt', text: words(60, 'other') }], embed, settings),
    refusal('too_many_chunks', new RegExp(`^b\\.txt makes \\d+ passages and the index already holds ${a + 1}: together over the 10 passages`)));
  assert.deepEqual(index.sources, ['a.txt', 'c.txt']);
  assert.equal(calls.texts, embedded + 1, 'only c.txt was embedded');

  // Replacing a document counts the passages it replaces as gone; a refused replacement keeps the old one.
  await indexDocuments(index, [{ name: 'a.txt', text: words(80) }], embed, settings); // 6, + c's 1: fits, though 6 + 5 + 1 would not
  assert.ok(index.size > a + 1, 'a.txt was replaced by a longer one');
  const before = index.fingerprint();
  assert.notEqual(before, fingerprint);
  await assert.rejects(indexDocuments(index, [{ name: 'a.txt', text: words(150) }], embed, settings), refusal('too_many_chunks', /^a\.txt makes \d+ passages and the index already holds 1: together over the 10/));
  assert.equal(index.fingerprint(), before, 'the refused replacement changed nothing');

  await assert.rejects(indexDocuments(index, [{ name: 'blank.txt', pages: [{ page: 1, text: '   ' }] }], embed, settings), refusal('empty_document', /blank\.txt/));
  assert.equal(index.fingerprint(), before);
  // And the index still takes what fits.
  index.removeSource('a.txt');
  await indexDocuments(index, [{ name: 'b.txt', text: words(60, 'other') }], embed, settings);
  assert.deepEqual(index.sources, ['c.txt', 'b.txt']);
});

test('limits: POST /v1/documents answers 413 or 400 with the code, and the service keeps serving', async () => {
  const { DocumentIndex } = await import('../../www/rag/index.js');
  const { createService } = await import('../../www/service/service.js');
  const index = new DocumentIndex();
  const { embed } = fakeEmbedder();
  const engine = { embed, memory: async () => ({ wasmBytes: 0, jsHeapBytes: null }), lastResult: async () => null };
  const service = createService({
    engine, modelId: 'm', modelInfo: { contextLength: 2048 }, countTokens: (t) => t.length, index, embedderId: 'e', runtime: 'node',
    limits: { maxBodyBytes: 4 * MiB, documents: { maxDocumentBytes: 1 * MiB, maxChunks: 20 } },
  });
  const post = async (body) => {
    const response = await service.fetch(new Request('http://service/v1/documents', { method: 'POST', body: JSON.stringify(body) }));
    return { status: response.status, body: await response.json() };
  };

  const ok = await post({ name: 'bicycles.md', text: 'A bicycle has two wheels. Chains need oil every few hundred kilometres.' });
  assert.equal(ok.status, 200, JSON.stringify(ok.body));
  const fingerprint = index.fingerprint();

  const cases = [
    [{ name: 'huge.md', text: 'é'.repeat(MiB / 2 + 1) }, 413, 'document_too_large', /^huge\.md is 1\.1 MiB; edgellm reads text, Markdown and HTML documents of up to 1 MiB$/],
    [{ name: 'long.md', text: words(3000) }, 413, 'too_many_chunks', /^long\.md makes \d+ passages and the index already holds 1: together over the 20 passages edgellm indexes \(room for 19 more\)$/],
    [{ name: 'blank.md', text: ' \n\t ' }, 400, 'empty_document', /^blank\.md has no text to index/],
    [{ name: '', text: 'x' }, 400, 'invalid_request', /name non-empty/],
  ];
  for (const [body, status, code, message] of cases) {
    const answer = await post(body);
    assert.equal(answer.body.error?.code, code, JSON.stringify(answer.body).slice(0, 300));
    assert.equal(answer.status, status, code);
    assert.match(answer.body.error.message, message);
    assert.equal(index.fingerprint(), fingerprint, `${code}: the index is unchanged`);
  }
  // The body limit still comes first.
  const tooBig = await post({ name: 'x.md', text: 'x'.repeat(5 * MiB) });
  assert.deepEqual([tooBig.status, tooBig.body.error.code], [413, 'payload_too_large']);

  const after = await post({ name: 'trains.md', text: 'Trains run on rails.' });
  assert.equal(after.status, 200);
  assert.deepEqual(index.sources, ['bicycles.md', 'trains.md']);
  const health = await (await service.fetch(new Request('http://service/health'))).json();
  assert.deepEqual(health.limits.documents, { ...DOCUMENT_LIMITS, maxDocumentBytes: MiB, maxChunks: 20 });
  assert.equal(health.requests.byStatus[413], 3);
});
