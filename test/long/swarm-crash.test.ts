/**
 * The crash-mode swarm (test/sim/swarm-crash.test.ts) over a longer seed range: n = 3 seeds
 * 31..430, n = 5 seeds 7..106, and the negative control (quorums of f) over 200 seeds. Part of `npm
 * run test:long`; `npm test` runs the short range.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runSwarm } from '../../src/sim/swarm.ts';
import { swarmWithoutViolations } from '../sim/swarm-helpers.ts';

test('crash-mode swarm n=3: seeds 31..430 show no violation', () => {
  const s = swarmWithoutViolations(31, 400, { replicas: 3, faultModel: 'crash' });
  process.stderr.write(`crash swarm n=3 seeds 31..430: ${s.requestsCommitted} requests, ${s.viewChanges} view changes, ${(s.elapsedMs / 1000).toFixed(1)} s\n`);
});

test('crash-mode swarm n=5: seeds 7..106 show no violation', () => {
  const s = swarmWithoutViolations(7, 100, { replicas: 5, faultModel: 'crash' });
  process.stderr.write(`crash swarm n=5 seeds 7..106: ${s.requestsCommitted} requests, ${s.viewChanges} view changes, ${(s.elapsedMs / 1000).toFixed(1)} s\n`);
});

test('negative control: quorums of f are caught over 200 seeds', () => {
  const broken = runSwarm(1, 200, { replicas: 3, faultModel: 'crash', negative: 'crash-quorum-f' });
  const caught = broken.failures.filter((r) => r.kind === 'correctness' || r.kind === 'crash');
  assert.ok(caught.length >= 100, `only ${caught.length} of 200 seeds caught quorums of f`);
});
