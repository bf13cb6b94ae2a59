/**
 * Equivocation evidence (src/core/evidence.ts): what verifies and what does not. Real ed25519
 * (node:crypto), fixed keys; the file goes through JSON text as `pbft evidence verify` reads it.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Authenticator, type CoreCrypto } from '../../src/core/auth.ts';
import type { ClusterConfig } from '../../src/core/cluster.ts';
import {
  EvidenceStore,
  EvidenceVerifier,
  decodeVoteEvidence,
  encodeVoteEvidence,
  evidenceFileJson,
  evidenceToJson,
  parseEvidenceFile,
  replyEvidence,
  voteConflict,
  voteEvidence,
  type Evidence,
  type EvidenceFile,
  type VoteEvidence,
  type VoteMsg,
} from '../../src/core/evidence.ts';
import { encodeMembership } from '../../src/core/membership.ts';
import type { BatchedReply, CheckpointMsg, EpochProof, ReplyBatchMsg, ReplyMsg, Signed } from '../../src/core/messages.ts';
import { buildReplyTree, replyLeaf } from '../../src/core/replytree.ts';
import { membershipDigest, stateDigestOfParts } from '../../src/core/statetree.ts';
import { createNodeSigner, NodeVerifier, sha256 } from '../../src/crypto/node.ts';

const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);
const verifier = new NodeVerifier();
const crypto = { verify: (k: Uint8Array, d: Uint8Array, s: Uint8Array) => verifier.verify(k, d, s), hash: sha256 };

function keyOf(label: string): ReturnType<typeof createNodeSigner> {
  return createNodeSigner(sha256(utf8(`pbft evidence test ${label}`)));
}

const CLUSTER_ID = 'evidence-test';
const replicaKeys = [0, 1, 2, 3].map((i) => keyOf(`replica ${i}`));
const cluster: ClusterConfig = {
  clusterId: CLUSTER_ID,
  f: 1,
  replicas: replicaKeys.map((k, id) => ({ id, url: `ws://127.0.0.1:${7001 + id}`, publicKey: k.publicKey })),
  clients: [{ id: 0, publicKey: keyOf('client 0').publicKey }],
  operatorKey: keyOf('operator').publicKey,
};

/** Signs as `id` with `key` (another replica's key to forge), in cluster `clusterId`. */
function authOf(key: ReturnType<typeof createNodeSigner>, clusterId = CLUSTER_ID): Authenticator {
  const c: CoreCrypto = { sign: (d) => key.sign(d), verify: crypto.verify, hash: sha256 };
  return new Authenticator({ ...cluster, clusterId }, c);
}

const digest = (label: string): Uint8Array => sha256(utf8(label));

function vote(type: VoteMsg['type'], replica: number, view: number, seq: number, d: string, key = replicaKeys[replica]!, clusterId = CLUSTER_ID): Signed<VoteMsg> {
  return authOf(key, clusterId).sign<VoteMsg>((type === 'preprepare' ? { type, view, seq, digest: digest(d), replica, time: 1_000 } : { type, view, seq, digest: digest(d), replica }) as VoteMsg);
}

/** Through the file format and JSON text, as the CLI reads it. */
function roundTrip(items: Evidence[], proofs: EpochProof[] = []): EvidenceFile {
  const text = JSON.stringify(evidenceFileJson(CLUSTER_ID, items.map((evidence) => ({ evidence, reportedBy: 'test' })), proofs));
  const parsed = parseEvidenceFile(JSON.parse(text));
  assert.ok(parsed.ok, parsed.ok ? '' : parsed.reason);
  return parsed.value;
}

function verifyOne(e: Evidence, proofs: EpochProof[] = [], genesis = cluster): ReturnType<EvidenceVerifier['verify']> {
  const file = roundTrip([e], proofs);
  return new EvidenceVerifier(genesis, file.proofs, crypto).verify(file.items[0]!.evidence);
}

/** Evidence whose messages are given as they are (no conflict check): what a forger would write. */
function raw(a: Signed<VoteMsg>, b: Signed<VoteMsg>, header: Partial<VoteEvidence> = {}): VoteEvidence {
  return { kind: a.msg.type, signer: a.msg.replica, epoch: 0, view: a.msg.view, seq: a.msg.seq, messages: [a, b], ...header };
}

describe('vote evidence', () => {
  for (const type of ['preprepare', 'prepare', 'commit'] as const) {
    it(`two ${type}s of one replica for one (view, seq) with different digests verify`, () => {
      const e = voteEvidence(vote(type, 2, 3, 17, 'a'), vote(type, 2, 3, 17, 'b'), 0);
      const v = verifyOne(e);
      assert.ok(v.ok, v.ok ? '' : v.reason);
      assert.equal(v.signer, 2);
      assert.match(v.verdict, /replica 2 signed two different .* for view 3, seq 17/);
    });
  }

  it('a forged signature does not verify', () => {
    const a = vote('prepare', 2, 3, 17, 'a');
    const b = vote('prepare', 2, 3, 17, 'b');
    const sig = new Uint8Array(b.sig);
    sig[5]! ^= 0x10;
    const v = verifyOne(voteEvidence(a, { ...b, sig }, 0));
    assert.equal(v.ok, false);
    assert.match(v.ok ? '' : v.reason, /signature of the PREPARE does not verify/);
  });

  it("a message signed with another replica's key in replica 2's name does not verify", () => {
    const v = verifyOne(voteEvidence(vote('commit', 2, 0, 5, 'a'), vote('commit', 2, 0, 5, 'b', replicaKeys[1]), 0));
    assert.equal(v.ok, false);
    assert.match(v.ok ? '' : v.reason, /does not verify/);
  });

  it('a body altered after signing does not verify', () => {
    const a = vote('prepare', 2, 3, 17, 'a');
    const b = vote('prepare', 2, 3, 17, 'b');
    // The body of b re-encoded with another digest, keeping b's signature.
    const forged = vote('prepare', 2, 3, 17, 'c');
    const v = verifyOne(voteEvidence(a, { msg: forged.msg, body: forged.body, sig: b.sig }, 0));
    assert.equal(v.ok, false);
  });

  it('the same digest is no conflict', () => {
    const a = vote('prepare', 2, 3, 17, 'a');
    const v = verifyOne(raw(a, a));
    assert.equal(v.ok, false);
    assert.match(v.ok ? '' : v.reason, /no conflict: the same digest/);
    assert.match(voteConflict(a, vote('prepare', 2, 3, 17, 'a')) ?? '', /same digest/);
  });

  it('a different slot is no conflict (another seq, another view)', () => {
    for (const [view, seq] of [[3, 18], [4, 17]]) {
      const v = verifyOne(raw(vote('prepare', 2, 3, 17, 'a'), vote('prepare', 2, view!, seq!, 'b')));
      assert.equal(v.ok, false);
      assert.match(v.ok ? '' : v.reason, /no conflict: different slots/);
    }
  });

  it('a PREPARE and a COMMIT (or a PRE-PREPARE and a COMMIT) with different digests verify as mixed', () => {
    const v1 = verifyOne(voteEvidence(vote('prepare', 2, 3, 17, 'a'), vote('commit', 2, 3, 17, 'b'), 0));
    assert.ok(v1.ok, v1.ok ? '' : v1.reason);
    assert.match(v1.verdict, /replica 2 signed a (PREPARE and a COMMIT|COMMIT and a PREPARE) with different digests for view 3, seq 17/);
    const v2 = verifyOne(voteEvidence(vote('preprepare', 3, 3, 17, 'a'), vote('commit', 3, 3, 17, 'b'), 0));
    assert.ok(v2.ok, v2.ok ? '' : v2.reason);
    assert.equal(voteEvidence(vote('preprepare', 3, 3, 17, 'a'), vote('commit', 3, 3, 17, 'b'), 0).kind, 'mixed');
  });

  it('a PREPARE and a COMMIT with the same digest, or votes of two signers, are no conflict', () => {
    const v1 = verifyOne(raw(vote('prepare', 2, 3, 17, 'a'), vote('commit', 2, 3, 17, 'a'), { kind: 'mixed' }));
    assert.match(v1.ok ? '' : v1.reason, /same digest/);
    const v2 = verifyOne(raw(vote('prepare', 2, 3, 17, 'a'), vote('prepare', 1, 3, 17, 'b')));
    assert.match(v2.ok ? '' : v2.reason, /two different replicas/);
  });

  it('an unknown signer does not verify (not in cluster.json)', () => {
    const stranger = keyOf('stranger');
    const v = verifyOne(voteEvidence(vote('prepare', 9, 0, 1, 'a', stranger), vote('prepare', 9, 0, 1, 'b', stranger), 0));
    assert.equal(v.ok, false);
    assert.match(v.ok ? '' : v.reason, /unknown signer: replica 9 is not a member of epoch 0/);
  });

  it('a header that names another signer or slot than the messages does not verify', () => {
    const a = vote('prepare', 2, 3, 17, 'a');
    const b = vote('prepare', 2, 3, 17, 'b');
    for (const header of [{ signer: 1 }, { seq: 18 }, { view: 4 }, { kind: 'commit' as const }, { kind: 'mixed' as const }]) {
      const v = verifyOne(raw(a, b, header));
      assert.equal(v.ok, false, JSON.stringify(header));
      assert.match(v.ok ? '' : v.reason, /names another/);
    }
  });

  it("messages signed for another cluster do not verify (the domain tag names the cluster)", () => {
    const v = verifyOne(voteEvidence(vote('prepare', 2, 0, 1, 'a', replicaKeys[2], 'other'), vote('prepare', 2, 0, 1, 'b', replicaKeys[2], 'other'), 0));
    assert.equal(v.ok, false);
  });

  it('evidence of a later epoch needs a proof of that configuration', () => {
    const e = voteEvidence(vote('prepare', 2, 7, 300, 'a'), vote('prepare', 2, 7, 300, 'b'), 1);
    const none = verifyOne(e);
    assert.equal(none.ok, false);
    assert.match(none.ok ? '' : none.reason, /keys of epoch 1 are not proven/);
    // Epoch 1: replica 2 has a new key; the proof is signed by 3 of the 4 replicas of epoch 0.
    const newKey = keyOf('replica 2, epoch 1');
    const replicas = cluster.replicas.map((r) => (r.id === 2 ? { ...r, publicKey: newKey.publicKey } : r));
    const membership = encodeMembership({ current: { epoch: 1, since: 256, replicas, clients: cluster.clients, operator: cluster.operatorKey } });
    const root = digest('root');
    const clients = digest('clients');
    const stateDigest = stateDigestOfParts(sha256, root, clients, membershipDigest(sha256, membership));
    const proof: EpochProof = {
      epoch: 1,
      root,
      clients,
      membership,
      cert: {
        epoch: 1,
        seq: 256,
        digest: stateDigest,
        proof: [0, 1, 3].map((id) => authOf(replicaKeys[id]!).sign<CheckpointMsg>({ type: 'checkpoint', seq: 256, digest: stateDigest, replica: id, epoch: 1 })),
      },
    };
    // Signed with the old key: does not verify under epoch 1's key.
    const old = verifyOne(e, [proof]);
    assert.equal(old.ok, false);
    const fresh = voteEvidence(vote('prepare', 2, 7, 300, 'a', newKey), vote('prepare', 2, 7, 300, 'b', newKey), 1);
    const v = verifyOne(fresh, [proof]);
    assert.ok(v.ok, v.ok ? '' : v.reason);
    // A proof signed by only two replicas of epoch 0 proves nothing.
    const weak: EpochProof = { ...proof, cert: { ...proof.cert, proof: proof.cert.proof.slice(0, 2) } };
    const w = verifyOne(fresh, [weak]);
    assert.equal(w.ok, false);
    assert.match(w.ok ? '' : w.reason, /not proven/);
  });
});

describe('reply evidence', () => {
  const reply = (replica: number, result: string, view = 0): Signed<ReplyMsg> =>
    authOf(replicaKeys[replica]!).sign<ReplyMsg>({ type: 'reply', view, client: 0, timestamp: 1_700_000_000_000_000, replica, result: utf8(result) });

  function batched(replica: number, result: string, index = 1): BatchedReply {
    const results = ['x', result, 'y'];
    const leaves = results.map((r, i) => replyLeaf(sha256, i === index ? 0 : 5 + i, 1_700_000_000_000_000, utf8(r)));
    const tree = buildReplyTree(sha256, leaves);
    const batch = authOf(replicaKeys[replica]!).sign<ReplyBatchMsg>({ type: 'replybatch', view: 2, replica, seq: 40, count: 3, root: tree.root });
    return {
      msg: { type: 'reply', view: 2, replica, client: 0, timestamp: 1_700_000_000_000_000, result: utf8(result) },
      batch,
      index,
      path: tree.paths[index]!,
    };
  }

  it('a REPLY and a REPLY-BATCH leaf with different results verify', () => {
    const v = verifyOne(replyEvidence(reply(1, 'one'), batched(1, 'two'), 0));
    assert.ok(v.ok, v.ok ? '' : v.reason);
    assert.match(v.verdict, /replica 1 signed two different results for the request of client 0/);
  });

  it('the same result re-sent in another view is no conflict', () => {
    const v = verifyOne({ kind: 'reply', signer: 1, epoch: 0, client: 0, timestamp: 1_700_000_000_000_000, messages: [reply(1, 'one', 0), reply(1, 'one', 3)] });
    assert.equal(v.ok, false);
    assert.match(v.ok ? '' : v.reason, /same result/);
  });

  it('a leaf whose path does not lead to the signed root does not verify', () => {
    const b = batched(1, 'two');
    const v = verifyOne(replyEvidence(reply(1, 'one'), { ...b, msg: { ...b.msg, result: utf8('three') } }, 0));
    assert.equal(v.ok, false);
    assert.match(v.ok ? '' : v.reason, /Merkle path/);
  });
});

describe('evidence file', () => {
  it('refuses what is not an evidence file, with a reason', () => {
    const good = JSON.parse(JSON.stringify(evidenceFileJson(CLUSTER_ID, [{ evidence: voteEvidence(vote('prepare', 2, 0, 1, 'a'), vote('prepare', 2, 0, 1, 'b'), 0) }], [])));
    const cases: Array<[unknown, RegExp]> = [
      [[], /expected an object/],
      [{ ...good, format: 'x' }, /not an evidence file/],
      [{ ...good, version: 2 }, /version 2 is not supported/],
      [{ ...good, clusterId: '' }, /clusterId/],
      [{ ...good, evidence: [{ ...good.evidence[0], messages: [good.evidence[0].messages[0]] }] }, /expected two messages/],
      [{ ...good, evidence: [{ ...good.evidence[0], messages: [{ body: 'zz', sig: '00' }, good.evidence[0].messages[1]] }] }, /hex/],
      [{ ...good, evidence: [{ ...good.evidence[0], kind: 'checkpoint' }] }, /kind/],
    ];
    for (const [json, re] of cases) {
      const r = parseEvidenceFile(json);
      assert.equal(r.ok, false);
      assert.match(r.ok ? '' : r.reason, re);
    }
  });
});

describe('EvidenceStore', () => {
  it('keeps one per (kind, signer, view, seq), at most so many per signer and in all, and counts the rest', () => {
    const store = new EvidenceStore(5, 2);
    const ev = (signer: number, seq: number) => voteEvidence(vote('prepare', signer, 0, seq, 'a'), vote('prepare', signer, 0, seq, 'b'), 0);
    assert.equal(store.add(ev(1, 1)), 'added');
    assert.equal(store.add(ev(1, 1)), 'known');
    assert.equal(store.wants('prepare/1/0/1', 1), false);
    assert.equal(store.add(ev(1, 2)), 'added');
    assert.equal(store.wants('prepare/1/0/3', 1), false);
    assert.equal(store.add(ev(2, 1)), 'added');
    assert.equal(store.add(ev(3, 1)), 'added');
    assert.equal(store.add(ev(0, 1)), 'added');
    assert.equal(store.wants('prepare/2/0/9', 2), false);
    assert.deepEqual(store.summary(), { held: 5, byKind: { preprepare: 0, prepare: 5, commit: 0, mixed: 0 }, signers: [0, 1, 2, 3], notKept: 2 });
  });

  it('round-trips its durable record', () => {
    const e = voteEvidence(vote('commit', 3, 4, 9, 'b'), vote('commit', 3, 4, 9, 'a'), 2);
    const d = decodeVoteEvidence(encodeVoteEvidence(e));
    assert.ok(d.ok);
    assert.deepEqual(evidenceToJson(d.value), evidenceToJson(e));
  });
});
