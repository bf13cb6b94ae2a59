/**
 * The normal case (PBFT section 4.2): client requests and batching at the primary, PRE-PREPARE /
 * PREPARE / COMMIT, execution in sequence order, and replies. Each function takes the replica's
 * state (state.ts); calls into other concerns go through its hooks (wired in replica.ts).
 */
import { buildReplyTree, replyLeaf } from './replytree.ts';
import { bytesEqual } from './auth.ts';
import { makeBatch, type Batch } from './batch.ts';
import { commitQuorum, preparedCertificate, skipsClientSignatures } from './quorum.ts';
import type { BatchedReply, CommitMsg, PrePrepareMsg, PrepareMsg, RefusalMsg, ReplyBatchMsg, ReplyMsg, RequestMsg, Signed } from './messages.ts';
import { BATCH_BYTES_LIMIT, BATCH_REQUESTS_LIMIT, OP_BYTES_MAX, type RefusalReason } from './limits.ts';
import type { RejectReason } from './rejections.ts';
import { primaryOf } from './newview.ts';
import { type CachedReply, type PendingReplyBatch, type ReplicaState, type Slot } from './state.ts';
import type { Source, ExecutedRequest } from './types.ts';
import { ProtocolInvariantError } from './types.ts';
import { OPERATOR_CLIENT, admissionBytes, advanceMembership, applyReconfig, encodeReconfigOp, encodeReconfigResult, mayHoldClient, type Membership } from './membership.ts';
import { replicaOfPrincipal, replicaPrincipal, type ReplicaInfo } from './cluster.ts';

export function onRequest(rs: ReplicaState, signed: Signed<RequestMsg>, from: Source): void {
  const m = signed.msg;
  if (from.kind === 'client' && from.id !== m.client) return rs.reject('request-client-mismatch');
  if (!rs.auth.hasClient(m.client)) return rs.reject('unknown-client');
  if (m.op.length > OP_BYTES_MAX) {
    // Never ordered: refused at once (a batch could not carry it everywhere), with a signed answer.
    rs.reject('request-too-large');
    if (from.kind === 'client') refuse(rs, signed, 'op-too-large', OP_BYTES_MAX);
    return;
  }
  const record = rs.clients.get(m.client);
  if (record && m.timestamp < record.timestamp) return rs.reject('stale-request');
  if (record && m.timestamp === record.timestamp) {
    // Executed already: a retransmission gets the cached reply (at-most-once execution).
    if (from.kind === 'client') resendReply(rs, m.client);
    return;
  }
  const w = rs.waiting.get(m.client);
  if (w && m.timestamp < w.req.msg.timestamp) return rs.reject('stale-request');
  const known = w !== undefined && w.req.msg.timestamp === m.timestamp;
  if (known && !bytesEqual(w.req.body, signed.body)) return rs.reject('conflicting-request');
  if (!known) {
    if (!rs.auth.verify(signed)) return rs.reject('bad-request-signature');
    // A backup that knows a request before its PRE-PREPARE times how long the primary takes (monitor.ts).
    const timed = rs.opts.slowPrimaryCheck && !rs.isPrimary();
    rs.waiting.set(m.client, timed ? { req: signed, since: rs.now, unorderedSince: rs.now } : { req: signed, since: rs.now });
  }
  // The client sends a request to the primary first and to every replica when it retransmits: a
  // backup that has it from the client, or a primary that has it a second time, is asked to reply.
  if (from.kind === 'client' && (known || !rs.isPrimary())) rs.waiting.get(m.client)!.asked = true;
  if (rs.viewChanging) return;
  if (rs.isPrimary()) rs.enqueue(m.client);
  else if (from.kind === 'client') rs.sendTo(rs.primary, rs.frames.encodeSignedFrame(signed));
}

/** Tells the client, in a signed REFUSAL, that its request will not be ordered. */
function refuse(rs: ReplicaState, req: Signed<RequestMsg>, reason: RefusalReason, limit: number): void {
  const m = req.msg;
  const refusal = rs.auth.sign<RefusalMsg>({ type: 'refusal', replica: rs.id, client: m.client, timestamp: m.timestamp, digest: rs.hash(req.body), reason, limit });
  rs.replies.push({ client: m.client, frame: rs.frames.encodeSignedFrame(refusal), after: rs.durability.refusalAfter, seq: rs.lastExecuted });
}

/** Primary: turn waiting requests into pre-prepares while the pipeline has room. */
export function propose(rs: ReplicaState): void {
  if (rs.viewChanging || !rs.isPrimary() || rs.transfer || !rs.mayVote(rs.view, rs.nextSeq)) return;
  if (rs.queue.length === 0) return fillToSwitch(rs);
  let head = 0;
  while (head < rs.queue.length) {
    const inFlight = rs.nextSeq - 1 - rs.lastExecuted;
    if (inFlight >= rs.opts.inFlightBatchesMax) break;
    if (!rs.inWindow(rs.nextSeq)) break;
    // Adaptive batching: with nothing in flight, propose at once (low load: batches of one, low
    // latency). With batches in flight, wait until the queue fills a batch as large as the last
    // one: under load batches grow and fewer are in flight, which amortizes the per-batch
    // signatures; when load rises faster than batches execute, several go out in a row.
    if (inFlight > 0 && rs.queue.length - head < Math.min(rs.lastBatchSize, rs.opts.batchRequestsMax)) break;
    const requests: Signed<RequestMsg>[] = [];
    let bytes = 0;
    while (head < rs.queue.length && requests.length < rs.opts.batchRequestsMax) {
      const client = rs.queue[head]!;
      const w = rs.waiting.get(client);
      if (w === undefined || rs.assigned.get(client) === w.req.msg.timestamp) {
        head++;
        rs.queued.delete(client);
        continue;
      }
      const size = w.req.body.length + w.req.sig.length;
      if (requests.length > 0 && bytes + size > rs.opts.batchBytesMax) break;
      head++;
      rs.queued.delete(client);
      requests.push(w.req);
      rs.assigned.set(client, w.req.msg.timestamp);
      bytes += size;
    }
    if (requests.length === 0) break;
    rs.lastBatchSize = requests.length;
    proposeBatch(rs, requests);
  }
  rs.queue = rs.queue.slice(head);
  // (A queue of requests already ordered or gone is empty now: the fill goes in this turn, not the next.)
  if (rs.queue.length === 0) fillToSwitch(rs);
}

function proposeBatch(rs: ReplicaState, requests: Signed<RequestMsg>[]): void {
  const seq = rs.nextSeq++;
  // Our clock, but never below the times before this batch: time does not go back when our clock
  // steps back or when an earlier primary's clock ran ahead of ours (within the backups' bound).
  const time = Math.max(rs.clockMs ?? 0, batchTimeNeighbours(rs, seq).floor);
  const batch = makeBatch(rs.hash, requests, time);
  const pp = rs.auth.sign<PrePrepareMsg>({ type: 'preprepare', view: rs.view, seq, digest: batch.digest, replica: rs.id, time });
  const slot = rs.slotFor(seq);
  slot.prePrepare = pp;
  slot.prePreparedAt = rs.now;
  rs.addBatch(slot, batch);
  rs.markDirty(slot);
  rs.broadcastVote(rs.frames.encodeSignedFrame(pp, batch.requests));
  checkPrepared(rs, slot);
}

/**
 * A reconfiguration takes effect after the checkpoint at the end of the operating configuration
 * (membership.ts): with no requests to order, the primary fills the sequence numbers up to it with
 * empty batches, so that an idle cluster reaches the switch too.
 */
function fillToSwitch(rs: ReplicaState): void {
  const end = rs.epochEnd;
  if (end === Infinity) return;
  while (rs.nextSeq <= end && rs.inWindow(rs.nextSeq) && rs.nextSeq - 1 - rs.lastExecuted < rs.opts.inFlightBatchesMax) {
    proposeBatch(rs, []);
  }
}

/** Messages of the current view, in the window, in normal status; notes evidence of being behind. */
function admitPhase(rs: ReplicaState, msg: { view: number; seq: number; replica: number }): boolean {
  rs.noteAhead(msg.replica, msg.view, msg.seq);
  if (msg.view !== rs.view || rs.viewChanging) {
    rs.reject(msg.view < rs.view ? 'old-view' : 'future-view');
    return false;
  }
  if (!rs.inWindow(msg.seq)) {
    rs.reject('out-of-window');
    return false;
  }
  return true;
}

export function onPrePrepare(rs: ReplicaState, signed: Signed<PrePrepareMsg>, requests: Signed<RequestMsg>[] | undefined): void {
  const m = signed.msg;
  if (m.replica !== primaryOf(m.view, rs.members)) return rs.reject('preprepare-not-from-primary');
  if (!admitPhase(rs, m)) return;
  const slot = rs.slotFor(m.seq);
  if (slot.prePrepare) {
    if (!bytesEqual(slot.prePrepare.msg.digest, m.digest)) {
      // The primary signed two pre-prepares for (view, seq): evidence (its signature is checked there).
      rs.noteEquivocation(slot.prePrepare, signed);
      return rs.reject('conflicting-preprepare');
    }
    // (The digest covers the time: equal digests with different times cannot both be genuine.)
    if (slot.prePrepare.msg.time !== m.time) return rs.reject('conflicting-preprepare');
    // A retransmission: it may bring the batch we lack.
    if (requests && !rs.batchFor(slot, m.digest)) rs.acceptBatch(slot, m.digest, requests, m.time, m.replica);
    return;
  }
  if (!requests) return rs.reject('preprepare-without-batch');
  if (requests.length > BATCH_REQUESTS_LIMIT) return rs.reject('batch-too-large');
  if (!rs.auth.verify(signed)) return rs.reject('bad-signature');
  // One of the backups that need not check the client signatures of this batch (quorum.ts,
  // skipsClientSignatures): its requests are used only once a prepared certificate shows that a
  // correct replica checked them; until then they move none of our request timers.
  const unchecked = skipsClientSignatures(rs.q, rs.members, m.view, m.seq, rs.id);
  const batch = checkBatch(rs, m.digest, requests, m.time, m.replica, !unchecked);
  if (!batch) return;
  const wrongTime = rs.deps.unsafeTestOnly?.ignoreBatchTimeBounds ? undefined : checkBatchTime(rs, m);
  if (wrongTime) {
    // Not prepared: a primary that moves time too far (or back) is suspected like any faulty one.
    // Its requests are signed and we now wait for them: unless the others prepare the batch and
    // we catch up, their timers run out and we suspect the primary (f+1 of us change the view).
    // A time too far behind is not counted as misbehaviour: a pre-prepare that was long on its way
    // (a partition, a pause, a retransmission) looks the same as one from a primary that froze time.
    rs.reject(wrongTime.code);
    if (wrongTime.code !== 'batch-time-behind') rs.misbehaved(m.replica, 'bad-batch-time', `pre-prepare ${m.view}/${m.seq}: ${wrongTime.reason}`);
    // Refused, so nothing else checks its requests: a skipping backup checks them now (rarely) so
    // that it waits for them like every other backup.
    for (const r of batch.requests) if (!unchecked || rs.auth.verify(r)) noteWaiting(rs, r);
    return;
  }
  const known = unchecked ? batch.requests.filter((r) => rs.auth.isVerified(r)) : batch.requests;
  if (known.length < batch.requests.length) {
    batch.unchecked = true;
    rs.counters.clientSignaturesUnchecked += batch.requests.length - known.length;
  }
  slot.prePrepare = signed;
  slot.prePreparedAt = rs.now;
  rs.addBatch(slot, batch);
  rs.markDirty(slot);
  rs.noteOrdered(known, true);
  for (const r of known) noteWaiting(rs, r);
  if (rs.mayVote(m.view, m.seq)) {
    const prepare = rs.auth.sign<PrepareMsg>({ type: 'prepare', view: m.view, seq: m.seq, digest: m.digest, replica: rs.id });
    slot.prepares.set(rs.id, prepare);
    rs.broadcastVote(rs.frames.encodeSignedFrame(prepare));
  }
  checkPrepared(rs, slot);
}

/**
 * The batch times a pre-prepare for `seq` of the current view must lie between: not below the
 * agreed time of what we executed (when `seq` is above it) nor below the time of any pre-prepare
 * for a lower sequence number, and not above the time of a pre-prepare for a higher one (a correct
 * primary proposes times that never decrease with the sequence number). The null request of a
 * NEW-VIEW (time 0) constrains nothing.
 */
export function batchTimeNeighbours(rs: ReplicaState, seq: number): { floor: number; ceiling: number } {
  let floor = seq > rs.lastExecuted ? rs.clients.timeMs : 0;
  let ceiling = Infinity;
  for (const slot of rs.slots.values()) {
    const pp = slot.prePrepare?.msg;
    if (!pp || pp.view !== rs.view || pp.time === 0) continue;
    if (slot.seq < seq) floor = Math.max(floor, pp.time);
    else if (slot.seq > seq) ceiling = Math.min(ceiling, pp.time);
  }
  return { floor, ceiling };
}

/**
 * A backup's check of the time a fresh pre-prepare proposes (NEW-VIEW pre-prepares keep the time
 * they prepared with and are checked against the VIEW-CHANGEs instead): monotonic with its
 * neighbours (batchTimeNeighbours), at most batchTimeAheadMsMax ahead of our clock and at most
 * batchTimeBehindMsMax behind it. Undefined when it is acceptable.
 */
export function checkBatchTime(rs: ReplicaState, m: PrePrepareMsg): { code: RejectReason; reason: string } | undefined {
  const { floor, ceiling } = batchTimeNeighbours(rs, m.seq);
  if (m.time < floor) return { code: 'batch-time-backwards', reason: `time ${m.time} is below ${floor}, the time of an earlier batch` };
  if (m.time > ceiling) return { code: 'batch-time-backwards', reason: `time ${m.time} is above ${ceiling}, the time of a later batch` };
  const clock = rs.clockMs;
  if (clock === undefined) return undefined;
  if (m.time > clock + rs.opts.batchTimeAheadMsMax) {
    return { code: 'batch-time-ahead', reason: `time ${m.time} is ${m.time - clock} ms ahead of our clock (at most ${rs.opts.batchTimeAheadMsMax})` };
  }
  if (m.time < clock - rs.opts.batchTimeBehindMsMax) {
    return { code: 'batch-time-behind', reason: `time ${m.time} is ${clock - m.time} ms behind our clock (at most ${rs.opts.batchTimeBehindMsMax})` };
  }
  return undefined;
}

/**
 * Digest and client signatures of a batch proposed by `proposer`; undefined (and counted) if invalid.
 * `signatures` false: the client signatures are not checked (onPrePrepare, a skipping backup).
 */
export function checkBatch(rs: ReplicaState, digest: Uint8Array, requests: Signed<RequestMsg>[], time: number, proposer: number, signatures = true): Batch | undefined {
  const batch = makeBatch(rs.hash, requests, time);
  if (batch.bytes > BATCH_BYTES_LIMIT) {
    rs.reject('batch-too-large');
    rs.misbehaved(proposer, 'batch-too-large', 'batch larger than the protocol allows');
    return undefined;
  }
  if (!bytesEqual(batch.digest, digest)) {
    rs.reject('batch-digest-mismatch');
    rs.misbehaved(proposer, 'batch-digest-mismatch', 'batch does not match its digest');
    return undefined;
  }
  for (const r of requests) {
    if (r.msg.op.length > OP_BYTES_MAX) {
      rs.reject('batch-with-oversized-request');
      rs.misbehaved(proposer, 'batch-with-oversized-request', 'batch with a request larger than the protocol allows');
      return undefined;
    }
    if (!rs.auth.hasClient(r.msg.client) || (signatures && !rs.auth.verify(r))) {
      rs.reject('batch-with-bad-request');
      rs.misbehaved(proposer, 'batch-with-bad-request', 'batch with an unsigned request');
      return undefined;
    }
  }
  return batch;
}

/** A request seen in a pre-prepare is verified: wait for it too (its timer covers a stalled primary). */
function noteWaiting(rs: ReplicaState, r: Signed<RequestMsg>): void {
  const m = r.msg;
  const record = rs.clients.get(m.client);
  if (record && m.timestamp <= record.timestamp) return;
  const w = rs.waiting.get(m.client);
  if (w && w.req.msg.timestamp >= m.timestamp) return;
  rs.waiting.set(m.client, { req: r, since: rs.now });
}

export function onPrepare(rs: ReplicaState, signed: Signed<PrepareMsg>): void {
  const m = signed.msg;
  if (m.replica === primaryOf(m.view, rs.members)) return rs.reject('prepare-from-primary');
  if (!admitPhase(rs, m)) return;
  const slot = rs.slotFor(m.seq);
  const held = slot.prepares.get(m.replica);
  if (held) {
    if (bytesEqual(held.msg.digest, m.digest)) return rs.reject('duplicate');
    rs.noteEquivocation(held, signed);
    return rs.reject('conflicting-vote');
  }
  // Its COMMIT for this slot, if we hold one, names the digest it prepared.
  const commit = slot.commits.get(m.replica);
  if (commit && !bytesEqual(commit.msg.digest, m.digest)) rs.noteEquivocation(commit, signed);
  // Prepared already: a further prepare changes nothing, so its signature is not worth checking.
  if (slot.preparedInView) {
    rs.counters.surplusVotes++;
    return;
  }
  if (!rs.auth.verify(signed)) return rs.reject('bad-signature');
  slot.prepares.set(m.replica, signed);
  rs.markDirty(slot);
  checkPrepared(rs, slot);
}

export function onCommit(rs: ReplicaState, signed: Signed<CommitMsg>): void {
  const m = signed.msg;
  if (!admitPhase(rs, m)) return;
  const slot = rs.slotFor(m.seq);
  const held = slot.commits.get(m.replica);
  if (held) {
    if (bytesEqual(held.msg.digest, m.digest)) return rs.reject('duplicate');
    rs.noteEquivocation(held, signed);
    return rs.reject('conflicting-vote');
  }
  // A COMMIT names the digest its sender prepared: its PREPARE (a backup) or PRE-PREPARE (the primary).
  const vote = slot.prepares.get(m.replica) ?? (slot.prePrepare?.msg.replica === m.replica ? slot.prePrepare : undefined);
  if (vote && !bytesEqual(vote.msg.digest, m.digest)) rs.noteEquivocation(vote, signed);
  // Committed already (a commit certificate is kept): a further commit is not worth a signature check.
  if (slot.committedDigest) {
    rs.counters.surplusVotes++;
    return;
  }
  if (!rs.auth.verify(signed)) return rs.reject('bad-signature');
  slot.commits.set(m.replica, signed);
  rs.markDirty(slot);
  checkCommitted(rs, slot);
}

/** Prepared (quorum.ts): then it commits. */
export function checkPrepared(rs: ReplicaState, slot: Slot): void {
  if (slot.preparedInView) return;
  const cert = preparedCertificate(rs.q, slot.prePrepare, slot.prepares.values());
  if (!cert) return;
  const pp = cert.prePrepare.msg;
  slot.preparedInView = true;
  slot.cert = cert;
  rs.markDirty(slot);
  if (rs.mayVote(pp.view, pp.seq) && !slot.commits.has(rs.id)) {
    const commit = rs.auth.sign<CommitMsg>({ type: 'commit', view: pp.view, seq: pp.seq, digest: pp.digest, replica: rs.id });
    slot.commits.set(rs.id, commit);
    slot.ownCommitTurn = rs.durability.turn;
    rs.broadcast(rs.frames.encodeSignedFrame(commit));
  }
  checkCommitted(rs, slot);
}

/** Committed-local (quorum.ts): then it executes. */
export function checkCommitted(rs: ReplicaState, slot: Slot): void {
  if (!slot.preparedInView || !slot.prePrepare) return;
  const pp = slot.prePrepare.msg;
  const matching = commitQuorum(rs.q, pp, slot.commits.values());
  if (!matching) return;
  if (slot.committedDigest) {
    if (!bytesEqual(slot.committedDigest, pp.digest)) {
      throw new ProtocolInvariantError(`seq ${slot.seq} committed with two digests`);
    }
    return;
  }
  slot.committedDigest = pp.digest;
  slot.commitCert = matching;
  rs.markDirty(slot);
  rs.events.push({ type: 'committed', seq: slot.seq, digest: pp.digest });
  executeReady(rs);
}

export function executeReady(rs: ReplicaState): void {
  // (a stable certificate applied on the way may find our state diverged and start a transfer)
  while (!rs.transfer) {
    const seq = rs.lastExecuted + 1;
    const slot = rs.slots.get(seq);
    if (!slot || !slot.committedDigest) return;
    const batch = rs.batchFor(slot, slot.committedDigest);
    if (!batch) {
      rs.requestBatch(slot, slot.committedDigest);
      return;
    }
    rs.durability.executed(slot.ownCommitTurn);
    if (slot.prePreparedAt !== undefined) rs.monitor.executed(rs.now - slot.prePreparedAt);
    executeBatch(rs, seq, slot.committedDigest, batch);
  }
}

function executeBatch(rs: ReplicaState, seq: number, digest: Uint8Array, batch: Batch): void {
  const executed: ExecutedRequest[] = [];
  // The agreed time: the batch's, unless an earlier batch's was later (the same on every replica:
  // the digest covers the batch's time, and the previous agreed time is replicated state).
  const timeMs = Math.max(batch.time, rs.clients.timeMs);
  rs.clients.timeMs = timeMs;
  const send: boolean[] = [];
  for (const req of batch.requests) {
    const m = req.msg;
    const record = rs.clients.get(m.client);
    if (record && m.timestamp <= record.timestamp) continue; // at most once
    const system = m.client === OPERATOR_CLIENT || replicaOfPrincipal(m.client) !== undefined;
    const result = system ? reconfigure(rs, seq, m.op, m.client) : rs.app.execute(m.op, { seq, client: m.client, timestamp: m.timestamp, timeMs });
    rs.clients.set(m.client, { timestamp: m.timestamp, result });
    const w = rs.waiting.get(m.client);
    const asked = w !== undefined && w.req.msg.timestamp === m.timestamp && w.asked === true;
    if (w && w.req.msg.timestamp <= m.timestamp) {
      rs.noteExecutedWait(rs.now - w.since);
      rs.waiting.delete(m.client);
    }
    rs.assigned.delete(m.client);
    executed.push({ client: m.client, timestamp: m.timestamp, op: m.op, result });
    send.push(asked || m.repliers === undefined || m.repliers.includes(rs.id));
  }
  replyToBatch(rs, seq, executed, send);
  rs.lastExecuted = seq;
  const membership = advanceMembership(rs.membership, seq);
  if (membership !== rs.membership) switchMembership(rs, membership);
  rs.timers.catchUp.start(rs.now);
  rs.counters.batchesExecuted++;
  if (executed.length > 0) {
    rs.counters.requestsExecuted += executed.length;
    // Progress in this view: the next view change waits the base timeout again. Requests still
    // waiting keep their own timers (no restart: a primary must not starve any client).
    rs.timers.viewChange.reset();
  }
  rs.events.push({ type: 'executed', seq, view: rs.view, digest, requests: executed, timeMs });
  if (seq % rs.opts.checkpointInterval === 0) {
    rs.rollExecutedWaits();
    rs.takeCheckpoint(seq);
  }
  // A stable certificate learned ahead of execution (from a VIEW-CHANGE, a NEW-VIEW or a peer) now
  // applies: it moves the window (or, if our checkpoint differs, reveals a divergence).
  const pending = rs.pendingStable;
  if (pending && pending.seq <= seq) {
    rs.pendingStable = undefined;
    rs.onStableCert(pending);
  }
}

/**
 * Replies to the requests a batch executed: one signed REPLY for a single request; for several,
 * one signed REPLY-BATCH over a Merkle tree of the replies, each client getting its path (one
 * signature per batch instead of one per request). A reply goes out where `send` says so (the
 * request named this replica among its repliers, or none, or the client asked this replica
 * itself); every one is kept for a retransmission. A reply not sent now is kept unmade (no tree, no
 * signature, no encoding) and made when a retransmission asks for it (replyFrameOf): with named
 * repliers the primary sends almost none, and a backup a third of each batch's.
 */
function replyToBatch(rs: ReplicaState, seq: number, executed: ExecutedRequest[], send: readonly boolean[]): void {
  if (executed.length === 0) return;
  // Only what the replies are made of: not the operations (a put-many may be 1 MiB), which a
  // cached reply would otherwise keep until every client of the batch sends its next request.
  const pending: PendingReplyBatch | undefined =
    executed.length > 1
      ? { view: rs.view, seq, replies: executed.map((r) => ({ client: r.client, timestamp: r.timestamp, result: r.result })), made: undefined, dropped: false }
      : undefined;
  executed.forEach((r, index) => {
    const reply: CachedReply['reply'] =
      pending !== undefined ? { batch: pending, index } : { type: 'reply', view: rs.view, client: r.client, timestamp: r.timestamp, replica: rs.id, result: r.result };
    const cached: CachedReply = { view: rs.view, timestamp: r.timestamp, seq, frame: undefined, reply };
    rs.replyFrames.set(r.client, cached);
    if (send[index]) pushReply(rs, r.client, replyFrameOf(rs, cached)!, seq);
    else rs.counters.repliesLeftToOthers++;
  });
  if (pending !== undefined && send.includes(false)) {
    // Kept for the replies not sent: their values only. The tree and the REPLY-BATCH made for the
    // replies sent now are let go, so they die young instead of living for windowSize batches (they
    // were a quarter of what a loaded backup's scavenges kept: bench/results/issue15-2026-12-07-session55.txt); a
    // retransmission that asks makes them again, the same bytes (ed25519 signatures are
    // deterministic), at the cost of the tree's hashes and one signature.
    pending.made = undefined;
    const unsent = rs.unsentReplyBatches;
    unsent.push(pending);
    while (unsent.length > rs.opts.windowSize) {
      const old = unsent.shift()!;
      old.dropped = true;
      old.replies = [];
      old.made = undefined;
    }
  }
}

/**
 * The frame of a cached reply, made on first use: a single REPLY signed; a reply in a batch encoded
 * with its path, the batch's tree built and its REPLY-BATCH signed by the first of its replies sent.
 * ed25519 signatures are deterministic, and everything signed was fixed at execution: the same
 * bytes as if made then.
 */
function replyFrameOf(rs: ReplicaState, cached: CachedReply): Uint8Array | undefined {
  if (cached.frame !== undefined) return cached.frame;
  const reply = cached.reply;
  cached.reply = undefined;
  if (reply === undefined) return undefined;
  if ('type' in reply) {
    cached.frame = rs.frames.encodeSignedFrame(rs.auth.sign<ReplyMsg>(reply));
    return cached.frame;
  }
  const pending = reply.batch;
  if (pending.dropped) return undefined;
  if (pending.made === undefined) {
    const leaves = pending.replies.map((r) => replyLeaf(rs.hash, r.client, r.timestamp, r.result));
    const tree = buildReplyTree(rs.hash, leaves);
    const batch = rs.auth.sign<ReplyBatchMsg>({ type: 'replybatch', view: pending.view, replica: rs.id, seq: pending.seq, count: leaves.length, root: tree.root });
    rs.counters.replyBatchesSigned++;
    pending.made = { batch, paths: tree.paths };
  }
  const r = pending.replies[reply.index]!;
  const batched: BatchedReply = {
    msg: { type: 'reply', view: pending.view, replica: rs.id, client: r.client, timestamp: r.timestamp, result: r.result },
    batch: pending.made.batch,
    index: reply.index,
    path: pending.made.paths[reply.index]!,
  };
  cached.frame = rs.frames.encodeBatchedReplyFrame(batched);
  return cached.frame;
}

function signReply(rs: ReplicaState, client: number, timestamp: number, seq: number, result: Uint8Array): Uint8Array {
  const reply = rs.auth.sign<ReplyMsg>({ type: 'reply', view: rs.view, client, timestamp, replica: rs.id, result });
  const frame = rs.frames.encodeSignedFrame(reply);
  rs.replyFrames.set(client, { view: rs.view, timestamp, seq, frame, reply: undefined });
  return frame;
}

/** A reply to a request executed at `seq` (or earlier): it waits for what execution depended on. */
function pushReply(rs: ReplicaState, client: number, frame: Uint8Array, seq: number): void {
  rs.replies.push({ client, frame, after: rs.durability.replyDependency, seq });
}

function resendReply(rs: ReplicaState, client: number): void {
  const record = rs.clients.get(client);
  if (!record) return;
  const cached = rs.replyFrames.get(client);
  // After a state transfer the sequence number of the cached result is unknown: at most lastExecuted.
  const seq = cached && cached.timestamp === record.timestamp ? cached.seq : rs.lastExecuted;
  // A reply whose batch was let go (unsentReplyBatches) is signed on its own, as after a view change.
  const frame =
    (cached && cached.view === rs.view && cached.timestamp === record.timestamp ? replyFrameOf(rs, cached) : undefined) ??
    signReply(rs, client, record.timestamp, seq, record.result);
  pushReply(rs, client, frame, seq);
}

/** The operator's request: a change of the membership, executed like any request (membership.ts). */
function reconfigure(rs: ReplicaState, seq: number, op: Uint8Array, requester: number): Uint8Array {
  const check = (operator: Uint8Array, replica: ReplicaInfo, admission: Uint8Array): boolean =>
    rs.deps.crypto.verify(operator, admissionBytes(rs.cluster.clusterId, replica), admission);
  const { membership, result } = applyReconfig(rs.membership, op, seq, rs.opts.checkpointInterval, rs.opts.windowSize, requester, check);
  rs.membership = membership;
  if (membership.next) rs.learnConfig(membership.next);
  rs.events.push({ type: 'reconfiguration', seq, result });
  return encodeReconfigResult(result);
}

/**
 * After the last batch of a configuration: the next one is the state's membership from here on
 * (the checkpoint taken at this sequence number covers it). Clients it removed lose their entries
 * in the reply cache, deterministically on every replica.
 */
function switchMembership(rs: ReplicaState, membership: Membership): void {
  rs.membership = membership;
  for (const id of [...rs.clients.records.keys()]) {
    if (!mayHoldClient(membership.current, id)) {
      rs.clients.records.delete(id);
      rs.waiting.delete(id);
      rs.replyFrames.delete(id);
    }
  }
}

/**
 * The audit found our state faulty (options.quitOnDivergence): we ask to leave, with a QUIT signed
 * by our own key as our replica principal (cluster.ts), sent to every member and kept waiting here
 * like any request (its timer, and the relay with a SUSPECT, see it through a faulty primary).
 */
export function quitSelf(rs: ReplicaState, reason: string): void {
  if (!rs.isMember(rs.id)) return;
  const principal = replicaPrincipal(rs.id);
  if (rs.waiting.has(principal)) return;
  const last = rs.clients.get(principal)?.timestamp ?? 0;
  const timestamp = Math.max(last, rs.lastExecuted) + 1;
  const req = rs.auth.sign<RequestMsg>({ type: 'request', client: principal, timestamp, op: encodeReconfigOp({ kind: 'quit', id: rs.id }) });
  rs.events.push({ type: 'quitting', reason });
  rs.broadcast(rs.frames.encodeSignedFrame(req));
  onRequest(rs, req, { kind: 'replica', id: rs.id });
}

/**
 * A replica that is not a member asks to join, with the operator's admission (membership.ts): a JOIN
 * signed with its own key, sent to every member of the configuration in force (it is not one, so
 * it does not broadcast). The shell calls this until the replica is a member; the request is the
 * same each time, so resending it is harmless. `timestamp` comes with the admission (the operator
 * picks it, above any earlier request of this replica: a replica that quit may be admitted again).
 */
export function requestJoin(rs: ReplicaState, self: ReplicaInfo, admission: Uint8Array, timestamp: number): void {
  if (rs.isMember(rs.id) || self.id !== rs.id) return;
  const principal = replicaPrincipal(rs.id);
  if (!rs.joinRequest || rs.joinRequest.msg.timestamp !== timestamp) {
    rs.joinRequest = rs.auth.sign<RequestMsg>({ type: 'request', client: principal, timestamp, op: encodeReconfigOp({ kind: 'join', replica: self, admission }) });
  }
  const frame = rs.frames.encodeSignedFrame(rs.joinRequest);
  // With the configurations since ours: the members we send to may have changed since the keyring.
  const ask = rs.frames.encodeLinkFrame({ type: 'epochsreq', epoch: rs.latestEpoch });
  const latest = rs.configs.get(rs.latestEpoch);
  const to = new Set([...rs.members, ...(latest ? latest.replicas.map((r) => r.id) : [])]);
  for (const r of to) {
    rs.sendTo(r, frame);
    rs.sendTo(r, ask);
  }
}
