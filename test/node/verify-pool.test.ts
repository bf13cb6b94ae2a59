/**
 * The verify pool's workers check signatures with the replica's backend (libsodium or node:crypto):
 * a valid request's signature is verified by a worker and taken by the core once; a forged one is
 * not verified, so the core checks it on the loop (and refuses it).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeOp } from '../../src/app/kv-ops.ts';
import { RequestSigner } from '../../src/client/request.ts';
import { encodeSignedFrame } from '../../src/codec/messages.ts';
import { concatBytes, domainTag } from '../../src/core/auth.ts';
import type { ClusterConfig } from '../../src/core/cluster.ts';
import { createNodeSigner, NodeVerifier, sha256 } from '../../src/crypto/node.ts';
import { VerifyPool } from '../../src/node/verify-pool.ts';
import { countedCrypto, type CryptoWork } from '../../src/node/core-deps.ts';
import { identityRSignature } from '../unit/ed25519-edges.ts';

const client = createNodeSigner(sha256(Uint8Array.of(1)));
const cluster: ClusterConfig = {
  clusterId: 'verify-pool-test',
  f: 1,
  replicas: [0, 1, 2, 3].map((id) => ({ id, url: `ws://127.0.0.1:${9100 + id}`, publicKey: createNodeSigner(sha256(Uint8Array.of(10 + id))).publicKey })),
  clients: [{ id: 0, publicKey: client.publicKey }],
};

for (const backend of ['sodium', 'node'] as const) {
  test(`${backend}: a worker verifies a valid request; a forged signature is left to the loop`, async () => {
    const delivered: Uint8Array[] = [];
    const errors: unknown[] = [];
    const pool = new VerifyPool(cluster, 1, (_from, frame) => delivered.push(frame), (err) => errors.push(err), backend);
    try {
      const requests = new RequestSigner(cluster, 0, client, new NodeVerifier());
      const good = requests.sign(1, encodeOp({ type: 'put', key: 'a', value: '1' }));
      const forged = requests.sign(2, encodeOp({ type: 'put', key: 'b', value: '2' }));
      const badSig = new Uint8Array(forged.sig);
      badSig[5]! ^= 1;
      pool.submit({ kind: 'client', id: 0 }, encodeSignedFrame(good));
      pool.submit({ kind: 'client', id: 0 }, encodeSignedFrame({ ...forged, sig: badSig }));
      const end = Date.now() + 10_000;
      while (delivered.length < 2 && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
      assert.equal(delivered.length, 2, 'both frames handed on, in order');
      while (pool.workerBackends.length < 1 && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
      assert.deepEqual(pool.workerBackends, [backend], 'the worker runs the replica\'s backend');
      assert.deepEqual(errors, []);
      const tag = domainTag(cluster.clusterId, 'request');
      assert.equal(pool.take(client.publicKey, concatBytes(tag, good.body), good.sig), true, 'verified by the worker');
      assert.equal(pool.take(client.publicKey, concatBytes(tag, good.body), good.sig), false, 'taken once');
      assert.equal(pool.take(client.publicKey, concatBytes(tag, forged.body), badSig), false, 'the forged one was not verified');
      assert.equal(pool.stats.signaturesVerified, 1);
    } finally {
      await pool.stop();
    }
  });
}

test("a worker's node:crypto accepts a crafted identity-R request; the core's verify still refuses it (the rules are checked before a result is taken)", async () => {
  const seed = sha256(Uint8Array.of(2));
  const crafting = { publicKey: createNodeSigner(seed).publicKey, sign: (data: Uint8Array) => identityRSignature(seed, data).signature };
  const withCrafted: ClusterConfig = { ...cluster, clients: [{ id: 0, publicKey: crafting.publicKey }] };
  const delivered: Uint8Array[] = [];
  const pool = new VerifyPool(withCrafted, 1, (_from, frame) => delivered.push(frame), () => undefined, 'node');
  try {
    const signed = new RequestSigner(withCrafted, 0, crafting, new NodeVerifier()).sign(1, encodeOp({ type: 'put', key: 'c', value: 'x' }));
    pool.submit({ kind: 'client', id: 0 }, encodeSignedFrame(signed));
    const end = Date.now() + 10_000;
    while (delivered.length < 1 && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
    assert.equal(pool.stats.signaturesVerified, 1, "control: the worker's bare equation accepted it");
    const work: CryptoWork = { signs: 0, verifies: 0, signMs: 0, verifyMs: 0, verifiesOffloaded: 0 };
    const crypto = countedCrypto(createNodeSigner(seed), new NodeVerifier(), work, () => pool);
    const data = concatBytes(domainTag(withCrafted.clusterId, 'request'), signed.body);
    assert.equal(crypto.verify(crafting.publicKey, data, signed.sig), false);
    assert.equal(work.verifiesOffloaded, 0, 'not taken from the pool');
  } finally {
    await pool.stop();
  }
});
