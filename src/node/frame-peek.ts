/**
 * Reads the few header fields of a frame that the shell's metrics need (message kind, view,
 * sequence number, client and timestamp) straight from the CBOR bytes, without decoding the frame:
 * no allocation, no copy of a batch, a handful of byte reads. The wire format is described in
 * src/codec/messages.ts:
 *
 *   signed message   [0, body, sig, ...]              body = [tag, ...fields] (a byte string)
 *   batched reply    [2, replyBatchBody, sig, [client, timestamp, ...]]
 *
 * Anything unexpected gives undefined (metrics then skip the frame): this is never a validation, the
 * core validates every frame it receives, and outbound frames are the core's own.
 */

/** Signed body tags (src/codec/messages.ts). */
export const BODY_TAG = { request: 1, reply: 2, prePrepare: 3, prepare: 4, commit: 5, refusal: 10 } as const;

interface Cursor {
  bytes: Uint8Array;
  pos: number;
}

interface Head {
  major: number;
  value: number;
}

/** One CBOR item header (definite lengths only); numbers from major 7 floats come back as major 0. */
function head(c: Cursor): Head | undefined {
  const b = c.bytes;
  if (c.pos >= b.length) return undefined;
  const first = b[c.pos]!;
  const major = first >> 5;
  const info = first & 31;
  c.pos++;
  const need = info < 24 ? 0 : info === 24 ? 1 : info === 25 ? 2 : info === 26 ? 4 : info === 27 ? 8 : -1;
  if (need < 0 || c.pos + need > b.length) return undefined;
  if (major === 7) {
    // Floats: cbor-x writes integers above 2^32 (timestamps) as float64.
    if (need < 2) return undefined;
    const view = new DataView(b.buffer, b.byteOffset + c.pos, need);
    c.pos += need;
    const v = need === 8 ? view.getFloat64(0) : need === 4 ? view.getFloat32(0) : undefined;
    if (v === undefined || !Number.isSafeInteger(v) || v < 0) return undefined;
    return { major: 0, value: v };
  }
  let value = info < 24 ? info : 0;
  for (let i = 0; i < need; i++) value = value * 256 + b[c.pos + i]!;
  c.pos += need;
  return { major, value };
}

function uint(c: Cursor): number | undefined {
  const h = head(c);
  return h !== undefined && h.major === 0 ? h.value : undefined;
}

/** A byte string: returns a cursor over its contents and moves past it. */
function bytes(c: Cursor): Cursor | undefined {
  const h = head(c);
  if (h === undefined || h.major !== 2 || c.pos + h.value > c.bytes.length) return undefined;
  const inner = { bytes: c.bytes.subarray(c.pos, c.pos + h.value), pos: 0 };
  c.pos += h.value;
  return inner;
}

function arrayOf(c: Cursor, lengthMin: number): boolean {
  const h = head(c);
  return h !== undefined && h.major === 4 && h.value >= lengthMin;
}

/** The signed body of a `[0, body, sig, ...]` frame, positioned after its tag. */
function signedBody(frame: Uint8Array): { tag: number; body: Cursor } | undefined {
  const c: Cursor = { bytes: frame, pos: 0 };
  if (!arrayOf(c, 3) || uint(c) !== 0) return undefined;
  const body = bytes(c);
  if (body === undefined || !arrayOf(body, 2)) return undefined;
  const tag = uint(body);
  return tag === undefined ? undefined : { tag, body };
}

/** PRE-PREPARE, PREPARE or COMMIT: its tag, view and sequence number. */
export function peekVote(frame: Uint8Array): { tag: number; view: number; seq: number } | undefined {
  const s = signedBody(frame);
  if (s === undefined || (s.tag !== BODY_TAG.prePrepare && s.tag !== BODY_TAG.prepare && s.tag !== BODY_TAG.commit)) return undefined;
  const view = uint(s.body);
  const seq = uint(s.body);
  return view === undefined || seq === undefined ? undefined : { tag: s.tag, view, seq };
}

/** A client's REQUEST frame: its client id and timestamp. */
export function peekRequest(frame: Uint8Array): { client: number; timestamp: number } | undefined {
  const s = signedBody(frame);
  if (s === undefined || s.tag !== BODY_TAG.request) return undefined;
  const client = uint(s.body);
  const timestamp = uint(s.body);
  return client === undefined || timestamp === undefined ? undefined : { client, timestamp };
}

/**
 * What a frame to a client answers: the client and timestamp of a batched reply, a signed REPLY
 * ([2, view, client, timestamp, ...]) or a REFUSAL ([10, replica, client, timestamp, ...]).
 */
export function peekAnswer(frame: Uint8Array): { client: number; timestamp: number } | undefined {
  const c: Cursor = { bytes: frame, pos: 0 };
  if (!arrayOf(c, 3)) return undefined;
  const kind = uint(c);
  if (kind === 2) {
    if (bytes(c) === undefined || bytes(c) === undefined || !arrayOf(c, 2)) return undefined;
    const client = uint(c);
    const timestamp = uint(c);
    return client === undefined || timestamp === undefined ? undefined : { client, timestamp };
  }
  const s = signedBody(frame);
  if (s === undefined || (s.tag !== BODY_TAG.reply && s.tag !== BODY_TAG.refusal)) return undefined;
  if (uint(s.body) === undefined) return undefined; // view, or the refusing replica
  const client = uint(s.body);
  const timestamp = uint(s.body);
  return client === undefined || timestamp === undefined ? undefined : { client, timestamp };
}
