/**
 * The normal case under an unreliable network only, the long seed ranges (`npm run test:long`);
 * `npm test` runs the first seeds (test/sim/network-faults.test.ts).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runNetworkSeeds } from '../sim/network-helpers.ts';

test('n=4: seeds 101..500 with loss, duplication and reordering: agreement holds and every request is answered', () => {
  const r = runNetworkSeeds(1, 101, 400, 20);
  assert.ok(r.lossy > 300, `only ${r.lossy} of 400 seeds drew a lossy network`);
  process.stderr.write(`network faults n=4: ${r.requests} requests answered over seeds 101..500\n`);
});

test('n=7: seeds 61..300 with loss, duplication and reordering: agreement holds and every request is answered', () => {
  const r = runNetworkSeeds(2, 61, 240, 8);
  assert.ok(r.lossy > 180, `only ${r.lossy} of 240 seeds drew a lossy network`);
  process.stderr.write(`network faults n=7: ${r.requests} requests answered over seeds 61..300\n`);
});
