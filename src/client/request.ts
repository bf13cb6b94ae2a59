/** Signed requests and reply verification, shared by the SDK and the simulator. No node-only imports. */
import { concatBytes, domainTag } from '../core/auth.ts';
import { encodeBody } from '../codec/messages.ts';
import type { ClusterConfig } from '../core/cluster.ts';
import type { ReplyMsg, RequestMsg, Signed } from '../core/messages.ts';
import type { Signer, Verifier } from '../crypto/types.ts';

export class RequestSigner {
  private readonly requestTag: Uint8Array;
  private readonly replyTag: Uint8Array;
  private readonly replicaKeys: Uint8Array[];

  constructor(
    readonly cluster: ClusterConfig,
    readonly clientId: number,
    private readonly signer: Signer,
    private readonly verifier: Verifier,
  ) {
    this.requestTag = domainTag(cluster.clusterId, 'request');
    this.replyTag = domainTag(cluster.clusterId, 'reply');
    this.replicaKeys = cluster.replicas.map((r) => r.publicKey);
  }

  sign(timestamp: number, op: Uint8Array): Signed<RequestMsg> {
    const msg: RequestMsg = { type: 'request', client: this.clientId, timestamp, op };
    const body = encodeBody(msg);
    return { msg, body, sig: this.signer.sign(concatBytes(this.requestTag, body)) };
  }

  verifyReply(reply: Signed<ReplyMsg>): boolean {
    const key = this.replicaKeys[reply.msg.replica];
    return key !== undefined && this.verifier.verify(key, concatBytes(this.replyTag, reply.body), reply.sig);
  }
}
