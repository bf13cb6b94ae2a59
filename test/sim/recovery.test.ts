/**
 * Checkpoints, log truncation, crash recovery and state transfer in the deterministic simulator.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SimCluster, type SimOptions } from '../../src/sim/cluster.ts';
import { makeBehavior } from '../../src/sim/byzantine.ts';
import type { CoreEvent } from '../../src/core/replica.ts';
import type { KvOp } from '../../src/app/kv-ops.ts';
import { decodeFrame, encodeLinkFrame } from '../../src/codec/messages.ts';

const K = 8;

function cluster(options: Partial<SimOptions> = {}): SimCluster {
  return new SimCluster({ seed: 11, f: 1, clients: 4, requestsPerClient: 60, keySpace: 40, ...options });
}

function eventsOf<T extends CoreEvent['type']>(sim: SimCluster, replica: number, type: T): Array<Extract<CoreEvent, { type: T }>> {
  return sim.events.filter((e) => e.replica === replica && e.event.type === type).map((e) => e.event as Extract<CoreEvent, { type: T }>);
}

/** Runs until every client is done, then lets checkpoints settle; asserts no violation. */
function finish(sim: SimCluster): void {
  assert.ok(sim.runUntil(() => sim.allClientsDone(), 40_000), 'clients did not finish');
  sim.run(300);
  sim.finish();
  assert.deepEqual(sim.checker.violations, []);
}

/** Every live replica ends at the same last checkpoint with the same digest. */
function assertConverged(sim: SimCluster): void {
  const statuses = sim.hosts.filter((h) => h.replica).map((h) => h.replica!.status());
  const first = statuses[0]!;
  for (const s of statuses) {
    assert.equal(s.transferring, false, `replica ${s.id} still transferring`);
    assert.deepEqual(s.stableCheckpoint, first.stableCheckpoint, `replica ${s.id} stable checkpoint differs`);
  }
  assert.ok(first.stableCheckpoint.seq >= 4 * K, `only ${first.stableCheckpoint.seq} ordered`);
}

test('checkpoints become stable only with 2f+1 matching digests: a cluster of 4 with one replica down still advances, with two down it does not', () => {
  const sim = cluster({ requestsPerClient: 30 });
  sim.crash(3);
  assert.ok(sim.runUntil(() => sim.allClientsDone(), 20_000));
  sim.run(100);
  const stable = sim.hosts[0]!.replica!.status().stableCheckpoint.seq;
  assert.ok(stable >= K, 'three replicas (2f+1) make checkpoints stable');
  // With two replicas down nothing is ordered, so no checkpoint can become stable either.
  const sim2 = cluster({ requestsPerClient: 30 });
  sim2.crash(2);
  sim2.crash(3);
  sim2.run(3_000);
  assert.equal(sim2.hosts[0]!.replica!.status().stableCheckpoint.seq, 0);
  assert.equal(sim2.checker.requestsExecuted, 0);
});

test('a replica with an empty data directory joins a cluster that has truncated its log, and catches up by state transfer', () => {
  const sim = cluster();
  sim.crash(3);
  sim.wipe(3);
  assert.ok(sim.runUntil(() => sim.hosts[0]!.replica!.h >= 4 * K, 20_000), 'the cluster ordered several checkpoints');
  // The others' logs no longer hold the first entries: only state transfer can bring replica 3 up.
  assert.ok(sim.hosts[0]!.replica!.h > sim.opts.replica.windowSize!);
  sim.restart(3);
  finish(sim);
  const done = eventsOf(sim, 3, 'state-transfer-completed');
  assert.ok(done.length >= 1, 'replica 3 completed a state transfer');
  assert.ok(done[0]!.partitionsFetched > 0 && done[0]!.bytesReceived > 0);
  assertConverged(sim);
  assert.ok(sim.hosts[3]!.replica!.lastExecuted >= sim.hosts[0]!.replica!.h);
});

test('a byzantine peer serving corrupt state and corrupt log entries is detected and avoided', () => {
  const sim = cluster();
  sim.hosts[0]!.byzantine = makeBehavior('corrupt-transfer', sim.prng.fork(), sim, 0);
  sim.crash(3);
  sim.wipe(3);
  assert.ok(sim.runUntil(() => sim.hosts[1]!.replica!.h >= 4 * K, 20_000));
  sim.restart(3);
  finish(sim);
  const blamed = eventsOf(sim, 3, 'peer-misbehaved');
  assert.ok(blamed.length > 0, 'replica 3 noticed corrupt data');
  assert.ok(blamed.every((e) => e.peer === 0), `only replica 0 is blamed: ${JSON.stringify(blamed.map((e) => [e.peer, e.reason]))}`);
  assert.ok(eventsOf(sim, 3, 'state-transfer-completed').length >= 1);
  // Replica 3's state is the certified one (the checkpoint digests agree with the correct replicas').
  const correct = [1, 2, 3].map((id) => sim.hosts[id]!.replica!.status().stableCheckpoint);
  assert.ok(correct.every((c) => c.digest === correct[0]!.digest && c.seq === correct[0]!.seq));
});

test('a replica behind by one key fetches one partition, and only the leaf digests that differ from its own', () => {
  // 256 partitions in 16 groups of 16; 4 clients, 64 keys written, then replica 3 misses one more put.
  let phase: 'load' | 'one' | 'reads' = 'load';
  const workload = (client: number, index: number): KvOp => {
    if (phase === 'load') return { type: 'put', key: `k${client}-${index}`, value: 'v' };
    if (phase === 'one' && client === 0) return { type: 'put', key: 'missed', value: 'x' };
    return { type: 'get', key: 'k0-0' };
  };
  const sim = cluster({ requestsPerClient: 16, partitionCount: 256, workload, compress: true });
  assert.ok(sim.runUntil(() => sim.allClientsDone(), 20_000));
  sim.run(100);
  sim.crash(3);
  phase = 'one';
  sim.clients[0]!.remaining = 1;
  assert.ok(sim.runUntil(() => sim.allClientsDone(), 20_000));
  phase = 'reads';
  const from = sim.hosts[0]!.replica!.h;
  while (sim.hosts[0]!.replica!.h < from + sim.opts.replica.windowSize! + 2 * K) {
    for (const c of sim.clients) c.remaining = 4;
    assert.ok(sim.runUntil(() => sim.allClientsDone(), 20_000));
  }
  let leavesIn = 0;
  let groupsIn = 0;
  const send = sim.net.send.bind(sim.net);
  sim.net.send = (now, src, dst, bytes) => {
    const d = decodeFrame(bytes);
    if (dst === 3 && d.ok && d.value.kind === 'link' && d.value.msg.type === 'state' && d.value.msg.reply.kind === 'leaves') {
      for (const g of d.value.msg.reply.groups) {
        groupsIn++;
        leavesIn += g.leaves.length;
      }
    }
    send(now, src, dst, bytes);
  };
  sim.restart(3);
  finish(sim);
  const done = eventsOf(sim, 3, 'state-transfer-completed');
  assert.equal(done.length, 1);
  assert.equal(done[0]!.partitionsFetched, 1, 'one partition differs');
  assert.equal(groupsIn, 1, 'one group differs');
  assert.equal(leavesIn, 1, 'one leaf digest of its 16 was sent');
  assert.equal(done[0]!.bytesSent, 16 * 4, 'the asker sent a 4-byte prefix of each of its 16 leaves');
  assertConverged(sim);
});

test('a replica restarted after executing past its stable checkpoint still serves the stable checkpoint to a replica behind', () => {
  const sim = cluster({ requestsPerClient: 120 });
  const r1 = () => sim.hosts[1]!.replica!;
  // Stop at a moment where replica 1 has its own checkpoint above the stable one.
  assert.ok(sim.runUntil(() => r1().h >= 2 * K && r1().lastExecuted >= r1().h + K, 20_000), 'replica 1 ran a checkpoint ahead');
  const stable = r1().h;
  sim.crash(1);
  sim.restart(1);
  assert.equal(r1().h, stable);
  assert.ok(r1().lastExecuted >= stable + K, 'the log above the stable checkpoint was replayed');
  // Ask the restarted core directly, before anything else reaches it (its stable checkpoint could move on).
  r1().receive({ kind: 'replica', id: 3 }, encodeLinkFrame({ type: 'statereq', seq: stable, part: { kind: 'meta' } }));
  const answers = r1()
    .flush()
    .messages.filter((m) => m.to === 3)
    .map((m) => decodeFrame(m.frame))
    .flatMap((d) => (d.ok && d.value.kind === 'link' && d.value.msg.type === 'state' ? [d.value.msg.reply.kind] : []));
  assert.deepEqual(answers, ['meta'], 'replica 1 serves the state of its stable checkpoint');
});

test('crash and restart, and a long partition, across several checkpoints: the replica catches up', () => {
  const sim = cluster({ requestsPerClient: 250 });
  // Replica 1 crashes and restarts repeatedly; replica 2 is cut off for longer than the log window.
  for (let round = 0; round < 5; round++) {
    sim.run(150);
    sim.crash(1);
    sim.run(100 + 40 * round);
    sim.restart(1);
  }
  for (let x = 0; x < sim.n + sim.clients.length; x++) {
    if (x === 2) continue;
    sim.net.cutLink(2, x);
    sim.net.cutLink(x, 2);
  }
  const before = sim.hosts[0]!.replica!.h;
  assert.ok(sim.runUntil(() => sim.hosts[0]!.replica!.h >= before + 4 * K, 20_000), 'the others moved several checkpoints ahead');
  sim.net.heal();
  finish(sim);
  assertConverged(sim);
  assert.ok(sim.hosts[1]!.crashes === 5);
});

test('bounded resources: 20,000 requests with K=64 keep the log in memory and the keys on disk under a fixed bound', () => {
  const checkpointInterval = 64;
  const windowSize = 128;
  const partitionCount = 16;
  const sim = new SimCluster({
    seed: 5,
    f: 1,
    clients: 16,
    requestsPerClient: 1_250,
    keySpace: 500,
    partitionCount,
    replica: { checkpointInterval, windowSize, inFlightBatchesMax: 4 },
  });
  sim.keepEvents = false;
  const n = sim.n;
  // Per replica: at most L log slots, each with one slot record and at most 4 batches; checkpoint votes
  // of at most n replicas for L/K + 2 checkpoints; the partitions; a few metadata and view-change keys.
  const diskKeysMax = windowSize * (1 + 4) + n * (windowSize / checkpointInterval + 2) + partitionCount + 4 + 5;
  let maxLog = 0;
  let maxDisk = 0;
  let samples = 0;
  const done = sim.runUntil(() => {
    if (sim.now % 50 === 0) {
      samples++;
      for (const h of sim.hosts) {
        maxLog = Math.max(maxLog, h.replica!.logSize);
        maxDisk = Math.max(maxDisk, h.disk.data.size);
      }
      assert.ok(maxLog <= windowSize, `log grew to ${maxLog} slots (bound ${windowSize})`);
      assert.ok(maxDisk <= diskKeysMax, `disk grew to ${maxDisk} keys (bound ${diskKeysMax})`);
    }
    return sim.allClientsDone();
  }, 400_000);
  assert.ok(done, 'all 20,000 requests answered');
  sim.finish();
  assert.deepEqual(sim.checker.violations, []);
  assert.equal(sim.checker.requestsExecuted, 20_000);
  assert.ok(samples > 100);
  assert.ok(sim.hosts[0]!.replica!.h >= 20_000 / 16 / 2, 'checkpoints advanced the window');
  process.stderr.write(`bounded resources: max ${maxLog} log slots in memory (bound ${windowSize}), max ${maxDisk} keys on disk (bound ${diskKeysMax}), ${sim.now} ticks\n`);
});
