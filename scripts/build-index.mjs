// Build the document index file the service reads (the same file the page's "Export index"
// button downloads), with the same chunking and embedder as the page:
//   node scripts/build-index.mjs [--out FILE] [FILE.md|FILE.txt …]
// Without files it indexes the sample corpus (www/corpus/). Default output:
// ~/.cache/edgellm/models/edgellm-index.json, where the service looks for it. PDFs and HTML:
// add them in the page and export from there.
import { readFile, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { basename, join } from 'node:path';
import { Engine } from '../www/engine/index.js';
import { DocumentIndex } from '../www/rag/index.js';
import { indexDocuments, sampleCorpus } from '../www/rag/pipeline.js';

const args = process.argv.slice(2);
const outAt = args.indexOf('--out');
const out = outAt >= 0 ? args.splice(outAt, 2)[1] : join(process.env.EDGELLM_CACHE ?? join(homedir(), '.cache', 'edgellm'), 'models', 'edgellm-index.json');
const engine = new Engine();
await engine.loadEmbedder();
const corpus = new URL('../www/corpus/', import.meta.url);
const docs = args.length
  ? await Promise.all(args.map(async (file) => ({ name: basename(file), pages: [{ page: 1, text: (await readFile(file, 'utf8')).trim() }] })))
  : await sampleCorpus((f) => readFile(new URL(f, corpus), 'utf8'));
const index = new DocumentIndex();
await indexDocuments(index, docs, (texts) => engine.embed(texts), {}, (step) => process.stderr.write(`${step}\n`));
await writeFile(out, JSON.stringify(index.toJSON()));
console.log(`${out}: ${index.size} passages of ${index.sources.length} documents`);
