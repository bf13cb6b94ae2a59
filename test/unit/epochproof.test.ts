/**
 * Epoch proofs (src/core/epochproof.ts): a configuration is learned from the one before it and a
 * proof, never from whoever sends it. Proofs come from a simulated cluster that really changed its
 * membership; each tampering is refused with a reason.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sha256 } from '@noble/hashes/sha2.js';
import { SimCluster } from '../../src/sim/cluster.ts';
import { followEpochProofs, verifyEpochProof, type ProofCrypto } from '../../src/core/epochproof.ts';
import { genesisMembership, encodeMembership } from '../../src/core/membership.ts';
import type { EpochProof } from '../../src/core/messages.ts';

function clusterWithTwoChanges(): { sim: SimCluster; proofs: EpochProof[] } {
  const sim = new SimCluster({ seed: 21, f: 1, spareReplicas: 1, operator: true, clients: 2, requestsPerClient: 300 });
  sim.run(100);
  sim.reconfigure({ kind: 'add-replica', replica: sim.replicaInfo[4]! });
  assert.ok(sim.runUntil(() => sim.hosts[0]!.replica!.status().epoch === 1, 3_000));
  sim.reconfigure({ kind: 'remove-replica', id: 1 });
  assert.ok(sim.runUntil(() => sim.hosts[0]!.replica!.status().epoch === 2, 3_000));
  const r = sim.hosts[0]!.replica!;
  return { sim, proofs: [r.epochProofs.get(1)!, r.epochProofs.get(2)!] };
}

const { sim, proofs } = clusterWithTwoChanges();
const crypto: ProofCrypto = { verify: (k, d, s) => sim.keys.verifier.verify(k, d, s), hash: (d) => sha256(d) };
const genesis = genesisMembership(sim.cluster).current;
const id = sim.cluster.clusterId;

test('a chain of proofs leads from the keyring to the configuration in force', () => {
  assert.equal(proofs.length, 2);
  const one = verifyEpochProof(id, genesis, proofs[0]!, crypto);
  assert.ok(one.ok, one.ok ? '' : one.reason);
  assert.deepEqual(one.config.replicas.map((r) => r.id), [0, 1, 2, 3, 4]);
  const end = followEpochProofs(id, genesis, [proofs[1]!, proofs[0]!], crypto);
  assert.equal(end.reason, undefined);
  assert.equal(end.config.epoch, 2);
  assert.deepEqual(end.config.replicas.map((r) => r.id), [0, 2, 3, 4]);
  assert.equal(end.config.since, proofs[1]!.cert.seq);
});

test('a proof is checked against the configuration before it: skipping one fails', () => {
  const r = verifyEpochProof(id, genesis, proofs[1]!, crypto);
  assert.equal(r.ok, false);
  assert.match(r.ok ? '' : r.reason, /does not follow epoch 0/);
  const stopped = followEpochProofs(id, genesis, [proofs[1]!], crypto);
  assert.equal(stopped.config.epoch, 0);
});

test('tampered proofs are refused with a reason', () => {
  const p = proofs[0]!;
  const reasonOf = (bad: EpochProof): string => {
    const r = verifyEpochProof(id, genesis, bad, crypto);
    assert.equal(r.ok, false);
    return r.ok ? '' : r.reason;
  };
  // Another membership (a replica the quorum never admitted) does not open the digest.
  const forged = genesisMembership({ ...sim.cluster, replicas: [...sim.cluster.replicas, { id: 9, url: 'sim://9', publicKey: new Uint8Array(32).fill(7) }] });
  forged.current = { ...forged.current, epoch: 1, since: p.cert.seq };
  assert.match(reasonOf({ ...p, membership: encodeMembership(forged) }), /does not open/);
  // Fewer signatures than a quorum of the previous configuration.
  assert.match(reasonOf({ ...p, cert: { ...p.cert, proof: p.cert.proof.slice(0, 2) } }), /2 signatures; epoch 0 needs 3/);
  // A signature that does not verify.
  const badSig = { ...p.cert.proof[0]!, sig: new Uint8Array(64) };
  assert.match(reasonOf({ ...p, cert: { ...p.cert, proof: [badSig, ...p.cert.proof.slice(1)] } }), /bad signature/);
  // One replica counted twice.
  assert.match(reasonOf({ ...p, cert: { ...p.cert, proof: [p.cert.proof[0]!, p.cert.proof[0]!, p.cert.proof[1]!] } }), /signed twice/);
  // Signed for another cluster: the domain tag differs.
  assert.equal(verifyEpochProof('another-cluster', genesis, p, crypto).ok, false);
});
