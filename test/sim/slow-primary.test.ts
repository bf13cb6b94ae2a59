/**
 * A byzantine slow primary (src/sim/byzantine.ts SlowPrimary): it holds every PRE-PREPARE for 60% of
 * the view-change timeout and keeps 64 batches in flight, so that no request waits for the request
 * timer to expire. Aardvark's check (src/core/monitor.ts) must replace it and the throughput must
 * recover; with the check off (the negative control) the same run keeps it and loses most of its
 * throughput, which shows this test can tell. Fault-free runs, calm or lossy, loaded or idle, must
 * not change views at all. A primary that ratchets its hold up slowly, to raise the request timer's
 * learned timeout, gains at most the timeout's cap, and the check replaces it long before.
 *
 * The timings are the production ones: a view-change timeout of 100 ticks (1 s) and clients that
 * send to the primary and retransmit to every replica after 30 ticks (the SDK's 300 ms).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SimCluster, type SimOptions } from '../../src/sim/cluster.ts';
import { SlowPrimary } from '../../src/sim/byzantine.ts';
import type { NetworkFaults } from '../../src/sim/network.ts';

const CALM: NetworkFaults = { loss: 0, duplication: 0, delayTicksMin: 1, delayTicksMax: 3 };
const HOLD_TICKS = 60;

interface Run {
  sim: SimCluster;
  /** Requests completed per tick until every client was done. */
  rate: number;
}

function run(seed: number, opts: { slow?: boolean; check?: boolean; clients?: number; network?: NetworkFaults; requests?: number; extra?: Partial<SimOptions> } = {}): Run {
  const sim = new SimCluster({
    seed,
    f: 1,
    clients: opts.clients ?? 16,
    requestsPerClient: opts.requests ?? 40,
    clientTimeoutTicks: 30,
    network: opts.network ?? CALM,
    replica: { viewChangeTimeoutTicks: 100, slowPrimaryCheck: opts.check ?? true },
    ...(opts.slow ? { replicaOverrides: { 0: { inFlightBatchesMax: 64 } } } : {}),
    ...opts.extra,
  });
  if (opts.slow) sim.hosts[0]!.byzantine = new SlowPrimary(HOLD_TICKS);
  assert.ok(sim.runUntil(() => sim.allClientsDone(), 50_000), `seed ${seed}: every request answered`);
  const ticks = sim.now;
  sim.finish();
  assert.deepEqual(sim.checker.violations, [], `seed ${seed}`);
  const done = sim.clients.reduce((a, c) => a + c.completed.length, 0);
  return { sim, rate: done / ticks };
}

const reasons = (sim: SimCluster): string[] =>
  sim.events.flatMap((e) => (e.event.type === 'primary-suspected' && sim.isCorrect(e.replica) ? [e.event.reason] : []));

const firstViewChangeTick = (sim: SimCluster): number | undefined =>
  sim.events.find((e) => e.event.type === 'view-change-started' && sim.isCorrect(e.replica))?.tick;

test('a primary that holds every PRE-PREPARE for 60% of the view-change timeout is replaced within 2 s; throughput is at least 50% of fault-free over the run and 80% after the view change', () => {
  for (let seed = 1; seed <= 6; seed++) {
    const faultFree = run(seed);
    assert.equal(faultFree.sim.viewChanges, 0, `seed ${seed}: fault-free, no view change`);
    const slow = run(seed, { slow: true });
    const correct = slow.sim.hosts.filter((h) => slow.sim.isCorrect(h.id)).map((h) => h.replica!);
    assert.ok(correct.every((r) => r.view >= 1 && r.primary !== 0), `seed ${seed}: the slow primary was replaced (views ${correct.map((r) => r.view)})`);
    assert.ok(reasons(slow.sim).some((r) => r.startsWith('slow primary:')), `seed ${seed}: suspected as slow (${reasons(slow.sim).join('; ')})`);
    const replacedAt = firstViewChangeTick(slow.sim)!;
    assert.ok(replacedAt <= 200, `seed ${seed}: view change started at tick ${replacedAt}`);
    const ratio = slow.rate / faultFree.rate;
    assert.ok(ratio >= 0.5, `seed ${seed}: throughput ${(100 * ratio).toFixed(0)}% of fault-free`);
    // Once the new view is in place, the cluster runs at the fault-free rate again.
    const entered = slow.sim.events.find((e) => e.event.type === 'view-entered' && slow.sim.isCorrect(e.replica))!.tick;
    const end = Math.max(...slow.sim.clients.flatMap((c) => c.completed.map((r) => r.acceptedAt)));
    const after = slow.sim.clients.reduce((a, c) => a + c.completed.filter((r) => r.acceptedAt > entered).length, 0) / (end - entered);
    assert.ok(after >= 0.8 * faultFree.rate, `seed ${seed}: after the view change ${(100 * after / faultFree.rate).toFixed(0)}% of the fault-free rate`);
    process.stderr.write(
      `slow primary, seed ${seed}: view change at tick ${replacedAt}, throughput ${(100 * ratio).toFixed(0)}% of fault-free over the run, ${(100 * after / faultFree.rate).toFixed(0)}% after the view change\n`,
    );
  }
});

test('negative control: with the check off (slowPrimaryCheck: false) the same slow primary stays and throughput falls below 50%: the test above catches the absence', () => {
  for (let seed = 1; seed <= 3; seed++) {
    const faultFree = run(seed, { check: false });
    const slow = run(seed, { slow: true, check: false });
    assert.equal(slow.sim.viewChanges, 0, `seed ${seed}: never replaced`);
    assert.deepEqual(reasons(slow.sim), [], `seed ${seed}: never even suspected`);
    const ratio = slow.rate / faultFree.rate;
    assert.ok(ratio < 0.5, `seed ${seed}: throughput ${(100 * ratio).toFixed(0)}% of fault-free`);
    process.stderr.write(`slow primary without the check, seed ${seed}: throughput ${(100 * ratio).toFixed(0)}% of fault-free\n`);
  }
});

test('fault-free runs never suspect a primary of being slow: calm or jittery and lossy networks, light and heavy load, with slow disks, and idle gaps', () => {
  const cases: Array<{ name: string; clients: number; network: NetworkFaults; extra?: Partial<SimOptions> }> = [
    { name: 'calm, 1 client', clients: 1, network: CALM },
    { name: 'calm, 32 clients', clients: 32, network: CALM },
    { name: 'jitter 1-15 ticks, 16 clients', clients: 16, network: { loss: 0, duplication: 0.02, delayTicksMin: 1, delayTicksMax: 15 } },
    { name: '5% loss, 16 clients', clients: 16, network: { loss: 0.05, duplication: 0.02, delayTicksMin: 1, delayTicksMax: 5 } },
    { name: 'slow disks (0-8 ticks), 32 clients', clients: 32, network: CALM, extra: { diskLatencyTicksMax: 8 } },
  ];
  const lines: string[] = [];
  for (const c of cases) {
    let suspicions = 0;
    let viewChanges = 0;
    for (let seed = 1; seed <= 5; seed++) {
      const { sim } = run(1_000 + seed, { clients: c.clients, network: c.network, requests: 30, ...(c.extra ? { extra: c.extra } : {}) });
      // An idle gap, then a few more requests (nothing waits: nothing to judge).
      sim.run(500);
      suspicions += reasons(sim).filter((r) => r.startsWith('slow primary:')).length;
      viewChanges += sim.viewChanges;
    }
    lines.push(`${c.name}: ${suspicions} slow-primary suspicions, ${viewChanges} view changes in 5 seeds`);
    assert.equal(suspicions, 0, c.name);
    assert.equal(viewChanges, 0, c.name);
  }
  process.stderr.write(lines.join('\n') + '\n');
});

/**
 * A primary that ratchets the request timer's learned timeout (ReplicaState.requestTimeoutTicks): it
 * holds PRE-PREPAREs 30 ticks at first and 1.2 times longer every 300 ticks, so that each request
 * waits a little longer than the ones the backups learned from. Runs until the first view change.
 */
function ratchet(seed: number, replica: Partial<SimOptions['replica']>): { sim: SimCluster; learnedMax: number; replacedAt: number | undefined } {
  const sim = new SimCluster({
    seed,
    f: 1,
    clients: 16,
    requestsPerClient: 2_000,
    clientTimeoutTicks: 30,
    network: CALM,
    replica: { viewChangeTimeoutTicks: 100, ...replica },
    replicaOverrides: { 0: { inFlightBatchesMax: 64 } },
  });
  sim.hosts[0]!.byzantine = new SlowPrimary(30, { everyTicks: 300, factor: 1.2 });
  let learnedMax = 0;
  const replaced = sim.runUntil(() => {
    for (const h of sim.hosts) if (sim.isCorrect(h.id) && h.replica && !h.replica.viewChanging) learnedMax = Math.max(learnedMax, h.replica.status().requestTimeoutTicks);
    return sim.viewChanges > 0;
  }, 20_000);
  assert.ok(replaced, `seed ${seed}: the primary was replaced`);
  sim.finish();
  assert.deepEqual(sim.checker.violations, [], `seed ${seed}`);
  return { sim, learnedMax, replacedAt: firstViewChangeTick(sim) };
}

test('a primary that ratchets the learned request timeout gains at most its cap (8x the timeout), and the slow-primary check replaces it long before', () => {
  const lines: string[] = [];
  for (let seed = 1; seed <= 2; seed++) {
    const off = ratchet(seed, { slowPrimaryCheck: false });
    assert.ok(reasons(off.sim).includes('request timeout'), `seed ${seed}: the request timer replaced it (${reasons(off.sim).join('; ')})`);
    assert.equal(off.learnedMax, 8 * 100, `seed ${seed}: the learned timeout rose to the cap and no further`);
    const on = ratchet(seed, {});
    assert.ok(reasons(on.sim).some((r) => r.startsWith('slow primary:')), `seed ${seed}: suspected as slow (${reasons(on.sim).join('; ')})`);
    assert.ok(on.replacedAt! * 2 <= off.replacedAt!, `seed ${seed}: with the check, view change at tick ${on.replacedAt}, less than half the ${off.replacedAt} without`);
    lines.push(`ratcheting primary, seed ${seed}: check off -> replaced at tick ${off.replacedAt}, learned timeout at most ${off.learnedMax}; check on -> tick ${on.replacedAt}`);
  }
  // Negative control: a higher cap lets the same primary raise the timeout further (so the cap above is what held it).
  const loose = ratchet(1, { slowPrimaryCheck: false, requestTimeoutLearnedMaxFactor: 64 });
  assert.ok(loose.learnedMax > 8 * 100, `with a cap of 64x the learned timeout went past 800 ticks: ${loose.learnedMax}`);
  lines.push(`ratcheting primary, cap 64x, check off: replaced at tick ${loose.replacedAt}, learned timeout at most ${loose.learnedMax}`);
  process.stderr.write(lines.join('\n') + '\n');
});
