// Model output and document text on the page, built with DOM APIs only.
//
// Answers are markdown: markdown-it parses them into tokens (raw HTML off, so `<script>` is text),
// and the DOM is built from those tokens here, element by element, from a fixed list of tags.
// Nothing is ever parsed as HTML: no innerHTML, no attribute but the few set below. Links keep
// only http(s) targets; images are never loaded (shown as their alt text); headings are demoted
// below the page's own. Citations [n] are found in the built DOM's text nodes (www/rag/cite.js),
// so a bracket inside code or a link stays text, and markdown cannot forge a citation link.
import markdownit from '../vendor/markdown-it.js';
import { citationSegments } from '../rag/cite.js';

const md = markdownit({ html: false, linkify: false, typographer: false });
// "[1]: https://…" lines would turn a later [1] into a link to the model's URL: no definitions.
md.disable(['reference']);

/** Tags a markdown token may open; anything else becomes a <span>. */
const BLOCK_TAGS = new Set(['p', 'ul', 'ol', 'li', 'blockquote', 'table', 'thead', 'tbody', 'tr', 'th', 'td']);
const INLINE_TAGS = new Set(['strong', 'em', 's']);
/** The model's # heading is an <h5>, ## and deeper an <h6>: the page's own go down to <h4>. */
const demote = (tag) => (Number(tag[1]) <= 1 ? 'h5' : 'h6');

/** The id of source `n`'s entry in turn `turn`'s source list. */
export const sourceId = (turn, n) => `source-${turn}-${n}`;

/** An absolute http(s) URL, or null. */
function safeHref(href) {
  try {
    const url = new URL(href);
    return url.protocol === 'http:' || url.protocol === 'https:' ? url.href : null;
  } catch {
    return null;
  }
}

function openElement(token) {
  const { tag } = token;
  if (/^h[1-6]$/.test(tag)) {
    const h = document.createElement(demote(tag));
    h.className = 'md-heading';
    return h;
  }
  if (tag === 'a') {
    const href = safeHref(token.attrGet('href') ?? '');
    if (!href) {
      const span = document.createElement('span');
      span.className = 'link-removed';
      span.title = 'link removed: only http(s) links are kept';
      return span;
    }
    const a = document.createElement('a');
    a.href = href;
    a.rel = 'noopener noreferrer nofollow';
    a.target = '_blank';
    a.className = 'external';
    return a;
  }
  if (BLOCK_TAGS.has(tag) || INLINE_TAGS.has(tag)) {
    const el = document.createElement(tag);
    if (tag === 'ol') {
      const start = Number.parseInt(token.attrGet('start') ?? '', 10);
      if (Number.isSafeInteger(start)) el.start = start;
    }
    const align = /text-align:\s*(left|center|right)/.exec(token.attrGet('style') ?? '');
    if (align) el.className = `align-${align[1]}`;
    return el;
  }
  return document.createElement('span');
}

/** Append markdown-it tokens (block or inline) under `root`. */
function appendTokens(tokens, root) {
  const stack = [root];
  for (const token of tokens) {
    const top = stack.at(-1);
    // A tight list's paragraphs are hidden: their text goes straight into the <li>.
    if (token.hidden && token.nesting !== 0) continue;
    if (token.nesting === 1) {
      const el = openElement(token);
      top.append(el);
      stack.push(el);
      continue;
    }
    if (token.nesting === -1) {
      if (stack.length > 1) stack.pop();
      continue;
    }
    switch (token.type) {
      case 'inline':
        appendTokens(token.children ?? [], top);
        break;
      case 'code_inline': {
        const code = document.createElement('code');
        code.textContent = token.content;
        top.append(code);
        break;
      }
      case 'fence':
      case 'code_block': {
        const pre = document.createElement('pre');
        const code = document.createElement('code');
        code.textContent = token.content;
        pre.append(code);
        top.append(pre);
        break;
      }
      case 'softbreak':
        top.append('\n');
        break;
      case 'hardbreak':
        top.append(document.createElement('br'));
        break;
      case 'hr':
        top.append(document.createElement('hr'));
        break;
      case 'image': {
        // Never loaded: an image would be a request to wherever the model pointed.
        const span = document.createElement('span');
        span.className = 'image-removed';
        const alt = token.children?.map((c) => c.content).join('') || token.content;
        span.textContent = `[image${alt ? `: ${alt}` : ''}]`;
        span.title = 'image not loaded';
        top.append(span);
        break;
      }
      default: // text, and html_* if raw HTML were ever on: shown as the text it is
        if (token.content) top.append(token.content);
    }
  }
}

/** A link to source `n` of the turn, or a marked number that names no source. */
export function citationElement(turn, n, sources, label = `[${n}]`) {
  const source = sources.find((s) => s.n === n);
  if (!source) {
    const span = document.createElement('span');
    span.className = 'cite-invalid';
    span.dataset.n = String(n);
    span.title = `no source ${n}`;
    span.textContent = label === `[${n}]` ? `[${n}?]` : `${label}?`;
    return span;
  }
  const a = document.createElement('a');
  a.className = 'cite';
  a.href = `#${sourceId(turn, n)}`;
  a.dataset.n = String(n);
  a.title = `${source.source ?? 'source'}${source.page ? `, page ${source.page}` : ''}`;
  a.textContent = label;
  return a;
}

/** One citation segment ([2], [1, 4], [1-3]) as elements. */
function citationNodes(segment, turn, sources) {
  if (segment.numbers.length === 1) return [citationElement(turn, segment.numbers[0], sources)];
  const group = document.createElement('span');
  group.className = 'cite-group';
  group.append('[');
  segment.numbers.forEach((n, i) => {
    if (i > 0) group.append(', ');
    group.append(citationElement(turn, n, sources, String(n)));
  });
  group.append(']');
  return [group];
}

/** Replace the [n] markers in `root`'s text nodes (outside code and links) with citation elements. */
export function linkCitations(root, sources, turn) {
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT, {
    acceptNode: (node) => (node.parentElement?.closest('code, pre, a, .cite-invalid, .cite-group') ? NodeFilter.FILTER_REJECT : NodeFilter.FILTER_ACCEPT),
  });
  const nodes = [];
  for (let node = walker.nextNode(); node; node = walker.nextNode()) if (node.data.includes('[')) nodes.push(node);
  for (const node of nodes) {
    const segments = citationSegments(node.data, sources.length);
    if (!segments.some((s) => s.kind === 'cite')) continue;
    node.replaceWith(...segments.flatMap((s) => (s.kind === 'cite' ? citationNodes(s, turn, sources) : [s.text])));
  }
}

/**
 * Render an answer (markdown from the model) into `container`, replacing what it held, with each
 * citation [n] a link to `#source-<turn>-<n>` and a number naming no source marked as such.
 * `turn` defaults to the nearest `[data-turn]` around the container.
 */
export function renderAnswer(container, text, sources = [], { turn } = {}) {
  const turnId = turn ?? container.closest?.('[data-turn]')?.dataset.turn ?? '1';
  const fragment = document.createDocumentFragment();
  appendTokens(md.parse(String(text ?? ''), {}), fragment);
  fragment.normalize(); // adjacent text tokens into one node, so "[" "1]" is found as "[1]"
  linkCitations(fragment, sources, turnId);
  container.replaceChildren(fragment);
}

/**
 * One line of markdown (a sentence quoted from a document) as inline nodes: emphasis and code
 * render, nothing else is interpreted, and its brackets are left as they are (a document's own
 * [1] is its reference, not one of ours).
 */
export function inlineNodes(text) {
  const fragment = document.createDocumentFragment();
  appendTokens(md.parseInline(String(text ?? ''), {}), fragment);
  fragment.normalize();
  return [...fragment.childNodes];
}

/**
 * `text` with the ranges `spans` ([{ start, end }], offsets into text) wrapped in <mark>, as nodes.
 * Overlapping or unordered ranges are merged; out-of-range offsets are clamped.
 */
export function highlighted(text, spans = []) {
  const ranges = spans
    .map(({ start, end }) => [Math.max(0, Math.min(text.length, start | 0)), Math.max(0, Math.min(text.length, end | 0))])
    .filter(([s, e]) => e > s)
    .sort((a, b) => a[0] - b[0]);
  const merged = [];
  for (const r of ranges) {
    const last = merged.at(-1);
    if (last && r[0] <= last[1]) last[1] = Math.max(last[1], r[1]);
    else merged.push([...r]);
  }
  const nodes = [];
  let at = 0;
  for (const [s, e] of merged) {
    if (s > at) nodes.push(text.slice(at, s));
    const mark = document.createElement('mark');
    mark.textContent = text.slice(s, e);
    nodes.push(mark);
    at = e;
  }
  if (at < text.length) nodes.push(text.slice(at));
  return nodes;
}

/**
 * The numbered source list of a turn: one <li id="source-<turn>-<n>"> per source with its
 * document name and page, score and passage; `supports` (Map n → [{ start, end }]) marks the
 * sentences that back the answer.
 */
export function renderSources(list, sources, turn, supports = new Map()) {
  list.replaceChildren(...sources.map((s) => {
    const li = document.createElement('li');
    li.id = sourceId(turn, s.n);
    li.value = s.n;
    li.className = 'source';
    const meta = document.createElement('div');
    meta.className = 'meta';
    const name = document.createElement('span');
    name.className = 'name';
    name.textContent = `${s.source ?? 'unknown source'}${s.page ? `, page ${s.page}` : ''}`;
    const score = document.createElement('span');
    score.className = 'score';
    score.textContent = ` — score ${Number.isFinite(s.score) ? s.score.toFixed(4) : '–'}${s.truncated ? ' (shortened to fit)' : ''}`;
    meta.append(name, score);
    const passage = document.createElement('div');
    passage.className = 'passage';
    const marks = supports.get(s.n) ?? [];
    passage.append(...highlighted(s.text ?? '', marks));
    if (marks.length) li.classList.add('supports');
    li.append(meta, passage);
    return li;
  }));
}
