// Turn a user's file into plain text pages: { name, pages: [{ page, text }] }.
// .txt/.md as they are, .html through DOMParser (which never runs scripts or loads images),
// .pdf page by page with pdfjs-dist. Text only: nothing from a document is ever rendered as HTML.
// Each file is checked against DOCUMENT_LIMITS (../rag/limits.js) before it is read: its type and
// size, a PDF's page count before its pages are extracted, and the text found; a refusal is a
// catalogue error that names the file, its size and the limit.
import { DOCUMENT_TYPES, extensionOf, checkDocumentType, checkDocumentBytes, checkPdfPages, checkDocumentText } from '../rag/limits.js';

const PDFJS = '../vendor/pdfjs/pdf.min.mjs';

export const ACCEPTED = DOCUMENT_TYPES;

function htmlToText(html) {
  const doc = new DOMParser().parseFromString(html, 'text/html');
  doc.querySelectorAll('script, style, noscript, template').forEach((n) => n.remove());
  return (doc.body?.innerText ?? doc.body?.textContent ?? '').replace(/\n{3,}/g, '\n\n').trim();
}

async function pdfToPages(name, buffer) {
  const pdfjs = await import(PDFJS);
  pdfjs.GlobalWorkerOptions.workerSrc = new URL('../vendor/pdfjs/pdf.worker.min.mjs', import.meta.url).href;
  // isEvalSupported: false — the page's CSP forbids eval, and documents are untrusted.
  const task = pdfjs.getDocument({ data: new Uint8Array(buffer), isEvalSupported: false });
  try {
    const pdf = await task.promise;
    checkPdfPages(name, pdf.numPages); // before any page is read
    const pages = [];
    for (let n = 1; n <= pdf.numPages; n++) {
      const content = await (await pdf.getPage(n)).getTextContent();
      const text = content.items.map((i) => i.str + (i.hasEOL ? '\n' : ' ')).join('').trim();
      if (text) pages.push({ page: n, text });
    }
    return pages;
  } finally {
    await task.destroy();
  }
}

/**
 * Read a File into pages. Refuses, with a catalogue error naming the file: a type it cannot
 * read (unsupported_document), a file over its size limit before reading a byte of it
 * (document_too_large), a PDF of too many pages (too_many_pages), no text (empty_document).
 */
export async function readDocument(file) {
  const ext = extensionOf(file.name);
  checkDocumentType(file.name);
  checkDocumentBytes({ name: file.name, bytes: file.size });
  const pages = ext === '.pdf'
    ? await pdfToPages(file.name, await file.arrayBuffer())
    : [{ page: 1, text: ext === '.html' || ext === '.htm' ? htmlToText(await file.text()) : (await file.text()).trim() }];
  const doc = { name: file.name, pages: pages.filter((p) => p.text) };
  checkDocumentText(doc);
  return doc;
}
