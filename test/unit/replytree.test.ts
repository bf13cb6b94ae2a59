/**
 * One signature per executed batch of replies: the Merkle tree, its paths, and how a client
 * verifies a batched reply (and rejects every tampered variant).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeFrame, encodeBatchedReplyFrame } from '../../src/codec/messages.ts';
import { Authenticator } from '../../src/core/auth.ts';
import type { ClusterConfig } from '../../src/core/cluster.ts';
import type { BatchedReply, ReplyBatchMsg } from '../../src/core/messages.ts';
import { buildReplyTree, replyLeaf, replyRootFromPath } from '../../src/core/replytree.ts';
import { RequestSigner, replyOf } from '../../src/client/request.ts';
import { createNodeSigner, NodeVerifier, sha256 } from '../../src/crypto/node.ts';
import { randomSecretKey } from '../../src/crypto/noble.ts';
import { Prng } from '../../src/sim/prng.ts';

test('every leaf path leads to the root, for every tree size from 1 to 70', () => {
  const prng = new Prng(1);
  for (let count = 1; count <= 70; count++) {
    const leaves = Array.from({ length: count }, () => prng.bytes(32));
    const { root, paths } = buildReplyTree(sha256, leaves);
    assert.ok(paths.every((p) => p.length <= Math.ceil(Math.log2(count))), 'paths are logarithmic');
    for (let i = 0; i < count; i++) {
      assert.deepEqual(replyRootFromPath(sha256, leaves[i]!, i, count, paths[i]!), root, `count ${count} index ${i}`);
    }
  }
});

test('a path does not fit another leaf, index, count or a changed sibling', () => {
  const prng = new Prng(2);
  const leaves = Array.from({ length: 9 }, () => prng.bytes(32));
  const { root, paths } = buildReplyTree(sha256, leaves);
  const fits = (leaf: Uint8Array, index: number, count: number, path: Uint8Array[]): boolean => {
    const r = replyRootFromPath(sha256, leaf, index, count, path);
    return r !== undefined && Buffer.from(r).equals(Buffer.from(root));
  };
  assert.ok(fits(leaves[4]!, 4, 9, paths[4]!));
  assert.equal(fits(leaves[5]!, 4, 9, paths[4]!), false, 'another leaf');
  assert.equal(fits(leaves[4]!, 5, 9, paths[4]!), false, 'another index');
  // The count fixes the shape; it is part of the signed REPLY-BATCH. (A count that leaves this leaf's
  // position unchanged, like 10, yields the same root: the signed count is what rules it out.)
  assert.equal(fits(leaves[4]!, 4, 5, paths[4]!), false, 'a count that changes the shape');
  assert.equal(fits(leaves[4]!, 4, 9, paths[4]!.slice(1)), false, 'a shorter path');
  assert.equal(fits(leaves[4]!, 4, 9, [...paths[4]!, prng.bytes(32)]), false, 'a longer path');
  const changed = paths[4]!.map((p, i) => (i === 1 ? prng.bytes(32) : p));
  assert.equal(fits(leaves[4]!, 4, 9, changed), false, 'a changed sibling');
  assert.equal(replyRootFromPath(sha256, leaves[0]!, 9, 9, paths[0]!), undefined, 'index out of range');
});

/** Four replicas (f = 1) and three clients with fresh keys, and a verifier. */
function testCluster(clusterId: string): { secrets: Uint8Array[]; cluster: ClusterConfig; verifier: NodeVerifier } {
  const secrets = Array.from({ length: 4 }, () => randomSecretKey());
  const cluster: ClusterConfig = {
    clusterId,
    f: 1,
    replicas: secrets.map((s, id) => ({ id, url: `ws://127.0.0.1:${9000 + id}`, publicKey: createNodeSigner(s).publicKey })),
    clients: [0, 1, 2].map((id) => ({ id, publicKey: createNodeSigner(randomSecretKey()).publicKey })),
  };
  return { secrets, cluster, verifier: new NodeVerifier() };
}

test('a client accepts a batched reply only if its path leads to a root the replica signed', () => {
  const { secrets, cluster, verifier } = testCluster('replytree');
  const replica = 2;
  const auth = new Authenticator(cluster, { sign: (d) => createNodeSigner(secrets[replica]!).sign(d), verify: (k, d, s) => verifier.verify(k, d, s), hash: sha256 });
  const results = [Uint8Array.of(1), Uint8Array.of(2, 2), Uint8Array.of(3, 3, 3)];
  const leaves = results.map((r, c) => replyLeaf(sha256, c, 100 + c, r));
  const tree = buildReplyTree(sha256, leaves);
  const batch = auth.sign<ReplyBatchMsg>({ type: 'replybatch', view: 5, replica, seq: 42, count: 3, root: tree.root });
  const replyFor = (c: number): BatchedReply => ({
    msg: { type: 'reply', view: 5, replica, client: c, timestamp: 100 + c, result: results[c]! },
    batch,
    index: c,
    path: tree.paths[c]!,
  });
  const client = new RequestSigner(cluster, 1, createNodeSigner(randomSecretKey()), verifier, sha256);
  // Through the wire format.
  const decoded = decodeFrame(encodeBatchedReplyFrame(replyFor(1)));
  assert.ok(decoded.ok);
  const received = replyOf(decoded.value)!;
  assert.equal(received.msg.replica, replica);
  assert.equal(received.msg.view, 5);
  assert.ok(client.verifyReply(received));
  for (const c of [0, 1, 2]) assert.ok(client.verifyReply(replyFor(c)));
  const r = replyFor(1);
  assert.equal(client.verifyReply({ ...r, msg: { ...r.msg, result: Uint8Array.of(9) } }), false, 'another result');
  assert.equal(client.verifyReply({ ...r, msg: { ...r.msg, timestamp: 999 } }), false, 'another timestamp');
  assert.equal(client.verifyReply({ ...r, msg: { ...r.msg, client: 0 } }), false, "another client's leaf");
  assert.equal(client.verifyReply({ ...r, msg: { ...r.msg, replica: 3 } }), false, 'attributed to another replica');
  assert.equal(client.verifyReply({ ...r, index: 2 }), false, 'another position');
  const sig = new Uint8Array(batch.sig);
  sig[0]! ^= 1;
  assert.equal(client.verifyReply({ ...r, batch: { ...batch, sig } }), false, 'a bad batch signature');
});

test("the f+1 replies of one request share the root's computation, and only when every input is equal", () => {
  const { secrets, cluster, verifier } = testCluster('replytree-memo');
  const results = [Uint8Array.of(1), Uint8Array.of(2, 2), Uint8Array.of(3, 3, 3)];
  const tree = buildReplyTree(sha256, results.map((r, c) => replyLeaf(sha256, c, 100 + c, r)));
  // Two correct replicas executed the same batch: the same tree, each signing its root.
  const replyOfReplica = (replica: number): BatchedReply => {
    const auth = new Authenticator(cluster, { sign: (d) => createNodeSigner(secrets[replica]!).sign(d), verify: (k, d, s) => verifier.verify(k, d, s), hash: sha256 });
    const batch = auth.sign<ReplyBatchMsg>({ type: 'replybatch', view: 0, replica, seq: 7, count: 3, root: tree.root });
    return { msg: { type: 'reply', view: 0, replica, client: 1, timestamp: 101, result: results[1]!.slice() }, batch, index: 1, path: tree.paths[1]!.map((p) => p.slice()) };
  };
  let hashes = 0;
  const counting = (data: Uint8Array): Uint8Array => {
    hashes++;
    return sha256(data);
  };
  const client = new RequestSigner(cluster, 1, createNodeSigner(randomSecretKey()), verifier, counting);
  const first = replyOfReplica(0);
  assert.ok(client.verifyReply(first));
  const perReply = hashes;
  assert.equal(perReply, 1 + tree.paths[1]!.length, 'the leaf and one hash per path element');
  assert.ok(client.verifyReply(replyOfReplica(2)));
  assert.equal(hashes, perReply, "the second replica's reply reuses the root: no hash");
  // Inputs that differ in one byte are computed again, and fail.
  const flipped = replyOfReplica(3);
  flipped.path[0]![0]! ^= 1;
  assert.equal(client.verifyReply(flipped), false, 'a changed path element');
  assert.equal(hashes, 2 * perReply);
  const otherResult = replyOfReplica(3);
  otherResult.msg.result[0]! ^= 1;
  assert.equal(client.verifyReply(otherResult), false, 'a changed result');
  // What was remembered is a copy: changing the first reply's arrays afterwards changes nothing.
  assert.ok(client.verifyReply(first));
  first.path[1]![5]! ^= 1;
  assert.equal(client.verifyReply(first), false, 'the same arrays, changed in place after they were checked');
});

test('a leaf hashes 0x20 || u32 client || u64 timestamp || result, big-endian, for timestamps up to 2^53 - 1', () => {
  const seen: Uint8Array[] = [];
  const capture = (data: Uint8Array): Uint8Array => {
    seen.push(Uint8Array.from(data));
    return new Uint8Array(32);
  };
  const result = Uint8Array.of(0x82, 0x01, 0xf6);
  for (const [client, timestamp] of [[0, 0], [3, 1_764_700_000_000_000], [0xffff_ffff, Number.MAX_SAFE_INTEGER], [7, 0x1_0000_0000], [7, 0xffff_ffff], [0x8000_0000, 0x8000_0000]] as const) {
    seen.length = 0;
    replyLeaf(capture, client, timestamp, result);
    const expected = new Uint8Array(13 + result.length);
    const view = new DataView(expected.buffer);
    expected[0] = 0x20;
    view.setUint32(1, client);
    view.setBigUint64(5, BigInt(timestamp));
    expected.set(result, 13);
    assert.deepEqual(seen, [expected], `client ${client} timestamp ${timestamp}`);
  }
});
