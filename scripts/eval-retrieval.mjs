// Retrieval evaluation: the same www/rag code the page uses, scored on the Cranfield collection.
//   node scripts/eval-retrieval.mjs [--json FILE] [--lexical-only]
// Reads ../shared/eval/cranfield/ (relative to the repository root). Each Cranfield abstract is
// indexed as one chunk (title + text). Reports nDCG@10, recall@30 and precision@3 for BM25 alone,
// dense alone, hybrid RRF (stage 1) and the final top 3 (stage 2), next to the collection's
// reference figures. Dense and hybrid need www/engine/embedder.js; without it they are skipped.
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { BM25_DEFAULTS, DocumentIndex } from '../www/rag/index.js';
import { DEFAULTS, retrieve } from '../www/rag/retrieve.js';

const repo = resolve(fileURLToPath(new URL('..', import.meta.url)));
const collectionDir = resolve(repo, '..', 'shared', 'eval', 'cranfield');

/** From the collection's README.md (BM25 k1 1.5 b 0.75, stop words, Porter; all-MiniLM-L6-v2 mean-pooled). */
const REFERENCE = {
  lexical: { ndcg10: 0.364, recall30: 0.571, precision3: 0.361 },
  dense: { ndcg10: 0.374, recall30: 0.602, precision3: 0.360 },
  hybrid: { ndcg10: 0.409, recall30: 0.642, precision3: 0.394 },
};
const EMBED_BATCH = 32;

const { values: args } = parseArgs({ options: { json: { type: 'string' }, 'lexical-only': { type: 'boolean', default: false } } });

if (!existsSync(join(collectionDir, 'cran.all.1400'))) {
  console.log(`The Cranfield collection is missing: expected ${collectionDir}/ with cran.all.1400, cran.qry and cranqrel. Nothing to evaluate.`);
  process.exit(0);
}

const documents = parseSmart(await readFile(join(collectionDir, 'cran.all.1400'), 'utf8'));
const queries = parseSmart(await readFile(join(collectionDir, 'cran.qry'), 'utf8'));
const judgments = parseJudgments(await readFile(join(collectionDir, 'cranqrel'), 'utf8'));
// The judgments number queries 1..225 by position in cran.qry; the .I numbers there skip values.
const topics = queries
  .map((query, i) => ({ number: i + 1, text: query.W ?? '', gains: judgments.get(i + 1) ?? new Map() }))
  .filter((topic) => [...topic.gains.values()].some((gain) => gain > 0));
console.log(`Cranfield: ${documents.length} documents, ${queries.length} queries (${topics.length} with relevant documents), ${[...judgments.values()].reduce((n, g) => n + g.size, 0)} judgments.`);

// A few Cranfield records have no title and no text. They cannot match a query nor be embedded,
// so they are left out; a judged document among them simply counts as never retrieved.
const chunks = documents
  .map((doc) => ({ id: doc.I, text: `${doc.T ?? ''}\n${doc.W ?? ''}`.trim(), source: `cran-${doc.I}`, page: null }))
  .filter((chunk) => chunk.text !== '');
if (chunks.length < documents.length) console.log(`Left out ${documents.length - chunks.length} empty documents.`);

const { embed, vectors, queryVectors, skipReason } = args['lexical-only'] ? { skipReason: '--lexical-only was given' } : await embedCollection(chunks, topics);
const index = new DocumentIndex();
index.addChunks(chunks, vectors);
// The queries were embedded in batches up front; retrieve() gets an embed() that looks them up.
const cachedEmbed = async (texts) => texts.map((text) => queryVectors.get(text));

const runs = [
  { name: 'BM25', key: 'lexical', mode: 'lexical' },
  ...(embed ? [
    { name: 'dense', key: 'dense', mode: 'dense' },
    { name: 'hybrid RRF', key: 'hybrid', mode: 'hybrid' },
    { name: `final top ${DEFAULTS.topKFinal}`, key: 'final', mode: 'hybrid', final: true },
  ] : []),
];
const results = {};
for (const run of runs) {
  const perQuery = [];
  let retrievalMs = 0;
  for (const topic of topics) {
    const { passages, candidates, timings } = await retrieve({ index, query: topic.text, embed: cachedEmbed, mode: run.mode });
    retrievalMs += timings.totalMs;
    const ranking = (run.final ? passages : candidates).map((p) => p.id);
    perQuery.push({
      ndcg10: ndcgAt(ranking, topic.gains, 10),
      recall30: recallAt(ranking, topic.gains, 30),
      precision3: precisionAt(ranking, topic.gains, 3),
    });
  }
  results[run.key] = {
    name: run.name,
    ndcg10: mean(perQuery.map((q) => q.ndcg10)),
    // Stage 2 keeps only topKFinal passages, so recall@30 is not defined for it.
    recall30: run.final ? null : mean(perQuery.map((q) => q.recall30)),
    precision3: mean(perQuery.map((q) => q.precision3)),
    meanRetrievalMs: retrievalMs / topics.length,
  };
}

printTable(results);
if (!embed) console.log(`\nDense and hybrid skipped: ${skipReason}.`);
else console.log(`\nStage 2 has no reranker yet, so the final top ${DEFAULTS.topKFinal} are the head of the hybrid list; being ${DEFAULTS.topKFinal} passages, its nDCG@10 counts ${DEFAULTS.topKFinal} ranks and recall@30 does not apply.`);
if (args.json) {
  const report = {
    collection: 'cranfield', documents: documents.length, queries: topics.length,
    settings: { ...DEFAULTS, bm25: BM25_DEFAULTS }, results, reference: REFERENCE, skipped: embed ? null : skipReason,
  };
  await writeFile(args.json, `${JSON.stringify(report, null, 2)}\n`);
  console.log(`Wrote ${args.json}`);
}

// ---- collection parsing -------------------------------------------------------------------------

/** SMART format: records start with `.I id`; fields start with `.X` on their own line. */
function parseSmart(text) {
  const records = [];
  let record = null;
  let field = null;
  for (const line of text.split(/\r?\n/)) {
    const marker = /^\.([A-Z])\b\s*(.*)$/.exec(line);
    if (marker && marker[1] === 'I') {
      record = { I: marker[2].trim() };
      records.push(record);
      field = null;
    } else if (marker) {
      field = marker[1];
      record[field] = marker[2];
    } else if (field) {
      record[field] = record[field] ? `${record[field]}\n${line}` : line;
    }
  }
  for (const r of records) for (const key of Object.keys(r)) r[key] = r[key].trim();
  // Document ids are written as plain numbers in cranqrel; normalise "001" to "1" for matching.
  for (const r of records) r.I = String(Number(r.I));
  return records;
}

/** `query doc code` lines → query number → (doc id → gain). Codes 1–4 gain 5 − code; −1 gains 0. */
function parseJudgments(text) {
  const byQuery = new Map();
  for (const line of text.split(/\r?\n/)) {
    const [query, doc, code] = line.trim().split(/\s+/).map(Number);
    if (!Number.isFinite(code)) continue;
    const gain = code >= 1 && code <= 4 ? 5 - code : 0;
    if (!byQuery.has(query)) byQuery.set(query, new Map());
    byQuery.get(query).set(String(doc), gain);
  }
  return byQuery;
}

// ---- metrics ------------------------------------------------------------------------------------

function ndcgAt(ranking, gains, k) {
  const dcg = ranking.slice(0, k).reduce((sum, id, i) => sum + (gains.get(id) ?? 0) / Math.log2(i + 2), 0);
  const ideal = [...gains.values()].sort((a, b) => b - a).slice(0, k).reduce((sum, gain, i) => sum + gain / Math.log2(i + 2), 0);
  return ideal > 0 ? dcg / ideal : 0;
}

function recallAt(ranking, gains, k) {
  const relevant = [...gains.values()].filter((gain) => gain > 0).length;
  return ranking.slice(0, k).filter((id) => (gains.get(id) ?? 0) > 0).length / relevant;
}

function precisionAt(ranking, gains, k) {
  return ranking.slice(0, k).filter((id) => (gains.get(id) ?? 0) > 0).length / k;
}

// ---- helpers ------------------------------------------------------------------------------------

/**
 * Embed every chunk and query with www/engine/embedder.js. The embedder is built separately and
 * may be missing or broken: then say why, and the evaluation goes on with BM25 alone.
 */
async function embedCollection(chunks, topics) {
  let stage = 'load';
  try {
    const { Embedder } = await import('../www/engine/embedder.js');
    const embedder = await Embedder.load();
    const embed = (texts) => embedder.embed(texts);
    stage = 'embed the collection with';
    const started = performance.now();
    const vectors = await embedAll(embed, chunks.map((chunk) => chunk.text));
    const queryTexts = topics.map((topic) => topic.text);
    const queryVectors = new Map(zip(queryTexts, await embedAll(embed, queryTexts)));
    console.log(`Embedded ${chunks.length} documents and ${topics.length} queries in ${((performance.now() - started) / 1000).toFixed(1)} s.`);
    return { embed, vectors, queryVectors };
  } catch (error) {
    return { skipReason: `could not ${stage} www/engine/embedder.js (${error.code ?? error.name}: ${error.message.split('\n')[0]})` };
  }
}

async function embedAll(embed, texts) {
  const vectors = [];
  for (let i = 0; i < texts.length; i += EMBED_BATCH) vectors.push(...await embed(texts.slice(i, i + EMBED_BATCH)));
  return vectors;
}

function printTable(results) {
  const format = (value) => (value == null ? '    –' : value.toFixed(3));
  const row = (cells) => console.log(cells.map((cell, i) => (i === 0 ? cell.padEnd(22) : cell.padStart(10))).join(''));
  console.log('');
  row(['', 'nDCG@10', 'recall@30', 'P@3', 'ms/query']);
  for (const [key, r] of Object.entries(results)) {
    row([r.name, format(r.ndcg10), format(r.recall30), format(r.precision3), r.meanRetrievalMs.toFixed(2)]);
    if (REFERENCE[key]) row([`  reference`, ...['ndcg10', 'recall30', 'precision3'].map((m) => format(REFERENCE[key][m])), '']);
  }
}

function mean(values) {
  return values.reduce((a, b) => a + b, 0) / values.length;
}

function zip(a, b) {
  return a.map((x, i) => [x, b[i]]);
}
