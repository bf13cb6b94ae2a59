/**
 * A simulated disk: what is durable, and the one batch being written.
 *
 * The turn pipeline (src/node/pipeline.ts) hands it one batch at a time; the batch becomes durable
 * only when its simulated sync completes (`dueAt`, a tick the cluster draws), all or nothing. A crash
 * loses the batch in flight, or (a crash during the write) applies it whole. Range clears run with
 * the batch, after its writes, as RocksStorage runs them.
 *
 * For the durability checker it answers whether the durable record where the core keeps a signed
 * message holds it, at the moment the message leaves.
 */
import { toHex } from '../core/auth.ts';
import type { SlotRecord } from '../core/persist.ts';
import { decodeCheckpointCert, decodeSlot, decodeViewState, KEYS } from '../core/persist.ts';
import type { ReadMsg, ReadReplyMsg, RefusalMsg, SuspectMsg, ReplyBatchMsg, ReplyMsg, RequestMsg, Signed, SignedMessage } from '../core/messages.ts';
import type { KeyRange, WriteOp } from '../storage/types.ts';

export interface DiskWrite {
  ops: WriteOp[];
  clears: KeyRange[];
  /** The horizon record, replaced after the batch (when given). */
  horizon: Uint8Array | undefined;
  done: (err?: unknown) => void;
  dueAt: number;
}

export class SimDisk {
  readonly data = new Map<string, Uint8Array>();
  /** The batch being written, if any. */
  inFlight?: DiskWrite;
  /** A separate durable record that survives damage to `data` (the replica's signing horizon). */
  horizon?: Uint8Array;
  /** Sequence number of the stable checkpoint certificate on disk, and the view record's view. */
  stableSeq = 0;
  view = 0;
  /** Whether the view record says the replica was still changing to `view` (not entered). */
  viewChanging = false;
  batchesWritten = 0;
  constructor(readonly owner = -1) {}

  write(w: DiskWrite): void {
    if (this.inFlight) throw new Error('two batches in flight on one disk');
    this.inFlight = w;
  }

  /** The batch in flight lands (durable) and its writer hears of it. */
  complete(): void {
    const w = this.inFlight;
    if (!w) return;
    this.inFlight = undefined;
    this.land(w);
    w.done();
  }

  /** The process dies: the batch in flight lands whole (`landed`) or not at all; nobody hears of it. */
  crash(landed: boolean): void {
    const w = this.inFlight;
    this.inFlight = undefined;
    if (w && landed) this.land(w);
  }

  /** The batch in flight becomes durable, and the horizon record written after it. */
  land(w: DiskWrite): void {
    this.apply(w.ops, w.clears);
    if (w.horizon !== undefined) this.horizon = w.horizon;
  }

  apply(writes: WriteOp[], clears: KeyRange[]): void {
    this.batchesWritten++;
    for (const w of writes) {
      if (w.type === 'put') {
        this.data.set(w.key, w.value);
        this.index(w.key, w.value);
      } else this.data.delete(w.key);
    }
    for (const range of clears) {
      for (const key of [...this.data.keys()]) {
        if ((range.gte === undefined || key >= range.gte) && (range.lt === undefined || key < range.lt)) this.data.delete(key);
      }
    }
  }

  /** Forgets everything (a new machine, or a lost data directory), the horizon record too. */
  wipe(): void {
    this.inFlight = undefined;
    this.data.clear();
    this.stableSeq = 0;
    this.view = 0;
    this.viewChanging = false;
    this.horizon = undefined;
  }

  /** Replaces the records (not the horizon) with an older image: a truncated log, a restored backup. */
  revertTo(image: Map<string, Uint8Array>): void {
    this.inFlight = undefined;
    this.data.clear();
    this.stableSeq = 0;
    this.view = 0;
    this.viewChanging = false;
    for (const [k, v] of image) {
      this.data.set(k, v);
      this.index(k, v);
    }
  }

  image(): Map<string, Uint8Array> {
    return new Map(this.data);
  }

  entries(): Array<[string, Uint8Array]> {
    return [...this.data.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  }

  /**
   * Digests this replica durably stands behind at `seq`: of its own COMMIT, and of its prepared
   * certificate (what its VIEW-CHANGEs will carry).
   */
  preparedAt(seq: number): string[] {
    const record = this.data.get(KEYS.slot(seq));
    if (!record) return [];
    let slot = this.decoded.get(record);
    if (!slot) {
      const r = decodeSlot(record);
      if (!r.ok) return [];
      slot = r.value;
      this.decoded.set(record, slot);
    }
    const out: string[] = [];
    for (const c of slot.commits) if (c.msg.replica === this.owner) out.push(toHex(c.msg.digest));
    if (slot.cert) out.push(toHex(slot.cert.prePrepare.msg.digest));
    return out;
  }

  private readonly decoded = new WeakMap<Uint8Array, SlotRecord>();

  /**
   * The PRE-PREPAREs, PREPAREs and COMMITs of this replica that its log slot records hold (votes and
   * prepared certificates), as "type:view:seq:digest": what it may resend after a restart.
   */
  ownVotes(): Set<string> {
    const out = new Set<string>();
    for (const [key, record] of this.data) {
      if (!key.startsWith(KEYS.logPrefix) || !key.endsWith('/s')) continue;
      const r = decodeSlot(record);
      if (!r.ok) continue;
      const votes = [r.value.prePrepare, ...r.value.prepares, ...r.value.commits, r.value.cert?.prePrepare, ...(r.value.cert?.prepares ?? [])];
      for (const v of votes) {
        if (v && v.msg.replica === this.owner) out.add(`${v.msg.type}:${v.msg.view}:${v.msg.seq}:${toHex(v.msg.digest)}`);
      }
    }
    return out;
  }

  /** True when the durable record where the core keeps this signed message of the replica holds it. */
  holds(signed: Signed<Exclude<SignedMessage, RequestMsg | ReplyMsg | ReplyBatchMsg | RefusalMsg | SuspectMsg | ReadMsg | ReadReplyMsg>>): boolean {
    const m = signed.msg;
    let key: string;
    switch (m.type) {
      case 'preprepare':
      case 'prepare':
      case 'commit':
        key = KEYS.slot(m.seq);
        break;
      case 'checkpoint':
        key = KEYS.checkpointVote(m.seq, m.replica);
        break;
      case 'viewchange':
        key = KEYS.viewChange(m.view);
        break;
      case 'newview':
        key = KEYS.newView;
        break;
    }
    const record = this.data.get(key);
    return record !== undefined && Buffer.from(record.buffer, record.byteOffset, record.byteLength).indexOf(signed.sig) >= 0;
  }

  private index(key: string, value: Uint8Array): void {
    if (key === KEYS.stable) {
      const c = decodeCheckpointCert(value);
      if (c.ok) this.stableSeq = c.value.seq;
    } else if (key === KEYS.view) {
      const v = decodeViewState(value);
      if (v.ok) {
        this.view = v.value.view;
        this.viewChanging = v.value.viewChanging;
      }
    }
  }
}
