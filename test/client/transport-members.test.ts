/**
 * The client transport follows a configuration (setReplicas) against four in-process replicas:
 * it dials replicas that joined, closes and never redials removed ones, and redials one whose key
 * changed (whose handshake then fails: the replica at that address does not hold the new key). A
 * replica answers `epochsreq` on the client's ordinary connection.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeFrame, encodeLinkFrame } from '../../src/codec/messages.ts';
import { createNodeSigner, NodeVerifier } from '../../src/crypto/node.ts';
import { createClientTransport, type ClientTransport } from '../../src/transport/client-transport.ts';
import { InProcessCluster } from '../node/inprocess-cluster.ts';

let ipc: InProcessCluster;
let transport: ClientTransport | undefined;

before(async () => {
  ipc = await InProcessCluster.create();
});

after(async () => {
  await transport?.close();
  await ipc?.stop();
});

async function until(cond: () => boolean, ms = 5_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not reached');
    await new Promise((r) => setTimeout(r, 10));
  }
}

test('setReplicas dials joined replicas, drops removed ones for good, and redials a changed key', async () => {
  const all = ipc.cluster.replicas;
  const t = (transport = createClientTransport({
    cluster: { ...ipc.cluster, replicas: all.slice(0, 3) },
    clientId: 0,
    signer: createNodeSigner(ipc.clientKey(0).secretKey),
    verifier: new NodeVerifier(),
    limits: { reconnectDelayMsMin: 10, reconnectDelayMsMax: 50 },
  }));
  const frames: Array<{ from: number; bytes: Uint8Array }> = [];
  t.onFrame((from, bytes) => frames.push({ from, bytes }));
  await t.waitConnected(3, 5_000);
  assert.deepEqual(t.connectedReplicas(), [0, 1, 2]);

  // A replica answers epochsreq on the client connection (no reconfiguration yet: no proofs).
  assert.equal(t.send(1, encodeLinkFrame({ type: 'epochsreq', epoch: 0 })), true);
  await until(() => frames.length > 0);
  const d = decodeFrame(frames[0]!.bytes);
  assert.ok(d.ok && d.value.kind === 'link' && d.value.msg.type === 'epochs');
  assert.deepEqual(d.ok && d.value.kind === 'link' && d.value.msg.type === 'epochs' ? d.value.msg.proofs : null, []);

  // Replica 3 joins the client's configuration.
  t.setReplicas(all);
  await t.waitConnected(4, 5_000);
  assert.deepEqual(t.connectedReplicas(), [0, 1, 2, 3]);

  // Replica 0 leaves: closed at once, and not redialled (reconnect delays here are 10..50 ms).
  t.setReplicas(all.slice(1));
  assert.deepEqual(t.connectedReplicas(), [1, 2, 3]);
  assert.equal(t.send(0, encodeLinkFrame({ type: 'epochsreq', epoch: 0 })), false);
  await new Promise((r) => setTimeout(r, 300));
  assert.deepEqual(t.connectedReplicas(), [1, 2, 3]);
  assert.equal(t.broadcast(encodeLinkFrame({ type: 'epochsreq', epoch: 0 })), 3);

  // Replica 2 "re-added" with another key: the old connection is closed, the new one fails its
  // handshake (the replica there cannot prove the new key), so it never counts as connected.
  t.setReplicas([all[1]!, { ...all[2]!, publicKey: all[0]!.publicKey }, all[3]!]);
  await new Promise((r) => setTimeout(r, 300));
  assert.deepEqual(t.connectedReplicas(), [1, 3]);

  // waitConnected counts only the configuration's replicas.
  t.setReplicas(all);
  await t.waitConnected(4, 5_000);
  assert.deepEqual(t.connectedReplicas(), [0, 1, 2, 3]);
});
