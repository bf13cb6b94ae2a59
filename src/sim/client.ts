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
 */
import { decodeFrame } from '../codec/messages.ts';
import { encodeOp, type KvOp } from '../app/kv-ops.ts';
export type { KvOp };
import { ReplyCollector, type CollectOutcome } from '../client/collector.ts';
import { MembershipFollower } from '../client/follow.ts';
import { RequestSigner, replyOf } from '../client/request.ts';
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
  sentAt: number;
  acceptedAt: number;
}

export interface FailedRequest {
  client: number;
  timestamp: number;
  replies: AnyReply[];
}

interface Outstanding {
  timestamp: number;
  op: Uint8Array;
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
  ) {
    this.signer = new RequestSigner(cluster, id, signer, verifier);
    this.follower = MembershipFollower.fromKeyring(cluster, this.signer.proofCrypto(), timeoutTicks);
    this.remaining = requests;
  }

  /** Asks every member for the proofs after the client's epoch, when wanted and the throttle allows. */
  private askEpochs(now: number, send: (to: number, frame: Uint8Array) => void): void {
    if (!this.follow || !this.wantEpochs || !this.follower.shouldAsk(now, true)) return;
    this.wantEpochs = false;
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
    const o = this.outstanding;
    if (o) this.conclude(now, o, o.collector.rebase(this.follower.members, this.follower.f));
  }

  get idle(): boolean {
    return this.outstanding === undefined;
  }

  get done(): boolean {
    return this.remaining === 0 && this.outstanding === undefined;
  }

  /** How long the current request has waited (0 when idle). */
  waitingFor(now: number): number {
    return this.outstanding ? now - this.outstanding.sentAt : 0;
  }

  private randomOp(): KvOp {
    const key = `k${this.prng.int(this.keySpace)}`;
    const value = `v${this.id}.${this.timestamp}`;
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

  tick(now: number, send: (to: number, frame: Uint8Array) => void): void {
    this.askEpochs(now, send);
    if (!this.outstanding) {
      if (this.remaining === 0) return;
      this.remaining--;
      this.timestamp++;
      const op = encodeOp(this.workload ? this.workload(this.id, this.timestamp - 1) : this.randomOp());
      const signed = this.signer.sign(this.timestamp, op);
      this.issued.set(this.timestamp, op);
      const frame = encodeSignedFrame(signed);
      this.outstanding = {
        timestamp: this.timestamp,
        op,
        frame,
        collector: new ReplyCollector(this.follower.members, this.follower.f, this.id, this.timestamp, (r) => this.signer.verifyReply(r)),
        sentAt: now,
        retryAt: now + this.timeoutTicks,
        attempt: 0,
      };
      send(this.follower.primaryOf(this.view), frame);
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

  onFrame(now: number, fromReplica: number, bytes: Uint8Array): void {
    const decoded = decodeFrame(bytes);
    if (!decoded.ok) return;
    if (decoded.value.kind === 'link') {
      if (decoded.value.msg.type === 'epochs') this.onEpochs(now, fromReplica, decoded.value.msg.proofs);
      return;
    }
    // From a replica it does not know (one that joined): ask for the configurations it missed.
    if (!this.follower.isMember(fromReplica) && this.follower.canChange) this.wantEpochs = true;
    const reply = replyOf(decoded.value);
    if (!reply) return;
    const o = this.outstanding;
    if (!o || o.timestamp !== reply.msg.timestamp) {
      const late = this.lastSettled?.conflictOf(reply, fromReplica);
      if (late) this.equivocated(late);
      else this.lastSettled?.noteLate(reply, fromReplica);
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
      this.outstanding = undefined;
    } else if (outcome.kind === 'failed') {
      this.failed.push({ client: this.id, timestamp: o.timestamp, replies: [...o.collector.replies.values()] });
      this.outstanding = undefined;
    }
  }
}
