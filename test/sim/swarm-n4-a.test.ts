/**
 * The swarm, n = 4 (f = 1), seeds 1..75: every seed draws its own faults (network loss,
 * duplication and reordering, partitions, crashes at every point of the turn pipeline, a wiped disk, up to f byzantine replicas, a byzantine
 * client) and must show zero violations of agreement, validity, at-most-once execution, no regression,
 * the sequential model, the durability of what left each replica, and liveness after healing. Split in two files so both cores run seeds.
 * `npm test` runs seeds 1..150; `npm run test:long` runs 151..1000 (test/long/).
 */
import { test } from 'node:test';
import { swarmWithoutViolations } from './swarm-helpers.ts';

test('swarm n=4: seeds 1..75 show no violation', () => {
  const s = swarmWithoutViolations(1, 75, { replicas: 4 });
  process.stderr.write(`swarm n=4 seeds 1..75: ${s.requestsCommitted} requests, ${s.viewChanges} view changes, ${s.ticks} ticks, ${(s.elapsedMs / 1000).toFixed(1)} s\n`);
});
