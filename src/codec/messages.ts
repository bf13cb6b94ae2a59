/**
 * CBOR wire format of protocol messages (positional arrays, a small integer tag first).
 *
 * Frame (one WebSocket message):
 *   signed message        [0, body, sig]
 *   pre-prepare + batch   [0, body, sig, [[requestBody, requestSig], ...]]
 *   batched reply         [2, replyBatchBody, sig, [client, timestamp, result, index, [pathDigest, ...]]]
 *   link message          [1, [tag, ...fields]]
 *
 * Signed bodies:
 *   request     [1, client, timestamp, op] or [1, client, timestamp, op, [replica, ...]]
 *                                                                (the replicas asked to reply; absent: all)
 *   reply       [2, view, client, timestamp, replica, result]
 *   pre-prepare [3, view, seq, digest, replica, time]      (time: ms since the Unix epoch, in the digest)
 *   prepare     [4, view, seq, digest, replica]
 *   commit      [5, view, seq, digest, replica]
 *   checkpoint  [6, seq, digest, replica, epoch]
 *   view-change [7, view, replica, checkpointCert, [[prePrepare, [prepare, ...]], ...]]
 *   new-view    [8, view, replica, [viewChange, ...], [prePrepare, ...]]
 *   reply-batch [9, view, replica, seq, count, root]
 *   refusal     [10, replica, client, timestamp, digest, reason, limit]   reason 0 op-too-large, 1 not-read-only
 *   suspect     [11, view, replica]
 *   read        [12, client, timestamp, op]                        (a read-only request, unordered)
 *   read-reply  [13, client, timestamp, replica, epoch, result]   (its answer; not a REPLY)
 * where a nested signed message is [body, sig] and checkpointCert is [seq, digest, [checkpoint, ...], epoch].
 *
 * Link messages that carry a batch carry its time too (the committed digest covers both):
 *   fetched     [21, [[seq, [commit, ...], [request, ...], time], ...], checkpointCert, [epochProof, ...]]
 *   batch       [23, seq, digest, [request, ...], time]
 *
 * Decoding never throws on peer input: it returns { ok: false, reason }.
 */
import type {
  BatchedReply,
  ReplyBatchMsg,
  CheckpointMsg,
  CommitMsg,
  CommittedEntry,
  Frame,
  LinkMessage,
  PrepareMsg,
  PrePrepareMsg,
  RequestMsg,
  Signed,
  StatePart,
  StateReply,
  ViewChangeMsg,
} from '../core/messages.ts';
import {
  asArray,
  asBytes,
  asUint,
  decodeCbor,
  encodeCbor,
  fail,
  guarded,
  type Decoded,
} from './cbor.ts';
import { SIGNATURE_LENGTH, CODEC_LIMITS, pair, checkpointCertArray, assertNever, asDigest, signedFrom, nestedSigned, checkpointCertFrom, epochProofArray, epochProofFrom } from '../core/body.ts';
import type { FrameCodec } from '../core/types.ts';

// The body encoding is the core's (src/core/body.ts); re-exported for the shell's and tools' convenience.
export { assertNever, CODEC_LIMITS, decodeBody, DIGEST_LENGTH, encodeBody, SIGNATURE_LENGTH } from '../core/body.ts';

// --- encoding ----------------------------------------------------------------------------------

/** A client's reply proven by the signed REPLY-BATCH of its batch and its Merkle path. */
export function encodeBatchedReplyFrame(reply: BatchedReply): Uint8Array {
  const m = reply.msg;
  return encodeCbor([2, reply.batch.body, reply.batch.sig, [m.client, m.timestamp, m.result, reply.index, reply.path]]);
}

export function encodeSignedFrame(signed: Signed, batch?: readonly Signed<RequestMsg>[]): Uint8Array {
  if (batch === undefined) return encodeCbor([0, signed.body, signed.sig]);
  return encodeCbor([0, signed.body, signed.sig, batch.map(pair)]);
}

function committedEntryArray(e: CommittedEntry): unknown[] {
  return [e.seq, e.commits.map(pair), e.batch.map(pair), e.time];
}

function statePartArray(p: StatePart): unknown[] {
  switch (p.kind) {
    case 'meta':
      return [0];
    case 'leaves':
      return p.have ? [1, p.groups, p.have] : [1, p.groups];
    case 'partitions':
      return [2, p.indices];
    default:
      return assertNever(p);
  }
}

function stateReplyArray(r: StateReply): unknown[] {
  switch (r.kind) {
    case 'meta':
      return [0, checkpointCertArray(r.checkpoint), r.partitionCount, r.groupDigests, r.clients, r.membership];
    case 'leaves':
      return [1, r.groups.map((g) => (g.positions ? [g.group, g.leaves, g.positions] : [g.group, g.leaves]))];
    case 'partitions':
      return [2, r.indices, r.compressed, r.rawBytes];
    case 'unavailable':
      return [3, checkpointCertArray(r.stable)];
    default:
      return assertNever(r);
  }
}

function linkArray(m: LinkMessage): unknown[] {
  switch (m.type) {
    case 'fetch':
      return [20, m.from, m.to, m.epoch];
    case 'fetched':
      return [21, m.entries.map(committedEntryArray), checkpointCertArray(m.stable), m.proofs.map(epochProofArray)];
    case 'batchreq':
      return [22, m.seq, m.digest];
    case 'batch':
      return [23, m.seq, m.digest, m.batch.map(pair), m.time];
    case 'statereq':
      return [24, m.seq, statePartArray(m.part)];
    case 'state':
      return [25, m.seq, stateReplyArray(m.reply)];
    case 'newviewreq':
      return [26, m.view];
    case 'epochsreq':
      return [27, m.epoch];
    case 'epochs':
      return [28, m.proofs.map(epochProofArray)];
    default:
      return assertNever(m);
  }
}

export function encodeLinkFrame(msg: LinkMessage): Uint8Array {
  return encodeCbor([1, linkArray(msg)]);
}

// --- decoding ----------------------------------------------------------------------------------

function committedEntryFrom(v: unknown): CommittedEntry {
  const arr = asArray(v, 'entry', 4);
  if (arr.length !== 4) fail('entry: wrong arity');
  return {
    seq: asUint(arr[0], 'entry.seq'),
    commits: asArray(arr[1], 'entry.commits', CODEC_LIMITS.signaturesMax).map((p) =>
      nestedSigned(p, 'commit', 'entry.commit'),
    ) as Signed<CommitMsg>[],
    batch: asArray(arr[2], 'entry.batch', CODEC_LIMITS.batchRequestsMax).map((p) =>
      nestedSigned(p, 'request', 'entry.request'),
    ) as Signed<RequestMsg>[],
    time: asUint(arr[3], 'entry.time'),
  };
}

function uintList(v: unknown, what: string): number[] {
  return asArray(v, what, CODEC_LIMITS.listMax).map((x) => asUint(x, what));
}

function statePartFrom(v: unknown): StatePart {
  const arr = asArray(v, 'statePart', 3);
  switch (asUint(arr[0], 'statePart.kind', 255)) {
    case 0:
      return { kind: 'meta' };
    case 1: {
      const groups = uintList(arr[1], 'statePart.groups');
      if (arr[2] === undefined) return { kind: 'leaves', groups };
      const have = asArray(arr[2], 'statePart.have', CODEC_LIMITS.listMax).map((b) =>
        asBytes(b, 'statePart.have', undefined, CODEC_LIMITS.blobBytesMax),
      );
      if (have.length !== groups.length) return fail('statePart.have: one entry per group');
      return { kind: 'leaves', groups, have };
    }
    case 2:
      return { kind: 'partitions', indices: uintList(arr[1], 'statePart.indices') };
    default:
      return fail('statePart: unknown kind');
  }
}

function digestList(v: unknown, what: string): Uint8Array[] {
  return asArray(v, what, CODEC_LIMITS.listMax).map((d) => asDigest(d, what));
}

function stateReplyFrom(v: unknown): StateReply {
  const arr = asArray(v, 'stateReply', 6);
  switch (asUint(arr[0], 'stateReply.kind', 255)) {
    case 0:
      return {
        kind: 'meta',
        checkpoint: checkpointCertFrom(arr[1], 'state.checkpoint'),
        partitionCount: asUint(arr[2], 'state.partitionCount', 1 << 20),
        groupDigests: digestList(arr[3], 'state.groupDigests'),
        clients: asBytes(arr[4], 'state.clients', undefined, CODEC_LIMITS.blobBytesMax),
        membership: asBytes(arr[5], 'state.membership', undefined, CODEC_LIMITS.blobBytesMax),
      };
    case 1:
      return {
        kind: 'leaves',
        groups: asArray(arr[1], 'state.groups', CODEC_LIMITS.listMax).map((g) => {
          const ga = asArray(g, 'state.group', 3);
          const group = asUint(ga[0], 'state.group.index');
          const leaves = digestList(ga[1], 'state.group.leaves');
          if (ga[2] === undefined) return { group, leaves };
          const positions = uintList(ga[2], 'state.group.positions');
          if (positions.length !== leaves.length) return fail('state.group.positions: one per leaf');
          return { group, leaves, positions };
        }),
      };
    case 2:
      return {
        kind: 'partitions',
        indices: uintList(arr[1], 'state.indices'),
        compressed: asBytes(arr[2], 'state.compressed', undefined, CODEC_LIMITS.blobBytesMax),
        rawBytes: asUint(arr[3], 'state.rawBytes'),
      };
    case 3:
      return { kind: 'unavailable', stable: checkpointCertFrom(arr[1], 'state.stable') };
    default:
      return fail('stateReply: unknown kind');
  }
}

function linkFrom(v: unknown): LinkMessage {
  const arr = asArray(v, 'link', 5);
  switch (asUint(arr[0], 'link.type', 255)) {
    case 20:
      return { type: 'fetch', from: asUint(arr[1], 'fetch.from'), to: asUint(arr[2], 'fetch.to'), epoch: asUint(arr[3], 'fetch.epoch') };
    case 21:
      return {
        type: 'fetched',
        entries: asArray(arr[1], 'fetched.entries', CODEC_LIMITS.certsMax).map(committedEntryFrom),
        stable: checkpointCertFrom(arr[2], 'fetched.stable'),
        proofs: asArray(arr[3], 'fetched.proofs', 16).map((p) => epochProofFrom(p, 'fetched.proof')),
      };
    case 22:
      return { type: 'batchreq', seq: asUint(arr[1], 'batchreq.seq'), digest: asDigest(arr[2], 'batchreq.digest') };
    case 23:
      return {
        type: 'batch',
        seq: asUint(arr[1], 'batch.seq'),
        digest: asDigest(arr[2], 'batch.digest'),
        batch: asArray(arr[3], 'batch.requests', CODEC_LIMITS.batchRequestsMax).map((p) =>
          nestedSigned(p, 'request', 'batch.request'),
        ) as Signed<RequestMsg>[],
        time: asUint(arr[4], 'batch.time'),
      };
    case 24:
      return { type: 'statereq', seq: asUint(arr[1], 'statereq.seq'), part: statePartFrom(arr[2]) };
    case 25:
      return { type: 'state', seq: asUint(arr[1], 'state.seq'), reply: stateReplyFrom(arr[2]) };
    case 26:
      return { type: 'newviewreq', view: asUint(arr[1], 'newviewreq.view') };
    case 27:
      return { type: 'epochsreq', epoch: asUint(arr[1], 'epochsreq.epoch') };
    case 28:
      return { type: 'epochs', proofs: asArray(arr[1], 'epochs.proofs', 16).map((p) => epochProofFrom(p, 'epochs.proof')) };
    default:
      return fail('link: unknown type');
  }
}

/** Decodes one frame from a peer. Never throws. */
export function decodeFrame(bytes: Uint8Array): Decoded<Frame> {
  return guarded((): Frame => {
    const decoded = decodeCbor(bytes);
    if (!decoded.ok) fail(decoded.reason);
    const arr = asArray(decoded.value, 'frame', 4);
    const kind = asUint(arr[0], 'frame.kind', 2);
    if (kind === 2) {
      if (arr.length !== 4) fail('batched reply frame: wrong arity');
      const batch = signedFrom(asBytes(arr[1], 'frame.body'), asBytes(arr[2], 'frame.sig', SIGNATURE_LENGTH));
      if (batch.msg.type !== 'replybatch') fail('batched reply frame: expected a replybatch');
      const r = asArray(arr[3], 'frame.reply', 5);
      if (r.length !== 5) fail('batched reply: wrong arity');
      const rb = batch.msg;
      const reply: BatchedReply = {
        msg: {
          type: 'reply',
          view: rb.view,
          replica: rb.replica,
          client: asUint(r[0], 'reply.client'),
          timestamp: asUint(r[1], 'reply.timestamp'),
          result: asBytes(r[2], 'reply.result', undefined, CODEC_LIMITS.resultBytesMax),
        },
        batch: batch as Signed<ReplyBatchMsg>,
        index: asUint(r[3], 'reply.index', CODEC_LIMITS.batchRequestsMax),
        path: asArray(r[4], 'reply.path', 32).map((d) => asDigest(d, 'reply.path')),
      };
      return { kind: 'reply', reply };
    }
    if (kind === 1) {
      if (arr.length !== 2) fail('link frame: wrong arity');
      return { kind: 'link', msg: linkFrom(arr[1]) };
    }
    if (arr.length !== 3 && arr.length !== 4) fail('signed frame: wrong arity');
    const signed = signedFrom(asBytes(arr[1], 'frame.body'), asBytes(arr[2], 'frame.sig', SIGNATURE_LENGTH));
    if (arr.length === 3) return { kind: 'signed', signed };
    if (signed.msg.type !== 'preprepare') fail('frame: only a pre-prepare carries a batch');
    const batch = asArray(arr[3], 'frame.batch', CODEC_LIMITS.batchRequestsMax).map((p) =>
      nestedSigned(p, 'request', 'frame.batch'),
    ) as Signed<RequestMsg>[];
    return { kind: 'signed', signed, batch };
  });
}

export type { PrePrepareMsg, PrepareMsg, CheckpointMsg, ViewChangeMsg };

/** The frame format as the core sees it (injected through ReplicaDeps.frames). */
export const FRAME_CODEC: FrameCodec = { decodeFrame, encodeSignedFrame, encodeLinkFrame, encodeBatchedReplyFrame };
