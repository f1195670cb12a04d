// Citations in an answer: the [n] markers that point at the numbered sources [1]..[n].
//
// The page needs three things from an answer: which sources it cites (extractCitations), the
// answer cut into plain text and citation markers so each marker can be drawn as a link
// (citationSegments), and whether it cites anything real at all (citationStats). A citation that
// names no source (a number outside 1..sourceCount, which small models do write) is kept and
// marked invalid, so the page can show it as such instead of silently dropping it.
//
// A bracketed list is one citation: [1], [1, 2], [1-3] or [1–3] (en dash), and [1][2] is two.
// A "range" longer than 20 or backwards ([1990-2020], [3-1]) is not a citation: it is far more
// likely a year span or a typo than a citation of many sources. Numbers too big to count exactly
// (beyond Number.MAX_SAFE_INTEGER) are not citations either.

/** A citation: [1], [1, 2], [1-3] (also with an en dash). Group 1 is the list inside the brackets. */
export const CITATION = /\[(\s*\d+\s*(?:[-–]\s*\d+\s*)?(?:,\s*\d+\s*(?:[-–]\s*\d+\s*)?)*)\]/g;

/** The longest range that still counts as a citation of several sources: [1-21] does, [1-22] does not. */
const MAX_RANGE = 20;

/**
 * The source numbers an answer cites, in order of first citation, each once.
 * Understands [1], [1][2], [1, 2] and ranges [1-3]. With `sourceCount`, numbers outside
 * 1..sourceCount (hallucinated citations) are left out.
 * @param {string} answerText
 * @param {number} [sourceCount]
 * @returns {number[]}
 */
export function extractCitations(answerText, sourceCount = Infinity) {
  return citationStats(answerText, sourceCount).valid;
}

/**
 * The text cut into plain text and citations, in order; joining the segments' `text` gives back
 * the text exactly. A citation lists its numbers in the order written (ranges expanded, each once)
 * and splits them into `valid` (1..sourceCount) and `invalid` (naming no source).
 * A bracket that is not a citation ([a], [1990-2020]) stays in the text around it.
 * @param {string} text
 * @param {number} [sourceCount] how many sources the model was given (default: any number ≥ 1 is valid)
 * @returns {({ kind: 'text', text: string } | { kind: 'cite', text: string, numbers: number[], valid: number[], invalid: number[] })[]}
 */
export function citationSegments(text, sourceCount = Infinity) {
  const string = String(text ?? '');
  const segments = [];
  let last = 0; // end of the last citation: the text before the next one starts here
  for (const match of string.matchAll(CITATION)) {
    const numbers = parseCitation(match[1]);
    if (numbers.length === 0) continue; // not a citation: stays in the surrounding text
    if (match.index > last) segments.push({ kind: 'text', text: string.slice(last, match.index) });
    const valid = numbers.filter((n) => isSource(n, sourceCount));
    const invalid = numbers.filter((n) => !isSource(n, sourceCount));
    segments.push({ kind: 'cite', text: match[0], numbers, valid, invalid });
    last = match.index + match[0].length;
  }
  if (last < string.length || segments.length === 0) segments.push({ kind: 'text', text: string.slice(last) });
  return segments;
}

/**
 * The numbers an answer cites, each once in order of first citation: `valid` name one of the
 * sources 1..sourceCount, `invalid` name none. `hasValid`: the answer cites at least one source.
 * @param {string} text
 * @param {number} [sourceCount]
 * @returns {{ valid: number[], invalid: number[], hasValid: boolean }}
 */
export function citationStats(text, sourceCount = Infinity) {
  const valid = new Set();
  const invalid = new Set();
  for (const segment of citationSegments(text, sourceCount)) {
    if (segment.kind !== 'cite') continue;
    for (const n of segment.valid) valid.add(n);
    for (const n of segment.invalid) invalid.add(n);
  }
  return { valid: [...valid], invalid: [...invalid], hasValid: valid.size > 0 };
}

/** A source number names a source: an integer in 1..sourceCount. */
function isSource(n, sourceCount) {
  return n >= 1 && n <= sourceCount;
}

/**
 * The numbers in a citation's list ("1, 3-5"), ranges expanded, each once, in written order.
 * Parts that are not citations (long or backwards ranges, numbers too big to count) are skipped;
 * an empty result means the brackets are not a citation.
 */
function parseCitation(list) {
  const numbers = [];
  for (const part of list.split(',')) {
    const [from, to = from] = part.split(/[-–]/).map((n) => Number.parseInt(n, 10));
    if (!Number.isSafeInteger(from) || !Number.isSafeInteger(to)) continue;
    if (to < from || to - from > MAX_RANGE) continue;
    for (let n = from; n <= to; n++) {
      if (!numbers.includes(n)) numbers.push(n);
    }
  }
  return numbers;
}
