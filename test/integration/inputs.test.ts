/**
 * Hostile inputs against real replica processes: each is rejected, counted where an operator can
 * see it (GET /status: `rejected` from the core, `transport.handshakesRejected` and
 * `transport.framesDropped` from the transport; GET /metrics), and the cluster keeps serving. A
 * client that sends what only a faulty client sends (a frame that does not decode or is too large, a
 * request whose signature does not verify) is cut off (src/node/cutoff.ts): each such test sends
 * from its own client identity and checks that the replicas closed it and refuse it.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { encodeOp } from '../../src/app/kv-ops.ts';
import type { PbftClient } from '../../src/client/client.ts';
import { ReplyCollector } from '../../src/client/collector.ts';
import { RequestSigner } from '../../src/client/request.ts';
import type { ReplyMsg, Signed } from '../../src/core/messages.ts';
import { decodeFrame, encodeSignedFrame } from '../../src/codec/messages.ts';
import { keyFileName, loadPrivateKey } from '../../src/crypto/keyring.ts';
import { createNodeSigner, NodeVerifier } from '../../src/crypto/node.ts';
import { randomSecretKey } from '../../src/crypto/noble.ts';
import type { Signer } from '../../src/crypto/types.ts';
import type { NodeStatus } from '../../src/node/replica-node.ts';
import type { RejectReason } from '../../src/core/rejections.ts';
import { createClientTransport, type ClientTransport } from '../../src/transport/client-transport.ts';
import {
  decodeHandshakeMessage,
  dialerSignedBytes,
  encodeHandshakeMessage,
  randomNonce,
  TRANSPORT_CLOSE_CODES,
} from '../../src/transport/handshake.ts';
import { TestCluster, waitFor } from './helpers.ts';
import { join } from 'node:path';

const CORE_FRAME_BYTES_MAX = 256 * 1024;
const TRANSPORT_FRAME_BYTES_MAX = 1024 * 1024;
const REPLICAS = [0, 1, 2, 3];

let tc: TestCluster;
let client: PbftClient;
/** An authenticated connection of client 3 that sends whatever a test wants (and never misbehaves: it is not cut off). */
let raw: ClientTransport;
let rawSigner: Signer;
const replies: Array<{ from: number; reply: Signed<ReplyMsg> }> = [];

before(async () => {
  tc = await TestCluster.create({
    name: 'inputs',
    clients: 8,
    node: { replica: { frameBytesMax: CORE_FRAME_BYTES_MAX }, transportLimits: { frameBytesMax: TRANSPORT_FRAME_BYTES_MAX } },
  });
  await tc.startAll();
  client = await tc.client(0);
  rawSigner = createNodeSigner(loadPrivateKey(join(tc.keysDir, keyFileName('client', 3))).secretKey);
  raw = connectAs(3, rawSigner);
  raw.onFrame((from, frame) => {
    const d = decodeFrame(frame);
    if (d.ok && d.value.kind === 'signed' && d.value.signed.msg.type === 'reply') replies.push({ from, reply: d.value.signed as Signed<ReplyMsg> });
  });
  await raw.waitConnected(4, 30_000);
});

after(async () => {
  await raw?.close();
  await tc?.destroy();
});

function connectAs(clientId: number, signer: Signer): ClientTransport {
  return createClientTransport({ cluster: tc.cluster, clientId, signer, verifier: new NodeVerifier() });
}

const signerOf = (clientId: number): Signer => createNodeSigner(loadPrivateKey(join(tc.keysDir, keyFileName('client', clientId))).secretKey);

/** A connection of `clientId` to every replica, for a test that sends what only a faulty client sends. */
async function faultyClient(clientId: number): Promise<ClientTransport> {
  const c = connectAs(clientId, signerOf(clientId));
  await c.waitConnected(4, 30_000);
  return c;
}

/** Every replica cut the client off: it counted the cut-off, and the client's handshake is refused. */
async function expectCutOff(before: NodeStatus[], clientId: number): Promise<void> {
  await waitFor(async () => {
    const now = await statuses();
    return now.every((s, i) => (s.transport.clientsCutOff ?? 0) > (before[i]!.transport.clientsCutOff ?? 0));
  }, `every replica to cut client ${clientId} off`);
  assert.equal(
    await handshake(tc.ports[0]!, { clusterId: tc.cluster.clusterId, kind: 'client', id: clientId, signer: signerOf(clientId), serverId: 0 }),
    TRANSPORT_CLOSE_CODES['unknown-principal'],
    'a cut-off client is refused at the handshake, with its own valid key',
  );
}

async function statuses(): Promise<NodeStatus[]> {
  return Promise.all(REPLICAS.map((id) => tc.status(id)));
}

const rejected = (s: NodeStatus, reason: RejectReason): number => s.rejected[reason] ?? 0;

/**
 * The statuses once every replica has executed everything ordered so far. A result is accepted on
 * f+1 matching replies, so when a request returns the other replicas may still be executing it.
 */
async function executedEverywhere(): Promise<NodeStatus[]> {
  return waitFor(async () => {
    const now = await statuses();
    const top = Math.max(...now.map((s) => s.lastExecuted));
    return now.every((s) => s.lastExecuted === top) ? now : undefined;
  }, 'every replica to execute what was ordered so far');
}

/** Waits until every replica counted one more rejection for `reason` than in `before`. */
async function expectRejectedEverywhere(before: NodeStatus[], reason: RejectReason): Promise<void> {
  await waitFor(async () => {
    const now = await statuses();
    return now.every((s, i) => rejected(s, reason) >= rejected(before[i]!, reason) + 1);
  }, `every replica to count a rejected '${reason}'`);
}

async function stillServing(tag: string): Promise<void> {
  await client.put(`after-${tag}`, tag);
  assert.equal(await client.get(`after-${tag}`), tag, `the cluster keeps serving after ${tag}`);
}

/** Runs the dialer side of the handshake by hand; resolves with the replica's close code, or 0 on WELCOME. */
function handshake(port: number, auth: { clusterId: string; kind: 'client' | 'replica'; id: number; signer: Signer; serverId: number }): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}`, { perMessageDeflate: false });
    let welcomed = false;
    ws.on('error', reject);
    ws.on('close', (code) => resolve(welcomed ? 0 : code));
    ws.once('message', (data: Buffer) => {
      const hello = decodeHandshakeMessage(new Uint8Array(data));
      if (!hello.ok || hello.value.type !== 'hello') return reject(new Error('expected HELLO'));
      const nonce = randomNonce();
      const sig = auth.signer.sign(dialerSignedBytes(auth.clusterId, hello.value.nonce, nonce, auth.kind, auth.id, auth.serverId));
      ws.send(encodeHandshakeMessage({ type: 'auth', clusterId: auth.clusterId, kind: auth.kind, id: auth.id, nonce, sig }));
      ws.once('message', () => {
        welcomed = true;
        ws.close();
      });
    });
  });
}

let timestamp = Date.now() * 1000;

/** Broadcasts a signed request frame of client 3 and waits for f+1 matching replies. */
async function execute(signer: RequestSigner, ts: number, frame: Uint8Array): Promise<Uint8Array> {
  const collector = new ReplyCollector(4, 1, 3, ts, (r) => signer.verifyReply(r));
  raw.broadcast(frame);
  return waitFor(() => {
    for (const { from, reply } of replies.splice(0)) {
      const outcome = collector.add(reply, from);
      if (outcome.kind === 'accepted') return outcome.result;
    }
    return undefined;
  }, `request ${ts} to execute`);
}

test('a malformed frame is rejected and counted by every replica, and its client is cut off', async () => {
  const before = await statuses();
  const faulty = await faultyClient(4);
  assert.equal(faulty.broadcast(Uint8Array.of(0xde, 0xad, 0xbe, 0xef, 0x00, 0xff)), 4);
  await expectRejectedEverywhere(before, 'malformed');
  await expectCutOff(before, 4);
  await faulty.close();
  const metrics = await tc.metrics(0);
  assert.match(metrics, /^pbft_rejected_messages_total\{reason="malformed"\} [1-9]/m);
  await stillServing('malformed');
});

test('a frame above the core limit is rejected before decoding; one above the transport limit is dropped with its connection', async () => {
  const before = await statuses();
  const faulty = await faultyClient(5);
  assert.equal(faulty.broadcast(new Uint8Array(CORE_FRAME_BYTES_MAX + 1024)), 4);
  await expectRejectedEverywhere(before, 'oversized-frame');
  await expectCutOff(before, 5);
  await faulty.close();

  // Above the WebSocket maxPayload: the replica closes that connection (1009) and counts the frame.
  const big = connectAs(2, signerOf(2));
  try {
    await big.waitConnected(4, 30_000);
    const dropped0 = before[0]!.transport.framesDropped;
    assert.ok(big.send(0, new Uint8Array(TRANSPORT_FRAME_BYTES_MAX + 1024)));
    await waitFor(async () => (await tc.status(0)).transport.framesDropped > dropped0, 'replica 0 to drop the frame');
  } finally {
    await big.close();
  }
  await stillServing('oversized');
});

test('a wrong cluster id is refused at the handshake and in a request signature', async () => {
  const before = await statuses();
  const code = await handshake(tc.ports[0]!, { clusterId: 'some-other-cluster', kind: 'client', id: 3, signer: rawSigner, serverId: 0 });
  assert.equal(code, TRANSPORT_CLOSE_CODES['cluster-mismatch']);
  const after = await tc.status(0);
  assert.equal(after.transport.handshakesRejected['cluster-mismatch'], (before[0]!.transport.handshakesRejected['cluster-mismatch'] ?? 0) + 1);

  // A request signed for another cluster (its domain tag names the cluster) by client 6's own key.
  const faulty = await faultyClient(6);
  const otherCluster = new RequestSigner({ ...tc.cluster, clusterId: 'some-other-cluster' }, 6, signerOf(6), new NodeVerifier());
  faulty.broadcast(encodeSignedFrame(otherCluster.sign(++timestamp, encodeOp({ type: 'put', key: 'x', value: 'evil' }))));
  await expectRejectedEverywhere(before, 'bad-request-signature');
  await expectCutOff(before, 6);
  await faulty.close();
  await stillServing('wrong-cluster');
});

test('a valid signature by a key outside the keyring is refused at the handshake and in a request', async () => {
  const foreign = createNodeSigner(randomSecretKey());
  const before = await statuses();
  const hs = before[0]!.transport.handshakesRejected;
  // Claiming a known client with a foreign key: the signature does not verify under the keyring's key.
  assert.equal(await handshake(tc.ports[0]!, { clusterId: tc.cluster.clusterId, kind: 'client', id: 3, signer: foreign, serverId: 0 }), TRANSPORT_CLOSE_CODES['bad-signature']);
  // Claiming an id that is not in the keyring at all.
  assert.equal(await handshake(tc.ports[0]!, { clusterId: tc.cluster.clusterId, kind: 'client', id: 77, signer: foreign, serverId: 0 }), TRANSPORT_CLOSE_CODES['unknown-principal']);
  // And as a replica.
  assert.equal(await handshake(tc.ports[0]!, { clusterId: tc.cluster.clusterId, kind: 'replica', id: 1, signer: foreign, serverId: 0 }), TRANSPORT_CLOSE_CODES['bad-signature']);
  const after = await tc.status(0);
  assert.equal(after.transport.handshakesRejected['bad-signature'], (hs['bad-signature'] ?? 0) + 2);
  assert.equal(after.transport.handshakesRejected['unknown-principal'], (hs['unknown-principal'] ?? 0) + 1);

  // A request of client 7 validly signed by a foreign key, sent on client 7's authenticated connection.
  const faulty = await faultyClient(7);
  const forger = new RequestSigner(tc.cluster, 7, foreign, new NodeVerifier());
  faulty.broadcast(encodeSignedFrame(forger.sign(++timestamp, encodeOp({ type: 'put', key: 'x', value: 'evil' }))));
  await expectRejectedEverywhere(before, 'bad-request-signature');
  await expectCutOff(before, 7);
  await faulty.close();
  assert.notEqual(await client.get('x'), 'evil');
  await stillServing('foreign-key');
});

test('a replayed old request is rejected as stale and not executed again', async () => {
  const signer = new RequestSigner(tc.cluster, 3, rawSigner, new NodeVerifier());
  const t1 = ++timestamp;
  const old = encodeSignedFrame(signer.sign(t1, encodeOp({ type: 'put', key: 'replayed', value: 'first' })));
  await execute(signer, t1, old);
  const t2 = ++timestamp;
  await execute(signer, t2, encodeSignedFrame(signer.sign(t2, encodeOp({ type: 'put', key: 'replayed', value: 'second' }))));

  // Counted once every replica executed t2 (it returned on f+1 replies: a replica still executing it
  // would count it between the two snapshots, which is not the replay being executed).
  const before = await executedEverywhere();
  assert.equal(raw.broadcast(old), 4);
  await expectRejectedEverywhere(before, 'stale-request');
  const after = await statuses();
  for (let i = 0; i < 4; i++) {
    assert.equal(after[i]!.counters.requestsExecuted, before[i]!.counters.requestsExecuted, `replica ${i} did not execute the replay`);
  }
  assert.equal(await client.get('replayed'), 'second');
  await stillServing('replay');
});
