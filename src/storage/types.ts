/**
 * A replica's durable store: an ordered map of string keys (compared as UTF-8 bytes) to byte values.
 * The core decides the keys and values (src/core/persist.ts); a Storage only makes them durable.
 * Implementations: RocksDB (src/storage/rocksdb.ts) and in-memory (src/storage/memory.ts); both pass
 * the compliance suite in test/unit/storage.compliance.test.ts.
 */
import type { KeyRange, WriteOp } from '../core/ports.ts';

// What the core writes (src/core/ports.ts).
export type { KeyRange, WriteOp } from '../core/ports.ts';

export interface Storage {
  open(): Promise<void>;
  close(): Promise<void>;
  /**
   * Applies every op of the batch atomically, in order. With `sync`, durable when the promise
   * resolves. The ops' values must not change until the promise settles (RocksStorage reads a large
   * batch in slices, between event-loop turns).
   */
  write(ops: WriteOp[], options: { sync: boolean }): Promise<void>;
  /** The value, or undefined when the key is absent. */
  get(key: string): Promise<Uint8Array | undefined>;
  /** Every entry in the range, ascending by key. */
  scan(range: KeyRange): Promise<Array<[string, Uint8Array]>>;
  /**
   * What scan returns, one entry at a time without collecting them: `onEntry` for every entry in the
   * range, ascending by key; a throw from it ends the iteration and rejects the promise. Optional (a
   * replica scans where it is missing): a restart streams the application partitions through it.
   */
  forEach?(range: KeyRange, onEntry: (key: string, value: Uint8Array) => void): Promise<void>;
  /** Deletes every key in the range (not atomic with `write`; used for garbage collection). */
  clear(range: KeyRange): Promise<void>;
  /** Number of keys in the range (for tests and status; may scan). */
  count(range: KeyRange): Promise<number>;
  /**
   * The replica's horizon record (what it may have signed, and what this store must hold: see
   * src/core/horizon.ts), kept apart from the store's log so that damage to the log cannot hide it.
   * Undefined when none was written.
   */
  readHorizon(): Promise<Uint8Array | undefined>;
  /** Replaces the horizon record durably and atomically (after a crash, the old one or the new one). */
  writeHorizon(bytes: Uint8Array): Promise<void>;
  /**
   * Damage the store found in its own log when it opened (RocksDB: a record that fails its checksum
   * with valid records after it, i.e. acknowledged writes lost), or undefined.
   */
  readonly damage?: string | undefined;
  /** What the store holds in memory outside the JavaScript heap, when it can tell (RocksDB), in bytes. */
  memoryUsage?(): StorageMemory | undefined;
  /** The store's log-structured tree and its compactions (RocksDB), when it has one and is open. */
  lsm?(): StorageLsm | undefined;
}

/**
 * RocksDB's own accounting of its memory (GET /status memory.storage, /metrics): the write buffers
 * (memtables, the one filling and those waiting to be flushed), the table readers (index and filter
 * blocks of the open SST files) and the block cache; `sstBytes` is the size of the live SST files on
 * disk, for comparison.
 */
export interface StorageMemory {
  memtables: number;
  tableReaders: number;
  blockCache: number;
  blockCachePinned: number;
  sstBytes: number;
}

/**
 * RocksDB's tree of table files and the merging (compaction) that keeps it in shape, by its own
 * properties (GET /status storage, /metrics). Every 4 files written from memory to level 0 are merged
 * with the files of level 1 their keys overlap; a replica's writes (log entries, and state records
 * spread over every partition) overlap all of level 1, so `levelBytes[1]` is about what each such
 * merge rewrites (docs/performance.md, Scale with state size).
 */
export interface StorageLsm {
  /** Bytes of live table files per level, level 0 first (RocksDB counts whole MiB here). */
  levelBytes: number[];
  level0Files: number;
  /** RocksDB's estimate of the bytes its compactions must still rewrite to bring every level to its target size. */
  pendingCompactionBytes: number;
  runningCompactions: number;
  /**
   * Since the database was opened, by RocksDB's own cumulative compaction figures (to 0.01 GB): bytes
   * written by flushes and compactions together (RocksDB books a memtable flush as a write to level
   * 0), bytes the compactions read, and the seconds both ran.
   */
  compactionWrittenBytes: number;
  /** Since the database was opened: bytes memtable flushes wrote to level 0 (to 0.001 GB); the compactions' own writes are compactionWrittenBytes less this. */
  flushWrittenBytes: number;
  compactionReadBytes: number;
  compactionSeconds: number;
  /** Since the database was opened: times RocksDB slowed or stopped writes to let compaction catch up. */
  writeStalls: number;
  /** Writes are stopped now (too many level-0 files or too much pending compaction). */
  writeStopped: boolean;
}

/**
 * Whether a key or bound has exactly one UTF-8 encoding (no lone surrogate), as stored keys must.
 * String.prototype.isWellFormed (Node 20+): a native scan, several times faster than a regular
 * expression per key, which counted when a stable checkpoint after a bulk load writes a batch of
 * hundreds of thousands of records.
 */
export function hasUtf8Encoding(s: string): boolean {
  return (s as string & { isWellFormed(): boolean }).isWellFormed();
}

/** Error with a code, thrown by storage implementations for failures callers handle. */
export class StorageError extends Error {
  constructor(
    readonly code: 'OPEN_FAILED' | 'NOT_OPEN' | 'WRITE_FAILED' | 'READ_FAILED' | 'CLOSED',
    message: string,
  ) {
    super(message);
    this.name = 'StorageError';
  }
}
