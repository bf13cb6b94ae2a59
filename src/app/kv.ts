/**
 * The built-in deterministic key-value store, replicated by PBFT.
 *
 * Keys are spread over a fixed number of partitions (the first 4 bytes of sha256(utf8 key) as a
 * big-endian uint32, modulo partitionCount). Each partition's canonical bytes are cached and
 * rebuilt only after a change; the state digest is built from cached per-partition digests.
 *
 * Partition bytes (format version 1; all integers big-endian, fixed width):
 *
 *   u8 version = 1 | u32 entryCount | entryCount x entry
 *   entry = u16 keyLength (1..1024) | key (UTF-8) | u8 valueType (0 bytes, 1 text)
 *           | u32 valueLength (0..1 MiB) | value (raw bytes, or UTF-8 for text)
 *
 * Entries are sorted by the key's UTF-8 bytes (strictly ascending, so no duplicates). An empty
 * partition is the five bytes 01 00 00 00 00. The encoding is a bijection with partition contents:
 * `writePartition` accepts exactly the bytes `readPartition` can produce.
 *
 * Snapshot: u8 version = 1 | u32 partitionCount | partitionCount x (u32 length | partition bytes).
 *
 * Returned byte arrays (readPartition) are the cached copies: callers must not modify them.
 */
import { sha256 } from '../crypto/node.ts';
import {
  KEY_BYTES_MAX,
  VALUE_BYTES_MAX,
  bytesEqual,
  decodeOp,
  encodeResult,
  isWellFormed,
  kvError,
  valueByteLength,
  valuesEqual,
  type KvErrorCode,
  type KvOp,
  type KvResult,
  type Value,
} from './kv-ops.ts';
import type { ExecuteContext, PartitionedState, Result, StateMachine } from './types.ts';

export interface KvStoreOptions {
  /** Power of two in 1..65536; default 4096. */
  partitionCount?: number;
}

export const PARTITION_COUNT_DEFAULT = 4096;
export const PARTITION_COUNT_MAX = 65536;
const FORMAT_VERSION = 1;
const VALUE_TYPE_BYTES = 0;
const VALUE_TYPE_TEXT = 1;
const DIGEST_BYTES = 32;
/** Fixed part of an encoded entry: key length, value type, value length. */
const ENTRY_OVERHEAD_BYTES = 2 + 1 + 4;
const PARTITION_HEADER_BYTES = 1 + 4;
const SNAPSHOT_HEADER_BYTES = 1 + 4;

/** Bytes of every empty partition (shared: never modified). */
const EMPTY_PARTITION: Uint8Array = Uint8Array.of(FORMAT_VERSION, 0, 0, 0, 0);

interface Entry {
  readonly key: string;
  readonly keyBytes: Uint8Array;
  readonly partition: number;
  /** The key has a code unit >= U+D800, where UTF-16 order and UTF-8 byte order differ. */
  readonly wide: boolean;
  value: Value;
  /** UTF-8 length for text. */
  valueBytes: number;
}

/** One partition's entries. */
class Partition {
  readonly map = new Map<string, Entry>();
  /** Entries in key-byte order; dropped on insert or delete (value updates keep the order). */
  sorted: Entry[] | undefined;
  /** `entries` must be in key-byte order. */
  constructor(entries?: Entry[]) {
    if (entries !== undefined) {
      for (const e of entries) this.map.set(e.key, e);
      this.sorted = entries;
    }
  }
}

const WIDE = /[\uD800-\uFFFF]/;

function makeEntry(key: string, keyBytes: Uint8Array, partition: number, value: Value, valueBytes: number): Entry {
  return { key, keyBytes, partition, wide: WIDE.test(key), value, valueBytes };
}

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Byte-wise comparison; a JS loop beats the native call for the short keys that are typical. */
function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = a.length < b.length ? a.length : b.length;
  if (n > 64) return Buffer.compare(a, b);
  for (let i = 0; i < n; i++) {
    const d = a[i]! - b[i]!;
    if (d !== 0) return d;
  }
  return a.length - b.length;
}

/** UTF-8 byte order. Below U+D800 it equals UTF-16 order, so plain string comparison serves. */
function compareEntries(a: Entry, b: Entry): number {
  if (a.wide || b.wide) return compareBytes(a.keyBytes, b.keyBytes);
  return a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
}

function copyOf(bytes: Uint8Array, start: number, end: number): Uint8Array {
  const out = new Uint8Array(end - start);
  out.set(bytes.subarray(start, end));
  return out;
}

function copyValue(v: Value): Value {
  return typeof v === 'string' ? v : new Uint8Array(v);
}

function fail(reason: string): { ok: false; reason: string } {
  return { ok: false, reason };
}

/** The partition of a key (given as UTF-8 bytes). */
export function partitionOfKeyBytes(keyBytes: Uint8Array, partitionCount: number): number {
  const h = sha256(keyBytes);
  const x = ((h[0]! << 24) | (h[1]! << 16) | (h[2]! << 8) | h[3]!) >>> 0;
  return x % partitionCount;
}

export function partitionOfKey(key: string, partitionCount: number): number {
  return partitionOfKeyBytes(utf8Encoder.encode(key), partitionCount);
}

function putU16(out: Uint8Array, pos: number, x: number): void {
  out[pos] = x >>> 8;
  out[pos + 1] = x & 0xff;
}

function putU32(out: Uint8Array, pos: number, x: number): void {
  out[pos] = x >>> 24;
  out[pos + 1] = (x >>> 16) & 0xff;
  out[pos + 2] = (x >>> 8) & 0xff;
  out[pos + 3] = x & 0xff;
}

/** Copies small arrays with a loop (cheaper than the native call), large ones with set(). */
function putBytes(out: Uint8Array, pos: number, src: Uint8Array): void {
  const n = src.length;
  if (n > 32) out.set(src, pos);
  else for (let i = 0; i < n; i++) out[pos + i] = src[i]!;
}

function encodePartition(part: Partition | undefined): Uint8Array {
  if (part === undefined || part.map.size === 0) return EMPTY_PARTITION;
  const entries = (part.sorted ??= Array.from(part.map.values()).sort(compareEntries));
  let size = PARTITION_HEADER_BYTES;
  let hasText = false;
  for (const e of entries) {
    size += ENTRY_OVERHEAD_BYTES + e.keyBytes.length + e.valueBytes;
    if (typeof e.value === 'string') hasText = true;
  }
  const out = new Uint8Array(size);
  const buf = hasText ? Buffer.from(out.buffer, out.byteOffset, out.length) : undefined;
  out[0] = FORMAT_VERSION;
  putU32(out, 1, entries.length);
  let pos = PARTITION_HEADER_BYTES;
  for (const e of entries) {
    putU16(out, pos, e.keyBytes.length);
    putBytes(out, pos + 2, e.keyBytes);
    pos += 2 + e.keyBytes.length;
    const v = e.value;
    out[pos] = typeof v === 'string' ? VALUE_TYPE_TEXT : VALUE_TYPE_BYTES;
    putU32(out, pos + 1, e.valueBytes);
    pos += 5;
    if (typeof v === 'string') {
      if (buf!.write(v, pos, e.valueBytes, 'utf8') !== e.valueBytes) throw new Error('kv: text value length changed');
    } else {
      putBytes(out, pos, v);
    }
    pos += e.valueBytes;
  }
  if (pos !== size) throw new Error('kv: partition size mismatch');
  return out;
}

/** Parses and fully validates one partition's bytes; never throws. */
function parsePartition(index: number, partitionCount: number, bytes: Uint8Array): Result<Entry[]> {
  const end = bytes.length;
  if (end < PARTITION_HEADER_BYTES) return fail(`partition ${index}: truncated header`);
  if (bytes[0] !== FORMAT_VERSION) return fail(`partition ${index}: unknown format version ${bytes[0]}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const count = view.getUint32(1);
  // Each entry needs at least its fixed part and one key byte: reject absurd counts early.
  if (count > (end - PARTITION_HEADER_BYTES) / (ENTRY_OVERHEAD_BYTES + 1)) return fail(`partition ${index}: entry count ${count} exceeds the data`);
  const entries: Entry[] = new Array<Entry>(count);
  let pos = PARTITION_HEADER_BYTES;
  let prev: Uint8Array | undefined;
  for (let n = 0; n < count; n++) {
    if (pos + 2 > end) return fail(`partition ${index}: entry ${n}: truncated key length`);
    const keyLength = view.getUint16(pos);
    pos += 2;
    if (keyLength < 1 || keyLength > KEY_BYTES_MAX) return fail(`partition ${index}: entry ${n}: key length ${keyLength} out of range`);
    if (pos + keyLength > end) return fail(`partition ${index}: entry ${n}: truncated key`);
    const keyView = bytes.subarray(pos, pos + keyLength);
    pos += keyLength;
    if (prev !== undefined && compareBytes(prev, keyView) >= 0) return fail(`partition ${index}: entry ${n}: keys not strictly ascending`);
    let key: string;
    try {
      key = utf8Decoder.decode(keyView);
    } catch {
      return fail(`partition ${index}: entry ${n}: key is not valid UTF-8`);
    }
    if (pos + 5 > end) return fail(`partition ${index}: entry ${n}: truncated value header`);
    const valueType = bytes[pos]!;
    const valueLength = view.getUint32(pos + 1);
    pos += 5;
    if (valueType !== VALUE_TYPE_BYTES && valueType !== VALUE_TYPE_TEXT) return fail(`partition ${index}: entry ${n}: unknown value type ${valueType}`);
    if (valueLength > VALUE_BYTES_MAX) return fail(`partition ${index}: entry ${n}: value length ${valueLength} exceeds ${VALUE_BYTES_MAX}`);
    if (pos + valueLength > end) return fail(`partition ${index}: entry ${n}: truncated value`);
    let value: Value;
    if (valueType === VALUE_TYPE_TEXT) {
      try {
        value = utf8Decoder.decode(bytes.subarray(pos, pos + valueLength));
      } catch {
        return fail(`partition ${index}: entry ${n}: text value is not valid UTF-8`);
      }
    } else {
      value = copyOf(bytes, pos, pos + valueLength);
    }
    pos += valueLength;
    const keyBytes = copyOf(keyView, 0, keyLength);
    const partition = partitionOfKeyBytes(keyBytes, partitionCount);
    if (partition !== index) return fail(`partition ${index}: entry ${n}: key belongs to partition ${partition}`);
    entries[n] = makeEntry(key, keyBytes, partition, value, valueLength);
    prev = keyBytes;
  }
  if (pos !== end) return fail(`partition ${index}: ${end - pos} trailing bytes`);
  return { ok: true, value: entries };
}

/** A sorted set of small integers with O(1) insert and sorted take. */
class IndexSet {
  private readonly flags: Uint8Array;
  private list: number[] = [];
  constructor(size: number) {
    this.flags = new Uint8Array(size);
  }
  add(i: number): void {
    if (this.flags[i] === 0) {
      this.flags[i] = 1;
      this.list.push(i);
    }
  }
  addAll(): void {
    this.flags.fill(1);
    this.list = Array.from({ length: this.flags.length }, (_, i) => i);
  }
  get size(): number {
    return this.list.length;
  }
  /** Ascending members; clears the set. */
  take(): number[] {
    const out = this.list;
    this.list = [];
    for (const i of out) this.flags[i] = 0;
    return out.sort((a, b) => a - b);
  }
}

export class KvStore implements StateMachine, PartitionedState {
  readonly partitionCount: number;
  /** Every entry by key. */
  private entries = new Map<string, Entry>();
  /** Entries of each partition (created on first use, dropped when empty). */
  private parts: (Partition | undefined)[];
  /** Cached readPartition bytes; undefined after a change. */
  private encoded: (Uint8Array | undefined)[];
  /** sha256 of each partition's bytes, concatenated (the digest preimage). */
  private readonly partitionDigests: Uint8Array;
  /** Partitions whose entry in `partitionDigests` is out of date. */
  private readonly staleDigests: IndexSet;
  private stateDigest: Uint8Array | undefined;
  /** Partitions changed since the last takeDirtyPartitions(). */
  private readonly dirty: IndexSet;

  constructor(options: KvStoreOptions = {}) {
    const n = options.partitionCount ?? PARTITION_COUNT_DEFAULT;
    if (!Number.isInteger(n) || n < 1 || n > PARTITION_COUNT_MAX || (n & (n - 1)) !== 0) {
      throw new RangeError(`partitionCount must be a power of two in 1..${PARTITION_COUNT_MAX}, got ${n}`);
    }
    this.partitionCount = n;
    this.parts = new Array<Partition | undefined>(n).fill(undefined);
    this.encoded = new Array<Uint8Array | undefined>(n).fill(EMPTY_PARTITION);
    this.partitionDigests = new Uint8Array(n * DIGEST_BYTES);
    const emptyDigest = sha256(EMPTY_PARTITION);
    for (let i = 0; i < n; i++) this.partitionDigests.set(emptyDigest, i * DIGEST_BYTES);
    this.staleDigests = new IndexSet(n);
    this.dirty = new IndexSet(n);
  }

  // --- StateMachine -----------------------------------------------------------------------------

  execute(op: Uint8Array, _ctx: ExecuteContext): Uint8Array {
    const decoded = decodeOp(op);
    if (!decoded.ok) return encodeResult(kvError('MALFORMED_OP'));
    // decodeOp returns fresh byte values and the result is encoded at once: no copies needed.
    return encodeResult(this.applyOwned(decoded.value));
  }

  /**
   * `get` is the store's read-only operation (StateMachine.isReadOnly): the SDK sends it unordered
   * (a read-only request) and each replica executes it on its own committed state.
   */
  isReadOnly(op: Uint8Array): boolean {
    const decoded = decodeOp(op);
    return decoded.ok && decoded.value.type === 'get';
  }

  snapshot(): Uint8Array {
    const n = this.partitionCount;
    const parts: Uint8Array[] = new Array<Uint8Array>(n);
    let size = SNAPSHOT_HEADER_BYTES;
    for (let i = 0; i < n; i++) {
      const p = this.readPartition(i);
      parts[i] = p;
      size += 4 + p.length;
    }
    const out = new Uint8Array(size);
    const view = new DataView(out.buffer);
    out[0] = FORMAT_VERSION;
    view.setUint32(1, n);
    let pos = SNAPSHOT_HEADER_BYTES;
    for (const p of parts) {
      view.setUint32(pos, p.length);
      out.set(p, pos + 4);
      pos += 4 + p.length;
    }
    return out;
  }

  restore(snapshot: Uint8Array): Result {
    if (!(snapshot instanceof Uint8Array)) return fail('snapshot: expected bytes');
    const end = snapshot.length;
    if (end < SNAPSHOT_HEADER_BYTES) return fail('snapshot: truncated header');
    if (snapshot[0] !== FORMAT_VERSION) return fail(`snapshot: unknown format version ${snapshot[0]}`);
    const view = new DataView(snapshot.buffer, snapshot.byteOffset, snapshot.byteLength);
    const n = view.getUint32(1);
    if (n !== this.partitionCount) return fail(`snapshot: ${n} partitions, this store has ${this.partitionCount}`);
    const parsed: Entry[][] = new Array<Entry[]>(n);
    const encoded: Uint8Array[] = new Array<Uint8Array>(n);
    let pos = SNAPSHOT_HEADER_BYTES;
    for (let i = 0; i < n; i++) {
      if (pos + 4 > end) return fail(`snapshot: partition ${i}: truncated length`);
      const length = view.getUint32(pos);
      pos += 4;
      if (pos + length > end) return fail(`snapshot: partition ${i}: truncated`);
      const bytes = snapshot.subarray(pos, pos + length);
      pos += length;
      const r = parsePartition(i, n, bytes);
      if (!r.ok) return fail(`snapshot: ${r.reason}`);
      parsed[i] = r.value;
      encoded[i] = isEmptyPartition(bytes) ? EMPTY_PARTITION : copyOf(bytes, 0, length);
    }
    if (pos !== end) return fail(`snapshot: ${end - pos} trailing bytes`);
    // Valid: replace the whole state.
    const entries = new Map<string, Entry>();
    const parts = new Array<Partition | undefined>(n).fill(undefined);
    for (let i = 0; i < n; i++) {
      const list = parsed[i]!;
      if (list.length === 0) continue;
      for (const e of list) entries.set(e.key, e);
      parts[i] = new Partition(list);
    }
    this.entries = entries;
    this.parts = parts;
    this.encoded = encoded;
    this.staleDigests.addAll();
    this.dirty.addAll();
    this.stateDigest = undefined;
    return { ok: true, value: undefined };
  }

  /** sha256 over the concatenation of sha256(readPartition(i)) for every partition i. */
  digest(): Uint8Array {
    if (this.stateDigest === undefined) {
      for (const i of this.staleDigests.take()) {
        this.partitionDigests.set(sha256(this.readPartition(i)), i * DIGEST_BYTES);
      }
      this.stateDigest = sha256(this.partitionDigests);
    }
    return this.stateDigest.slice();
  }

  // --- PartitionedState -------------------------------------------------------------------------

  /** Canonical bytes of one partition, cached until it changes. Do not modify the result. */
  readPartition(index: number): Uint8Array {
    this.checkIndex(index);
    let bytes = this.encoded[index];
    if (bytes === undefined) {
      bytes = encodePartition(this.parts[index]);
      this.encoded[index] = bytes;
    }
    return bytes;
  }

  writePartition(index: number, bytes: Uint8Array): Result {
    if (!Number.isInteger(index) || index < 0 || index >= this.partitionCount) {
      return fail(`partition ${index} out of range (${this.partitionCount} partitions)`);
    }
    if (!(bytes instanceof Uint8Array)) return fail(`partition ${index}: expected bytes`);
    const r = parsePartition(index, this.partitionCount, bytes);
    if (!r.ok) return r;
    const old = this.parts[index];
    if (old !== undefined) for (const key of old.map.keys()) this.entries.delete(key);
    for (const e of r.value) this.entries.set(e.key, e);
    this.parts[index] = r.value.length > 0 ? new Partition(r.value) : undefined;
    this.touch(index);
    // The bytes were validated as canonical: keep a copy in place of re-encoding later.
    this.encoded[index] = isEmptyPartition(bytes) ? EMPTY_PARTITION : copyOf(bytes, 0, bytes.length);
    return { ok: true, value: undefined };
  }

  takeDirtyPartitions(): number[] {
    return this.dirty.take();
  }

  // --- accessors --------------------------------------------------------------------------------

  /** Number of keys. */
  get size(): number {
    return this.entries.size;
  }

  /** Read-only lookup (a copy for byte values); null when absent. */
  get(key: string): Value | null {
    const e = this.entries.get(key);
    return e === undefined ? null : copyValue(e.value);
  }

  /** Number of keys in one partition. */
  keyCount(partition: number): number {
    this.checkIndex(partition);
    return this.parts[partition]?.map.size ?? 0;
  }

  /** The partition a key belongs to. */
  partitionOf(key: string): number {
    return partitionOfKey(key, this.partitionCount);
  }

  /**
   * Applies a decoded operation (what `execute` does after decoding). Byte values are copied in
   * and out, so the caller's arrays and the store never alias.
   */
  apply(op: KvOp): KvResult {
    let owned: KvOp;
    switch (op.type) {
      case 'put':
        owned = { type: 'put', key: op.key, value: copyValue(op.value) };
        break;
      case 'cas':
        owned = {
          type: 'cas',
          key: op.key,
          expected: op.expected === null ? null : copyValue(op.expected),
          next: op.next === null ? null : copyValue(op.next),
        };
        break;
      default:
        owned = op;
    }
    const r = this.applyOwned(owned);
    if (r.type === 'get' && r.value !== null) return { type: 'get', value: copyValue(r.value) };
    if (r.type === 'cas' && r.current !== null) return { type: 'cas', swapped: r.swapped, current: copyValue(r.current) };
    return r;
  }

  // --- internals --------------------------------------------------------------------------------

  private checkIndex(index: number): void {
    if (!Number.isInteger(index) || index < 0 || index >= this.partitionCount) {
      throw new RangeError(`partition ${index} out of range (${this.partitionCount} partitions)`);
    }
  }

  private touch(partition: number): void {
    this.encoded[partition] = undefined;
    this.staleDigests.add(partition);
    this.dirty.add(partition);
    this.stateDigest = undefined;
  }

  /** Limits, checked before any state is read: key, then every value in the op. */
  private static limitError(op: KvOp): KvErrorCode | null {
    if (typeof op.key !== 'string' || !isWellFormed(op.key)) return 'MALFORMED_OP';
    if (op.key.length === 0) return 'KEY_EMPTY';
    // A UTF-16 code unit takes at most 3 UTF-8 bytes: skip the count for short keys.
    if (op.key.length * 3 > KEY_BYTES_MAX && Buffer.byteLength(op.key, 'utf8') > KEY_BYTES_MAX) return 'KEY_TOO_LONG';
    if (op.type === 'put') return KvStore.valueError(op.value, false);
    if (op.type === 'cas') return KvStore.valueError(op.expected, true) ?? KvStore.valueError(op.next, true);
    return null;
  }

  private static valueError(v: Value | null, nullable: boolean): KvErrorCode | null {
    if (v === null) return nullable ? null : 'MALFORMED_OP';
    if (typeof v === 'string') {
      if (!isWellFormed(v)) return 'MALFORMED_OP';
      return v.length * 3 > VALUE_BYTES_MAX && valueByteLength(v) > VALUE_BYTES_MAX ? 'VALUE_TOO_LARGE' : null;
    }
    if (!(v instanceof Uint8Array)) return 'MALFORMED_OP';
    return v.length > VALUE_BYTES_MAX ? 'VALUE_TOO_LARGE' : null;
  }

  /** Applies an op whose byte values the store may keep. Results may reference stored values. */
  private applyOwned(op: KvOp): KvResult {
    const err = KvStore.limitError(op);
    if (err !== null) return kvError(err);
    const e = this.entries.get(op.key);
    switch (op.type) {
      case 'put':
        this.set(op.key, e, op.value);
        return PUT_RESULT;
      case 'get':
        return { type: 'get', value: e === undefined ? null : e.value };
      case 'del':
        if (e === undefined) return DEL_ABSENT;
        this.remove(e);
        return DEL_EXISTED;
      case 'cas': {
        const current = e === undefined ? null : e.value;
        if (!valuesEqual(current, op.expected)) return { type: 'cas', swapped: false, current };
        if (op.next === null) {
          if (e !== undefined) this.remove(e);
        } else {
          this.set(op.key, e, op.next);
        }
        return { type: 'cas', swapped: true, current: op.next };
      }
      default:
        return kvError('MALFORMED_OP');
    }
  }

  private set(key: string, e: Entry | undefined, value: Value): void {
    if (e !== undefined) {
      if (valuesEqual(e.value, value)) return; // no change
      e.value = value;
      e.valueBytes = valueByteLength(value);
      this.touch(e.partition);
      return;
    }
    const keyBytes = utf8Encoder.encode(key);
    const partition = partitionOfKeyBytes(keyBytes, this.partitionCount);
    const entry = makeEntry(key, keyBytes, partition, value, valueByteLength(value));
    this.entries.set(key, entry);
    let part = this.parts[partition];
    if (part === undefined) {
      part = new Partition();
      this.parts[partition] = part;
    }
    part.map.set(key, entry);
    part.sorted = undefined;
    this.touch(partition);
  }

  private remove(e: Entry): void {
    this.entries.delete(e.key);
    const part = this.parts[e.partition];
    if (part !== undefined) {
      part.map.delete(e.key);
      part.sorted = undefined;
      if (part.map.size === 0) this.parts[e.partition] = undefined;
    }
    this.touch(e.partition);
  }
}

const PUT_RESULT: KvResult = Object.freeze({ type: 'put' });
const DEL_ABSENT: KvResult = Object.freeze({ type: 'del', existed: false });
const DEL_EXISTED: KvResult = Object.freeze({ type: 'del', existed: true });

function isEmptyPartition(bytes: Uint8Array): boolean {
  return bytesEqual(bytes, EMPTY_PARTITION);
}
