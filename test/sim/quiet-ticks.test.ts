/**
 * Quiet ticks (Replica.quietTicks): the shell's loop sleeps through the ticks the core says would do
 * nothing, and runs them late, in one turn before the next frames (src/node/loop.ts). That is only
 * the same as ticking each of them if the promise holds. The simulator gives every tick its own turn
 * and checks each one against the promise made after the turn before ('quiet-ticks', src/sim/cluster.ts),
 * in every swarm seed. Here: an idle replica's promise covers most of its ticks (so the check is not
 * vacuous and the loop really sleeps), and two broken promises are caught.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Replica } from '../../src/core/replica.ts';
import { SimCluster } from '../../src/sim/cluster.ts';
import { runSwarm } from '../../src/sim/swarm.ts';

const CALM = { loss: 0, duplication: 0, delayTicksMin: 1, delayTicksMax: 3 };

test('idle replicas call most of their ticks quiet, and no quiet tick does anything', () => {
  const sim = new SimCluster({ seed: 7, f: 1, clients: 3, requestsPerClient: 20, network: CALM });
  sim.keepEvents = false;
  assert.ok(sim.runUntil(() => sim.allClientsDone(), 20_000), 'every request answered');
  const idleTicks = 2_000;
  const quiet = sim.hosts.map(() => 0);
  const wakeups = sim.hosts.map(() => 0);
  const until = sim.hosts.map(() => -1);
  sim.run(200); // (the last checkpoint and the catch-up timers settle)
  for (let i = 0; i < idleTicks; i++) {
    sim.step();
    sim.hosts.forEach((h, id) => {
      const r = h.replica!;
      const q = r.quietTicks();
      if (q > 0) quiet[id]!++;
      // A sleeping loop wakes once the ticks it was told are quiet have passed (frames aside).
      if (r.now > until[id]!) {
        wakeups[id]!++;
        until[id] = r.now + q;
      }
    });
  }
  sim.finish();
  assert.deepEqual(sim.checker.violations, []);
  for (const [id, n] of quiet.entries()) {
    assert.ok(n >= 0.9 * idleTicks, `replica ${id}: ${n} of ${idleTicks} idle ticks quiet`);
    // The retransmission timer wakes it, and the probe (a replica that sees nobody ahead asks a peer
    // now and then); nothing else does.
    const { retransmitTicks, probeTicks } = sim.hosts[id]!.replica!.opts;
    const bound = Math.ceil(idleTicks / retransmitTicks + idleTicks / probeTicks) + 2;
    assert.ok(wakeups[id]! <= bound, `replica ${id}: ${wakeups[id]} wake-ups in ${idleTicks} idle ticks (bound ${bound})`);
  }
  process.stderr.write(`quiet ticks while idle: ${quiet.join(', ')} of ${idleTicks}; wake-ups ${wakeups.join(', ')}\n`);
});

/** Runs the swarm's seeds with Replica.prototype.quietTicks replaced; returns the seeds the checker caught. */
function caughtWith(broken: (this: Replica) => number, seeds: number): number[] {
  const original = Replica.prototype.quietTicks;
  Replica.prototype.quietTicks = broken;
  try {
    const s = runSwarm(1, seeds, { replicas: 4 });
    return s.failures.filter((r) => r.violations.some((v) => v.check === 'quiet-ticks')).map((r) => r.seed);
  } finally {
    Replica.prototype.quietTicks = original;
  }
}

test('negative control: a promise that forgets waiting requests (their view-change timer) is caught', () => {
  const original = Replica.prototype.quietTicks;
  const caught = caughtWith(function (this: Replica) {
    // The correct answer, computed with the waiting requests hidden.
    const waiting = (this as unknown as { waiting: Map<unknown, unknown> }).waiting;
    const saved = [...waiting];
    waiting.clear();
    try {
      return original.call(this);
    } finally {
      for (const [k, v] of saved) waiting.set(k, v);
    }
  }, 8);
  assert.ok(caught.length >= 2, `caught in seeds ${caught.join(', ')} of 1..8`);
  process.stderr.write(`quiet ticks forgetting waiting requests: caught in seeds ${caught.join(', ')} of 1..8\n`);
});

test('negative control: a promise one tick too long (the tick a timer fires called quiet) is caught', () => {
  const original = Replica.prototype.quietTicks;
  const caught = caughtWith(function (this: Replica) {
    const q = original.call(this);
    return q === 0 ? 0 : q + 1;
  }, 8);
  assert.ok(caught.length >= 2, `caught in seeds ${caught.join(', ')} of 1..8`);
  process.stderr.write(`quiet ticks one too many: caught in seeds ${caught.join(', ')} of 1..8\n`);
});
