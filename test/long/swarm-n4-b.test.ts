/**
 * The swarm, n = 4 (f = 1), seeds 576..1000: every seed draws its own faults (network loss,
 * duplication and reordering, partitions, crashes at every point of the turn pipeline, a wiped disk, up to f byzantine replicas, a byzantine
 * client) and must show zero violations of agreement, validity, at-most-once execution, no regression,
 * the sequential model, the durability of what left each replica, and liveness after healing.
 * Part of `npm run test:long`; `npm test` runs seeds 1..150 (test/sim/).
 */
import { test } from 'node:test';
import { swarmWithoutViolations } from '../sim/swarm-helpers.ts';

test('swarm n=4: seeds 576..1000 show no violation', () => {
  const s = swarmWithoutViolations(576, 425, { replicas: 4 });
  process.stderr.write(`swarm n=4 seeds 576..1000: ${s.requestsCommitted} requests, ${s.viewChanges} view changes, ${s.ticks} ticks, ${(s.elapsedMs / 1000).toFixed(1)} s\n`);
});
