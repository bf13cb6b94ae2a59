/**
 * In-memory Storage for the deterministic simulator and for tests. Same semantics as RocksStorage
 * (both pass test/unit/storage.compliance.test.ts), plus a crash model:
 *
 * - a write with `sync: true` is durable when it resolves, and so is every write before it (as with
 *   RocksDB's write-ahead log, a synced write syncs everything logged before it);
 * - a write with `sync: false` and `clear()` (RocksDB clears with sync: false too) become durable only at
 *   a later synced write or at `flush()`;
 * - an empty `write([], { sync: true })` is not a barrier: RocksStorage does no I/O for it either;
 * - `crash()` drops every write that is not durable and leaves the store closed, like a killed process:
 *   the next incarnation calls `open()` and sees the durable contents;
 * - `close()` is a clean shutdown: the contents, durable or not, are there again after `open()`
 *   (a clean exit does not lose the page cache), and a later `crash()` may still drop the non-durable ones;
 * - `snapshotDurable()` copies the durable contents into a new, not yet opened store (a disk image).
 *
 * Keys are ordered as their UTF-8 bytes (= code point order), which differs from JS string order
 * (UTF-16 code units) for characters outside the BMP, e.g. '\u{1F600}' > '\uFFFF' here.
 * Values are copied on write and on read: callers cannot change stored bytes.
 * Every operation takes effect synchronously when called; the returned promise only reports the outcome.
 */
import { StorageError, hasUtf8Encoding } from './types.ts';
import type { KeyRange, Storage, WriteOp } from './types.ts';

/** Orders two well-formed strings as their UTF-8 encodings would be ordered. */
export function compareUtf8(a: string, b: string): number {
  if (a === b) return 0;
  const n = a.length < b.length ? a.length : b.length;
  for (let i = 0; i < n; i++) {
    const ca = a.charCodeAt(i);
    const cb = b.charCodeAt(i);
    if (ca !== cb) {
      // UTF-16 order equals code point order except that surrogates (0xD800-0xDFFF, code points
      // above 0xFFFF) sort below 0xE000-0xFFFF. Lift surrogates above the rest of the BMP.
      if (ca >= 0xd800 && cb >= 0xd800) return rankCodeUnit(ca) - rankCodeUnit(cb);
      return ca - cb;
    }
  }
  return a.length - b.length;
}

function rankCodeUnit(c: number): number {
  if (c >= 0xe000) return c - 0x800; // 0xE000-0xFFFF -> 0xD800-0xF7FF
  if (c >= 0xd800) return c + 0x2000; // surrogates -> 0xF800-0xFFFF
  return c;
}

type FailureCode = 'READ_FAILED' | 'WRITE_FAILED';

function checkKey(key: unknown, code: FailureCode): asserts key is string {
  if (typeof key !== 'string') throw new StorageError(code, `key must be a string, got ${typeof key}`);
  if (key.length === 0) throw new StorageError(code, 'key must not be empty');
  if (!hasUtf8Encoding(key)) throw new StorageError(code, 'key contains a lone surrogate and has no UTF-8 encoding');
}

/** Normalized bounds, or undefined when the range is empty (`lt: ''`). */
function checkRange(range: KeyRange, code: FailureCode): KeyRange | undefined {
  const out: KeyRange = {};
  for (const name of ['gte', 'lt'] as const) {
    const bound = range[name];
    if (bound === undefined) continue;
    if (typeof bound !== 'string') throw new StorageError(code, `range bound ${name} must be a string`);
    if (bound === '') {
      if (name === 'lt') return undefined;
      continue;
    }
    if (!hasUtf8Encoding(bound)) {
      throw new StorageError(code, `range bound ${name} contains a lone surrogate and has no UTF-8 encoding`);
    }
    out[name] = bound;
  }
  return out;
}

/** An ordered map: keys sorted by UTF-8 bytes in an array, values in a Map. Values are never mutated. */
class SortedMap {
  #keys: string[] = [];
  #values = new Map<string, Uint8Array>();

  get size(): number {
    return this.#keys.length;
  }

  get(key: string): Uint8Array | undefined {
    return this.#values.get(key);
  }

  set(key: string, value: Uint8Array): void {
    if (!this.#values.has(key)) this.#keys.splice(this.#lowerBound(key), 0, key);
    this.#values.set(key, value);
  }

  delete(key: string): void {
    if (this.#values.delete(key)) this.#keys.splice(this.#lowerBound(key), 1);
  }

  /** [start, end) indices of the keys inside the (already checked, non-empty) range. */
  #indices(range: KeyRange): [number, number] {
    const start = range.gte === undefined ? 0 : this.#lowerBound(range.gte);
    const end = range.lt === undefined ? this.#keys.length : this.#lowerBound(range.lt);
    return [start, end > start ? end : start];
  }

  entries(range: KeyRange): Array<[string, Uint8Array]> {
    const [start, end] = this.#indices(range);
    const out: Array<[string, Uint8Array]> = [];
    for (let i = start; i < end; i++) {
      const key = this.#keys[i]!;
      out.push([key, this.#values.get(key)!]);
    }
    return out;
  }

  count(range: KeyRange): number {
    const [start, end] = this.#indices(range);
    return end - start;
  }

  clear(range: KeyRange): void {
    const [start, end] = this.#indices(range);
    for (const key of this.#keys.splice(start, end - start)) this.#values.delete(key);
  }

  clone(): SortedMap {
    const copy = new SortedMap();
    copy.#keys = this.#keys.slice();
    copy.#values = new Map(this.#values);
    return copy;
  }

  /** First index whose key is >= `key`. */
  #lowerBound(key: string): number {
    let lo = 0;
    let hi = this.#keys.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (compareUtf8(this.#keys[mid]!, key) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

/** A change not yet durable, replayed onto the durable map by a synced write or flush(). */
type PendingChange =
  | { type: 'put'; key: string; value: Uint8Array }
  | { type: 'del'; key: string }
  | { type: 'clear'; range: KeyRange };

function apply(map: SortedMap, change: PendingChange): void {
  switch (change.type) {
    case 'put':
      map.set(change.key, change.value);
      return;
    case 'del':
      map.delete(change.key);
      return;
    case 'clear':
      map.clear(change.range);
      return;
  }
}

/** No options yet; the crash model is always on. */
export type MemoryStorageOptions = Record<string, never>;

type State = 'new' | 'open' | 'closed';

export class MemoryStorage implements Storage {
  #state: State = 'new';
  /** What reads see. */
  #current = new SortedMap();
  /** What survives crash(). */
  #durable = new SortedMap();
  /** Changes applied to #current but not yet to #durable, in order. */
  #pending: PendingChange[] = [];
  /** The horizon record (durable when writeHorizon resolves). */
  #horizon: Uint8Array | undefined;

  constructor(_options: MemoryStorageOptions = {}) {}

  async open(): Promise<void> {
    this.#state = 'open';
  }

  async close(): Promise<void> {
    if (this.#state === 'open') this.#state = 'closed';
  }

  async write(ops: WriteOp[], options: { sync: boolean }): Promise<void> {
    this.#checkOpen();
    if (ops.length === 0) return;
    // Check every op before applying any: a batch applies entirely or not at all.
    const changes: PendingChange[] = new Array<PendingChange>(ops.length);
    for (let i = 0; i < ops.length; i++) {
      const op = ops[i]!;
      checkKey(op.key, 'WRITE_FAILED');
      if (op.type === 'put') {
        if (!(op.value instanceof Uint8Array)) {
          throw new StorageError('WRITE_FAILED', `value of op ${i} (key ${JSON.stringify(op.key)}) is not a Uint8Array`);
        }
        changes[i] = { type: 'put', key: op.key, value: new Uint8Array(op.value) };
      } else if (op.type === 'del') {
        changes[i] = { type: 'del', key: op.key };
      } else {
        throw new StorageError('WRITE_FAILED', `op ${i} has unknown type ${JSON.stringify((op as { type: unknown }).type)}`);
      }
    }
    for (const change of changes) apply(this.#current, change);
    for (const change of changes) this.#pending.push(change);
    if (options.sync) this.flush();
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    this.#checkOpen();
    checkKey(key, 'READ_FAILED');
    const value = this.#current.get(key);
    return value === undefined ? undefined : new Uint8Array(value);
  }

  async scan(range: KeyRange): Promise<Array<[string, Uint8Array]>> {
    this.#checkOpen();
    const checked = checkRange(range, 'READ_FAILED');
    if (checked === undefined) return [];
    return this.#current.entries(checked).map(([key, value]) => [key, new Uint8Array(value)]);
  }

  async forEach(range: KeyRange, onEntry: (key: string, value: Uint8Array) => void): Promise<void> {
    for (const [key, value] of await this.scan(range)) onEntry(key, value);
  }

  async clear(range: KeyRange): Promise<void> {
    this.#checkOpen();
    const checked = checkRange(range, 'WRITE_FAILED');
    if (checked === undefined) return;
    const change: PendingChange = { type: 'clear', range: checked };
    apply(this.#current, change);
    this.#pending.push(change);
  }

  async count(range: KeyRange): Promise<number> {
    this.#checkOpen();
    const checked = checkRange(range, 'READ_FAILED');
    if (checked === undefined) return 0;
    return this.#current.count(checked);
  }

  async readHorizon(): Promise<Uint8Array | undefined> {
    this.#checkOpen();
    return this.#horizon === undefined ? undefined : new Uint8Array(this.#horizon);
  }

  async writeHorizon(bytes: Uint8Array): Promise<void> {
    this.#checkOpen();
    if (!(bytes instanceof Uint8Array)) throw new StorageError('WRITE_FAILED', 'horizon record is not a Uint8Array');
    this.#horizon = new Uint8Array(bytes);
  }

  // ----- crash model -----

  /** Makes every write so far durable (as the OS eventually writing back its page cache would). */
  flush(): void {
    for (const change of this.#pending) apply(this.#durable, change);
    this.#pending = [];
  }

  /** Loses every write that is not durable and closes the store; open() it to model the restart. */
  crash(): void {
    this.#current = this.#durable.clone();
    this.#pending = [];
    if (this.#state === 'open') this.#state = 'closed';
  }

  /** A new store, not yet opened, holding only the durable contents of this one. */
  snapshotDurable(): MemoryStorage {
    const copy = new MemoryStorage();
    copy.#current = this.#durable.clone();
    copy.#durable = this.#durable.clone();
    copy.#horizon = this.#horizon;
    return copy;
  }

  /** Number of changes (ops and clears) that a crash would lose now. */
  get pendingChanges(): number {
    return this.#pending.length;
  }

  #checkOpen(): void {
    if (this.#state === 'open') return;
    if (this.#state === 'closed') throw new StorageError('CLOSED', 'memory storage is closed');
    throw new StorageError('NOT_OPEN', 'memory storage is not open');
  }
}
