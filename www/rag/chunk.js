// Splitting documents into retrieval chunks.
//
// Sizes are in characters, not tokens: the tokenizer belongs to whichever model is loaded, and
// chunks must not change when the user switches models. 800 characters is roughly 150–200
// English tokens, so three passages fit comfortably in a small model's context.
//
// Every chunk keeps its exact position in the source text (`text === pageText.slice(start, end)`)
// so the page can highlight a cited passage in its document.

export const CHUNK_DEFAULTS = Object.freeze({ size: 800, overlap: 120 });

/**
 * A chunk ends at the best boundary found in the second half of its window. Boundaries are tried
 * in this order; a hard cut is the last resort (for text without spaces).
 *  - paragraph: a blank line; the chunk ends before it.
 *  - sentence: `.`, `!`, `?` or `…` (possibly followed by closing quotes/brackets) then whitespace.
 *  - word: any whitespace.
 * Single line breaks are deliberately only word boundaries: PDF text and plain-text files are
 * hard-wrapped, so a line break usually falls in the middle of a sentence.
 */
const BOUNDARIES = [
  { pattern: /\n[ \t\r]*\n/g, endsAt: 'matchStart' },
  { pattern: /[.!?…]["'”’)\]]*(?=\s)/g, endsAt: 'matchEnd' },
  { pattern: /\s/g, endsAt: 'matchStart' },
];

/** A chunk may not end before this fraction of its window, so boundaries never make tiny chunks. */
const MIN_FILL = 0.5;

const isSpace = (ch) => ch !== undefined && /\s/.test(ch);

/**
 * Split one text (one page of a document) into overlapping chunks.
 * @param {string} text
 * @param {{ size?: number, overlap?: number, source?: string, page?: number }} [options]
 * @returns {{ id: string, text: string, source: string|null, page: number|null, start: number, end: number }[]}
 */
export function chunkText(text, { size = CHUNK_DEFAULTS.size, overlap = CHUNK_DEFAULTS.overlap, source, page } = {}) {
  if (typeof text !== 'string') throw new TypeError(`chunkText: text must be a string, got ${typeof text}`);
  validateChunkSettings(size, overlap);

  const chunks = [];
  const limit = text.trimEnd().length;
  let start = skipSpaces(text, 0, limit);
  while (start < limit) {
    const end = findChunkEnd(text, start, limit, size);
    chunks.push({
      id: chunkId(source, page, chunks.length),
      text: text.slice(start, end),
      source: source ?? null,
      page: page ?? null,
      start,
      end,
    });
    if (end >= limit) break;
    start = nextChunkStart(text, start, end, limit, overlap);
  }
  return chunks;
}

/**
 * Chunk a whole document page by page, so that every chunk keeps its page number (for citations).
 * A plain-text document is one page: pass `{ name, text }` or `{ name, pages: [{ page: 1, text }] }`.
 * @param {{ name: string, pages?: { page: number, text: string }[], text?: string }} document
 * @param {{ size?: number, overlap?: number }} [options]
 */
export function chunkDocument(document, { size = CHUNK_DEFAULTS.size, overlap = CHUNK_DEFAULTS.overlap } = {}) {
  const { name } = document ?? {};
  if (typeof name !== 'string' || name.trim() === '') throw new TypeError('chunkDocument: the document needs a non-empty string name');
  const pages = document.pages ?? (typeof document.text === 'string' ? [{ page: 1, text: document.text }] : null);
  if (!Array.isArray(pages)) throw new TypeError(`chunkDocument: "${name}" needs pages: [{ page, text }] or a text string`);
  validateChunkSettings(size, overlap);

  const seenPages = new Set();
  return pages.flatMap(({ page, text }) => {
    if (!Number.isInteger(page) || page < 1) throw new TypeError(`chunkDocument: "${name}" has an invalid page number ${page} (pages are integers from 1)`);
    // Chunk ids contain the page number, so a repeated page would give duplicate ids.
    if (seenPages.has(page)) throw new Error(`chunkDocument: "${name}" lists page ${page} twice`);
    seenPages.add(page);
    return chunkText(text, { size, overlap, source: name, page });
  });
}

/** Throw a clear Error when chunk settings cannot work. */
export function validateChunkSettings(size, overlap) {
  if (!Number.isInteger(size) || size <= 0) throw new RangeError(`chunk size must be a positive integer number of characters, got ${size}`);
  if (!Number.isInteger(overlap) || overlap < 0) throw new RangeError(`chunk overlap must be a non-negative integer number of characters, got ${overlap}`);
  if (overlap >= size) throw new RangeError(`chunk overlap (${overlap}) must be smaller than chunk size (${size})`);
}

/** Ids are unique within an index as long as source names are (the index rejects duplicates). */
function chunkId(source, page, n) {
  const base = source ?? 'text';
  return page == null ? `${base}#${n}` : `${base}#p${page}.${n}`;
}

/** End (exclusive, trailing whitespace excluded) of the chunk that begins at `start`. */
function findChunkEnd(text, start, limit, size) {
  const hardEnd = start + size;
  if (hardEnd >= limit) return limit;
  const earliest = start + Math.max(1, Math.floor(size * MIN_FILL));
  // One character past the window, so a sentence end at the very end of it can see its space.
  const window = text.slice(start, hardEnd + 1);
  for (const { pattern, endsAt } of BOUNDARIES) {
    let best = -1;
    for (const match of window.matchAll(pattern)) {
      const end = start + (endsAt === 'matchStart' ? match.index : match.index + match[0].length);
      if (end >= earliest && end <= hardEnd) best = end;
    }
    if (best !== -1) return trimEndSpaces(text, start, best);
  }
  return hardEnd;
}

/**
 * Where the chunk after [start, end) begins: `overlap` characters before `end`, moved forward to
 * the start of a word so no chunk begins mid-word. Always moves forward, so chunking terminates.
 */
function nextChunkStart(text, start, end, limit, overlap) {
  let next = Math.max(end - overlap, start + 1);
  if (!isSpace(text[next - 1])) {
    let wordStart = next;
    while (wordStart < end && !isSpace(text[wordStart])) wordStart++;
    // No space left in the overlap (a long URL, text without spaces): cut mid-word rather than lose the overlap.
    if (wordStart < end) next = wordStart;
  }
  return skipSpaces(text, next, limit);
}

function skipSpaces(text, from, limit) {
  let i = from;
  while (i < limit && isSpace(text[i])) i++;
  return i;
}

function trimEndSpaces(text, start, end) {
  let i = end;
  while (i > start && isSpace(text[i - 1])) i--;
  return i;
}
