/**
 * How far V8 lets a replica's JavaScript heap grow between two major collections.
 *
 * V8 picks the factor itself by default (--heap-growing-percent=0): up to 4x what is live for a small
 * heap that it collects fast. A replica under load keeps about 50-70 MiB live, so its heap grew to
 * 150-200 MiB between collections; the ArrayBuffers the dead objects held were freed only at the
 * collection, and glibc's main arena kept the pages of each such peak: replica RSS climbed by 30-60%
 * over 5 minutes at full load and never came down (issue 15's "RSS flat" target; README,
 * Performance). With 100 (what is live may double) the same 5-minute run stayed within 8% at the same
 * throughput; with 20, within 9.4% (peak 12.3%) at 10-14% less throughput (more major collections).
 *
 * A large heap is left to V8: with 1M keys loaded (about 200 MiB live) 100 cost the loaded
 * throughput about 9% (1,438, 1,617 and 1,447 req/s against 1,607, 1,658 and 1,706 with V8's choice).
 * So the policy below looks at what is live after each major collection: the percent applies while
 * that is small, and V8 decides once it is above HEAP_POLICY_LARGE_BYTES, until it is below
 * HEAP_POLICY_SMALL_BYTES again.
 */
import { constants, PerformanceObserver } from 'node:perf_hooks';
import { getHeapStatistics, setFlagsFromString } from 'node:v8';

/** What a replica process sets unless told otherwise: what is live may double between major collections. */
export const HEAP_GROWING_PERCENT_DEFAULT = 100;
/** 0 leaves the factor to V8; above this the setting would mean little V8's own 4x does not allow. */
export const HEAP_GROWING_PERCENT_MAX = 300;
/** Live heap (in use right after a major collection) above which V8 decides (a large state). */
export const HEAP_POLICY_LARGE_BYTES = 128 * 1024 * 1024;
/** Live heap below which the percent applies again (hysteresis: no flapping around one threshold). */
export const HEAP_POLICY_SMALL_BYTES = 96 * 1024 * 1024;

/** The percent this process last set (undefined: never set, V8 decides). */
let inForce: number | undefined;

function checkPercent(percent: number): void {
  if (!Number.isInteger(percent) || percent < 0 || percent > HEAP_GROWING_PERCENT_MAX) {
    throw new RangeError(`heap growing percent must be an integer from 0 to ${HEAP_GROWING_PERCENT_MAX}, got ${String(percent)}`);
  }
}

/**
 * Sets V8's --heap-growing-percent for this process (read when a major collection sets the next
 * limit, so it applies from the next one on). 0 gives the choice back to V8.
 */
export function setHeapGrowingPercent(percent: number): void {
  checkPercent(percent);
  setFlagsFromString(`--heap-growing-percent=${percent}`);
  inForce = percent;
}

/**
 * Which percent applies, given what is live and the percent that applied before: `percent` while
 * little is live, 0 (V8 decides) from above `large` until it is below `small` again.
 */
export function heapPolicyPercent(percent: number, liveBytes: number, current: number, large = HEAP_POLICY_LARGE_BYTES, small = HEAP_POLICY_SMALL_BYTES): number {
  if (percent === 0) return 0;
  if (current === percent) return liveBytes > large ? 0 : percent;
  return liveBytes < small ? percent : 0;
}

/** The percent in force in this process (GET /status: memory.heapGrowingPercent), if it set one. */
export function heapGrowingPercentInForce(): number | undefined {
  return inForce;
}

/** What the policy watches: a call after each major collection, and the heap in use then. */
export interface HeapWatch {
  /** Calls `cb` after each major collection; returns what stops that. */
  afterMajorGc(cb: () => void): () => void;
  usedBytes(): number;
  set(percent: number): void;
}

/** The process's own heap: major collections from a PerformanceObserver of 'gc' entries. */
export const PROCESS_HEAP: HeapWatch = {
  afterMajorGc(cb) {
    const observer = new PerformanceObserver((list) => {
      for (const e of list.getEntries()) {
        if ((e as unknown as { detail?: { kind?: number } }).detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR) return cb();
      }
    });
    observer.observe({ entryTypes: ['gc'] });
    return () => observer.disconnect();
  },
  usedBytes: () => getHeapStatistics().used_heap_size,
  set: setHeapGrowingPercent,
};

/**
 * Applies `percent` now and keeps the policy (heapPolicyPercent) after every major collection, with
 * the heap in use then as what is live; returns what stops it. With 0, V8 decides and nothing is
 * watched.
 */
export function startHeapPolicy(percent: number, watch: HeapWatch = PROCESS_HEAP): { current: () => number; stop: () => void } {
  checkPercent(percent);
  let current = percent;
  watch.set(current);
  const check = (): void => {
    const next = heapPolicyPercent(percent, watch.usedBytes(), current);
    if (next !== current) {
      current = next;
      watch.set(current);
    }
  };
  const stop = percent === 0 ? () => {} : watch.afterMajorGc(check);
  return { current: () => current, stop };
}
