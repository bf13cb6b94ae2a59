/** Signed requests and reply verification, shared by the SDK and the simulator. No node-only imports. */
import { sha256 as nobleSha256 } from '@noble/hashes/sha2.js';
import { bytesEqual, concatBytes, domainTag } from '../core/auth.ts';
import { encodeBody } from '../codec/messages.ts';
import type { ClusterConfig, ReplicaInfo } from '../core/cluster.ts';
import type { ProofCrypto } from '../core/epochproof.ts';
import type { AnyReply, BatchedReply, Frame, ReadMsg, ReadReplyMsg, RefusalMsg, ReplyMsg, RequestMsg, Signed } from '../core/messages.ts';
import { replyLeaf, replyRootFromPath } from '../core/replytree.ts';
import type { Signer, Verifier } from '../crypto/types.ts';

/** The reply a frame carries (signed alone, or proven by a signed batch root), if any. */
export function replyOf(frame: Frame): AnyReply | undefined {
  if (frame.kind === 'reply') return frame.reply;
  if (frame.kind === 'signed' && frame.signed.msg.type === 'reply') return frame.signed as Signed<ReplyMsg>;
  return undefined;
}

/** The signed READ-REPLY (the answer to a read-only request) a frame carries, if any. */
export function readReplyOf(frame: Frame): Signed<ReadReplyMsg> | undefined {
  if (frame.kind === 'signed' && frame.signed.msg.type === 'readreply') return frame.signed as Signed<ReadReplyMsg>;
  return undefined;
}

/** The signed REFUSAL a frame carries, if any. */
export function refusalOf(frame: Frame): Signed<RefusalMsg> | undefined {
  if (frame.kind === 'signed' && frame.signed.msg.type === 'refusal') return frame.signed as Signed<RefusalMsg>;
  return undefined;
}

export function isBatchedReply(reply: AnyReply): reply is BatchedReply {
  return 'batch' in reply;
}

export class RequestSigner {
  private readonly requestTag: Uint8Array;
  private readonly replyTag: Uint8Array;
  private readonly replyBatchTag: Uint8Array;
  private readonly refusalTag: Uint8Array;
  private readonly readTag: Uint8Array;
  private readonly readReplyTag: Uint8Array;
  /** The public key of each replica of the configuration in force, by id (ids need not be dense). */
  private replicaKeys = new Map<number, Uint8Array>();
  /** The last reply-tree root computed from a path, with copies of everything it was computed from (see rootOf). */
  private lastRoot: { client: number; timestamp: number; result: Uint8Array; index: number; count: number; path: Uint8Array[]; root: Uint8Array } | undefined;

  constructor(
    readonly cluster: ClusterConfig,
    readonly clientId: number,
    private readonly signer: Signer,
    private readonly verifier: Verifier,
    /** SHA-256 for reply paths (default @noble/hashes; pass node:crypto's where available: faster). */
    private readonly hash: (data: Uint8Array) => Uint8Array = nobleSha256,
  ) {
    this.requestTag = domainTag(cluster.clusterId, 'request');
    this.replyTag = domainTag(cluster.clusterId, 'reply');
    this.replyBatchTag = domainTag(cluster.clusterId, 'replybatch');
    this.refusalTag = domainTag(cluster.clusterId, 'refusal');
    this.readTag = domainTag(cluster.clusterId, 'read');
    this.readReplyTag = domainTag(cluster.clusterId, 'readreply');
    this.setReplicas(cluster.replicas);
  }

  /**
   * The replicas whose signatures count from now on: those of the configuration the client follows
   * (the keyring's at first; then each one learned from an epoch proof, src/client/follow.ts).
   */
  setReplicas(replicas: readonly ReplicaInfo[]): void {
    this.replicaKeys = new Map(replicas.map((r) => [r.id, r.publicKey]));
  }

  /** Signature checks and SHA-256 for verifying epoch proofs (src/core/epochproof.ts). */
  proofCrypto(): ProofCrypto {
    return { verify: (key, data, sig) => this.verifier.verify(key, data, sig), hash: this.hash };
  }

  /** A signed request; `repliers` names the replicas asked to reply (RequestMsg.repliers), undefined: all. */
  sign(timestamp: number, op: Uint8Array, repliers?: readonly number[]): Signed<RequestMsg> {
    const msg: RequestMsg = repliers === undefined ? { type: 'request', client: this.clientId, timestamp, op } : { type: 'request', client: this.clientId, timestamp, op, repliers };
    const body = encodeBody(msg);
    return { msg, body, sig: this.signer.sign(concatBytes(this.requestTag, body)) };
  }

  /** A read-only request (src/core/reads.ts): its own message type and domain tag, never ordered. */
  signRead(timestamp: number, op: Uint8Array): Signed<ReadMsg> {
    const msg: ReadMsg = { type: 'read', client: this.clientId, timestamp, op };
    const body = encodeBody(msg);
    return { msg, body, sig: this.signer.sign(concatBytes(this.readTag, body)) };
  }

  /** True when the replica named in the READ-REPLY signed it (a member of the configuration in force). */
  verifyReadReply(reply: Signed<ReadReplyMsg>): boolean {
    const key = this.replicaKeys.get(reply.msg.replica);
    return key !== undefined && this.verifier.verify(key, concatBytes(this.readReplyTag, reply.body), reply.sig);
  }

  /** True when the replica named in the refusal signed it, and it refuses exactly `request` (ordered or read-only). */
  verifyRefusal(refusal: Signed<RefusalMsg>, request: Signed<RequestMsg | ReadMsg>): boolean {
    const m = refusal.msg;
    const key = this.replicaKeys.get(m.replica);
    if (key === undefined || m.client !== request.msg.client || m.timestamp !== request.msg.timestamp) return false;
    if (!bytesEqual(m.digest, this.hash(request.body))) return false;
    return this.verifier.verify(key, concatBytes(this.refusalTag, refusal.body), refusal.sig);
  }

  /**
   * True when the replica named in the reply signed it: directly, or by signing the root of its
   * batch's reply tree that this reply's path leads to.
   */
  verifyReply(reply: AnyReply): boolean {
    const key = this.replicaKeys.get(reply.msg.replica);
    if (key === undefined) return false;
    if (!isBatchedReply(reply)) return this.verifier.verify(key, concatBytes(this.replyTag, reply.body), reply.sig);
    const b = reply.batch.msg;
    const m = reply.msg;
    if (b.replica !== m.replica || b.view !== m.view) return false;
    const root = this.rootOf(m.client, m.timestamp, m.result, reply.index, b.count, reply.path);
    if (!root || !bytesEqual(root, b.root)) return false;
    return this.verifier.verify(key, concatBytes(this.replyBatchTag, reply.batch.body), reply.batch.sig);
  }

  /**
   * The root that the reply's leaf and path imply (replyRootFromPath). Correct replicas execute the
   * same batch, so their reply trees are the same and the f+1 replies a client checks carry the same
   * leaf and path: the second is answered from the first's computation when every input is equal
   * byte for byte (a pure function of them; the inputs are kept as copies), which saves the
   * leaf's and the path's hashes (about 7 per reply in a batch of 64).
   */
  private rootOf(client: number, timestamp: number, result: Uint8Array, index: number, count: number, path: readonly Uint8Array[]): Uint8Array | undefined {
    const last = this.lastRoot;
    if (
      last !== undefined &&
      last.client === client &&
      last.timestamp === timestamp &&
      last.index === index &&
      last.count === count &&
      last.path.length === path.length &&
      bytesEqual(last.result, result) &&
      path.every((p, i) => bytesEqual(p, last.path[i]!))
    ) {
      return last.root;
    }
    const root = replyRootFromPath(this.hash, replyLeaf(this.hash, client, timestamp, result), index, count, path);
    if (root !== undefined) this.lastRoot = { client, timestamp, result: result.slice(), index, count, path: path.map((p) => p.slice()), root };
    return root;
  }
}
