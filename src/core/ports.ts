/**
 * The core's ports: what it needs from the application it replicates and what it asks of storage.
 * Defined here, inside the core, so that the core depends on nothing outward; src/app/types.ts and
 * src/storage/types.ts re-export them for the applications and stores that implement them.
 */

// --- the application (src/app/types.ts re-exports these for StateMachine authors) ---------------

/**
 * The deterministic application a cluster replicates.
 *
 * The core calls `execute` in the agreed sequence order on every replica. Implementations must be
 * deterministic: no clocks, no randomness, no iteration over unordered containers where order leaks
 * into results or state bytes. `execute` must not throw on a malformed operation: it returns an
 * encoded error result instead (a client can send any bytes as an operation).
 */
export interface ExecuteContext {
  /** Sequence number of the batch the request was ordered in. */
  seq: number;
  /** Client id of the signed request. */
  client: number;
  /** The request's client timestamp. */
  timestamp: number;
  /**
   * True for a read-only request (see StateMachine.isReadOnly): executed unordered on the current
   * committed state, where `seq` is the last executed sequence number. `execute` must then leave the
   * state exactly as it was.
   */
  readOnly?: boolean;
  /**
   * The batch's agreed time, in milliseconds since the Unix epoch: the time its primary proposed
   * (covered by the batch digest, so every replica has the same) within bounds of the backups'
   * clocks, and never below the previous batch's (0 only before any batch had a time). The same for
   * every request of a batch. Use it, never a clock of your own, for anything that depends on time
   * (leases, expiry): it is what every replica agrees on. A read-only request (above) gets the
   * agreed time of the last batch executed, the state it reads.
   */
  timeMs: number;
}

export type Result<T = void> = { ok: true; value: T } | { ok: false; reason: string };

export interface StateMachine {
  /** Apply one operation; returns the encoded result, identical on every correct replica. */
  execute(op: Uint8Array, ctx: ExecuteContext): Uint8Array;
  /** Canonical bytes of the whole state: equal states give equal bytes. */
  snapshot(): Uint8Array;
  /** Replace the whole state with one from `snapshot()`. Leaves the state unchanged on failure. */
  restore(snapshot: Uint8Array): Result;
  /** Digest of the whole state (equal states give equal digests). */
  digest(): Uint8Array;
  /**
   * Optional: true when `op` only reads the state. Such an operation may be sent as a read-only
   * request (PBFT §5.1.3): each replica executes it on its own committed state, without ordering,
   * with `ctx.readOnly` set, and the client accepts a result only when 2f+1 replicas agree on it.
   * A replica refuses a read-only request whose operation is not declared here (a state machine
   * without this method declares none). Must be deterministic, and `execute` of such an operation
   * must not change the state (no counters, caches that leak into results, or dirty marks).
   */
  isReadOnly?(op: Uint8Array): boolean;
}

/**
 * State split into a fixed number of partitions, so that checkpoints hash and persist only what
 * changed and state transfer moves only the partitions whose digests differ.
 * The core builds its digest tree over `readPartition` bytes.
 */
export interface PartitionedState {
  /** Fixed for the life of the machine, identical on every replica. */
  readonly partitionCount: number;
  /** Canonical bytes of one partition (equal contents give equal bytes). */
  readPartition(index: number): Uint8Array;
  /** Replace one partition with bytes produced by `readPartition` on another replica.
   *  Validates them; leaves the state unchanged on failure. */
  writePartition(index: number, bytes: Uint8Array): Result;
  /**
   * Optional: like writePartition, for bytes this replica's own `readPartition` produced and it reads
   * back from its own disk at recovery. The core then checks the whole state against the checkpoint
   * digest it stored with them (and fetches the partitions that differ when it does not match), so an
   * implementation may skip checks that only that digest can fail (it must still never leave a state
   * on which `execute` throws), and may keep `bytes` without copying (the core does not touch them
   * again).
   */
  loadPartition?(index: number, bytes: Uint8Array): Result;
  /** Indices (ascending) of partitions changed since the last call; clears the set. */
  takeDirtyPartitions(): number[];
  /**
   * Optional, with readFrozenPartition: a checkpoint computed over several turns while `execute`
   * goes on. Returns what takeDirtyPartitions() would (and clears the set the same way), and fixes
   * those partitions' contents as they are now: readFrozenPartition(i), once for each index
   * returned, gives the bytes readPartition(i) would give now, however `execute` changes the state
   * meanwhile. A later call drops what an earlier one fixed and was not read; writePartition,
   * loadPartition and restore drop it for what they replace. readPartition stays the current state.
   * Without these the core computes each checkpoint in the turn that executed its sequence number.
   */
  freezePartitions?(): number[];
  /** Optional, with freezePartitions: partition `index` as it was at the last freezePartitions(). */
  readFrozenPartition?(index: number): Uint8Array;
  /**
   * Optional, with joinPartition: a partition as named records (the key-value store: one per key),
   * so that a replica stores what a checkpoint changed as a few records beside the partition's last
   * whole bytes, rather than the whole partition again (persist.ts). Lists the records that differ
   * between two versions of a partition (both `readPartition` bytes; `before` undefined: nothing,
   * list every record of `after`). Record names are non-empty strings, unique in a partition; record
   * values are non-empty (an empty record means "deleted" to joinPartition).
   */
  diffPartition?(before: Uint8Array | undefined, after: Uint8Array): PartitionDiff;
  /**
   * Optional, with diffPartition: the partition's bytes from what this replica stored: `base`, whole
   * bytes (undefined: the empty partition), with `records` applied in order (ascending by name,
   * compared as UTF-8 bytes), each replacing or adding its name's entry, an empty one deleting it.
   * The result then goes to loadPartition (writePartition), which validates it; fails rather than
   * throws on bad input.
   */
  joinPartition?(index: number, base: Uint8Array | undefined, records: ReadonlyArray<readonly [string, Uint8Array]>): Result<Uint8Array>;
}

/** Records to store and to delete for one partition (PartitionedState.diffPartition). */
export interface PartitionDiff {
  put: Array<[string, Uint8Array]>;
  del: string[];
}

export type ReplicatedApp = StateMachine & PartitionedState;

// --- storage: the core decides keys and values; a Storage (src/storage/types.ts) makes them durable

export type WriteOp =
  | { type: 'put'; key: string; value: Uint8Array }
  | { type: 'del'; key: string };

export interface KeyRange {
  /** Inclusive lower bound. */
  gte?: string;
  /** Exclusive upper bound. */
  lt?: string;
}
