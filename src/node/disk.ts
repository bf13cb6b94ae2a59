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
import { PARTITION_RANGE } from '../core/persist.ts';
import type { Replica } from '../core/replica.ts';
import type { KeyRange, Storage, WriteOp } from '../storage/types.ts';
import type { PipelineDisk } from './pipeline.ts';

/** What recovery found and how long it took (the replica's start log line). */
export interface Recovered {
  /** The horizon record on disk, decoded (undefined when there is none). */
  horizon: Horizon | undefined;
  /** Records read. */
  records: number;
  /** Milliseconds reading them (the storage's scans). */
  readMs: number;
  /** Milliseconds rebuilding the replica from them (Replica.recover: joining, checking the state digest). */
  rebuildMs: number;
}

/**
 * Reads the whole durable state into `replica`: the records outside the application partitions
 * first (Replica.beginRecovery), then, when the stored checkpoint is usable, the partitions
 * streamed through the storage's forEach (its scan where it has none), each joined and loaded as
 * its keys arrive, then Replica.finishRecovery. Throws what the storage or the replica throws
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
  const rest = [...(await timed(() => storage.scan({ lt: PARTITION_RANGE.gte }))), ...(await timed(() => storage.scan({ gte: PARTITION_RANGE.lt })))];
  const horizon = await timed(() => storage.readHorizon());
  const damage = storage.damage;
  const step = replica.beginRecovery(rest);
  const partitions = step.partitions;
  if (partitions !== undefined) {
    // The loader's work happens inside the iteration; counted as rebuilding, not as reading.
    let loadMs = 0;
    const onEntry = (key: string, value: Uint8Array): void => {
      const t = now();
      partitions.add(key, value);
      loadMs += now() - t;
    };
    const t1 = now();
    if (storage.forEach !== undefined) await storage.forEach(PARTITION_RANGE, onEntry);
    else for (const [key, value] of await storage.scan(PARTITION_RANGE)) onEntry(key, value);
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
