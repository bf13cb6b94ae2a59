/**
 * The durability contract in the simulator: replicas crash at each point of the turn pipeline and
 * the cluster stays correct; the checkers that watch what leaves a replica catch a disk that
 * acknowledges a write before it is durable, and a build that sends replies before their writes.
 * Rule 1a: PRE-PREPAREs and PREPAREs leave before their own writes, a restarted replica abstains
 * where its lost votes may lie and the cluster moves on, and a build that does not abstain is caught.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SimCluster, type CrashKind } from '../../src/sim/cluster.ts';
import { runSwarm } from '../../src/sim/swarm.ts';
import { decodeFrame } from '../../src/codec/messages.ts';

function finish(sim: SimCluster): void {
  assert.ok(sim.runUntil(() => sim.allClientsDone() || sim.checker.violations.length > 0, 40_000), 'clients did not finish');
  sim.finish();
  assert.deepEqual(sim.checker.violations, []);
}

for (const kind of ['crash-before-write', 'crash-during-write', 'crash-after-write-before-send'] as const) {
  test(`${kind}: a replica crashed at that point of its pipeline restarts and the cluster stays correct`, () => {
    const sim = new SimCluster({ seed: 5, requestsPerClient: 40, diskLatencyTicksMax: 2 });
    let crashes = 0;
    for (let round = 0; round < 12; round++) {
      const id = round % 4;
      sim.armCrash(id, kind);
      assert.ok(sim.runUntil(() => !sim.hosts[id]!.replica, 2_000), `replica ${id} did not reach the point ${kind}`);
      crashes++;
      sim.run(30 + round * 7);
      sim.restart(id);
      sim.run(20);
    }
    assert.equal(sim.faults[kind], crashes);
    finish(sim);
    assert.ok(sim.checker.checked.replies > 300 && sim.checker.checked.messages > 500, 'the output checks ran');
  });
}

test('a crash at a random moment loses the writes that were not durable, and nothing that depended on them had left', () => {
  const sim = new SimCluster({ seed: 9, requestsPerClient: 40, diskLatencyTicksMax: 3 });
  const kinds = new Set<CrashKind>();
  for (let round = 0; round < 20; round++) {
    const id = round % 4;
    sim.run(13 + ((round * 17) % 23));
    const before = { ...sim.faults };
    sim.crash(id);
    for (const k of ['crash', 'crash-before-write', 'crash-during-write'] as const) if ((sim.faults[k] ?? 0) > (before[k] ?? 0)) kinds.add(k);
    sim.run(25);
    sim.restart(id);
  }
  finish(sim);
  assert.ok(kinds.has('crash-before-write') || kinds.has('crash-during-write'), `crashes fell only at: ${[...kinds].join(', ')}`);
});

test('a disk that acknowledges a write before it is durable is caught: a signed message left before its record', () => {
  const sim = new SimCluster({ seed: 3, requestsPerClient: 10 });
  const disk = sim.hosts[2]!.disk;
  // The lie: tell the pipeline the batch is durable, then (too late) apply it.
  disk.complete = function (this: typeof disk): void {
    const w = this.inFlight;
    if (!w) return;
    this.inFlight = undefined;
    w.done();
    this.apply(w.ops, w.clears);
  };
  sim.runUntil(() => sim.allClientsDone() || sim.checker.violations.length > 0, 10_000);
  const caught = sim.checker.violations.filter((v) => v.check === 'sent-before-durable');
  assert.ok(caught.length > 0, `not caught: ${JSON.stringify(sim.checker.violations)}`);
  assert.match(caught[0]!.detail, /replica 2 sent its \w+/);
});

test('replies sent before the writes they depend on (the old shell) are caught within the seeds npm test runs', () => {
  const broken = runSwarm(1, 30, { replicas: 4, negative: 'reply-before-write' });
  const caught = broken.failures.filter((r) => r.kind === 'correctness');
  assert.ok(caught.length >= 10, `only ${caught.length} of 30 seeds caught replies sent before their writes`);
  const checks = new Set(caught.flatMap((r) => r.violations.map((v) => v.check)));
  assert.ok(checks.has('reply-before-decided'), `caught by ${[...checks].join(', ')}`);
  process.stderr.write(`reply before write: caught in ${caught.length}/30 seeds by ${[...checks].join(', ')}\n`);
  // The same seeds with the real build show no violation.
  const fixed = runSwarm(1, 30, { replicas: 4 });
  assert.deepEqual(fixed.failures.map((r) => r.seed), []);
});

test('a replica whose records went back to an older image (its horizon record intact) notices, stays safe and rejoins', () => {
  const sim = new SimCluster({ seed: 21, requestsPerClient: 120, diskLatencyTicksMax: 1 });
  sim.keepImages(2, 60);
  sim.run(300);
  sim.crash(2);
  assert.ok(sim.damage(2, 0), 'an older image was kept');
  sim.run(50);
  sim.restart(2);
  finish(sim);
  assert.equal(sim.faults['lost-state-detected'], 1);
  const lost = sim.events.filter((e) => e.replica === 2 && e.event.type === 'stored-state-lost');
  assert.equal(lost.length, 1);
  const floor = lost[0]!.event.type === 'stored-state-lost' ? lost[0]!.event.floor : undefined;
  assert.ok(
    sim.events.some((e) => e.replica === 2 && e.event.type === 'signing-resumed'),
    `it signs again once past its floor ${JSON.stringify(floor)}: ${JSON.stringify(sim.hosts[2]!.replica!.status())}`,
  );
  assert.ok(sim.checker.checked.messages > 1000);
});

test('a build that ignores lost durable state is caught (a damaged replica contradicts what it signed)', () => {
  // (The broken build does not abstain after restarts either: it trusts its disk as complete. The
  // direct check of abstaining is left out, so what catches it is what the lost data does.)
  // About one seed in five catches it (24 of seeds 1-120 on 2026-12-04, 27 before that day's
  // changes to checkpoint timing); 40 seeds gave 4 or 5, at the edge of the bound of 5, so the same
  // rate (one in eight) is asked of 80 seeds (15 s).
  const broken = runSwarm(1, 80, { replicas: 4, negative: 'ignore-lost-data', ignoreChecks: ['abstained-vote'] });
  const caught = broken.failures.filter((r) => r.kind === 'correctness');
  assert.ok(caught.length >= 10, `only ${caught.length} of 80 seeds caught a replica that ignored its lost state`);
  const checks = new Set(caught.flatMap((r) => r.violations.map((v) => v.check)));
  process.stderr.write(`ignore lost data: caught in ${caught.length}/80 seeds by ${[...checks].join(', ')}\n`);
});

test('rule 1a: with one client PRE-PREPAREs and PREPAREs leave before their own writes', () => {
  const sim = new SimCluster({ seed: 4, clients: 1, requestsPerClient: 60, diskLatencyTicksMax: 2 });
  let early = 0;
  const onSent = sim.checker.onSent.bind(sim.checker);
  sim.checker.onSent = (replica, frame, disk, tick) => {
    const decoded = decodeFrame(frame);
    if (decoded.ok && decoded.value.kind === 'signed') {
      const m = decoded.value.signed.msg;
      if ((m.type === 'preprepare' || m.type === 'prepare') && !disk.holds(decoded.value.signed as Parameters<typeof disk.holds>[0])) early++;
    }
    onSent(replica, frame, disk, tick);
  };
  finish(sim);
  const executed = sim.checker.order.size;
  assert.ok(early > executed, `${early} PRE-PREPAREs and PREPAREs left before their writes, for ${executed} sequence numbers`);
});

test('rule 1a: a restarted primary abstains in its view; the backups change the view and it votes again in the next', () => {
  const sim = new SimCluster({ seed: 6, requestsPerClient: 40, diskLatencyTicksMax: 2 });
  sim.runUntil(() => sim.checker.order.size >= 10, 5_000);
  const primary = sim.hosts[0]!.replica!.status().primary;
  sim.crash(primary);
  sim.run(5);
  sim.restart(primary);
  const abstain = sim.hosts[primary]!.replica!.status().abstaining;
  assert.ok(abstain !== undefined && abstain.view === 0, `it abstains in view 0: ${JSON.stringify(abstain)}`);
  finish(sim);
  const status = sim.hosts[primary]!.replica!.status();
  assert.ok(status.view >= 1 && status.abstaining === undefined, `view ${status.view}, abstaining ${JSON.stringify(status.abstaining)}`);
  assert.ok(sim.events.some((e) => e.replica === primary && e.event.type === 'abstaining-ended'));
});

test('rule 1a: after a restart of the whole cluster, one view change and every replica votes again', () => {
  const sim = new SimCluster({ seed: 8, requestsPerClient: 40, diskLatencyTicksMax: 2 });
  sim.runUntil(() => sim.checker.order.size >= 10, 5_000);
  for (const h of sim.hosts) sim.crash(h.id);
  sim.run(5);
  for (const h of sim.hosts) sim.restart(h.id);
  const views = sim.hosts.map((h) => h.replica!.status().view);
  finish(sim);
  for (const h of sim.hosts) {
    const s = h.replica!.status();
    assert.equal(s.abstaining, undefined, `replica ${h.id} votes again`);
    assert.equal(s.view, Math.max(...views) + 1, `replica ${h.id}: one view change (from ${views.join(', ')} to ${s.view})`);
  }
});

test('negative control: a restarted replica that votes at once (no abstaining) is caught: it contradicts a vote it sent unwritten', () => {
  // Frequent short crashes, no byzantine replica; the direct check (abstained-vote) is left out, so
  // what catches it is what a lost vote does: a second, different PRE-PREPARE or PREPARE.
  const broken = runSwarm(1, 20, { replicas: 4, negative: 'no-abstain', ignoreChecks: ['abstained-vote'] });
  const caught = broken.failures.filter((r) => r.kind === 'correctness');
  const checks = new Set(caught.flatMap((r) => r.violations.map((v) => v.check)));
  process.stderr.write(`no abstaining: caught in ${caught.length}/20 seeds by ${[...checks].join(', ')}\n`);
  assert.ok(caught.length >= 10, `only ${caught.length} of 20 seeds caught a restarted replica that did not abstain`);
  assert.ok(checks.has('equivocation'), `caught by ${[...checks].join(', ')}`);
  // The same plans (frequent short crashes) with the correct build: no violation.
  const fixed = runSwarm(1, 20, { replicas: 4, negative: 'no-abstain', planOnly: true });
  assert.deepEqual(fixed.failures.map((r) => `${r.seed} ${r.kind}`), []);
});

test('clean stops: a replica stopped like SIGTERM (drain, then the clean record) votes at once after its restart, safely; writing the record before draining is caught', () => {
  // The correct build, with frequent short clean stops (and crashes, partitions, byzantine replicas):
  // the checkers include the direct one (clean-stop-lost-vote: every vote it sent is on its disk).
  const fixed = runSwarm(1, 20, { replicas: 4, negative: 'clean-before-drain', planOnly: true });
  assert.deepEqual(fixed.failures.map((r) => `${r.seed} ${r.kind} ${r.violations[0]?.check}`), []);
  assert.ok((fixed.faults['clean-stopped'] ?? 0) >= 100, `clean stops that wrote their record: ${fixed.faults['clean-stopped']}`);
  assert.ok((fixed.faults['clean-restart'] ?? 0) >= 100, `restarts that did not abstain: ${fixed.faults['clean-restart']}`);
  // The broken shell: the record first, its deferred writes lost. Caught directly, and without the
  // direct check by what a lost vote does (a second, different PRE-PREPARE or PREPARE).
  const broken = runSwarm(1, 20, { replicas: 4, negative: 'clean-before-drain' });
  const direct = broken.failures.filter((r) => r.violations.some((v) => v.check === 'clean-stop-lost-vote'));
  assert.ok(direct.length >= 10, `only ${direct.length} of 20 seeds caught the clean record written before the drain`);
  const indirect = runSwarm(1, 20, { replicas: 4, negative: 'clean-before-drain', ignoreChecks: ['clean-stop-lost-vote'] });
  const checks = new Set(indirect.failures.flatMap((r) => r.violations.map((v) => v.check)));
  process.stderr.write(`clean record before the drain: caught directly in ${direct.length}/20 seeds; without that check in ${indirect.failures.length}/20 by ${[...checks].join(', ')}\n`);
  assert.ok(checks.has('equivocation') || checks.has('abstained-vote'), `caught by ${[...checks].join(', ')}`);
});
