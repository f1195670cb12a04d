// Turn a user's file into plain text pages: { name, pages: [{ page, text }] }.
// .txt/.md as they are, .html through DOMParser (which never runs scripts or loads images),
// .pdf page by page with pdfjs-dist. Text only: nothing from a document is ever rendered as HTML.

const PDFJS = '../vendor/pdfjs/pdf.min.mjs';

export const ACCEPTED = ['.txt', '.md', '.markdown', '.html', '.htm', '.pdf'];

function extension(name) {
  const dot = name.lastIndexOf('.');
  return dot < 0 ? '' : name.slice(dot).toLowerCase();
}

function htmlToText(html) {
  const doc = new DOMParser().parseFromString(html, 'text/html');
  doc.querySelectorAll('script, style, noscript, template').forEach((n) => n.remove());
  return (doc.body?.innerText ?? doc.body?.textContent ?? '').replace(/\n{3,}/g, '\n\n').trim();
}

async function pdfToPages(buffer) {
  const pdfjs = await import(PDFJS);
  pdfjs.GlobalWorkerOptions.workerSrc = new URL('../vendor/pdfjs/pdf.worker.min.mjs', import.meta.url).href;
  // isEvalSupported: false — the page's CSP forbids eval, and documents are untrusted.
  const task = pdfjs.getDocument({ data: new Uint8Array(buffer), isEvalSupported: false });
  const pdf = await task.promise;
  const pages = [];
  for (let n = 1; n <= pdf.numPages; n++) {
    const content = await (await pdf.getPage(n)).getTextContent();
    const text = content.items.map((i) => i.str + (i.hasEOL ? '\n' : ' ')).join('').trim();
    if (text) pages.push({ page: n, text });
  }
  await task.destroy();
  return pages;
}

/** Read a File (or { name, text }) into pages. Throws a clear error for what it cannot read. */
export async function readDocument(file) {
  const ext = extension(file.name);
  if (!ACCEPTED.includes(ext)) throw new Error(`${file.name}: only ${ACCEPTED.join(', ')} files can be added`);
  const pages = ext === '.pdf'
    ? await pdfToPages(await file.arrayBuffer())
    : [{ page: 1, text: ext === '.html' || ext === '.htm' ? htmlToText(await file.text()) : (await file.text()).trim() }];
  if (!pages.some((p) => p.text)) throw new Error(`${file.name}: no text found in it`);
  return { name: file.name, pages: pages.filter((p) => p.text) };
}
