import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import WebSocket from 'ws';
import type { ClusterConfig } from '../../src/core/cluster.ts';
import type { Signer } from '../../src/crypto/types.ts';
import { createNodeSigner, NodeVerifier } from '../../src/crypto/node.ts';
import { createNobleSigner, NobleVerifier, randomSecretKey } from '../../src/crypto/noble.ts';
import {
  closeReasonOfCode,
  decodeHandshakeMessage,
  dialerAnswerHello,
  dialerCheckWelcome,
  dialerSignedBytes,
  domainTag,
  encodeHandshakeMessage,
  keyringLookup,
  randomNonce,
  serverAcceptAuth,
  serverHello,
  TRANSPORT_CLOSE_CODES,
  type DialerHandshakeContext,
  type PrincipalKind,
  type ServerHandshakeContext,
} from '../../src/transport/handshake.ts';
import { createReplicaTransport } from '../../src/transport/replica-transport.ts';
import { createClientTransport, type ClientTransport } from '../../src/transport/client-transport.ts';
import { TransportError, type Principal, type ReplicaTransport, type TransportLimits } from '../../src/transport/types.ts';
import { freePorts } from '../../src/transport/free-ports.ts';

// ---------------------------------------------------------------------------------------------
// Helpers

/** Generous guard for anything asynchronous: the 2-core CI machine may be busy. */
const WAIT_MS = 20_000;

async function waitFor(cond: () => boolean, what: string, timeoutMs = WAIT_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

interface TestCluster {
  cluster: ClusterConfig;
  replicaSecrets: Uint8Array[];
  clientSecrets: Map<number, Uint8Array>;
  ports: number[];
}

async function makeCluster(clusterId: string, clientIds: number[] = [0, 1]): Promise<TestCluster> {
  const ports = await freePorts(4);
  const replicaSecrets = ports.map(() => randomSecretKey());
  const clientSecrets = new Map<number, Uint8Array>(clientIds.map((id) => [id, randomSecretKey()]));
  const cluster: ClusterConfig = {
    clusterId,
    f: 1,
    replicas: ports.map((port, id) => ({
      id,
      url: `ws://127.0.0.1:${port}`,
      publicKey: createNobleSigner(replicaSecrets[id]!).publicKey,
    })),
    clients: [...clientSecrets].map(([id, secret]) => ({ id, publicKey: createNobleSigner(secret).publicKey })),
  };
  return { cluster, replicaSecrets, clientSecrets, ports };
}

interface Received {
  from: Principal;
  frame: Uint8Array;
}

function newReplica(
  tc: TestCluster,
  id: number,
  limits: Partial<TransportLimits>,
): { transport: ReplicaTransport; received: Received[] } {
  const transport = createReplicaTransport({
    cluster: tc.cluster,
    selfId: id,
    signer: createNodeSigner(tc.replicaSecrets[id]!),
    verifier: new NodeVerifier(),
    limits,
  });
  const received: Received[] = [];
  transport.onFrame((from, frame) => received.push({ from, frame: new Uint8Array(frame) }));
  return { transport, received };
}

const text = new TextEncoder();
const untext = new TextDecoder();
const frameOf = (s: string): Uint8Array => text.encode(s);
const textOf = (b: Uint8Array): string => untext.decode(b);

/** A raw `ws` connection that records every message and its close. */
interface RawConn {
  ws: WebSocket;
  messages: Uint8Array[];
  closed: Promise<{ code: number; reason: string }>;
}

function rawConnect(url: string): Promise<RawConn> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    const messages: Uint8Array[] = [];
    const closed = new Promise<{ code: number; reason: string }>((resolveClosed) => {
      ws.on('close', (code, reason) => resolveClosed({ code, reason: reason.toString() }));
    });
    ws.on('message', (data: Buffer) => messages.push(new Uint8Array(data)));
    ws.on('error', () => {}); // the close event carries what the tests check
    ws.once('open', () => resolve({ ws, messages, closed }));
    ws.once('unexpected-response', () => reject(new Error('upgrade refused')));
    ws.once('close', () => reject(new Error('closed before open')));
  });
}

/**
 * Runs the dialer side by hand, signing with any key for any claimed principal and cluster id.
 * Returns the connection after sending AUTH.
 */
async function rawHandshake(
  url: string,
  claim: { clusterId: string; kind: PrincipalKind; id: number; signer: Signer; serverId: number },
): Promise<RawConn> {
  const conn = await rawConnect(url);
  await waitFor(() => conn.messages.length >= 1, 'hello');
  const hello = decodeHandshakeMessage(conn.messages[0]!);
  assert.ok(hello.ok && hello.value.type === 'hello');
  const nonce = randomNonce();
  const sig = claim.signer.sign(dialerSignedBytes(claim.clusterId, hello.value.nonce, nonce, claim.kind, claim.id, claim.serverId));
  conn.ws.send(encodeHandshakeMessage({ type: 'auth', clusterId: claim.clusterId, kind: claim.kind, id: claim.id, nonce, sig }));
  return conn;
}

async function withTimeout<T>(p: Promise<T>, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), WAIT_MS);
      }),
    ]);
  } finally {
    if (timer !== undefined) clearTimeout(timer);
  }
}

function rejected(t: ReplicaTransport, reason: string): number {
  return t.stats().handshakesRejected[reason] ?? 0;
}

// ---------------------------------------------------------------------------------------------
// Handshake functions (no sockets)

describe('handshake messages', () => {
  const secrets = [randomSecretKey(), randomSecretKey()];
  const cluster: ClusterConfig = {
    clusterId: 'hs-test',
    f: 0,
    replicas: [{ id: 0, url: 'ws://127.0.0.1:1', publicKey: createNobleSigner(secrets[0]!).publicKey }],
    clients: [{ id: 7, publicKey: createNobleSigner(secrets[1]!).publicKey }],
  };
  const server: ServerHandshakeContext = {
    clusterId: 'hs-test',
    selfId: 0,
    signer: createNodeSigner(secrets[0]!),
    verifier: new NodeVerifier(),
    publicKeyOf: keyringLookup(cluster),
  };
  const dialer: DialerHandshakeContext = {
    clusterId: 'hs-test',
    serverId: 0,
    serverPublicKey: cluster.replicas[0]!.publicKey,
    kind: 'client',
    id: 7,
    signer: createNobleSigner(secrets[1]!),
    verifier: new NobleVerifier(),
  };

  test('domain tag is pbft/1/<purpose>/<cluster> followed by a 0 byte', () => {
    assert.deepEqual(domainTag('handshake-dialer', 'c1'), new Uint8Array([...text.encode('pbft/1/handshake-dialer/c1'), 0]));
  });

  test('a full handshake between the pure functions authenticates the client', () => {
    const serverNonce = randomNonce();
    const answer = dialerAnswerHello(dialer, randomNonce(), serverHello(server, serverNonce));
    assert.ok(answer.ok);
    const accepted = serverAcceptAuth(server, serverNonce, answer.value.auth);
    assert.ok(accepted.ok);
    assert.deepEqual(accepted.value.principal, { kind: 'client', id: 7 });
    assert.ok(dialerCheckWelcome(dialer, answer.value.pending, accepted.value.welcome).ok);
    // An AUTH answered to one connection's nonce does not verify against another's.
    const other = serverAcceptAuth(server, randomNonce(), answer.value.auth);
    assert.ok(!other.ok && other.reason === 'bad-signature');
  });

  test('decoding never throws and names a reason', () => {
    const inputs = [
      new Uint8Array(0),
      new Uint8Array([0xff, 0x00, 0x13]),
      new Uint8Array(5000),
      encodeHandshakeMessage({ type: 'welcome', sig: new Uint8Array(64) }).subarray(0, 10),
      text.encode('["hello"]'),
    ];
    for (const input of inputs) {
      const r = decodeHandshakeMessage(input);
      assert.equal(r.ok, false);
      assert.ok(!r.ok && r.reason === 'malformed');
    }
  });

  test('dialer refuses a hello from the wrong cluster, replica or version', () => {
    const hello = (clusterId: string, replicaId: number, version: number): Uint8Array =>
      encodeHandshakeMessage({ type: 'hello', version, clusterId, replicaId, nonce: randomNonce() });
    const r1 = dialerAnswerHello(dialer, randomNonce(), hello('other', 0, 1));
    assert.ok(!r1.ok && r1.reason === 'cluster-mismatch');
    const r2 = dialerAnswerHello(dialer, randomNonce(), hello('hs-test', 1, 1));
    assert.ok(!r2.ok && r2.reason === 'unknown-principal');
    const r3 = dialerAnswerHello(dialer, randomNonce(), hello('hs-test', 0, 2));
    assert.ok(!r3.ok && r3.reason === 'version');
  });

  test('close codes are distinct, in 4001..4009, and map back to their reason', () => {
    const codes = Object.values(TRANSPORT_CLOSE_CODES);
    assert.equal(new Set(codes).size, codes.length);
    for (const [reason, code] of Object.entries(TRANSPORT_CLOSE_CODES)) {
      assert.ok(code >= 4001 && code <= 4009);
      assert.equal(closeReasonOfCode(code), reason);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Real WebSockets on 127.0.0.1

describe('replica and client transports', () => {
  const LIMITS: Partial<TransportLimits> = {
    frameBytesMax: 64 * 1024,
    reconnectDelayMsMin: 20,
    reconnectDelayMsMax: 200,
  };
  let tc: TestCluster;
  const replicas: Array<{ transport: ReplicaTransport; received: Received[] }> = [];
  const clients: ClientTransport[] = [];
  const raws: RawConn[] = [];

  before(async () => {
    tc = await makeCluster('main-cluster');
    for (let id = 0; id < 4; id++) replicas.push(newReplica(tc, id, LIMITS));
    await Promise.all(replicas.map((r) => r.transport.start()));
  });

  after(async () => {
    for (const raw of raws) raw.ws.terminate();
    await Promise.all(clients.map((c) => c.close()));
    await Promise.all(replicas.map((r) => r.transport.stop()));
  });

  const replica = (id: number): { transport: ReplicaTransport; received: Received[] } => replicas[id]!;

  test('every pair of replicas connects and exchanges frames in both directions', async () => {
    await waitFor(() => replicas.every((r) => r.transport.stats().replicasConnected.length === 3), 'full mesh');
    for (let i = 0; i < 4; i++) {
      assert.deepEqual(replica(i).transport.stats().replicasConnected, [0, 1, 2, 3].filter((j) => j !== i));
    }
    for (let i = 0; i < 4; i++) {
      for (let j = 0; j < 4; j++) if (i !== j) replica(i).transport.sendToReplica(j, frameOf(`from ${i} to ${j}`));
    }
    await waitFor(() => replicas.every((r) => r.received.length >= 3), 'all pair frames');
    for (let j = 0; j < 4; j++) {
      const got = replica(j).received.map((r) => ({ from: r.from, text: textOf(r.frame) }));
      const expected = [0, 1, 2, 3]
        .filter((i) => i !== j)
        .map((i) => ({ from: { kind: 'replica', id: i }, text: `from ${i} to ${j}` }));
      assert.deepEqual(
        got.sort((a, b) => a.from.id - b.from.id),
        expected,
      );
      assert.equal(replica(j).transport.stats().framesIn, 3);
      assert.equal(replica(j).transport.stats().framesOut, 3);
      assert.equal(replica(j).transport.stats().clientFramesIn, 0);
      assert.equal(replica(j).transport.stats().clientFramesOut, 0);
    }
    // Sending to itself is ignored: the shell delivers locally.
    replica(0).transport.sendToReplica(0, frameOf('self'));
    assert.equal(replica(0).transport.stats().framesOut, 3);
    for (const r of replicas) r.received.length = 0;
  });

  test('a client connects to all replicas, its frames arrive attributed to it, replies reach it', async () => {
    const client = createClientTransport({
      cluster: tc.cluster,
      clientId: 1,
      signer: createNobleSigner(tc.clientSecrets.get(1)!),
      verifier: new NobleVerifier(),
      limits: LIMITS,
    });
    clients.push(client);
    const got: Array<{ replicaId: number; text: string }> = [];
    client.onFrame((replicaId, frame) => got.push({ replicaId, text: textOf(frame) }));
    await client.waitConnected(4, WAIT_MS);
    assert.deepEqual(client.connectedReplicas(), [0, 1, 2, 3]);

    assert.equal(client.send(2, frameOf('to two')), true);
    assert.equal(client.broadcast(frameOf('to all')), 4);
    await waitFor(() => replicas.every((r) => r.received.length >= (r === replica(2) ? 2 : 1)), 'client frames');
    for (let j = 0; j < 4; j++) {
      const texts = replica(j).received.map((r) => textOf(r.frame));
      assert.deepEqual(texts, j === 2 ? ['to two', 'to all'] : ['to all']);
      for (const r of replica(j).received) assert.deepEqual(r.from, { kind: 'client', id: 1 });
    }

    await waitFor(() => replicas.every((r) => r.transport.stats().clientsConnected >= 1), 'clients registered');
    for (let j = 0; j < 4; j++) assert.equal(replica(j).transport.sendToClient(1, frameOf(`reply from ${j}`)), true);
    assert.equal(replica(0).transport.sendToClient(0, frameOf('nobody')), false); // client 0 is not connected
    assert.equal(replica(0).transport.sendToClient(99, frameOf('nobody')), false);
    await waitFor(() => got.length >= 4, 'replies');
    assert.deepEqual(
      got.sort((a, b) => a.replicaId - b.replicaId),
      [0, 1, 2, 3].map((j) => ({ replicaId: j, text: `reply from ${j}` })),
    );
    // The client's frames and the replies are counted apart from the replicas' own (the bench's frame count).
    for (let j = 0; j < 4; j++) {
      const stats = replica(j).transport.stats();
      assert.equal(stats.clientFramesIn, j === 2 ? 2 : 1);
      assert.equal(stats.clientFramesOut, 1); // the frames for clients that are not connected were not sent
      assert.equal(stats.framesIn - stats.clientFramesIn!, 3); // the previous test's replica frames
    }
    for (const r of replicas) r.received.length = 0;
  });

  test('the client transport works with an explicit WebSocket constructor', async () => {
    const client = createClientTransport({
      cluster: tc.cluster,
      clientId: 0,
      signer: createNodeSigner(tc.clientSecrets.get(0)!),
      verifier: new NodeVerifier(),
      limits: LIMITS,
      WebSocketImpl: WebSocket,
    });
    try {
      await client.waitConnected(3, WAIT_MS);
      await client.waitConnected(4, WAIT_MS);
      assert.equal(client.send(3, frameOf('explicit')), true);
      await waitFor(() => replica(3).received.length >= 1, 'frame');
      assert.deepEqual(replica(3).received[0]!.from, { kind: 'client', id: 0 });
    } finally {
      await client.close();
      for (const r of replicas) r.received.length = 0;
    }
    assert.deepEqual(client.connectedReplicas(), []);
    await assert.rejects(client.waitConnected(1, 1000), (err: unknown) => err instanceof TransportError && err.code === 'CLOSED');
  });

  test('handshake rejection: wrong cluster id', async () => {
    const t = replica(1).transport;
    const before = rejected(t, 'cluster-mismatch');
    const conn = await rawHandshake(tc.cluster.replicas[1]!.url, {
      clusterId: 'some-other-cluster',
      kind: 'client',
      id: 0,
      signer: createNobleSigner(tc.clientSecrets.get(0)!),
      serverId: 1,
    });
    raws.push(conn);
    assert.deepEqual(await withTimeout(conn.closed, 'close'), { code: TRANSPORT_CLOSE_CODES['cluster-mismatch'], reason: 'cluster-mismatch' });
    assert.equal(rejected(t, 'cluster-mismatch'), before + 1);
    assert.equal(conn.messages.length, 1); // only HELLO, never WELCOME
  });

  test('handshake rejection: unknown client id', async () => {
    const t = replica(1).transport;
    const before = rejected(t, 'unknown-principal');
    const conn = await rawHandshake(tc.cluster.replicas[1]!.url, {
      clusterId: tc.cluster.clusterId,
      kind: 'client',
      id: 4242,
      signer: createNobleSigner(randomSecretKey()),
      serverId: 1,
    });
    raws.push(conn);
    assert.deepEqual(await withTimeout(conn.closed, 'close'), { code: TRANSPORT_CLOSE_CODES['unknown-principal'], reason: 'unknown-principal' });
    assert.equal(rejected(t, 'unknown-principal'), before + 1);
  });

  test('an unknown client id cannot connect through the client transport either', async () => {
    const client = createClientTransport({
      cluster: tc.cluster,
      clientId: 4242,
      signer: createNobleSigner(randomSecretKey()),
      verifier: new NobleVerifier(),
      limits: LIMITS,
    });
    try {
      await assert.rejects(client.waitConnected(1, 3000), (err: unknown) => {
        assert.ok(err instanceof TransportError);
        assert.equal(err.code, 'CONNECT_FAILED');
        assert.match(err.message, /not reachable: replica 0 .*unknown-principal/);
        assert.ok(!err.message.includes('\n'));
        return true;
      });
    } finally {
      await client.close();
    }
  });

  test("handshake rejection: a client claiming another client's id without its key", async () => {
    const t = replica(0).transport;
    const before = rejected(t, 'bad-signature');
    const conn = await rawHandshake(tc.cluster.replicas[0]!.url, {
      clusterId: tc.cluster.clusterId,
      kind: 'client',
      id: 1,
      signer: createNobleSigner(tc.clientSecrets.get(0)!), // client 0's key, claiming to be client 1
      serverId: 0,
    });
    raws.push(conn);
    assert.deepEqual(await withTimeout(conn.closed, 'close'), { code: TRANSPORT_CLOSE_CODES['bad-signature'], reason: 'bad-signature' });
    assert.equal(rejected(t, 'bad-signature'), before + 1);
  });

  test("handshake rejection: a replica claiming to be replica 2 with replica 3's key", async () => {
    const t = replica(0).transport;
    const before = rejected(t, 'bad-signature');
    const conn = await rawHandshake(tc.cluster.replicas[0]!.url, {
      clusterId: tc.cluster.clusterId,
      kind: 'replica',
      id: 2,
      signer: createNodeSigner(tc.replicaSecrets[3]!),
      serverId: 0,
    });
    raws.push(conn);
    assert.deepEqual(await withTimeout(conn.closed, 'close'), { code: TRANSPORT_CLOSE_CODES['bad-signature'], reason: 'bad-signature' });
    assert.equal(rejected(t, 'bad-signature'), before + 1);
    // The genuine replica 2 is unaffected.
    replica(2).transport.sendToReplica(0, frameOf('still here'));
    await waitFor(() => replica(0).received.length >= 1, 'frame from replica 2');
    assert.deepEqual(replica(0).received[0]!.from, { kind: 'replica', id: 2 });
    replica(0).received.length = 0;
  });

  test('handshake rejection: garbage bytes before the handshake', async () => {
    const t = replica(2).transport;
    const before = rejected(t, 'malformed');
    const conn = await rawConnect(tc.cluster.replicas[2]!.url);
    raws.push(conn);
    conn.ws.send(new Uint8Array([0xde, 0xad, 0xbe, 0xef, 0xff, 0x00]));
    assert.deepEqual(await withTimeout(conn.closed, 'close'), { code: TRANSPORT_CLOSE_CODES.malformed, reason: 'malformed' });
    assert.equal(rejected(t, 'malformed'), before + 1);
    assert.equal(replica(2).received.length, 0);
  });

  test('a frame above frameBytesMax is not delivered, its connection is closed, others keep working', async () => {
    const t = replica(3).transport;
    const droppedBefore = t.stats().framesDropped;
    const conn = await rawHandshake(tc.cluster.replicas[3]!.url, {
      clusterId: tc.cluster.clusterId,
      kind: 'client',
      id: 0,
      signer: createNobleSigner(tc.clientSecrets.get(0)!),
      serverId: 3,
    });
    raws.push(conn);
    await waitFor(() => conn.messages.length >= 2, 'welcome');
    conn.ws.send(frameOf('small'));
    await waitFor(() => replica(3).received.length >= 1, 'small frame');
    conn.ws.send(new Uint8Array(64 * 1024 + 1));
    const closed = await withTimeout(conn.closed, 'close');
    assert.equal(closed.code, 1009); // ws: message too big
    assert.deepEqual(
      replica(3).received.map((r) => textOf(r.frame)),
      ['small'],
    );
    assert.equal(t.stats().framesDropped, droppedBefore + 1);

    // A replica never sends an oversized frame either: dropped and counted.
    const senderDropped = replica(2).transport.stats().framesDropped;
    replica(2).transport.sendToReplica(3, new Uint8Array(64 * 1024 + 1));
    assert.equal(replica(2).transport.stats().framesDropped, senderDropped + 1);

    // The replica keeps serving its other connections.
    replica(2).transport.sendToReplica(3, frameOf('after'));
    const client = clients[0]!;
    assert.equal(client.send(3, frameOf('client after')), true);
    await waitFor(() => replica(3).received.length >= 3, 'frames after the oversized one');
    assert.deepEqual(
      replica(3).received.slice(1).map((r) => textOf(r.frame)).sort(),
      ['after', 'client after'],
    );
    for (const r of replicas) r.received.length = 0;
  });

  test('a replica that stops and restarts on the same port is reconnected and gets the frames queued meanwhile', async () => {
    await replica(3).transport.stop();
    await waitFor(
      () => [0, 1, 2].every((i) => !replica(i).transport.stats().replicasConnected.includes(3)),
      'peers noticing replica 3 is down',
    );
    for (let k = 0; k < 5; k++) replica(0).transport.sendToReplica(3, frameOf(`queued ${k}`));
    replica(1).transport.sendToReplica(3, frameOf('queued from 1'));

    const restarted = newReplica(tc, 3, LIMITS);
    replicas[3] = restarted;
    await restarted.transport.start();
    await waitFor(() => restarted.received.length >= 6, 'queued frames after the restart');
    const from0 = restarted.received.filter((r) => r.from.kind === 'replica' && r.from.id === 0).map((r) => textOf(r.frame));
    assert.deepEqual(from0, [0, 1, 2, 3, 4].map((k) => `queued ${k}`));
    const from1 = restarted.received.filter((r) => r.from.kind === 'replica' && r.from.id === 1).map((r) => textOf(r.frame));
    assert.deepEqual(from1, ['queued from 1']);

    await waitFor(() => replicas.every((r) => r.transport.stats().replicasConnected.length === 3), 'full mesh again');
    restarted.transport.sendToReplica(1, frameOf('back'));
    await waitFor(() => replica(1).received.length >= 1, 'frame from the restarted replica');
    assert.deepEqual(replica(1).received[0]!.from, { kind: 'replica', id: 3 });
    assert.equal(textOf(replica(1).received[0]!.frame), 'back');
    // The client reconnects to the restarted replica too.
    await waitFor(() => clients[0]!.connectedReplicas().length === 4, 'client reconnected');
  });
});

describe('transport: reconnection after a restart', () => {
  test('a replica that comes back is dialled as soon as it connects to us, not after our backoff', async () => {
    const tc = await makeCluster('redial');
    // A minute of backoff: only the early re-dial can reconnect within the wait below.
    const slow = { reconnectDelayMsMin: 60_000, reconnectDelayMsMax: 60_000 };
    const nodes = [0, 1, 2, 3].map((id) => newReplica(tc, id, id === 0 ? slow : { reconnectDelayMsMin: 20, reconnectDelayMsMax: 200 }));
    try {
      await Promise.all(nodes.map((n) => n.transport.start()));
      await waitFor(() => nodes[0]!.transport.stats().replicasConnected.includes(3), 'replica 0 connected to 3');
      await nodes[3]!.transport.stop();
      await waitFor(() => !nodes[0]!.transport.stats().replicasConnected.includes(3), 'replica 0 noticing 3 is down');
      // Replica 0 now waits a minute before dialling 3 again, unless 3 shows up first.
      nodes[3] = newReplica(tc, 3, { reconnectDelayMsMin: 20, reconnectDelayMsMax: 200 });
      await nodes[3].transport.start();
      await waitFor(() => nodes[0]!.transport.stats().replicasConnected.includes(3), 'replica 0 re-dialled 3 when 3 connected', 20_000);
      nodes[0]!.transport.sendToReplica(3, frameOf('welcome back'));
      await waitFor(() => nodes[3]!.received.some((r) => textOf(r.frame) === 'welcome back'), 'frame from 0 to the restarted 3', 20_000);
    } finally {
      await Promise.all(nodes.map((n) => n.transport.stop()));
    }
  });
});

describe('transport edge cases', () => {
  test('a connection that never completes the handshake is closed on timeout', async () => {
    const tc = await makeCluster('timeout-cluster');
    const { transport } = newReplica(tc, 0, { handshakeTimeoutMs: 300, reconnectDelayMsMin: 50, reconnectDelayMsMax: 500 });
    await transport.start();
    try {
      const conn = await rawConnect(tc.cluster.replicas[0]!.url);
      try {
        const closed = await withTimeout(conn.closed, 'close');
        assert.deepEqual(closed, { code: TRANSPORT_CLOSE_CODES.timeout, reason: 'timeout' });
        assert.equal(conn.messages.length, 1); // HELLO only
        assert.equal(rejected(transport, 'timeout'), 1);
      } finally {
        conn.ws.terminate();
      }
    } finally {
      await transport.stop();
    }
  });

  test('the per-peer queue is bounded and drops the oldest frames first', async () => {
    const tc = await makeCluster('queue-cluster');
    const limits: Partial<TransportLimits> = {
      peerQueueFramesMax: 4,
      peerQueueBytesMax: 1000,
      reconnectDelayMsMin: 20,
      reconnectDelayMsMax: 200,
    };
    const r0 = newReplica(tc, 0, limits);
    const r1 = newReplica(tc, 1, limits);
    await r0.transport.start();
    try {
      // Replica 1 is not running: frames wait in replica 0's queue for it.
      for (let k = 0; k < 7; k++) r0.transport.sendToReplica(1, frameOf(`f${k}`));
      assert.equal(r0.transport.stats().framesDropped, 3); // f0..f2 dropped by the frame bound
      // The byte bound: two 400-byte frames fill 800 of 1000 bytes, pushing out the oldest small ones.
      const big = (tag: number): Uint8Array => {
        const b = new Uint8Array(400);
        b[0] = tag;
        return b;
      };
      r0.transport.sendToReplica(1, big(1));
      r0.transport.sendToReplica(1, big(2));
      // queue before byte trimming: f3 f4 f5 f6 big1 big2 -> frame bound keeps f5 f6 big1 big2 (2 more dropped)
      assert.equal(r0.transport.stats().framesDropped, 5);
      r0.transport.sendToReplica(1, big(3)); // frame bound drops f5; 1202 bytes: drop f6, big1 -> big2 big3
      assert.equal(r0.transport.stats().framesDropped, 8);
      r0.transport.sendToReplica(1, new Uint8Array(1001)); // alone above the byte bound: dropped, queue kept
      assert.equal(r0.transport.stats().framesDropped, 9);

      await r1.transport.start();
      await waitFor(() => r1.received.length >= 2, 'queued frames');
      assert.deepEqual(
        r1.received.map((r) => [r.from, r.frame.length, r.frame[0]]),
        [
          [{ kind: 'replica', id: 0 }, 400, 2],
          [{ kind: 'replica', id: 0 }, 400, 3],
        ],
      );
      // Nothing else arrives: send a marker and check it is next.
      r0.transport.sendToReplica(1, frameOf('marker'));
      await waitFor(() => r1.received.length >= 3, 'marker');
      assert.equal(textOf(r1.received[2]!.frame), 'marker');
      assert.equal(r1.received.length, 3);
    } finally {
      await Promise.all([r0.transport.stop(), r1.transport.stop()]);
    }
  });

  test('start() on a port in use rejects with ADDRESS_IN_USE', async () => {
    const tc = await makeCluster('port-cluster');
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(tc.ports[0], '127.0.0.1', () => resolve()));
    const { transport } = newReplica(tc, 0, {});
    try {
      await assert.rejects(transport.start(), (err: unknown) => {
        assert.ok(err instanceof TransportError);
        assert.equal(err.code, 'ADDRESS_IN_USE');
        assert.equal(err.message, `port ${tc.ports[0]} on 127.0.0.1 is already in use`);
        return true;
      });
    } finally {
      await transport.stop();
      await new Promise<void>((resolve) => blocker.close(() => resolve()));
    }
  });

  test('plain HTTP requests go to the httpHandler, else 404', async () => {
    const tc = await makeCluster('http-cluster');
    const withHandler = createReplicaTransport({
      cluster: tc.cluster,
      selfId: 0,
      signer: createNodeSigner(tc.replicaSecrets[0]!),
      verifier: new NodeVerifier(),
      httpHandler: (req, res) => {
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ path: req.url }));
      },
    });
    const without = newReplica(tc, 1, {}).transport;
    await withHandler.start();
    await without.start();
    try {
      const a = await fetch(`http://127.0.0.1:${tc.ports[0]}/status`);
      assert.equal(a.status, 200);
      assert.deepEqual(await a.json(), { path: '/status' });
      const b = await fetch(`http://127.0.0.1:${tc.ports[1]}/status`);
      assert.equal(b.status, 404);
      await b.text();
    } finally {
      await Promise.all([withHandler.stop(), without.stop()]);
    }
  });
});

// Runs last (node:test runs tests of a file in order): every transport above has been stopped.
test('stop() leaves no sockets, servers or timers behind', async () => {
  const leftovers = (): string[] =>
    process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap' || r === 'TCPServerWrap' || r === 'Timeout');
  const deadline = Date.now() + WAIT_MS;
  while (leftovers().length > 0 && Date.now() < deadline) await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(leftovers(), []);
});

describe('slowloris', () => {
  test('a connection that never finishes its HTTP request is closed within the handshake timeout', async () => {
    const tc = await makeCluster('slowloris');
    const r = newReplica(tc, 0, { handshakeTimeoutMs: 500 });
    await r.transport.start();
    try {
      const sockets = Array.from({ length: 5 }, () => net.connect(tc.ports[0]!, '127.0.0.1'));
      const started = Date.now();
      const closed = sockets.map(
        (s) =>
          new Promise<number>((resolve) => {
            s.on('connect', () => s.write('GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n')); // and never the rest
            s.on('error', () => undefined);
            s.on('close', () => resolve(Date.now() - started));
            s.on('data', () => undefined);
          }),
      );
      const after = await Promise.race([Promise.all(closed), new Promise<'open'>((resolve) => setTimeout(() => resolve('open'), 10_000))]);
      assert.notEqual(after, 'open', 'half-open connections must be closed (Node would keep them 60 s)');
      for (const s of sockets) s.destroy();
    } finally {
      await r.transport.stop();
    }
  });
});
