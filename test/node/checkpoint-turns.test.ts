/**
 * Checkpoints computed over several loop turns in real replicas (four in-process ReplicaNodes: real
 * transport, real ed25519, the production loop and pipeline): with a small slice budget, a bulk
 * put changes more partitions than one turn reads, each replica computes its checkpoint over many
 * turns while it goes on executing, and every replica still reaches the same stable checkpoints and
 * the same state (checked against each other: a checkpoint that read a partition as it is now instead
 * of as frozen would differ). The loop runs those turns without waiting for traffic.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { PbftClient } from '../../src/client/client.ts';
import { InProcessCluster } from './inprocess-cluster.ts';

let ipc: InProcessCluster;
let clients: PbftClient[] = [];

before(async () => {
  // 65,536 partitions (a replica's): a put-many of 1,500 keys changes about 1,500, each read in a turn of its own.
  // Replica 3 computes each checkpoint in one turn (a budget no checkpoint reaches; the default one
  // spreads 1,500 changed partitions too): the state exactly at its sequence number, which the
  // others' checkpoints over many turns must match.
  ipc = await InProcessCluster.create({
    clients: 3,
    replica: { checkpointInterval: 4, windowSize: 8, checkpointSliceBytes: 1 },
    replicaOverrides: { 3: { checkpointSliceBytes: Number.MAX_SAFE_INTEGER } },
  });
  clients = await Promise.all([0, 1, 2].map((id) => PbftClient.connect({ cluster: ipc.cluster, key: ipc.clientKey(id), timeoutMs: 60_000 })));
});

after(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await ipc?.stop();
});

test('bulk puts with single puts alongside: replicas compute checkpoints over many turns while executing, and all reach the same stable checkpoints and state', async () => {
  const [bulk, a, b] = clients as [PbftClient, PbftClient, PbftClient];
  const value = new Uint8Array(100).fill(7);
  const statuses = () => ipc.replicas.map((r) => r.node.status());
  /** Samples in which a replica had executed past the checkpoint it was still computing. */
  let executedWhilePending = 0;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      for (const x of statuses()) if (x.checkpointInProgress !== null && x.lastExecuted > x.checkpointInProgress) executedWhilePending++;
      await new Promise((resolve) => setImmediate(resolve));
    }
  })();
  let singles = 0;
  let bulkDone = false;
  /** The last bulk round done: single puts change its keys, in partitions its checkpoint froze. */
  let lastRound = -1;
  const single = async (c: PbftClient, offset: number): Promise<void> => {
    for (let i = 0; !bulkDone || i < 20; i++, singles++) {
      if (lastRound < 0) await c.put(`single/${offset}`, `v${i}`);
      else await c.put(`bulk/${lastRound}/${(offset + i * 7) % 750}`, `v${i}`);
    }
  };
  const bulkPuts = (async () => {
    for (let round = 0; round < 6; round++) {
      const pairs: Array<[string, Uint8Array]> = [];
      for (let i = 0; i < 1500; i++) pairs.push([`bulk/${round}/${i}`, value]);
      await bulk.putMany(pairs);
      lastRound = round;
    }
    bulkDone = true;
  })();
  await Promise.all([bulkPuts, single(a, 0), single(b, 3)]);
  // No more traffic: the checkpoints still being computed finish by themselves.
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const s = statuses();
    const executed = Math.min(...s.map((x) => x.lastExecuted));
    const last = executed - (executed % 4);
    if (s.every((x) => x.lastExecuted === executed && x.lastCheckpoint.seq === last && x.stableCheckpoint.seq === last)) break;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  sampling = false;
  await sampler;
  const s = statuses();
  for (const x of s.slice(0, 3)) assert.ok(x.counters.checkpointsOverTurns >= 2, `replica ${x.id}: ${x.counters.checkpointsOverTurns} checkpoints over several turns`);
  assert.equal(s[3]!.counters.checkpointsOverTurns, 0, 'replica 3 computes each checkpoint in one turn');
  assert.ok(executedWhilePending > 0, `execution went on while a checkpoint was computed (${singles} single puts)`);
  const stable = s[0]!.stableCheckpoint;
  assert.ok(stable.seq >= 8, `stable checkpoint ${stable.seq}`);
  for (const x of s) {
    assert.deepEqual(x.stableCheckpoint, stable, `replica ${x.id}'s stable checkpoint`);
    assert.deepEqual(x.lastCheckpoint, stable, `replica ${x.id}'s own last checkpoint`);
    assert.equal(x.checkpointInProgress, null);
    assert.equal(x.counters.divergences, 0, `replica ${x.id} found its state diverged`);
  }
  for (const r of ipc.replicas) assert.deepEqual(r.fatal, []);
  // /status says how long each replica's own checkpoints were pending and what it executed meanwhile;
  // with none pending now, the time no longer grows.
  for (const x of s.slice(0, 3)) {
    assert.ok(x.loop.checkpointMs! > 0, `replica ${x.id}: checkpoints pending ${x.loop.checkpointMs} ms`);
    assert.ok(x.loop.checkpointBatches! > 0, `replica ${x.id}: ${x.loop.checkpointBatches} batches executed while one was pending`);
  }
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.deepEqual(
    statuses().map((x) => x.loop.checkpointMs),
    s.map((x) => x.loop.checkpointMs),
  );
  assert.equal(await a.get(`bulk/5/${(0 + 19 * 7) % 750}`), 'v19');
  assert.deepEqual(await b.get('bulk/3/1499'), value);
});
