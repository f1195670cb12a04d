// The headless benchmark command on the default model with a short setting: its JSON carries
// every field with plausible values, for Node and for Chromium, beside wllama in the same run and
// llama.cpp natively.
import test from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { readFile, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

test('scripts/bench.mjs writes a complete, plausible JSON report', { timeout: 600_000 }, async () => {
  const out = join(await mkdtemp(join(tmpdir(), 'edgellm-bench-')), 'bench.json');
  const { stdout } = await promisify(execFile)('node', ['scripts/bench.mjs', '--tokens', '16', '--queries', '1', '--threads', '1,2', '--json', out], { maxBuffer: 1 << 24 });
  assert.match(stdout, /\| Model \| Load Time \| Avg Query Time \| Total Time \|/);
  const report = JSON.parse(await readFile(out, 'utf8'));
  assert.equal(report.runs.length, 2, 'node and chromium');
  // The peer (wllama on the same GGUF, same prompts, same thread counts) is measured in Chromium,
  // against both of our builds: single-threaded and threaded.
  assert.equal(report.peer.measured, true, JSON.stringify(report.peer));
  assert.deepEqual(report.peer.comparisons.map((c) => [c.threads, c.peerThreads]), [[1, 1], [2, 2]]);
  for (const cmp of report.peer.comparisons) assert.ok(cmp.load > 0 && cmp.prefill > 0 && cmp.decode > 0, JSON.stringify(cmp));
  const chromium = report.runs.find((r) => r.runtime.startsWith('chromium'));
  assert.deepEqual(chromium.rows.filter((r) => !r.peer).map((r) => [r.runtime.build, r.threads]), [['single', 1], ['threads', 2]]);
  for (const peerRow of chromium.rows.filter((r) => r.peer)) {
    assert.equal(peerRow.generatedTokens, 16, 'the peer generated the same number of tokens');
  }
  assert.match(stdout, /edgellm ÷ wllama — load time [\d.]+×, prefill [\d.]+×, decode [\d.]+×/);
  // llama.cpp itself, natively, on the same file at the same thread counts.
  assert.deepEqual(report.native.map((n) => [n.model, n.threads]), [['smollm2-135m', 1], ['smollm2-135m', 2]]);
  for (const n of report.native) assert.ok(n.prefillTokS > 0 && n.decodeTokS > 0, JSON.stringify(n));
  assert.match(stdout, /edgellm in Chromium ÷ native: prefill [\d.]+×, decode [\d.]+×/);
  for (const run of report.runs) {
    const [row] = run.rows;
    assert.equal(row.model, 'smollm2-135m');
    for (const k of ['parseMs', 'weightsMs', 'totalMs']) assert.ok(row.load[k] > 0 && row.load.warm[k] > 0, `${run.runtime} load.${k}`);
    assert.ok(row.load.warm.fromCache, `${run.runtime}: the second load reads the cached file`);
    assert.ok(row.avgQueryMs > 0 && row.totalMs >= row.avgQueryMs, run.runtime);
    assert.equal(row.generatedTokens, 16, 'a fixed token count');
    assert.equal(row.queries[0].generatedTokens, 16);
    assert.ok(row.queries[0].rag && row.queries[0].promptTokens > 50, 'the question went through retrieval');
    assert.ok(row.retrievalMs.median > 0 && row.embedMs.median > 0, run.runtime);
    assert.ok(row.prefillTokS.median > 0 && row.decodeTokS.median > 0 && row.rawDecodeTokS.median > 0, run.runtime);
    assert.ok(row.timeToFirstTokenMs.median > 0, run.runtime);
    assert.ok(row.peakWasmBytes > 100 * 2 ** 20, `${run.runtime} peak wasm memory ${row.peakWasmBytes}`);
  }
});
