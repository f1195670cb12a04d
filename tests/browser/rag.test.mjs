// The page end to end in headless Chromium: default corpus indexed, model loaded, a user's
// document added and asked about with a streamed, cited answer; hostile documents stay text;
// files past the document limits are refused one by one, saying why, while the others are added;
// after a reload the model comes from the browser cache and the index from IndexedDB.
import test from 'node:test';
import assert from 'node:assert/strict';
import { withBrowser } from './chromium.mjs';

const FACT = 'The Zorblax tidal turbine at Kvalsund was commissioned in 2019. It produces 4 megawatts from tidal currents.';
const HOSTILE_TXT = 'Quarterly safety notes. <img src=x onerror="window.__xss=1"> <script>window.__xss=2</script> Gaskets must be inspected monthly.';
const HOSTILE_HTML = '<html><body><h1>Pump manual</h1><p>Impeller clearance is 0.4 mm.</p><img src=x onerror="window.__xss=3"><script>window.__xss=4</script></body></html>';

/** A two-page PDF with one line of text per page, written by hand (objects + xref table). */
function twoPagePdf(lines) {
  const objects = [
    '<< /Type /Catalog /Pages 2 0 R >>',
    `<< /Type /Pages /Kids [${lines.map((_, i) => `${3 + 2 * i} 0 R`).join(' ')}] /Count ${lines.length} >>`,
  ];
  const font = 3 + 2 * lines.length;
  lines.forEach((line, i) => {
    const stream = `BT /F1 12 Tf 72 720 Td (${line}) Tj ET`;
    objects.push(`<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents ${4 + 2 * i} 0 R /Resources << /Font << /F1 ${font} 0 R >> >> >>`);
    objects.push(`<< /Length ${stream.length} >>\nstream\n${stream}\nendstream`);
  });
  objects.push('<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>');
  let pdf = '%PDF-1.4\n';
  const offsets = objects.map((body, i) => {
    const at = pdf.length;
    pdf += `${i + 1} 0 obj\n${body}\nendobj\n`;
    return at;
  });
  const xref = pdf.length;
  pdf += `xref\n0 ${objects.length + 1}\n0000000000 65535 f \n${offsets.map((o) => `${String(o).padStart(10, '0')} 00000 n \n`).join('')}`;
  pdf += `trailer\n<< /Size ${objects.length + 1} /Root 1 0 R >>\nstartxref\n${xref}\n%%EOF\n`;
  return Buffer.from(pdf, 'latin1');
}

async function settings(page, values) {
  await page.click('#documents summary');
  for (const [id, value] of Object.entries(values)) await page.fill(`#${id}`, String(value));
}

/** The newest turn of the conversation thread. */
const LAST_TURN = '#thread .turn:last-child';

async function ask(page, question) {
  await page.fill('#question', question);
  await page.click('#ask');
  // Sample the answer while it streams: it must grow in several steps.
  const lengths = new Set();
  while (!(await page.textContent(`${LAST_TURN} .timings`))) {
    lengths.add((await page.textContent(`${LAST_TURN} .answer`)).length);
    await page.waitForTimeout(100);
  }
  return {
    answer: await page.textContent(`${LAST_TURN} .answer`),
    timings: await page.textContent(`${LAST_TURN} .timings`),
    sources: await page.$$eval(`${LAST_TURN} .sources li`, (lis) => lis.map((li) => ({ meta: li.querySelector('.meta').textContent, text: li.querySelector('.passage').textContent }))),
    streamedSteps: lengths.size,
  };
}

async function waitIndexed(page) {
  await page.waitForFunction(() => /passages indexed/.test(document.getElementById('doc-status').textContent), null, { timeout: 240_000 });
}

test('ask the page about your own document, safely, and find it all again after a reload', { timeout: 600_000 }, async () => {
  await withBrowser(async ({ page, url, logs }) => {
    await page.goto(url);
    await waitIndexed(page);
    const defaults = await page.$$eval('#doc-list li span', (s) => s.map((x) => x.textContent));
    assert.ok(defaults.includes('life-cycle-assessment.md'), defaults.join());

    await page.click('#load');
    await page.waitForFunction(() => !document.getElementById('ask').disabled, null, { timeout: 120_000 });
    assert.match(await page.textContent('#model-status'), /downloaded/);

    await settings(page, { 'chunk-size': 400, 'chunk-overlap': 40, 'top-k-final': 2, 'max-new-tokens': 24 });
    await page.setInputFiles('#files', [
      { name: 'zorblax.txt', mimeType: 'text/plain', buffer: Buffer.from(FACT) },
      { name: 'safety.txt', mimeType: 'text/plain', buffer: Buffer.from(HOSTILE_TXT) },
      { name: 'pump.html', mimeType: 'text/html', buffer: Buffer.from(HOSTILE_HTML) },
      { name: 'dam.pdf', mimeType: 'application/pdf', buffer: twoPagePdf(['Inspection log of the Holmvatn dam, volume one.', 'The Holmvatn spillway discharges 300 cubic metres per second at flood level.']) },
    ]);
    await page.waitForFunction(() => /Added/.test(document.getElementById('doc-status').textContent), null, { timeout: 120_000 });

    // Files past a limit (www/rag/limits.js), empty or of another type are refused one by one, each
    // saying why and what to do, as text; the good file chosen with them is still added, and the
    // page answers as before (the questions below).
    await page.setInputFiles('#files', [
      { name: 'huge.txt', mimeType: 'text/plain', buffer: Buffer.alloc(20 * 2 ** 20 + 1, 'a') },
      { name: 'ledger.pdf', mimeType: 'application/pdf', buffer: twoPagePdf(Array.from({ length: 501 }, (_, i) => `Ledger page ${i + 1}`)) },
      { name: 'blank.md', mimeType: 'text/markdown', buffer: Buffer.from(' \n\n ') },
      { name: 'slides.pptx', mimeType: 'application/octet-stream', buffer: Buffer.from('PK') },
      // 5,556 passages at the 400-character chunks set above: refused after chunking, before any embedding.
      { name: 'crumbs.txt', mimeType: 'text/plain', buffer: Buffer.from('word '.repeat(400_000)) },
      { name: 'ferry.txt', mimeType: 'text/plain', buffer: Buffer.from('The Brattli ferry crosses the fjord in eleven minutes.') },
    ]);
    await page.waitForFunction(() => /Not added/.test(document.getElementById('doc-status').textContent), null, { timeout: 120_000 });
    const refused = await page.$eval('#doc-status', (p) => ({ text: p.textContent, error: p.classList.contains('error'), children: p.children.length }));
    assert.match(refused.text, /^Added ferry\.txt\. Not added: /, refused.text);
    assert.match(refused.text, /huge\.txt is 20\.1 MiB; edgellm reads text, Markdown and HTML documents of up to 20 MiB\. Split it/, refused.text);
    assert.match(refused.text, /ledger\.pdf has 501 pages; edgellm reads PDFs of up to 500 pages\. Split the PDF/, refused.text);
    assert.match(refused.text, /blank\.md has no text to index\. Check the file/, refused.text);
    assert.match(refused.text, /slides\.pptx: only \.txt, .*, not \.pptx\. Save or export/, refused.text);
    assert.match(refused.text, /crumbs\.txt makes 5556 passages and the index already holds \d+: together over the 5000 passages edgellm indexes \(room for \d+ more\)\. Remove documents/, refused.text);
    assert.ok(refused.error && refused.children === 0, `shown as an error, in text only: ${JSON.stringify(refused)}`);
    const listed = await page.$$eval('#doc-list li span', (s) => s.map((x) => x.textContent));
    assert.ok(listed.includes('ferry.txt') && listed.includes('zorblax.txt'), listed.join());
    for (const name of ['huge.txt', 'ledger.pdf', 'blank.md', 'slides.pptx', 'crumbs.txt']) assert.ok(!listed.includes(name), `${name} is not listed`);

    const r = await ask(page, 'When was the Zorblax tidal turbine commissioned?');
    assert.ok(r.answer.trim().length > 0, 'an answer');
    assert.ok(r.streamedSteps >= 3, `the answer streamed (${r.streamedSteps} distinct lengths seen)`);
    assert.match(r.sources[0].meta, /^zorblax\.txt/, JSON.stringify(r.sources));
    assert.equal(r.sources[0].text, FACT);
    assert.match(r.timings, /retrieval \d+ ms/);
    console.log(`# rag: ${r.timings} | answer: ${JSON.stringify(r.answer)}`);

    // A PDF is read page by page and its passages keep their page.
    const p = await ask(page, 'How much does the Holmvatn spillway discharge?');
    assert.match(p.sources[0].meta, /^dam\.pdf, page 2/, JSON.stringify(p.sources));
    assert.match(p.sources[0].text, /300 cubic metres per second/);

    // Hostile documents are shown as the text they contain and run nothing.
    const h = await ask(page, 'How often must gaskets be inspected? What is the impeller clearance?');
    const shown = h.sources.map((s) => s.text).join('\n');
    assert.ok(shown.includes('<img src=x onerror="window.__xss=1">'), `the markup is shown as text: ${shown}`);
    assert.equal(await page.evaluate(() => window.__xss), undefined);
    assert.equal(await page.$$eval('#thread img, #doc-list img', (n) => n.length), 0);

    // Reload: model from the Cache API, index from IndexedDB (no re-indexing needed).
    await page.reload();
    await waitIndexed(page);
    const restored = await page.$$eval('#doc-list li span', (s) => s.map((x) => x.textContent));
    assert.ok(['zorblax.txt', 'safety.txt', 'pump.html', 'dam.pdf'].every((d) => restored.includes(d)), restored.join());
    await page.click('#load');
    await page.waitForFunction(() => !document.getElementById('ask').disabled, null, { timeout: 120_000 });
    assert.match(await page.textContent('#model-status'), /from the browser cache/);
    await settings(page, { 'top-k-final': 1, 'max-new-tokens': 8 });
    const again = await ask(page, 'When was the Zorblax tidal turbine commissioned?');
    assert.match(again.sources[0].meta, /^zorblax\.txt/);
    assert.equal(await page.evaluate(() => window.__xss), undefined);
    assert.ok(!logs.some((l) => l.startsWith('pageerror')), logs.join('\n'));
  });
});
