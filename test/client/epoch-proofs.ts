/**
 * Test helper: a keyring of real ed25519 keys and epoch proofs (src/core/epochproof.ts) made the
 * way a cluster makes them: the checkpoint where the next configuration begins, signed by replicas
 * of the previous one, whose state digest opens to the new membership. The application root and
 * the client table's digest are arbitrary bytes (the proof only opens the digest to them).
 */
import { concatBytes, domainTag } from '../../src/core/auth.ts';
import { encodeBody } from '../../src/codec/messages.ts';
import type { ClusterConfig, ReplicaInfo } from '../../src/core/cluster.ts';
import { encodeMembership, genesisMembership, type MemberConfig } from '../../src/core/membership.ts';
import type { CheckpointMsg, EpochProof, Signed } from '../../src/core/messages.ts';
import { membershipDigest, stateDigestOfParts } from '../../src/core/statetree.ts';
import { createNodeSigner, sha256 } from '../../src/crypto/node.ts';
import { randomSecretKey } from '../../src/crypto/noble.ts';
import type { Signer } from '../../src/crypto/types.ts';

export class TestKeyring {
  readonly replicaSigners = new Map<number, Signer>();
  readonly clientSecrets = new Map<number, Uint8Array>();
  readonly cluster: ClusterConfig;

  constructor(clusterId = 'follow-test', clients = 2) {
    const replicas = [0, 1, 2, 3].map((id) => this.replica(id));
    const clientInfos = Array.from({ length: clients }, (_, id) => {
      const secret = randomSecretKey();
      this.clientSecrets.set(id, secret);
      return { id, publicKey: createNodeSigner(secret).publicKey };
    });
    // An operator key: without one the membership cannot change and clients never ask.
    this.cluster = { clusterId, f: 1, replicas, clients: clientInfos, operatorKey: createNodeSigner(randomSecretKey()).publicKey };
  }

  /** A replica identity (a new key for an id not seen yet; the same key after that). */
  replica(id: number, url = `ws://127.0.0.1:${9000 + id}`): ReplicaInfo {
    let signer = this.replicaSigners.get(id);
    if (!signer) this.replicaSigners.set(id, (signer = createNodeSigner(randomSecretKey())));
    return { id, url, publicKey: signer.publicKey };
  }

  get genesis(): MemberConfig {
    return genesisMembership(this.cluster).current;
  }

  /**
   * The proof that `replicas` follow `prev`, beginning at checkpoint `since` (default prev.since +
   * 128), signed by `signers` (default: the first ceil((n+f+1)/2) members of prev).
   */
  proof(prev: MemberConfig, replicas: readonly ReplicaInfo[], options: { since?: number; signers?: number[] } = {}): { proof: EpochProof; config: MemberConfig } {
    const since = options.since ?? prev.since + 128;
    const config: MemberConfig = { epoch: prev.epoch + 1, since, replicas: [...replicas].sort((a, b) => a.id - b.id), clients: prev.clients, operator: prev.operator };
    const membership = encodeMembership({ current: config });
    const root = sha256(Uint8Array.of(1, since & 255));
    const clients = sha256(Uint8Array.of(2, since & 255));
    const digest = stateDigestOfParts(sha256, root, clients, membershipDigest(sha256, membership));
    const n = prev.replicas.length;
    const f = Math.floor((n - 1) / 3);
    const signers = options.signers ?? prev.replicas.slice(0, Math.ceil((n + f + 1) / 2)).map((r) => r.id);
    const tag = domainTag(this.cluster.clusterId, 'checkpoint');
    const proofMsgs: Signed<CheckpointMsg>[] = signers.map((id) => {
      const msg: CheckpointMsg = { type: 'checkpoint', seq: since, digest, replica: id, epoch: config.epoch };
      const body = encodeBody(msg);
      return { msg, body, sig: this.replicaSigners.get(id)!.sign(concatBytes(tag, body)) };
    });
    return { proof: { epoch: config.epoch, cert: { epoch: config.epoch, seq: since, digest, proof: proofMsgs }, root, clients, membership }, config };
  }
}
