/**
 * Measurement helpers of the benchmark: a mergeable latency histogram (about 1% relative
 * precision, exact maximum), per-process CPU time and resident memory read from /proc, and the
 * mean of a replica's Prometheus histogram between two scrapes.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { histogramDelta, type Histogram as PromHistogram } from '../../src/dashboard/model.ts';

/** Bucket i holds latencies in (GROWTH^(i-1), GROWTH^i] microseconds. */
const GROWTH = 1.01;
const LOG_GROWTH = Math.log(GROWTH);

export interface HistogramData {
  /** [bucket index, count] pairs, sparse. */
  buckets: Array<[number, number]>;
  count: number;
  sumUs: number;
  maxUs: number;
}

export class Histogram {
  private readonly counts = new Map<number, number>();
  count = 0;
  sumUs = 0;
  maxUs = 0;

  record(us: number): void {
    const v = Math.max(1, us);
    const i = Math.ceil(Math.log(v) / LOG_GROWTH);
    this.counts.set(i, (this.counts.get(i) ?? 0) + 1);
    this.count++;
    this.sumUs += us;
    if (us > this.maxUs) this.maxUs = us;
  }

  reset(): void {
    this.counts.clear();
    this.count = 0;
    this.sumUs = 0;
    this.maxUs = 0;
  }

  toData(): HistogramData {
    return { buckets: [...this.counts.entries()], count: this.count, sumUs: this.sumUs, maxUs: this.maxUs };
  }

  static merge(parts: readonly HistogramData[]): Histogram {
    const h = new Histogram();
    for (const p of parts) {
      for (const [i, c] of p.buckets) h.counts.set(i, (h.counts.get(i) ?? 0) + c);
      h.count += p.count;
      h.sumUs += p.sumUs;
      if (p.maxUs > h.maxUs) h.maxUs = p.maxUs;
    }
    return h;
  }

  /** The q-quantile (0..1) in microseconds: the upper bound of its bucket, at most the maximum. */
  quantileUs(q: number): number {
    if (this.count === 0) return NaN;
    const rank = Math.max(1, Math.ceil(q * this.count));
    let seen = 0;
    for (const i of [...this.counts.keys()].sort((a, b) => a - b)) {
      seen += this.counts.get(i)!;
      if (seen >= rank) return Math.min(GROWTH ** i, this.maxUs);
    }
    return this.maxUs;
  }

  meanUs(): number {
    return this.count === 0 ? NaN : this.sumUs / this.count;
  }
}

/** Clock ticks per second of /proc/<pid>/stat times (USER_HZ: 100 on Linux). */
export const CLOCK_TICKS_PER_SECOND = 100;

/** User + system CPU seconds in the text of a /proc stat file (of a process or of one thread). */
function statCpuSeconds(stat: string): number {
  // Fields after the command name, which is in parentheses and may contain spaces.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // rest[0] is field 3 (state); utime is field 14, stime field 15.
  return (Number(rest[11]) + Number(rest[12])) / CLOCK_TICKS_PER_SECOND;
}

/** User + system CPU seconds of a process (every thread), or undefined when it is gone. */
export function processCpuSeconds(pid: number): number | undefined {
  try {
    return statCpuSeconds(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return undefined;
  }
}

/** The thread ids of a process (/proc/<pid>/task), none when it is gone. */
function threadIds(pid: number): string[] {
  try {
    return readdirSync(`/proc/${pid}/task`);
  } catch {
    return [];
  }
}

/**
 * User + system CPU seconds of each thread of a process, summed by thread name (/proc/<pid>/task/
 * <tid>/comm: the main thread carries the process's name, libuv's pool threads and RocksDB's
 * background threads their own); an empty map when the process is gone. A thread that ended is
 * not counted.
 */
export function threadCpuSeconds(pid: number): Map<string, number> {
  const out = new Map<string, number>();
  for (const tid of threadIds(pid)) {
    try {
      const seconds = statCpuSeconds(readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8'));
      const name = tid === String(pid) ? 'main' : readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
      out.set(name, (out.get(name) ?? 0) + seconds);
    } catch {
      // the thread ended meanwhile
    }
  }
  return out;
}

/**
 * Time each thread of a process has spent runnable but waiting for a core (the second field of
 * /proc/<pid>/task/<tid>/schedstat, nanoseconds), keyed by thread id; an empty map when the process
 * is gone or the kernel keeps no such figures. `runQueueSecondsBetween` turns two of them into the
 * window's wait.
 */
export function runQueueNs(pid: number): Map<string, number> {
  const out = new Map<string, number>();
  for (const tid of threadIds(pid)) {
    try {
      const fields = readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').trim().split(' ');
      const waited = Number(fields[1]);
      if (Number.isFinite(waited)) out.set(tid, waited);
    } catch {
      // the thread ended meanwhile, or no schedstat
    }
  }
  return out;
}

/**
 * The run-queue wait of a process between two `runQueueNs` readings, seconds: its main thread
 * (tid = pid) and every thread alive at the end (a thread started in the window counts from 0; one
 * that ended in it is not counted). Undefined when either reading is empty.
 */
export function runQueueSecondsBetween(pid: number, start: Map<string, number>, end: Map<string, number>): { main: number; all: number } | undefined {
  if (start.size === 0 || end.size === 0) return undefined;
  let all = 0;
  for (const [tid, ns] of end) all += ns - (start.get(tid) ?? 0);
  const main = (end.get(String(pid)) ?? 0) - (start.get(String(pid)) ?? 0);
  return { main: main / 1e9, all: all / 1e9 };
}

/** Resident set size of a process in bytes (VmRSS), or undefined when it is gone. */
export function processRssBytes(pid: number): number | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
    return m === null ? undefined : Number(m[1]) * 1024;
  } catch {
    return undefined;
  }
}

/**
 * Mean milliseconds of one of a replica's histograms between two scrapes (parseHistogram of its
 * /metrics, src/dashboard/model.ts); NaN when a scrape lacks it, nothing was observed in between, or
 * the counts went back (a restarted replica).
 */
export function meanMsBetween(a: PromHistogram | undefined, b: PromHistogram | undefined): number {
  const d = a !== undefined && b !== undefined ? histogramDelta(a, b) : undefined;
  return d !== undefined && d.count > 0 ? (d.sumSeconds * 1000) / d.count : NaN;
}
