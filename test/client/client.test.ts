/**
 * The client SDK against four in-process replicas (real transport and signatures): typed KV
 * results and errors, serialized requests in call order, both signature backends, keys and
 * clusters from files or objects, the FAIL as soon as no result can reach f+1, timeouts,
 * close(), and following the primary after a view change.
 */
import { forgeReply } from '../../src/sim/forge.ts';
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeResult } from '../../src/app/kv-ops.ts';
import { PbftClient } from '../../src/client/client.ts';
import { ClientClosedError, ClientConfigError, ConnectError, KvError, QuorumFailure, RequestTooLargeError, TimeoutError } from '../../src/client/errors.ts';
import { generateKeyring, CLUSTER_FILE, keyFileName } from '../../src/crypto/keyring.ts';
import { randomSecretKey } from '../../src/crypto/noble.ts';
import { createNodeSigner } from '../../src/crypto/node.ts';
import { InProcessCluster } from '../node/inprocess-cluster.ts';
import { freePorts } from '../../src/transport/free-ports.ts';

let ipc: InProcessCluster;
const clients: PbftClient[] = [];

async function connect(id: number, options: Partial<Parameters<typeof PbftClient.connect>[0]> = {}): Promise<PbftClient> {
  const c = await PbftClient.connect({ cluster: ipc.cluster, key: ipc.clientKey(id), timeoutMs: 30_000, ...options });
  clients.push(c);
  return c;
}

/** Makes replica `id` sign a wrong result in every reply (null: honest again). */
function lie(id: number, tag: string | null): void {
  const hooks = ipc.replicas[id]!.hooks;
  if (tag === null) {
    delete hooks.mutateReply;
    return;
  }
  const signer = createNodeSigner(ipc.replicaSecrets[id]!);
  hooks.mutateReply = (_client, frame) =>
    forgeReply(frame, ipc.cluster.clusterId, (d) => signer.sign(d), encodeResult({ type: 'get', value: `${tag}` })) ?? frame;
}

before(async () => {
  ipc = await InProcessCluster.create({ replica: { viewChangeTimeoutTicks: 50 }, clients: 5 });
});

after(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await ipc?.stop();
});

test('put, get, del and cas return decoded results; a store error is a typed KvError', async () => {
  const c = await connect(0);
  await c.put('a', '1');
  assert.equal(await c.get('a'), '1');
  assert.equal(await c.get('missing'), null);
  await c.put('bytes', Uint8Array.of(1, 2, 3));
  assert.deepEqual(await c.get('bytes'), Uint8Array.of(1, 2, 3));
  assert.deepEqual(await c.cas('a', '2', '3'), { swapped: false, current: '1' });
  assert.deepEqual(await c.cas('a', '1', '3'), { swapped: true, current: '3' });
  assert.deepEqual(await c.cas('new', null, 'x'), { swapped: true, current: 'x' });
  assert.equal(await c.del('a'), true);
  assert.equal(await c.del('a'), false);
  await assert.rejects(c.put('', 'v'), (err: unknown) => err instanceof KvError && err.code === 'KEY_EMPTY');
});

test('putMany writes every pair in one request, all or none; bad input is a clear error and sends nothing', async () => {
  const c = await connect(0);
  const executed = (): number[] => ipc.replicas.map((r) => r.node.status().counters.requestsExecuted);
  const before = executed();
  await c.putMany([
    ['pm/a', 'one'],
    ['pm/b', Uint8Array.of(7, 8)],
    ['pm/a', 'two'],
  ]);
  assert.equal(await c.get('pm/a'), 'two', 'pairs apply in order');
  assert.deepEqual(await c.get('pm/b'), Uint8Array.of(7, 8));
  // One request for the three pairs (the gets are read-only: not executed).
  for (let i = 0; i < 4; i++) assert.ok(executed()[i]! - before[i]! <= 1, `replica ${i}: at most the one put-many executed`);
  assert.ok(executed().some((n, i) => n - before[i]! === 1));
  // A pair over a store limit fails the whole operation: the pair before it is not written.
  await assert.rejects(c.putMany([['pm/c', 'x'], ['', 'y']]), (err: unknown) => err instanceof KvError && err.code === 'KEY_EMPTY');
  assert.equal(await c.get('pm/c'), null);
  // Malformed input never leaves the client.
  const sent = executed();
  await assert.rejects(c.putMany([]), TypeError);
  await assert.rejects(c.putMany(Array.from({ length: 4097 }, (_, i) => [`k${i}`, 'v'] as [string, string])), TypeError);
  await assert.rejects(c.putMany([['k', 1 as unknown as string]]), TypeError);
  await assert.rejects(c.putMany(['k' as unknown as [string, string]]), /put-many pair must be \[key, value\]/);
  await assert.rejects(c.putMany(Array.from({ length: 3 }, (_, i) => [`big${i}`, new Uint8Array(512 * 1024)] as [string, Uint8Array])), RequestTooLargeError);
  await c.put('pm/after', '1');
  assert.equal(await c.get('pm/after'), '1');
  assert.ok(executed().every((n, i) => n - sent[i]! <= 1), 'only the put after them executed');
});

test('concurrent calls on one client are serialized in call order', async () => {
  const c = await connect(1);
  const results = await Promise.all(Array.from({ length: 20 }, (_, i) => c.cas('counter', i === 0 ? null : String(i - 1), String(i))));
  // Each cas expects the value the previous call wrote: all swap only if they ran in call order.
  assert.deepEqual(
    results.map((r) => r.swapped),
    results.map(() => true),
  );
  assert.equal(await c.get('counter'), '19');
});

test("the portable signer ('noble') talks to the same replicas", async () => {
  const c = await connect(2, { crypto: 'noble' });
  await c.put('noble', 'yes');
  assert.equal(await c.get('noble'), 'yes');
});

test("every signer ('sodium', 'node') talks to the same replicas; an unknown crypto name is refused", async () => {
  for (const [id, crypto] of [[3, 'sodium'], [4, 'node']] as const) {
    const c = await connect(id, { crypto });
    await c.put(`signed-by-${crypto}`, 'yes');
    assert.equal(await c.get(`signed-by-${crypto}`), 'yes');
  }
  await assert.rejects(
    PbftClient.connect({ cluster: ipc.cluster, key: ipc.clientKey(0), crypto: 'openssl' as never }),
    (err: unknown) => err instanceof ClientConfigError && /crypto must be 'auto', 'sodium', 'node' or 'noble', got "openssl"/.test(err.message),
  );
  // A PBFT_CRYPTO naming no backend is an error too, not a silent fall back to @noble.
  process.env.PBFT_CRYPTO = 'fast';
  try {
    await assert.rejects(
      PbftClient.connect({ cluster: ipc.cluster, key: ipc.clientKey(0) }),
      (err: unknown) => err instanceof ClientConfigError && /PBFT_CRYPTO \/ crypto must be one of auto, sodium, node, got "fast"/.test(err.message),
    );
  } finally {
    delete process.env.PBFT_CRYPTO;
  }
});

test('cluster and key from files; a key that is not in the keyring is refused', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pbft-client-'));
  try {
    // A keyring on disk for another cluster: its key does not belong to ipc's cluster.
    generateKeyring({ replicas: 4, clients: 1, out: join(dir, 'keys'), basePort: 1 });
    await assert.rejects(
      PbftClient.connect({ cluster: ipc.cluster, key: join(dir, 'keys', keyFileName('client', 0)) }),
      (err: unknown) => err instanceof ClientConfigError && err.code === 'BAD_CONFIG',
    );
    await assert.rejects(
      PbftClient.connect({ cluster: ipc.cluster, key: { id: 0, secretKey: randomSecretKey() } }),
      (err: unknown) => err instanceof ClientConfigError && /does not match/.test(err.message),
    );
    await assert.rejects(
      PbftClient.connect({ cluster: ipc.cluster, key: { id: 99, secretKey: randomSecretKey() } }),
      (err: unknown) => err instanceof ClientConfigError && /not in the keyring/.test(err.message),
    );
    await assert.rejects(
      PbftClient.connect({ cluster: join(dir, 'nowhere', CLUSTER_FILE), key: ipc.clientKey(0) }),
      (err: unknown) => (err as { code?: string }).code === 'NOT_FOUND',
    );
    // A cluster nobody listens on: connect gives up with CONNECT_FAILED.
    const ports = await freePorts(4);
    const { cluster } = generateKeyring({ replicas: 4, clients: 1, out: join(dir, 'dead'), basePort: ports[0]! });
    const dead = { ...cluster, replicas: cluster.replicas.map((r, i) => ({ ...r, url: `ws://127.0.0.1:${ports[i]}` })) };
    await assert.rejects(
      PbftClient.connect({ cluster: dead, key: join(dir, 'dead', keyFileName('client', 0)), connectTimeoutMs: 300 }),
      (err: unknown) => err instanceof ConnectError && err.code === 'CONNECT_FAILED',
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('one lying replica: correct result and a faulty-reply event; three liars: QuorumFailure at once (no timeout)', async () => {
  const c = await connect(0, { timeoutMs: 120_000 });
  const seen: number[] = [];
  c.on('faulty-reply', (e) => seen.push(e.replica));
  lie(2, 'one liar');
  try {
    await c.put('q', 'truth');
    assert.equal(await c.get('q'), 'truth');
    const deadline = Date.now() + 20_000;
    while (seen.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.ok(seen.length > 0 && seen.every((r) => r === 2), `evidence against replica 2 only: ${seen.join(',')}`);

    lie(1, 'liar one');
    lie(3, 'liar three');
    // With a 120 s deadline a TimeoutError cannot be what ends this call: the FAIL comes first.
    await assert.rejects(c.get('q'), (err: unknown) => {
      assert.ok(err instanceof QuorumFailure, String(err));
      assert.equal(err.replies.length, 4);
      return true;
    });
  } finally {
    for (const id of [1, 2, 3]) lie(id, null);
  }
  assert.equal(await c.get('q'), 'truth');
});

test("requests name f+1 backups as repliers; one that does not answer costs a retransmission and is left out; 'all' names nobody", async () => {
  // A long retransmission delay: on a loaded machine no request here is retransmitted for slowness.
  const c = await connect(3, { retransmitMs: 2_000 });
  // A reply leaves once f+1 replicas executed the request; the fourth may execute it (and count it)
  // later on a loaded machine: counters are read once every replica executed as far as any has.
  const left = async (): Promise<number[]> => {
    const deadline = Date.now() + 20_000;
    for (;;) {
      const executed = ipc.replicas.map((r) => r.node.status().lastExecuted);
      if (executed.every((n) => n === executed[0])) break;
      assert.ok(Date.now() < deadline, `replicas did not catch up: last executed ${executed.join(', ')}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    return ipc.replicas.map((r) => r.node.status().counters.repliesLeftToOthers);
  };
  const sum = (a: number[], b: number[]): number => a.reduce((t, x, i) => t + x - b[i]!, 0);
  await c.put('rp/warm', '0');
  let before = await left();
  for (let i = 0; i < 12; i++) await c.put(`rp/${i}`, String(i));
  // Each put executed at the four replicas; two of them left the reply to the named two.
  assert.equal(sum(await left(), before), 2 * 12);
  assert.deepEqual(c.replyStats, { mode: 'quorum', retransmitted: 0, leftOut: [] });
  // A backup that stops answering this client (its replies are swallowed; it still votes).
  const mute = [0, 1, 2, 3].find((id) => id !== c.primary)!;
  ipc.replicas[mute]!.hooks.mutateReply = (client, frame) => (client === 3 ? new Uint8Array([0]) : frame);
  try {
    for (let i = 0; i < 12; i++) await c.put(`rp/m${i}`, String(i));
    const stats = c.replyStats;
    assert.equal(stats.retransmitted, 1, 'one retransmission: then the mute replica is left out');
    assert.deepEqual(stats.leftOut, [mute]);
    assert.equal(await c.get('rp/m11'), '11');
  } finally {
    delete ipc.replicas[mute]!.hooks.mutateReply;
  }
  const all = await connect(4, { replies: 'all' });
  before = await left();
  for (let i = 0; i < 5; i++) await all.put(`rp/a${i}`, String(i));
  assert.equal(sum(await left(), before), 0, 'every replica replied');
  assert.equal(all.replyStats.mode, 'all');
  await assert.rejects(connect(4, { replies: 'some' as never }), (err: unknown) => err instanceof ClientConfigError && /replies must be one of quorum, all, got some/.test(err.message));
});

test('close() fails the outstanding and queued calls with ClientClosedError', async () => {
  const c = await connect(1, { timeoutMs: 60_000 });
  // Replica 0 (the primary) and replica 1 stay honest but nothing can commit without 3 of 4:
  // make the calls wait by swallowing the replies of 3 replicas.
  for (const id of [1, 2, 3]) ipc.replicas[id]!.hooks.mutateReply = () => new Uint8Array([0]);
  try {
    const first = assert.rejects(c.put('closing', '1'), (err: unknown) => err instanceof ClientClosedError && err.code === 'CLIENT_CLOSED');
    const second = assert.rejects(c.put('closing', '2'), ClientClosedError);
    await new Promise((r) => setTimeout(r, 50));
    await c.close();
    await first;
    await second;
    await assert.rejects(c.get('closing'), ClientClosedError);
  } finally {
    for (const id of [1, 2, 3]) delete ipc.replicas[id]!.hooks.mutateReply;
  }
});

test('no quorum of replies before the deadline: TimeoutError carrying the replies seen', async () => {
  const c = await connect(2, { timeoutMs: 500, retransmitMs: 100 });
  for (const id of [1, 2, 3]) ipc.replicas[id]!.hooks.mutateReply = () => new Uint8Array([0]);
  try {
    await assert.rejects(c.get('a'), (err: unknown) => {
      assert.ok(err instanceof TimeoutError, String(err));
      // The outcome is unknown, and both the code and the message say so.
      assert.equal(err.code, 'TIMEOUT_OUTCOME_UNKNOWN');
      assert.match(err.message, /^timed out after 500 ms .*the operation may still take effect/);
      assert.ok(err.replies.length <= 1);
      return true;
    });
  } finally {
    for (const id of [1, 2, 3]) delete ipc.replicas[id]!.hooks.mutateReply;
  }
});

test('after the primary fails, the client follows the new view', async () => {
  const c = await connect(0, { retransmitMs: 100 });
  await c.put('before', 'view change');
  // The primary the client knows (0, unless the loaded machine already changed views: the view-change
  // timeout here is short) is stopped.
  const stopped = c.primary;
  const viewBefore = c.view;
  await ipc.replicas[stopped]!.node.stop();
  await c.put('after', 'view change');
  assert.equal(await c.get('before'), 'view change');
  assert.ok(c.view > viewBefore, 'the client learned a later view from the replies');
  assert.notEqual(c.primary, stopped);
  const live = [0, 1, 2, 3].find((i) => i !== stopped)!;
  const status = (await (await fetch(`http://127.0.0.1:${ipc.ports[live]}/status`)).json()) as { view: number; primary: number };
  assert.notEqual(status.primary, stopped);
  // The replicas may have moved on again since the last reply; the client is never ahead of them.
  assert.ok(c.view <= status.view, `client view ${c.view}, replica ${live} in view ${status.view}`);
  if (c.view === status.view) assert.equal(c.primary, status.primary);
});
