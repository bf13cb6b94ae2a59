/**
 * The replica's loop: ONE serialized loop drives the pure core and hands each turn's effects to the
 * turn pipeline (src/node/pipeline.ts, the same code the simulator runs).
 *
 * Frames from the transport wait in a bounded queue (INBOUND_QUEUE_BYTES_MAX; with verifyWorkers
 * they first pass the verify pool, which counts against the same bound; above it, frames are dropped
 * and counted). A turn is scheduled when frames wait, a tick is due (a timer wakes the loop for it)
 * or the core computes a checkpoint over several turns (`checkpointPending`: each flush() takes a
 * share of it), and it:
 *   0. gives the core the wall clock (`replica.setClockMs(Date.now())`: batch times),
 *   1. calls `replica.tick()` once per `tickMs` of wall time elapsed since the last tick: the ticks
 *      the loop slept through on the core's word (quietTicks below) and at most LATE_TICKS_MAX more
 *      (core/timeout.ts): the process's own stall is not time the core saw (counted in
 *      lateTicksDropped),
 *   2. hands queued frames to `replica.receive` (after the ticks: a frame that waited while the
 *      process was paused arrives at the end of the missed time, not before it): at most
 *      TURN_FRAMES_MAX, one per sender at a time, round-robin (each sender's frames wait in their own
 *      queue, at most SOURCE_QUEUE_BYTES_MAX): a flooding peer or client cannot starve the others,
 *      and the sockets and /status are served between turns. A replica's link requests (and link
 *      replies the core refuses) are charged the loop time they take against a budget per peer
 *      (budget.ts; over it they are dropped); a client frame the core refuses as only a faulty client
 *      sends gets the client cut off (cutoff.ts: the owner's clientMisbehaved),
 *   3. `flush()`es the core and submits its Ready to the pipeline: the turn's writes go to the disk
 *      (src/node/disk.ts) in one synced batch together with those of the other turns waiting, and
 *      each message, reply and event leaves once the writes it depends on are durable
 *      (src/core/durability.ts states the rule).
 * Steps 1-3 are one synchronous computation, so only one turn runs at a time. While a synced write
 * is in flight, later turns are still computed with `pipelineTurns` (default; at most
 * PENDING_TURNS_MAX wait) and not at all without it. With `deferWrites` (default) a turn with
 * nothing waiting for the disk does not start a write: its writes join the next batch, which goes at
 * the latest with the first turn DEFERRED_WRITES_MS_MAX after them (a tick runs a turn every tickMs).
 *
 * An idle replica sleeps: when the core says its next ticks are quiet (Replica.quietTicks: nothing
 * waits on time but a timer some ticks away) and nothing waits for the disk, the timer wakes the loop
 * for the first tick that may act, at most CATCH_UP_TICKS_MAX ticks later, instead of every tickMs.
 * The ticks slept through run in the next turn, before its frames, as late ticks always do; the
 * simulator checks after every turn that a tick the core called quiet would have done nothing.
 *
 * An exception from the core (e.g. a broken invariant) or a failed write goes to the owner's `fatal`;
 * the owner then stops running, so no further turn is computed (and after a failed write nothing
 * more leaves: the pipeline stops).
 */
import type { Horizon } from '../core/horizon.ts';
import type { CoreEvent, Ready, Replica, Source } from '../core/replica.ts';
import type { Principal } from '../transport/types.ts';
import { DEFAULT_PIPELINE_OPTIONS, TurnPipeline, type PipelineDisk, type Sent, type SentReply } from './pipeline.ts';
import type { VerifyPool } from './verify-pool.ts';
import { LATE_TICKS_MAX } from '../core/timeout.ts';
import { clientFaultCounts, newClientFault } from './cutoff.ts';
import { isLinkRequest, isSignedFrame, PeerBudgets, refusalCount } from './budget.ts';

export const TICK_MS_DEFAULT = 10;
/** The loop sleeps through at most this many quiet ticks minus one (Replica.quietTicks), and runs them late. */
export const CATCH_UP_TICKS_MAX = 100;
/** Frames waiting for the loop, at most (bytes); above it, new frames are dropped and counted. */
export const INBOUND_QUEUE_BYTES_MAX = 256 * 1024 * 1024;
/** Frames waiting from one sender (a replica or a client), at most (bytes): a flooder fills its own share only. */
export const SOURCE_QUEUE_BYTES_MAX = 64 * 1024 * 1024;
/**
 * Frames one turn hands to the core, at most, taken round-robin across senders: a sender that
 * floods gets a turn's share like any other, and the rest wait for the next turn, which runs after
 * the event loop has served sockets and /status (each turn drained the whole queue before).
 */
export const TURN_FRAMES_MAX = 1_024;
/** Turns whose effects wait for the disk, at most; beyond it, frames wait in the inbound queue. */
export const PENDING_TURNS_MAX = DEFAULT_PIPELINE_OPTIONS.pendingTurnsMax;
/** Writes of turns that send nothing wait for a turn that does, at most this long (ms). */
export const DEFERRED_WRITES_MS_MAX = DEFAULT_PIPELINE_OPTIONS.deferredWritesMsMax;

/** The loop's owner (ReplicaNode). */
export interface TurnLoopHost {
  /** Frames are taken and turns computed only while this is true. */
  running(): boolean;
  /** Effects whose writes are durable, in turn order: messages, replies, then events. */
  perform(messages: Sent[], replies: SentReply[], events: CoreEvent[]): void;
  /**
   * A turn the core computed, before its effects wait for the disk: when the core decided what it
   * holds (its votes sent, a batch committed or executed). The metrics time the protocol's phases
   * here; an event is performed only once its turn's writes are durable, which a turn whose writes
   * are deferred (deferWrites) leaves to a later turn.
   */
  computed?(ready: Ready): void;
  /** The core threw or a write failed; running() is expected to turn false. */
  fatal(err: unknown): void;
  /**
   * A client sent a frame that only a faulty client sends (cutoff.ts, CLIENT_FAULTS): the owner
   * cuts it off. Its frames still queued are dropped, also those later in the same turn.
   */
  clientMisbehaved?(client: number, reason: string): void;
}

export interface TurnLoopOptions {
  tickMs: number;
  /** Clock in milliseconds (monotonic). */
  now: () => number;
  /** Wall clock in milliseconds since the Unix epoch: given to the core every turn, for batch times. */
  wallClockMs: () => number;
  pipelineTurns: boolean;
  deferWrites: boolean;
}

interface Queued {
  from: Source;
  frame: Uint8Array;
}

/** One sender's frames, in arrival order. */
interface SourceQueue {
  from: Source;
  frames: Uint8Array[];
  head: number;
  bytes: number;
}

export class TurnLoop {
  /** Turns run. */
  turns = 0;
  /** Frames dropped because the inbound queue was full. */
  inboundFramesDropped = 0;
  /** Link requests from replicas over their budget of loop time (budget.ts) are dropped: counted here. */
  readonly linkBudgets = new PeerBudgets();
  /**
   * Wall time (ms) from the end of a turn that left the replica's own checkpoint pending (computed
   * over turns, or its records found ahead of the certificate: Replica.checkpointPending) to the end
   * of the turn that finished it, and the batches executed meanwhile: what the checkpoint's work
   * costs the rest of the protocol shows as a lower rate of batches then (checkpointStats()).
   */
  private checkpointMs = 0;
  private checkpointBatches = 0;
  private checkpointSince: { at: number; batches: number } | undefined;
  /** Set by attach(), after recovery. */
  private replica: Replica | undefined;
  /** Frames waiting, per sender; `ready` lists the senders with frames, in round-robin order. */
  private readonly sources = new Map<string, SourceQueue>();
  private ready: SourceQueue[] = [];
  private queuedCount = 0;
  private queuedBytes = 0;
  private turnScheduled = false;
  /** Computed turns on their way to the disk and out (see pipeline.ts). */
  private pipeline: TurnPipeline;
  private lastTickAt = 0;
  /** Wakes the loop for the next tick due (armTick); `tickTimerAt` is when (options.now). */
  private tickTimer: ReturnType<typeof setTimeout> | undefined;
  private tickTimerAt = 0;
  private ticking = false;
  /** A turn is wanted though no frame waits and no tick is due (runTurnSoon). */
  private turnWanted = false;
  /** Wake-ups of the tick timer (status: an idle replica's should be few). */
  tickWakeups = 0;
  /**
   * The quiet ticks the core promised when the tick timer was last armed (Replica.quietTicks): the
   * next turn may run that many ticks late without any of them counting as lateness.
   */
  private quietPromised = 0;
  /**
   * Ticks not run because the turn came later than the quiet ticks allowed plus LATE_TICKS_MAX (a
   * long turn, a synced write that held the pipeline, a paused process): time the core did not see.
   */
  lateTicksDropped = 0;
  /** The turns that dropped ticks so. */
  lateTurns = 0;

  constructor(
    private readonly disk: PipelineDisk,
    private readonly host: TurnLoopHost,
    private readonly options: TurnLoopOptions,
  ) {
    this.pipeline = this.createPipeline(undefined);
  }

  /** The recovered core: its turns go to a new pipeline that starts from the horizon record on disk. */
  attach(replica: Replica, horizonOnDisk: Horizon | undefined): void {
    this.replica = replica;
    this.pipeline = this.createPipeline(horizonOnDisk);
  }

  private createPipeline(horizonOnDisk: Horizon | undefined): TurnPipeline {
    const o = this.options;
    return new TurnPipeline(
      this.disk,
      {
        release: (messages, replies, events) => this.host.perform(messages, replies, events),
        fatal: (err) => this.host.fatal(err),
        written: () => this.schedule(),
      },
      {
        ...DEFAULT_PIPELINE_OPTIONS,
        pipelineTurns: o.pipelineTurns,
        deferWrites: o.deferWrites,
        now: o.now,
        ...(horizonOnDisk !== undefined ? { horizonOnDisk } : {}),
      },
    );
  }

  /** Frames waiting for the next turn. */
  get queuedFrames(): number {
    return this.queuedCount;
  }

  /** True once a write failed (the pipeline stopped). */
  get failed(): boolean {
    return this.pipeline.stopped;
  }

  /** A frame for the core: queued for the next turn unless the queue is full. */
  enqueue(from: Principal, frame: Uint8Array): void {
    if (!this.host.running()) return;
    if (this.queuedBytes + frame.length > INBOUND_QUEUE_BYTES_MAX) {
      this.inboundFramesDropped++;
      return;
    }
    const key = `${from.kind}:${from.id}`;
    let q = this.sources.get(key);
    if (q === undefined) {
      q = { from: { kind: from.kind, id: from.id }, frames: [], head: 0, bytes: 0 };
      this.sources.set(key, q);
    }
    if (q.bytes + frame.length > SOURCE_QUEUE_BYTES_MAX) {
      this.inboundFramesDropped++;
      return;
    }
    if (q.frames.length === q.head) this.ready.push(q);
    q.frames.push(frame);
    q.bytes += frame.length;
    this.queuedCount++;
    this.queuedBytes += frame.length;
    this.schedule();
  }

  /** Up to TURN_FRAMES_MAX frames, one per sender at a time, round-robin. */
  private takeFrames(): Queued[] {
    const out: Queued[] = [];
    while (out.length < TURN_FRAMES_MAX && this.ready.length > 0) {
      const next: SourceQueue[] = [];
      for (const q of this.ready) {
        if (out.length >= TURN_FRAMES_MAX) {
          next.push(q);
          continue;
        }
        const frame = q.frames[q.head]!;
        q.frames[q.head] = undefined as unknown as Uint8Array; // release the reference
        q.head++;
        q.bytes -= frame.length;
        this.queuedCount--;
        this.queuedBytes -= frame.length;
        out.push({ from: q.from, frame });
        if (q.head < q.frames.length) next.push(q);
        else {
          q.frames = [];
          q.head = 0;
        }
      }
      this.ready = next;
    }
    return out;
  }

  /**
   * The transport's frame handler: enqueue(), or, with a verify pool, the pool first (it calls
   * enqueue() once the frame's signatures were checked); the queue and the pool share the bound.
   */
  frameHandler(pool: VerifyPool | undefined): (from: Principal, frame: Uint8Array) => void {
    if (pool === undefined) return (from, frame) => this.enqueue(from, frame);
    return (from, frame) => {
      if (!this.host.running()) return;
      if (this.queuedBytes + pool.pendingBytes + frame.length > INBOUND_QUEUE_BYTES_MAX) {
        this.inboundFramesDropped++;
        return;
      }
      pool.submit(from, frame);
    };
  }

  /** Runs the first turn now (it persists what recovery produced); resolves once it is written and its effects performed. */
  runFirstTurn(): Promise<void> {
    this.lastTickAt = this.options.now();
    this.computeTurn();
    return this.drain();
  }

  /** From now on a timer schedules a turn for each tick due (past the ticks the core says are quiet). */
  startTicking(): void {
    this.ticking = true;
    this.armTick(false);
  }

  stopTicking(): void {
    this.ticking = false;
    if (this.tickTimer !== undefined) clearTimeout(this.tickTimer);
    this.tickTimer = undefined;
  }

  /** A turn soon, though no frame waits and no tick is due: the owner queued effects in the core between turns. */
  runTurnSoon(): void {
    this.turnWanted = true;
    this.schedule();
  }

  /**
   * Ticks the loop may sleep through: those the core says are quiet, when nothing waits for the disk
   * either (deferred writes, the horizon's lazy refresh: both go with a later turn), at most
   * CATCH_UP_TICKS_MAX - 1 (the loop wakes at least every CATCH_UP_TICKS_MAX ticks).
   */
  private quietTicks(): number {
    const replica = this.replica;
    if (replica === undefined || !this.pipeline.settled) return 0;
    return Math.min(replica.quietTicks(), CATCH_UP_TICKS_MAX - 1);
  }

  /**
   * Arms the tick timer for the next tick due: the first tick after the quiet ones. An earlier
   * wake-up already armed stays (when it comes, the turn or the retry arms the next). `retry`: the
   * timer came and no turn could run (the pipeline had no room: a finished write schedules one):
   * look again a tick later rather than at once.
   */
  private armTick(retry: boolean): void {
    if (!this.ticking) return;
    const { now, tickMs } = this.options;
    const quiet = this.quietTicks();
    this.quietPromised = quiet;
    const due = this.lastTickAt + (1 + quiet) * tickMs;
    if (this.tickTimer !== undefined) {
      if (this.tickTimerAt <= due) return;
      clearTimeout(this.tickTimer);
    }
    const wait = due - now();
    this.tickTimerAt = due;
    this.tickTimer = setTimeout(() => this.onTickTimer(), wait > 0 ? Math.ceil(wait) : retry ? tickMs : 0);
  }

  private onTickTimer(): void {
    this.tickTimer = undefined;
    this.tickWakeups++;
    this.schedule();
    // (A scheduled turn arms the timer when it ends.)
    if (!this.turnScheduled) this.armTick(true);
  }

  /** Resolves once every computed turn is written and its effects performed (or the pipeline failed). */
  drain(): Promise<void> {
    return new Promise((resolve) => this.pipeline.drain(resolve));
  }

  /** After drain(), with no turn computed since: the clean stop's horizon record (TurnPipeline.markClean). */
  markClean(token: number): Promise<void> {
    return new Promise((resolve, reject) => this.pipeline.markClean(token, (err) => (err === undefined ? resolve() : reject(err instanceof Error ? err : new Error(String(err))))));
  }

  /** Forgets the frames waiting from one sender. */
  dropSource(from: Source): void {
    const key = `${from.kind}:${from.id}`;
    const q = this.sources.get(key);
    if (q === undefined) return;
    for (let i = q.head; i < q.frames.length; i++) {
      this.queuedCount--;
      this.queuedBytes -= q.frames[i]!.length;
    }
    this.sources.delete(key);
    this.ready = this.ready.filter((r) => r !== q);
  }

  /** Forgets the frames waiting (the owner stopped). */
  clearQueue(): void {
    this.sources.clear();
    this.ready = [];
    this.queuedCount = 0;
    this.queuedBytes = 0;
  }

  private tickDue(): boolean {
    return this.options.now() - this.lastTickAt >= this.options.tickMs;
  }

  /**
   * Runs a turn soon, unless one is scheduled. While a synced write is in flight, a turn runs only
   * with pipelining on and fewer than PENDING_TURNS_MAX turns waiting (a finished write reschedules).
   */
  private schedule(): void {
    if (!this.host.running() || this.turnScheduled) return;
    // (A checkpoint computed over several turns takes a share of every turn: the next one runs now.)
    if (this.queuedCount === 0 && !this.turnWanted && !this.tickDue() && this.replica?.checkpointPending !== true) return;
    if (!this.pipeline.canCompute) return;
    this.turnScheduled = true;
    setImmediate(() => {
      this.turnScheduled = false;
      if (!this.host.running()) return;
      this.turnWanted = false;
      this.computeTurn();
      this.schedule();
      if (!this.turnScheduled) this.armTick(false);
    });
  }

  /**
   * One turn of the protocol, synchronous: every queued frame to the core, the ticks due, then
   * flush(); the Ready goes to the pipeline. Every turn (also an empty tick, every tickMs) lets
   * deferred writes go once they waited DEFERRED_WRITES_MS_MAX.
   */
  private computeTurn(): void {
    let ready: Ready;
    try {
      ready = this.stepCore();
    } catch (err) {
      this.host.fatal(err);
      return;
    }
    this.host.computed?.(ready);
    this.pipeline.submit(ready);
    this.noteCheckpoint();
  }

  private noteCheckpoint(): void {
    const replica = this.replica!;
    const pending = replica.checkpointPending === true;
    if (pending === (this.checkpointSince !== undefined)) return;
    const at = this.options.now();
    const batches = replica.counters.batchesExecuted;
    if (pending) {
      this.checkpointSince = { at, batches };
      return;
    }
    this.checkpointMs += at - this.checkpointSince!.at;
    this.checkpointBatches += batches - this.checkpointSince!.batches;
    this.checkpointSince = undefined;
  }

  /** Time with the replica's own checkpoint pending (ms, the one in progress included) and the batches executed then. */
  checkpointStats(): { ms: number; batches: number } {
    const since = this.checkpointSince;
    if (since === undefined || this.replica === undefined) return { ms: this.checkpointMs, batches: this.checkpointBatches };
    return { ms: this.checkpointMs + this.options.now() - since.at, batches: this.checkpointBatches + this.replica.counters.batchesExecuted - since.batches };
  }

  private stepCore(): Ready {
    const replica = this.replica!;
    this.turns++;
    // Time first, then the frames: frames that waited while the process could not run (a pause, a
    // long turn, a restart) arrive at the end of the missed time, so a request seen only now does not
    // find its timer already expired by the ticks of that same turn.
    const { now, tickMs } = this.options;
    // The wall clock, the only clock the core sees (the primary's batch times, the backups' bounds).
    replica.setClockMs(Math.max(0, Math.floor(this.options.wallClockMs())));
    const elapsed = now() - this.lastTickAt;
    let ticks = Math.floor(elapsed / tickMs);
    // The ticks the loop slept through on the core's word, and at most LATE_TICKS_MAX more: the
    // rest of the time since the last tick was this process's own stall (core/timeout.ts).
    const allowed = this.quietPromised + LATE_TICKS_MAX;
    this.quietPromised = 0;
    if (ticks > allowed) {
      this.lateTicksDropped += ticks - allowed;
      this.lateTurns++;
      ticks = allowed;
      this.lastTickAt = now();
    } else {
      this.lastTickAt += ticks * tickMs;
    }
    for (let i = 0; i < ticks; i++) replica.tick();

    let faulty: Set<number> | undefined;
    for (const f of this.takeFrames()) {
      if (f.from.kind === 'replica') {
        if (isSignedFrame(f.frame)) {
          replica.receive(f.from, f.frame);
          continue;
        }
        // Link messages: a request, or a reply the core refuses (nobody asked for it, or it is
        // invalid), is charged to the sender's budget of loop time (budget.ts).
        const start = now();
        if (!this.linkBudgets.allows(f.from.id, start)) continue;
        const request = isLinkRequest(f.frame);
        const refusals = request ? 0 : refusalCount(replica);
        replica.receive(f.from, f.frame);
        if (request || refusalCount(replica) !== refusals) this.linkBudgets.charge(f.from.id, now() - start, start);
        continue;
      }
      if (this.host.clientMisbehaved === undefined) {
        replica.receive(f.from, f.frame);
        continue;
      }
      if (faulty?.has(f.from.id)) continue;
      const before = clientFaultCounts(replica.rejected);
      replica.receive(f.from, f.frame);
      const fault = newClientFault(before, replica.rejected);
      if (fault === undefined) continue;
      (faulty ??= new Set()).add(f.from.id);
      this.dropSource(f.from);
      this.host.clientMisbehaved(f.from.id, fault);
    }
    return replica.flush();
  }
}
