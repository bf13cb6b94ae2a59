import { BATCH_BYTES_LIMIT, BATCH_REQUESTS_LIMIT, STORED_RECORDS_LIMIT } from './limits.ts';

/** Tunables of the protocol core. Times are in ticks; the shell maps a tick to wall time (10 ms). */
export interface ReplicaOptions {
  /** K: a checkpoint every K sequence numbers. */
  checkpointInterval: number;
  /** L: the log window (h, h+L]; a multiple of K, at least 2K. */
  windowSize: number;
  /**
   * Batching: a pre-prepare this replica proposes carries at most this many requests and bytes of
   * requests (a single larger request goes alone). At most BATCH_REQUESTS_LIMIT and BATCH_BYTES_LIMIT
   * (src/core/limits.ts), which is what every replica accepts whatever its own tuning.
   */
  batchRequestsMax: number;
  batchBytesMax: number;
  /** Batches proposed by the primary and not yet executed, at most. */
  inFlightBatchesMax: number;
  /** A request waiting longer than this (doubled per consecutive view change) starts a view change. */
  viewChangeTimeoutTicks: number;
  viewChangeTimeoutTicksMax: number;
  /** Period of retransmissions (own messages of stalled sequence numbers, VIEW-CHANGE, fetches). */
  retransmitTicks: number;
  /** How long a replica that is behind waits for the normal protocol before fetching or transferring state. */
  catchUpTicks: number;
  /** A state-transfer or fetch request unanswered for this long goes to another peer. */
  fetchTimeoutTicks: number;
  /** Committed entries per fetch reply, at most. */
  fetchEntriesMax: number;
  /**
   * A replica that makes no progress asks one peer every this many ticks whether it is behind (a
   * fetch whose reply carries the peer's stable checkpoint): how a new, wiped or restarted replica
   * learns it must catch up even when the cluster is idle.
   */
  probeTicks: number;
  /** Raw bytes of partitions per state-transfer reply, at most. */
  stateChunkBytesMax: number;
  /** Largest frame the core accepts. */
  frameBytesMax: number;
  /**
   * The batch time (normal.ts checkBatchTime): a backup prepares a fresh pre-prepare only if the
   * time it proposes is at most `batchTimeAheadMsMax` ahead of the backup's own clock (a primary
   * cannot run time forward, e.g. expire leases early) and at most `batchTimeBehindMsMax` behind it
   * (a primary cannot freeze time, e.g. keep leases alive forever). Milliseconds, compared with the
   * clock the shell gives the core (Replica.setClockMs); they bound clock skew plus the delay of a
   * pre-prepare on its way, so the behind bound is the larger.
   */
  batchTimeAheadMsMax: number;
  batchTimeBehindMsMax: number;
  /**
   * When the audit finds this replica's state diverged from a stable checkpoint (membership.ts):
   * besides repairing itself by state transfer, it asks to leave the configuration (a QUIT signed
   * with its own key); the operator adds it again after the repair. Off by default.
   */
  quitOnDivergence: boolean;
  /**
   * Aardvark's check on the primary (src/core/monitor.ts): a backup times how long the requests it
   * knows (from their clients, or relayed) wait for a PRE-PREPARE, and suspects the primary (the
   * SUSPECT pre-vote: f+1 start the view change) when at least half of the last
   * `slowPrimarySamples` PRE-PREPAREs that carried such requests came later than the bound and one
   * it knows is waiting longer than the bound now. The bound is the larger of
   * `slowPrimaryDelayFloorPercent` percent of viewChangeTimeoutTicks and `slowPrimaryDelayFactor`
   * times the median time from PRE-PREPARE to execution of the last batches here (how fast this
   * cluster orders once the primary has spoken). Off: only the request timer replaces a primary.
   */
  slowPrimaryCheck: boolean;
  /** The floor of the bound, in percent of viewChangeTimeoutTicks (1-100). */
  slowPrimaryDelayFloorPercent: number;
  /** The bound is at least this many times the median PRE-PREPARE-to-execution time (1-1000). */
  slowPrimaryDelayFactor: number;
  /** The count-based window: the last this many PRE-PREPAREs timed (1-1024); half of them late suspects. */
  slowPrimarySamples: number;
  /**
   * The request timer learns from the requests executed here (ReplicaState.requestTimeoutTicks):
   * twice the longest wait of the current and the previous checkpoint interval, when longer than the
   * view-change timeout, but at most this many times viewChangeTimeoutTicks (1-64; 1: it learns
   * nothing). Bounds how far a primary that delays requests can raise it.
   */
  requestTimeoutLearnedMaxFactor: number;
  /**
   * A read-only request waits at most this long for the replica to execute what it had prepared
   * when the read arrived (src/core/reads.ts); then it is dropped unanswered (the client falls back
   * to an ordered request).
   */
  readHoldTicksMax: number;
  /**
   * For an application with records (src/core/persist.ts): a partition is stored as its base and
   * the records of the keys changed since, at most this many (1-1024); one that would have more is
   * written whole again. Fewer: less to read at a restart; more: fewer whole partitions written.
   */
  storedRecordsMax: number;
  /**
   * A checkpoint whose changed partitions hold more bytes than this is computed over several turns
   * while execution goes on (checkpoints.ts; with an application that can freeze its partitions):
   * each turn reads and hashes about this many bytes of them (finding a partition's records for
   * the stable checkpoint's write counts as a second pass over its bytes; every partition counts
   * CHECKPOINT_PARTITION_COST_BYTES more, so many small partitions are spread too). Bounds the turn a
   * checkpoint takes after a bulk load (every partition changed). The records still to find after
   * it (state.ts prepareRecordsAhead) are found this many bytes per turn too.
   */
  checkpointSliceBytes: number;
}

/**
 * What one partition counts in the checkpointSliceBytes budget besides its bytes: its merge, leaf
 * digest, tree update and records plan cost about 17 us of CPU even when it holds a few bytes, the
 * time hashing 16-32 KiB takes. Without it, a checkpoint of many small partitions (64 clients: about
 * 2,900 per checkpoint) fitted one turn and held the loop 64-105 ms every two seconds.
 */
export const CHECKPOINT_PARTITION_COST_BYTES = 16 * 1024;

export const DEFAULT_REPLICA_OPTIONS: ReplicaOptions = {
  checkpointInterval: 128,
  windowSize: 256,
  batchRequestsMax: 512,
  batchBytesMax: 1024 * 1024,
  inFlightBatchesMax: 4,
  viewChangeTimeoutTicks: 100,
  viewChangeTimeoutTicksMax: 6_400,
  retransmitTicks: 25,
  catchUpTicks: 30,
  fetchTimeoutTicks: 50,
  fetchEntriesMax: 64,
  probeTicks: 200,
  stateChunkBytesMax: 1024 * 1024,
  frameBytesMax: 32 * 1024 * 1024,
  batchTimeAheadMsMax: 2_000,
  batchTimeBehindMsMax: 10_000,
  quitOnDivergence: false,
  slowPrimaryCheck: true,
  slowPrimaryDelayFloorPercent: 20,
  slowPrimaryDelayFactor: 4,
  slowPrimarySamples: 8,
  requestTimeoutLearnedMaxFactor: 8,
  readHoldTicksMax: 100,
  storedRecordsMax: 16,
  checkpointSliceBytes: 4 * 1024 * 1024,
};

export function resolveOptions(partial: Partial<ReplicaOptions> = {}): ReplicaOptions {
  const o = { ...DEFAULT_REPLICA_OPTIONS, ...partial };
  const positive = (name: keyof ReplicaOptions): void => {
    const v = o[name] as number;
    if (!Number.isSafeInteger(v) || v <= 0) throw new RangeError(`${name} must be a positive integer, got ${v}`);
  };
  for (const k of Object.keys(DEFAULT_REPLICA_OPTIONS) as Array<keyof ReplicaOptions>) {
    if (typeof DEFAULT_REPLICA_OPTIONS[k] === 'boolean') {
      if (typeof o[k] !== 'boolean') throw new RangeError(`${k} must be true or false, got ${String(o[k])}`);
    } else positive(k);
  }
  if (o.windowSize % o.checkpointInterval !== 0 || o.windowSize < 2 * o.checkpointInterval) {
    throw new RangeError(`windowSize (${o.windowSize}) must be a multiple of checkpointInterval (${o.checkpointInterval}) and at least twice it`);
  }
  if (o.batchBytesMax > BATCH_BYTES_LIMIT) throw new RangeError(`batchBytesMax (${o.batchBytesMax}) must be at most ${BATCH_BYTES_LIMIT}`);
  if (o.batchRequestsMax > BATCH_REQUESTS_LIMIT) throw new RangeError(`batchRequestsMax (${o.batchRequestsMax}) must be at most ${BATCH_REQUESTS_LIMIT}`);
  if (o.viewChangeTimeoutTicksMax < o.viewChangeTimeoutTicks) {
    throw new RangeError('viewChangeTimeoutTicksMax must be at least viewChangeTimeoutTicks');
  }
  const atMost = (name: 'slowPrimaryDelayFloorPercent' | 'slowPrimaryDelayFactor' | 'slowPrimarySamples' | 'requestTimeoutLearnedMaxFactor' | 'storedRecordsMax', max: number, what: string): void => {
    if (o[name] > max) throw new RangeError(`${name} must be an integer from 1 to ${max} (${what}), got ${o[name]}`);
  };
  atMost('slowPrimaryDelayFloorPercent', 100, 'a percent of viewChangeTimeoutTicks');
  atMost('slowPrimaryDelayFactor', 1000, 'a multiple of the median PRE-PREPARE-to-execution ticks');
  atMost('slowPrimarySamples', 1024, 'PRE-PREPAREs timed');
  atMost('requestTimeoutLearnedMaxFactor', 64, 'a multiple of viewChangeTimeoutTicks');
  atMost('storedRecordsMax', STORED_RECORDS_LIMIT, 'records stored per partition');
  return o;
}
