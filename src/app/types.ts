/**
 * The deterministic application a cluster replicates.
 *
 * The core calls `execute` in the agreed sequence order on every replica. Implementations must be
 * deterministic: no clocks, no randomness, no iteration over unordered containers where order leaks
 * into results or state bytes. `execute` must not throw on a malformed operation: it returns an
 * encoded error result instead (a client can send any bytes as an operation).
 */
import type { PartitionedState, ReplicatedApp, StateMachine } from '../core/ports.ts';

// The application's interfaces are the core's port (src/core/ports.ts).
export type { ExecuteContext, PartitionDiff, PartitionedState, ReplicatedApp, Result, StateMachine } from '../core/ports.ts';

function isPartitioned(sm: StateMachine): sm is ReplicatedApp {
  const candidate = sm as Partial<PartitionedState>;
  return (
    typeof candidate.partitionCount === 'number' &&
    typeof candidate.readPartition === 'function' &&
    typeof candidate.writePartition === 'function' &&
    typeof candidate.takeDirtyPartitions === 'function'
  );
}

/**
 * Adapts a plain state machine to the partitioned interface with a single partition
 * (its snapshot). State transfer then moves the whole snapshot.
 */
export function asReplicatedApp(sm: StateMachine): ReplicatedApp {
  if (isPartitioned(sm)) return sm;
  let dirty = true;
  const readOnly = sm.isReadOnly?.bind(sm);
  return {
    partitionCount: 1,
    execute(op, ctx) {
      // A read-only operation leaves the state as it was (StateMachine.isReadOnly).
      if (ctx.readOnly !== true) dirty = true;
      return sm.execute(op, ctx);
    },
    ...(readOnly ? { isReadOnly: readOnly } : {}),
    snapshot: () => sm.snapshot(),
    restore(bytes) {
      dirty = true;
      return sm.restore(bytes);
    },
    digest: () => sm.digest(),
    readPartition(index) {
      if (index !== 0) throw new RangeError(`partition ${index} out of range (1 partition)`);
      return sm.snapshot();
    },
    writePartition(index, bytes) {
      if (index !== 0) return { ok: false, reason: `partition ${index} out of range (1 partition)` };
      dirty = true;
      return sm.restore(bytes);
    },
    takeDirtyPartitions() {
      const out = dirty ? [0] : [];
      dirty = false;
      return out;
    },
  };
}
