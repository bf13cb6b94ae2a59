/**
 * The replica shell (src/node/replica-node.ts) with four in-process nodes: effects in order
 * (persist, then send), a failed synced write is fatal and nothing is sent after it,
 * /status and /metrics, compression helpers, stop().
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { deflateRawSync } from 'node:zlib';
import { PbftClient } from '../../src/client/client.ts';
import { compress, decompress, type NodeStatus } from '../../src/node/replica-node.ts';
import { StorageError } from '../../src/storage/types.ts';
import { MISBEHAVIOURS, REJECT_REASONS } from '../../src/core/rejections.ts';
import { InProcessCluster, type EffectEvent } from './inprocess-cluster.ts';

let ipc: InProcessCluster;
let client: PbftClient;

before(async () => {
  ipc = await InProcessCluster.create({ replica: { checkpointInterval: 8, windowSize: 16 } });
  client = await PbftClient.connect({ cluster: ipc.cluster, key: ipc.clientKey(0), timeoutMs: 30_000 });
});

after(async () => {
  await client?.close();
  await ipc?.stop();
});

/**
 * True when no message to a replica left while a write was in flight, and writes always completed.
 * A reply may leave while a later turn's write is in flight (it waits only for the write of the COMMIT
 * it depends on: src/core/durability.ts), so replies are not checked here; the simulator checks them
 * (src/sim/checkers.ts) and test/node/durability-scenario.test.ts checks the shell. Neither are
 * PRE-PREPAREs and PREPAREs ('send-vote'): they wait only for the horizon that covers them (rule 1a),
 * which the test checks when they leave (sentBeforeDurable).
 */
function persistedBeforeSent(events: EffectEvent[]): string | undefined {
  let writing = false;
  for (let i = 0; i < events.length; i++) {
    const e = events[i]!;
    if (e === 'write-begin') {
      if (writing) return `two writes overlap at event ${i}`;
      writing = true;
    } else if (e === 'write-end') {
      writing = false;
    } else if (e === 'send' && writing) {
      return `a ${e} at event ${i} happened while the turn's write was not yet durable`;
    }
  }
  return undefined;
}

test('every turn persists its writes before it sends a replica anything but a PRE-PREPARE or PREPARE (those wait for their horizon)', async () => {
  for (let i = 0; i < 30; i++) {
    await client.put(`k${i % 5}`, `v${i}`);
  }
  // Rule 1a: PRE-PREPAREs and PREPAREs left without waiting for their own writes (checked below).
  assert.ok(ipc.replicas.every((r) => r.events.includes('send-vote')));
  assert.equal(await client.get('k4'), 'v29');
  for (const [id, r] of ipc.replicas.entries()) {
    assert.ok(r.events.includes('write-begin') && r.events.includes('send'), `replica ${id} wrote and sent`);
    assert.equal(persistedBeforeSent(r.events), undefined, `replica ${id}`);
    assert.ok(r.sentOwnSigned > 0, `replica ${id} sent signed messages`);
    assert.deepEqual(r.sentBeforeDurable, [], `replica ${id}: signed messages sent before they were durable`);
    assert.deepEqual(r.fatal, []);
  }
  // Checkpoints (every 8) became stable and garbage collection ran.
  assert.ok(ipc.replicas.some((r) => r.events.includes('clear')));
});

test('GET /status and GET /metrics', async () => {
  const res = await fetch(`http://127.0.0.1:${ipc.ports[1]}/status`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /application\/json/);
  const s = (await res.json()) as NodeStatus;
  assert.equal(s.id, 1);
  assert.equal(s.view, 0);
  assert.equal(s.primary, 0);
  assert.equal(s.viewChanging, false);
  // 30 puts (the get of the test before is a read-only request: executed, but not ordered).
  assert.ok(s.lastExecuted >= 30);
  assert.ok(s.stableCheckpoint.seq >= 8 && /^[0-9a-f]{64}$/.test(s.stableCheckpoint.digest));
  assert.ok(s.counters.requestsExecuted >= 30);
  // Only 2f+1 replicas check each client signature (src/core/quorum.ts): the primary checks all, the
  // backups skip one batch in three between them (whose requests they had not seen from the client).
  const all = await Promise.all(ipc.ports.map(async (port) => (await (await fetch(`http://127.0.0.1:${port}/status`)).json()) as NodeStatus));
  assert.equal(all[0]!.counters.clientSignaturesUnchecked, 0, 'the primary checks every request');
  const unchecked = all.slice(1).reduce((sum, r) => sum + r.counters.clientSignaturesUnchecked, 0);
  assert.ok(unchecked > 0 && unchecked <= s.counters.requestsExecuted, `backups left ${unchecked} client signatures unchecked`);
  assert.equal(typeof s.rejected, 'object');
  assert.deepEqual(s.transport.replicasConnected, [0, 2, 3]);
  assert.ok(s.uptimeSeconds >= 0);

  const metrics = await (await fetch(`http://127.0.0.1:${ipc.ports[1]}/metrics`)).text();
  assert.match(metrics, /^# TYPE pbft_requests_executed_total counter$/m);
  assert.match(metrics, new RegExp(`^pbft_requests_executed_total ${s.counters.requestsExecuted}$`, 'm'));
  assert.match(metrics, /^pbft_view 0$/m);
  assert.match(metrics, /^pbft_last_executed_seq \d+$/m);
  assert.match(metrics, /^pbft_divergences_total 0$/m);
  assert.match(metrics, /^pbft_state_transfers_total 0$/m);
  assert.match(metrics, /^# TYPE pbft_rejected_messages_total counter$/m);
  // Every reason there is appears, also with a count of 0 (src/core/rejections.ts).
  for (const reason of REJECT_REASONS) assert.match(metrics, new RegExp(`^pbft_rejected_messages_total\\{reason="${reason}"\\} \\d+$`, 'm'), reason);
  // Likewise every misbehaviour code, and /status says what the replica is doing and shows its timers.
  for (const code of MISBEHAVIOURS) assert.match(metrics, new RegExp(`^pbft_peer_misbehaviour_total\\{code="${code}"\\} 0$`, 'm'), code);
  assert.equal(s.status, 'normal');
  assert.deepEqual(s.misbehaviour, {});
  assert.ok(s.timers.some((t) => t.name === 'view-change' && t.attempts === 0));

  assert.equal((await fetch(`http://127.0.0.1:${ipc.ports[1]}/nothing`)).status, 404);
  assert.equal((await fetch(`http://127.0.0.1:${ipc.ports[1]}/status`, { method: 'POST' })).status, 405);
});

test('a failed synced write is fatal: the replica sends nothing after it, and the others keep serving', async () => {
  const victim = ipc.replicas[3]!;
  victim.storage.failWrites = true;
  await client.put('after-failure', 'yes');
  assert.equal(await client.get('after-failure'), 'yes');
  await new Promise<void>((resolve, reject) => {
    const deadline = Date.now() + 20_000;
    const poll = (): void => {
      if (victim.fatal.length > 0) return resolve();
      if (Date.now() > deadline) return reject(new Error('no fatal error reported'));
      setTimeout(poll, 10);
    };
    poll();
  });
  assert.ok(victim.fatal[0] instanceof StorageError, String(victim.fatal[0]));
  // The failed write is the last one begun (it may have begun just before failWrites was set: a
  // deferred write still waiting on its delay); the replica stops there.
  const failedAt = victim.events.lastIndexOf('write-begin');
  assert.ok(failedAt >= 0 && !victim.events.slice(failedAt).includes('write-end'), 'the last write failed');
  assert.deepEqual(victim.events.slice(failedAt + 1).filter((e) => e === 'send' || e === 'reply'), [], 'nothing sent after the failed write');
  // The replica no longer runs turns: more traffic does not reach its storage.
  const count = victim.events.length;
  await client.put('later', '1');
  assert.equal(victim.events.length, count);
});

test('compress/decompress round-trip and bound the output', () => {
  const data = new Uint8Array(10_000).map((_, i) => i % 7);
  const packed = compress(data);
  assert.ok(packed.length < data.length);
  assert.deepEqual(decompress(packed, data.length), data);
  assert.equal(decompress(packed, data.length - 1), undefined, 'larger than bytesMax');
  assert.equal(decompress(Uint8Array.of(1, 2, 3, 4, 5), 1000), undefined, 'malformed');
  assert.deepEqual(decompress(new Uint8Array(deflateRawSync(new Uint8Array(0))), 0), new Uint8Array(0));
});
