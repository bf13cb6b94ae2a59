/**
 * The canonical encoding of signed message bodies: what a signature covers and what a digest is
 * computed over (positional CBOR arrays, a small integer tag first; the layout is listed in
 * src/codec/messages.ts with the frames). It belongs to the protocol, so it lives in the core; how
 * messages travel on a link (frames) is the shell's and reaches the core as a FrameCodec (types.ts).
 *
 * Decoding never throws on peer input: it returns { ok: false, reason }.
 */
import type { CheckpointCert, EpochProof, PreparedCert, RequestMsg, Signed, SignedMessage, SignedType } from './messages.ts';
import type { RefusalReason } from './limits.ts';
import { asArray, asBytes, asUint, decodeCbor, encodeCbor, fail, guarded, type Decoded } from './encoding.ts';

export const DIGEST_LENGTH = 32;
export const SIGNATURE_LENGTH = 64;

/** Structural bounds applied while decoding (the core applies protocol bounds on top). */
export const CODEC_LIMITS = {
  opBytesMax: 4 * 1024 * 1024,
  resultBytesMax: 4 * 1024 * 1024,
  batchRequestsMax: 8192,
  certsMax: 8192,
  signaturesMax: 1024,
  listMax: 1 << 20,
  blobBytesMax: 64 * 1024 * 1024,
  repliersMax: 256,
} as const;

const TAG: Record<SignedType, number> = {
  request: 1,
  reply: 2,
  preprepare: 3,
  prepare: 4,
  commit: 5,
  checkpoint: 6,
  viewchange: 7,
  newview: 8,
  replybatch: 9,
  refusal: 10,
  suspect: 11,
  read: 12,
  readreply: 13,
};

/** Encoded by position: a new reason is appended. */
const REFUSAL_REASONS: readonly RefusalReason[] = ['op-too-large', 'not-read-only'];

export const pair = (s: Signed): [Uint8Array, Uint8Array] => [s.body, s.sig];

export function epochProofArray(p: EpochProof): unknown[] {
  return [p.epoch, checkpointCertArray(p.cert), p.root, p.clients, p.membership];
}

export function epochProofFrom(v: unknown, what: string): EpochProof {
  const a = asArray(v, what, 5);
  if (a.length !== 5) fail(`${what}: wrong arity`);
  return {
    epoch: asUint(a[0], `${what}.epoch`),
    cert: checkpointCertFrom(a[1], `${what}.cert`),
    root: asDigest(a[2], `${what}.root`),
    clients: asDigest(a[3], `${what}.clients`),
    membership: asBytes(a[4], `${what}.membership`, undefined, CODEC_LIMITS.blobBytesMax),
  };
}

export function checkpointCertArray(c: CheckpointCert): unknown[] {
  return [c.seq, c.digest, c.proof.map(pair), c.epoch];
}

function bodyArray(msg: SignedMessage): unknown[] {
  switch (msg.type) {
    case 'request':
      return msg.repliers === undefined ? [TAG.request, msg.client, msg.timestamp, msg.op] : [TAG.request, msg.client, msg.timestamp, msg.op, msg.repliers];
    case 'reply':
      return [TAG.reply, msg.view, msg.client, msg.timestamp, msg.replica, msg.result];
    case 'preprepare':
      return [TAG.preprepare, msg.view, msg.seq, msg.digest, msg.replica, msg.time];
    case 'prepare':
    case 'commit':
      return [TAG[msg.type], msg.view, msg.seq, msg.digest, msg.replica];
    case 'checkpoint':
      return [TAG.checkpoint, msg.seq, msg.digest, msg.replica, msg.epoch];
    case 'viewchange':
      return [
        TAG.viewchange,
        msg.view,
        msg.replica,
        checkpointCertArray(msg.checkpoint),
        msg.prepared.map((c) => [pair(c.prePrepare), c.prepares.map(pair)]),
      ];
    case 'newview':
      return [TAG.newview, msg.view, msg.replica, msg.viewChanges.map(pair), msg.prePrepares.map(pair)];
    case 'replybatch':
      return [TAG.replybatch, msg.view, msg.replica, msg.seq, msg.count, msg.root];
    case 'suspect':
      return [TAG.suspect, msg.view, msg.replica];
    case 'read':
      return [TAG.read, msg.client, msg.timestamp, msg.op];
    case 'readreply':
      return [TAG.readreply, msg.client, msg.timestamp, msg.replica, msg.epoch, msg.result];
    case 'refusal':
      return [TAG.refusal, msg.replica, msg.client, msg.timestamp, msg.digest, REFUSAL_REASONS.indexOf(msg.reason), msg.limit];
    default:
      return assertNever(msg);
  }
}

/** A request's repliers: 1..repliersMax replica ids, strictly increasing (one encoding per set). */
function repliersFrom(v: unknown): number[] {
  const a = asArray(v, 'request.repliers', CODEC_LIMITS.repliersMax);
  if (a.length === 0) fail('request.repliers: empty');
  const ids = a.map((x, i) => asUint(x, `request.repliers[${i}]`, 0xffff));
  for (let i = 1; i < ids.length; i++) if (ids[i]! <= ids[i - 1]!) fail('request.repliers: not strictly increasing');
  return ids;
}

export function assertNever(x: never): never {
  throw new Error(`unexpected value ${JSON.stringify(x)}`);
}

/** CBOR body of a signed message (the bytes that are signed). */
export function encodeBody(msg: SignedMessage): Uint8Array {
  return encodeCbor(bodyArray(msg));
}

export const asDigest = (v: unknown, what: string): Uint8Array => asBytes(v, what, DIGEST_LENGTH);

function bodyFrom(arr: unknown[]): SignedMessage {
  const tag = asUint(arr[0], 'type', 255);
  switch (tag) {
    case TAG.request: {
      if (arr.length !== 4 && arr.length !== 5) fail('request: wrong arity');
      const msg: RequestMsg = {
        type: 'request',
        client: asUint(arr[1], 'request.client'),
        timestamp: asUint(arr[2], 'request.timestamp'),
        op: asBytes(arr[3], 'request.op', undefined, CODEC_LIMITS.opBytesMax),
      };
      if (arr.length === 5) msg.repliers = repliersFrom(arr[4]);
      return msg;
    }
    case TAG.reply:
      if (arr.length !== 6) fail('reply: wrong arity');
      return {
        type: 'reply',
        view: asUint(arr[1], 'reply.view'),
        client: asUint(arr[2], 'reply.client'),
        timestamp: asUint(arr[3], 'reply.timestamp'),
        replica: asUint(arr[4], 'reply.replica'),
        result: asBytes(arr[5], 'reply.result', undefined, CODEC_LIMITS.resultBytesMax),
      };
    case TAG.preprepare:
      if (arr.length !== 6) fail('preprepare: wrong arity');
      return {
        type: 'preprepare',
        view: asUint(arr[1], 'preprepare.view'),
        seq: asUint(arr[2], 'preprepare.seq'),
        digest: asDigest(arr[3], 'preprepare.digest'),
        replica: asUint(arr[4], 'preprepare.replica'),
        time: asUint(arr[5], 'preprepare.time'),
      };
    case TAG.prepare:
    case TAG.commit: {
      if (arr.length !== 5) fail('phase message: wrong arity');
      const type = tag === TAG.prepare ? 'prepare' : 'commit';
      return {
        type,
        view: asUint(arr[1], `${type}.view`),
        seq: asUint(arr[2], `${type}.seq`),
        digest: asDigest(arr[3], `${type}.digest`),
        replica: asUint(arr[4], `${type}.replica`),
      };
    }
    case TAG.checkpoint:
      if (arr.length !== 5) fail('checkpoint: wrong arity');
      return {
        type: 'checkpoint',
        seq: asUint(arr[1], 'checkpoint.seq'),
        digest: asDigest(arr[2], 'checkpoint.digest'),
        replica: asUint(arr[3], 'checkpoint.replica'),
        epoch: asUint(arr[4], 'checkpoint.epoch'),
      };
    case TAG.viewchange: {
      if (arr.length !== 5) fail('viewchange: wrong arity');
      const certs = asArray(arr[4], 'viewchange.prepared', CODEC_LIMITS.certsMax);
      return {
        type: 'viewchange',
        view: asUint(arr[1], 'viewchange.view'),
        replica: asUint(arr[2], 'viewchange.replica'),
        checkpoint: checkpointCertFrom(arr[3], 'viewchange.checkpoint'),
        prepared: certs.map((c) => preparedCertFrom(c)),
      };
    }
    case TAG.replybatch:
      if (arr.length !== 6) fail('replybatch: wrong arity');
      return {
        type: 'replybatch',
        view: asUint(arr[1], 'replybatch.view'),
        replica: asUint(arr[2], 'replybatch.replica'),
        seq: asUint(arr[3], 'replybatch.seq'),
        count: asUint(arr[4], 'replybatch.count', CODEC_LIMITS.batchRequestsMax),
        root: asDigest(arr[5], 'replybatch.root'),
      };
    case TAG.newview: {
      if (arr.length !== 5) fail('newview: wrong arity');
      return {
        type: 'newview',
        view: asUint(arr[1], 'newview.view'),
        replica: asUint(arr[2], 'newview.replica'),
        viewChanges: asArray(arr[3], 'newview.viewChanges', CODEC_LIMITS.signaturesMax).map((p) =>
          nestedSigned(p, 'viewchange', 'newview.viewChange'),
        ),
        prePrepares: asArray(arr[4], 'newview.prePrepares', CODEC_LIMITS.certsMax).map((p) =>
          nestedSigned(p, 'preprepare', 'newview.prePrepare'),
        ),
      };
    }
    case TAG.suspect:
      if (arr.length !== 3) fail('suspect: wrong arity');
      return { type: 'suspect', view: asUint(arr[1], 'suspect.view'), replica: asUint(arr[2], 'suspect.replica') };
    case TAG.read:
      if (arr.length !== 4) fail('read: wrong arity');
      return {
        type: 'read',
        client: asUint(arr[1], 'read.client'),
        timestamp: asUint(arr[2], 'read.timestamp'),
        op: asBytes(arr[3], 'read.op', undefined, CODEC_LIMITS.opBytesMax),
      };
    case TAG.readreply:
      if (arr.length !== 6) fail('readreply: wrong arity');
      return {
        type: 'readreply',
        client: asUint(arr[1], 'readreply.client'),
        timestamp: asUint(arr[2], 'readreply.timestamp'),
        replica: asUint(arr[3], 'readreply.replica'),
        epoch: asUint(arr[4], 'readreply.epoch'),
        result: asBytes(arr[5], 'readreply.result', undefined, CODEC_LIMITS.resultBytesMax),
      };
    case TAG.refusal: {
      if (arr.length !== 7) fail('refusal: wrong arity');
      const reason = REFUSAL_REASONS[asUint(arr[5], 'refusal.reason', REFUSAL_REASONS.length - 1)]!;
      return {
        type: 'refusal',
        replica: asUint(arr[1], 'refusal.replica'),
        client: asUint(arr[2], 'refusal.client'),
        timestamp: asUint(arr[3], 'refusal.timestamp'),
        digest: asDigest(arr[4], 'refusal.digest'),
        reason,
        limit: asUint(arr[6], 'refusal.limit'),
      };
    }
    default:
      return fail(`unknown message type ${tag}`);
  }
}

export function preparedCertFrom(v: unknown): PreparedCert {
  const arr = asArray(v, 'preparedCert', 2);
  if (arr.length !== 2) fail('preparedCert: wrong arity');
  return {
    prePrepare: nestedSigned(arr[0], 'preprepare', 'preparedCert.prePrepare'),
    prepares: asArray(arr[1], 'preparedCert.prepares', CODEC_LIMITS.signaturesMax).map((p) =>
      nestedSigned(p, 'prepare', 'preparedCert.prepare'),
    ),
  };
}

export function checkpointCertFrom(v: unknown, what: string): CheckpointCert {
  const arr = asArray(v, what, 4);
  if (arr.length !== 4) fail(`${what}: wrong arity`);
  return {
    epoch: asUint(arr[3], `${what}.epoch`),
    seq: asUint(arr[0], `${what}.seq`),
    digest: asDigest(arr[1], `${what}.digest`),
    proof: asArray(arr[2], `${what}.proof`, CODEC_LIMITS.signaturesMax).map((p) =>
      nestedSigned(p, 'checkpoint', `${what}.proof`),
    ),
  };
}

export type MsgOf<K extends SignedType> = Extract<SignedMessage, { type: K }>;

export function signedFrom(body: Uint8Array, sig: Uint8Array): Signed {
  const decoded = decodeCbor(body);
  if (!decoded.ok) fail(decoded.reason);
  return { msg: bodyFrom(asArray(decoded.value, 'body', 8)), body, sig };
}

export function nestedSigned<K extends SignedType>(v: unknown, type: K, what: string): Signed<MsgOf<K>> {
  const arr = asArray(v, what, 2);
  if (arr.length !== 2) fail(`${what}: expected [body, sig]`);
  const signed = signedFrom(asBytes(arr[0], `${what}.body`), asBytes(arr[1], `${what}.sig`, SIGNATURE_LENGTH));
  if (signed.msg.type !== type) fail(`${what}: expected ${type}, got ${signed.msg.type}`);
  return signed as Signed<MsgOf<K>>;
}

/** Decodes a standalone signed body (e.g. for tests and tools). */
export function decodeBody(body: Uint8Array): Decoded<SignedMessage> {
  return guarded(() => {
    const decoded = decodeCbor(body);
    if (!decoded.ok) fail(decoded.reason);
    return bodyFrom(asArray(decoded.value, 'body', 8));
  });
}
