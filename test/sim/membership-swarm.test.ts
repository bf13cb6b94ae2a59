/**
 * The membership swarm (src/sim/membership-swarm.ts): joins and removals under crashes, partitions,
 * lossy links and a byzantine replica (one that lies about the configuration, among others); every checker of
 * the simulator plus configuration agreement. Its negative control — configurations taken from
 * epoch proofs without checking them, a configuration in force without consensus — must be caught.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runMembershipSeed } from '../../src/sim/membership-swarm.ts';

const SEEDS = 16;

test(`membership swarm: ${SEEDS} seeds of joins and removals under faults, no violation`, () => {
  let liars = 0;
  let changes = 0;
  let faults = { crash: 0, partition: 0 };
  const evidence = { checked: 0, waited: 0 };
  for (let seed = 1; seed <= SEEDS; seed++) {
    const r = runMembershipSeed(seed);
    assert.deepEqual(r.violations, [], `seed ${seed} (${r.changes.join(' ')}; byzantine ${r.byzantine ?? 'none'}): replay with runMembershipSeed(${seed})`);
    assert.ok(r.requestsCommitted >= 400, `seed ${seed}: ${r.requestsCommitted} requests`);
    assert.ok(r.epoch >= 3, `seed ${seed}: only epoch ${r.epoch}`);
    if (r.byzantine?.includes('config-liar')) liars++;
    changes += r.changes.length;
    evidence.checked += r.evidence.checked;
    evidence.waited += r.evidence.waited;
    faults = { crash: faults.crash + (r.faults['crash'] ?? 0), partition: faults.partition + (r.faults['partition-isolate'] ?? 0) };
  }
  assert.ok(liars >= 3, `the configuration liar ran in ${liars} seeds`);
  assert.ok(faults.crash >= 3 && faults.partition >= 3, `crashes and partitions ran beside the changes: ${JSON.stringify(faults)}`);
  process.stderr.write(`membership swarm: ${SEEDS} seeds, ${changes} changes in force, ${liars} with a replica lying about the configuration, ${faults.crash} crashes, ${faults.partition} partitions; replicas' evidence checked when served: ${evidence.checked} pieces, ${evidence.waited} of them after waiting for an epoch proof\n`);
});

test('negative control: a build that takes configurations from epoch proofs without checking them is caught (configuration agreement)', () => {
  for (const seed of [1, 2, 3]) {
    const r = runMembershipSeed(seed, { negative: 'trust-epoch-proofs' });
    const caught = r.violations.filter((v) => v.check === 'configuration-agreement');
    assert.ok(caught.length > 0, `seed ${seed}: not caught: ${JSON.stringify(r.violations.slice(0, 2))}`);
    // (Whichever replica the check took as the reference may be the fooled one: some violation names the forgery.)
    assert.ok(
      caught.some((v) => /90,91,92/.test(v.detail)),
      `the forged configuration (the liar and keys of its own making): ${JSON.stringify(caught.slice(0, 3).map((v) => v.detail))}`,
    );
  }
});
