/**
 * Batch times in the simulator (src/core/normal.ts checkBatchTime): a byzantine primary that moves
 * time is not followed, and the checks are what stops it (negative controls with the bounds turned
 * off are caught). Every run also goes through the generic batch-time checker (src/sim/checkers.ts:
 * one agreed time per sequence number, never going back, never further ahead of an executing
 * replica's clock than the bound allows).
 *
 * The freeze is caught by a check of this file: every request a client had accepted executed with
 * an agreed time at most batchTimeBehindMsMax (plus clock skew) before the client sent it. A correct
 * backup prepared its batch after it was sent, and only within that bound of its own clock.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DEFAULT_REPLICA_OPTIONS } from '../../src/core/options.ts';
import { BatchTimeLiar } from '../../src/sim/byzantine.ts';
import { SIM_EPOCH_MS, SIM_TICK_MS, SimCluster, type SimOptions } from '../../src/sim/cluster.ts';

const BEHIND = DEFAULT_REPLICA_OPTIONS.batchTimeBehindMsMax;

interface Run {
  sim: SimCluster;
  done: boolean;
  violations: string[];
  /** Accepted requests that executed with an agreed time more than BEHIND before they were sent. */
  frozen: number;
  rejected: (reason: 'batch-time-ahead' | 'batch-time-behind' | 'batch-time-backwards') => number;
  /** The view the correct replicas ended in (the highest). */
  view: number;
}

function run(options: Partial<SimOptions>, liar: BatchTimeLiar | undefined, ticks: number): Run {
  const sim = new SimCluster({ seed: 11, f: 1, clients: 4, ...options });
  if (liar) sim.hosts[0]!.byzantine = liar;
  const done = sim.runUntil(() => sim.allClientsDone(), ticks);
  sim.finish();
  // Agreed time of each executed request, from the correct replicas' executed events.
  const timeOf = new Map<string, number>();
  for (const { replica, event } of sim.events) {
    if (event.type !== 'executed' || !sim.isCorrect(replica)) continue;
    for (const r of event.requests) timeOf.set(`${r.client}:${r.timestamp}`, event.timeMs);
  }
  let frozen = 0;
  for (const c of sim.clients) {
    for (const r of c.completed) {
      const t = timeOf.get(`${r.client}:${r.timestamp}`);
      if (t !== undefined && t < SIM_EPOCH_MS + r.sentAt * SIM_TICK_MS - BEHIND) frozen++;
    }
  }
  const correct = sim.hosts.filter((h) => sim.isCorrect(h.id) && h.replica);
  return {
    sim,
    done,
    violations: sim.checker.violations.map((v) => `${v.check}: ${v.detail}`),
    frozen,
    rejected: (reason) => correct.reduce((sum, h) => sum + (h.replica!.rejected.get(reason) ?? 0), 0),
    view: Math.max(...correct.map((h) => h.replica!.view)),
  };
}

test('a byzantine primary whose batch times jump a minute ahead is not followed: the view changes and every request completes', () => {
  const r = run({ requestsPerClient: 30 }, new BatchTimeLiar('ahead', 60_000), 20_000);
  assert.deepEqual(r.violations, []);
  assert.ok(r.done, 'every client completed');
  assert.ok(r.rejected('batch-time-ahead') > 0, 'the backups refused its times');
  assert.ok(r.view >= 1, `view ${r.view}: the liar was replaced`);
  assert.ok((r.sim.faults['batch-time-lie'] ?? 0) > 0);
});

test('negative control: backups that prepare any batch time follow the jump, and the checker catches it', () => {
  const r = run({ requestsPerClient: 30, unsafeIgnoreBatchTimeBounds: true }, new BatchTimeLiar('ahead', 60_000), 20_000);
  assert.ok(r.violations.some((v) => v.startsWith('batch-time-ahead:')), r.violations.join('\n') || 'no violation');
});

test('a byzantine primary that freezes time is followed for at most batchTimeBehindMsMax, then replaced', () => {
  // Long enough that the freeze outlasts the bound (10 s: 1,000 ticks) while requests keep coming.
  const r = run({ requestsPerClient: 600 }, new BatchTimeLiar('frozen', 0), 60_000);
  assert.deepEqual(r.violations, []);
  assert.ok(r.done, 'every client completed');
  assert.ok(r.rejected('batch-time-behind') > 0, 'the backups refused the frozen time once it was too old');
  assert.ok(r.view >= 1, `view ${r.view}: the liar was replaced`);
  assert.equal(r.frozen, 0, 'no accepted request executed with a time more than the bound before it was sent');
  assert.ok(r.sim.now * SIM_TICK_MS > 2 * BEHIND, `the run (${r.sim.now} ticks) outlasted the bound`);
});

test('negative control: backups that prepare any batch time keep the frozen time, and the freeze is caught', () => {
  const r = run({ requestsPerClient: 600, unsafeIgnoreBatchTimeBounds: true }, new BatchTimeLiar('frozen', 0), 60_000);
  assert.ok(r.frozen > 0, 'requests executed with a time frozen long before they were sent');
  assert.equal(r.view, 0, 'nobody suspected the primary');
});

test('clocks within the bounds of each other change nothing; one replica with a clock far off cannot unseat a correct primary', () => {
  const skewed = run({ requestsPerClient: 40, clockSkewsMs: [0, 1_500, -1_500, 400] }, undefined, 20_000);
  assert.deepEqual(skewed.violations, []);
  assert.ok(skewed.done);
  assert.equal(skewed.rejected('batch-time-ahead') + skewed.rejected('batch-time-behind') + skewed.rejected('batch-time-backwards'), 0);
  assert.equal(skewed.view, 0);

  // Replica 3's clock is a minute fast: every batch time is "behind" it, so it prepares nothing, but
  // one suspicion is not f+1: the others go on in view 0 and replica 3 catches up by fetching.
  const off = run({ requestsPerClient: 40, clockSkewsMs: [0, 0, 0, 60_000] }, undefined, 20_000);
  assert.deepEqual(off.violations, []);
  assert.ok(off.done);
  assert.ok(off.sim.hosts[3]!.replica!.rejected.get('batch-time-behind')! > 0);
  assert.equal(off.view, 0, 'the primary was not replaced');
  // (It may end a fetch behind when the clients finish: give it a few catch-up periods.)
  const behind = (): boolean => off.sim.hosts[3]!.replica!.lastExecuted < Math.min(...off.sim.hosts.slice(0, 3).map((h) => h.replica!.lastExecuted)) - 4;
  off.sim.runUntil(() => !behind(), 4 * off.sim.opts.replica.catchUpTicks!);
  const executed = off.sim.hosts.map((h) => h.replica!.lastExecuted);
  assert.ok(!behind(), `replica 3 kept up: ${executed.join(', ')}`);
});
