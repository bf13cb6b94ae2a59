/**
 * Pauses (a replica that misses time, like SIGSTOP, then gets a burst of the missed ticks before the
 * messages that waited, as the shell does): a replica that wakes with its timers expired suspects the
 * primary alone and must not leave a healthy view (the pre-vote: f+1 suspicions start a view change);
 * a paused primary is replaced, and when it wakes it joins the others' view within a bounded time.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SimCluster } from '../../src/sim/cluster.ts';

const CALM = { loss: 0, duplication: 0, delayTicksMin: 1, delayTicksMax: 3 };

function cluster(seed: number, f = 1): SimCluster {
  // The production timeout (100 ticks), equal to the burst a replica runs when it wakes.
  const sim = new SimCluster({ seed, f, clients: 4, requestsPerClient: 40, network: CALM, replica: { viewChangeTimeoutTicks: 100 } });
  sim.keepEvents = false;
  return sim;
}

test('a paused backup (0.5-15 s) wakes alone with expired timers and does not leave the view: no view change at all', () => {
  for (let seed = 1; seed <= 20; seed++) {
    const sim = cluster(seed);
    sim.run(100);
    const backup = 1 + (seed % 3);
    const ticks = 150 + ((seed * 277) % 1_350);
    // Paused while it waits for a request: when it wakes, that request's timer has long expired.
    assert.ok(sim.runUntil(() => sim.hosts[backup]!.replica!.status().waitingRequests > 0, 1_000), `seed ${seed}: backup waits for a request`);
    sim.pause(backup, ticks);
    sim.run(ticks + 400);
    assert.ok(sim.runUntil(() => sim.allClientsDone(), 20_000), `seed ${seed}: every request answered`);
    sim.finish();
    assert.deepEqual(sim.checker.violations, [], `seed ${seed}`);
    assert.equal(sim.viewChanges, 0, `seed ${seed}: pausing backup ${backup} for ${ticks} ticks changed the view`);
    assert.equal(sim.pauseRecoveries.length, 1, `seed ${seed}: the resumed replica is back in the view`);
    assert.ok(sim.hosts.every((h) => h.replica!.view === 0 && !h.replica!.viewChanging), `seed ${seed}: everyone in view 0`);
  }
});

test('a paused primary is replaced; when it wakes it is back in the others view within 5 simulated seconds (n=4 and n=7)', () => {
  let worst = 0;
  for (const f of [1, 2]) {
    for (let seed = 1; seed <= 10; seed++) {
      const sim = cluster(100 + seed, f);
      sim.run(100);
      const ticks = 500 + ((seed * 131) % 1_000);
      sim.pause(0, ticks);
      sim.run(ticks + 1_000);
      assert.ok(sim.runUntil(() => sim.allClientsDone(), 20_000), `f=${f} seed ${seed}: every request answered`);
      sim.finish();
      assert.deepEqual(sim.checker.violations, [], `f=${f} seed ${seed}`);
      assert.ok(sim.viewChanges > 0, `f=${f} seed ${seed}: the paused primary was replaced`);
      assert.equal(sim.pauseRecoveries.length, 1, `f=${f} seed ${seed}: the old primary is back in the others' view`);
      worst = Math.max(worst, sim.pauseRecoveries[0]!);
    }
  }
  assert.ok(worst <= 500, `longest time out of the others' view after a pause: ${worst} ticks (bound 500 = 5 s)`);
  process.stderr.write(`pause: longest time a resumed primary was out of the others' view: ${worst} ticks\n`);
});
