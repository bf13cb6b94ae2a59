/**
 * The normal case under an unreliable network only (no crashes, no byzantine replicas), see
 * network-helpers.ts. `npm test` runs these seeds; `npm run test:long` runs more (test/long/).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runNetworkSeeds } from './network-helpers.ts';

test('n=4: seeds 1..100 with loss, duplication and reordering: agreement holds and every request is answered', () => {
  const r = runNetworkSeeds(1, 1, 100, 20);
  assert.ok(r.lossy > 75, `only ${r.lossy} of 100 seeds drew a lossy network`);
  process.stderr.write(`network faults n=4: ${r.requests} requests answered over seeds 1..100\n`);
});

test('n=7: seeds 1..60 with loss, duplication and reordering: agreement holds and every request is answered', () => {
  const r = runNetworkSeeds(2, 1, 60, 8);
  assert.ok(r.lossy > 45, `only ${r.lossy} of 60 seeds drew a lossy network`);
  process.stderr.write(`network faults n=7: ${r.requests} requests answered over seeds 1..60\n`);
});
