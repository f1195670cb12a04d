// Question → cited prompt: retrieval (two stages) then the prompt fitted into the model's
// context. Shared by the page and the benchmark so both measure the same path.
import { retrieve } from './retrieve.js';
import { buildMessages } from './prompt.js';
import { chunkDocument } from './chunk.js';
import { DOCUMENT_LIMITS, checkChunks } from './limits.js';

/** Tokens the chat template adds around the messages (role markers, BOS); generous. */
export const TEMPLATE_OVERHEAD = 64;

/**
 * @param {object} o
 * @param {string} o.question       what the model answers
 * @param {string} [o.retrievalQuery] what retrieval searches for (default: the question)
 * @param {{ role: string, content: string }[]} [o.history] earlier exchanges kept in the prompt
 * @param {string} [o.followUpOf]   the earlier question a follow-up refers to
 * @param {import('./index.js').DocumentIndex} o.index
 * @param {(texts: string[]) => Promise<Float32Array[]>} o.embed
 * @param {(text: string) => number} o.countTokens  the model's tokenizer
 * @param {number} o.contextLength  the model's context window
 * @param {number} o.maxNewTokens   room kept for the answer
 * @param {object} [o.retrieval]    { topKInitial, topKFinal, weights, rerank }
 */
export async function buildCitedPrompt({
  question, retrievalQuery = question, history = [], followUpOf, index, embed, countTokens, contextLength, maxNewTokens, retrieval = {},
}) {
  const result = await retrieve({ index, query: retrievalQuery, embed, ...retrieval });
  const { messages, sources } = buildMessages({
    question,
    passages: result.passages,
    history,
    followUpOf,
    countTokens,
    contextBudget: contextLength - maxNewTokens - TEMPLATE_OVERHEAD,
  });
  return { messages, sources, retrieval: result };
}

/**
 * The sample corpus (www/corpus/) as documents, read with `readText(path relative to www/corpus/)`
 * (fetch in a page, the file system in Node).
 */
export async function sampleCorpus(readText) {
  const list = JSON.parse(await readText('index.json'));
  return Promise.all(list.documents.map(async ({ file }) => ({ name: file, pages: [{ page: 1, text: await readText(file) }] })));
}

/**
 * Chunk and embed documents into `index` (replacing documents of the same name), in order.
 * Each document is checked after chunking, before anything is embedded (checkChunks,
 * ./limits.js): one with no passage throws empty_document, one that would take the index past
 * `limits.maxChunks` throws too_many_chunks; the index then still holds the document it would
 * have replaced, and the documents before it in `docs` stay added.
 */
export async function indexDocuments(index, docs, embed, { size, overlap, limits = DOCUMENT_LIMITS } = {}, onProgress = () => {}) {
  for (const doc of docs) {
    const chunks = chunkDocument(doc, { size, overlap });
    const replaced = index.sourceSize(doc.name); // its passages go when this document's come in
    checkChunks({ name: doc.name, chunks: chunks.length, indexed: index.size - replaced }, limits);
    onProgress(`embedding ${chunks.length} passages of ${doc.name}…`);
    const vectors = await embed(chunks.map((c) => c.text));
    if (replaced) index.removeSource(doc.name);
    index.addChunks(chunks, vectors);
  }
}
