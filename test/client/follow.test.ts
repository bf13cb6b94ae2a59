/**
 * MembershipFollower (src/client/follow.ts), without a network: a valid chain of epoch proofs is
 * followed from the keyring, an invalid proof is refused and counted (keeping the valid prefix), a
 * stale one ignored; asking is throttled. Proofs are signed with real ed25519 (epoch-proofs.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EPOCH_PROOFS_PER_ANSWER_MAX, MembershipFollower } from '../../src/client/follow.ts';
import { RequestSigner } from '../../src/client/request.ts';
import { createNodeSigner, NodeVerifier, sha256 } from '../../src/crypto/node.ts';
import { TestKeyring } from './epoch-proofs.ts';

const k = new TestKeyring();
const cid = k.cluster.clusterId;
const verifier = new NodeVerifier();

function signer(): RequestSigner {
  return new RequestSigner(k.cluster, 0, createNodeSigner(k.clientSecrets.get(0)!), verifier, sha256);
}

test('the follower accepts a valid chain of proofs, in any order, and takes n, f and the primary from it', () => {
  const crypto = signer().proofCrypto();
  const fl = MembershipFollower.fromKeyring(k.cluster, crypto, 1000);
  assert.equal(fl.epoch, 0);
  assert.deepEqual(fl.members, [0, 1, 2, 3]);
  const one = k.proof(k.genesis, [0, 1, 2, 3, 4].map((id) => k.replica(id)));
  const two = k.proof(one.config, [0, 1, 2, 4].map((id) => k.replica(id)), { signers: [0, 1, 3, 4] });
  const out = fl.offer([two.proof, one.proof]);
  assert.equal(out.invalid, undefined);
  assert.equal(out.previous?.epoch, 0);
  assert.equal(fl.epoch, 2);
  assert.deepEqual(fl.members, [0, 1, 2, 4]);
  assert.equal(fl.n, 4);
  assert.equal(fl.f, 1);
  assert.deepEqual([0, 1, 2, 3, 4, 5].map((v) => fl.primaryOf(v)), [0, 1, 2, 4, 0, 1]);
  assert.equal(fl.isMember(3), false);
  assert.equal(fl.hasClient(1), true);
  // Stale: proofs of epochs it knows are ignored, not counted as invalid.
  const stale = fl.offer([one.proof, two.proof]);
  assert.equal(stale.previous, undefined);
  assert.equal(stale.invalid, undefined);
  assert.equal(fl.invalidAnswers, 0);
  assert.equal(fl.epoch, 2);
});

test('an invalid proof is refused and counted; the valid prefix of a chain is kept', () => {
  const fl = MembershipFollower.fromKeyring(k.cluster, signer().proofCrypto(), 1000);
  const one = k.proof(k.genesis, [0, 1, 2, 3, 4].map((id) => k.replica(id)));
  // Too few signatures: two of four (a quorum of four is three).
  const weak = k.proof(k.genesis, [0, 1, 2, 3, 9].map((id) => k.replica(id)), { signers: [0, 1] });
  let out = fl.offer([weak.proof]);
  assert.match(out.invalid ?? '', /2 signatures; epoch 0 needs 3/);
  assert.equal(fl.epoch, 0);
  // Signed by a replica that is not a member of the previous configuration.
  const outsider = k.proof(k.genesis, [0, 1, 2, 3, 9].map((id) => k.replica(id)), { signers: [0, 1, 9] });
  assert.match(fl.offer([outsider.proof]).invalid ?? '', /signer 9 is not a member of epoch 0/);
  // A membership swapped after signing does not open the certified digest.
  const swapped = { ...one.proof, membership: weak.proof.membership };
  assert.match(fl.offer([swapped]).invalid ?? '', /does not open/);
  // A gap (epoch 2 without epoch 1).
  const two = k.proof(one.config, [0, 1, 2, 4].map((id) => k.replica(id)), { signers: [0, 1, 2, 4] });
  assert.match(fl.offer([two.proof]).invalid ?? '', /does not follow epoch 0/);
  assert.equal(fl.invalidAnswers, 4);
  assert.equal(fl.epoch, 0);
  // A valid proof followed by a tampered one: the client moves to epoch 1 and reports the second.
  const badTwo = { ...two.proof, cert: { ...two.proof.cert, proof: [{ ...two.proof.cert.proof[0]!, sig: new Uint8Array(64) }, ...two.proof.cert.proof.slice(1)] } };
  out = fl.offer([one.proof, badTwo]);
  assert.equal(out.previous?.epoch, 0);
  assert.match(out.invalid ?? '', /bad signature/);
  assert.equal(fl.epoch, 1);
  assert.equal(fl.offer([two.proof]).config.epoch, 2);
  // Another cluster's proof of the same shape is refused (the domain tag differs).
  const other = new TestKeyring('another-cluster');
  const fo = MembershipFollower.fromKeyring({ ...other.cluster, clusterId: cid }, signer().proofCrypto(), 1000);
  assert.ok(fo.offer([other.proof(other.genesis, [0, 1, 2, 3, 4].map((id) => other.replica(id))).proof]).invalid);
});

test('asking is throttled, except to fetch the rest after a full answer', () => {
  const fl = MembershipFollower.fromKeyring(k.cluster, signer().proofCrypto(), 1000, 30_000);
  assert.equal(fl.shouldAsk(0, true), true);
  assert.equal(fl.shouldAsk(500, true), false);
  assert.equal(fl.shouldAsk(1000, true), true);
  assert.equal(fl.shouldAsk(5000, false), false, 'no sign of a change: wait for refreshMs');
  assert.equal(fl.shouldAsk(31_000, false), true);
  // Sixteen proofs (a full answer) that advance the client: ask again at once.
  let prev = k.genesis;
  const proofs = [];
  for (let i = 0; i < EPOCH_PROOFS_PER_ANSWER_MAX; i++) {
    const ids = i % 2 === 0 ? [0, 1, 2, 3, 4] : [0, 1, 2, 3];
    const p = k.proof(prev, ids.map((id) => k.replica(id)));
    proofs.push(p.proof);
    prev = p.config;
  }
  const out = fl.offer(proofs);
  assert.equal(out.more, true);
  assert.equal(fl.epoch, 16);
  assert.equal(fl.shouldAsk(31_001, true), true);
  assert.equal(fl.shouldAsk(31_002, true), false);
});

test('a keyring without an operator key can never change: the follower never asks', () => {
  const fl = MembershipFollower.fromKeyring({ ...k.cluster, operatorKey: undefined }, signer().proofCrypto(), 1000);
  assert.equal(fl.canChange, false);
  assert.equal(fl.shouldAsk(0, true), false);
  assert.equal(fl.shouldAsk(1e9, false), false);
});

test('the operator counts as registered while the configuration has an operator key', () => {
  const fl = MembershipFollower.fromKeyring(k.cluster, signer().proofCrypto(), 1000);
  assert.equal(fl.hasClient(0xffff_ffff), true);
  assert.equal(fl.hasClient(99), false);
});
