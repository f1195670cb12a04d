// Peak wasm memory with a full context: each model loaded with a 2,048-token context, a prompt
// that fills it (truncated from the start to leave room for the answer) and a 16-token answer,
// then the engine's wasm memory beside the file's size — issue 13 sets it at ≤ 1.3× the file.
// Node, one thread; each model in a process of its own (wasm memory never shrinks).
//   node scripts/context-memory.mjs [--models smollm2-135m,tinyllama-shape] [--context 2048]
import { execFileSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';

const { values: args } = parseArgs({
  options: {
    models: { type: 'string', default: 'smollm2-135m,tinyllama-shape' },
    context: { type: 'string', default: '2048' },
    one: { type: 'string' },
  },
});
const context = Number(args.context);

if (args.one) {
  const { Engine } = await import('../www/engine/index.js');
  const fetchPy = new URL('../models/fetch.py', import.meta.url).pathname;
  const file = execFileSync('python3', [fetchPy, args.one], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
  const bytes = await readFile(file);
  const engine = new Engine();
  await engine.load(bytes, { contextLength: context });
  // Plain words, a token or more each in every vocabulary: more than the context holds.
  const words = 'the river runs past old stone bridges and green hills while the town sleeps'.split(' ');
  const prompt = Array.from({ length: context }, (_, i) => words[i % words.length]).join(' ');
  const { timings } = await engine.generate({ prompt, maxNewTokens: 16, ignoreEos: true, temperature: 0, overflow: 'truncate_start' });
  const peak = Engine.memory().wasmBytes;
  const mib = (b) => (b / 2 ** 20).toFixed(1);
  console.log(`| ${args.one} | ${mib(bytes.length)} | ${context} | ${timings.promptTokens + timings.generatedTokens} | ${mib(peak)} | ${(peak / bytes.length).toFixed(2)}× |`);
} else {
  console.log('| Model | File MiB | Context | Positions used | Peak wasm MiB | Peak / file |');
  console.log('|---|---|---|---|---|---|');
  for (const id of args.models.split(',')) {
    execFileSync(process.execPath, [fileURLToPath(import.meta.url), '--one', id, '--context', String(context)], { stdio: 'inherit' });
  }
}
