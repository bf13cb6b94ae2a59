/**
 * Read-only requests (PBFT, Castro & Liskov TOCS 2002 §5.1.3; BFT-SMaRt `invokeUnordered`): a
 * client sends a READ to every replica; each executes it on its own committed state, without
 * ordering, and answers with a signed READ-REPLY; the client accepts a result once 2f+1 replicas
 * (Quorum.reads) sent matching answers naming its epoch, and otherwise sends the operation ordered.
 *
 * THE RULE (why a result accepted this way is linearizable, not merely some past state):
 *
 *   A correct replica answers a read only once it has executed every sequence number it had
 *   prepared (or sent a COMMIT for, or knew committed) when the read arrived, and at least its
 *   stable checkpoint: it holds the read until then (at most readHoldTicksMax), and answers from its
 *   state after its last executed sequence number, never an older one. It answers nothing while
 *   it fetches a checkpoint's state or recovers from lost durable state (it may have forgotten what
 *   it prepared). The answer waits for the same writes as an ordered reply (durability.ts rule 2).
 *
 * Why 2f+1 and not f+1: a write completes on f+1 matching replies, so it may have been executed by a
 * single correct replica. That replica executed it with 2f+1 COMMITs for its sequence number s, so
 * at least f+1 correct replicas had PREPARED s before the write completed (a correct replica sends
 * its COMMIT only once prepared, after its prepared certificate is durable). Any 2f+1 replicas that
 * answer a read started after the write completed include one of those f+1 (2f+1 + f+1 > 3f+1 and
 * those f+1 are correct), and that one answers only after executing s: the matching result is the
 * one of a state that includes the write. With f+1 answers, f faulty replicas serving an old state
 * plus one correct replica that had not yet heard of the write would make a stale read. The same
 * holds for any state a read has returned (it was a correct replica's state after some k, which f+1
 * correct replicas had prepared), so later reads never go back. See the README for the whole
 * argument (membership epochs included: the epoch a reply names is the membership of the state it
 * was computed on, so a quorum of one configuration cannot match on a state that a later one ordered).
 *
 * What a read does not touch: the client table (the replicated at-most-once record) and the
 * request timers. A replica remembers the newest read timestamp per client, locally, to drop
 * repeated and older reads before any signature work; it takes one read per client per turn and
 * holds one read per client.
 */
import type { ReadMsg, ReadReplyMsg, RefusalMsg, Signed } from './messages.ts';
import { OP_BYTES_MAX, type RefusalReason } from './limits.ts';
import { OPERATOR_CLIENT } from './membership.ts';
import { replicaOfPrincipal } from './cluster.ts';
import type { ReplicaState } from './state.ts';
import type { Source } from './types.ts';

/** Held reads at most (one per client; clients are bounded by the keyring, this bounds it again). */
export const HELD_READS_MAX = 65_536;

/** A READ from a client: checked, then answered now or held until the replica has caught up with itself. */
export function onRead(rs: ReplicaState, signed: Signed<ReadMsg>, from: Source): void {
  const m = signed.msg;
  if (from.kind !== 'client' || from.id !== m.client) return rs.reject('request-client-mismatch');
  if (m.client === OPERATOR_CLIENT || replicaOfPrincipal(m.client) !== undefined) return rs.reject('read-from-system-principal');
  if (!rs.auth.hasClient(m.client)) return rs.reject('unknown-client');
  // Older than the client's last ordered request or last read: a replay, or overtaken (the client
  // moved on). Dropped before any signature work, so a replayed read costs a lookup.
  const record = rs.clients.get(m.client);
  if (record && m.timestamp <= record.timestamp) return rs.reject('stale-request');
  const last = rs.lastReads.get(m.client);
  if (last !== undefined && m.timestamp <= last) return rs.reject(m.timestamp === last ? 'duplicate' : 'stale-request');
  // One read per client per turn: a client sends its next read only after 2f+1 answers to the last
  // one, which leave at the end of a turn; more in one turn is a flood, dropped before any signature work.
  if (rs.readsThisTurn.has(m.client)) return rs.reject('reads-per-turn');
  if (!rs.auth.verify(signed)) return rs.reject('bad-request-signature');
  rs.readsThisTurn.add(m.client);
  rs.lastReads.set(m.client, m.timestamp);
  if (m.op.length > OP_BYTES_MAX) {
    rs.reject('request-too-large');
    return refuseRead(rs, signed, 'op-too-large', OP_BYTES_MAX);
  }
  if (rs.app.isReadOnly?.(m.op) !== true) {
    rs.reject('unordered-not-read-only');
    rs.counters.readsRefused++;
    return refuseRead(rs, signed, 'not-read-only', 0);
  }
  if (!rs.heldReads.has(m.client) && rs.heldReads.size >= HELD_READS_MAX) return rs.reject('reads-held-max');
  // A newer read of this client replaces the one held (the client has moved on from it).
  rs.heldReads.set(m.client, { req: signed, barrier: readBarrier(rs), since: rs.now });
  releaseReads(rs);
}

/**
 * The highest sequence number this replica must have executed before it answers a read arriving
 * now: its stable checkpoint (and one it learned ahead of its execution), and every sequence number
 * it prepared, sent a COMMIT for, or knows committed. Prepared certificates survive view changes
 * (Slot.cert) and restarts (they are durable before the COMMIT leaves); slots at or below the
 * stable checkpoint are gone, which the checkpoint covers.
 */
export function readBarrier(rs: ReplicaState): number {
  if (rs.deps.unsafeTestOnly?.readsWithoutHold === true) return 0;
  let barrier = Math.max(rs.h, rs.pendingStable?.seq ?? 0);
  for (const slot of rs.slots.values()) {
    if (slot.seq <= barrier) continue;
    if (slot.cert !== undefined || slot.preparedInView || slot.committedDigest !== undefined || slot.commits.has(rs.id)) barrier = slot.seq;
  }
  return barrier;
}

/** Whether held reads may be answered at all now (see the rule in the header). */
function mayAnswer(rs: ReplicaState): boolean {
  return rs.transfer === undefined && rs.floor === undefined;
}

/** Answers every held read whose barrier this replica's execution has reached (called every turn). */
export function releaseReads(rs: ReplicaState): void {
  if (rs.heldReads.size === 0 || !mayAnswer(rs)) return;
  for (const [client, held] of rs.heldReads) {
    if (held.barrier > rs.lastExecuted) continue;
    rs.heldReads.delete(client);
    answer(rs, held.req);
  }
}

/** Drops held reads older than readHoldTicksMax: the client has fallen back to an ordered request. */
export function expireReads(rs: ReplicaState): void {
  for (const [client, held] of rs.heldReads) {
    if (rs.now - held.since < rs.opts.readHoldTicksMax) continue;
    rs.heldReads.delete(client);
    rs.counters.readsExpired++;
  }
}

function answer(rs: ReplicaState, req: Signed<ReadMsg>): void {
  const m = req.msg;
  const seq = rs.lastExecuted;
  // (The application promises not to change its state for an operation it declares read-only.)
  const result = rs.app.execute(m.op, { seq, client: m.client, timestamp: m.timestamp, timeMs: rs.clients.timeMs, readOnly: true });
  const reply = rs.auth.sign<ReadReplyMsg>({ type: 'readreply', client: m.client, timestamp: m.timestamp, replica: rs.id, epoch: rs.membership.current.epoch, result });
  rs.counters.readsAnswered++;
  // The state answered from is the one an ordered reply at `seq` would come from: same dependency.
  rs.replies.push({ client: m.client, frame: rs.frames.encodeSignedFrame(reply), after: rs.durability.replyDependency, seq });
}

function refuseRead(rs: ReplicaState, req: Signed<ReadMsg>, reason: RefusalReason, limit: number): void {
  const m = req.msg;
  const refusal = rs.auth.sign<RefusalMsg>({ type: 'refusal', replica: rs.id, client: m.client, timestamp: m.timestamp, digest: rs.hash(req.body), reason, limit });
  rs.replies.push({ client: m.client, frame: rs.frames.encodeSignedFrame(refusal), after: rs.durability.refusalAfter, seq: rs.lastExecuted });
}
