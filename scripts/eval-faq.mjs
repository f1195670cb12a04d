// The FAQ answer cache's threshold, measured: embeds the question pairs of eval/faq/pairs.json
// with the real embedder (all-MiniLM-L6-v2 in wasm, as the page and the service use) and prints
// the similarity distribution of paraphrases and of hard negatives; for thresholds 0.70–0.99 the
// paraphrase hit rate and the false hits, of the embedding alone and of the cache (key terms and
// embedding, www/rag/answer-cache.js); the recommended threshold (the lowest with no false hit,
// plus a margin of 0.02) and the figures at DEFAULT_THRESHOLD.
//   node scripts/eval-faq.mjs [--json FILE]
import { writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { Embedder } from '../www/engine/index.js';
import { DEFAULT_THRESHOLD } from '../www/rag/answer-cache.js';
import { THRESHOLDS, atThreshold, distribution, loadPairs, recommend, scorePairs } from '../eval/faq/measure.mjs';

const { values: args } = parseArgs({ options: { json: { type: 'string' } } });

const pairs = loadPairs();
const embedder = await Embedder.load();
const t0 = performance.now();
const scored = await scorePairs(pairs, (texts) => embedder.embed(texts));
embedder.free();
console.log(`${pairs.length} pairs (${pairs.filter((p) => p.same).length} paraphrases, ${pairs.filter((p) => !p.same).length} hard negatives) embedded and scored in ${(performance.now() - t0).toFixed(0)} ms.`);

const f = (x) => x.toFixed(3);
const pct = (x) => `${(100 * x).toFixed(1)}%`;
console.log('\nCosine similarity           n    min     q1 median     q3    max');
for (const [label, same] of [['paraphrases (same: true)', true], ['hard negatives (false)', false]]) {
  const d = distribution(scored, same);
  console.log(`${label.padEnd(25)} ${String(d.n).padStart(3)}  ${[d.min, d.q1, d.median, d.q3, d.max].map(f).join('  ')}`);
}
const agree = (same) => scored.filter((p) => p.same === same && p.cached !== null).length;
console.log(`Key terms agree: ${agree(true)} paraphrases, ${agree(false)} hard negatives.`);

console.log('\n           embedding alone              cache (key terms + embedding)');
console.log('threshold  paraphrase hits  false hits  paraphrase hits  false hits');
const cell = (r) => `${`${r.hits}/${r.paraphrases} ${pct(r.hitRate)}`.padStart(15)}  ${`${r.falseHits}/${r.negatives}`.padStart(10)}`;
for (const t of THRESHOLDS) console.log(`${t.toFixed(2).padStart(9)}  ${cell(atThreshold(scored, t, { embeddingOnly: true }))}  ${cell(atThreshold(scored, t))}`);

const byScore = (key, same, order) => scored.filter((p) => p.same === same && p[key] !== null).sort((x, y) => order * (x[key] - y[key])).slice(0, 5);
const show = (title, list, key) => {
  console.log(title);
  if (list.length === 0) console.log('  (none)');
  for (const p of list) console.log(`  ${f(p[key])}  ${p.a} | ${p.b}`);
};
show('\nMost similar hard negatives (the embedding alone must stay above these):', byScore('similarity', false, -1), 'similarity');
show('Most similar hard negatives whose key terms agree (the cache must stay above these):', byScore('cached', false, -1), 'cached');
show('Least similar paraphrases whose key terms agree:', byScore('cached', true, 1), 'cached');

const describe = (r, embeddingOnly) => (r
  ? `${r.threshold} (lowest with no false hit + 0.02: ${r.lowest}; paraphrase hit rate ${pct(atThreshold(scored, r.threshold, { embeddingOnly }).hitRate)})`
  : 'none (a false hit at every threshold up to 0.99)');
const recommendedAlone = recommend(scored, { embeddingOnly: true });
const recommended = recommend(scored);
console.log(`\nRecommended threshold: embedding alone ${describe(recommendedAlone, true)}; cache ${describe(recommended, false)}.`);
const current = atThreshold(scored, DEFAULT_THRESHOLD);
const closest = byScore('cached', false, -1)[0];
console.log(`At DEFAULT_THRESHOLD ${DEFAULT_THRESHOLD}: paraphrase hit rate ${pct(current.hitRate)} (${current.hits}/${current.paraphrases}), false hits ${current.falseHits}/${current.negatives}` +
  `${closest ? `, margin above the most similar negative whose key terms agree ${f(DEFAULT_THRESHOLD - closest.cached)}` : ', no hard negative has the same key terms'}.`);
for (const p of current.falseHitPairs) console.log(`  false hit ${f(p.cached)}: ${p.a} | ${p.b}`);

if (args.json) {
  await writeFile(args.json, `${JSON.stringify({ recommended, recommendedEmbeddingOnly: recommendedAlone, defaultThreshold: DEFAULT_THRESHOLD, atDefault: current, thresholds: THRESHOLDS.map((t) => ({ cache: atThreshold(scored, t), embeddingOnly: atThreshold(scored, t, { embeddingOnly: true }) })), scored }, null, 1)}\n`);
}
