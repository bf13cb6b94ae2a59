/**
 * The PBFT replica as a pure state machine: no I/O, clocks or randomness.
 *
 *   receive(from, bytes)   a frame from an authenticated link (replica or client)
 *   tick()                 time passes (the shell maps a tick to 10 ms)
 *   setClockMs(ms)         the wall clock, for batch times (the shell gives it every turn)
 *   flush() -> Ready       a share of a checkpoint being computed (checkpointPending), then the
 *                          effects of everything since the last flush: `writes` (one synced batch,
 *                          all or nothing), then `clears`; messages, replies and events, each sent
 *                          once the writes it depends on are durable (`after`: see durability.ts,
 *                          the one place that states what must be on disk before what leaves)
 *   recover(records)       rebuild from what an earlier incarnation wrote (before any other call)
 *
 * Castro & Liskov, "Practical Byzantine Fault Tolerance" (OSDI 1999) and TOCS 2002, with signatures.
 * This class is the dispatcher: it routes each input to the concern that handles it and wires the
 * concerns to each other (the hooks). The rules live in one module per concern:
 *   state.ts          the state, the log and its window, the effects of a turn
 *   normal.ts         requests, batching, pre-prepare / prepare / commit, execution, replies
 *   checkpoints.ts    checkpoints, stability, log truncation
 *   viewchange.ts     VIEW-CHANGE / NEW-VIEW handling (newview.ts: the pure checks and computation)
 *   fetch.ts          retransmission, fetching committed entries and batches
 *   statetransfer.ts  state transfer of differing partitions
 *   recovery.ts       restart from stored records, the horizon check
 *   reads.ts          read-only requests: answered unordered once the replica executed what it prepared
 *   quorum.ts         every vote threshold and certificate rule
 */
import { toHex } from './auth.ts';
import type { CheckpointMsg, CommitMsg, LinkMessage, NewViewMsg, PrePrepareMsg, PrepareMsg, ReadMsg, RequestMsg, Signed, SuspectMsg, ViewChangeMsg } from './messages.ts';
import { KEYS, encodeSlot } from './persist.ts';
import { ReplicaState, slotRecord, assertNever, type Slot } from './state.ts';
import type { Batch } from './batch.ts';
import type { CheckpointCert } from './messages.ts';
import { ProtocolInvariantError, type Source, type Ready, type ReplicaStatus } from './types.ts';
import { UNKNOWN_EPOCH, type CheckpointSnapshot } from './state.ts';
import type { ClientInfo, ReplicaInfo } from './cluster.ts';
import type { VoteEvidence } from './evidence.ts';
import type { EpochProof } from './messages.ts';

export { ProtocolInvariantError } from './types.ts';
export type { CoreEvent, ExecutedRequest, OutMessage, OutReply, Ready, ReplicaDeps, ReplicaStatus, Source } from './types.ts';
import * as normal from './normal.ts';
import * as checkpoints from './checkpoints.ts';
import * as viewchange from './viewchange.ts';
import * as fetch from './fetch.ts';
import * as statetransfer from './statetransfer.ts';
import * as recovery from './recovery.ts';
import * as reads from './reads.ts';

export class Replica extends ReplicaState {
  /** A frame from an authenticated link. Never throws on peer input. */
  receive(from: Source, bytes: Uint8Array): void {
    if (bytes.length > this.opts.frameBytesMax) return this.reject('oversized-frame');
    const decoded = this.frames.decodeFrame(bytes);
    if (!decoded.ok) return this.reject('malformed');
    const frame = decoded.value;
    if (frame.kind === 'link') {
      // A client following the membership asks for the proofs of the configurations it has not seen.
      // (So does a replica that joins and is not known yet: it follows the configurations too.)
      if (frame.msg.type === 'epochsreq' && !(from.kind === 'replica' && this.isKnownReplica(from.id))) {
        // At most one answer per asker per retransmit period: nobody can make us send proofs in a
        // loop (they are the same from any replica, and the asker asks again when it retransmits).
        const key = from.kind === 'client' ? from.id : -1 - from.id;
        const last = this.epochsAnsweredAt.get(key);
        if (last !== undefined && this.now - last < this.opts.retransmitTicks) return this.reject('duplicate');
        if (this.epochsAnsweredAt.size >= 100_000) this.epochsAnsweredAt.clear();
        this.epochsAnsweredAt.set(key, this.now);
        return this.serveEpochs(from.kind === 'client' ? { client: from.id } : { replica: from.id }, frame.msg.epoch);
      }
      // Members, and replicas of the next configuration (joining: they catch up before they vote).
      if (from.kind !== 'replica' || from.id === this.id || !this.isKnownReplica(from.id)) return this.reject('link-from-non-replica');
      return this.onLink(from.id, frame.msg);
    }
    if (frame.kind === 'reply') return this.reject('unexpected-reply');
    const signed = frame.signed;
    const msg = signed.msg;
    if (msg.type === 'request') return normal.onRequest(this, signed as Signed<RequestMsg>, from);
    if (msg.type === 'read') return reads.onRead(this, signed as Signed<ReadMsg>, from);
    if (from.kind !== 'replica' || from.id === this.id || !this.isMember(from.id)) return this.reject('protocol-message-from-non-replica');
    // Replica messages come from their signer, except a NEW-VIEW relayed to a replica that missed it.
    if (msg.type !== 'newview' && msg.replica !== from.id) return this.reject('sender-mismatch');
    switch (msg.type) {
      case 'preprepare':
        return normal.onPrePrepare(this, signed as Signed<PrePrepareMsg>, frame.batch);
      case 'prepare':
        return normal.onPrepare(this, signed as Signed<PrepareMsg>);
      case 'commit':
        return normal.onCommit(this, signed as Signed<CommitMsg>);
      case 'checkpoint':
        return checkpoints.onCheckpoint(this, signed as Signed<CheckpointMsg>);
      case 'viewchange':
        return viewchange.onViewChange(this, signed as Signed<ViewChangeMsg>);
      case 'newview':
        return viewchange.onNewView(this, signed as Signed<NewViewMsg>, from.id);
      case 'suspect':
        return viewchange.onSuspect(this, signed as Signed<SuspectMsg>);
      case 'reply':
      case 'replybatch':
      case 'refusal':
      case 'readreply':
        return this.reject('unexpected-reply');
      default:
        return assertNever(msg);
    }
  }

  /**
   * The wall clock, in milliseconds since the Unix epoch (the shell's wall clock, the simulator's
   * simulated time): the primary proposes batch times from it and backups bound those times by it.
   * The shell gives it at the start of every turn; the core never reads a clock itself.
   */
  setClockMs(ms: number): void {
    if (!Number.isSafeInteger(ms) || ms < 0) throw new RangeError(`clock ${ms} ms is not an integer >= 0`);
    this.clockMs = ms;
  }

  tick(): void {
    this.now++;
    if (this.viewChanging) {
      if (this.timers.viewChange.fired(this.now)) {
        viewchange.startViewChange(this, this.view + 1, 'new-view timeout');
      }
    } else {
      let oldest = Infinity;
      if (!this.transfer) for (const w of this.waiting.values()) if (w.since < oldest) oldest = w.since;
      const slow = this.now - oldest >= this.requestTimeoutTicks() ? 'request timeout' : viewchange.slowPrimary(this);
      if (slow !== undefined) viewchange.suspect(this, slow);
      else if (this.suspicions.has(this.id)) viewchange.unsuspect(this);
    }
    if (this.timers.retransmit.fired(this.now)) {
      this.timers.retransmit.start(this.now);
      fetch.retransmit(this);
    }
    fetch.catchUp(this);
    statetransfer.driveTransfer(this);
    reads.expireReads(this);
  }

  /**
   * How many of the next ticks would only advance the clock if no frame came in meanwhile: the
   * shell may run them late, all in one turn before the next frame (the loop does so for missed
   * ticks anyway), so an idle replica sleeps until its next timer instead of waking every tick.
   * 0 while anything waits on time: a request or read waiting, our suspicion of the primary, a
   * view change, a state transfer, a checkpoint being computed, entries known to be missing. Else
   * the ticks before the first of the retransmission timer, the catch-up timer (armed at each
   * execution) or, once it ran out, the probe timer fires. The simulator checks the promise after
   * every turn: a quiet tick yields an empty turn (src/sim/cluster.ts).
   */
  quietTicks(): number {
    if (this.viewChanging || this.transfer || this.checkpointPending) return 0;
    if (this.waiting.size > 0 || this.heldReads.size > 0 || this.suspicions.has(this.id)) return 0;
    if (this.highestSeqSeen > this.lastExecuted || (this.pendingStable && this.lastExecuted < this.pendingStable.seq)) return 0;
    const { retransmit, catchUp, probe } = this.timers;
    // (The retransmission timer always runs: armed at construction, re-armed each time it fires.)
    let next = retransmit.remaining(this.now) ?? 0;
    const stalledIn = catchUp.remaining(this.now);
    if (stalledIn !== undefined && stalledIn > 0) next = Math.min(next, stalledIn);
    else if (stalledIn === 0) next = Math.min(next, probe.remaining(this.now) ?? 0);
    return Math.max(0, next - 1);
  }

  /** Runs deferred work and returns the effects accumulated since the last flush. */
  flush(): Ready {
    checkpoints.checkpointTurn(this);
    // A floor or an abstention that ended lets this turn's proposals go (before propose(): else they
    // would wait for the next turn, which an idle replica's loop may sleep through, see quietTicks).
    const floor = this.floor;
    if (floor && this.h >= floor.seq) {
      this.floor = undefined;
      this.writes.del(KEYS.floor);
      this.events.push({ type: 'signing-resumed', view: this.view, stable: this.h });
    }
    const abstain = this.abstain;
    if (abstain && (this.view > abstain.view || this.h >= abstain.seq)) {
      this.abstain = undefined;
      this.events.push({ type: 'abstaining-ended', view: this.view, stable: this.h });
    }
    normal.propose(this);
    reads.releaseReads(this);
    this.readsThisTurn.clear();
    for (const seq of this.dirtySlots) {
      const slot = this.slots.get(seq);
      if (slot) this.writes.put(KEYS.slot(seq), encodeSlot(slotRecord(slot)));
    }
    this.dirtySlots.clear();
    this.assertInvariants();
    const ready: Ready = {
      index: this.durability.next(this.view, this.viewChanging, this.h),
      writes: this.writes.take(),
      clears: this.clears,
      messages: this.messages,
      replies: this.replies,
      events: this.events,
      horizon: { view: this.view, stable: this.h, executed: this.lastExecuted },
    };
    this.clears = [];
    this.messages = [];
    this.replies = [];
    this.events = [];
    return ready;
  }

  status(): ReplicaStatus {
    return {
      id: this.id,
      view: this.view,
      primary: this.primary,
      status: this.transfer ? 'state-transfer' : this.viewChanging ? 'view-change' : this.floor ? 'recovering' : 'normal',
      viewChanging: this.viewChanging,
      lastExecuted: this.lastExecuted,
      stableCheckpoint: { seq: this.stable.seq, digest: toHex(this.stable.digest) },
      lastCheckpoint: { seq: this.lastCheckpoint.seq, digest: toHex(this.lastCheckpoint.digest) },
      checkpointInProgress: this.checkpointWork?.seq ?? null,
      transferring: this.transfer !== undefined,
      divergences: this.counters.divergences,
      logSlots: this.slots.size,
      waitingRequests: this.waiting.size,
      requestTimeoutTicks: this.requestTimeoutTicks(),
      suspicions: [...this.suspicions.keys()].sort((a, b) => a - b),
      epoch: this.epoch.epoch,
      members: [...this.members],
      memberUrls: Object.fromEntries(this.epoch.replicas.map((r) => [String(r.id), r.url])),
      member: this.isMember(this.id),
      ...(this.epochEnd !== Infinity ? { nextEpoch: { epoch: this.epoch.epoch + 1, since: this.epochEnd, replicas: this.configs.get(this.epoch.epoch + 1)!.replicas.map((r) => r.id) } } : {}),
      timers: Object.values(this.timers).map((t) => t.describe(this.now)),
      ...(this.floor ? { recovering: { ...this.floor } } : {}),
      ...(this.abstain ? { abstaining: { ...this.abstain } } : {}),
      evidence: this.evidence.summary(),
    };
  }

  /**
   * The equivocation evidence this replica holds (evidence.ts), oldest first, and the epoch proofs
   * it knows (a third party needs those of epochs 1.. to learn the keys of a later configuration).
   * Evidence signed in an epoch whose proof this replica does not hold yet is held back (`unproven`):
   * a replica that adopted a stable checkpoint of a new epoch without computing it has no proof of
   * that epoch until it learns one, and a file with that evidence would not verify meanwhile.
   */
  heldEvidence(): { evidence: VoteEvidence[]; proofs: ReadonlyMap<number, EpochProof>; unproven: number } {
    let proven = 0;
    while (this.epochProofs.has(proven + 1)) proven++;
    const all = this.evidence.list();
    const evidence = all.filter((e) => e.epoch <= proven);
    return { evidence, proofs: this.epochProofs, unproven: all.length - evidence.length };
  }

  /**
   * The replicas and clients the shell must let in and connect to: those of the configuration in
   * force, of the next one once known (a joining replica catches up before it votes), and of the
   * previous one (a removed replica learns it was removed); a key
   * identifies each, so this changes only when the membership does (see `membershipEpoch`).
   */
  knownMembership(): { replicas: ReplicaInfo[]; clients: ClientInfo[]; operatorKey?: Uint8Array } {
    // (The previous configuration's replicas too: one that was removed while it was down still
    // reaches the others, learns the new configuration and that it is out.)
    const configs = [this.epoch, this.configs.get(this.epoch.epoch + 1), this.membership.next, this.membership.current, this.configs.get(this.epoch.epoch - 1)];
    const replicas = new Map<number, ReplicaInfo>();
    const clients = new Map<number, ClientInfo>();
    for (const c of configs) {
      if (!c) continue;
      for (const r of c.replicas) if (!replicas.has(r.id)) replicas.set(r.id, r);
      for (const k of c.clients) if (!clients.has(k.id)) clients.set(k.id, k);
    }
    const operatorKey = this.epoch.operator;
    return { replicas: [...replicas.values()], clients: [...clients.values()], ...(operatorKey ? { operatorKey } : {}) };
  }

  /** Changes whenever knownMembership() may have changed. */
  get membershipEpoch(): string {
    return `${this.epoch.epoch}/${this.latestEpoch}/${this.membership.current.epoch}/${this.membership.next?.epoch ?? '-'}`;
  }

  /** Number of log slots held in memory (bounded by the window). */
  get logSize(): number {
    return this.slots.size;
  }

  onLink(from: number, msg: LinkMessage): void {
    switch (msg.type) {
      case 'fetch':
        return fetch.serveFetch(this, from, msg.from, msg.to, msg.epoch);
      case 'fetched':
        return fetch.onFetched(this, from, msg.entries, msg.stable, msg.proofs);
      case 'batchreq':
        return fetch.serveBatch(this, from, msg.seq, msg.digest);
      case 'batch': {
        // Only a batch that a slot of ours names and lacks: a peer cannot make us store anything else.
        const slot = this.slots.get(msg.seq);
        if (!slot || !fetch.expectsBatch(this, slot, msg.digest)) return this.reject('unexpected-batch');
        this.acceptBatch(slot, msg.digest, msg.batch, msg.time, from);
        return this.executeReady();
      }
      case 'statereq':
        return statetransfer.serveState(this, from, msg.seq, msg.part);
      case 'state':
        return statetransfer.onStateReply(this, from, msg.seq, msg.reply);
      case 'newviewreq':
        if (!this.viewChanging && this.newViewFrame && msg.view <= this.view) this.sendTo(from, this.newViewFrame);
        return;
      case 'epochsreq':
        return this.serveEpochs({ replica: from }, msg.epoch);
      case 'epochs':
        for (const proof of msg.proofs) {
          const reason = this.learnEpochProof(proof);
          if (reason === UNKNOWN_EPOCH) break;
          if (reason) return this.misbehaved(from, 'invalid-epoch-proof', reason);
        }
        return;
      default:
        return assertNever(msg);
    }
  }

  /** When each client (id) or unknown replica (-1 - id) was last sent epoch proofs (rate limit). */
  private readonly epochsAnsweredAt = new Map<number, number>();

  /** The proofs of the configurations after `epoch`, up to the stable checkpoint's (at most 16). */
  private serveEpochs(to: { client: number } | { replica: number }, epoch: number): void {
    const proofs = [];
    for (let e = epoch + 1; e <= this.stable.epoch && proofs.length < 16; e++) {
      const p = this.epochProofs.get(e);
      if (!p) break;
      proofs.push(p);
    }
    const frame = this.frames.encodeLinkFrame({ type: 'epochs', proofs });
    if ('replica' in to) return this.sendTo(to.replica, frame);
    this.replies.push({ client: to.client, frame, after: this.durability.messageAfter, seq: this.lastExecuted });
  }

  /**
   * Whether a stop now may be recorded as clean (horizon.ts, `clean`; the shells' stop, after every
   * turn is durable): not while abstaining, since the horizon record must keep bounding what an
   * earlier incarnation may have sent and lost, and a clean record would let the next start vote there.
   */
  get cleanStopAllowed(): boolean {
    return this.abstain === undefined;
  }

  /**
   * Rebuilds the replica from what it persisted: view, stable checkpoint, application state at the
   * stable checkpoint, the log above it; then re-executes committed entries. Call once, before any
   * other input. Records that do not decode are reported and skipped.
   */
  recover(records: Iterable<[string, Uint8Array]>, stored: { horizon?: Uint8Array; damage?: string } = {}): void {
    const rest = new Map<string, Uint8Array>();
    const partitions: Array<[string, Uint8Array]> = [];
    const partitionRecords: Array<[string, Uint8Array]> = [];
    for (const [key, value] of records) {
      if (key.startsWith(KEYS.partitionPrefix)) partitions.push([key, value]);
      else if (key.startsWith(KEYS.recordPrefix)) partitionRecords.push([key, value]);
      else rest.set(key, value);
    }
    const step = this.beginRecovery(rest);
    if (step.partitions !== undefined) {
      for (const [key, value] of partitionRecords) step.partitions.addRecord(key, value);
      // In the order of the partitions they name, each partition's keys in the order given (a
      // Storage gives them so already; a stable sort keeps it). Keys that name none count for 0.
      const count = this.app.partitionCount;
      const ordered = partitions.map(([key, value]) => ({ index: Math.max(0, recovery.partitionNamedBy(key, count)), key, value })).sort((a, b) => a.index - b.index);
      for (const { key, value } of ordered) step.partitions.add(key, value);
    }
    this.finishRecovery(step, stored);
  }

  /**
   * recover() in two steps, for a shell that streams the application partitions from its disk
   * (the largest part of the state; src/node/disk.ts): first every record outside them and their
   * records (keys starting with neither KEYS.partitionPrefix nor KEYS.recordPrefix); then, if the
   * returned step has a `partitions` loader, every stored key of the records range (addRecord), then
   * every stored partition key with its value, ascending by key (a Storage's order: add); then
   * finishRecovery.
   */
  beginRecovery(records: Iterable<[string, Uint8Array]>): recovery.RecoveryStep {
    const byKey = new Map(records);
    for (const key of byKey.keys()) {
      if (key.startsWith(KEYS.partitionPrefix)) throw new ProtocolInvariantError(`beginRecovery: ${JSON.stringify(key)} is a partition key (give it to the step's partitions loader)`);
      if (key.startsWith(KEYS.recordPrefix)) throw new ProtocolInvariantError(`beginRecovery: ${JSON.stringify(key)} is a partition record key (give it to the step's partitions loader: addRecord)`);
    }
    return recovery.beginRecovery(this, byKey);
  }

  /** The second step of recover() (beginRecovery). */
  finishRecovery(step: recovery.RecoveryStep, stored: { horizon?: Uint8Array; damage?: string } = {}): void {
    recovery.finishRecovery(this, step);
    recovery.checkHorizon(this, { ...stored, cleanStop: step.byKey.get(KEYS.cleanStop) });
    recovery.resumePrepared(this);
  }

  /**
   * Every invariant, the O(window) ones too (the simulator calls this after every step; flush()
   * checks the O(1) ones). Throws ProtocolInvariantError.
   */
  checkInvariants(): void {
    this.assertInvariants();
    const hi = this.h + this.opts.windowSize;
    for (const seq of this.slots.keys()) {
      if (seq <= this.h || seq > hi) throw new ProtocolInvariantError(`log slot ${seq} outside the window (${this.h}, ${hi}]`);
    }
    if (this.lastExecuted > this.h + this.opts.windowSize && !this.transfer) {
      throw new ProtocolInvariantError(`executed ${this.lastExecuted} beyond the window of the stable checkpoint ${this.h}`);
    }
    if (this.unsentReplyBatches.length > this.opts.windowSize) {
      throw new ProtocolInvariantError(`${this.unsentReplyBatches.length} batches of unsent replies kept, more than the window (${this.opts.windowSize})`);
    }
  }

  assertInvariants(): void {
    if (!this.transfer && this.lastExecuted < this.h) {
      throw new ProtocolInvariantError(`executed ${this.lastExecuted} below the stable checkpoint ${this.h}`);
    }
    if (this.isPrimary() && !this.viewChanging && this.nextSeq <= this.h) {
      throw new ProtocolInvariantError(`next sequence number ${this.nextSeq} at or below the watermark ${this.h}`);
    }
  }

  // --- hooks ---
  acceptBatch(slot: Slot, digest: Uint8Array, requests: Signed<RequestMsg>[], time: number, from: number): void {
    return fetch.acceptBatch(this, slot, digest, requests, time, from);
  }
  advanceStable(cert: CheckpointCert, snapshot: CheckpointSnapshot | undefined): void {
    return checkpoints.advanceStable(this, cert, snapshot);
  }
  checkBatch(digest: Uint8Array, requests: Signed<RequestMsg>[], time: number, proposer: number): Batch | undefined {
    return normal.checkBatch(this, digest, requests, time, proposer);
  }
  checkCommitted(slot: Slot): void {
    return normal.checkCommitted(this, slot);
  }
  checkPrepared(slot: Slot): void {
    return normal.checkPrepared(this, slot);
  }
  executeReady(): void {
    return normal.executeReady(this);
  }
  fetchEntries(): void {
    return fetch.fetchEntries(this);
  }
  installNewViewAhead(): void {
    return viewchange.installNewViewAhead(this);
  }
  onStableCert(cert: CheckpointCert): void {
    return checkpoints.onStableCert(this, cert);
  }
  requestBatch(slot: Slot, digest: Uint8Array): void {
    return fetch.requestBatch(this, slot, digest);
  }
  startTransfer(target: CheckpointCert, reason: string): void {
    return statetransfer.startTransfer(this, target, reason);
  }
  takeCheckpoint(seq: number): void {
    return checkpoints.takeCheckpoint(this, seq);
  }
  finishCheckpoint(): void {
    return checkpoints.finishCheckpoint(this);
  }

  /**
   * True while our checkpoint is computed over several turns, or the records its stable checkpoint
   * will write are found ahead of its certificate (checkpoints.ts, state.ts prepareRecordsAhead):
   * each flush() does a share of it, so the shell runs turns without waiting for a frame or a tick.
   */
  get checkpointPending(): boolean {
    return this.checkpointWork !== undefined || this.recordsAheadPending;
  }
  epochEntered(): void {
    return viewchange.renewViewChange(this);
  }
  quitSelf(reason: string): void {
    return normal.quitSelf(this, reason);
  }

  /**
   * Asks to join with the operator's admission (a replica that is not a member): the shell calls
   * it every few seconds until `status().member`; the effects leave with the next flush().
   */
  requestJoin(self: ReplicaInfo, admission: Uint8Array, timestamp: number): void {
    return normal.requestJoin(this, self, admission, timestamp);
  }
}
