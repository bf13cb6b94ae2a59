/**
 * Operations and results of the built-in key-value store, and their wire encoding.
 *
 * Encoding: CBOR (cbor-x) of a positional array, never a map, so the bytes do not depend on key
 * order. Text values travel as CBOR text strings, byte values as CBOR byte strings, absent values
 * as CBOR null:
 *
 *   op      put [0, key, value]    get [1, key]    del [2, key]    cas [3, key, expected|null, next|null]
 *           put-many [4, [[key, value], ...]]   (1..PUT_MANY_ENTRIES_MAX pairs; answered with the put result)
 *   result  put [0]    get [1, value|null]    del [2, existed]    cas [3, swapped, current|null]
 *           error [4, code, message]
 *
 * Decoding is strict and canonical: it accepts exactly the bytes the encoder produces for the
 * decoded value (it re-encodes and compares). So each operation has one byte representation, and
 * nothing depends on how a CBOR library treats invalid UTF-8, non-minimal lengths or tags (cbor-x
 * replaces invalid UTF-8 with U+FFFD, and its native and JS string decoders need not agree).
 * Strings must be well-formed UTF-16 (no lone surrogates): they have one UTF-8 form.
 */
import { decodeCbor, encodeCbor } from '../core/encoding.ts';
import type { Result } from './types.ts';

/** A stored value: text stays text, bytes stay bytes. */
export type Value = string | Uint8Array;

export type KvOp =
  | { type: 'put'; key: string; value: Value }
  | { type: 'get'; key: string }
  | { type: 'del'; key: string }
  /** If the current value equals `expected` (null = absent; type and content compared), set it to
   *  `next` (null = delete). */
  | { type: 'cas'; key: string; expected: Value | null; next: Value | null };

export const KV_ERROR_CODES = ['MALFORMED_OP', 'KEY_EMPTY', 'KEY_TOO_LONG', 'VALUE_TOO_LARGE'] as const;
export type KvErrorCode = (typeof KV_ERROR_CODES)[number];

export type KvResult =
  | { type: 'put' }
  | { type: 'get'; value: Value | null }
  | { type: 'del'; existed: boolean }
  /** `current` is the value after the operation. */
  | { type: 'cas'; swapped: boolean; current: Value | null }
  | { type: 'error'; code: KvErrorCode; message: string };

/** Keys are 1..1024 bytes of UTF-8. */
export const KEY_BYTES_MAX = 1024;
/** Values (UTF-8 bytes for text) are at most 1 MiB. */
export const VALUE_BYTES_MAX = 1024 * 1024;

/**
 * Error messages are fixed per code: results must be byte-identical on every correct replica, so
 * they never carry library error text or details that could differ between replicas.
 */
export const KV_ERROR_MESSAGES: Readonly<Record<KvErrorCode, string>> = {
  MALFORMED_OP: 'operation is not a valid encoded key-value operation',
  KEY_EMPTY: 'key must not be empty',
  KEY_TOO_LONG: `key exceeds ${KEY_BYTES_MAX} bytes of UTF-8`,
  VALUE_TOO_LARGE: `value exceeds ${VALUE_BYTES_MAX} bytes`,
};

export function kvError(code: KvErrorCode): KvResult {
  return { type: 'error', code, message: KV_ERROR_MESSAGES[code] };
}

const OP_TAG = { put: 0, get: 1, del: 2, cas: 3 } as const;
const RESULT_TAG = { put: 0, get: 1, del: 2, cas: 3, error: 4 } as const;


// --- helpers ------------------------------------------------------------------------------------

type WellFormedString = string & { isWellFormed?: () => boolean };
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** True when the string has no lone surrogates (so it has exactly one UTF-8 encoding). */
export function isWellFormed(s: string): boolean {
  const f = (s as WellFormedString).isWellFormed;
  return typeof f === 'function' ? f.call(s) : !LONE_SURROGATE.test(s);
}

// Node's Buffer when present (fast, native); portable fallbacks otherwise (the SDK runs in browsers).
const NodeBuffer = (globalThis as { Buffer?: typeof Buffer }).Buffer;

/** UTF-8 byte length of a well-formed string, without allocating. */
export function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}

/** Byte length of a value: UTF-8 bytes for text. */
export function valueByteLength(v: Value): number {
  if (typeof v !== 'string') return v.length;
  return NodeBuffer ? NodeBuffer.byteLength(v, 'utf8') : utf8Length(v);
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  if (a.length > 64 && NodeBuffer) return NodeBuffer.compare(a, b) === 0;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Equal type and content; null (absent) equals only null. */
export function valuesEqual(a: Value | null, b: Value | null): boolean {
  if (a === null || b === null) return a === b;
  if (typeof a === 'string') return typeof b === 'string' && a === b;
  return typeof b !== 'string' && bytesEqual(a, b);
}

function isValue(v: unknown): v is Value {
  return (typeof v === 'string' && isWellFormed(v)) || v instanceof Uint8Array;
}

/** Copies a decoded byte string (a view into the input, possibly a Buffer) into a plain array. */
function ownValue(v: Value): Value {
  return typeof v === 'string' ? v : new Uint8Array(v);
}

function sameValue(v: Value): Value {
  return v;
}

/** cbor-x returns Buffers that share a large backing store: return an exact-size plain copy. */
function encodeArray(items: unknown[]): Uint8Array {
  return new Uint8Array(encodeCbor(items));
}

function decodeCanonical<T>(
  bytes: unknown,
  what: string,
  heads: readonly number[],
  build: (items: unknown[]) => T | string,
  encode: (value: T) => unknown[],
): Result<T> {
  if (!(bytes instanceof Uint8Array)) return { ok: false, reason: `${what}: expected bytes` };
  const head = bytes[0];
  if (head === undefined || !heads.includes(head)) return { ok: false, reason: `${what}: expected a CBOR array of ${heads.map((h) => h - 0x80).join('/')} items` };
  // cbor-x caches a DataView as a property on the array it decodes: hand it a throwaway view
  // (no copy) so the caller's array is left untouched.
  const decoded = decodeCbor(bytes.subarray(0));
  if (!decoded.ok) return { ok: false, reason: `${what}: not valid CBOR` };
  const items = decoded.value;
  if (!Array.isArray(items)) return { ok: false, reason: `${what}: expected an array` };
  let value: T | string;
  try {
    value = build(items);
  } catch {
    return { ok: false, reason: `${what}: invalid fields` };
  }
  if (typeof value === 'string') return { ok: false, reason: `${what}: ${value}` };
  let again: Uint8Array;
  try {
    again = encodeCbor(encode(value));
  } catch {
    return { ok: false, reason: `${what}: not re-encodable` };
  }
  if (!bytesEqual(again, bytes)) return { ok: false, reason: `${what}: not the canonical encoding` };
  return { ok: true, value };
}

// --- operations ---------------------------------------------------------------------------------

function checkKey(key: unknown): string {
  if (typeof key !== 'string' || !isWellFormed(key)) throw new TypeError('key must be a well-formed string');
  return key;
}

function checkValue(v: unknown, nullable: boolean): Value | null {
  if (v === null && nullable) return null;
  if (!isValue(v)) throw new TypeError('value must be a well-formed string or a Uint8Array');
  return v;
}

function opItems(op: KvOp): unknown[] {
  switch (op.type) {
    case 'put':
      return [OP_TAG.put, op.key, op.value];
    case 'get':
      return [OP_TAG.get, op.key];
    case 'del':
      return [OP_TAG.del, op.key];
    case 'cas':
      return [OP_TAG.cas, op.key, op.expected, op.next];
    default:
      throw new TypeError(`unknown op type ${String((op as { type: unknown }).type)}`);
  }
}

/**
 * Encodes an operation. Throws TypeError on a structurally invalid op (wrong field types, strings
 * with lone surrogates). Size limits are not checked here: the store answers them with an error.
 */
export function encodeOp(op: KvOp): Uint8Array {
  checkKey(op.key);
  if (op.type === 'put') checkValue(op.value, false);
  else if (op.type === 'cas') {
    checkValue(op.expected, true);
    checkValue(op.next, true);
  }
  return encodeArray(opItems(op));
}

function buildOp(items: unknown[], own = true): KvOp | string {
  const keep = own ? ownValue : sameValue;
  const [tag, key] = items;
  if (typeof key !== 'string') return 'key must be text';
  if (!isWellFormed(key)) return 'key is not well-formed';
  switch (tag) {
    case OP_TAG.put: {
      if (items.length !== 3) return 'put has 3 fields';
      const value = items[2];
      if (!isValue(value)) return 'put value must be text or bytes';
      return { type: 'put', key, value: keep(value) };
    }
    case OP_TAG.get:
      if (items.length !== 2) return 'get has 2 fields';
      return { type: 'get', key };
    case OP_TAG.del:
      if (items.length !== 2) return 'del has 2 fields';
      return { type: 'del', key };
    case OP_TAG.cas: {
      if (items.length !== 4) return 'cas has 4 fields';
      const expected = items[2];
      const next = items[3];
      if (expected !== null && !isValue(expected)) return 'cas expected must be text, bytes or null';
      if (next !== null && !isValue(next)) return 'cas next must be text, bytes or null';
      return {
        type: 'cas',
        key,
        expected: expected === null ? null : keep(expected),
        next: next === null ? null : keep(next),
      };
    }
    default:
      return 'unknown operation tag';
  }
}

const OP_HEADS = [0x82, 0x83, 0x84];

/** Decodes an operation; never throws. Byte values are fresh plain Uint8Arrays. */
export function decodeOp(bytes: Uint8Array): Result<KvOp> {
  return decodeCanonical(bytes, 'kv op', OP_HEADS, buildOp, opItems);
}

/**
 * decodeOp without copies: byte values are views into `bytes`, valid while `bytes` is unchanged
 * (for a caller that copies what it keeps, like KvStore.execute).
 */
export function decodeOpView(bytes: Uint8Array): Result<KvOp> {
  return decodeCanonical(bytes, 'kv op', OP_HEADS, buildOpView, opItems);
}

function buildOpView(items: unknown[]): KvOp | string {
  return buildOp(items, false);
}

// --- put-many (bulk load) -----------------------------------------------------------------------

/**
 * Several puts in one operation, applied in order, all or none: a store answers a pair over the key
 * or value limits with that error and applies none of them. For loading many keys: one request,
 * one signature and one agreement slot for up to PUT_MANY_ENTRIES_MAX keys. The whole operation is
 * still bounded by the request size limit (OP_BYTES_MAX, about 1 MiB).
 */
export interface KvPutMany {
  type: 'put-many';
  entries: Array<[string, Value]>;
}

/** The most pairs one put-many carries. */
export const PUT_MANY_ENTRIES_MAX = 4096;
const PUT_MANY_TAG = 4;

function putManyItems(op: KvPutMany): unknown[] {
  return [PUT_MANY_TAG, op.entries.map(([k, v]) => [k, v])];
}

/** Encodes a put-many. Throws TypeError on invalid fields or a pair count outside 1..PUT_MANY_ENTRIES_MAX. */
export function encodePutMany(entries: ReadonlyArray<readonly [string, Value]>): Uint8Array {
  if (!Array.isArray(entries) || entries.length < 1 || entries.length > PUT_MANY_ENTRIES_MAX) {
    throw new TypeError(`put-many carries 1..${PUT_MANY_ENTRIES_MAX} pairs`);
  }
  for (const pair of entries) {
    if (!Array.isArray(pair) || pair.length !== 2) throw new TypeError('put-many pair must be [key, value]');
    checkKey(pair[0]);
    checkValue(pair[1], false);
  }
  return encodeArray(putManyItems({ type: 'put-many', entries: entries.map(([k, v]) => [k, v]) }));
}

function buildPutMany(items: unknown[], own = true): KvPutMany | string {
  const keep = own ? ownValue : sameValue;
  if (items.length !== 2 || items[0] !== PUT_MANY_TAG) return 'put-many has 2 fields';
  const list = items[1];
  if (!Array.isArray(list)) return 'put-many pairs must be an array';
  if (list.length < 1 || list.length > PUT_MANY_ENTRIES_MAX) return `put-many carries 1..${PUT_MANY_ENTRIES_MAX} pairs`;
  const entries: Array<[string, Value]> = new Array<[string, Value]>(list.length);
  for (let i = 0; i < list.length; i++) {
    const pair: unknown = list[i];
    if (!Array.isArray(pair) || pair.length !== 2) return 'put-many pair has 2 fields';
    const [key, value] = pair as unknown[];
    if (typeof key !== 'string' || !isWellFormed(key)) return 'put-many key must be well-formed text';
    if (!isValue(value)) return 'put-many value must be text or bytes';
    entries[i] = [key, keep(value)];
  }
  return { type: 'put-many', entries };
}

/** True when the bytes are (or claim to be) a put-many: a 2-item array whose first item is its tag. */
export function isPutMany(bytes: Uint8Array): boolean {
  return bytes.length > 2 && bytes[0] === 0x82 && bytes[1] === PUT_MANY_TAG;
}

/** Decodes a put-many; never throws. Byte values are fresh plain Uint8Arrays. */
export function decodePutMany(bytes: Uint8Array): Result<KvPutMany> {
  return decodeCanonical(bytes, 'kv put-many', [0x82], buildPutMany, putManyItems);
}

/** decodePutMany without copies: byte values are views into `bytes` (see decodeOpView). */
export function decodePutManyView(bytes: Uint8Array): Result<KvPutMany> {
  return decodeCanonical(bytes, 'kv put-many', [0x82], buildPutManyView, putManyItems);
}

function buildPutManyView(items: unknown[]): KvPutMany | string {
  return buildPutMany(items, false);
}

// --- results ------------------------------------------------------------------------------------

function resultItems(r: KvResult): unknown[] {
  switch (r.type) {
    case 'put':
      return [RESULT_TAG.put];
    case 'get':
      return [RESULT_TAG.get, r.value];
    case 'del':
      return [RESULT_TAG.del, r.existed];
    case 'cas':
      return [RESULT_TAG.cas, r.swapped, r.current];
    case 'error':
      return [RESULT_TAG.error, r.code, r.message];
    default:
      throw new TypeError(`unknown result type ${String((r as { type: unknown }).type)}`);
  }
}

export function encodeResult(r: KvResult): Uint8Array {
  return encodeArray(resultItems(r));
}

function isErrorCode(v: unknown): v is KvErrorCode {
  return typeof v === 'string' && (KV_ERROR_CODES as readonly string[]).includes(v);
}

function buildResult(items: unknown[]): KvResult | string {
  switch (items[0]) {
    case RESULT_TAG.put:
      if (items.length !== 1) return 'put result has 1 field';
      return { type: 'put' };
    case RESULT_TAG.get: {
      if (items.length !== 2) return 'get result has 2 fields';
      const value = items[1];
      if (value !== null && !isValue(value)) return 'get value must be text, bytes or null';
      return { type: 'get', value: value === null ? null : ownValue(value) };
    }
    case RESULT_TAG.del: {
      if (items.length !== 2) return 'del result has 2 fields';
      const existed = items[1];
      if (typeof existed !== 'boolean') return 'del existed must be a boolean';
      return { type: 'del', existed };
    }
    case RESULT_TAG.cas: {
      if (items.length !== 3) return 'cas result has 3 fields';
      const swapped = items[1];
      const current = items[2];
      if (typeof swapped !== 'boolean') return 'cas swapped must be a boolean';
      if (current !== null && !isValue(current)) return 'cas current must be text, bytes or null';
      return { type: 'cas', swapped, current: current === null ? null : ownValue(current) };
    }
    case RESULT_TAG.error: {
      if (items.length !== 3) return 'error result has 3 fields';
      const code = items[1];
      const message = items[2];
      if (!isErrorCode(code)) return 'unknown error code';
      if (typeof message !== 'string' || !isWellFormed(message)) return 'error message must be text';
      return { type: 'error', code, message };
    }
    default:
      return 'unknown result tag';
  }
}

const RESULT_HEADS = [0x81, 0x82, 0x83];

/** Decodes a result; never throws. Byte values are fresh plain Uint8Arrays. */
export function decodeResult(bytes: Uint8Array): Result<KvResult> {
  return decodeCanonical(bytes, 'kv result', RESULT_HEADS, buildResult, resultItems);
}
