/**
 * The client's output filter (pure; shared by the SDK and the simulator).
 *
 * A result is accepted once f+1 distinct replicas sent valid, matching, signed replies for the
 * request: at least one of them is correct, so the result is the one the agreed order produced.
 * Replies with bad signatures, from ids outside the configuration, for another request, or repeated
 * by one replica count for nothing. When no result can still reach f+1 (too many replicas answered
 * with disagreeing results), the answer is FAIL, carrying every reply seen.
 *
 * The replicas are a set of ids, not 0..n-1: after a reconfiguration (src/core/membership.ts) the
 * members may be e.g. [0, 1, 2, 4, 5, 6]. When the client learns a newer configuration while a
 * request is outstanding, rebase() re-judges what arrived: see there for why that is safe.
 */
import { bytesEqual, bytesKey } from '../core/auth.ts';
import type { AnyReply, ReadReplyMsg, RefusalMsg, Signed } from '../core/messages.ts';

export type CollectOutcome =
  | { kind: 'pending' }
  /** `conflict`: the replica had sent another, different result for this request (conflictOf). */
  | { kind: 'ignored'; reason: string; conflict?: readonly [AnyReply, AnyReply] }
  | { kind: 'accepted'; result: Uint8Array; replicas: number[]; view: number }
  | { kind: 'failed' };

/** The replicas whose replies count: n (ids 0..n-1, a genesis keyring) or the member ids (a set is used as given, never changed). */
export type ReplicaIds = number | readonly number[] | ReadonlySet<number>;

function idSet(replicas: ReplicaIds): ReadonlySet<number> {
  if (typeof replicas === 'number') return new Set(Array.from({ length: Math.max(0, replicas) }, (_, i) => i));
  if (replicas instanceof Set) return replicas;
  return new Set(replicas as readonly number[]);
}

export class ReplyCollector {
  /** First valid reply of each replica. */
  readonly replies = new Map<number, AnyReply>();
  private byResult = new Map<string, number[]>();
  private members: ReadonlySet<number>;
  /** Replicas already caught signing two results for this request (reported once each). */
  private readonly conflicted = new Set<number>();
  /** Replies kept after settling without a signature check (noteLate): checked only if contradicted. */
  private readonly unverified = new Set<number>();
  settled = false;

  constructor(
    replicas: ReplicaIds,
    private f: number,
    readonly client: number,
    readonly timestamp: number,
    private verify: (reply: AnyReply) => boolean,
  ) {
    this.members = idSet(replicas);
  }

  private get n(): number {
    return this.members.size;
  }

  /** Adds a reply that arrived on the link of replica `from`. */
  add(reply: AnyReply, from: number): CollectOutcome {
    const conflict = this.conflictOf(reply, from);
    if (conflict !== undefined) return { kind: 'ignored', reason: 'conflicting reply', conflict };
    if (this.settled) return { kind: 'ignored', reason: 'settled' };
    const m = reply.msg;
    if (!this.members.has(from)) return { kind: 'ignored', reason: 'unknown replica' };
    if (m.replica !== from) return { kind: 'ignored', reason: 'reply signer is not the sender' };
    if (m.client !== this.client || m.timestamp !== this.timestamp) return { kind: 'ignored', reason: 'reply for another request' };
    if (this.replies.has(from)) return { kind: 'ignored', reason: 'repeated reply' };
    if (!this.verify(reply)) return { kind: 'ignored', reason: 'bad signature' };
    this.replies.set(from, reply);
    const key = bytesKey(m.result);
    const group = this.byResult.get(key) ?? [];
    group.push(from);
    this.byResult.set(key, group);
    return this.judge(group.length >= this.f + 1 ? group : undefined);
  }

  /** Accepts `group` (f+1 matching replies) if given; otherwise fails once no result can reach f+1. */
  private judge(group: number[] | undefined): CollectOutcome {
    if (group !== undefined) {
      this.settled = true;
      const result = this.replies.get(group[0]!)!.msg.result;
      // The view reported by at least one correct replica among the f+1: the (f+1)-th highest.
      return { kind: 'accepted', result, replicas: group, view: this.agreedView(group) };
    }
    if (this.impossible()) {
      this.settled = true;
      return { kind: 'failed' };
    }
    return { kind: 'pending' };
  }

  /**
   * The client now trusts a newer configuration (replicas `replicas`, tolerating `f`, their keys
   * behind `verify`): the request is judged by it alone from here on. Replies of replicas that are
   * no longer members are dropped, and so are those that no longer verify (an id removed and added
   * again with another key); the rest are counted again against the new f. May accept or fail at
   * once. Nothing changes once the request is settled.
   *
   * Why this is safe: a result is accepted only on f+1 matching replies from members of ONE
   * configuration, the one the client holds when it accepts, which has at most f faulty members, so
   * one of the f+1 is correct and reports the agreed order's result. Mixing would not be: f_old
   * replies of a configuration that is no longer in force (its removed replicas may since have been
   * compromised; their keys are no longer vouched for) plus one of the new one is not f+1 of either.
   * A correct replica's reply does not depend on the configuration that ordered the request (every
   * correct replica executes the same order), so replies signed before the switch by replicas that
   * are still members keep their weight.
   */
  rebase(replicas: ReplicaIds, f: number, verify: (reply: AnyReply) => boolean = this.verify): CollectOutcome {
    if (this.settled) return { kind: 'ignored', reason: 'settled' };
    this.members = idSet(replicas);
    this.f = f;
    this.verify = verify;
    const kept = [...this.replies].filter(([id, reply]) => this.members.has(id) && verify(reply));
    this.replies.clear();
    this.byResult = new Map();
    let winner: number[] | undefined;
    for (const [id, reply] of kept) {
      this.replies.set(id, reply);
      const key = bytesKey(reply.msg.result);
      const group = this.byResult.get(key) ?? [];
      group.push(id);
      this.byResult.set(key, group);
      if (winner === undefined && group.length >= f + 1) winner = group;
    }
    return this.judge(winner);
  }

  /**
   * The (f+1)-th highest view among `group`'s replies (f+1 of them or more): with exactly f+1, as
   * a reply settles a request, their lowest.
   */
  private agreedView(group: readonly number[]): number {
    const view = (r: number): number => this.replies.get(r)!.msg.view;
    if (group.length === this.f + 1) return group.reduce((low, r) => Math.min(low, view(r)), Infinity);
    return group.map(view).sort((a, b) => b - a)[this.f]!;
  }

  /** True when no result can reach f+1, even if every replica yet to answer agreed with the best one. */
  impossible(): boolean {
    let best = 0;
    for (const g of this.byResult.values()) best = Math.max(best, g.length);
    const silent = this.n - this.replies.size;
    return best + silent < this.f + 1;
  }

  /**
   * A reply of `from` for this request whose result differs from the one `from` sent first (kept in
   * `replies`), with a valid signature: the two replies are equivocation evidence (src/core/evidence.ts),
   * once per replica. A re-sent reply with the same result (in another view, say) is no conflict.
   * Works after settling too, as long as the collector is kept.
   */
  conflictOf(reply: AnyReply, from: number): readonly [AnyReply, AnyReply] | undefined {
    const first = this.replies.get(from);
    const m = reply.msg;
    if (first === undefined || m.replica !== from || m.client !== this.client || m.timestamp !== this.timestamp) return undefined;
    if (this.conflicted.has(from) || bytesEqual(first.msg.result, m.result) || !this.verify(reply)) return undefined;
    if (this.unverified.delete(from) && !this.verify(first)) {
      // What it sent first was not signed by it after all: this reply takes its place.
      this.replies.set(from, reply);
      return undefined;
    }
    this.conflicted.add(from);
    return [first, reply];
  }

  /**
   * After settling: the first reply of a replica that had not answered before, kept (unverified: a
   * reply that agrees costs no signature check) so that a later, different one is caught by conflictOf.
   */
  noteLate(reply: AnyReply, from: number): void {
    const m = reply.msg;
    if (!this.settled || this.replies.has(from) || !this.members.has(from)) return;
    if (m.replica !== from || m.client !== this.client || m.timestamp !== this.timestamp) return;
    this.replies.set(from, reply);
    this.unverified.add(from);
  }

  /** Replicas whose reply differs from an accepted result (evidence of a faulty replica). */
  dissenters(result: Uint8Array): AnyReply[] {
    const key = bytesKey(result);
    return [...this.replies.values()].filter((r) => bytesKey(r.msg.result) !== key);
  }
}

/**
 * Signed REFUSALs of one request (src/core/limits.ts). Once f+1 distinct replicas refused it, at
 * least one correct replica will never order it, and no result can reach f+1: the request failed.
 */
export class RefusalCollector {
  readonly refusedBy = new Set<number>();
  private readonly refusals = new Map<number, Signed<RefusalMsg>>();

  constructor(
    private f: number,
    readonly client: number,
    readonly timestamp: number,
    /** True when the refusal is validly signed and names exactly this request. */
    private verify: (refusal: Signed<RefusalMsg>) => boolean,
  ) {}

  /** Adds a refusal that arrived on the link of replica `from`; true once f+1 replicas refused. */
  add(refusal: Signed<RefusalMsg>, from: number): boolean {
    const m = refusal.msg;
    if (m.replica !== from || m.client !== this.client || m.timestamp !== this.timestamp || this.refusedBy.has(from)) return false;
    if (!this.verify(refusal)) return false;
    this.refusedBy.add(from);
    this.refusals.set(from, refusal);
    return this.refusedBy.size >= this.f + 1;
  }

  /**
   * A newer configuration is in force (as ReplyCollector.rebase): only refusals of its members that
   * still verify count, against its f. True once f+1 of them refused.
   */
  rebase(replicas: readonly number[], f: number, verify: (refusal: Signed<RefusalMsg>) => boolean = this.verify): boolean {
    this.f = f;
    this.verify = verify;
    const members = new Set(replicas);
    for (const [id, refusal] of [...this.refusals]) {
      if (members.has(id) && verify(refusal)) continue;
      this.refusals.delete(id);
      this.refusedBy.delete(id);
    }
    return this.refusedBy.size >= this.f + 1;
  }
}

/** Why a read-only request fell back to an ordered one (see ReadCollector and the SDK). */
export type ReadFallbackReason =
  /** The answers disagree (a concurrent write, a replica behind or faulty): no result can reach the quorum. */
  | 'disagreement'
  /** Replicas refused the operation as not read-only. */
  | 'refused'
  /** Answers name a newer membership epoch than the client's (it learns it meanwhile). */
  | 'epoch'
  /** The client learned a newer configuration while the read was out. */
  | 'membership'
  /** Fewer replicas were connected than the quorum needs. */
  | 'unreachable'
  /** No quorum of matching answers within readTimeoutMs. */
  | 'timeout';

export type ReadOutcome =
  | { kind: 'pending' }
  | { kind: 'ignored'; reason: string }
  | { kind: 'accepted'; result: Uint8Array; replicas: number[] }
  | { kind: 'failed'; reason: Extract<ReadFallbackReason, 'disagreement' | 'refused' | 'epoch'> };

/**
 * The client's rule for a read-only request (src/core/reads.ts): a result is accepted once `quorum`
 * (Quorum.reads: 2f+1 of 3f+1) distinct members of the configuration the client holds sent valid
 * signed READ-REPLYs for this read that match in result and name the client's epoch. Not f+1: a
 * write that completed on f+1 replies may be known to a single correct replica, and f faulty
 * replicas plus one correct replica that has not heard of the write would agree on a stale value;
 * any 2f+1 include a correct replica that prepared the write, and it answers only after executing it.
 *
 * A reply naming another epoch, and a refusal, count against the quorum (the replica answered,
 * without a matching result). As soon as no result can still reach the quorum, the read fails and
 * the caller falls back to an ordered request. Differing answers are not evidence of a faulty
 * replica here: correct replicas may answer from different committed states.
 */
export class ReadCollector {
  /** First valid answer of each replica. */
  readonly replies = new Map<number, Signed<ReadReplyMsg>>();
  /** Replicas that refused the read. */
  readonly refusedBy = new Set<number>();
  /** Some answer named a newer epoch than the client's. */
  newerEpoch = false;
  private readonly byResult = new Map<string, number[]>();
  private readonly members: ReadonlySet<number>;
  settled = false;

  constructor(
    replicas: ReplicaIds,
    readonly quorum: number,
    readonly epoch: number,
    readonly client: number,
    readonly timestamp: number,
    private readonly verify: (reply: Signed<ReadReplyMsg>) => boolean,
  ) {
    this.members = idSet(replicas);
  }

  /** Adds an answer that arrived on the link of replica `from`. */
  add(reply: Signed<ReadReplyMsg>, from: number): ReadOutcome {
    if (this.settled) return { kind: 'ignored', reason: 'settled' };
    const m = reply.msg;
    if (!this.members.has(from)) return { kind: 'ignored', reason: 'unknown replica' };
    if (m.replica !== from) return { kind: 'ignored', reason: 'reply signer is not the sender' };
    if (m.client !== this.client || m.timestamp !== this.timestamp) return { kind: 'ignored', reason: 'reply for another request' };
    if (this.replies.has(from) || this.refusedBy.has(from)) return { kind: 'ignored', reason: 'repeated reply' };
    if (!this.verify(reply)) return { kind: 'ignored', reason: 'bad signature' };
    this.replies.set(from, reply);
    if (m.epoch !== this.epoch) {
      if (m.epoch > this.epoch) this.newerEpoch = true;
      return this.judge(undefined);
    }
    const key = bytesKey(m.result);
    const group = this.byResult.get(key) ?? [];
    group.push(from);
    this.byResult.set(key, group);
    return this.judge(group.length >= this.quorum ? group : undefined);
  }

  /** A member refused the read (its signed REFUSAL, checked by the caller). */
  refuse(from: number): ReadOutcome {
    if (this.settled) return { kind: 'ignored', reason: 'settled' };
    if (!this.members.has(from) || this.replies.has(from) || this.refusedBy.has(from)) return { kind: 'ignored', reason: 'repeated or unknown' };
    this.refusedBy.add(from);
    return this.judge(undefined);
  }

  private judge(group: number[] | undefined): ReadOutcome {
    if (group !== undefined) {
      this.settled = true;
      return { kind: 'accepted', result: this.replies.get(group[0]!)!.msg.result, replicas: group };
    }
    if (this.impossible()) {
      this.settled = true;
      return { kind: 'failed', reason: this.refusedBy.size > 0 ? 'refused' : this.newerEpoch ? 'epoch' : 'disagreement' };
    }
    return { kind: 'pending' };
  }

  /** True when no result can reach the quorum, even if every member yet to answer agreed with the best one. */
  impossible(): boolean {
    let best = 0;
    for (const g of this.byResult.values()) best = Math.max(best, g.length);
    const silent = this.members.size - this.replies.size - this.refusedBy.size;
    return best + silent < this.quorum;
  }
}
