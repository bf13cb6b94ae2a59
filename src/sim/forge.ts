/**
 * Forging helpers for tests and the simulator's byzantine replicas: a faulty replica that signs a
 * wrong result, whether its honest core replied alone or as part of a batch.
 */
import { concatBytes, domainTag } from '../core/auth.ts';
import { decodeFrame, encodeBody, encodeSignedFrame } from '../codec/messages.ts';
import type { ReadReplyMsg, ReplyMsg } from '../core/messages.ts';
import { readReplyOf, replyOf } from '../client/request.ts';

/**
 * Given a reply frame the replica was about to send (an ordered REPLY, or a READ-REPLY), a frame with
 * the same request and a different result, validly signed by `sign` (the replica's own key): a
 * signed lie. Undefined if `frame` is not a reply.
 */
export function forgeReply(frame: Uint8Array, clusterId: string, sign: (data: Uint8Array) => Uint8Array, result: Uint8Array): Uint8Array | undefined {
  const d = decodeFrame(frame);
  const read = d.ok ? readReplyOf(d.value) : undefined;
  if (read) {
    const forged: ReadReplyMsg = { ...read.msg, result };
    const body = encodeBody(forged);
    return encodeSignedFrame({ msg: forged, body, sig: sign(concatBytes(domainTag(clusterId, 'readreply'), body)) });
  }
  const reply = d.ok ? replyOf(d.value) : undefined;
  if (!reply) return undefined;
  const forged: ReplyMsg = { ...reply.msg, result };
  const body = encodeBody(forged);
  return encodeSignedFrame({ msg: forged, body, sig: sign(concatBytes(domainTag(clusterId, 'reply'), body)) });
}
