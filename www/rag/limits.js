// What edgellm accepts as documents, and the refusals past it. Pure (no DOM, no wasm): the page
// (www/app/documents.js, main.js), the service (www/service/service.js, POST /v1/documents) and
// indexDocuments (www/rag/pipeline.js) all check against these same numbers, and every refusal is
// a catalogue error (www/engine/errors.js, origin 'documents') whose message names the document,
// its size and the limit. A refusal changes nothing: the index is as it was, the next document
// is added as usual.
import { edgeError } from '../engine/errors.js';

const MiB = 2 ** 20;

/**
 * The limits, per document and for the whole corpus. Why these values:
 *
 *  - maxDocumentBytes, 20 MiB of a .txt, .md or .html file: reading it makes a JS string of
 *    twice that (UTF-16), chunking copies it once more (with its overlaps) and BM25 indexes the
 *    copy, so one file costs a tab roughly 100 MiB while it is added. At the default chunking
 *    maxChunks is reached at ~3.4 MB of text, but larger chunks, and an HTML file's markup
 *    (dropped before chunking), let bigger files through, so this limit sits well above that:
 *    it keeps a file that could never be indexed from being read into memory at all.
 *  - maxPdfBytes, 50 MiB of a .pdf file: pdf.js keeps the whole file in memory (in its own
 *    worker, a second copy) while it reads the pages, and most of a large PDF is images and
 *    fonts, not text: a 50 MiB PDF has far less text than a 20 MiB text file.
 *  - maxPdfPages, 500 pages: pdf.js extracts the text of every page, one after another, before
 *    anything is embedded; a 500-page book is about a million characters, ~1,500 passages and
 *    some 5 minutes of embedding (below), well inside maxChunks. Longer PDFs are mostly several
 *    documents bound together, each better added (and cited) on its own.
 *  - maxChunks, 5,000 passages in the index, all documents together: what grows with the corpus
 *    is embedding time, each passage once with all-MiniLM-L6-v2 in wasm (the page's background
 *    sentence vectors come on top). Measured in Node (single-threaded SIMD128 build) on this
 *    project's 2-core x86-64 machine: 1,000 Cranfield passages (664 characters on average, from
 *    the default 800/120 chunking) took 177 s of one core — 327 s of wall time while the machine
 *    was shared with a build — so about 0.18 s a passage, and 5,000 passages are about 15
 *    minutes of one core: the longest wait one added document may cost (less with threads).
 *    5,000 default passages are ~3.4 million characters, half a dozen novels. The rest stays small
 *    at that size: 7.5 MiB of vectors (384 float32 each), an exhaustive cosine scan of a few ms
 *    a question, BM25 over ~4 MB of text, an IndexedDB record of ~15 MB.
 */
export const DOCUMENT_LIMITS = Object.freeze({
  maxDocumentBytes: 20 * MiB,
  maxPdfBytes: 50 * MiB,
  maxPdfPages: 500,
  maxChunks: 5_000,
});

/** The file name extensions edgellm reads a document from (www/app/documents.js). */
export const DOCUMENT_TYPES = Object.freeze(['.txt', '.md', '.markdown', '.html', '.htm', '.pdf']);

/** The extension of a file name, lower-cased with its dot ('' when it has none). */
export function extensionOf(name) {
  const dot = name.lastIndexOf('.');
  return dot < 0 ? '' : name.slice(dot).toLowerCase();
}

/**
 * A byte count as people read it: "512 bytes", "3.5 KiB", "20 MiB", "25.3 MiB". Rounded up, so
 * a size over a limit never reads as the limit (20 MiB and one byte is "20.1 MiB").
 */
export function formatBytes(bytes) {
  if (bytes < 1024) return `${bytes} bytes`;
  const [value, unit] = bytes < MiB ? [bytes / 1024, 'KiB'] : [bytes / MiB, 'MiB'];
  const shown = Math.ceil(value * 10) / 10;
  return `${Number.isInteger(shown) ? shown : shown.toFixed(1)} ${unit}`;
}

/** The length of `text` in UTF-8 bytes, without encoding it. */
export function utf8Length(text) {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) bytes += 1;
    else if (c < 0x800) bytes += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) { bytes += 4; i++; }
    else bytes += 3;
  }
  return bytes;
}

/** Before a file is read: throws unsupported_document for a type edgellm cannot read (by its name's extension). */
export function checkDocumentType(name) {
  const ext = extensionOf(name);
  if (!DOCUMENT_TYPES.includes(ext)) {
    throw edgeError('unsupported_document', `${name}: only ${DOCUMENT_TYPES.join(', ')} files can be added${ext ? `, not ${ext}` : ''}`, { details: { name } });
  }
}

/**
 * Before a document is read: its size in bytes (a File's `size`, or the UTF-8 length of a text
 * sent to the service), against maxPdfBytes for a PDF, else maxDocumentBytes. Throws
 * document_too_large.
 * @param {{ name: string, bytes: number, pdf?: boolean }} document  pdf: by default, from the name
 * @param {typeof DOCUMENT_LIMITS} [limits]
 */
export function checkDocumentBytes({ name, bytes, pdf = extensionOf(name) === '.pdf' }, limits = DOCUMENT_LIMITS) {
  const limit = pdf ? limits.maxPdfBytes : limits.maxDocumentBytes;
  if (bytes > limit) {
    throw edgeError('document_too_large', `${name} is ${formatBytes(bytes)}; edgellm reads ${pdf ? 'PDF files' : 'text, Markdown and HTML documents'} of up to ${formatBytes(limit)}`, { details: { name, bytes, limit } });
  }
}

/** Before a PDF's pages are read: throws too_many_pages past maxPdfPages. */
export function checkPdfPages(name, pages, limits = DOCUMENT_LIMITS) {
  if (pages > limits.maxPdfPages) {
    throw edgeError('too_many_pages', `${name} has ${pages} pages; edgellm reads PDFs of up to ${limits.maxPdfPages} pages`, { details: { name, pages, limit: limits.maxPdfPages } });
  }
}

/** After extraction: a document whose pages hold no text (only whitespace) throws empty_document. */
export function checkDocumentText({ name, pages }) {
  if (!pages.some((page) => typeof page.text === 'string' && page.text.trim() !== '')) {
    throw edgeError('empty_document', `${name} has no text to index${extensionOf(name) === '.pdf' ? ' (a scanned PDF has only images of its pages)' : ''}`, { details: { name } });
  }
}

/**
 * After chunking, before embedding: `chunks` passages of document `name`, added to an index that
 * holds `indexed` passages of other documents (a document being replaced does not count).
 * Throws empty_document for no passage, too_many_chunks past maxChunks.
 */
export function checkChunks({ name, chunks, indexed }, limits = DOCUMENT_LIMITS) {
  if (chunks === 0) throw edgeError('empty_document', `${name} has no text to index`, { details: { name } });
  if (indexed + chunks > limits.maxChunks) {
    const room = Math.max(0, limits.maxChunks - indexed);
    throw edgeError('too_many_chunks', `${name} makes ${chunks} passages and the index already holds ${indexed}: `
      + `together over the ${limits.maxChunks} passages edgellm indexes (room for ${room} more)`, { details: { name, chunks, indexed, limit: limits.maxChunks } });
  }
}
