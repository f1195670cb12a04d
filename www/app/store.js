// The document index in IndexedDB, so it survives a reload: one record holding the serialised
// DocumentIndex (chunks, lexical index, vectors) and the list of documents; and beside it the FAQ
// answer cache (AnswerCache.toJSON, www/rag/answer-cache.js), under a key of its own.

const DB = 'edgellm';
const STORE = 'rag';
const KEY = 'index-v1';
const ANSWER_CACHE_KEY = 'answer-cache-v1';

function open() {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE);
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

function run(mode, fn) {
  return open().then((db) => new Promise((resolve, reject) => {
    const tx = db.transaction(STORE, mode);
    const req = fn(tx.objectStore(STORE));
    tx.oncomplete = () => { db.close(); resolve(req?.result); };
    tx.onerror = () => { db.close(); reject(tx.error); };
  }));
}

export const loadIndex = () => run('readonly', (s) => s.get(KEY));
export const saveIndex = (value) => run('readwrite', (s) => s.put(value, KEY));
export const clearIndex = () => run('readwrite', (s) => s.delete(KEY));
export const loadAnswerCache = () => run('readonly', (s) => s.get(ANSWER_CACHE_KEY));
export const saveAnswerCache = (value) => run('readwrite', (s) => s.put(value, ANSWER_CACHE_KEY));
export const clearAnswerCache = () => run('readwrite', (s) => s.delete(ANSWER_CACHE_KEY));
