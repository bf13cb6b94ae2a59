/**
 * Storage on RocksDB through the `rocksdb` npm binding (abstract-leveldown API, callbacks).
 *
 * This is the ONLY file that may touch `rocksdb`: upstream discontinued the binding in December 2024,
 * so everything stays behind the `Storage` interface and a maintained binding can replace this file.
 * The binding is loaded with `createRequire` and typed by the small local declaration below on purpose:
 * there is no ambient `declare module 'rocksdb'`, so `import ... from 'rocksdb'` elsewhere does not type-check.
 *
 * Things the binding does that this wrapper hides (see node_modules/rocksdb/{leveldown.js,binding.cc}):
 * - A value that is not a Buffer is serialized with String(value): a plain Uint8Array would be stored as
 *   "1,2,3". Values are therefore wrapped in a Buffer view (no copy; the binding copies synchronously).
 * - An empty range bound ('' or an empty Buffer) means "no bound": `lt: ''` would scan or clear everything.
 *   Here `lt: ''` is the empty range, as the Storage contract says.
 * - Empty keys are rejected by abstract-leveldown; this wrapper rejects them (and keys with lone
 *   surrogates, which UTF-8 cannot represent) itself with a StorageError, identically to MemoryStorage.
 * - `close()` while iterators are open ends them under the caller; here close waits for operations in flight.
 * - `db.clear()` writes with sync: false.
 */
import { mkdir, readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { HORIZON_FILE, HorizonFile, horizonRecordOf } from './horizon-file.ts';
import { checkWal } from './rocksdb-wal.ts';
import { StorageError, hasUtf8Encoding } from './types.ts';
import type { KeyRange, Storage, StorageLsm, StorageMemory, WriteOp } from './types.ts';

// ---------------------------------------------------------------------------------------------------
// Local declaration of the few binding functions used (rocksdb 5.2.1 / abstract-leveldown 7.2.0).

type Callback = (err: Error | null | undefined) => void;
type GetCallback = (err: Error | null | undefined, value?: Buffer) => void;
type NextCallback = (err: Error | null | undefined, key?: string, value?: Buffer) => void;

type RocksBatchOp = { type: 'put'; key: Buffer; value: Buffer } | { type: 'del'; key: Buffer };

interface RocksRangeOptions {
  gte?: Buffer;
  lt?: Buffer;
}

interface RocksIteratorOptions extends RocksRangeOptions {
  keys: boolean;
  values: boolean;
  keyAsBuffer: boolean;
  valueAsBuffer: boolean;
  /** Bytes the binding reads ahead per call on its thread pool (at most 1,000 entries); its default is 16 KiB. */
  highWaterMark?: number;
}

/**
 * How far a scan reads ahead per call into the binding. Its default, 16 KiB, makes one call per
 * stored partition base of a large store (about 19 KB each at 10M keys): 65,536 round trips through
 * the thread pool on a restart. Reading 1.2 GB of bases and half a million records
 * took 3.6 s with the default and 1.5 s with 4 MiB (one process, this machine; docs/performance.md, Scale with
 * state size). The scan keeps everything it reads anyway, so this bounds only one call's buffer.
 */
export const SCAN_READ_AHEAD_BYTES = 4 * 1024 * 1024;

interface RocksIterator {
  next(callback: NextCallback): void;
  end(callback: Callback): void;
}

/** A batch built op by op (abstract-leveldown's chained batch): one atomic write at the end. */
interface RocksChainedBatch {
  put(key: Buffer, value: Buffer): void;
  del(key: Buffer): void;
  write(options: { sync: boolean }, callback: Callback): void;
}

interface RocksDb {
  open(options: { createIfMissing: boolean; errorIfExists: boolean; writeBufferSize: number }, callback: Callback): void;
  close(callback: Callback): void;
  get(key: Buffer, options: { asBuffer: true }, callback: GetCallback): void;
  batch(ops: RocksBatchOp[], options: { sync: boolean }, callback: Callback): void;
  batch(): RocksChainedBatch;
  iterator(options: RocksIteratorOptions): RocksIterator;
  clear(options: RocksRangeOptions, callback: Callback): void;
  /** RocksDB's DB::GetProperty as a string ('' for a property it does not know). */
  getProperty(property: string): string;
}

type RocksFactory = (location: string) => RocksDb;

let rocksFactory: RocksFactory | undefined;

/** Loads the native binding on first open, so that a missing binary surfaces as OPEN_FAILED. */
function loadRocks(): RocksFactory {
  if (rocksFactory === undefined) {
    const require = createRequire(import.meta.url);
    try {
      rocksFactory = require('rocksdb') as RocksFactory;
    } catch (err) {
      // An optional peer dependency of the package: a client install does not have it.
      const e = err as { code?: unknown; message?: unknown };
      if (e.code === 'MODULE_NOT_FOUND' && String(e.message).includes("'rocksdb'")) {
        throw new Error('the rocksdb package is not installed; replicas need it (an optional peer dependency of pbft-kv): npm install rocksdb');
      }
      throw err;
    }
  }
  return rocksFactory;
}

// ---------------------------------------------------------------------------------------------------
// The callback API wrapped in promises, once.

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

function callVoid(fn: (callback: Callback) => void): Promise<void> {
  return new Promise<void>((resolvePromise, reject) => {
    fn((err) => (err ? reject(asError(err)) : resolvePromise()));
  });
}

function dbGet(db: RocksDb, key: Buffer): Promise<Buffer | undefined> {
  return new Promise<Buffer | undefined>((resolvePromise, reject) => {
    db.get(key, { asBuffer: true }, (err, value) => {
      if (err) {
        if (/^NotFound/.test(err.message)) resolvePromise(undefined);
        else reject(asError(err));
        return;
      }
      resolvePromise(value);
    });
  });
}

/** Calls `onEntry` for every entry of the iterator, in order; ends the iterator in every case. */
function dbIterate(
  db: RocksDb,
  options: RocksIteratorOptions,
  onEntry: (key: string, value: Buffer | undefined) => void,
): Promise<void> {
  return new Promise<void>((resolvePromise, reject) => {
    const iterator = db.iterator(options); // a synchronous throw rejects the promise
    const finish = (failure: Error | undefined): void => {
      iterator.end((endErr) => {
        const err = failure ?? (endErr ? asError(endErr) : undefined);
        if (err) reject(err);
        else resolvePromise();
      });
    };
    const step = (): void => {
      // The binding answers from its cache with process.nextTick, so this recursion does not grow the stack.
      iterator.next((err, key, value) => {
        if (err) return finish(asError(err));
        if (key === undefined) return finish(undefined);
        try {
          onEntry(key, value);
        } catch (thrown) {
          return finish(asError(thrown));
        }
        step();
      });
    };
    step();
  });
}

// ---------------------------------------------------------------------------------------------------
// Keys, values and ranges.

type FailureCode = 'READ_FAILED' | 'WRITE_FAILED';

function keyProblem(key: unknown): string | undefined {
  if (typeof key !== 'string') return `key must be a string, got ${typeof key}`;
  if (key.length === 0) return 'key must not be empty';
  if (!hasUtf8Encoding(key)) return 'key contains a lone surrogate and has no UTF-8 encoding';
  return undefined;
}

function encodeKey(key: string, code: FailureCode): Buffer {
  const problem = keyProblem(key);
  if (problem !== undefined) throw new StorageError(code, problem);
  return Buffer.from(key, 'utf8');
}

function toBuffer(value: Uint8Array): Buffer {
  return Buffer.isBuffer(value) ? value : Buffer.from(value.buffer, value.byteOffset, value.byteLength);
}

/**
 * Bytes per level from the text of RocksDB's `rocksdb.levelstats` (a header, then one line per level:
 * level, files, size in MiB); undefined when it has no level line.
 */
export function parseLevelStats(text: string): number[] | undefined {
  const out: number[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*(\d+)\s+(\d+)\s+(\d+)\s*$/.exec(line);
    if (m === null) continue;
    const level = Number(m[1]);
    if (level !== out.length) return undefined;
    out.push(Number(m[3]) * 2 ** 20);
  }
  return out.length > 0 ? out : undefined;
}

/**
 * From the text of RocksDB's `rocksdb.cfstats`: the cumulative compaction line ("Cumulative
 * compaction: 1.23 GB write, ... 0.45 GB read, ... 6.7 seconds"), whose write counts the flushes of
 * memtables to level 0 as well as the compactions' output (RocksDB books a flush as a level-0
 * write) while its read is the compactions' alone; the flushes' own figure ("Flush(GB): cumulative
 * 0.045, ..."); and the stall counts ("Stalls(count): 0 level0_slowdown, ... interval 0 total
 * count", whose counts before "interval" are summed). What is missing counts 0.
 */
export function parseCompactionStats(
  text: string,
): Pick<StorageLsm, 'compactionWrittenBytes' | 'flushWrittenBytes' | 'compactionReadBytes' | 'compactionSeconds' | 'writeStalls'> {
  const GB = 2 ** 30;
  const cumulative = /Cumulative compaction:\s*([\d.]+) GB write,[^,]*,\s*([\d.]+) GB read,[^,]*,\s*([\d.]+) seconds/.exec(text);
  const flush = /Flush\(GB\): cumulative ([\d.]+)/.exec(text);
  const stalls = /Stalls\(count\):([^\n]*?)interval/.exec(text);
  let writeStalls = 0;
  if (stalls !== null) for (const m of stalls[1]!.matchAll(/(\d+) [a-z_0-9]+/g)) writeStalls += Number(m[1]);
  return {
    compactionWrittenBytes: cumulative === null ? 0 : Math.round(Number(cumulative[1]) * GB),
    flushWrittenBytes: flush === null ? 0 : Math.round(Number(flush[1]) * GB),
    compactionReadBytes: cumulative === null ? 0 : Math.round(Number(cumulative[2]) * GB),
    compactionSeconds: cumulative === null ? 0 : Number(cumulative[3]),
    writeStalls,
  };
}

/** The binding's range options, or undefined when the range is empty (`lt: ''`). */
function encodeRange(range: KeyRange, code: FailureCode): RocksRangeOptions | undefined {
  const out: RocksRangeOptions = {};
  for (const name of ['gte', 'lt'] as const) {
    const bound = range[name];
    if (bound === undefined) continue;
    if (typeof bound !== 'string') throw new StorageError(code, `range bound ${name} must be a string`);
    if (bound === '') {
      if (name === 'lt') return undefined; // nothing is below the empty key
      continue; // gte '' is no lower bound; the binding would read '' as "unbounded" anyway
    }
    if (!hasUtf8Encoding(bound)) {
      throw new StorageError(code, `range bound ${name} contains a lone surrogate and has no UTF-8 encoding`);
    }
    out[name] = Buffer.from(bound, 'utf8');
  }
  return out;
}

/**
 * A plain Uint8Array view of a Buffer the binding just made with napi_create_buffer_copy (its own
 * ArrayBuffer, never pooled), so no copy. Plain rather than Buffer so that both Storage implementations
 * return the same type: Buffer#slice aliases where Uint8Array#slice copies, and deepStrictEqual tells them apart.
 */
function toPlain(value: Buffer): Uint8Array {
  return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
}

function oneLine(text: string): string {
  return text.replace(/\s*[\r\n]+\s*/g, ' ').trim();
}

// ---------------------------------------------------------------------------------------------------

export interface RocksStorageOptions {
  /** Directory of the database. Its parent is created when missing (with createIfMissing). */
  path: string;
  /** Create the database (and the parent directory) when missing. Default true. */
  createIfMissing?: boolean;
  /**
   * Bytes RocksDB collects in memory before it writes them out as a new table file
   * (`write_buffer_size`); default WRITE_BUFFER_BYTES_DEFAULT. See there.
   */
  writeBufferBytes?: number;
}

/**
 * RocksDB's write buffer by default: 16 MiB, where the binding's default is LevelDB's 4 MiB and
 * RocksDB's own 64 MiB. Every 4 table files written from memory are merged with every file of the
 * next level they overlap, and a replica's writes (log entries, state records under partition
 * numbers spread evenly) overlap all of it: so the merging costs the size of the stored state, once
 * per 4 buffers. At 10M keys (220-360 MiB stored) that was 0.30 of the 2 cores in the loaded window
 * with 4 MiB, none with 16 or 64 MiB (docs/performance.md, Scale with state size). A replica holds up to two buffers in
 * memory (one being written out), and a full one is RSS too: 64 MiB made a small store's replica
 * peak at 429 MiB under full load, against 391 MiB with 4 MiB.
 */
export const WRITE_BUFFER_BYTES_DEFAULT = 16 * 1024 * 1024;
export const WRITE_BUFFER_BYTES_MIN = 1024 * 1024;
export const WRITE_BUFFER_BYTES_MAX = 1024 * 1024 * 1024;

type State = 'new' | 'opening' | 'open' | 'closing' | 'closed';

/** The horizon record's file, in the database directory (RocksDB leaves files it does not know alone). */
export { HORIZON_FILE } from './horizon-file.ts';

/**
 * A batch of more ops or bytes than this is handed to RocksDB in slices of at most this size, one
 * event-loop turn apart, and written at the end as one atomic batch (a chained batch): the binding
 * copies every op into the batch on the calling thread, and a stable checkpoint after a bulk load
 * writes every partition (65,536 records, 350 MiB at 3M keys: 0.6-2.0 s of the loop in one call).
 */
const SLICE_OPS = 2048;
const SLICE_BYTES = 4 * 2 ** 20;

function batchBytes(batch: readonly RocksBatchOp[]): number {
  let n = 0;
  for (const op of batch) n += op.key.length + (op.type === 'put' ? op.value.length : 0);
  return n;
}

/** The binding's op for op `i` of a batch; a StorageError for a malformed one. */
function rocksOp(op: WriteOp, i: number): RocksBatchOp {
  const key = encodeKey(op.key, 'WRITE_FAILED');
  if (op.type === 'put') {
    if (!(op.value instanceof Uint8Array)) {
      throw new StorageError('WRITE_FAILED', `value of op ${i} (key ${JSON.stringify(op.key)}) is not a Uint8Array`);
    }
    return { type: 'put', key, value: toBuffer(op.value) };
  }
  if (op.type === 'del') return { type: 'del', key };
  throw new StorageError('WRITE_FAILED', `op ${i} has unknown type ${JSON.stringify((op as { type: unknown }).type)}`);
}

/**
 * Builds one chained batch from `ops` in slices (SLICE_OPS, SLICE_BYTES), yielding between them,
 * then writes it. Each op is checked and encoded in its slice (a stable checkpoint after a bulk load
 * hands over hundreds of thousands of records: encoding them all first took the loop for as long as
 * handing them over did); a malformed op rejects the write before the batch is written, so nothing
 * of it is applied.
 */
async function writeInSlices(db: RocksDb, ops: readonly WriteOp[], sync: boolean): Promise<void> {
  const chained = db.batch();
  let i = 0;
  while (i < ops.length) {
    let count = 0;
    let bytes = 0;
    while (i < ops.length && count < SLICE_OPS && bytes < SLICE_BYTES) {
      const op = rocksOp(ops[i]!, i);
      i++;
      if (op.type === 'put') {
        chained.put(op.key, op.value);
        bytes += op.key.length + op.value.length;
      } else {
        chained.del(op.key);
        bytes += op.key.length;
      }
      count++;
    }
    if (i < ops.length) await new Promise<void>((resolvePromise) => setImmediate(resolvePromise));
  }
  await callVoid((cb) => chained.write({ sync }, cb));
}

export class RocksStorage implements Storage {
  readonly path: string;
  /** Writes handed to RocksDB in slices (SLICE_OPS, SLICE_BYTES), since open. */
  slicedWrites = 0;
  /** Damage checkWal found in the write-ahead log at the last open (see Storage.damage). */
  damage: string | undefined;
  readonly #createIfMissing: boolean;
  readonly #writeBufferBytes: number;
  #state: State = 'new';
  #db: RocksDb | undefined;
  #opening: Promise<void> | undefined;
  #closing: Promise<void> | undefined;
  /** Operations in flight; close() waits for them before closing the handle. */
  readonly #inFlight = new Set<Promise<unknown>>();
  /** The horizon record's file, open from this incarnation's first write of it until close(). */
  #horizon: HorizonFile | undefined;

  constructor(options: RocksStorageOptions) {
    this.path = resolve(options.path);
    this.#createIfMissing = options.createIfMissing ?? true;
    const buffer = options.writeBufferBytes ?? WRITE_BUFFER_BYTES_DEFAULT;
    if (!Number.isSafeInteger(buffer) || buffer < WRITE_BUFFER_BYTES_MIN || buffer > WRITE_BUFFER_BYTES_MAX) {
      throw new RangeError(`writeBufferBytes must be an integer in ${WRITE_BUFFER_BYTES_MIN}..${WRITE_BUFFER_BYTES_MAX}, got ${String(options.writeBufferBytes)}`);
    }
    this.#writeBufferBytes = buffer;
  }

  /** Opens the database; resolves at once when already open. A closed store may be opened again. */
  open(): Promise<void> {
    if (this.#opening === undefined) {
      this.#opening = this.#open().finally(() => {
        this.#opening = undefined;
      });
    }
    return this.#opening;
  }

  async #open(): Promise<void> {
    if (this.#closing !== undefined) await this.#closing.catch(() => undefined);
    if (this.#state === 'open') return;
    const before = this.#state;
    this.#state = 'opening';
    const fail = (cause: unknown): StorageError => {
      this.#state = before;
      return new StorageError('OPEN_FAILED', `cannot open RocksDB at ${this.path}: ${oneLine(asError(cause).message)}`);
    };
    if (this.#createIfMissing) {
      try {
        await mkdir(dirname(this.path), { recursive: true });
      } catch (err) {
        throw fail(err);
      }
    }
    // Before RocksDB replays its log (and silently drops everything after a damaged record).
    const walDamage = await checkWal(this.path).catch((err: unknown) => ({ file: '?', offset: 0, reason: `cannot read: ${asError(err).message}` }));
    this.damage = walDamage === undefined ? undefined : `write-ahead log ${walDamage.file} damaged at byte ${walDamage.offset} (${walDamage.reason}), with valid records after it`;
    let db: RocksDb;
    try {
      db = loadRocks()(this.path);
      await callVoid((cb) => db.open({ createIfMissing: this.#createIfMissing, errorIfExists: false, writeBufferSize: this.#writeBufferBytes }, cb));
    } catch (err) {
      throw fail(err);
    }
    this.#db = db;
    this.#state = 'open';
  }

  /** RocksDB's memory by its own accounting (see StorageMemory); undefined when not open. */
  memoryUsage(): StorageMemory | undefined {
    const db = this.#db;
    if (this.#state !== 'open' || db === undefined) return undefined;
    const read = (property: string): number => {
      try {
        const n = Number(db.getProperty(property));
        return Number.isSafeInteger(n) && n >= 0 ? n : 0;
      } catch {
        return 0;
      }
    };
    return {
      memtables: read('rocksdb.cur-size-all-mem-tables'),
      tableReaders: read('rocksdb.estimate-table-readers-mem'),
      blockCache: read('rocksdb.block-cache-usage'),
      blockCachePinned: read('rocksdb.block-cache-pinned-usage'),
      sstBytes: read('rocksdb.total-sst-files-size'),
    };
  }

  /** RocksDB's tree of table files and its compactions (see StorageLsm); undefined when not open or unreadable. */
  lsm(): StorageLsm | undefined {
    const db = this.#db;
    if (this.#state !== 'open' || db === undefined) return undefined;
    try {
      const levelBytes = parseLevelStats(db.getProperty('rocksdb.levelstats'));
      if (levelBytes === undefined) return undefined;
      const count = (property: string): number => {
        const n = Number(db.getProperty(property));
        return Number.isSafeInteger(n) && n >= 0 ? n : 0;
      };
      return {
        levelBytes,
        level0Files: count('rocksdb.num-files-at-level0'),
        pendingCompactionBytes: count('rocksdb.estimate-pending-compaction-bytes'),
        runningCompactions: count('rocksdb.num-running-compactions'),
        ...parseCompactionStats(db.getProperty('rocksdb.cfstats')),
        writeStopped: count('rocksdb.is-write-stopped') > 0,
      };
    } catch {
      return undefined;
    }
  }

  /** Waits for operations in flight, then closes. Resolves at once when not open. */
  close(): Promise<void> {
    if (this.#closing === undefined) {
      this.#closing = this.#close().finally(() => {
        this.#closing = undefined;
      });
    }
    return this.#closing;
  }

  async #close(): Promise<void> {
    if (this.#opening !== undefined) await this.#opening.catch(() => undefined);
    if (this.#state !== 'open') return;
    this.#state = 'closing';
    await Promise.allSettled([...this.#inFlight]);
    const db = this.#db;
    this.#db = undefined;
    this.#state = 'closed';
    const horizon = this.#horizon;
    this.#horizon = undefined;
    await horizon?.close().catch(() => undefined);
    if (db === undefined) return;
    try {
      await callVoid((cb) => db.close(cb));
    } catch (err) {
      throw new StorageError('WRITE_FAILED', `closing RocksDB at ${this.path} failed: ${oneLine(asError(err).message)}`);
    }
  }

  async write(ops: WriteOp[], options: { sync: boolean }): Promise<void> {
    const db = this.#handle();
    if (ops.length === 0) return;
    if (ops.length <= SLICE_OPS) {
      const batch = ops.map(rocksOp);
      if (batchBytes(batch) <= SLICE_BYTES) {
        await this.#run('WRITE_FAILED', 'write', () => callVoid((cb) => db.batch(batch, { sync: options.sync }, cb)));
        return;
      }
    }
    this.slicedWrites++;
    await this.#run('WRITE_FAILED', 'write', () => writeInSlices(db, ops, options.sync));
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    const db = this.#handle();
    const encoded = encodeKey(key, 'READ_FAILED');
    const value = await this.#run('READ_FAILED', 'get', () => dbGet(db, encoded));
    return value === undefined ? undefined : toPlain(value);
  }

  async scan(range: KeyRange): Promise<Array<[string, Uint8Array]>> {
    const out: Array<[string, Uint8Array]> = [];
    await this.forEach(range, (key, value) => {
      out.push([key, value]);
    });
    return out;
  }

  async forEach(range: KeyRange, onEntry: (key: string, value: Uint8Array) => void): Promise<void> {
    const db = this.#handle();
    const bounds = encodeRange(range, 'READ_FAILED');
    if (bounds === undefined) return;
    const options: RocksIteratorOptions = { ...bounds, keys: true, values: true, keyAsBuffer: false, valueAsBuffer: true, highWaterMark: SCAN_READ_AHEAD_BYTES };
    // A throw from onEntry is the caller's, not a storage failure: it is rethrown as it was, not
    // wrapped as READ_FAILED by #run.
    let thrown: { error: unknown } | undefined;
    await this.#run('READ_FAILED', 'scan', () =>
      dbIterate(db, options, (key, value) => {
        try {
          onEntry(key, value === undefined ? new Uint8Array(0) : toPlain(value));
        } catch (error) {
          thrown = { error };
          throw error;
        }
      }),
    ).catch((err: unknown) => {
      throw thrown !== undefined ? thrown.error : err;
    });
  }

  async clear(range: KeyRange): Promise<void> {
    const db = this.#handle();
    const bounds = encodeRange(range, 'WRITE_FAILED');
    if (bounds === undefined) return;
    await this.#run('WRITE_FAILED', 'clear', () => callVoid((cb) => db.clear(bounds, cb)));
  }

  async count(range: KeyRange): Promise<number> {
    const db = this.#handle();
    const bounds = encodeRange(range, 'READ_FAILED');
    if (bounds === undefined) return 0;
    let n = 0;
    const options: RocksIteratorOptions = { ...bounds, keys: true, values: false, keyAsBuffer: true, valueAsBuffer: true };
    await this.#run('READ_FAILED', 'count', () =>
      dbIterate(db, options, () => {
        n++;
      }),
    );
    return n;
  }

  async readHorizon(): Promise<Uint8Array | undefined> {
    this.#handle();
    let file: Uint8Array;
    try {
      const bytes = await readFile(join(this.path, HORIZON_FILE));
      file = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new StorageError('READ_FAILED', `cannot read ${HORIZON_FILE} in ${this.path}: ${oneLine(asError(err).message)}`);
    }
    const found = horizonRecordOf(file);
    if ('error' in found) {
      throw new StorageError(
        'READ_FAILED',
        `${HORIZON_FILE} in ${this.path} is damaged: ${found.error}, so nothing bounds what this replica signed before (move the data directory aside to start it as a new, empty replica)`,
      );
    }
    return found.record;
  }

  /** Two slots written in turn, the first write of each open atomically (horizon-file.ts). */
  async writeHorizon(bytes: Uint8Array): Promise<void> {
    this.#handle();
    const horizon = (this.#horizon ??= new HorizonFile(this.path));
    const promise = horizon.write(bytes);
    this.#inFlight.add(promise);
    try {
      await promise;
    } catch (err) {
      throw new StorageError('WRITE_FAILED', `cannot write ${HORIZON_FILE} in ${this.path}: ${oneLine(asError(err).message)}`);
    } finally {
      this.#inFlight.delete(promise);
    }
  }

  /** The open handle, or a StorageError saying why there is none. */
  #handle(): RocksDb {
    if (this.#state === 'open' && this.#db !== undefined) return this.#db;
    if (this.#state === 'closing' || this.#state === 'closed') {
      throw new StorageError('CLOSED', `RocksDB at ${this.path} is closed`);
    }
    throw new StorageError('NOT_OPEN', `RocksDB at ${this.path} is not open`);
  }

  /** Runs one binding call, tracked for close(), with its failure turned into a StorageError. */
  async #run<T>(code: FailureCode, what: string, fn: () => Promise<T>): Promise<T> {
    const promise = fn();
    this.#inFlight.add(promise);
    try {
      return await promise;
    } catch (err) {
      if (err instanceof StorageError) throw err;
      throw new StorageError(code, `${what} on RocksDB at ${this.path} failed: ${oneLine(asError(err).message)}`);
    } finally {
      this.#inFlight.delete(promise);
    }
  }
}
