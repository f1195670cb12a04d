// Slow (./test.sh --slow): the benchmark command with SmolLM2's ONNX export on WebGPU beside its
// GGUF model. SwiftShader runs WebGPU on the CPU at well under one prompt token per second on
// two cores, so this one check takes ~15 minutes; tests/browser/onnx.test.mjs keeps the ONNX
// backend (export, WebGPU load, answer, bad input) in the default suite.
import test from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { readFile, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

test('the benchmark runs SmolLM2 exported to ONNX on WebGPU beside its GGUF model', { timeout: 1_200_000 }, async () => {
  const out = join(await mkdtemp(join(tmpdir(), 'edgellm-bench-')), 'bench.json');
  // Short: SwiftShader runs WebGPU on the CPU (≈2 prompt tokens/s here), so one cited passage.
  const { stdout } = await promisify(execFile)('node', ['scripts/bench.mjs', '--models', 'smollm2-135m,smollm2-135m-onnx', '--only', 'chromium',
    '--tokens', '4', '--queries', '1', '--threads', '1', '--passages', '1', '--no-peer', '--json', out], { maxBuffer: 1 << 24 });
  const report = JSON.parse(await readFile(out, 'utf8'));
  const [chromium] = report.runs;
  assert.deepEqual(chromium.rows.map((r) => [r.model, r.runtime.build]), [['smollm2-135m', 'single'], ['smollm2-135m-onnx', 'webgpu']]);
  const onnx = chromium.rows[1];
  assert.match(onnx.runtime.adapter, /\S/);
  assert.equal(onnx.generatedTokens, 4);
  assert.ok(onnx.queries[0].rag && onnx.queries[0].promptTokens > 50, 'the question went through retrieval');
  assert.ok(onnx.prefillTokS.median > 0 && onnx.decodeTokS.median > 0 && onnx.load.totalMs > 0, JSON.stringify(onnx));
  assert.match(stdout, /smollm2-135m-onnx/);
  console.log(stdout.split('\n').filter((l) => l.startsWith('|')).map((l) => `# ${l}`).join('\n'));
});
