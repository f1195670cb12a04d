// Peak memory of the HTTP service in workerd, per model: what a hosted edge worker's memory limit
// has to hold (README, "The service"). For each registry id given (default: the GGUF models in the
// cache), start workerd with the shipped config naming that model, answer one cited question, and
// read workerd's peak resident memory (/proc VmHWM) and the wasm memory /health reports.
//   node scripts/service-memory.mjs [ID …]
import { readFileSync, writeFileSync, existsSync, statSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { MODELS, ensureIndex, post, processMemory, startService } from '../tests/service/runtimes.mjs';

const registry = JSON.parse(readFileSync(new URL('../models/registry.json', import.meta.url)));
const shipped = new URL('../www/service/workerd.capnp', import.meta.url).pathname;
// Beside the shipped config, so that its relative embeds resolve; removed at the end.
const config = shipped.replace(/workerd\.capnp$/, 'workerd.memory.capnp');
const ids = process.argv.slice(2).length ? process.argv.slice(2)
  : registry.models.filter((m) => m.format === 'gguf' && existsSync(join(MODELS, m.file))).map((m) => m.id);
ensureIndex();
const original = readFileSync(shipped, 'utf8');
const mib = (b) => (b / 2 ** 20).toFixed(0);
console.log('| model | file MiB | wasm memory MiB | workerd peak resident MiB |\n|---|---|---|---|');
try {
  for (const id of ids) {
    const entry = registry.models.find((m) => m.id === id);
    writeFileSync(config, original.replace(/\(name = "MODEL", text = "[^"]*"\)/, `(name = "MODEL", text = "${entry.file}")`)
      .replace(/\(name = "MODEL_ID", text = "[^"]*"\)/, `(name = "MODEL_ID", text = "${id}")`));
    const service = await startService('workerd', { timeoutMs: 600_000, config });
    try {
      const answer = await post(service.url, '/v1/answer', { question: 'What is life cycle assessment?', max_tokens: 16, cache: false });
      if (answer.status !== 200) throw new Error(`${id}: ${JSON.stringify(answer.body)}`);
      const health = await (await fetch(`${service.url}/health`)).json();
      const { peakRssBytes } = processMemory(service.pid);
      console.log(`| ${id} | ${mib(statSync(join(MODELS, entry.file)).size)} | ${mib(health.memory.wasmBytes)} | ${mib(peakRssBytes)} |`);
    } finally {
      await service.stop();
    }
  }
} finally {
  rmSync(config, { force: true });
}
