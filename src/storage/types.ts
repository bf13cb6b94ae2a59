/**
 * A replica's durable store: an ordered map of string keys (compared as UTF-8 bytes) to byte values.
 * The core decides the keys and values (src/core/persist.ts); a Storage only makes them durable.
 * Implementations: RocksDB (src/storage/rocksdb.ts) and in-memory (src/storage/memory.ts); both pass
 * the compliance suite in test/unit/storage.compliance.test.ts.
 */
export type WriteOp =
  | { type: 'put'; key: string; value: Uint8Array }
  | { type: 'del'; key: string };

export interface KeyRange {
  /** Inclusive lower bound. */
  gte?: string;
  /** Exclusive upper bound. */
  lt?: string;
}

export interface Storage {
  open(): Promise<void>;
  close(): Promise<void>;
  /** Applies every op of the batch atomically, in order. With `sync`, durable when the promise resolves. */
  write(ops: WriteOp[], options: { sync: boolean }): Promise<void>;
  /** The value, or undefined when the key is absent. */
  get(key: string): Promise<Uint8Array | undefined>;
  /** Every entry in the range, ascending by key. */
  scan(range: KeyRange): Promise<Array<[string, Uint8Array]>>;
  /** Deletes every key in the range (not atomic with `write`; used for garbage collection). */
  clear(range: KeyRange): Promise<void>;
  /** Number of keys in the range (for tests and status; may scan). */
  count(range: KeyRange): Promise<number>;
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
