// Answer quality, measured the way a user meets it: the same `answerQuestion` as the page, over
// question sets with short gold answers that occur verbatim in the documents. Used by the
// benchmark page and by scripts/eval-answers.mjs (Node and headless Chromium).
//
// For each answer: did it end by itself, does it loop, does it cite a source that exists, is the
// gold fact in the answer, in a passage it cites, in the passages retrieved at all (the ceiling
// retrieval leaves the model), and in the quick extractive answer. For each conversation: time
// to first token per turn and how much of the prompt came from the KV cache.
//
// Everything environment-specific is injected (`generate`, `embed`, `countTokens`), like bench.js.
import { answerQuestion, Conversation, DECODINGS, REGENERATION } from '../rag/answer.js';
import { DocumentIndex } from '../rag/index.js';
import { indexDocuments, sampleCorpus } from '../rag/pipeline.js';
import { warmSentenceVectors } from '../rag/extract.js';


/** The reference system's three benchmark questions and prompts its users asked (issue 11). */
export const REFERENCE_QUESTIONS = Object.freeze([
  'What is sustainability in engineering?',
  'Explain the concept of life cycle assessment.',
  'How does climate change impact engineering design?',
  'How can I incorporate sustainability in my Fluid mechanics course?',
  'Can you help me develop a module on climate education for a Structural analysis course?',
  'What are some ways to teach life cycle thinking in a Thermodynamics course?',
  'How do I add systems thinking and ethics to a Materials science class?',
  'Suggest a project-based learning activity on the circular economy for first-year engineers.',
]);

/** An answer loops when more than this share of its 6-word runs are repeats of earlier ones. */
export const LOOP_SHARE = 0.2;
const LOOP_RUN = 6;

const words = (text) => String(text).toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? [];

/** Share of the text's 6-word runs that already occurred earlier in it (0 when it has none). */
export function repeatedRunShare(text) {
  const w = words(text);
  if (w.length < LOOP_RUN + 1) return 0;
  const seen = new Set();
  let repeated = 0;
  const total = w.length - LOOP_RUN + 1;
  for (let i = 0; i < total; i++) {
    const run = w.slice(i, i + LOOP_RUN).join(' ');
    if (seen.has(run)) repeated++;
    else seen.add(run);
  }
  return repeated / total;
}

export const loops = (text) => repeatedRunShare(text) > LOOP_SHARE;

const normalize = (text) => String(text).toLowerCase().replace(/[‐‑‒–—]/g, '-').replace(/\s+/g, ' ');

const escapeRegExp = (text) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * Whether `text` contains the gold answer or one of its accepted forms (case- and space-blind),
 * as whole words: "3.1" is not found in "3.12", nor "laminar" in "laminarity".
 */
export function containsGold(text, { gold, alternatives = [] }) {
  const haystack = normalize(text);
  return [gold, ...alternatives].some((g) => {
    const needle = normalize(g).trim();
    return needle && new RegExp(`(?:^|[^\\p{L}\\p{N}])${escapeRegExp(needle)}(?![\\p{L}\\p{N}]|[.,]\\d)`, 'u').test(haystack);
  });
}

/** The measurements of one answered turn against its gold answer (when it has one). */
export function scoreTurn(turn, expected) {
  const cited = new Set(turn.citations.valid);
  const citedOrAttributed = new Set([...cited, ...(turn.attributed?.added.map((a) => a.n) ?? [])]);
  const goldIn = (texts) => expected?.gold ? texts.some((t) => containsGold(t, expected)) : null;
  return {
    question: turn.question,
    followUp: turn.followUp,
    finishReason: turn.finishReason,
    endsByItself: turn.finishReason === 'stop',
    loops: loops(turn.text),
    repeatedRunShare: repeatedRunShare(turn.text),
    validCitation: turn.citations.hasValid,
    // With the citations edgellm attributes by similarity when the model cites nothing.
    citedWithAttribution: turn.citations.hasValid || !!turn.attributed,
    invalidCitations: turn.citations.invalid.length,
    goldInAnswer: goldIn([turn.text]),
    goldInCited: goldIn(turn.sources.filter((s) => cited.has(s.n)).map((s) => s.text)),
    goldInCitedWithAttribution: goldIn(turn.sources.filter((s) => citedOrAttributed.has(s.n)).map((s) => s.text)),
    goldInRetrieved: goldIn(turn.sources.map((s) => s.text)),
    goldInExtractive: turn.extractive ? goldIn([turn.extractive.sentences.map((s) => s.text).join(' ')]) : null,
    extractiveMs: turn.extractive?.ms ?? null,
    // The prompt as first read, and when the first answer streamed: a regenerated answer, which
    // replaces it later, finds the whole prompt in the KV cache.
    promptTokens: turn.attempts[0].timings.promptTokens,
    reusedPromptTokens: turn.attempts[0].timings.reusedPromptTokens ?? 0,
    timeToFirstTokenMs: turn.attempts[0].timings.timeToFirstTokenMs,
    regenerated: turn.attempts.length > 1,
    generatedTokens: turn.timings.generatedTokens,
    answer: turn.text,
  };
}

/**
 * Ask each conversation's turns in order, in one Conversation each (a question set asked
 * "fresh" is a list of one-turn conversations).
 * @param {object} o
 * @param {{ id: string, turns: { question: string, gold?: string, alternatives?: string[] }[] }[]} o.conversations
 * @param {object} o.context  what answerQuestion needs besides the question: index, embed, countTokens,
 *                            contextLength, retrieval, generate
 * @param {object} o.request  decoding: an answer preset or greedy, with maxNewTokens
 * @param {object|null} [o.regenerate] answerQuestion's (default REGENERATION; null for greedy)
 * @param {string} [o.rule]   the conversation rule
 * @param {(done: number, total: number) => void} [o.onProgress]
 */
export async function runConversations({ conversations, context, request, regenerate, rule, onProgress = () => {} }) {
  const total = conversations.reduce((n, c) => n + c.turns.length, 0);
  const turns = [];
  let done = 0;
  for (const { id, turns: asked } of conversations) {
    const conversation = new Conversation({ rule });
    for (const [i, expected] of asked.entries()) {
      const turn = await answerQuestion({ ...context, question: expected.question, conversation, request, regenerate });
      turns.push({ conversation: id, turn: i + 1, kind: expected.kind ?? null, ...scoreTurn(turn, expected) });
      onProgress(++done, total);
    }
  }
  return turns;
}

const share = (xs) => (xs.length ? xs.filter(Boolean).length / xs.length : null);
const median = (xs) => {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/** The figures of a list of scored turns (shares in 0..1, null where nothing was measured). */
export function summarizeTurns(turns) {
  const withGold = turns.filter((t) => t.goldInAnswer !== null);
  const byTurn = new Map();
  for (const t of turns) byTurn.set(t.turn, [...(byTurn.get(t.turn) ?? []), t]);
  return {
    answers: turns.length,
    endsByItself: share(turns.map((t) => t.endsByItself)),
    stoppedByGuard: share(turns.map((t) => t.finishReason === 'repetition')),
    regenerated: share(turns.map((t) => t.regenerated)),
    loops: share(turns.map((t) => t.loops)),
    validCitation: share(turns.map((t) => t.validCitation)),
    citedWithAttribution: share(turns.map((t) => t.citedWithAttribution)),
    goldInAnswer: share(withGold.map((t) => t.goldInAnswer)),
    goldInCited: share(withGold.map((t) => t.goldInCited)),
    goldInCitedWithAttribution: share(withGold.map((t) => t.goldInCitedWithAttribution)),
    goldInRetrieved: share(withGold.map((t) => t.goldInRetrieved)),
    goldInExtractive: share(withGold.filter((t) => t.goldInExtractive !== null).map((t) => t.goldInExtractive)),
    extractiveMs: median(turns.map((t) => t.extractiveMs).filter((x) => x !== null)),
    generatedTokens: median(turns.map((t) => t.generatedTokens)),
    // Per turn position in its conversation: the prompt keeps growing if earlier turns pile up.
    perTurn: [...byTurn].sort(([a], [b]) => a - b).map(([turn, ts]) => ({
      turn,
      timeToFirstTokenMs: median(ts.map((t) => t.timeToFirstTokenMs)),
      promptTokens: median(ts.map((t) => t.promptTokens)),
      reusedPromptTokens: median(ts.map((t) => t.reusedPromptTokens)),
    })),
  };
}

const pct = (x) => (x === null ? '–' : `${(100 * x).toFixed(0)}%`);

/** A plain-text table: one row per (set, decoding, rule) summary. */
export function formatQuality(rows) {
  const head = ['Set', 'Decoding', 'Rule', 'Answers', 'End', 'Guard', 'Loop', 'Rewritten', 'Valid [n]', '[n] attributed', 'Gold in answer', 'Gold in cited', 'Gold in cited/attributed', 'Gold retrieved', 'Extractive gold', 'TTFT turn 1 → last'];
  const lines = rows.map(({ set, decoding, rule, summary: s }) => {
    const first = s.perTurn[0];
    const last = s.perTurn.at(-1);
    const ttft = first && last && last.turn > 1
      ? `${(first.timeToFirstTokenMs / 1000).toFixed(1)} s → ${(last.timeToFirstTokenMs / 1000).toFixed(1)} s (${(last.timeToFirstTokenMs / first.timeToFirstTokenMs).toFixed(2)}×)`
      : `${((first?.timeToFirstTokenMs ?? 0) / 1000).toFixed(1)} s`;
    return [set, decoding, rule, String(s.answers), pct(s.endsByItself), pct(s.stoppedByGuard), pct(s.loops), pct(s.regenerated), pct(s.validCitation), pct(s.citedWithAttribution),
      pct(s.goldInAnswer), pct(s.goldInCited), pct(s.goldInCitedWithAttribution), pct(s.goldInRetrieved), pct(s.goldInExtractive), ttft];
  });
  const widths = head.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
  const fmt = (cells) => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`;
  return [fmt(head), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...lines.map(fmt)].join('\n');
}

/**
 * The question sets, as conversations. `reference-*` run over the sample corpus (no gold
 * answers: loops, endings and citations only); `cranfield*` over eval/answers/ (gold answers).
 * @param {{ questions: object[], conversations: object[] }|null} cranfield eval/answers/questions.json
 */
export function questionSets(cranfield) {
  const sets = [
    { name: 'reference-conversation', corpus: 'sample', conversations: [{ id: 'reference', turns: REFERENCE_QUESTIONS.map((question) => ({ question })) }] },
    { name: 'reference-fresh', corpus: 'sample', conversations: REFERENCE_QUESTIONS.map((question, i) => ({ id: `r${i + 1}`, turns: [{ question }] })) },
  ];
  if (cranfield) {
    sets.push(
      { name: 'cranfield', corpus: 'cranfield', conversations: cranfield.questions.map((q) => ({ id: q.id, turns: [q] })) },
      { name: 'cranfield-conversations', corpus: 'cranfield', conversations: cranfield.conversations },
    );
  }
  return sets;
}

/** Cranfield documents as the page's documents (one page each, named by id and title). */
export function cranfieldDocuments(subset) {
  return subset.documents.map((d) => ({ name: `${d.id} ${d.title}`.trim(), pages: [{ page: 1, text: d.text }] }));
}

/**
 * Every (set × decoding × rule) combination, in one run.
 * @param {object} o
 * @param {{ name: string, corpus: string, conversations: object[] }[]} o.sets
 * @param {Record<string, { request: object, regenerate: object|null }>} o.decodings  name → decoding (decodingsFor)
 * @param {string[]} o.rules                    conversation rules (single-turn sets use the first)
 * @param {(corpus: string) => Promise<object>} o.contextFor  answerQuestion's context for a corpus
 * @param {(text: string) => void} [o.onProgress]
 */
export async function evaluateQuality({ sets, decodings, rules, contextFor, onProgress = () => {} }) {
  const rows = [];
  for (const set of sets) {
    const context = await contextFor(set.corpus);
    const multiTurn = set.conversations.some((c) => c.turns.length > 1);
    for (const [decoding, { request, regenerate }] of Object.entries(decodings)) {
      for (const rule of multiTurn ? rules : rules.slice(0, 1)) {
        const turns = await runConversations({
          conversations: set.conversations, context, request, regenerate, rule,
          onProgress: (done, total) => onProgress(`${set.name} · ${decoding} · ${rule}: ${done}/${total}`),
        });
        rows.push({ set: set.name, decoding, rule: multiTurn ? rule : '–', summary: summarizeTurns(turns), turns });
      }
    }
  }
  return rows;
}

/**
 * answerQuestion's context for each corpus, indexing it on first use: `sample` (www/corpus/,
 * read with `readSample(file)`) or `cranfield` (eval/answers/cranfield-subset.json, given). As
 * on the page, the passages' sentence vectors are embedded after indexing, before any question.
 * `model`: { generate, countTokens, contextLength }; `retrieval`: the page's settings.
 */
export function contextsByCorpus({ readSample, cranfieldSubset, embed, model, retrieval = {} }) {
  const contexts = new Map();
  return (corpus) => {
    if (!contexts.has(corpus)) {
      contexts.set(corpus, (async () => {
        const docs = corpus === 'sample' ? await sampleCorpus(readSample) : cranfieldDocuments(cranfieldSubset);
        const index = new DocumentIndex();
        await indexDocuments(index, docs, embed);
        const sentenceCache = new Map();
        await warmSentenceVectors({ texts: index.texts(), embed, cache: sentenceCache });
        return { index, embed, retrieval, sentenceCache, ...model };
      })());
    }
    return contexts.get(corpus);
  };
}

/**
 * name → { request, regenerate } for a model, in the order of `names`: its answer preset as the
 * page uses it (an unsupported answer written again, answer.js REGENERATION), the preset without
 * that (`preset-once`), and the DECODINGS (greedy with and without the repetition guard, never
 * regenerated) with the preset's answer length.
 */
export function decodingsFor(preset, names) {
  if (!preset) throw new Error('the model has no answer preset in the registry');
  const known = {
    preset: { request: preset, regenerate: REGENERATION },
    'preset-once': { request: preset, regenerate: null },
    ...Object.fromEntries(Object.entries(DECODINGS).map(([n, d]) => [n, { request: { ...d, maxNewTokens: preset.maxNewTokens }, regenerate: null }])),
  };
  return Object.fromEntries(names.map((n) => {
    if (!known[n]) throw new Error(`unknown decoding ${n} (expected ${Object.keys(known).join(', ')})`);
    return [n, known[n]];
  }));
}
