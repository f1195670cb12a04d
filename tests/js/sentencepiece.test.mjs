// SentencePiece vocabularies (src/tokenizer/sentencepiece.rs: llama.cpp's merge by score, no
// merge list) tokenize real text exactly as llama.cpp does: every document of the repo's
// Cranfield subset (80 paper abstracts, titles and authors, whole and line by line) with Gemma 3's
// own 262k-token vocabulary and with the LLaMA-2 one of the TinyLlama-shaped file.
// llama.cpp runs through npm node-llama-cpp's prebuilt CPU binary (tests/reference/llamacpp.mjs).
import test from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { Engine } from '../../www/engine/index.js';
import { openLlamaCpp } from '../reference/llamacpp.mjs';

const fetchPy = new URL('../../models/fetch.py', import.meta.url).pathname;
const subset = JSON.parse(await readFile(new URL('../../eval/answers/cranfield-subset.json', import.meta.url), 'utf8'));
const texts = subset.documents.flatMap(({ title, text }) => [`${title}\n${text}`, ...text.split('\n')]);

for (const id of ['gemma3-270m', 'tinyllama-shape']) {
  test(`${id}: every Cranfield-subset text tokenizes as llama.cpp tokenizes it`, { timeout: 300_000 }, async () => {
    const file = execFileSync('python3', [fetchPy, id], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
    const engine = new Engine();
    const info = await engine.load(await readFile(file), { contextLength: 64 });
    assert.equal(info.tokenizer, 'sentence_piece');
    console.log(`# ${id}: ${info.vocabSize} tokens, tokenizer built in ${info.loadTimings.tokenizerMs.toFixed(0)} ms`);
    const llama = await openLlamaCpp(file, { contextSize: 64 });
    let compared = 0;
    for (const text of texts) {
      assert.deepEqual(await engine.tokenize(text), llama.tokenize(text, { addBos: llama.addsBos }), `tokens of ${JSON.stringify(text)}`);
      compared++;
    }
    assert.equal(compared, texts.length);
    await llama.close();
    await engine.unload();
  });
}
