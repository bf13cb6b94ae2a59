/**
 * The turn pipeline: compute -> write -> send. The one implementation of the order in which a
 * replica's effects reach its disk and the network, run by ReplicaNode (over RocksDB and WebSockets)
 * and by the simulator (over its simulated disk and network, crashing replicas at every point of it).
 *
 *   submit(ready)   a computed turn (the core's Ready) joins the pipeline. Effects whose dependencies
 *                   are already durable leave at once; the others wait (src/core/durability.ts says
 *                   what each one depends on: `after`).
 *   writing         the writes of every turn not yet written go to the disk in ONE batch (synced,
 *                   all or nothing); a batch ends with the first turn that has range clears, which run
 *                   after exactly the writes before them. One batch is in flight at a time; while it
 *                   is, later turns may be computed (`pipelineTurns`), at most `pendingTurnsMax`.
 *   releasing       when a batch is durable, every waiting effect whose `after` is now durable leaves,
 *                   in the order the turns were submitted (events after messages and replies).
 *   deferring       a turn with nothing waiting for the disk (`deferWrites`) does not start a write:
 *                   its writes join the next batch, at most `deferredWritesMsMax` later. Losing them in
 *                   a crash is the same as never having received the frames that caused them.
 *   horizon         the replica's horizon record (src/core/horizon.ts) is rewritten after a batch and
 *                   before its effects leave whenever a turn's view or stable checkpoint moved past
 *                   the record; its `executed` field is refreshed at most every HORIZON_LAZY_MS,
 *                   with a batch or on its own when nothing else is written.
 *   failing         a failed write is fatal: nothing leaves after it, and the pipeline stops.
 *
 * No timers and no promises: the disk calls back, and the owner calls kick() on its clock (every
 * loop turn in the shell, every step in the simulator), so the simulator drives it deterministically.
 */
import { advance, encodeCleanToken, encodeHorizon, HORIZON_LAZY_MS, mustPrecede, type Horizon } from '../core/horizon.ts';
import { KEYS } from '../core/persist.ts';
import type { CoreEvent, Ready } from '../core/replica.ts';
import type { KeyRange, WriteOp } from '../storage/types.ts';

/** A frame for a replica, as it leaves. */
export interface Sent {
  to: number;
  frame: Uint8Array;
}

/** A frame for a client, as it leaves. */
export interface SentReply {
  client: number;
  frame: Uint8Array;
  /** The sequence number whose execution produced the result (for checkers). */
  seq: number;
}

export interface PipelineDisk {
  /**
   * Makes `ops` durable in one synced batch (all or nothing), then deletes the `clears` ranges, then
   * (when given) replaces the horizon record durably; calls `done()` once all are done, or
   * `done(err)` if any failed. Called with one batch at a time.
   */
  write(ops: WriteOp[], clears: KeyRange[], horizon: Uint8Array | undefined, done: (err?: unknown) => void): void;
}

export interface PipelineOutput {
  /** Effects whose writes are durable, in submission order. */
  release(messages: Sent[], replies: SentReply[], events: CoreEvent[]): void;
  /** A write failed; the pipeline has stopped. */
  fatal(err: unknown): void;
  /** A batch became durable (the owner may compute turns again). */
  written?(): void;
}

export interface PipelineOptions {
  /** Compute later turns while a batch is in flight (default true). */
  pipelineTurns: boolean;
  /** Turns with nothing waiting for the disk do not start a write (default true). */
  deferWrites: boolean;
  deferredWritesMsMax: number;
  pendingTurnsMax: number;
  /** Clock in milliseconds (the simulator's is ticks x tick length). */
  now(): number;
  /** The horizon record on disk when the pipeline starts (undefined: none). */
  horizonOnDisk?: Horizon;
  /**
   * Turns with more writes than this join a merged batch without a lookup per key (mergeWrites;
   * default MERGE_LOOKUP_OPS_MAX). The simulator sets it low, so that both ways are attacked.
   */
  mergeLookupOpsMax?: number;
}

export const DEFAULT_PIPELINE_OPTIONS = {
  pipelineTurns: true,
  deferWrites: true,
  deferredWritesMsMax: 50,
  pendingTurnsMax: 8,
} as const;

interface PendingTurn {
  index: number;
  writes: WriteOp[];
  clears: KeyRange[];
  at: number;
  horizon: Horizon;
}

type Waiting =
  | { after: number; kind: 'message'; value: Sent }
  | { after: number; kind: 'reply'; value: SentReply }
  | { after: number; kind: 'event'; value: CoreEvent };

/**
 * A turn with more writes than this goes into a merged batch as it is, without a lookup per key
 * (mergeWrites).
 */
export const MERGE_LOOKUP_OPS_MAX = 4096;

/**
 * The writes of several turns as one batch. Storage.write applies a batch's ops in order, so the
 * turns' ops one after the other already leave what writing the turns one by one would. An op that
 * a later op of the batch on the same key replaces is dropped, to keep the batch small (turns rewrite
 * their slot records): dropping any op that a later op on its key follows never changes what the
 * batch leaves, whatever lies between them. Only the ops of turns of at most `lookupOpsMax` writes
 * are looked up and may be dropped; a larger turn's ops pass as they are. A stable checkpoint's turn
 * after a bulk load writes hundreds of thousands of partition records, and hashing every key into one
 * map held a replica's loop for up to a second in the 10M-key bench's profile.
 */
export function mergeWrites(turns: ReadonlyArray<{ readonly writes: WriteOp[] }>, lookupOpsMax = MERGE_LOOKUP_OPS_MAX): WriteOp[] {
  if (turns.length === 1) return turns[0]!.writes;
  const last = new Map<string, WriteOp>();
  for (const t of turns) {
    if (t.writes.length > lookupOpsMax) continue;
    for (const op of t.writes) last.set(op.key, op);
  }
  const out: WriteOp[] = [];
  for (const t of turns) {
    if (t.writes.length > lookupOpsMax) {
      for (const op of t.writes) out.push(op);
      continue;
    }
    for (const op of t.writes) if (last.get(op.key) === op) out.push(op);
  }
  return out;
}

export class TurnPipeline {
  /** Highest Ready index submitted. */
  private submitted = 0;
  /** Every Ready up to this index has its writes durable. */
  private durableThrough = 0;
  /** Turns with writes or clears not yet handed to the disk, oldest first. */
  private pending: PendingTurn[] = [];
  private inFlight = false;
  private waiting: Waiting[] = [];
  private draining: Array<() => void> = [];
  private failed = false;
  /** Batches written (synced). */
  batches = 0;
  /** The horizon record on disk, and the one of the latest durable turn. */
  private horizonOnDisk: Horizon | undefined;
  private horizonWrittenAt = -Infinity;
  private latestDurableHorizon: Horizon | undefined;
  /** The horizon being written with the batch in flight, and the horizon after that batch. */
  private horizonInFlight: Horizon | undefined;
  private groupHorizon: Horizon | undefined;
  private latestSubmittedHorizon: Horizon | undefined;
  /** After markClean: nothing more is taken or written. */
  private closed = false;

  constructor(
    private readonly disk: PipelineDisk,
    private readonly output: PipelineOutput,
    private readonly options: PipelineOptions,
  ) {
    this.horizonOnDisk = options.horizonOnDisk;
  }

  /** The horizon record as last written (tests, status). */
  get horizon(): Horizon | undefined {
    return this.horizonOnDisk;
  }

  /** Every Ready up to this index is durable. */
  get durable(): number {
    return this.durableThrough;
  }

  /** False while the owner should not compute another turn (a batch in flight and no room). */
  get canCompute(): boolean {
    if (this.failed || this.closed) return false;
    if (!this.inFlight) return true;
    return this.options.pipelineTurns && this.pending.length < this.options.pendingTurnsMax;
  }

  /** Nothing waits to be written. */
  get idle(): boolean {
    return !this.inFlight && this.pending.length === 0;
  }

  /**
   * Nothing will be due by time alone: no write pending or in flight, and the horizon's `executed`
   * needs no lazy refresh (kick() would start none). The loop may sleep through quiet ticks then.
   */
  get settled(): boolean {
    const h = this.latestDurableHorizon;
    return this.idle && (h === undefined || !this.executedAhead(h));
  }

  /** Turns whose writes are not yet durable (pending or in flight). */
  get undurableTurns(): number {
    return this.submitted - this.durableThrough;
  }

  get writing(): boolean {
    return this.inFlight;
  }

  get stopped(): boolean {
    return this.failed;
  }

  submit(ready: Ready): void {
    if (this.failed || this.closed) return;
    if (ready.index !== this.submitted + 1) throw new Error(`turn ${ready.index} submitted after turn ${this.submitted}`);
    this.submitted = ready.index;
    this.latestSubmittedHorizon = ready.horizon;
    if (ready.writes.length > 0 || ready.clears.length > 0 || mustPrecede(this.horizonOnDisk, ready.horizon)) {
      this.pending.push({ index: ready.index, writes: ready.writes, clears: ready.clears, at: this.options.now(), horizon: ready.horizon });
    } else if (!this.inFlight && this.pending.length === 0) {
      this.durableThrough = ready.index;
      this.latestDurableHorizon = ready.horizon;
    }
    const now: { messages: Sent[]; replies: SentReply[]; events: CoreEvent[] } = { messages: [], replies: [], events: [] };
    for (const m of ready.messages) {
      const value = { to: m.to, frame: m.frame };
      if (m.after <= this.durableThrough) now.messages.push(value);
      else this.waiting.push({ after: m.after, kind: 'message', value });
    }
    for (const r of ready.replies) {
      const value = { client: r.client, frame: r.frame, seq: r.seq };
      if (r.after <= this.durableThrough) now.replies.push(value);
      else this.waiting.push({ after: r.after, kind: 'reply', value });
    }
    for (const e of ready.events) {
      if (ready.index <= this.durableThrough) now.events.push(e);
      else this.waiting.push({ after: ready.index, kind: 'event', value: e });
    }
    if (now.messages.length > 0 || now.replies.length > 0 || now.events.length > 0) this.output.release(now.messages, now.replies, now.events);
    this.kick();
  }

  /**
   * Starts a write when one is due: something waits for the disk, deferred writes waited long
   * enough, deferring is off, or the pipeline is draining. Call on every turn and clock tick.
   */
  kick(): void {
    if (this.failed || this.inFlight || this.closed) return;
    if (this.pending.length === 0) return this.refreshHorizon();
    const due =
      this.draining.length > 0 ||
      !this.options.deferWrites ||
      this.options.now() - this.pending[0]!.at >= this.options.deferredWritesMsMax ||
      this.waiting.some((w) => w.kind !== 'event' && w.after > this.durableThrough);
    if (!due) return;
    let end = this.pending.findIndex((t) => t.clears.length > 0);
    end = end < 0 ? this.pending.length : end + 1;
    const group = this.pending.splice(0, end);
    const clears = group.flatMap((t) => t.clears);
    // The horizon after the group: written with it when an upper bound moved (or lazily, when due).
    const last = group[group.length - 1]!.horizon;
    const horizon = group.some((t) => mustPrecede(this.horizonOnDisk, t.horizon)) || this.lazyHorizonDue(last) ? last : undefined;
    this.write(mergeWrites(group, this.options.mergeLookupOpsMax), clears, horizon, last);
  }

  private write(ops: WriteOp[], clears: KeyRange[], next: Horizon | undefined, after: Horizon): void {
    const horizon = next === undefined ? undefined : advance(this.horizonOnDisk, next);
    this.inFlight = true;
    this.horizonInFlight = horizon;
    this.groupHorizon = after;
    this.disk.write(ops, clears, horizon === undefined ? undefined : encodeHorizon(horizon), (err) => this.onWritten(err));
  }

  private lazyHorizonDue(h: Horizon): boolean {
    return this.executedAhead(h) && this.options.now() - this.horizonWrittenAt >= HORIZON_LAZY_MS;
  }

  /** `h` executed past the horizon record on disk: its `executed` is refreshed lazily (lazyHorizonDue). */
  private executedAhead(h: Horizon): boolean {
    const onDisk = this.horizonOnDisk;
    return onDisk !== undefined && h.executed > onDisk.executed;
  }

  /** Nothing else to write: refresh the horizon's `executed` on its own when due. */
  private refreshHorizon(): void {
    const h = this.latestDurableHorizon;
    if (h !== undefined && this.lazyHorizonDue(h)) this.write([], [], h, h);
  }

  /**
   * A clean stop's last write, once drain() finished: the horizon record marked clean (horizon.ts):
   * every turn submitted is durable, so every message released was on disk before it left. The
   * pipeline takes no turn and writes nothing after it. `done(err)` when the record is durable or
   * the write failed; an error and no write when the pipeline failed or turns are still undurable.
   */
  markClean(token: number, done: (err?: unknown) => void): void {
    if (this.failed) return done(new Error('the pipeline failed: not a clean stop'));
    if (!this.idle || this.durableThrough !== this.submitted) return done(new Error('turns are not yet durable: drain first'));
    if (!Number.isSafeInteger(token) || token < 1) return done(new Error(`clean stop token ${token} is not a positive integer`));
    const latest = this.latestDurableHorizon ?? this.horizonOnDisk;
    this.closed = true;
    if (latest === undefined) return done(); // no turn and no record: the next start has nothing to abstain from
    const clean: Horizon = { ...advance(this.horizonOnDisk, latest), clean: token };
    this.inFlight = true;
    // The token into the database (synced), then the record naming it (recovery.ts honours the record
    // only with a database that holds the token).
    this.disk.write([{ type: 'put', key: KEYS.cleanStop, value: encodeCleanToken(token) }], [], encodeHorizon(clean), (err) => {
      this.inFlight = false;
      if (err === undefined) this.horizonOnDisk = clean;
      done(err);
    });
  }

  /** Writes everything pending (deferred turns too); `done` runs once nothing is left or the pipeline failed. */
  drain(done: () => void): void {
    if (this.failed || this.idle) return done();
    this.draining.push(done);
    this.kick();
  }

  private onWritten(err: unknown): void {
    this.inFlight = false;
    if (err !== undefined) {
      this.failed = true;
      this.pending = [];
      this.waiting = [];
      const draining = this.draining;
      this.draining = [];
      this.output.fatal(err);
      for (const d of draining) d();
      return;
    }
    this.batches++;
    if (this.horizonInFlight !== undefined) {
      this.horizonOnDisk = this.horizonInFlight;
      this.horizonWrittenAt = this.options.now();
      this.horizonInFlight = undefined;
    }
    this.durableThrough = this.pending.length > 0 ? this.pending[0]!.index - 1 : this.submitted;
    this.latestDurableHorizon = this.pending.length > 0 ? this.groupHorizon : this.latestSubmittedHorizon;
    this.release();
    this.output.written?.();
    if (this.failed) return;
    if (this.idle && this.draining.length > 0) {
      const draining = this.draining;
      this.draining = [];
      for (const d of draining) d();
      return;
    }
    this.kick();
  }

  private release(): void {
    if (this.waiting.length === 0) return;
    const messages: Sent[] = [];
    const replies: SentReply[] = [];
    const events: CoreEvent[] = [];
    const rest: Waiting[] = [];
    for (const w of this.waiting) {
      if (w.after > this.durableThrough) rest.push(w);
      else if (w.kind === 'message') messages.push(w.value);
      else if (w.kind === 'reply') replies.push(w.value);
      else events.push(w.value);
    }
    this.waiting = rest;
    if (messages.length > 0 || replies.length > 0 || events.length > 0) this.output.release(messages, replies, events);
  }
}
