/**
 * The built-in deterministic key-value store, replicated by PBFT.
 *
 * Keys are spread over a fixed number of partitions (the first 4 bytes of sha256(utf8 key) as a
 * big-endian uint32, modulo partitionCount). The store holds each partition as its canonical bytes
 * (below) and nothing else per key: lookups binary-search an index of entry offsets; changes wait in
 * a small per-partition overlay and are merged, in one linear pass, when the partition's bytes are
 * next read (the core reads the changed partitions at each checkpoint). So memory is about the
 * encoded size of the data (key + value + 7 bytes + 4 bytes of index per key), a checkpoint costs
 * a merge of each changed partition, and recovery adopts the bytes read from disk as they are.
 * The state digest is built from cached per-partition digests.
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
import { isUtf8 as nodeIsUtf8 } from 'node:buffer';
import { sha256 } from '../crypto/node.ts';
import {
  KEY_BYTES_MAX,
  VALUE_BYTES_MAX,
  decodeOp,
  decodeOpView,
  decodePutManyView,
  encodeResult,
  isPutMany,
  isWellFormed,
  kvError,
  valueByteLength,
  valuesEqual,
  type KvErrorCode,
  type KvOp,
  type KvPutMany,
  type KvResult,
  type Value,
} from './kv-ops.ts';
import type { ExecuteContext, PartitionDiff, PartitionedState, Result, StateMachine } from './types.ts';

export interface KvStoreOptions {
  /** Power of two in 1..65536; default 4096. */
  partitionCount?: number;
  /**
   * How many bytes of merged partitions may be allocated where V8 does not count them toward its
   * next full collection, between two stretches of counted ones (PartitionBytes); default
   * `PartitionBytes.defaultBudget(keys)`, 0 counts them all (V8's default behaviour).
   */
  uncountedBytes?: (keys: number) => number;
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
/** A placeholder in diffPartition until fillRecords sets the record. */
const EMPTY_RECORD = new Uint8Array(0);

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Whether SharedArrayBuffer is offered (not in a browser page that is not cross-origin isolated). */
const HAS_SHARED_MEMORY = typeof SharedArrayBuffer === 'function';

/**
 * Where merged partitions' bytes are allocated. A checkpoint replaces every partition changed since
 * the last one with new bytes (mergeInto): with 10M keys in 65,536 partitions, 18 KiB for about
 * every put. V8 counts each new ArrayBuffer's bytes as external memory and starts a full
 * mark-compact of the heap each time 64 MiB more of it has been allocated since the last one: with
 * a replica's 170 MiB heap that was a full collection every 3,500 puts or so, and perf put V8's
 * concurrent markers and sweepers at 22% of a loaded replica's CPU, its main thread's share of the
 * collections at 6% more (bench/results/issue15-2026-12-05-gc.txt).
 *
 * A SharedArrayBuffer's bytes are not counted (V8 excludes shared backing stores from that
 * accounting): the same memory, freed by the same collections, and a view on it reads and writes as
 * any Uint8Array does (zlib, hashing, CBOR, RocksDB take it alike; only this store writes it, while
 * merging). So up to `budget` bytes are allocated there, then 64 MiB the counted way, which makes
 * V8 collect (freeing the replaced partitions of both kinds), and so on: one full collection per
 * budget + 64 MiB of merged partitions instead of per 64 MiB, and at most that much memory held by
 * replaced partitions until it comes. Deterministic: it depends on the bytes allocated only, and
 * either kind holds the same bytes.
 *
 * Counted bytes are not zeroed (mergeInto and the join write every byte and check that they did):
 * jemalloc zeroes an allocation of its large size classes (16 KiB and up) by returning the pages to
 * the kernel, so a zeroed 18 KiB partition (10M keys) faulted its pages in again on first touch, 80-130
 * us per allocation against 7 us not zeroed (bench/alloc-cost.ts). A SharedArrayBuffer is always
 * zeroed and pays that too on jemalloc; the budget stays all the same, since counting those
 * partitions costs a replica more in collections (docs/performance.md, "Scale with state size": 1.88 against
 * 1.41 ms of CPU per request with 10M keys).
 */
export class PartitionBytes {
  /** V8's step of external memory between full collections (Heap::kExternalAllocationSoftLimit). */
  static readonly COUNTED_STRETCH = 64 * 2 ** 20;
  /** Budget cap: what a replica may hold in replaced partitions beyond V8's own 64 MiB. */
  static readonly BUDGET_MAX = 512 * 2 ** 20;
  /** The default: 32 bytes per key (a quarter of a 10M-key store's partition bytes, 320 MiB), at most BUDGET_MAX. */
  static defaultBudget(keys: number): number {
    return Math.min(PartitionBytes.BUDGET_MAX, keys * 32);
  }
  constructor(
    /** Counted bytes that end a cycle (tests take less). */
    private readonly stretch = PartitionBytes.COUNTED_STRETCH,
  ) {}
  /** Bytes allocated uncounted in this cycle, and counted ones since the budget was used up. */
  private uncounted = 0;
  private counted = 0;
  /** Totals, for tests and figures. */
  uncountedTotal = 0;
  countedTotal = 0;

  /**
   * `size` bytes for a merged or joined partition, on shared memory while this cycle's uncounted
   * bytes stay within `budget`. Their contents are unspecified: the caller writes every byte.
   */
  allocate(size: number, budget: number): Uint8Array {
    if (HAS_SHARED_MEMORY && this.uncounted + size <= budget) {
      this.uncounted += size;
      this.uncountedTotal += size;
      return new Uint8Array(new SharedArrayBuffer(size));
    }
    this.counted += size;
    this.countedTotal += size;
    if (this.counted >= this.stretch) {
      this.counted = 0;
      this.uncounted = 0;
    }
    return uninitialized(size);
  }
}

/**
 * `size` bytes of memory, not zeroed: for callers that write every byte (mergeInto and the join
 * check that they did). `new Uint8Array(size)` asks the C library for zeroed memory (calloc), and
 * jemalloc zeroes a reused extent of this size by returning its pages to the kernel: a page fault
 * per 4 KiB on first touch again, 5.5 per merged 18 KiB partition (PartitionBytes). A plain
 * Uint8Array over the Buffer's own ArrayBuffer (never a pooled one), so that slice() copies as
 * everywhere else in the store.
 */
export function uninitialized(size: number): Uint8Array {
  const b = Buffer.allocUnsafeSlow(size);
  return new Uint8Array(b.buffer, b.byteOffset, size);
}

/**
 * One partition: its canonical bytes as of the last merge (`base`, immutable once made: snapshots
 * and the core's digest tree share it), an index of its entries, and the changes since (`overlay`:
 * key -> its UTF-8 bytes and new value, null for deleted), merged into a new `base` when the partition's bytes are next
 * read (at a checkpoint). So the store holds each key and value once, as bytes, and a checkpoint
 * costs one linear merge per changed partition.
 */
class Partition {
  /** Start of each entry of `base`; built on first lookup. */
  offsets: Uint32Array | undefined;
  overlay: Map<string, Pending> | undefined;
  /**
   * Changes up to the last freezePartitions() (older than `overlay`), until merged into `base`;
   * lookups see `overlay`, then these, then `base`.
   */
  frozen: Map<string, Pending> | undefined;
  /** Keys as of the freeze while the frozen version is not taken (readFrozenPartition); else -1. */
  frozenCount = -1;
  /** The frozen version's bytes once merged, until readFrozenPartition takes them. */
  frozenBytes: Uint8Array | undefined;
  constructor(
    public base: Uint8Array,
    /** Keys now (base and overlay). */
    public count: number,
    offsets?: Uint32Array,
  ) {
    this.offsets = offsets;
  }
}

/**
 * A change waiting in a partition's overlay, as one small object (a bulk load holds a million of
 * them until the next checkpoint, and the GC marks each): the key's UTF-8 bytes at
 * [start, start + keyLength) of `chunk`, then, for a byte value, its bytes (valueLength of them).
 */
interface Pending {
  chunk: Uint8Array;
  start: number;
  keyLength: number;
  valueLength: number;
  /** The new value when it is text; null when the key is deleted; undefined for bytes (in `chunk`). */
  text: string | null | undefined;
}

/** The pending change's value (bytes as a view into its chunk: do not modify), null for deleted. */
function pendingValue(p: Pending): Value | null {
  if (p.text !== undefined) return p.text;
  const from = p.start + p.keyLength;
  return p.chunk.subarray(from, from + p.valueLength);
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

function getU16(b: Uint8Array, pos: number): number {
  return (b[pos]! << 8) | b[pos + 1]!;
}

function getU32(b: Uint8Array, pos: number): number {
  return ((b[pos]! << 24) | (b[pos + 1]! << 16) | (b[pos + 2]! << 8) | b[pos + 3]!) >>> 0;
}

/** Compares a[aPos, aPos + aLen) with b[bPos, bPos + bLen), byte-wise (UTF-8 order). */
function compareRanges(a: Uint8Array, aPos: number, aLen: number, b: Uint8Array, bPos: number, bLen: number): number {
  const n = aLen < bLen ? aLen : bLen;
  for (let i = 0; i < n; i++) {
    const d = a[aPos + i]! - b[bPos + i]!;
    if (d !== 0) return d;
  }
  return aLen - bLen;
}

/** Entry starts of trusted partition bytes (made by this store or validated). */
function indexPartition(bytes: Uint8Array): Uint32Array {
  const count = getU32(bytes, 1);
  const offsets = new Uint32Array(count);
  let pos = PARTITION_HEADER_BYTES;
  for (let n = 0; n < count; n++) {
    offsets[n] = pos;
    pos += 2 + getU16(bytes, pos);
    pos += 5 + getU32(bytes, pos + 1);
  }
  return offsets;
}

/** Index of the entry with key bytes `k` in `part.base`, or -(insertion point) - 1. */
function findInBase(part: Partition, k: Uint8Array): number {
  return findRangeInBase(part, k, 0, k.length);
}

/** findInBase for the key bytes src[from, from + len). */
function findRangeInBase(part: Partition, src: Uint8Array, from: number, len: number): number {
  const offsets = (part.offsets ??= indexPartition(part.base));
  const b = part.base;
  let lo = 0;
  let hi = offsets.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const off = offsets[mid]!;
    const c = compareRanges(src, from, len, b, off + 2, getU16(b, off));
    if (c === 0) return mid;
    if (c > 0) lo = mid + 1;
    else hi = mid - 1;
  }
  return -lo - 1;
}

/** The value of entry `i` of trusted bytes: text decoded, bytes as a view into `b` (do not modify). */
function valueAt(b: Uint8Array, off: number): Value {
  const vpos = off + 2 + getU16(b, off);
  const length = getU32(b, vpos + 1);
  const bytes = b.subarray(vpos + 5, vpos + 5 + length);
  return b[vpos] === VALUE_TYPE_TEXT ? utf8Decoder.decode(bytes) : bytes;
}

/** Bytes entry `i` of trusted bytes takes. */
function entryEnd(b: Uint8Array, off: number): number {
  const vpos = off + 2 + getU16(b, off);
  return vpos + 5 + getU32(b, vpos + 1);
}

/** The same bytes as a Buffer (no copy), for native comparisons. */
function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Below this many bytes, runs are compared in JavaScript (a native call costs more). */
const RUN_COMPARE_MIN = 64;

/**
 * How many bytes a and b have in common from `start` on (both from the same offset): one native
 * comparison of everything, then halving the range that holds the first difference. A native
 * comparison costs about the same for 16 KiB as for 128 bytes (its call dominates), so this takes
 * O(log n) calls where a comparison per entry took one for each.
 */
function commonPrefixLength(a: Buffer, b: Buffer, start: number): number {
  let pos = start;
  let len = Math.max(0, Math.min(a.length, b.length) - start);
  if (len >= RUN_COMPARE_MIN && a.compare(b, pos, pos + len, pos, pos + len) === 0) return len;
  // [pos, pos + len) holds the first difference, if any; every byte before pos matches.
  while (len >= 2 * RUN_COMPARE_MIN) {
    const half = len >> 1;
    if (a.compare(b, pos, pos + half, pos, pos + half) === 0) {
      pos += half;
      len -= half;
    } else {
      len = half;
    }
  }
  const end = pos + len;
  while (pos < end && a[pos] === b[pos]) pos++;
  return pos - start;
}

/**
 * How many bytes a and b have in common at their ends, counted back from each end, at most as many
 * as lie after `floor` in the shorter one (so that a common prefix ending at floor and this suffix
 * never overlap). As commonPrefixLength, from the ends.
 */
function commonSuffixLength(a: Buffer, b: Buffer, floor: number): number {
  let len = 0;
  let m = Math.max(0, Math.min(a.length, b.length) - floor);
  if (m >= RUN_COMPARE_MIN && a.compare(b, b.length - m, b.length, a.length - m, a.length) === 0) return m;
  // The bytes len .. len + m back from the ends hold the first difference, if any; the last len match.
  while (m >= 2 * RUN_COMPARE_MIN) {
    const half = m >> 1;
    const ae = a.length - len;
    const be = b.length - len;
    if (a.compare(b, be - half, be, ae - half, ae) === 0) {
      len += half;
      m -= half;
    } else {
      m = half;
    }
  }
  const stop = len + m;
  while (len < stop && a[a.length - 1 - len] === b[b.length - 1 - len]) len++;
  return len;
}

/**
 * The records of the entries whose value headers start at spans[2k] and end at spans[2k+1], into
 * put[k][1]: u8 valueType | value (the u32 length dropped: the record's size gives it). One buffer
 * holds them all, each record a view into it: a stable checkpoint after a bulk load finds hundreds
 * of thousands of records, and a buffer of its own for each (an allocation outside the heap, freed
 * by the collector) was most of what finding them cost.
 */
function fillRecords(b: Buffer, spans: number[], put: Array<[string, Uint8Array]>): void {
  let total = 0;
  for (let k = 0; k < spans.length; k += 2) total += spans[k + 1]! - spans[k]! - 4;
  const slab = recordSlab(total);
  let at = slab.byteOffset;
  for (let k = 0; k < spans.length; k += 2) {
    const vpos = spans[k]!;
    const end = spans[k + 1]!;
    const record = new Uint8Array(slab.buffer, at, end - vpos - 4);
    record[0] = b[vpos]!;
    record.set(b.subarray(vpos + 5, end), 1);
    put[k >> 1]![1] = record;
    at += end - vpos - 4;
  }
}

/**
 * Room for one partition's records: small ones share the chunks of a ByteArena (as the overlay's
 * keys and values do). The records of a checkpoint live until its stable checkpoint writes them,
 * all at once, so a chunk is freed soon after its last record is written; an ArrayBuffer for each
 * partition's records (a steady workload changes a few thousand partitions per checkpoint, most
 * with one record) cost the collector more than finding them.
 */
function recordSlab(n: number): Uint8Array {
  if (n > ARENA_ITEM_MAX) return new Uint8Array(n);
  const at = recordArena.reserve(n);
  return recordArena.chunk.subarray(at, at + n);
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

/** Copies src[from, to) to out at pos: small ranges with a loop (cheaper than the native call), large ones with set(). */
function copyRange(out: Uint8Array, pos: number, src: Uint8Array, from: number, to: number): void {
  if (to - from > 32) out.set(src.subarray(from, to), pos);
  else for (let i = from; i < to; i++) out[pos++] = src[i]!;
}


/** Overlay entries (key and byte value) of at most this size share chunks (ByteArena). */
const ARENA_ITEM_MAX = 4096;
const ARENA_CHUNK_BYTES = 64 * 1024;

/**
 * Where the overlay keeps key bytes and byte values: copied into shared 64 KiB chunks, not into an
 * ArrayBuffer each. V8 tracks every ArrayBuffer for the GC, and a bulk load of 1M keys made 2M of
 * them: the collector's work (incremental marking steps, run by allocations) sat inside the next
 * checkpoint's merge, three quarters of it. A
 * chunk is freed once every change it holds is merged or replaced (a replica merges every changed
 * partition at each checkpoint). Larger entries get an array of their own.
 */
class ByteArena {
  chunk = new Uint8Array(0);
  private pos = 0;

  /** Room for n bytes (n <= ARENA_ITEM_MAX): they are at the returned offset of `chunk`. */
  reserve(n: number): number {
    if (this.pos + n > this.chunk.length) {
      this.chunk = new Uint8Array(ARENA_CHUNK_BYTES);
      this.pos = 0;
    }
    const start = this.pos;
    this.pos = start + n;
    return start;
  }
}

/** Where a checkpoint's records are copied (recordSlab). */
const recordArena = new ByteArena();

/** Key bytes for a lookup are encoded here (valid until the next encodeKey), most keys without an allocation. */
const keyScratch = new Uint8Array(3 * KEY_BYTES_MAX);

/** The UTF-8 bytes of `key`: a view into keyScratch, overwritten by the next call (copy what is kept). */
function encodeKey(key: string): Uint8Array {
  if (key.length * 3 > keyScratch.length) return utf8Encoder.encode(key);
  const { written } = utf8Encoder.encodeInto(key, keyScratch);
  return keyScratch.subarray(0, written);
}

interface Change {
  pending: Pending;
  /** Encoded value bytes; -1 for a deleted key. */
  valueBytes: number;
  /** findInBase's answer for the key. */
  at: number;
}

function byKey(a: Change, b: Change): number {
  const p = a.pending;
  const q = b.pending;
  return compareRanges(p.chunk, p.start, p.keyLength, q.chunk, q.start, q.keyLength);
}

/**
 * The partition's bytes with its changes applied (a frozen version first, then the overlay): a new
 * `base`. Keeps the frozen version's bytes for readFrozenPartition. Clears both.
 */
function mergePartition(part: Partition, alloc: Allocate): void {
  mergeFrozen(part, alloc);
  const overlay = part.overlay;
  if (overlay === undefined || overlay.size === 0) return;
  mergeInto(part, overlay, part.count, alloc);
  part.overlay = undefined;
}

/** Merges a frozen version not merged yet into `base` and keeps its bytes in `frozenBytes`. */
function mergeFrozen(part: Partition, alloc: Allocate): void {
  if (part.frozenCount < 0 || part.frozenBytes !== undefined) return;
  const frozen = part.frozen;
  if (frozen !== undefined && frozen.size > 0) mergeInto(part, frozen, part.frozenCount, alloc);
  part.frozen = undefined;
  part.frozenBytes = part.frozenCount === 0 ? EMPTY_PARTITION : part.base;
}

/** New bytes for a merged partition (PartitionBytes). */
type Allocate = (size: number) => Uint8Array;

/**
 * `base` with `changes` applied, as the new `base` whose header counts `count` keys: a copy of the
 * unchanged runs of `base` and the changed entries in key order (one linear pass).
 */
function mergeInto(part: Partition, overlay: Map<string, Pending>, count: number, alloc: Allocate): void {
  const changes: Change[] = [];
  for (const p of overlay.values()) {
    const valueBytes = p.text === undefined ? p.valueLength : p.text === null ? -1 : valueByteLength(p.text);
    changes.push({ pending: p, valueBytes, at: findRangeInBase(part, p.chunk, p.start, p.keyLength) });
  }
  changes.sort(byKey);
  const base = part.base;
  const offsets = part.offsets!;
  let size = base.length;
  let hasText = false;
  for (const c of changes) {
    if (c.at >= 0) {
      const off = offsets[c.at]!;
      size -= entryEnd(base, off) - off;
    }
    if (c.valueBytes >= 0) {
      size += ENTRY_OVERHEAD_BYTES + c.pending.keyLength + c.valueBytes;
      if (typeof c.pending.text === 'string') hasText = true;
    }
  }
  const out = alloc(size);
  const buf = hasText ? Buffer.from(out.buffer, out.byteOffset, out.length) : undefined;
  out[0] = FORMAT_VERSION;
  putU32(out, 1, count);
  // The new base's entry starts, built as it is written (the next lookup would otherwise walk every
  // entry of it again: at 10M keys a partition holds 150).
  const starts = new Uint32Array(count);
  let n = 0;
  let pos = PARTITION_HEADER_BYTES;
  /** Where the next unchanged run of base starts, and the index of its first entry. */
  let from = PARTITION_HEADER_BYTES;
  let next = 0;
  for (const c of changes) {
    // Base entries before this key are unchanged: one copy.
    const runEndIndex = c.at >= 0 ? c.at : -c.at - 1;
    const runEnd = runEndIndex < offsets.length ? offsets[runEndIndex]! : base.length;
    if (runEnd > from) {
      out.set(base.subarray(from, runEnd), pos);
      const shift = pos - from;
      for (; next < runEndIndex; next++) starts[n++] = offsets[next]! + shift;
      pos += runEnd - from;
    }
    from = c.at >= 0 ? entryEnd(base, runEnd) : runEnd;
    next = c.at >= 0 ? c.at + 1 : runEndIndex;
    if (c.valueBytes < 0) continue; // deleted
    starts[n++] = pos;
    const p = c.pending;
    putU16(out, pos, p.keyLength);
    copyRange(out, pos + 2, p.chunk, p.start, p.start + p.keyLength);
    pos += 2 + p.keyLength;
    const text = p.text;
    out[pos] = typeof text === 'string' ? VALUE_TYPE_TEXT : VALUE_TYPE_BYTES;
    putU32(out, pos + 1, c.valueBytes);
    pos += 5;
    if (typeof text === 'string') {
      if (buf!.write(text, pos, c.valueBytes, 'utf8') !== c.valueBytes) throw new Error('kv: text value length changed');
    } else {
      const from = p.start + p.keyLength;
      copyRange(out, pos, p.chunk, from, from + p.valueLength);
    }
    pos += c.valueBytes;
  }
  if (base.length > from) {
    out.set(base.subarray(from), pos);
    const shift = pos - from;
    for (; next < offsets.length; next++) starts[n++] = offsets[next]! + shift;
    pos += base.length - from;
  }
  if (pos !== size || n !== count) throw new Error('kv: partition size mismatch');
  part.base = count === 0 ? EMPTY_PARTITION : out;
  part.offsets = starts;
}

/**
 * Checks one partition's bytes completely (structure, limits, strictly ascending keys, valid UTF-8,
 * every key in this partition) and returns its entry starts; never throws. Without `full`, keys are
 * not checked for UTF-8 nor for the partition they hash to (loadPartition).
 */
function parsePartition(index: number, partitionCount: number, bytes: Uint8Array, full = true, content = true): Result<Uint32Array> {
  const end = bytes.length;
  if (end < PARTITION_HEADER_BYTES) return fail(`partition ${index}: truncated header`);
  if (bytes[0] !== FORMAT_VERSION) return fail(`partition ${index}: unknown format version ${bytes[0]}`);
  const count = getU32(bytes, 1);
  // Each entry needs at least its fixed part and one key byte: reject absurd counts early.
  if (count > (end - PARTITION_HEADER_BYTES) / (ENTRY_OVERHEAD_BYTES + 1)) return fail(`partition ${index}: entry count ${count} exceeds the data`);
  const offsets = new Uint32Array(count);
  let pos = PARTITION_HEADER_BYTES;
  let prevPos = -1;
  let prevLength = 0;
  for (let n = 0; n < count; n++) {
    offsets[n] = pos;
    if (pos + 2 > end) return fail(`partition ${index}: entry ${n}: truncated key length`);
    const keyLength = getU16(bytes, pos);
    pos += 2;
    if (keyLength < 1 || keyLength > KEY_BYTES_MAX) return fail(`partition ${index}: entry ${n}: key length ${keyLength} out of range`);
    if (pos + keyLength > end) return fail(`partition ${index}: entry ${n}: truncated key`);
    // No view per key unless it is needed (a restart parses every key of the state: 10M views at 10M keys).
    if (content && prevPos >= 0 && compareRanges(bytes, pos, keyLength, bytes, prevPos, prevLength) <= 0) return fail(`partition ${index}: entry ${n}: keys not strictly ascending`);
    const keyView = full ? bytes.subarray(pos, pos + keyLength) : undefined;
    if (keyView !== undefined && !isUtf8(keyView)) return fail(`partition ${index}: entry ${n}: key is not valid UTF-8`);
    prevPos = pos;
    prevLength = keyLength;
    pos += keyLength;
    if (pos + 5 > end) return fail(`partition ${index}: entry ${n}: truncated value header`);
    const valueType = bytes[pos]!;
    const valueLength = getU32(bytes, pos + 1);
    pos += 5;
    if (valueType !== VALUE_TYPE_BYTES && valueType !== VALUE_TYPE_TEXT) return fail(`partition ${index}: entry ${n}: unknown value type ${valueType}`);
    if (valueLength > VALUE_BYTES_MAX) return fail(`partition ${index}: entry ${n}: value length ${valueLength} exceeds ${VALUE_BYTES_MAX}`);
    if (pos + valueLength > end) return fail(`partition ${index}: entry ${n}: truncated value`);
    if (content && valueType === VALUE_TYPE_TEXT && !isUtf8(bytes.subarray(pos, pos + valueLength))) return fail(`partition ${index}: entry ${n}: text value is not valid UTF-8`);
    pos += valueLength;
    if (keyView === undefined) continue;
    const partition = partitionOfKeyBytes(keyView, partitionCount);
    if (partition !== index) return fail(`partition ${index}: entry ${n}: key belongs to partition ${partition}`);
  }
  if (pos !== end) return fail(`partition ${index}: ${end - pos} trailing bytes`);
  return { ok: true, value: offsets };
}

/** Key bytes of joinPartition's records, two alternating (the current and the previous one). */
const nameScratchA = Buffer.alloc(3 * KEY_BYTES_MAX);
const nameScratchB = Buffer.alloc(3 * KEY_BYTES_MAX);
let joinArea = Buffer.alloc(64 * 1024);

/** joinPartition's work area, at least `bytes` long (reused; contents undefined). */
function joinScratch(bytes: number): Buffer {
  if (joinArea.length < bytes) joinArea = Buffer.alloc(Math.max(bytes, 2 * joinArea.length));
  return joinArea;
}

/** Whether the bytes are valid UTF-8 (what the fatal TextDecoder accepts). */
function isUtf8(bytes: Uint8Array): boolean {
  return nodeIsUtf8(bytes);
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
    const flags = this.flags;
    if (out.length * 16 < flags.length) {
      for (const i of out) flags[i] = 0;
      return out.sort((a, b) => a - b);
    }
    // Most of the set (a checkpoint after a bulk load): one pass over the flags is already in order.
    let n = 0;
    for (let i = 0; i < flags.length; i++) {
      if (flags[i] === 0) continue;
      flags[i] = 0;
      out[n++] = i;
    }
    return out;
  }
}

export class KvStore implements StateMachine, PartitionedState {
  readonly partitionCount: number;
  /** Each partition (undefined: empty and unchanged since it was last read). */
  private parts: (Partition | undefined)[];
  /** Number of keys. */
  private keys = 0;
  /** sha256 of each partition's bytes, concatenated (the digest preimage). */
  private readonly partitionDigests: Uint8Array;
  /** Partitions whose entry in `partitionDigests` is out of date. */
  private readonly staleDigests: IndexSet;
  private stateDigest: Uint8Array | undefined;
  /** Partitions changed since the last takeDirtyPartitions(). */
  private readonly dirty: IndexSet;
  /** Copies of the key bytes and byte values the overlays hold. */
  private readonly arena = new ByteArena();
  /** Partitions the last freezePartitions() fixed whose frozen version is not taken yet. */
  private frozenParts = new Set<number>();
  /** Where merged partitions are allocated (PartitionBytes: counted by V8 or not). */
  readonly partitionBytes = new PartitionBytes();
  private readonly uncountedBytes: (keys: number) => number;
  private readonly allocate: Allocate = (size) => this.partitionBytes.allocate(size, this.uncountedBytes(this.keys));

  constructor(options: KvStoreOptions = {}) {
    const n = options.partitionCount ?? PARTITION_COUNT_DEFAULT;
    if (!Number.isInteger(n) || n < 1 || n > PARTITION_COUNT_MAX || (n & (n - 1)) !== 0) {
      throw new RangeError(`partitionCount must be a power of two in 1..${PARTITION_COUNT_MAX}, got ${n}`);
    }
    this.partitionCount = n;
    this.uncountedBytes = options.uncountedBytes ?? PartitionBytes.defaultBudget;
    this.parts = new Array<Partition | undefined>(n).fill(undefined);
    this.partitionDigests = new Uint8Array(n * DIGEST_BYTES);
    const emptyDigest = sha256(EMPTY_PARTITION);
    for (let i = 0; i < n; i++) this.partitionDigests.set(emptyDigest, i * DIGEST_BYTES);
    this.staleDigests = new IndexSet(n);
    this.dirty = new IndexSet(n);
  }

  // --- StateMachine -----------------------------------------------------------------------------

  execute(op: Uint8Array, _ctx: ExecuteContext): Uint8Array {
    // Values are views into `op`: the store copies what it keeps, and the result is encoded at once.
    if (isPutMany(op)) {
      const many = decodePutManyView(op);
      return encodeResult(many.ok ? this.applyPutMany(many.value) : kvError('MALFORMED_OP'));
    }
    const decoded = decodeOpView(op);
    if (!decoded.ok) return encodeResult(kvError('MALFORMED_OP'));
    return encodeResult(this.applyOp(decoded.value));
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
    const n = getU32(snapshot, 1);
    if (n !== this.partitionCount) return fail(`snapshot: ${n} partitions, this store has ${this.partitionCount}`);
    const parts = new Array<Partition | undefined>(n).fill(undefined);
    let keys = 0;
    let pos = SNAPSHOT_HEADER_BYTES;
    for (let i = 0; i < n; i++) {
      if (pos + 4 > end) return fail(`snapshot: partition ${i}: truncated length`);
      const length = getU32(snapshot, pos);
      pos += 4;
      if (pos + length > end) return fail(`snapshot: partition ${i}: truncated`);
      const bytes = snapshot.subarray(pos, pos + length);
      pos += length;
      const r = parsePartition(i, n, bytes);
      if (!r.ok) return fail(`snapshot: ${r.reason}`);
      if (r.value.length === 0) continue;
      parts[i] = new Partition(copyOf(bytes, 0, length), r.value.length, r.value);
      keys += r.value.length;
    }
    if (pos !== end) return fail(`snapshot: ${end - pos} trailing bytes`);
    // Valid: replace the whole state (and drop what a freeze fixed: it was of the state replaced).
    this.parts = parts;
    this.frozenParts.clear();
    this.keys = keys;
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
    const part = this.parts[index];
    if (part === undefined) return EMPTY_PARTITION;
    mergePartition(part, this.allocate);
    if (part.count === 0) {
      if (part.frozenCount < 0) this.parts[index] = undefined;
      return EMPTY_PARTITION;
    }
    return part.base;
  }

  /**
   * takeDirtyPartitions(), and fixes those partitions' contents as they are now for
   * readFrozenPartition, while `execute` goes on changing them (PartitionedState.freezePartitions).
   * What an earlier freeze fixed and nobody took is dropped. Costs nothing per key: each partition's
   * overlay becomes its frozen changes, and a fresh overlay takes what comes next.
   */
  freezePartitions(): number[] {
    for (const i of this.frozenParts) {
      const part = this.parts[i];
      if (part !== undefined) this.unfreeze(part);
    }
    this.frozenParts.clear();
    const dirty = this.dirty.take();
    for (const i of dirty) {
      let part = this.parts[i];
      if (part === undefined) {
        part = new Partition(EMPTY_PARTITION, 0, new Uint32Array(0));
        this.parts[i] = part;
      }
      part.frozen = part.overlay;
      part.overlay = undefined;
      part.frozenCount = part.count;
      part.frozenBytes = undefined;
      this.frozenParts.add(i);
    }
    return dirty;
  }

  /**
   * The bytes partition `index` had at the last freezePartitions(), which must have returned it;
   * once per index (PartitionedState.readFrozenPartition). Do not modify the result.
   */
  readFrozenPartition(index: number): Uint8Array {
    this.checkIndex(index);
    const part = this.parts[index];
    if (part === undefined || !this.frozenParts.has(index)) throw new RangeError(`partition ${index} is not frozen (or was taken already)`);
    mergeFrozen(part, this.allocate);
    const bytes = part.frozenBytes!;
    this.unfreeze(part);
    this.frozenParts.delete(index);
    return bytes;
  }

  /** Forgets a partition's frozen version (merged into `base` first: its changes are older than the overlay's). */
  private unfreeze(part: Partition): void {
    mergeFrozen(part, this.allocate);
    part.frozenBytes = undefined;
    part.frozenCount = -1;
  }

  writePartition(index: number, bytes: Uint8Array): Result {
    if (!Number.isInteger(index) || index < 0 || index >= this.partitionCount) {
      return fail(`partition ${index} out of range (${this.partitionCount} partitions)`);
    }
    if (!(bytes instanceof Uint8Array)) return fail(`partition ${index}: expected bytes`);
    const r = parsePartition(index, this.partitionCount, bytes);
    if (!r.ok) return r;
    this.keys -= this.parts[index]?.count ?? 0;
    this.keys += r.value.length;
    // The bytes were validated as canonical: a copy serves as the partition's bytes.
    this.parts[index] = r.value.length > 0 ? new Partition(copyOf(bytes, 0, bytes.length), r.value.length, r.value) : undefined;
    this.frozenParts.delete(index);
    this.touch(index);
    return { ok: true, value: undefined };
  }

  /**
   * Recovery from this replica's own disk (PartitionedState.loadPartition): keeps `bytes` without a
   * copy and checks their structure, limits, key order and text values (what lookups and `execute`
   * rely on), but not which partition each key hashes to nor that keys are UTF-8: the core checks
   * the whole state against its stored digest next, and a key in the wrong partition is only never
   * found. At 10M keys this skips a sha256 per key.
   */
  loadPartition(index: number, bytes: Uint8Array): Result {
    if (!Number.isInteger(index) || index < 0 || index >= this.partitionCount) {
      return fail(`partition ${index} out of range (${this.partitionCount} partitions)`);
    }
    if (!(bytes instanceof Uint8Array)) return fail(`partition ${index}: expected bytes`);
    const r = parsePartition(index, this.partitionCount, bytes, false);
    if (!r.ok) return r;
    this.keys -= this.parts[index]?.count ?? 0;
    this.keys += r.value.length;
    this.parts[index] = r.value.length > 0 ? new Partition(bytes, r.value.length, r.value) : undefined;
    this.frozenParts.delete(index);
    this.touch(index);
    return { ok: true, value: undefined };
  }

  takeDirtyPartitions(): number[] {
    return this.dirty.take();
  }

  /**
   * The records that differ between two versions of a partition's bytes (PartitionedState.diffPartition):
   * one record per key, named by the key, holding u8 valueType | value bytes. `before` undefined
   * means nothing is stored: every record of `after` is listed. Both must be bytes this store
   * produced (readPartition) or validated. The record values are new arrays.
   */
  diffPartition(before: Uint8Array | undefined, after: Uint8Array): PartitionDiff {
    const put: Array<[string, Uint8Array]> = [];
    const del: string[] = [];
    /** Where each put's value header starts and its entry ends in `b` (fillRecords). */
    const spans: number[] = [];
    const a = asBuffer(before ?? EMPTY_PARTITION);
    const b = asBuffer(after);
    // A put changes one entry of a partition of many: the bytes before and after it are the same in
    // both versions. Those runs are found with a few native comparisons (commonPrefixLength), and
    // only the entries between them are compared one by one (at 10M keys a partition holds 150).
    const prefix = commonPrefixLength(a, b, PARTITION_HEADER_BYTES);
    const suffix = commonSuffixLength(a, b, PARTITION_HEADER_BYTES + prefix);
    // Entries wholly inside the common prefix start at the same offset in both and are equal.
    let i = PARTITION_HEADER_BYTES;
    while (i < a.length) {
      const end = entryEnd(a, i);
      if (end > PARTITION_HEADER_BYTES + prefix) break;
      i = end;
    }
    let j = i;
    while (i < a.length || j < b.length) {
      // The rest of both is the same bytes (within the common suffix), so the same entries.
      if (a.length - i === b.length - j && a.length - i <= suffix) break;
      const aEnd = i < a.length ? entryEnd(a, i) : i;
      const bEnd = j < b.length ? entryEnd(b, j) : j;
      // The same entry (key and value) in both: one native comparison, and on to the next.
      if (i < a.length && j < b.length && aEnd - i === bEnd - j && a.compare(b, j, bEnd, i, aEnd) === 0) {
        i = aEnd;
        j = bEnd;
        continue;
      }
      const aLen = i < a.length ? getU16(a, i) : 0;
      const bLen = j < b.length ? getU16(b, j) : 0;
      const c = i >= a.length ? 1 : j >= b.length ? -1 : compareRanges(a, i + 2, aLen, b, j + 2, bLen);
      if (c < 0) {
        del.push(utf8Decoder.decode(a.subarray(i + 2, i + 2 + aLen)));
        i = aEnd;
        continue;
      }
      // Added, or the same key with another value.
      put.push([utf8Decoder.decode(b.subarray(j + 2, j + 2 + bLen)), EMPTY_RECORD]);
      spans.push(j + 2 + bLen, bEnd);
      if (c === 0) i = aEnd;
      j = bEnd;
    }
    if (spans.length > 0) fillRecords(b, spans, put);
    return { put, del };
  }

  /**
   * A partition's bytes from what a replica stored (PartitionedState.joinPartition): `base`, whole
   * partition bytes or undefined (empty), with `records` applied: records as diffPartition names
   * them, ascending by the key's UTF-8 bytes, each replacing or adding its key; an empty record
   * deletes its key. Checks the base's structure and the records' names, order and framing; the
   * result then goes to loadPartition, which checks the rest (limits, key order, text). Never throws.
   */
  joinPartition(index: number, base: Uint8Array | undefined, records: ReadonlyArray<readonly [string, Uint8Array]>): Result<Uint8Array> {
    const from = base ?? EMPTY_PARTITION;
    if (records.length === 0) return { ok: true, value: from };
    // Its structure only: loadPartition checks the joined bytes' content (key order, text) next.
    const parsed = parsePartition(index, this.partitionCount, from, false, false);
    if (!parsed.ok) return parsed;
    const offsets = parsed.value;
    // One pass into a reused work area (a restart joins every partition with records: no allocation
    // per record), then one copy of the exact size. Bounded above by the base plus every record.
    let bound = from.length;
    for (const [name, value] of records) bound += ENTRY_OVERHEAD_BYTES + 3 * name.length + value.length;
    const out = joinScratch(bound);
    const source = asBuffer(from);
    let names = nameScratchA;
    let previous = nameScratchB;
    let previousLength = -1;
    let count = offsets.length;
    let pos = PARTITION_HEADER_BYTES;
    let run = PARTITION_HEADER_BYTES; // where the next unchanged run of the base starts
    let at = 0; // the first base entry not below the current record
    for (let n = 0; n < records.length; n++) {
      const [name, value] = records[n]!;
      // A name of more than KEY_BYTES_MAX UTF-16 units has more UTF-8 bytes than that; shorter ones fit the scratch.
      if (typeof name !== 'string' || name.length > KEY_BYTES_MAX) return fail(`partition ${index}: record ${n}: key out of range`);
      const kLength = names.write(name, 0, 'utf8');
      if (kLength < 1 || kLength > KEY_BYTES_MAX) return fail(`partition ${index}: record ${n}: key length ${kLength} out of range`);
      if (previousLength >= 0 && compareRanges(previous, 0, previousLength, names, 0, kLength) >= 0) return fail(`partition ${index}: record ${n}: records not strictly ascending`);
      if (value.length - 1 > VALUE_BYTES_MAX) return fail(`partition ${index}: record ${n}: value exceeds ${VALUE_BYTES_MAX} bytes`);
      while (at < offsets.length && compareRanges(names, 0, kLength, from, offsets[at]! + 2, getU16(from, offsets[at]!)) > 0) at++;
      const runEnd = at < offsets.length ? offsets[at]! : from.length;
      source.copy(out, pos, run, runEnd);
      pos += runEnd - run;
      run = runEnd;
      if (at < offsets.length && compareRanges(names, 0, kLength, from, offsets[at]! + 2, getU16(from, offsets[at]!)) === 0) {
        run = entryEnd(from, offsets[at]!);
        at++;
        count--;
      }
      [previous, names] = [names, previous];
      previousLength = kLength;
      if (value.length === 0) continue; // deleted
      putU16(out, pos, kLength);
      previous.copy(out, pos + 2, 0, kLength);
      pos += 2 + kLength;
      // The record is type | value; the entry is type | u32 length | value: copy the record 4 bytes on,
      // then move its type byte back and write the length over the gap.
      out.set(value, pos + 4);
      out[pos] = out[pos + 4]!;
      putU32(out, pos + 1, value.length - 1);
      pos += 5 + value.length - 1;
      count++;
    }
    source.copy(out, pos, run, from.length);
    pos += from.length - run;
    out[0] = FORMAT_VERSION;
    putU32(out, 1, count);
    // A copy (Buffer's slice would be a view of the reused area), allocated as merged partitions are.
    const joined = this.allocate(pos);
    joined.set(out.subarray(0, pos));
    return { ok: true, value: joined };
  }


  // --- accessors --------------------------------------------------------------------------------

  /** Number of keys. */
  get size(): number {
    return this.keys;
  }

  /** Read-only lookup (a copy for byte values); null when absent. */
  get(key: string): Value | null {
    const v = this.lookup(key, encodeKey(key)).value;
    return v === null ? null : copyValue(v);
  }

  /** Number of keys in one partition. */
  keyCount(partition: number): number {
    this.checkIndex(partition);
    return this.parts[partition]?.count ?? 0;
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
    const r = this.applyOp(op);
    if (r.type === 'get' && r.value !== null) return { type: 'get', value: copyValue(r.value) };
    if (r.type === 'cas' && r.current !== null) return { type: 'cas', swapped: r.swapped, current: copyValue(r.current) };
    return r;
  }

  /**
   * Applies a put-many (kv-ops.ts): every pair's limits are checked first; on the first pair over a
   * limit the store answers that error and applies none. Otherwise the pairs are applied in order
   * (a key given twice ends with its last value). Byte values are copied in.
   */
  putMany(entries: ReadonlyArray<readonly [string, Value]>): KvResult {
    return this.applyPutMany({ type: 'put-many', entries: entries.map(([k, v]) => [k, v]) });
  }

  // --- internals --------------------------------------------------------------------------------

  private checkIndex(index: number): void {
    if (!Number.isInteger(index) || index < 0 || index >= this.partitionCount) {
      throw new RangeError(`partition ${index} out of range (${this.partitionCount} partitions)`);
    }
  }

  private touch(partition: number): void {
    this.staleDigests.add(partition);
    this.dirty.add(partition);
    this.stateDigest = undefined;
  }

  /**
   * The key's partition and current value (null when absent). A byte value is a view into the
   * partition's bytes or the stored array: do not modify it.
   */
  private lookup(key: string, keyBytes: Uint8Array): { partition: number; value: Value | null } {
    const partition = partitionOfKeyBytes(keyBytes, this.partitionCount);
    const part = this.parts[partition];
    if (part === undefined) return { partition, value: null };
    const pending = part.overlay?.get(key) ?? part.frozen?.get(key);
    if (pending !== undefined) return { partition, value: pendingValue(pending) };
    const at = findInBase(part, keyBytes);
    return { partition, value: at < 0 ? null : valueAt(part.base, part.offsets![at]!) };
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

  private applyPutMany(op: KvPutMany): KvResult {
    for (const [key, value] of op.entries) {
      const err = KvStore.limitError({ type: 'put', key, value });
      if (err !== null) return kvError(err);
    }
    for (const [key, value] of op.entries) {
      const keyBytes = encodeKey(key);
      const at = this.lookup(key, keyBytes);
      this.write(key, keyBytes, at.partition, at.value, value);
    }
    return PUT_RESULT;
  }

  /**
   * Applies an op; the store copies the byte values it keeps. Results may reference stored values
   * and the op's own.
   */
  private applyOp(op: KvOp): KvResult {
    const err = KvStore.limitError(op);
    if (err !== null) return kvError(err);
    const keyBytes = encodeKey(op.key);
    const { partition, value: current } = this.lookup(op.key, keyBytes);
    switch (op.type) {
      case 'put':
        this.write(op.key, keyBytes, partition, current, op.value);
        return PUT_RESULT;
      case 'get':
        return { type: 'get', value: current };
      case 'del':
        if (current === null) return DEL_ABSENT;
        this.write(op.key, keyBytes, partition, current, null);
        return DEL_EXISTED;
      case 'cas': {
        if (!valuesEqual(current, op.expected)) return { type: 'cas', swapped: false, current };
        this.write(op.key, keyBytes, partition, current, op.next);
        return { type: 'cas', swapped: true, current: op.next };
      }
      default:
        return kvError('MALFORMED_OP');
    }
  }

  /**
   * Sets the key (UTF-8 `keyBytes`, current value `current`) to `value` (null: deletes it). Copies
   * the key bytes and a byte value: the caller's arrays may be scratch or views into a request.
   */
  private write(key: string, keyBytes: Uint8Array, partition: number, current: Value | null, value: Value | null): void {
    if (valuesEqual(current, value)) return; // no change
    let part = this.parts[partition];
    if (part === undefined) {
      part = new Partition(EMPTY_PARTITION, 0, new Uint32Array(0));
      this.parts[partition] = part;
    }
    const keyLength = keyBytes.length;
    const bytes = value instanceof Uint8Array ? value : undefined;
    const valueLength = bytes?.length ?? 0;
    const n = keyLength + valueLength;
    let chunk: Uint8Array;
    let start: number;
    if (n > ARENA_ITEM_MAX) {
      chunk = new Uint8Array(n);
      start = 0;
    } else {
      start = this.arena.reserve(n);
      chunk = this.arena.chunk;
    }
    copyRange(chunk, start, keyBytes, 0, keyLength);
    if (bytes !== undefined) copyRange(chunk, start + keyLength, bytes, 0, valueLength);
    (part.overlay ??= new Map()).set(key, { chunk, start, keyLength, valueLength, text: bytes === undefined ? (value as string | null) : undefined });
    const delta = (value === null ? 0 : 1) - (current === null ? 0 : 1);
    part.count += delta;
    this.keys += delta;
    this.touch(partition);
  }
}

const PUT_RESULT: KvResult = Object.freeze({ type: 'put' });
const DEL_ABSENT: KvResult = Object.freeze({ type: 'del', existed: false });
const DEL_EXISTED: KvResult = Object.freeze({ type: 'del', existed: true });
