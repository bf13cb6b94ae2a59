/**
 * The reply collector and the request signer with sparse replica ids (members [0, 1, 2, 4, 5, 6]
 * after JOINs and a QUIT), and re-judging an outstanding request when the client learns a newer
 * configuration (ReplyCollector.rebase, RefusalCollector.rebase). Real ed25519, no network.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { concatBytes, domainTag } from '../../src/core/auth.ts';
import { encodeBody } from '../../src/codec/messages.ts';
import type { ReplyMsg, Signed } from '../../src/core/messages.ts';
import { RefusalCollector, ReplyCollector } from '../../src/client/collector.ts';
import { RequestSigner } from '../../src/client/request.ts';
import { createNodeSigner, NodeVerifier, sha256 } from '../../src/crypto/node.ts';
import { TestKeyring } from './epoch-proofs.ts';

const k = new TestKeyring();
const cid = k.cluster.clusterId;
const verifier = new NodeVerifier();

function reply(replica: number, result: string, options: { view?: number; timestamp?: number; client?: number } = {}): Signed<ReplyMsg> {
  const msg: ReplyMsg = { type: 'reply', view: options.view ?? 0, client: options.client ?? 0, timestamp: options.timestamp ?? 7, replica, result: new TextEncoder().encode(result) };
  const body = encodeBody(msg);
  return { msg, body, sig: k.replicaSigners.get(replica)!.sign(concatBytes(domainTag(cid, 'reply'), body)) };
}

function signer(): RequestSigner {
  return new RequestSigner(k.cluster, 0, createNodeSigner(k.clientSecrets.get(0)!), verifier, sha256);
}

// Members after JOINs of 4, 5, 6 and the QUIT of 3.
const sparse = [0, 1, 2, 4, 5, 6].map((id) => k.replica(id));

test('the signer checks replies by replica id, not by position, and forgets removed replicas', () => {
  const s = signer();
  assert.equal(s.verifyReply(reply(3, 'x')), true);
  assert.equal(s.verifyReply(reply(5, 'x')), false, 'replica 5 is not in the keyring');
  s.setReplicas(sparse);
  assert.equal(s.verifyReply(reply(5, 'x')), true, 'replica 5 sits at position 4 of the member list');
  assert.equal(s.verifyReply(reply(6, 'x')), true);
  assert.equal(s.verifyReply(reply(3, 'x')), false, 'replica 3 was removed');
  // A reply naming replica 4 but signed by 5 (the key at position 4 of the old, dense indexing).
  const forged = reply(5, 'x');
  const msg = { ...forged.msg, replica: 4 };
  const body = encodeBody(msg);
  assert.equal(s.verifyReply({ msg, body, sig: k.replicaSigners.get(5)!.sign(concatBytes(domainTag(cid, 'reply'), body)) }), false);
});

test('the collector counts members of a sparse configuration only, with its f', () => {
  const s = signer();
  s.setReplicas(sparse);
  const ids = sparse.map((r) => r.id);
  const c = new ReplyCollector(ids, 1, 0, 7, (r) => s.verifyReply(r));
  assert.deepEqual(c.add(reply(3, 'a'), 3), { kind: 'ignored', reason: 'unknown replica' });
  k.replica(7);
  assert.deepEqual(c.add(reply(7, 'a'), 7), { kind: 'ignored', reason: 'unknown replica' });
  assert.equal(c.add(reply(4, 'a', { view: 2 }), 4).kind, 'pending');
  const out = c.add(reply(6, 'a', { view: 3 }), 6);
  assert.equal(out.kind, 'accepted');
  assert.deepEqual(out.kind === 'accepted' ? out.replicas : [], [4, 6]);
  assert.equal(out.kind === 'accepted' ? out.view : -1, 2, 'the view of at least one correct replica among the f+1');
  // FAIL is computed over the six members (not over ids 0..5): five different results still leave
  // the sixth able to match one; six cannot.
  const d = new ReplyCollector(ids, 1, 0, 7, (r) => s.verifyReply(r));
  for (const id of [0, 1, 2, 4, 5]) assert.equal(d.add(reply(id, `r${id}`), id).kind, 'pending');
  assert.equal(d.add(reply(6, 'r6'), 6).kind, 'failed');
  // The dense form (n) still means ids 0..n-1.
  const dense = new ReplyCollector(4, 1, 0, 7, () => true);
  assert.equal(dense.add(reply(4, 'a'), 4).kind, 'ignored');
});

test('a newer configuration re-judges an outstanding request: replies of removed replicas stop counting', () => {
  const s = signer();
  const verify = (r: Parameters<RequestSigner['verifyReply']>[0]): boolean => s.verifyReply(r);
  const c = new ReplyCollector([0, 1, 2, 3], 1, 0, 7, verify);
  assert.equal(c.add(reply(3, 'a'), 3).kind, 'pending');
  // 3 is removed and 4, 5 join: 3's reply no longer counts; 4 alone is not f+1.
  s.setReplicas([0, 1, 2, 4, 5].map((id) => k.replica(id)));
  assert.equal(c.rebase([0, 1, 2, 4, 5], 1, verify).kind, 'pending');
  assert.deepEqual([...c.replies.keys()], []);
  assert.equal(c.add(reply(3, 'a'), 3).kind, 'ignored');
  assert.equal(c.add(reply(4, 'a'), 4).kind, 'pending');
  assert.equal(c.add(reply(0, 'a'), 0).kind, 'accepted');

  // n = 7 (f = 2) shrinks to 4 (f = 1): two matching replies of members now suffice, at once.
  const seven = [0, 1, 2, 3, 4, 5, 6];
  const wide = new ReplyCollector(seven, 2, 0, 7, () => true);
  wide.add(reply(0, 'b'), 0);
  assert.equal(wide.add(reply(5, 'b'), 5).kind, 'pending');
  const now = wide.rebase([0, 1, 2, 5], 1);
  assert.equal(now.kind, 'accepted');
  assert.deepEqual(now.kind === 'accepted' ? now.replicas : [], [0, 5]);
  assert.equal(wide.rebase([0], 0).kind, 'ignored', 'settled');

  // An id removed and added again with another key: its earlier reply no longer verifies.
  const rekeyed = new ReplyCollector([0, 1, 2, 3], 1, 0, 7, verify);
  s.setReplicas(k.cluster.replicas);
  rekeyed.add(reply(2, 'c'), 2);
  s.setReplicas([0, 1, 3, 4].map((id) => k.replica(id)).concat([{ ...k.replica(2), publicKey: k.replica(6).publicKey }]));
  rekeyed.rebase([0, 1, 2, 3, 4], 1, verify);
  assert.deepEqual([...rekeyed.replies.keys()], []);
});

test('refusals are re-judged the same way', () => {
  const rc = new RefusalCollector(1, 0, 7, () => true);
  const refusal = (replica: number) => ({ msg: { type: 'refusal' as const, replica, client: 0, timestamp: 7, digest: new Uint8Array(32), reason: 'op-too-large' as const, limit: 1 }, body: new Uint8Array(0), sig: new Uint8Array(64) });
  assert.equal(rc.add(refusal(3), 3), false);
  assert.equal(rc.rebase([0, 1, 2, 4], 1), false);
  assert.deepEqual([...rc.refusedBy], []);
  assert.equal(rc.add(refusal(4), 4), false);
  assert.equal(rc.add(refusal(1), 1), true);
});
