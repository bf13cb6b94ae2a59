/**
 * Cutting off a client that misbehaves (Aardvark, NSDI 2009: a faulty client is disconnected and
 * blacklisted rather than served at the cost of the others).
 *
 * A client frame that the core refuses for one of CLIENT_FAULTS is proof that the client is faulty:
 * its link is authenticated, so the frame is its own, and no correct client sends a frame that does
 * not decode, a request with a signature that does not verify, or anything but a request. (Stale or
 * repeated requests are not faults: retransmissions produce them.) The replica then closes the
 * client's connections and refuses its handshakes, before any signature work, for a while:
 * CUT_OFF_MS_MIN, doubled for each cut-off of the same client up to CUT_OFF_MS_MAX. A flood of
 * invalid frames costs one frame per connection, not one per frame.
 */
import type { RejectReason } from '../core/rejections.ts';

export const CLIENT_FAULTS: readonly RejectReason[] = [
  'oversized-frame',
  'malformed',
  'link-from-non-replica',
  'protocol-message-from-non-replica',
  'unexpected-reply',
  'request-client-mismatch',
  'bad-request-signature',
];

export const CUT_OFF_MS_MIN = 10_000;
export const CUT_OFF_MS_MAX = 10 * 60_000;

/** The core's counts of the refusals that only a faulty client causes, in CLIENT_FAULTS order. */
export function clientFaultCounts(rejected: ReadonlyMap<RejectReason, number>): number[] {
  return CLIENT_FAULTS.map((r) => rejected.get(r) ?? 0);
}

/** The first CLIENT_FAULTS reason whose count grew since `before` (clientFaultCounts), if any. */
export function newClientFault(before: readonly number[], rejected: ReadonlyMap<RejectReason, number>): RejectReason | undefined {
  return CLIENT_FAULTS.find((r, i) => (rejected.get(r) ?? 0) !== before[i]);
}

/** How long each client stays cut off: CUT_OFF_MS_MIN, doubled per repeated cut-off, at most CUT_OFF_MS_MAX. */
export class ClientCutOffs {
  /** Cut-offs so far. */
  total = 0;
  private readonly times = new Map<number, number>();

  /** A cut-off of `client`: how long (ms) to refuse it. */
  cutOff(client: number): number {
    const k = this.times.get(client) ?? 0;
    this.times.set(client, k + 1);
    this.total++;
    return Math.min(CUT_OFF_MS_MAX, CUT_OFF_MS_MIN * 2 ** Math.min(k, 16));
  }
}
