/** The swarm, n = 7 (f = 2), seeds 1..100: up to two byzantine replicas, all the other faults. */
import { test } from 'node:test';
import { swarmWithoutViolations } from './swarm-helpers.ts';

test('swarm n=7: seeds 1..100 show no violation', () => {
  const s = swarmWithoutViolations(1, 100, { replicas: 7 });
  process.stderr.write(`swarm n=7 seeds 1..100: ${s.requestsCommitted} requests, ${s.viewChanges} view changes, ${s.ticks} ticks, ${(s.elapsedMs / 1000).toFixed(1)} s\n`);
});
