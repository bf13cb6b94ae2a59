/**
 * Cutting off a faulty client (src/node/cutoff.ts): the loop notices a client frame the core refuses
 * for a reason only a faulty client causes, drops the client's other frames and tells its owner; the
 * transport then closes the client's connections and refuses its handshakes, before checking any
 * signature, for a while that doubles per repeated cut-off.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TurnLoop } from '../../src/node/loop.ts';
import { ClientCutOffs, CUT_OFF_MS_MAX, CUT_OFF_MS_MIN } from '../../src/node/cutoff.ts';
import type { Ready, Replica, Source } from '../../src/core/replica.ts';
import type { RejectReason } from '../../src/core/rejections.ts';
import type { ClusterConfig } from '../../src/core/cluster.ts';
import { createNodeSigner, NodeVerifier } from '../../src/crypto/node.ts';
import { randomSecretKey } from '../../src/crypto/noble.ts';
import { createReplicaTransport } from '../../src/transport/replica-transport.ts';
import { createClientTransport } from '../../src/transport/client-transport.ts';
import { freePorts } from '../../src/transport/free-ports.ts';

/** A core stand-in: frames whose first byte is 0xff are refused as malformed, 0xfe as stale (not a fault). */
function fakeReplica(received: Array<{ from: Source; tag: number }>): Replica {
  const rejected = new Map<RejectReason, number>();
  const reject = (r: RejectReason): void => void rejected.set(r, (rejected.get(r) ?? 0) + 1);
  let index = 0;
  return {
    rejected,
    receive: (from: Source, frame: Uint8Array) => {
      if (frame[0] === 0xff) return reject('malformed');
      if (frame[0] === 0xfe) return reject('stale-request');
      received.push({ from, tag: frame[0]! });
    },
    tick: () => undefined,
    setClockMs: () => undefined,
    flush: (): Ready => ({ index: ++index, writes: [], clears: [], messages: [], replies: [], events: [], horizon: { view: 0, stable: 0, executed: 0 } }),
  } as unknown as Replica;
}

test('a client frame refused as malformed cuts the client off: its other frames are dropped, the rest are served', async () => {
  const received: Array<{ from: Source; tag: number }> = [];
  const cutOff: Array<{ client: number; reason: string }> = [];
  const loop = new TurnLoop(
    { write: (_ops, _clears, _horizon, done) => setImmediate(() => done()) },
    { running: () => true, perform: () => undefined, fatal: (err) => assert.fail(String(err)), clientMisbehaved: (client, reason) => cutOff.push({ client, reason }) },
    { tickMs: 1_000_000, now: () => 0, wallClockMs: () => 0, pipelineTurns: true, deferWrites: true },
  );
  loop.attach(fakeReplica(received), undefined);
  const bad = { kind: 'client', id: 7 } as const;
  const good = { kind: 'client', id: 8 } as const;
  loop.enqueue(bad, Uint8Array.of(1)); // a valid frame first: served
  loop.enqueue(good, Uint8Array.of(0xfe)); // stale: refused, but not a fault
  loop.enqueue(bad, Uint8Array.of(0xff)); // the fault
  loop.enqueue(good, Uint8Array.of(2));
  for (let i = 0; i < 100; i++) loop.enqueue(bad, Uint8Array.of(3)); // dropped, in this turn and queued
  loop.enqueue(good, Uint8Array.of(4));
  loop.enqueue({ kind: 'replica', id: 1 }, Uint8Array.of(0xff)); // a replica's malformed frame: not a client fault
  await loop.runFirstTurn();
  assert.deepEqual(cutOff, [{ client: 7, reason: 'malformed' }]);
  assert.deepEqual(
    received.map((r) => `${r.from.kind}${r.from.id}:${r.tag}`),
    ['client7:1', 'client8:2', 'client8:4'],
  );
  assert.equal(loop.queuedFrames, 0, 'the cut-off client left nothing queued');
});

test('each cut-off of the same client lasts twice the last, up to the maximum', () => {
  const c = new ClientCutOffs();
  assert.equal(c.cutOff(1), CUT_OFF_MS_MIN);
  assert.equal(c.cutOff(1), 2 * CUT_OFF_MS_MIN);
  assert.equal(c.cutOff(2), CUT_OFF_MS_MIN, 'per client');
  for (let i = 0; i < 40; i++) c.cutOff(1);
  assert.equal(c.cutOff(1), CUT_OFF_MS_MAX);
  assert.equal(c.total, 44);
});

test('transport: a refused client is disconnected and its handshakes fail before the signature check; others connect', async () => {
  const [port] = await freePorts(1);
  const replicaSecret = randomSecretKey();
  const secrets = new Map([1, 2].map((id) => [id, randomSecretKey()]));
  const cluster: ClusterConfig = {
    clusterId: 'cutoff-test',
    f: 1,
    replicas: [0, 1, 2, 3].map((id) => ({ id, url: `ws://127.0.0.1:${id === 0 ? port : 1}`, publicKey: createNodeSigner(id === 0 ? replicaSecret : randomSecretKey()).publicKey })),
    clients: [...secrets].map(([id, s]) => ({ id, publicKey: createNodeSigner(s).publicKey })),
  };
  const transport = createReplicaTransport({ cluster, selfId: 0, signer: createNodeSigner(replicaSecret), verifier: new NodeVerifier(), limits: { reconnectDelayMsMin: 60_000, reconnectDelayMsMax: 60_000 } });
  const received: number[] = [];
  transport.onFrame((from) => received.push(from.id));
  await transport.start();
  const connect = (id: number) =>
    createClientTransport({ cluster, clientId: id, signer: createNodeSigner(secrets.get(id)!), verifier: new NodeVerifier(), limits: { reconnectDelayMsMin: 20, reconnectDelayMsMax: 50 } });
  const one = connect(1);
  const two = connect(2);
  try {
    await one.waitConnected(1, 10_000);
    await two.waitConnected(1, 10_000);
    const until = Date.now() + 10_000;
    while (transport.stats().clientsConnected < 2 && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
    transport.refuseClient!(1, 60_000);
    // Client 1 is closed and keeps redialing; each attempt is refused.
    const deadline = Date.now() + 10_000;
    while ((transport.stats().cutOffHandshakesRefused ?? 0) < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.ok((transport.stats().cutOffHandshakesRefused ?? 0) >= 2, 'redials refused');
    assert.ok((transport.stats().handshakesRejected['unknown-principal'] ?? 0) >= 2);
    assert.equal(transport.stats().clientsCutOff, 1);
    assert.deepEqual(one.connectedReplicas(), []);
    // Client 2 is unaffected.
    assert.equal(two.send(0, Uint8Array.of(1)), true);
    assert.equal(one.send(0, Uint8Array.of(1)), false);
    while (received.length < 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(received, [2]);
  } finally {
    await one.close();
    await two.close();
    await transport.stop();
  }
});
