/**
 * The swarm, n = 7 (f = 2), seeds 31..130: every seed draws its own faults (network loss,
 * duplication and reordering, partitions, crashes at every point of the turn pipeline, a wiped disk, up to f byzantine replicas, a byzantine
 * client) and must show zero violations of agreement, validity, at-most-once execution, no regression,
 * the sequential model, the durability of what left each replica, and liveness after healing.
 * Up to two byzantine replicas. Part of `npm run test:long`; `npm test` runs seeds 1..30 (test/sim/).
 */
import { test } from 'node:test';
import { swarmWithoutViolations } from '../sim/swarm-helpers.ts';

test('swarm n=7: seeds 31..130 show no violation', () => {
  const s = swarmWithoutViolations(31, 100, { replicas: 7 });
  process.stderr.write(`swarm n=7 seeds 31..130: ${s.requestsCommitted} requests, ${s.viewChanges} view changes, ${s.ticks} ticks, ${(s.elapsedMs / 1000).toFixed(1)} s\n`);
});
