/**
 * Which replicas a request asks to reply (RequestMsg.repliers), shared by the SDK and the
 * simulator's client. No node-only imports, no clock: it counts requests.
 *
 * A client accepts a result once f+1 replicas sent matching replies (Quorum.replies), so only that
 * many need to send one: the others skip a frame each, and the client decodes none of theirs. Each
 * request names `needed` replicas, the backups first (the primary does the most work per request),
 * rotating over them so that the replies of many clients spread evenly. The client waits for the
 * named replicas only until its retransmission: then it sends the request to every replica, and each
 * one replies (src/core/normal.ts). So a replica that does not answer when named costs that request a
 * retransmission; the client then leaves it out of its choices for a while (32 requests, doubling on
 * each miss up to 4,096, reset when it answers when named again), which bounds what a silent or lying
 * replica can cost. Too few replicas left to name: the request asks every replica.
 *
 * A miss is judged one request late: a named replica whose reply to the missed request still arrives
 * (agreeing with the accepted result) before the client's next request settles was slow, not silent
 * (a stall of the whole cluster, which makes every client retransmit at once), and is named again
 * without a strike; meanwhile it is not named.
 *
 * Naming fewer repliers trades the wait for the second-fastest of n replies for the wait for the
 * slower of the f+1 named ones; `mode: 'all'` keeps every replica replying (and every reply compared
 * for fault detection).
 */
import { CODEC_LIMITS } from '../core/body.ts';

export type RepliesMode = 'quorum' | 'all';

export const REPLIES_MODES: readonly RepliesMode[] = ['quorum', 'all'];

/** Requests a replica stays unnamed after its first miss; doubled per further miss. */
export const SUSPECT_REQUESTS_MIN = 32;
export const SUSPECT_REQUESTS_MAX = 4096;

interface Suspect {
  /** Unnamed until the client's request count reaches this. */
  until: number;
  /** Misses since it last answered when named. */
  strikes: number;
}

export class ReplierChoice {
  private requests = 0;
  private rotation = 0;
  private readonly suspects = new Map<number, Suspect>();
  /** Named replicas that missed the last settled request (by its timestamp): judged at the next settle. */
  private readonly missed = new Map<number, number>();

  constructor(
    readonly mode: RepliesMode,
    /** Where the rotation starts (the client id: clients of one process start apart). */
    start = 0,
    /** Negative control only: keep naming replicas that did not answer (the simulator shows the cost). */
    private readonly unsafeNeverSuspect = false,
  ) {
    if (!REPLIES_MODES.includes(mode)) throw new TypeError(`replies must be one of ${REPLIES_MODES.join(', ')}, not ${String(mode)}`);
    this.rotation = Math.abs(Math.trunc(start)) || 0;
  }

  /**
   * The repliers for the next request (strictly increasing ids), or undefined: every replica.
   * `members` are the replica ids of the configuration the client follows (ascending), `needed` how
   * many matching replies accept a result, `reachable` whether a replica can be named at all (the
   * SDK: its connection is open).
   */
  choose(members: readonly number[], primary: number, needed: number, reachable: (id: number) => boolean = () => true): number[] | undefined {
    this.requests++;
    if (this.mode === 'all' || needed <= 0 || needed >= members.length || needed > CODEC_LIMITS.repliersMax) return undefined;
    // Two passes over the (ascending) members instead of building lists: this runs for every
    // request, and the only array made is the answer, in ascending order as it is built.
    const usable = (id: number): boolean => reachable(id) && !this.isSuspect(id) && !this.missed.has(id);
    let backups = 0;
    let primaryUsable = false;
    for (const id of members) {
      if (!usable(id)) continue;
      if (id === primary) primaryUsable = true;
      else backups++;
    }
    const chosen: number[] = [];
    if (backups >= needed) {
      // The backups of ranks from, from+1, ..., from+needed-1 (mod their count), in id order.
      const from = this.rotation++ % backups;
      let rank = 0;
      for (const id of members) {
        if (id === primary || !usable(id)) continue;
        if ((rank - from + backups) % backups < needed) chosen.push(id);
        rank++;
      }
    } else if (primaryUsable && backups + 1 >= needed) {
      for (const id of members) if (usable(id)) chosen.push(id);
    } else {
      return undefined;
    }
    return chosen;
  }

  /**
   * A request settled: `named` its repliers (undefined: every replica), `answered` the replicas whose
   * replies agreed with the accepted result (none when no result was accepted), `timestamp` the
   * request's. The misses of the request settled before, not taken back by a late reply, count now.
   */
  settled(named: readonly number[] | undefined, answered: ReadonlySet<number>, timestamp: number): void {
    for (const id of this.missed.keys()) this.strike(id);
    this.missed.clear();
    if (named === undefined || this.unsafeNeverSuspect) return;
    for (const id of named) {
      if (answered.has(id)) this.suspects.delete(id);
      else this.missed.set(id, timestamp);
    }
  }

  /**
   * Replica `id` replied, agreeing with the accepted result, to the settled request `timestamp` after
   * it settled: if it had missed that request, it was slow, not silent, and the miss does not count.
   */
  answeredLate(id: number, timestamp: number): void {
    if (this.missed.get(id) === timestamp) this.missed.delete(id);
  }

  /** Replicas the client names no more for now, its last misses included (for status and tests). */
  suspected(): number[] {
    const ids = new Set([...this.suspects.keys()].filter((id) => this.isSuspect(id)));
    for (const id of this.missed.keys()) ids.add(id);
    return [...ids].sort((a, b) => a - b);
  }

  private strike(id: number): void {
    const s = this.suspects.get(id);
    const strikes = (s?.strikes ?? 0) + 1;
    const span = Math.min(SUSPECT_REQUESTS_MIN * 2 ** (strikes - 1), SUSPECT_REQUESTS_MAX);
    this.suspects.set(id, { until: this.requests + span, strikes });
  }

  private isSuspect(id: number): boolean {
    const s = this.suspects.get(id);
    return s !== undefined && this.requests < s.until;
  }
}
