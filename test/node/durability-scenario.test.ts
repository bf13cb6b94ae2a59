/**
 * The outside review's scenario, on the production shell (ReplicaNode with real ed25519, an
 * in-memory disk whose synced writes the test can hold, and a transport the test drives by hand):
 *
 *   replica 1 (a correct backup) gets the pre-prepare for seq 1, then COMMITs from 2 and 3 (3 is
 *   byzantine: it commits early), then the PREPARE from 3. In that one turn it becomes prepared,
 *   signs its own COMMIT (not yet sent, not yet durable), counts it with the two it has, executes
 *   and has a reply for the client. The disk never completes that turn's write: replica 1 crashes.
 *   Restarted without its prepared certificate, it takes VIEW-CHANGEs from 0 and 3 (3 hides what it
 *   prepared), becomes primary of view 1, and a new request takes seq 1. The first request executes
 *   later, at seq 2, with a different result.
 *
 * If the first reply had left before the write (the old shell sent replies ahead of the turn's synced
 * write), replica 1 would have signed two different results for one (client, timestamp), and a client
 * holding it plus the byzantine replica's matching reply would have accepted a result the cluster
 * then reversed. The contract: a reply leaves only once what it depends on (the replica's own COMMIT
 * and prepared certificate) is durable.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { KvStore } from '../../src/app/kv.ts';
import { decodeResult, type KvResult } from '../../src/app/kv-ops.ts';
import { replyOf } from '../../src/client/request.ts';
import { decodeFrame } from '../../src/codec/messages.ts';
import { ReplicaNode } from '../../src/node/replica-node.ts';
import { MemoryStorage } from '../../src/storage/memory.ts';
import { StorageError, type WriteOp } from '../../src/storage/types.ts';
import { ForwardingStorage } from './inprocess-cluster.ts';
import type { Principal, ReplicaTransport, TransportStats } from '../../src/transport/types.ts';
import { silentLogger } from '../../src/util/log.ts';
import { cas, frame, PAPER_TIME_MS, put, TestCluster } from '../paper/harness.ts';

/** A disk whose synced writes can be held (never completing): a crash then loses them. */
class HeldDisk extends ForwardingStorage {
  hold = false;
  private held: Array<(err: unknown) => void> = [];
  constructor(readonly memory: MemoryStorage) {
    super(memory);
  }
  override write(ops: WriteOp[], options: { sync: boolean }): Promise<void> {
    if (!this.hold) return this.inner.write(ops, options);
    return new Promise<void>((_, reject) => this.held.push(reject));
  }
  get heldWrites(): number {
    return this.held.length;
  }
  /** The process dies with its held writes not on the disk. */
  crash(): void {
    for (const reject of this.held) reject(new StorageError('WRITE_FAILED', 'crashed before the write completed'));
    this.held = [];
    this.memory.crash();
  }
}

/** A transport driven by the test: frames in by hand, frames out recorded. */
class ManualTransport implements ReplicaTransport {
  handler?: (from: Principal, frame: Uint8Array) => void;
  readonly toReplicas: Array<{ to: number; frame: Uint8Array }> = [];
  readonly toClients: Array<{ client: number; frame: Uint8Array }> = [];
  async start(): Promise<void> {}
  setMembership(): void {}
  async stop(): Promise<void> {}
  sendToReplica(to: number, f: Uint8Array): void {
    this.toReplicas.push({ to, frame: f });
  }
  sendToClient(client: number, f: Uint8Array): boolean {
    this.toClients.push({ client, frame: f });
    return true;
  }
  onFrame(handler: (from: Principal, frame: Uint8Array) => void): void {
    this.handler = handler;
  }
  stats(): TransportStats {
    return { framesIn: 0, framesOut: 0, bytesIn: 0, bytesOut: 0, framesDropped: 0, silentLinksClosed: 0, handshakesRejected: {}, replicasConnected: [], clientsConnected: 0 };
  }
  fromReplica(id: number, f: Uint8Array): void {
    this.handler!({ kind: 'replica', id }, f);
  }
  fromClient(id: number, f: Uint8Array): void {
    this.handler!({ kind: 'client', id }, f);
  }
  /** Types of the signed messages sent to replicas so far. */
  signedTypes(): string[] {
    return this.toReplicas.flatMap((m) => {
      const d = decodeFrame(m.frame);
      return d.ok && d.value.kind === 'signed' ? [d.value.signed.msg.type] : [];
    });
  }
}

async function until(what: string, cond: () => boolean, ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

function resultsFor(t: ManualTransport, client: number, timestamp: number): KvResult[] {
  const out: KvResult[] = [];
  for (const r of t.toClients) {
    if (r.client !== client) continue;
    const d = decodeFrame(r.frame);
    const reply = d.ok ? replyOf(d.value) : undefined;
    if (!reply || reply.msg.timestamp !== timestamp) continue;
    const res = decodeResult(reply.msg.result);
    if (res.ok) out.push(res.value);
  }
  return out;
}

test('a crash between compute and write cannot make a correct replica sign two results for one request', async () => {
  const k = new TestCluster({ real: true, clients: 2, options: { viewChangeTimeoutTicks: 100_000, viewChangeTimeoutTicksMax: 100_000 } });
  const disk = new HeldDisk(new MemoryStorage());
  const fatal: unknown[] = [];
  const start = async (transport: ManualTransport): Promise<ReplicaNode> => {
    const node = new ReplicaNode(
      { cluster: k.cluster, id: 1, secretKey: k.replicaSecretKeys[1]!, dataDir: '(memory)', log: silentLogger, replica: k.options, app: new KvStore({ partitionCount: k.partitionCount }) },
      // The wall clock of the harness's batch times (PAPER_TIME_MS): its pre-prepares are within bounds.
      { storage: disk, createTransport: () => transport, onFatal: (err) => fatal.push(err), wallClockMs: () => PAPER_TIME_MS },
    );
    await node.start();
    return node;
  };

  // Incarnation 1.
  const t1 = new ManualTransport();
  await start(t1);
  const a = k.request(0, 1, cas('x', null, 'a'));
  const dA = k.digest([a]);
  t1.fromReplica(0, frame(k.prePrepare(0, 1, dA), [a]));
  await until('the PREPARE of replica 1', () => t1.signedTypes().includes('prepare'));
  t1.fromReplica(2, frame(k.commit(2, 0, 1, dA)));
  t1.fromReplica(3, frame(k.commit(3, 0, 1, dA)));
  await pause(40);
  // From here on the disk never completes a write.
  disk.hold = true;
  t1.fromReplica(3, frame(k.prepare(3, 0, 1, dA)));
  await until('the turn that prepares, commits and executes seq 1 to reach the disk', () => disk.heldWrites > 0);
  await pause(60);
  assert.deepEqual(t1.signedTypes().filter((t) => t === 'commit'), [], 'the own COMMIT stays in until its write is durable');
  assert.deepEqual(resultsFor(t1, 0, 1), [], 'no reply leaves before the write of the COMMIT it counted');
  disk.crash();
  await until('the crash to stop the replica', () => fatal.length > 0);

  // Incarnation 2: the same disk, without the lost write.
  disk.hold = false;
  const t2 = new ManualTransport();
  const node2 = await start(t2);
  t2.fromReplica(0, frame(k.viewChange(0, 1)));
  t2.fromReplica(3, frame(k.viewChange(3, 1))); // replica 3 hides what it prepared
  await until('the NEW-VIEW of view 1', () => t2.signedTypes().includes('newview'));
  assert.equal(node2.status().view, 1);
  // A new request takes seq 1 in view 1.
  const b = k.request(1, 1, put('x', 'b'));
  t2.fromClient(1, frame(b));
  await until('the pre-prepare of B', () => t2.signedTypes().includes('preprepare'));
  const dB = k.digest([b]);
  for (const r of [0, 3]) t2.fromReplica(r, frame(k.prepare(r, 1, 1, dB)));
  for (const r of [0, 3]) t2.fromReplica(r, frame(k.commit(r, 1, 1, dB)));
  await until('the reply to B', () => resultsFor(t2, 1, 1).length > 0);
  // The first request executes now, at seq 2, on a state where x = 'b'.
  t2.fromClient(0, frame(a));
  await until('the pre-prepare of A at seq 2', () => t2.signedTypes().filter((t) => t === 'preprepare').length >= 2);
  for (const r of [0, 3]) t2.fromReplica(r, frame(k.prepare(r, 1, 2, dA)));
  for (const r of [0, 3]) t2.fromReplica(r, frame(k.commit(r, 1, 2, dA)));
  await until('the reply to A', () => resultsFor(t2, 0, 1).length > 0);
  assert.deepEqual(resultsFor(t2, 0, 1)[0], { type: 'cas', swapped: false, current: 'b' });

  const all = [...resultsFor(t1, 0, 1), ...resultsFor(t2, 0, 1)];
  const distinct = new Set(all.map((r) => JSON.stringify(r)));
  assert.equal(distinct.size, 1, `replica 1 signed ${distinct.size} different results for client 0, timestamp 1: ${[...distinct].join(' and ')}`);
  await node2.stop();
});
