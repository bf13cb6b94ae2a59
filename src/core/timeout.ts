/**
 * Named timeouts in ticks (the core has no clock: `now` is the tick count the shell drives).
 *
 * A Timeout is armed at a tick and fires `after` ticks later; with exponential backoff, `after`
 * doubles with every attempt (up to `ticksMax`) until `reset()`. Every timer of the replica is one
 * of these objects, listed in `Timers`, so that what waits for what, and for how long, is in one
 * place (and shows in status by name).
 */

/**
 * The shell's side of the timers' contract: a tick is time this replica could act in. A turn that
 * starts late (a long turn before it, a synced write that held the pipeline, garbage collection, a
 * paused process) runs the ticks the loop slept through on the core's word (Replica.quietTicks) and
 * at most this many more; the rest is not run. A replica's own stall is thus not evidence against
 * anyone: its request timer (a suspicion of the primary), the new-view timer, the fetch and read
 * timers count at most LATE_TICKS_MAX ticks of it per turn. Without the cap, a stall as long as the
 * view-change timeout made every request that waited across it overdue at once: under a bulk load
 * into a large store, the four replicas' checkpoint writes held their pipelines together for 1-2 s,
 * each found its requests overdue when it resumed, and the cluster changed views every 15-20 s
 * with nothing faulty. A replica that stalls continuously counts LATE_TICKS_MAX ticks a turn, so
 * its timers still run, slower by its own slowness; the others' timers run at their own pace. Only
 * liveness depends on ticks (no safety rule reads a timer).
 */
export const LATE_TICKS_MAX = 10;

export type TimeoutName = 'view-change' | 'retransmit' | 'probe' | 'catch-up' | 'fetch';

export class Timeout {
  /** The tick it was armed at; undefined while stopped. */
  private armedAt: number | undefined;
  /** `after` as it was when armed: a deadline does not move when the attempts change later. */
  private armedFor = 0;
  /** Consecutive attempts without a reset (backoff exponent). */
  attempts = 0;

  constructor(
    readonly name: TimeoutName,
    readonly ticks: number,
    readonly backoff: 'none' | 'exponential' = 'none',
    readonly ticksMax: number = ticks,
  ) {
    if (!Number.isInteger(ticks) || ticks < 1) throw new RangeError(`timeout ${name}: ticks must be a positive integer`);
    if (ticksMax < ticks) throw new RangeError(`timeout ${name}: ticksMax below ticks`);
  }

  /** Ticks from arming to firing at the current attempt. */
  get after(): number {
    return this.backoff === 'none' ? this.ticks : Math.min(this.ticks * 2 ** this.attempts, this.ticksMax);
  }

  get running(): boolean {
    return this.armedAt !== undefined;
  }

  start(now: number): void {
    this.armedAt = now;
    this.armedFor = this.after;
  }

  /** Arms it unless it is already running (a deadline that later events must not push back). */
  startIfStopped(now: number): void {
    if (this.armedAt === undefined) this.start(now);
  }

  stop(): void {
    this.armedAt = undefined;
  }

  /** Running and `after` ticks have passed since it was armed. */
  fired(now: number): boolean {
    return this.armedAt !== undefined && now - this.armedAt >= this.armedFor;
  }

  /** For a rate limit: stopped (never used) or fired; the caller re-arms it when it acts. */
  ready(now: number): boolean {
    return this.armedAt === undefined || now - this.armedAt >= this.armedFor;
  }

  /** Ticks until it fires (0 once it has; undefined while stopped). */
  remaining(now: number): number | undefined {
    return this.armedAt === undefined ? undefined : Math.max(0, this.armedAt + this.armedFor - now);
  }

  /** Ticks since it was armed (Infinity while stopped). */
  elapsed(now: number): number {
    return this.armedAt === undefined ? Infinity : now - this.armedAt;
  }

  /** One more attempt without success: the next `after` doubles (exponential backoff). */
  backOff(): void {
    this.attempts++;
  }

  reset(): void {
    this.attempts = 0;
  }

  /** For status: name, current length, attempts, and whether it is running. */
  describe(now: number): { name: TimeoutName; after: number; attempts: number; remaining?: number } {
    const out: { name: TimeoutName; after: number; attempts: number; remaining?: number } = { name: this.name, after: this.after, attempts: this.attempts };
    const remaining = this.remaining(now);
    if (remaining !== undefined) out.remaining = remaining;
    return out;
  }
}
