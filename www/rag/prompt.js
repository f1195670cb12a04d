// The chat messages for a cited answer, fitted into the model's context.
//
//   system     how to answer: concisely, only from the numbered sources, citing them as [n]
//   history    earlier question/answer exchanges, when the conversation rule keeps any (answer.js)
//   user       the sources, numbered [1]..[n] with document name and page, then the earlier
//              question a follow-up refers to (if any), then the question
//
// The system prompt comes first and never changes, so the engine reuses its KV cache from one
// turn to the next (the longest common token prefix is not prefilled again).
// Sources sit in the last user message, not in the system message, because small models follow
// the turn right before their answer best, and some chat templates (Gemma) have no system role.
// Old answers lose their [n] markers: those numbers pointed at an earlier question's sources.

import { CITATION } from './cite.js';
import { edgeError } from '../engine/errors.js';

export const PROMPT_DEFAULTS = Object.freeze({
  historyExchanges: 3,
  /** A truncated passage shorter than this (in model tokens) is dropped instead: too little to cite. */
  minPassageTokens: 24,
});

export const SYSTEM_PROMPT = [
  "You answer questions about the user's documents.",
  'Answer concisely, using only the numbered sources given with the question.',
  'Cite each source you use by its number in square brackets, like [1] or [2].',
  'If the sources do not contain the answer, say that you do not know.',
].join(' ');

/**
 * One worked example, the same in every prompt: small models copy the form of an answer they
 * have just seen far better than they follow an instruction to cite.
 */
export const EXAMPLE_EXCHANGE = Object.freeze([
  {
    role: 'user',
    content: [
      'Sources:', '',
      '[1] bridges.txt',
      'Steel bridges corrode where water and road salt reach bare metal. Paint and regular inspection slow the corrosion down.',
      '',
      '[2] concrete.txt',
      'Concrete gains most of its strength in the first 28 days after it is poured.',
      '', 'Question: How are steel bridges protected from corrosion?',
    ].join('\n'),
  },
  { role: 'assistant', content: 'They are painted and inspected regularly, which slows corrosion down [1].' },
]);

const TRUNCATION_MARK = ' …';

/**
 * Build the messages, keeping their total token count within `contextBudget`.
 * The budget counts message contents only; leave room in it for the chat template and the answer.
 *
 * What is kept when everything does not fit, most valuable first: the top passage; the most
 * recent exchange; the other passages in rank order; older exchanges, newest first. Passages stay
 * a prefix of the ranking (the first one that does not fit whole is truncated, the rest dropped),
 * so source numbers are retrieval ranks; kept history stays a contiguous run of recent exchanges.
 *
 * @param {object} options
 * @param {string} options.question
 * @param {{ id?: string, text: string, source?: string, page?: number|null, score?: number }[]} options.passages best first
 * @param {{ role: 'user'|'assistant', content: string }[]} [options.history] oldest first
 * @param {(text: string) => number} options.countTokens the model's tokenizer
 * @param {number} options.contextBudget
 * @param {number} [options.historyExchanges]
 * @param {string} [options.followUpOf] the earlier question this one follows up on, named before it
 * @param {number} [options.minPassageTokens]
 * @returns {{ messages: { role: string, content: string }[], sources: { n: number, id?: string, source: string|null, page: number|null, score: number|null, text: string, truncated: boolean }[], tokens: number }}
 */
export function buildMessages({
  question, passages, history = [], countTokens, contextBudget, followUpOf,
  historyExchanges = PROMPT_DEFAULTS.historyExchanges, minPassageTokens = PROMPT_DEFAULTS.minPassageTokens,
}) {
  if (typeof question !== 'string' || question.trim() === '') throw new TypeError('buildMessages: question must be a non-empty string');
  if (!Array.isArray(passages)) throw new TypeError('buildMessages: passages must be an array (best first)');
  if (!Array.isArray(history)) throw new TypeError('buildMessages: history must be an array of { role, content } messages');
  if (typeof countTokens !== 'function') throw new TypeError('buildMessages: countTokens(text) is required (the model tokenizer)');
  if (!(Number.isFinite(contextBudget) && contextBudget > 0)) throw new RangeError(`buildMessages: contextBudget must be a positive number of tokens, got ${contextBudget}`);
  if (!Number.isInteger(historyExchanges) || historyExchanges < 0) throw new RangeError(`buildMessages: historyExchanges must be an integer ≥ 0, got ${historyExchanges}`);

  const exchanges = recentExchanges(history, historyExchanges); // oldest first
  const kept = { passages: [], exchanges: [] };
  const assembleKept = () => assemble(question, kept, followUpOf);
  const count = () => countMessages(assembleKept(), countTokens);
  const fits = () => count() <= contextBudget;

  if (!fits()) {
    throw edgeError('context_budget', `The question and instructions alone take ${count()} tokens, over the context budget of ${contextBudget}.`);
  }

  let passagesClosed = false;
  let historyClosed = false;
  const tryPassage = (passage) => {
    if (passagesClosed) return;
    kept.passages.push({ ...passage, truncated: false });
    if (fits()) return;
    kept.passages.pop();
    const truncated = truncateToFit(passage, kept, fits, countTokens, minPassageTokens);
    if (truncated) kept.passages.push(truncated);
    passagesClosed = true; // a gap in the ranking would make source numbers lie about rank
  };
  const tryExchange = (exchange) => {
    if (historyClosed) return;
    kept.exchanges.unshift(exchange);
    if (fits()) return;
    kept.exchanges.shift();
    historyClosed = true; // older exchanges without the newer ones would be out of context
  };

  const [top, ...rest] = passages;
  if (top) tryPassage(top);
  if (exchanges.length > 0) tryExchange(exchanges.at(-1));
  for (const passage of rest) tryPassage(passage);
  for (const exchange of exchanges.slice(0, -1).reverse()) tryExchange(exchange);

  const messages = assembleKept();
  return {
    messages,
    sources: kept.passages.map((p, i) => ({
      n: i + 1, id: p.id, source: p.source ?? null, page: p.page ?? null, score: p.score ?? null, text: p.text, truncated: p.truncated,
    })),
    tokens: countMessages(messages, countTokens),
  };
}

/** The messages for a question with the kept passages and exchanges. */
function assemble(question, { passages, exchanges }, followUpOf) {
  const sources = passages.length === 0
    ? 'Sources: none were found.'
    : `Sources:\n\n${passages.map((p, i) => `[${i + 1}] ${sourceLabel(p)}\n${p.text}`).join('\n\n')}`;
  const earlier = followUpOf?.trim() ? `Earlier question: ${followUpOf.trim()}\n` : '';
  return [
    { role: 'system', content: SYSTEM_PROMPT },
    ...EXAMPLE_EXCHANGE,
    ...exchanges.flat(),
    { role: 'user', content: `${sources}\n\n${earlier}Question: ${question.trim()}` },
  ];
}

/** What names a source after its number in the prompt: "notes.md, page 3". */
function sourceLabel({ source, page }) {
  const name = source ?? 'untitled';
  return page == null ? name : `${name}, page ${page}`;
}

/**
 * The answer without the source headings it copied from the prompt ("[2] notes.md, page 1" on a
 * line of its own, which small models write before a passage they copy, sometimes with a number
 * of their own): such a line is neither prose nor a citation of what follows it. Other lines are
 * kept as written.
 * @param {string} answer
 * @param {{ n: number, source: string|null, page: number|null }[]} sources as buildMessages returns them
 */
export function withoutSourceHeadings(answer, sources) {
  const labels = new Set(sources.map(sourceLabel));
  // By label, whatever the number: a copied heading may carry a number the source does not have.
  const isHeading = (line) => labels.has(line.trim().match(/^\[\d+\] (.*)$/)?.[1]);
  const lines = answer.split('\n');
  const kept = lines.filter((line) => !isHeading(line));
  return kept.length === lines.length ? answer : kept.join('\n').replace(/^\s*\n/, '');
}

function countMessages(messages, countTokens) {
  let total = 0;
  for (const { content } of messages) {
    const n = countTokens(content);
    if (!(Number.isFinite(n) && n >= 0)) throw new TypeError(`countTokens must return a number ≥ 0, got ${n}`);
    total += n;
  }
  return total;
}

/**
 * The last `n` exchanges of the history, oldest first, each [user] or [user, assistant].
 * Assistant messages lose their citation markers; other roles are ignored.
 */
function recentExchanges(history, n) {
  const exchanges = [];
  for (const { role, content } of history) {
    if (typeof content !== 'string') continue;
    if (role === 'user') exchanges.push([{ role, content }]);
    else if (role === 'assistant' && exchanges.length > 0 && exchanges.at(-1).length === 1) {
      exchanges.at(-1).push({ role, content: stripCitations(content) });
    }
  }
  return n === 0 ? [] : exchanges.slice(-n);
}

function stripCitations(text) {
  return text.replace(new RegExp(`\\s*${CITATION.source}`, 'g'), '').trim();
}

/**
 * The longest word-boundary prefix of the passage that still fits (binary search on length), or
 * null if what fits is shorter than minPassageTokens. Leaves `kept` as it found it.
 */
function truncateToFit(passage, kept, fits, countTokens, minPassageTokens) {
  const candidate = (length) => ({ ...passage, text: cutAtWord(passage.text, length) + TRUNCATION_MARK, truncated: true });
  const fitsWith = (length) => {
    kept.passages.push(candidate(length));
    const ok = fits();
    kept.passages.pop();
    return ok;
  };
  let low = 0; // longest length known to fit (0 = nothing)
  let high = passage.text.length;
  while (low < high) {
    const mid = Math.ceil((low + high) / 2);
    if (fitsWith(mid)) low = mid;
    else high = mid - 1;
  }
  if (low === 0) return null;
  const truncated = candidate(low);
  return countTokens(truncated.text) >= minPassageTokens ? truncated : null;
}

/** The first `length` characters, cut back to the last space so no word is split. */
function cutAtWord(text, length) {
  const prefix = text.slice(0, length);
  if (length >= text.length || /\s/.test(text[length])) return prefix.trimEnd();
  const lastSpace = prefix.search(/\s\S*$/);
  return (lastSpace > 0 ? prefix.slice(0, lastSpace) : prefix).trimEnd();
}
