/**
 * The records a stable checkpoint writes, found in the turns before its certificate: by the
 * checkpoint's own turns as they read each changed partition (src/core/checkpoints.ts), and by
 * ReplicaState.prepareRecordsAhead (src/core/state.ts) after it. persistSnapshot uses a diff found ahead
 * only when it was computed from the partition that is on disk then; what it writes must be what it
 * would have computed in the certificate's turn. The simulator's checker holds every replica to
 * that: a replica restarted with an undamaged disk whose stored state does not match its checkpoint
 * digest is a violation (stored-state-intact). Replicas are crashed right after their records were
 * found ahead, before the certificate, and again after it; then every replica is restarted from its
 * disk once more at the end.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SimCluster } from '../../src/sim/cluster.ts';

interface Shape {
  seed: number;
  /** checkpointSliceBytes of every replica but those in `fast` (4 MiB: each checkpoint in one turn). */
  slice: number;
  fast: number[];
  clients: number;
  requestsPerClient: number;
  keySpace: number;
  partitionCount: number;
  /** The replicas crashed in turn (each once its records are found ahead). */
  crash: number[];
}

function cluster(c: Shape): SimCluster {
  const replicaOverrides = Object.fromEntries(c.fast.map((id) => [id, { checkpointSliceBytes: 4 * 1024 * 1024 }]));
  return new SimCluster({ seed: c.seed, clients: c.clients, requestsPerClient: c.requestsPerClient, keySpace: c.keySpace, partitionCount: c.partitionCount, replica: { checkpointSliceBytes: c.slice }, replicaOverrides });
}

function run(shape: Shape): { ahead: number; inTurn: number; again: number; crashes: number } {
  const sim = cluster(shape);
  const slice = shape.slice;
  let crashes = 0;
  for (let round = 0; round < 8 && shape.crash.length > 0 && !sim.allClientsDone(); round++) {
    const id = shape.crash[round % shape.crash.length]!;
    // Records found ahead (all of them, or with a small budget some) and not yet written: the
    // certificate has not come.
    const reached = sim.runUntil(() => {
      const r = sim.hosts[id]!.main?.replica;
      const a = r?.recordsAhead;
      return a !== undefined && (a.next >= a.partitions.length || slice < 1024) && (a.snapshot.records?.size ?? 0) > 0 && a.snapshot.seq > r!.h;
    }, 4_000);
    if (!reached) break;
    // Half the time the certificate comes first (its write uses the diffs), then the crash.
    if (round % 2 === 1) sim.runUntil(() => sim.hosts[id]!.main?.replica.recordsAhead === undefined, 200);
    sim.crash(id);
    crashes++;
    sim.run(20 + round * 7);
    sim.restart(id);
  }
  const done = sim.runUntil(() => sim.allClientsDone() || sim.checker.violations.length > 0, 40_000);
  assert.ok(done, 'clients did not finish');
  const counts = { ahead: 0, inTurn: 0, again: 0, crashes };
  for (const host of sim.hosts) {
    const r = host.main!.replica;
    counts.ahead += r.counters.recordsFoundAhead;
    counts.inTurn += r.counters.recordsFoundInTurn;
    counts.again += r.counters.recordsFoundAgain;
  }
  // Every replica restarts from its own disk once more: the records it wrote must give its state.
  for (const host of sim.hosts) {
    sim.crash(host.id);
    sim.run(5);
    sim.restart(host.id);
    sim.run(60);
  }
  sim.run(400);
  sim.finish();
  assert.deepEqual(sim.checker.violations, []);
  for (const host of sim.hosts) assert.equal(host.main!.replica.counters.divergences, 0, `replica ${host.id} found its state diverged`);
  return counts;
}

test('records found ahead of the certificate are the records the stable checkpoint writes (crashes before and after it)', () => {
  // 64 partitions and 300 keys: a checkpoint changes many partitions, some by more than
  // storedRecordsMax (2 in the simulator: whole bytes then), most by one or two records (deletes too).
  const c = run({ seed: 31, slice: 4 * 1024 * 1024, fast: [], clients: 8, requestsPerClient: 70, keySpace: 300, partitionCount: 64, crash: [0, 1, 2, 3] });
  assert.ok(c.crashes >= 6, `crashes with records found ahead: ${c.crashes}`);
  assert.ok(c.ahead >= 50, `partitions written from records found ahead: ${c.ahead}`);
  console.log(`seed 31: ${JSON.stringify(c)}`);
});

test('records found ahead one partition per turn, alongside checkpoints computed one partition per turn; one replica in one turn, ahead of the others', () => {
  // Replica 0 computes each checkpoint in one turn and finds its records then, while the others
  // still compute the one before (48 clients keep the window full, so execution runs a whole
  // checkpoint interval ahead of the stable one): when that one becomes stable, what is on disk
  // changes under the records replica 0 found, and they must be found again (recordsFoundAgain).
  const c = run({ seed: 32, slice: 1, fast: [0], clients: 48, requestsPerClient: 120, keySpace: 600, partitionCount: 128, crash: [0] });
  console.log(`seed 32: ${JSON.stringify(c)}`);
  assert.ok(c.crashes >= 6, `crashes with records found ahead: ${c.crashes}`);
  assert.ok(c.ahead >= 20, `partitions written from records found ahead: ${c.ahead}`);
  assert.ok(c.again >= 5, `records found again after the disk changed under them: ${c.again}`);
});

test('records found before the checkpoint below became stable are not written: the certificate came before they were found again', () => {
  // Every replica computes its checkpoints and finds records one partition per turn, with the window
  // full: a checkpoint's own turns find records against the disk of two checkpoints back, the one
  // below becomes stable and changes the disk, and (at replica 0) the certificate comes before those
  // records were found again. persistSnapshot must compute them (recordsFoundInTurn); writing the
  // stale ones corrupts the stored state (seed 33: the restarts below find it).
  const c = run({ seed: 33, slice: 1, fast: [], clients: 48, requestsPerClient: 60, keySpace: 600, partitionCount: 128, crash: [] });
  console.log(`seed 33: ${JSON.stringify(c)}`);
  assert.ok(c.inTurn >= 10, `partitions whose records were found in the certificate's turn: ${c.inTurn}`);
});
