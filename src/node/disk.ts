/**
 * The replica's disk (a Storage: RocksDB in production), on the two paths where the shell touches it:
 *
 *   recoverFromStorage   at start, every record and the horizon record go to the core's recovery
 *                        (with the write-ahead-log damage the storage found on open, if any); the
 *                        application partitions streamed, a partition at a time
 *   StorageDisk          the turn pipeline's disk (PipelineDisk): one synced batch of writes, then the
 *                        range clears, then the horizon record; counts them for /status and /metrics
 *
 * The simulator's counterpart is src/sim/disk.ts.
 */
import { decodeHorizon, type Horizon } from '../core/horizon.ts';
import { PARTITION_RANGE, RECORD_RANGE } from '../core/persist.ts';
import type { Replica } from '../core/replica.ts';
import type { KeyRange, Storage, WriteOp } from '../storage/types.ts';
import type { PipelineDisk } from './pipeline.ts';

/** What recovery found and how long it took (the replica's start log line). */
export interface Recovered {
  /** The horizon record on disk, decoded (undefined when there is none). */
  horizon: Horizon | undefined;
  /** Records read. */
  records: number;
  /** Milliseconds reading them (the storage's scans, and holding the partitions' records keyed by checkpoint until their partitions load). */
  readMs: number;
  /** Milliseconds rebuilding the replica from them (Replica.recover: joining, checking the state digest). */
  rebuildMs: number;
}

/**
 * Reads the whole durable state into `replica`: the records outside the application partitions and
 * their records first (Replica.beginRecovery), then, when the stored checkpoint is usable, the
 * partitions' records (keyed by checkpoint) and the partitions streamed through the storage's
 * forEach (its scan where it has none), each partition joined and loaded as its keys arrive, then
 * Replica.finishRecovery. Throws what the storage or the replica throws
 * (recovery refuses a horizon record that does not decode).
 */
export async function recoverFromStorage(replica: Replica, storage: Storage, now: () => number = () => performance.now()): Promise<Recovered> {
  let readMs = 0;
  const timed = async <T>(read: () => Promise<T>): Promise<T> => {
    const t0 = now();
    try {
      return await read();
    } finally {
      readMs += now() - t0;
    }
  };
  const t0 = now();
  // Several reads, not one snapshot: nothing writes to the storage until recovery has finished (the
  // loop is attached and the transport started after it: ReplicaNode.start).
  // Outside the partitions and their records: below 'a/', between 'a0' and 'b/', from 'b0'.
  const rest: Array<[string, Uint8Array]> = [];
  for (const range of [{ lt: PARTITION_RANGE.gte }, { gte: PARTITION_RANGE.lt, lt: RECORD_RANGE.gte }, { gte: RECORD_RANGE.lt }]) for (const entry of await timed(() => storage.scan(range))) rest.push(entry);
  const horizon = await timed(() => storage.readHorizon());
  const damage = storage.damage;
  const step = replica.beginRecovery(rest);
  const partitions = step.partitions;
  if (partitions !== undefined) {
    const stream = async (range: KeyRange, onEntry: (key: string, value: Uint8Array) => void): Promise<void> => {
      if (storage.forEach !== undefined) await storage.forEach(range, onEntry);
      else for (const [key, value] of await storage.scan(range)) onEntry(key, value);
    };
    // Every record first: a partition loads as soon as the next one's keys arrive. The loader only
    // holds the records (counted as reading: two clock reads per record cost 0.1 s at 1M keys).
    await timed(() => stream(RECORD_RANGE, (key, value) => partitions.addRecord(key, value)));
    // The loader's work happens inside the iteration; counted as rebuilding, not as reading.
    let loadMs = 0;
    const t1 = now();
    await stream(PARTITION_RANGE, (key, value) => {
      const t = now();
      partitions.add(key, value);
      loadMs += now() - t;
    });
    readMs += now() - t1 - loadMs;
  }
  replica.finishRecovery(step, { ...(horizon !== undefined ? { horizon } : {}), ...(damage !== undefined ? { damage } : {}) });
  const onDisk = horizon === undefined ? undefined : decodeHorizon(horizon);
  return { horizon: onDisk?.ok ? onDisk.value : undefined, records: rest.length + (partitions?.entries ?? 0), readMs, rebuildMs: now() - t0 - readMs };
}

export class StorageDisk implements PipelineDisk {
  /** Synced write batches. */
  writes = 0;
  /** Wall time spent awaiting synced writes, milliseconds. */
  writeMs = 0;
  /** Horizon record writes. */
  horizonWrites = 0;
  /** Wall time spent awaiting horizon record writes, milliseconds. */
  horizonWriteMs = 0;

  constructor(
    private readonly storage: Storage,
    private readonly now: () => number,
    /** Sees the duration of each synced write batch, milliseconds (the metrics' histogram). */
    private readonly observeWriteMs?: (ms: number) => void,
  ) {}

  write(ops: WriteOp[], clears: KeyRange[], horizon: Uint8Array | undefined, done: (err?: unknown) => void): void {
    this.writeBatch(ops, clears, horizon).then(() => done(), done);
  }

  /** One synced batch (skipped when there are no ops), then the range clears (garbage collection), then the horizon record. */
  private async writeBatch(ops: WriteOp[], clears: KeyRange[], horizon: Uint8Array | undefined): Promise<void> {
    if (ops.length > 0) {
      const t0 = this.now();
      await this.storage.write(ops, { sync: true });
      const ms = this.now() - t0;
      this.writeMs += ms;
      this.observeWriteMs?.(ms);
      this.writes++;
    }
    for (const range of clears) await this.storage.clear(range);
    if (horizon !== undefined) {
      const t0 = this.now();
      await this.storage.writeHorizon(horizon);
      this.horizonWriteMs += this.now() - t0;
      this.horizonWrites++;
    }
  }
}
