/**
 * A per-peer budget of loop time for a replica's link messages (Aardvark, NSDI 2009: per-peer
 * budgets, so that one faulty peer cannot take the loop from the others).
 *
 * Link requests (fetches of committed entries, batch requests, state-transfer requests, NEW-VIEW
 * requests) are unsigned and cost what the asker wants: a state request makes the replica read,
 * encode and compress state, a fetch encodes up to 64 entries with their certificates. A correct
 * replica sends them only while it catches up, one at a time per peer and transfer. A faulty one
 * sending 500 a second took throughput to 19% of fault-free (the bench's state-requests attack),
 * and unrequested batch bodies of 64 KiB, 200 a second, cost their decoding each.
 *
 * So each link frame from a replica is charged the loop time the core spent on it (serving it,
 * encoding the answer included) when it is a request, or a reply the core refused (unrequested or
 * invalid), against a token bucket per peer: LINK_BUDGET_MS_PER_S of loop time a second, at most
 * LINK_BUDGET_MS_MAX saved up. A peer over its budget has its link frames dropped (counted) until
 * the bucket refills; a correct asker's timer asks again, another peer or later. Its signed protocol
 * messages are never charged nor dropped, and neither are the replies to our own requests that the
 * core accepts (fetched entries, batches, state): a catching-up replica is not slowed.
 */

/** Loop time a second that serving one peer's link requests may take (ms): 5% of a core. */
export const LINK_BUDGET_MS_PER_S = 50;
/** Loop time that serving one peer's link requests may take in a burst (ms). */
export const LINK_BUDGET_MS_MAX = 500;

/**
 * True for a frame as the codec encodes a signed protocol message ([0, body, sig(, batch)]: 0x83 or
 * 0x84, then 0x00): never charged. Everything else from a replica is a link message or garbage.
 */
export function isSignedFrame(frame: Uint8Array): boolean {
  return (frame[0] === 0x83 || frame[0] === 0x84) && frame[1] === 0x00;
}

/**
 * False for a frame as the codec encodes a reply to a link request ([1, [21 | 23 | 25 | 28, ...]]: 0x82
 * 0x01, an array header, then the tag; charged only if the core refuses it); true for everything
 * else that is not a signed message (link requests, and any other encoding): always charged.
 */
export function isLinkRequest(frame: Uint8Array): boolean {
  if (isSignedFrame(frame)) return false;
  if (frame[0] === 0x82 && frame[1] === 0x01 && frame[2] !== undefined && (frame[2] & 0xe0) === 0x80) {
    const tag = frame[3];
    if (tag === 0x15 || tag === 0x17 || (tag === 0x18 && (frame[4] === 0x19 || frame[4] === 0x1c))) return false;
  }
  return true;
}

/** Every refusal and misbehaviour the core counted so far (compare before and after a frame). */
export function refusalCount(core: { rejected: ReadonlyMap<string, number>; misbehaviours: ReadonlyMap<string, number> }): number {
  let n = 0;
  for (const v of core.rejected.values()) n += v;
  for (const v of core.misbehaviours.values()) n += v;
  return n;
}

export class PeerBudgets {
  /** Frames dropped because their sender was over its budget. */
  dropped = 0;
  private readonly buckets = new Map<number, { ms: number; at: number }>();

  constructor(
    private readonly msPerSecond = LINK_BUDGET_MS_PER_S,
    private readonly msMax = LINK_BUDGET_MS_MAX,
  ) {}

  /** True if `peer` has budget left at `now` (ms); otherwise the frame is counted as dropped. */
  allows(peer: number, now: number): boolean {
    const b = this.refill(peer, now);
    if (b.ms > 0) return true;
    this.dropped++;
    return false;
  }

  /** Charges `ms` of loop time to `peer` (its balance may go below zero: it waits longer). */
  charge(peer: number, ms: number, now: number): void {
    this.refill(peer, now).ms -= ms;
  }

  private refill(peer: number, now: number): { ms: number; at: number } {
    let b = this.buckets.get(peer);
    if (b === undefined) {
      b = { ms: this.msMax, at: now };
      this.buckets.set(peer, b);
    }
    if (now > b.at) {
      b.ms = Math.min(this.msMax, b.ms + ((now - b.at) * this.msPerSecond) / 1000);
      b.at = now;
    }
    return b;
  }
}
