/**
 * The client's output filter (pure; shared by the SDK and the simulator).
 *
 * A result is accepted once f+1 distinct replicas sent valid, matching, signed replies for the
 * request: at least one of them is correct, so the result is the one the agreed order produced.
 * Replies with bad signatures, from ids outside the keyring, for another request, or repeated by one
 * replica count for nothing. When no result can still reach f+1 (too many replicas answered with
 * disagreeing results), the answer is FAIL, carrying every reply seen.
 */
import { bytesKey } from '../core/auth.ts';
import type { AnyReply, RefusalMsg, Signed } from '../core/messages.ts';

export type CollectOutcome =
  | { kind: 'pending' }
  | { kind: 'ignored'; reason: string }
  | { kind: 'accepted'; result: Uint8Array; replicas: number[]; view: number }
  | { kind: 'failed' };

export class ReplyCollector {
  /** First valid reply of each replica. */
  readonly replies = new Map<number, AnyReply>();
  private readonly byResult = new Map<string, number[]>();
  settled = false;

  constructor(
    private readonly n: number,
    private readonly f: number,
    readonly client: number,
    readonly timestamp: number,
    private readonly verify: (reply: AnyReply) => boolean,
  ) {}

  /** Adds a reply that arrived on the link of replica `from`. */
  add(reply: AnyReply, from: number): CollectOutcome {
    if (this.settled) return { kind: 'ignored', reason: 'settled' };
    const m = reply.msg;
    if (!Number.isInteger(from) || from < 0 || from >= this.n) return { kind: 'ignored', reason: 'unknown replica' };
    if (m.replica !== from) return { kind: 'ignored', reason: 'reply signer is not the sender' };
    if (m.client !== this.client || m.timestamp !== this.timestamp) return { kind: 'ignored', reason: 'reply for another request' };
    if (this.replies.has(from)) return { kind: 'ignored', reason: 'repeated reply' };
    if (!this.verify(reply)) return { kind: 'ignored', reason: 'bad signature' };
    this.replies.set(from, reply);
    const key = bytesKey(m.result);
    const group = this.byResult.get(key) ?? [];
    group.push(from);
    this.byResult.set(key, group);
    if (group.length >= this.f + 1) {
      this.settled = true;
      // The view reported by at least one correct replica among the f+1.
      const views = group.map((r) => this.replies.get(r)!.msg.view).sort((a, b) => b - a);
      return { kind: 'accepted', result: m.result, replicas: group, view: views[this.f]! };
    }
    if (this.impossible()) {
      this.settled = true;
      return { kind: 'failed' };
    }
    return { kind: 'pending' };
  }

  /** True when no result can reach f+1, even if every replica yet to answer agreed with the best one. */
  impossible(): boolean {
    let best = 0;
    for (const g of this.byResult.values()) best = Math.max(best, g.length);
    const silent = this.n - this.replies.size;
    return best + silent < this.f + 1;
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

  constructor(
    private readonly f: number,
    readonly client: number,
    readonly timestamp: number,
    /** True when the refusal is validly signed and names exactly this request. */
    private readonly verify: (refusal: Signed<RefusalMsg>) => boolean,
  ) {}

  /** Adds a refusal that arrived on the link of replica `from`; true once f+1 replicas refused. */
  add(refusal: Signed<RefusalMsg>, from: number): boolean {
    const m = refusal.msg;
    if (m.replica !== from || m.client !== this.client || m.timestamp !== this.timestamp || this.refusedBy.has(from)) return false;
    if (!this.verify(refusal)) return false;
    this.refusedBy.add(from);
    return this.refusedBy.size >= this.f + 1;
  }
}
