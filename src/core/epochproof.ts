/**
 * Verifying an epoch proof (membership.ts) with nothing but the previous configuration: what a
 * client, a tool or a replica that missed a reconfiguration does to learn the next configuration
 * without trusting whoever sent it. Pure: no I/O.
 *
 * A proof of epoch e+1 is the certificate of the checkpoint c at which it began, signed by a quorum
 * of epoch e's replicas (ceil((n+f+1)/2) of them, quorum.ts), and the opening of that checkpoint's
 * state digest: the application root, the client table's digest and the membership bytes, which
 * hash to the certified digest (statetree.ts). The membership must be epoch e+1, beginning at c.
 */
import { bytesEqual, bytesKey, concatBytes, domainTag } from './auth.ts';
import type { EpochProof } from './messages.ts';
import { decodeMembership, faultsFor, modelOf, type MemberConfig } from './membership.ts';
import { quorumFor } from './quorum.ts';
import { membershipDigest, stateDigestOfParts } from './statetree.ts';

export interface ProofCrypto {
  verify(publicKey: Uint8Array, data: Uint8Array, signature: Uint8Array): boolean;
  hash(data: Uint8Array): Uint8Array;
}

export type ProofResult = { ok: true; config: MemberConfig } | { ok: false; reason: string };

export function verifyEpochProof(clusterId: string, prev: MemberConfig, proof: EpochProof, crypto: ProofCrypto): ProofResult {
  const fail = (reason: string): ProofResult => ({ ok: false, reason: `epoch proof ${proof.epoch}: ${reason}` });
  if (proof.epoch !== prev.epoch + 1 || proof.cert.epoch !== proof.epoch) return fail(`does not follow epoch ${prev.epoch}`);
  const cert = proof.cert;
  if (cert.seq <= prev.since) return fail('begins before the previous configuration');
  const keys = new Map(prev.replicas.map((r) => [r.id, r.publicKey]));
  const tag = domainTag(clusterId, 'checkpoint');
  const signers = new Set<number>();
  for (const c of cert.proof) {
    const m = c.msg;
    if (m.type !== 'checkpoint' || m.seq !== cert.seq || m.epoch !== cert.epoch || !bytesEqual(m.digest, cert.digest)) return fail('checkpoint messages do not match the certificate');
    const key = keys.get(m.replica);
    if (!key || signers.has(m.replica)) return fail(`signer ${m.replica} is not a member of epoch ${prev.epoch}, or signed twice`);
    if (!crypto.verify(key, concatBytes(tag, c.body), c.sig)) return fail(`bad signature of replica ${m.replica}`);
    signers.add(m.replica);
  }
  const n = prev.replicas.length;
  const model = modelOf(prev);
  const q = quorumFor(n, faultsFor(n, model), {}, model);
  if (signers.size < q.checkpoints) return fail(`${signers.size} signatures; epoch ${prev.epoch} needs ${q.checkpoints}`);
  const digest = stateDigestOfParts(crypto.hash, proof.root, proof.clients, membershipDigest(crypto.hash, proof.membership));
  if (!bytesEqual(digest, cert.digest)) return fail('the membership does not open the certified state digest');
  const m = decodeMembership(proof.membership);
  if (!m.ok) return fail(m.reason);
  const config = m.value.current;
  if (config.epoch !== proof.epoch || config.since !== cert.seq || m.value.next) return fail('the membership is not the start of its epoch');
  if (modelOf(config) !== model) return fail(`the membership changes the fault model from ${model} to ${modelOf(config)}`);
  return { ok: true, config };
}

/**
 * Follows a chain of proofs from a known configuration; stops at the first that does not verify.
 * Returns the newest configuration reached and, if it stopped early, why.
 */
export function followEpochProofs(clusterId: string, from: MemberConfig, proofs: readonly EpochProof[], crypto: ProofCrypto): { config: MemberConfig; reason?: string } {
  let config = from;
  const seen = new Set<string>();
  for (const proof of [...proofs].sort((a, b) => a.epoch - b.epoch)) {
    if (proof.epoch <= config.epoch) continue;
    const key = bytesKey(proof.cert.digest);
    if (seen.has(key)) continue;
    seen.add(key);
    const r = verifyEpochProof(clusterId, config, proof, crypto);
    if (!r.ok) return { config, reason: r.reason };
    config = r.config;
  }
  return { config };
}
