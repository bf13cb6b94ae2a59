/**
 * Checkpoints computed over several turns (src/core/checkpoints.ts): with a slice budget of one
 * byte every checkpoint reads and hashes one frozen partition per turn while execution goes on.
 * Replica 3 keeps the default budget (each checkpoint in one turn, the state exactly as at its
 * sequence number), so every digest the others compute over several turns is compared with one
 * computed the old way; the sim's checkers watch agreement, the model and what leaves each replica.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SimCluster } from '../../src/sim/cluster.ts';
import { toHex } from '../../src/core/auth.ts';
import { KEYS } from '../../src/core/persist.ts';

const SLICED = { checkpointSliceBytes: 1 };

function slicedCluster(seed: number): SimCluster {
  return new SimCluster({
    seed,
    clients: 8,
    requestsPerClient: 60,
    keySpace: 64,
    replica: SLICED,
    replicaOverrides: { 3: { checkpointSliceBytes: 4 * 1024 * 1024 } },
  });
}

/** Every own checkpoint digest each live replica holds, by seq: all must be equal. */
function collectDigests(sim: SimCluster, into: Map<number, Map<number, string>>): void {
  for (const host of sim.hosts) {
    const r = host.main?.replica;
    if (!r) continue;
    for (const [seq, snap] of r.ownCheckpoints) {
      let bySeq = into.get(seq);
      if (!bySeq) into.set(seq, (bySeq = new Map()));
      bySeq.set(host.id, toHex(snap.digest));
    }
  }
}

/**
 * Runs `sim` until its clients are done or a checker finds a violation, collecting every own
 * checkpoint digest into `digests`; asserts the clients finished and nothing was violated, and that
 * no replica's disk keeps a log record or checkpoint vote at or below its stable checkpoint (each
 * stable checkpoint clears only from where the last clear of the incarnation ended: checkpoints.ts
 * advanceStable).
 */
function runToEnd(sim: SimCluster, digests: Map<number, Map<number, string>>, ticks: number): void {
  const done = sim.runUntil(() => {
    collectDigests(sim, digests);
    return sim.allClientsDone() || sim.checker.violations.length > 0;
  }, ticks);
  assert.ok(done, 'clients did not finish');
  sim.finish();
  assert.deepEqual(sim.checker.violations, []);
  for (const host of sim.hosts) {
    const h = host.main?.replica.h;
    if (h === undefined || h === 0) continue;
    const stale = [...host.disk.data.keys()].filter(
      (k) => (k.startsWith(KEYS.logPrefix) && k < KEYS.logBelow(h + 1)) || (k.startsWith(KEYS.checkpointVotePrefix) && k < KEYS.checkpointVotesBelow(h + 1)),
    );
    assert.deepEqual(stale.slice(0, 5), [], `replica ${host.id}: records at or below its stable checkpoint ${h} left on disk`);
  }
}

function assertAgree(digests: Map<number, Map<number, string>>): number {
  let compared = 0;
  for (const [seq, byReplica] of digests) {
    const distinct = new Set(byReplica.values());
    assert.equal(distinct.size, 1, `checkpoint ${seq}: digests differ between replicas: ${JSON.stringify([...byReplica])}`);
    if (byReplica.size > 1) compared++;
  }
  return compared;
}

test('a checkpoint computed one partition per turn while execution goes on has the digest of the state at its sequence number', () => {
  const sim = slicedCluster(21);
  const digests = new Map<number, Map<number, string>>();
  /** Turns in which a replica had executed past the checkpoint it was still computing. */
  let executedWhilePending = 0;
  /** A stable checkpoint without its state (which the replica then neither stores nor can serve). */
  const stableWithoutState: string[] = [];
  const done = sim.runUntil(() => {
    collectDigests(sim, digests);
    for (const host of sim.hosts) {
      const r = host.main?.replica;
      const work = r?.checkpointWork;
      if (r && work && r.lastExecuted > work.seq) executedWhilePending++;
      if (r && r.stable.seq > 0 && r.stableSnapshot?.seq !== r.stable.seq) stableWithoutState.push(`replica ${r.id} at ${r.stable.seq}`);
    }
    return sim.allClientsDone() || sim.checker.violations.length > 0;
  }, 40_000);
  assert.ok(done, 'clients did not finish');
  sim.finish();
  assert.deepEqual(sim.checker.violations, []);
  const replicas = sim.hosts.map((h) => h.main!.replica);
  const overTurns = replicas.slice(0, 3).reduce((n, r) => n + r.counters.checkpointsOverTurns, 0);
  assert.ok(overTurns >= 10, `checkpoints computed over several turns: ${overTurns}`);
  assert.equal(replicas[3]!.counters.checkpointsOverTurns, 0, 'the reference replica computes each checkpoint in one turn');
  assert.ok(executedWhilePending > 0, 'execution went on while a checkpoint was computed');
  assert.deepEqual(stableWithoutState.slice(0, 5), [], 'every stable checkpoint came with its state (our own, finished when the certificate came first)');
  // One partition per turn is slower than the reference replica: the certificate (or the next
  // checkpoint) comes first, and the rest is computed in that turn; the counters say how often.
  const rushed = replicas.slice(0, 3).map((r) => r.counters.checkpointsRushedByNext + r.counters.checkpointsRushedByStable);
  assert.ok(rushed.reduce((a, b) => a + b, 0) >= 1, `checkpoints finished at once: ${rushed.join(', ')}`);
  for (const r of replicas) {
    const c = r.counters;
    assert.ok(c.checkpointPartitionsRushed >= c.checkpointsRushedByNext + c.checkpointsRushedByStable, `replica ${r.id}: at least one partition per rushed checkpoint`);
    assert.ok(c.checkpointsRushedByNext + c.checkpointsRushedByStable <= c.checkpointsOverTurns, `replica ${r.id}: only a checkpoint computing over turns is rushed`);
  }
  for (const r of replicas) assert.equal(r.counters.divergences, 0, `replica ${r.id} found its state diverged`);
  for (const r of replicas) assert.ok(r.counters.checkpointsStable >= 5, `replica ${r.id}: ${r.counters.checkpointsStable} stable checkpoints`);
  assert.ok(assertAgree(digests) >= 5, 'checkpoints compared between replicas');
});

test('with the default budget, a checkpoint of many small partitions is spread over turns too (each partition counts a fixed cost), with the same digests', () => {
  // About 450 keys, each in a partition of its own, change between checkpoints: 450 x 16 KiB is more
  // than the default 4 MiB. Replica 3 has a budget no checkpoint reaches.
  const sim = new SimCluster({
    seed: 22,
    clients: 24,
    requestsPerClient: 150,
    keySpace: 100_000,
    partitionCount: 4096,
    replica: { checkpointInterval: 128, windowSize: 256 },
    replicaOverrides: { 3: { checkpointSliceBytes: Number.MAX_SAFE_INTEGER } },
  });
  const digests = new Map<number, Map<number, string>>();
  runToEnd(sim, digests, 60_000);
  const replicas = sim.hosts.map((h) => h.main!.replica);
  for (const r of replicas.slice(0, 3)) {
    assert.equal(r.opts.checkpointSliceBytes, 4 * 1024 * 1024, 'the default budget');
    assert.ok(r.counters.checkpointsOverTurns >= 2, `replica ${r.id}: ${r.counters.checkpointsOverTurns} checkpoints over several turns`);
  }
  assert.equal(replicas[3]!.counters.checkpointsOverTurns, 0, 'the reference replica computes each checkpoint in one turn');
  for (const r of replicas) assert.equal(r.counters.divergences, 0, `replica ${r.id} found its state diverged`);
  assert.ok(assertAgree(digests) >= 2, 'checkpoints compared between replicas');
});

test('replicas crashed while computing a checkpoint over several turns restart, and the cluster stays correct', () => {
  const sim = slicedCluster(22);
  const digests = new Map<number, Map<number, string>>();
  let crashes = 0;
  for (let round = 0; round < 9 && !sim.allClientsDone(); round++) {
    const id = round % 3;
    const reached = sim.runUntil(() => {
      collectDigests(sim, digests);
      return sim.hosts[id]!.main?.replica.checkpointWork !== undefined;
    }, 4_000);
    if (!reached) break;
    sim.crash(id);
    crashes++;
    sim.run(15 + round * 5);
    sim.restart(id);
  }
  assert.ok(crashes >= 5, `crashes while a checkpoint was computed: ${crashes}`);
  runToEnd(sim, digests, 40_000);
  for (const host of sim.hosts) assert.equal(host.main!.replica.counters.divergences, 0, `replica ${host.id} found its state diverged`);
  assertAgree(digests);
});

test('a reconfiguration ordered while a checkpoint is computed over several turns: the checkpoint keeps the configuration it was taken in, and the new one starts on agreed state', () => {
  // 256 partitions and 400 keys: a checkpoint changes many partitions, each read in a turn of its own.
  const sim = new SimCluster({
    seed: 20,
    clients: 8,
    requestsPerClient: 80,
    keySpace: 400,
    partitionCount: 256,
    spareReplicas: 1,
    operator: true,
    replica: SLICED,
    replicaOverrides: { 3: { checkpointSliceBytes: 4 * 1024 * 1024 } },
  });
  const digests = new Map<number, Map<number, string>>();
  const reached = sim.runUntil(() => {
    collectDigests(sim, digests);
    const w = sim.hosts[0]!.main?.replica.checkpointWork;
    return w !== undefined && w.partitions.length - w.next > 12;
  }, 5_000);
  assert.ok(reached, 'replica 0 computes a checkpoint over many turns');
  sim.reconfigure({ kind: 'add-replica', replica: sim.replicaInfo[4]! });
  /** Steps in which a replica's configuration changed while it had a checkpoint in progress before. */
  let metPending = 0;
  const before = new Map<number, { pending: boolean; membership: unknown }>();
  const done = sim.runUntil(() => {
    collectDigests(sim, digests);
    for (const host of sim.hosts.slice(0, 4)) {
      const r = host.main?.replica;
      if (!r) continue;
      const b = before.get(host.id);
      if (b?.pending && b.membership !== r.membership) metPending++;
      before.set(host.id, { pending: r.checkpointWork !== undefined, membership: r.membership });
    }
    return (sim.allClientsDone() && sim.hosts.every((h) => (h.main?.replica.status().epoch ?? 1) >= 1)) || sim.checker.violations.length > 0;
  }, 40_000);
  assert.ok(done, 'clients did not finish, or a replica did not enter epoch 1');
  sim.finish();
  assert.deepEqual(sim.checker.violations, []);
  assert.ok(metPending > 0, 'the JOIN executed while a checkpoint was in progress');
  for (const host of sim.hosts) {
    const r = host.main!.replica;
    assert.equal(r.counters.divergences, 0, `replica ${host.id} found its state diverged`);
    assert.deepEqual(r.status().members, [0, 1, 2, 3, 4], `replica ${host.id}'s members`);
  }
  assertAgree(digests);
});
