/**
 * A simulated closed-loop client: one outstanding request at a time, sent to the primary it believes
 * in, retransmitted to every replica on timeout (with backoff), accepted once f+1 replicas sent
 * matching signed replies (the same ReplyCollector as the SDK).
 *
 * It follows the membership like the SDK, with the same MembershipFollower (src/client/follow.ts):
 * epoch 0 from the keyring, later configurations only from epoch proofs, asked for (`epochsreq`)
 * at its first tick, on every retransmission and when something arrives from a replica it does not
 * know (at most once per timeoutTicks). A newer configuration replaces the replica keys, the
 * members it sends to, n, f and the primary rotation, and re-judges the outstanding request.
 *
 * With `readOnlyGets`, a get is first a read-only request like the SDK's (src/core/reads.ts): a READ
 * to every member, accepted on Quorum.reads matching READ-REPLYs naming the client's epoch (the same
 * ReadCollector), else, at once when no result can reach the quorum or after `timeoutTicks`, sent
 * ordered with a fresh timestamp. The operation's invocation is the READ's.
 */
import { bytesEqual } from '../core/auth.ts';
import { ReplierChoice, type RepliesMode } from '../client/repliers.ts';
import { decodeFrame } from '../codec/messages.ts';
import { encodeOp, type KvOp } from '../app/kv-ops.ts';
export type { KvOp };
import { ReadCollector, ReplyCollector, type CollectOutcome, type ReadFallbackReason, type ReadOutcome } from '../client/collector.ts';
import { MembershipFollower } from '../client/follow.ts';
import { RequestSigner, readReplyOf, refusalOf, replyOf } from '../client/request.ts';
import { quorumFor } from '../core/quorum.ts';
import { encodeSignedFrame } from '../codec/messages.ts';
import type { ClusterConfig } from '../core/cluster.ts';
import type { AnyReply } from '../core/messages.ts';
import { replyEvidence, type ReplyEvidence } from '../core/evidence.ts';
import type { Signer, Verifier } from '../crypto/types.ts';
import type { Prng } from './prng.ts';

export interface CompletedRequest {
  client: number;
  timestamp: number;
  op: Uint8Array;
  result: Uint8Array;
  /** When the operation started (for a read that fell back: when its READ was sent). */
  sentAt: number;
  acceptedAt: number;
  /** Answered by a quorum of READ-REPLYs, never ordered (timestamp: the READ's). */
  unordered?: boolean;
}

/** Options of the read-only path (src/core/reads.ts). */
export interface SimReadOptions {
  /** Gets go unordered first (the SDK's get). */
  readOnlyGets: boolean;
  /** Negative control: accept a read on this many matching answers instead of Quorum.reads. */
  unsafeReadQuorum?: number;
}

interface OutstandingRead {
  timestamp: number;
  op: Uint8Array;
  frame: Uint8Array;
  collector: ReadCollector;
  read: Parameters<RequestSigner['verifyRefusal']>[1];
  sentAt: number;
  giveUpAt: number;
}

export interface FailedRequest {
  client: number;
  timestamp: number;
  replies: AnyReply[];
}

interface Outstanding {
  timestamp: number;
  op: Uint8Array;
  /** The replicas it asked to reply (undefined: all). */
  repliers: readonly number[] | undefined;
  frame: Uint8Array;
  collector: ReplyCollector;
  sentAt: number;
  retryAt: number;
  attempt: number;
}

/** Reply equivocations a simulated client keeps at most. */
const EVIDENCE_MAX = 256;

export class SimClient {
  readonly completed: CompletedRequest[] = [];
  readonly failed: FailedRequest[] = [];
  /** Every request this client signed, by timestamp (for the validity checker). */
  readonly issued = new Map<number, Uint8Array>();
  private readonly signer: RequestSigner;
  /** Which replicas each request asks to reply (as the SDK chooses them). */
  readonly repliers: ReplierChoice;
  private outstanding?: Outstanding;
  private timestamp = 0;
  private view = 0;
  remaining: number;
  retransmissions = 0;
  /** The configuration the client follows (see src/client/follow.ts). */
  readonly follower: MembershipFollower;
  /** An ask is wanted (sent at the next tick the throttle allows). */
  private wantEpochs = true;
  /** Replicas asked whose answer has not arrived: only solicited answers are verified. */
  private readonly epochsAsked = new Set<number>();
  /** Answers carrying a proof that did not verify. */
  invalidEpochProofs = 0;
  /** Rounds of `epochsreq` sent (each to every member). */
  epochsAsks = 0;
  /** Epochs the client moved to, in order (with the tick). */
  readonly epochsEntered: Array<{ epoch: number; tick: number }> = [];
  /** Replicas whose replies made accepted results, per request (the f+1 that matched). */
  readonly acceptedFrom: number[][] = [];
  /** Replicas caught signing two results for one request (src/core/evidence.ts), the first EVIDENCE_MAX. */
  readonly evidence: ReplyEvidence[] = [];
  /** The collector of the last request settled: a reply that arrives later may still contradict. */
  private lastSettled?: ReplyCollector;
  /** The result accepted for it (undefined when it failed). */
  private lastAccepted?: Uint8Array;
  private reading?: OutstandingRead;
  /** Reads answered unordered, and fallbacks to ordered requests by reason. */
  readsUnordered = 0;
  readonly readFallbacks: Partial<Record<ReadFallbackReason, number>> = {};

  constructor(
    readonly id: number,
    readonly node: number,
    cluster: ClusterConfig,
    signer: Signer,
    verifier: Verifier,
    private readonly prng: Prng,
    requests: number,
    private readonly timeoutTicks: number,
    private readonly keySpace: number,
    /** Optional workload: the op for this client's i-th request (default: random ops on keySpace). */
    private readonly workload?: (client: number, index: number) => KvOp,
    /** Follow the membership (default); false keeps the keyring's configuration (negative controls). */
    private readonly follow = true,
    private readonly reads: SimReadOptions = { readOnlyGets: false },
    replies: RepliesMode = 'quorum',
    unsafeNeverSuspect = false,
  ) {
    this.signer = new RequestSigner(cluster, id, signer, verifier);
    this.repliers = new ReplierChoice(replies, id, unsafeNeverSuspect);
    // As the SDK: urgent asks at most once per retransmission period, a refresh when the last ask is
    // 100 of them old (the SDK's 30 s against its 300 ms): with repliers named, a joined replica never
    // answers a client that does not know it, so only a retransmission or the refresh tells it.
    this.follower = MembershipFollower.fromKeyring(cluster, this.signer.proofCrypto(), timeoutTicks, timeoutTicks * 100);
    this.remaining = requests;
  }

  /** Asks every member for the proofs after the client's epoch, when wanted and the throttle allows. */
  private askEpochs(now: number, send: (to: number, frame: Uint8Array) => void): void {
    if (!this.follow || !this.wantEpochs || !this.follower.shouldAsk(now, true)) return;
    this.wantEpochs = false;
    this.sendAsks(send);
  }

  private sendAsks(send: (to: number, frame: Uint8Array) => void): void {
    this.epochsAsks++;
    const frame = this.follower.request();
    for (const r of this.follower.members) {
      send(r, frame);
      this.epochsAsked.add(r);
    }
  }

  private onEpochs(now: number, from: number, proofs: Parameters<MembershipFollower['offer']>[0]): void {
    if (!this.epochsAsked.delete(from)) return;
    const out = this.follower.offer(proofs);
    if (out.invalid !== undefined) this.invalidEpochProofs++;
    if (out.more) this.wantEpochs = true;
    if (out.previous === undefined) return;
    this.signer.setReplicas(out.config.replicas);
    this.epochsEntered.push({ epoch: out.config.epoch, tick: now });
    // A read judged by the old configuration: ordered instead (as the SDK does).
    if (this.reading) this.fallBack(this.reading, 'membership');
    const o = this.outstanding;
    if (o) this.conclude(now, o, o.collector.rebase(this.follower.members, this.replyFaults()));
  }

  get idle(): boolean {
    return this.outstanding === undefined && this.reading === undefined && this.pendingFallback === undefined;
  }

  get done(): boolean {
    return this.remaining === 0 && this.idle;
  }

  /** How long the current request has waited (0 when idle). */
  waitingFor(now: number): number {
    return this.outstanding ? now - this.outstanding.sentAt : this.reading ? now - this.reading.sentAt : 0;
  }

  /** A random operation; `timestamp` (the one it will be sent with) makes its value unique. */
  private randomOp(timestamp: number): KvOp {
    const key = `k${this.prng.int(this.keySpace)}`;
    const value = `v${this.id}.${timestamp}`;
    switch (this.prng.int(4)) {
      case 0:
        return { type: 'put', key, value };
      case 1:
        return { type: 'get', key };
      case 2:
        return { type: 'del', key };
      default:
        return { type: 'cas', key, expected: this.prng.chance(0.5) ? null : `v${this.prng.int(8)}.${this.prng.int(8)}`, next: value };
    }
  }

  /** Signs `op` as an ordered request with a fresh timestamp and sends it to the primary. */
  private order(now: number, op: Uint8Array, sentAt: number, send: (to: number, frame: Uint8Array) => void): void {
    // The refresh, checked when a request starts (as the SDK does).
    if (this.follow && this.follower.shouldAsk(now, false)) this.sendAsks(send);
    this.timestamp++;
    const signed = this.signer.sign(this.timestamp, op, this.repliers.choose(this.follower.members, this.follower.primaryOf(this.view), this.replyFaults() + 1));
    this.issued.set(this.timestamp, op);
    const frame = encodeSignedFrame(signed);
    this.outstanding = {
      timestamp: this.timestamp,
      op,
      repliers: signed.msg.repliers,
      frame,
      collector: new ReplyCollector(this.follower.members, this.replyFaults(), this.id, this.timestamp, (r) => this.signer.verifyReply(r)),
      sentAt,
      retryAt: now + this.timeoutTicks,
      attempt: 0,
    };
    send(this.follower.primaryOf(this.view), frame);
  }

  /** Sends `op` (a get) as a READ to every member (src/core/reads.ts). */
  private readUnordered(now: number, op: Uint8Array, send: (to: number, frame: Uint8Array) => void): void {
    this.timestamp++;
    const read = this.signer.signRead(this.timestamp, op);
    const quorum = this.reads.unsafeReadQuorum ?? quorumFor(this.follower.n, this.follower.f, {}, this.follower.model).reads;
    this.reading = {
      timestamp: this.timestamp,
      op,
      frame: encodeSignedFrame(read),
      read,
      collector: new ReadCollector(this.follower.members, quorum, this.follower.epoch, this.id, this.timestamp, (r) => this.signer.verifyReadReply(r)),
      sentAt: now,
      giveUpAt: now + this.timeoutTicks,
    };
    for (const r of this.follower.members) send(r, this.reading.frame);
  }

  /** The read gets no quorum: the same operation is ordered, with a fresh timestamp, at the client's next tick. */
  private fallBack(r: OutstandingRead, reason: ReadFallbackReason): void {
    if (this.reading !== r) return;
    this.reading = undefined;
    this.readFallbacks[reason] = (this.readFallbacks[reason] ?? 0) + 1;
    this.pendingFallback = { op: r.op, sentAt: r.sentAt };
  }

  /** Operations started (the workload's index). */
  private opsStarted = 0;

  /** A read that fell back, to be ordered at the next tick. */
  private pendingFallback?: { op: Uint8Array; sentAt: number };

  private concludeRead(now: number, r: OutstandingRead, outcome: ReadOutcome): void {
    if (outcome.kind === 'accepted') {
      this.reading = undefined;
      this.readsUnordered++;
      this.completed.push({ client: this.id, timestamp: r.timestamp, op: r.op, result: outcome.result, sentAt: r.sentAt, acceptedAt: now, unordered: true });
      this.acceptedFrom.push(outcome.replicas);
    } else if (outcome.kind === 'failed') {
      this.fallBack(r, outcome.reason);
    }
  }

  tick(now: number, send: (to: number, frame: Uint8Array) => void): void {
    this.askEpochs(now, send);
    if (this.reading && now >= this.reading.giveUpAt) this.fallBack(this.reading, 'timeout');
    if (this.pendingFallback) {
      const f = this.pendingFallback;
      this.pendingFallback = undefined;
      this.order(now, f.op, f.sentAt, send);
      return;
    }
    if (this.reading) return;
    if (!this.outstanding) {
      if (this.remaining === 0) return;
      this.remaining--;
      const index = this.opsStarted++;
      const kvOp = this.workload ? this.workload(this.id, index) : this.randomOp(this.timestamp + 1);
      const op = encodeOp(kvOp);
      if (this.reads.readOnlyGets && kvOp.type === 'get') this.readUnordered(now, op, send);
      else this.order(now, op, now, send);
      return;
    }
    const o = this.outstanding;
    if (now >= o.retryAt) {
      o.attempt++;
      this.retransmissions++;
      o.retryAt = now + this.timeoutTicks * Math.min(2 ** o.attempt, 8);
      for (const r of this.follower.members) send(r, o.frame);
      // No result yet: perhaps the members changed.
      this.wantEpochs = true;
      this.askEpochs(now, send);
    }
  }

  /** The collector's f (it accepts f+1 matching replies): Quorum.replies - 1 of the configuration held. */
  private replyFaults(): number {
    return quorumFor(this.follower.n, this.follower.f, {}, this.follower.model).replies - 1;
  }

  onFrame(now: number, fromReplica: number, bytes: Uint8Array): void {
    const decoded = decodeFrame(bytes);
    if (!decoded.ok) return;
    if (decoded.value.kind === 'link') {
      if (decoded.value.msg.type === 'epochs') this.onEpochs(now, fromReplica, decoded.value.msg.proofs);
      return;
    }
    // From a replica it does not know (one that joined): ask for the configurations it missed.
    if (!this.follower.isMember(fromReplica) && this.follower.canChange) this.wantEpochs = true;
    const r = this.reading;
    if (r) {
      const readReply = readReplyOf(decoded.value);
      if (readReply && readReply.msg.timestamp === r.timestamp) {
        if (readReply.msg.epoch > this.follower.epoch && this.follower.canChange) this.wantEpochs = true;
        return this.concludeRead(now, r, r.collector.add(readReply, fromReplica));
      }
      const refusal = refusalOf(decoded.value);
      if (refusal && refusal.msg.timestamp === r.timestamp && refusal.msg.replica === fromReplica && this.signer.verifyRefusal(refusal, r.read)) {
        return this.concludeRead(now, r, r.collector.refuse(fromReplica));
      }
    }
    const reply = replyOf(decoded.value);
    if (!reply) return;
    const o = this.outstanding;
    if (!o || o.timestamp !== reply.msg.timestamp) {
      const late = this.lastSettled?.conflictOf(reply, fromReplica);
      if (late) this.equivocated(late);
      else this.lastSettled?.noteLate(reply, fromReplica);
      // A named replica that missed the last request but replies now was slow, not silent (as the SDK).
      const m = reply.msg;
      if (this.lastAccepted !== undefined && this.lastSettled?.timestamp === m.timestamp && m.replica === fromReplica && m.client === this.id && bytesEqual(m.result, this.lastAccepted)) {
        this.repliers.answeredLate(fromReplica, m.timestamp);
      }
      return;
    }
    const outcome = o.collector.add(reply, fromReplica);
    if (outcome.kind === 'ignored' && outcome.conflict) this.equivocated(outcome.conflict);
    this.conclude(now, o, outcome);
  }

  /** Two signed replies of one replica with different results for one request: evidence (as the SDK keeps it). */
  private equivocated(conflict: readonly [AnyReply, AnyReply]): void {
    const [a, b] = conflict;
    if (this.evidence.length >= EVIDENCE_MAX || !this.signer.verifyReply(a) || !this.signer.verifyReply(b)) return;
    this.evidence.push(replyEvidence(a, b, this.follower.epoch));
  }

  private conclude(now: number, o: Outstanding, outcome: CollectOutcome): void {
    if (outcome.kind === 'accepted' || outcome.kind === 'failed') this.lastSettled = o.collector;
    if (outcome.kind === 'accepted') {
      this.view = Math.max(this.view, outcome.view);
      this.completed.push({ client: this.id, timestamp: o.timestamp, op: o.op, result: outcome.result, sentAt: o.sentAt, acceptedAt: now });
      this.acceptedFrom.push(outcome.replicas);
      this.repliers.settled(o.repliers, new Set(outcome.replicas), o.timestamp);
      this.lastAccepted = outcome.result;
      this.outstanding = undefined;
    } else if (outcome.kind === 'failed') {
      this.repliers.settled(o.repliers, new Set(), o.timestamp);
      this.lastAccepted = undefined;
      this.failed.push({ client: this.id, timestamp: o.timestamp, replies: [...o.collector.replies.values()] });
      this.outstanding = undefined;
    }
  }
}
