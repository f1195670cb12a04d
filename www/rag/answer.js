// One turn of a cited conversation: question → retrieval → prompt → quick extractive answer →
// generated answer → citations and supporting sentences. The page, the benchmark page and the
// answer-quality command (scripts/eval-answers.mjs) all answer through `answerQuestion`, so what
// is measured is what the user gets.
//
// Pure like the rest of www/rag/: the model (`generate`), the embedder (`embed`) and the
// reranker are injected; nothing here imports the engine or touches the DOM.
import { buildCitedPrompt } from './pipeline.js';
import { withoutSourceHeadings } from './prompt.js';
import { citationStats } from './cite.js';
import { attributeCitations, extractiveAnswer, supportingSentences } from './extract.js';
import { edgeError } from '../engine/errors.js';

/**
 * How much of the earlier turns a new question gets.
 *   current-question  nothing: retrieval and prompt see the current question alone
 *   follow-up         a question that reads as a follow-up (a pronoun or an ellipsis, few words of
 *                     its own) is searched together with the question that opened its topic, and
 *                     the prompt names the previous question; any other question starts afresh
 *   previous-question every question is searched with, and prompted after, the previous one
 *   full-history      the last exchanges, answers included, go into the prompt as chat turns
 *                     (what the page did before: the model tends to continue its last answer)
 * The default is chosen by scripts/eval-answers.mjs --rules (see README, "Answer quality").
 */
export const CONVERSATION_RULES = Object.freeze(['current-question', 'follow-up', 'previous-question', 'full-history']);
export const DEFAULT_RULE = 'follow-up';

/**
 * Decodings beside a model's answer preset (the registry's `answer`): greedy, which benchmarks and
 * tests use, with the repetition guard the engine applies by default; and greedy without it,
 * what the page did before answer presets (the answer-quality command compares all three).
 */
export const DECODINGS = Object.freeze({
  greedy: Object.freeze({ temperature: 0 }),
  'greedy-unguarded': Object.freeze({ temperature: 0, repetitionGuard: false }),
});

/**
 * An answer no source supports — the model cited none and none of its sentences is close to a
 * source sentence (attributeCitations) — is written again with sampling, at most `attempts` more
 * times, each with its own seed; the first supported answer is kept, else the first one written.
 * The prompt is the same, so each new try prefills nothing (the KV cache holds the prompt) and
 * costs only its decoding. Measured on the reference questions with SmolLM2-135M (README,
 * "Answers"): the greedy preset's answer is unsupported for 2 of 8, and sampled at 0.4–0.8 either
 * of those two is supported in about half of the tries.
 * Greedy decoding for benchmarks and tests passes `regenerate: null` (answerQuestion).
 */
export const REGENERATION = Object.freeze({ attempts: 2, temperature: 0.7, topK: 50, topP: 0.9 });

/** How many exchanges the full-history rule keeps (the prompt builder drops more if they do not fit). */
const FULL_HISTORY_EXCHANGES = 3;

// A question that leans on an earlier one: it refers back (pronouns, "the same", "that") or
// starts mid-thought ("And …", "What about …"), and has few content words of its own.
const REFERS_BACK = /\b(it|its|it's|this|that|these|those|they|them|their|theirs|there|he|she|his|her|such|same|former|latter|above|mentioned)\b/i;
const CONTINUES = /^\s*(and|but|so|also|then|what about|how about|why( not)?|what else|anything else|more on|tell me more|explain more|in what way)\b/i;
const FUNCTION_WORDS = new Set(('a an the of in on at to for from by with about into over under and or but so if then than as is are was were be been being ' +
  'do does did done have has had can could would should will shall may might must what which who whom whose when where why how ' +
  'it its this that these those they them their there he she his her such same me my we our you your i tell explain more also else ' +
  'any anything some please give describe mean means meant').split(' '));

/** Words of a question that carry its own topic (not function words, not references back). */
function contentWords(question) {
  return question.toLowerCase().match(/[\p{L}\p{N}]+(?:[-'][\p{L}\p{N}]+)*/gu)?.filter((w) => !FUNCTION_WORDS.has(w)) ?? [];
}

/** Whether `question` reads as a follow-up that cannot stand alone. */
export function isFollowUp(question) {
  const cue = CONTINUES.test(question) || REFERS_BACK.test(question);
  return cue && contentWords(question).length <= 4;
}

export class Conversation {
  /** @param {{ rule?: string }} [options] one of CONVERSATION_RULES */
  constructor({ rule = DEFAULT_RULE } = {}) {
    if (!CONVERSATION_RULES.includes(rule)) {
      throw edgeError('invalid_request', `unknown conversation rule "${rule}" (expected ${CONVERSATION_RULES.join(', ')})`);
    }
    this.rule = rule;
    /** @type {object[]} the answered turns, oldest first (what answerQuestion returned) */
    this.turns = [];
  }

  /** Forget every turn (the engine's KV cache needs no reset: the next prompt simply shares less). */
  clear() {
    this.turns = [];
  }

  /**
   * What the earlier turns give a new question under this rule: the text retrieval searches
   * for, the exchanges kept in the prompt, and the earlier question the prompt names.
   * @returns {{ retrievalQuery: string, history: { role: string, content: string }[], followUpOf: string|undefined, followUp: boolean }}
   */
  contextFor(question) {
    const previous = this.turns.at(-1);
    const alone = { retrievalQuery: question, history: [], followUpOf: undefined, followUp: false };
    if (!previous) return alone;
    switch (this.rule) {
      case 'current-question':
        return alone;
      case 'follow-up':
        if (!isFollowUp(question)) return alone;
        return { retrievalQuery: `${previous.topic} ${question}`, history: [], followUpOf: previous.question, followUp: true };
      case 'previous-question':
        return { retrievalQuery: `${previous.question} ${question}`, history: [], followUpOf: previous.question, followUp: true };
      case 'full-history':
        return {
          retrievalQuery: question,
          history: this.turns.slice(-FULL_HISTORY_EXCHANGES).flatMap((t) => [{ role: 'user', content: t.question }, { role: 'assistant', content: t.text }]),
          followUpOf: undefined,
          followUp: false,
        };
      default:
        throw new Error(`unreachable rule ${this.rule}`);
    }
  }

  record(turn) {
    this.turns.push(turn);
  }
}

/**
 * Answer one question of a conversation and record the turn in it.
 * @param {object} o
 * @param {string} o.question
 * @param {Conversation} [o.conversation]
 * @param {import('./index.js').DocumentIndex} o.index
 * @param {(texts: string[]) => Promise<Float32Array[]>} o.embed
 * @param {(query: string, candidates: object[]) => Promise<number[]>} [o.rerank]
 * @param {(text: string) => number} o.countTokens  the model's tokenizer
 * @param {number} o.contextLength
 * @param {object} [o.retrieval]  { topKInitial, topKFinal, weights, mode }
 * @param {object} [o.request]    decoding (an answer preset's fields, maxNewTokens, stop) and `signal`
 * @param {(request: object, onToken?: (piece: string) => void) => Promise<{ text: string, finishReason: string, timings: object }>} o.generate
 * @param {boolean} [o.extractive] compute the quick extractive answer first (default true)
 * @param {Map<string, Float32Array>} [o.sentenceCache] sentence vectors shared between turns
 *        (extract.js warmSentenceVectors fills it for the indexed passages ahead of time)
 * @param {(sources: object[], retrieval: object) => void} [o.onSources]
 * @param {(quick: { sentences: object[], ms: number }) => void} [o.onExtractive]
 * @param {(piece: string) => void} [o.onToken]
 * @param {{ attempts: number, temperature: number, topK: number, topP: number }|null} [o.regenerate]
 *        writing an unsupported answer again (default REGENERATION; null: never)
 * @param {(next: { attempt: number, discarded: string }) => void} [o.onRegenerate] the streamed
 *        answer was unsupported and is being written again: what streams next replaces it
 */
export async function answerQuestion({
  question, conversation = new Conversation(), index, embed, rerank, countTokens, contextLength,
  retrieval = {}, request = {}, generate, extractive = true, sentenceCache, onSources, onExtractive, onToken,
  regenerate = REGENERATION, onRegenerate,
}) {
  if (typeof question !== 'string' || !question.trim()) {
    throw edgeError('invalid_request', 'the question is empty');
  }
  if (regenerate && !(Number.isInteger(regenerate.attempts) && regenerate.attempts >= 0)) {
    throw edgeError('invalid_request', `regenerate.attempts must be an integer ≥ 0, got ${regenerate.attempts}`);
  }
  const startedAt = performance.now();
  const { retrievalQuery, history, followUpOf, followUp } = conversation.contextFor(question);
  const maxNewTokens = request.maxNewTokens ?? DEFAULT_MAX_NEW_TOKENS;
  const { messages, sources, retrieval: found } = await buildCitedPrompt({
    question, retrievalQuery, history, followUpOf, index, embed, countTokens, contextLength, maxNewTokens,
    retrieval: { ...retrieval, rerank },
  });
  onSources?.(sources, found);

  const quick = extractive && embed && sources.length > 0 ? await extractiveAnswer({ query: question, sources, embed, cache: sentenceCache }) : null;
  if (quick) onExtractive?.(quick);

  /** One answer written with `decoding` over the request, and what supports it. */
  const write = async (decoding) => {
    const result = await generate({ ...request, ...decoding, maxNewTokens, messages }, onToken);
    // A copied "[n] file, page p" line would otherwise count as a citation of source n.
    const text = withoutSourceHeadings(result.text, sources);
    const citations = citationStats(text, sources.length);
    // An answer that cites nothing gets its sources attributed by similarity, kept apart from the
    // model's own text so the page can say who cited.
    const attribution = embed && sources.length > 0 && !citations.hasValid
      ? await attributeCitations({ answer: text, sources, embed, cache: sentenceCache })
      : null;
    const attributed = attribution?.added.length ? attribution : null;
    return { text, finishReason: result.finishReason, timings: result.timings, citations, attributed, supported: citations.hasValid || attributed !== null };
  };
  const attempts = [await write({})];
  // Without sources nothing can support an answer, and an answer cut short (aborted, context
  // full) is not written again.
  const retry = regenerate && sources.length > 0 && embed;
  const settled = (a) => a.supported || a.finishReason === 'aborted' || a.finishReason === 'context_full';
  while (retry && attempts.length <= regenerate.attempts && !settled(attempts.at(-1)) && !request.signal?.aborted) {
    onRegenerate?.({ attempt: attempts.length + 1, discarded: attempts.at(-1).text });
    const { temperature, topK, topP } = regenerate;
    attempts.push(await write({ temperature, topK, topP, seed: (request.seed ?? 0) + attempts.length }));
  }
  const { text, finishReason, timings, citations, attributed } = attempts.find((a) => a.supported) ?? attempts[0];
  const cited = attributed ? attributed.text : text;
  const supports = embed && sources.length > 0 ? await supportingSentences({ answer: cited, sources, embed, cache: sentenceCache }) : new Map();
  const previous = conversation.turns.at(-1);
  const turn = {
    question,
    retrievalQuery,
    followUp,
    // The question that opened this topic: what a later follow-up is searched with.
    topic: followUp && previous ? previous.topic : question,
    text,
    finishReason,
    timings,
    /** Every answer written for the question, in order (more than one when regenerated). */
    attempts: attempts.map(({ text: written, finishReason: reason, timings: t, supported }) => ({ text: written, finishReason: reason, timings: t, supported })),
    sources,
    retrieval: found.timings,
    extractive: quick,
    /** The model's own citations in `text`. */
    citations,
    /** When the model cited no source: `text` with the attributed [n] markers, and which they are. */
    attributed,
    supports,
    totalMs: performance.now() - startedAt,
  };
  conversation.record(turn);
  return turn;
}

/** Room for the answer when the request names none (an answer preset always does). */
const DEFAULT_MAX_NEW_TOKENS = 256;
