/**
 * The one CBOR encoder/decoder configuration of the project (cbor-x).
 * Plain arrays, byte strings and integers only on the wire: no records, no typed-array tags.
 * Decoding returns byte strings as views into the input: copy what you keep (`copyBytes`).
 */
// 'cbor-x/encode' is cbor-x's pure-JavaScript build on Node too: the client SDK loads no native
// addon. The replica shell enables cbor-x's native string decoder itself (replica-transport.ts).
import { Encoder } from 'cbor-x/encode';

const codec = new Encoder({
  useRecords: false,
  mapsAsObjects: true,
  tagUint8Array: false,
  useFloat32: 0,
} as ConstructorParameters<typeof Encoder>[0]);

export function encodeCbor(value: unknown): Uint8Array {
  return codec.encode(value);
}

export type Decoded<T> = { ok: true; value: T } | { ok: false; reason: string };

/**
 * Nesting deeper than any message of the protocol (a frame nests about 8 levels): deeper input is
 * refused before the recursive decoder sees it (20,000 nested arrays would otherwise cost the
 * decoder a stack overflow, about a millisecond, per frame).
 */
export const CBOR_DEPTH_MAX = 24;

/**
 * The nesting depth of the CBOR item at the start of `bytes`, scanned without recursion and without
 * reading string contents; Infinity past `limit` (the scan stops there) or on a truncated header.
 */
export function cborDepth(bytes: Uint8Array, limit = CBOR_DEPTH_MAX): number {
  // No closures here: this runs on every frame a replica or a client decodes, and a closure per
  // call (two, before) is an allocation each, and under tsx a defineProperty each (its __name).
  // Each open container: items it still holds (-1: indefinite length, until a break byte).
  const open: number[] = [];
  let deepest = 0;
  let i = 0;
  for (;;) {
    if (i >= bytes.length) return Infinity;
    const head = bytes[i++]!;
    const major = head >> 5;
    const info = head & 31;
    if (head === 0xff) {
      if (open.length === 0 || open[open.length - 1] !== -1) return Infinity;
      open.pop(); // the indefinite container is complete: one item of its parent
    } else if (info >= 28 && info <= 30) {
      return Infinity;
    } else if (major === 6) {
      const width = uintWidth(info);
      if (width < 0 || i + width > bytes.length) return Infinity;
      i += width;
      continue; // a tag: its content is the next item
    } else if (info === 31) {
      if (major < 2 || major > 5) {
        if (major !== 7) return Infinity; // (0xff handled above)
      }
      open.push(-1);
      if (open.length > deepest) deepest = open.length;
      if (deepest > limit) return Infinity;
      continue;
    } else {
      const width = uintWidth(info);
      if (width < 0 || i + width > bytes.length) return Infinity;
      let value = info;
      if (width > 0) {
        value = 0;
        for (let k = 0; k < width; k++) value = value * 256 + bytes[i + k]!;
        i += width;
      }
      if (major === 2 || major === 3) {
        if (i + value > bytes.length) return Infinity;
        i += value;
      } else if (major === 4 || major === 5) {
        const count = major === 5 ? 2 * value : value;
        if (count > bytes.length - i) return Infinity; // more items than bytes left
        open.push(count);
        if (open.length > deepest) deepest = open.length;
        if (deepest > limit) return Infinity;
        if (count > 0) continue;
        open.pop(); // empty: complete at once
      }
    }
    // One item is complete: count it in its container, and close the containers it completes.
    while (open.length > 0) {
      const top = open[open.length - 1]!;
      if (top === -1) break;
      if (top > 1) {
        open[open.length - 1] = top - 1;
        break;
      }
      open.pop();
    }
    if (open.length === 0) return deepest;
  }
}

/** Bytes of the unsigned integer that follows a CBOR head with additional info `info` (0: in the head; -1: invalid). */
function uintWidth(info: number): number {
  return info < 24 ? 0 : info === 24 ? 1 : info === 25 ? 2 : info === 26 ? 4 : info === 27 ? 8 : -1;
}

/** Decodes one CBOR item; never throws. */
export function decodeCbor(bytes: Uint8Array): Decoded<unknown> {
  if (cborDepth(bytes) > CBOR_DEPTH_MAX) return { ok: false, reason: `cbor: nested deeper than ${CBOR_DEPTH_MAX} levels, or truncated` };
  try {
    return { ok: true, value: codec.decode(bytes) };
  } catch (err) {
    return { ok: false, reason: `cbor: ${err instanceof Error ? err.message.slice(0, 80) : 'decode failed'}` };
  }
}

export function copyBytes(view: Uint8Array): Uint8Array {
  return new Uint8Array(view);
}

// --- validation helpers for decoded values ----------------------------------------------------

export class DecodeError extends Error {}

export function fail(reason: string): never {
  throw new DecodeError(reason);
}

export function asArray(v: unknown, what: string, lengthMax = Number.MAX_SAFE_INTEGER): unknown[] {
  if (!Array.isArray(v)) fail(`${what}: expected array`);
  if (v.length > lengthMax) fail(`${what}: ${v.length} items exceeds ${lengthMax}`);
  return v;
}

export function asUint(v: unknown, what: string, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0 || v > max) fail(`${what}: expected integer 0..${max}`);
  return v;
}

export function asBytes(v: unknown, what: string, length?: number, lengthMax = Number.MAX_SAFE_INTEGER): Uint8Array {
  if (!(v instanceof Uint8Array)) fail(`${what}: expected bytes`);
  if (length !== undefined && v.length !== length) fail(`${what}: expected ${length} bytes, got ${v.length}`);
  if (v.length > lengthMax) fail(`${what}: ${v.length} bytes exceeds ${lengthMax}`);
  return copyBytes(v);
}

export function asString(v: unknown, what: string, lengthMax = 1024): string {
  if (typeof v !== 'string' || v.length > lengthMax) fail(`${what}: expected string`);
  return v;
}

/** Runs a validating decoder, turning DecodeError (and anything unexpected) into a reason. */
export function guarded<T>(run: () => T): Decoded<T> {
  try {
    return { ok: true, value: run() };
  } catch (err) {
    if (err instanceof DecodeError) return { ok: false, reason: err.message };
    return { ok: false, reason: `malformed: ${err instanceof Error ? err.message.slice(0, 80) : 'unknown'}` };
  }
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
