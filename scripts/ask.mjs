// Answer one question with a GGUF model through the wasm package, printing timings.
//   node scripts/ask.mjs MODEL.gguf "question"
import { readFile } from 'node:fs/promises';
import { Engine } from '../www/engine/index.js';

const [model, question] = process.argv.slice(2);
const engine = new Engine();
const info = await engine.load(await readFile(model));
console.log(`${info.name} (${info.architecture}, ${Object.keys(info.tensorTypes).join('/')}) loaded in ${info.loadTimings.totalMs.toFixed(0)} ms`);
console.log(`> ${question}`);
const messages = [
  { role: 'system', content: 'You are a concise assistant. Answer in one sentence.' },
  { role: 'user', content: question },
];
const r = await engine.generate({ messages, maxNewTokens: 128 }, (piece) => process.stdout.write(piece));
const t = r.timings;
console.log(`\n[${t.promptTokens} prompt tokens, prefill ${t.prefillTokS.toFixed(1)} tok/s, first token ${t.timeToFirstTokenMs.toFixed(0)} ms, ` +
  `${t.generatedTokens} tokens at ${t.decodeTokS.toFixed(1)} tok/s, wasm memory ${(Engine.memory().wasmBytes / 2 ** 20).toFixed(0)} MiB]`);
