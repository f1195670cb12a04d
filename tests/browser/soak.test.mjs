// The soak (scripts/soak.mjs) for 20 questions instead of 1,000: the page answers every one, and
// memory stays within the soak's bounds after warm-up. The long run is `node scripts/soak.mjs`.
import test from 'node:test';
import assert from 'node:assert/strict';
import { soak, verdict, formatSoak } from '../../scripts/soak.mjs';

test('soak: 20 questions in the page, every one answered, memory flat after warm-up', { timeout: 900_000 }, async () => {
  const result = await soak({ questions: 20, maxNewTokens: 16, every: 2 });
  const v = verdict(result.samples);
  console.log(formatSoak(result, v).replace(/^/gm, '# '));
  assert.deepEqual(result.failures, [], 'every question answered');
  assert.deepEqual(result.pageErrors, []);
  assert.equal(result.latencies.length, 20);
  assert.equal(result.samples.length, 11, 'one sample before the first question, then one every 2');
  assert.deepEqual(Object.keys(v.metrics).sort(), ['pageHeapBytes', 'wasmBytes', 'workerHeapBytes'], 'all three measured');
  assert.ok(v.flat, JSON.stringify(v.metrics));
});
