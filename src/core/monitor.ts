/**
 * Aardvark's check on the primary (Clement et al., "Making Byzantine Fault Tolerant Systems
 * Tolerate Byzantine Faults", NSDI 2009, section 4.3), adapted to this core: pure bookkeeping, time
 * in ticks, no clock.
 *
 * PBFT only asks a primary to order each request before the request timer expires, so a primary
 * that holds every PRE-PREPARE for 90% of that timeout (and keeps enough batches in flight that no
 * request waits longer) is never replaced, and the service runs at a few percent of its throughput.
 * Aardvark's backups therefore also expect the primary to keep up with what the cluster can do.
 *
 * What a backup can see here: requests it knows before their PRE-PREPARE arrives (a client sends to
 * the primary first and to every replica when its first try is not answered; a suspecting replica
 * relays the requests it waits for). For each, the ticks until a PRE-PREPARE carries it. An honest
 * primary proposes a request as soon as one of its in-flight batches executes, so these waits are
 * on the order of the time from PRE-PREPARE to execution, which the backup measures too and which
 * the primary does not control (2f+1 backups commit without it). The bound is the larger of
 *
 *   - a floor, a fraction of the view-change timeout (the first primary has no history to be
 *     judged against: this is what tests it), and
 *   - a multiple of the median PRE-PREPARE-to-execution ticks of the last batches executed here
 *     (recent honest behaviour of this cluster: under load it grows, and so does the bound).
 *
 * The window is count-based, never a rate over ticks that one late tick could trip: the last
 * `samples` PRE-PREPAREs that carried a request the backup knew, each late when such a request
 * waited longer than the bound. One sample per PRE-PREPARE, not per request: a primary that stalls
 * once (a disk sync, a pause, a lost message it must fetch) and then proposes everything that
 * queued in one batch is late once. A sample also expires once SAMPLE_LIFETIME_REQUESTS requests
 * executed after it (counted, not timed): an honest primary's rare stalls, hours apart, do not add
 * up, while a primary that wants its late PRE-PREPAREs forgotten must serve that many requests
 * fast in between. The primary is slow when at least half of the window is late and a request the
 * backup knows is waiting longer than the bound right now. The verdict is a
 * suspicion (the SUSPECT pre-vote in viewchange.ts): f+1 replicas must agree before anyone leaves
 * the view, so one replica that is slow itself (paused, starved of CPU) cannot replace a primary.
 *
 * Not done (see the README): Aardvark's comparison with the throughput of the last views' primaries
 * and its slowly rising requirement, which rotates the primary regularly. A backup here knows a
 * request early only when its client retransmits, so it cannot tell a saturated primary from one
 * that has little to do, and regular rotation would cost view changes in fault-free runs.
 */

/** PRE-PREPARE-to-execution times kept (the last batches executed here). */
export const COMMIT_TICKS_KEPT = 32;

/** A sample leaves the window once this many requests executed after it. */
export const SAMPLE_LIFETIME_REQUESTS = 1024;

export interface MonitorOptions {
  /** The bound's floor in ticks. */
  floorTicks: number;
  /** The bound is at least this many times the median PRE-PREPARE-to-execution ticks. */
  factor: number;
  /** The window: the last this many PRE-PREPAREs timed. */
  samples: number;
}

export interface MonitorStatus {
  boundTicks: number;
  /** PRE-PREPAREs timed in the current view's window, and how many of them were late. */
  timed: number;
  late: number;
}

export class PrimaryMonitor {
  /**
   * Late or on time, for the last `samples` PRE-PREPAREs timed in this view, oldest first, with the
   * count of requests executed here when each was taken.
   */
  private readonly window: Array<{ late: boolean; executed: number }> = [];
  private lateCount = 0;
  /** PRE-PREPARE-to-execution ticks of the last COMMIT_TICKS_KEPT batches, oldest first. */
  private readonly commitTicks: number[] = [];
  private medianCache: number | undefined;

  constructor(readonly opts: MonitorOptions) {}

  /** How many ticks a known request may wait for its PRE-PREPARE. */
  boundTicks(): number {
    return Math.max(this.opts.floorTicks, this.opts.factor * this.commitTicksMedian());
  }

  /**
   * A PRE-PREPARE of the current view came; the longest a request it carries had waited here:
   * `waitedTicks`. `executed`: requests executed here so far (the samples' clock).
   */
  timed(waitedTicks: number, executed: number): void {
    const late = waitedTicks > this.boundTicks();
    this.window.push({ late, executed });
    if (late) this.lateCount++;
    if (this.window.length > this.opts.samples) this.dropOldest();
  }

  /** Forgets the samples taken SAMPLE_LIFETIME_REQUESTS or more executed requests before `executed`. */
  expire(executed: number): void {
    while (this.window.length > 0 && executed - this.window[0]!.executed >= SAMPLE_LIFETIME_REQUESTS) this.dropOldest();
  }

  private dropOldest(): void {
    if (this.window.shift()?.late) this.lateCount--;
  }

  /** A batch executed `ticks` after its PRE-PREPARE arrived (or was proposed, at the primary). */
  executed(ticks: number): void {
    this.commitTicks.push(ticks);
    if (this.commitTicks.length > COMMIT_TICKS_KEPT) this.commitTicks.shift();
    this.medianCache = undefined;
  }

  /** At least half of the window late. */
  get slow(): boolean {
    return this.lateCount * 2 >= this.opts.samples;
  }

  /** A new view: its primary starts with a clean record (the commit times are the backups', they stay). */
  newView(): void {
    this.window.length = 0;
    this.lateCount = 0;
  }

  status(): MonitorStatus {
    return { boundTicks: this.boundTicks(), timed: this.window.length, late: this.lateCount };
  }

  private commitTicksMedian(): number {
    if (this.medianCache === undefined) {
      const sorted = [...this.commitTicks].sort((a, b) => a - b);
      this.medianCache = sorted.length === 0 ? 0 : sorted[sorted.length >> 1]!;
    }
    return this.medianCache;
  }
}
