/**
 * A cluster whose replicas run different ed25519 backends (two libsodium, two node:crypto: a host
 * where sodium-native's binary does not load, or a rolling upgrade) agrees on every signature:
 * honest requests commit as usual, and a request whose signature only OpenSSL's bare equation accepts
 * (its client's own key, the identity as R: test/unit/ed25519-edges.ts) is refused by all four, so no
 * replica orders or executes it and the cluster goes on in the same view.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { PbftClient } from '../../src/client/client.ts';
import { RequestSigner } from '../../src/client/request.ts';
import { encodeOp } from '../../src/app/kv-ops.ts';
import { encodeSignedFrame } from '../../src/codec/messages.ts';
import { concatBytes, domainTag } from '../../src/core/auth.ts';
import { createNodeSigner, NodeVerifier } from '../../src/crypto/node.ts';
import type { Signer } from '../../src/crypto/types.ts';
import { createClientTransport } from '../../src/transport/client-transport.ts';
import { nobleDerivePublicKey } from '../../src/crypto/noble.ts';
import { InProcessCluster } from './inprocess-cluster.ts';
import { identityRSignature, rawOpenssl } from '../unit/ed25519-edges.ts';

let ipc: InProcessCluster;
const clients: PbftClient[] = [];

before(async () => {
  ipc = await InProcessCluster.create({ clients: 3, crypto: (id) => (id < 2 ? 'sodium' : 'node') });
});

after(async () => {
  for (const c of clients) await c.close();
  await ipc.stop();
});

async function waitFor(what: string, check: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test('replicas on libsodium and on node:crypto order and execute the same requests', async () => {
  assert.deepEqual(
    ipc.replicas.map((r) => r.node.status().crypto.backend),
    ['sodium', 'sodium', 'node', 'node'],
  );
  const c = await PbftClient.connect({ cluster: ipc.cluster, key: ipc.clientKey(0), timeoutMs: 30_000 });
  clients.push(c);
  for (let i = 0; i < 20; i++) await c.put(`k${i}`, `v${i}`);
  assert.equal(await c.get('k19'), 'v19');
  await waitFor('every replica to execute the puts', () => new Set(ipc.replicas.map((r) => r.node.status().lastExecuted)).size === 1);
});

test('a request signed with the identity as R: OpenSSL alone would accept it; all four replicas refuse it', async () => {
  const secret = ipc.clientKey(1).secretKey;
  const crafting: Signer = { publicKey: nobleDerivePublicKey(secret), sign: (data) => identityRSignature(secret, data).signature };
  const requests = new RequestSigner(ipc.cluster, 1, crafting, new NodeVerifier());
  const signed = requests.sign(Date.now() * 1000, encodeOp({ type: 'put', key: 'crafted', value: 'accepted by some' }));
  // The control: the request's signature satisfies the bare equation (OpenSSL without the rules).
  const signedBytes = concatBytes(domainTag(ipc.cluster.clusterId, 'request'), signed.body);
  assert.equal(rawOpenssl(crafting.publicKey, signedBytes, signed.sig), true, 'control: OpenSSL alone accepts it');
  assert.equal(new NodeVerifier().verify(crafting.publicKey, signedBytes, signed.sig), false);
  const before = ipc.replicas.map((r) => ({ rejected: r.node.status().rejected['bad-request-signature'] ?? 0, executed: r.node.status().lastExecuted, view: r.node.status().view }));
  // The connection's handshake is signed honestly (a crafted one is refused too): client 1's own link.
  const transport = createClientTransport({ cluster: ipc.cluster, clientId: 1, signer: createNodeSigner(secret), verifier: new NodeVerifier() });
  try {
    await transport.waitConnected(4, 10_000);
    transport.broadcast(encodeSignedFrame(signed));
    await waitFor('every replica to refuse the request', () =>
      ipc.replicas.every((r, id) => (r.node.status().rejected['bad-request-signature'] ?? 0) > before[id]!.rejected),
    );
  } finally {
    await transport.close();
  }
  // The cluster goes on in the same view, and nobody executed the crafted put.
  const c = await PbftClient.connect({ cluster: ipc.cluster, key: ipc.clientKey(2), timeoutMs: 30_000 });
  clients.push(c);
  await c.put('after', 'yes');
  assert.equal(await c.get('crafted'), null);
  for (const [id, r] of ipc.replicas.entries()) assert.equal(r.node.status().view, before[id]!.view, `replica ${id} changed view`);
});
