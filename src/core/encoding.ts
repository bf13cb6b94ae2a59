/**
 * The one CBOR encoder/decoder configuration of the project (cbor-x).
 * Plain arrays, byte strings and integers only on the wire: no records, no typed-array tags.
 * Decoding returns byte strings as views into the input: copy what you keep (`copyBytes`).
 */
import { Encoder } from 'cbor-x';

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

/** Decodes one CBOR item; never throws. */
export function decodeCbor(bytes: Uint8Array): Decoded<unknown> {
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
