/**
 * Catching up without a state transfer: retransmission of our own recent messages, fetching
 * committed log entries (with their commit certificates) and missing batches from peers.
 */
import { bytesEqual } from './auth.ts';
import { makeBatch, type Batch } from './batch.ts';
import type { CheckpointCert, CommittedEntry, EpochProof, RequestMsg, Signed } from './messages.ts';
import { UNKNOWN_EPOCH, type ReplicaState, type Slot } from './state.ts';

export function retransmit(rs: ReplicaState): void {
  // CHECKPOINT messages lost on the way would leave the checkpoint unstable and the window full.
  if (rs.ownCheckpointFrame && rs.ownCheckpointFrame.seq > rs.h) {
    rs.counters.retransmissions++;
    rs.broadcast(rs.ownCheckpointFrame.frame);
  }
  if (rs.viewChanging) {
    if (rs.ownViewChangeFrame) {
      rs.counters.retransmissions++;
      rs.broadcast(rs.ownViewChangeFrame);
    }
  } else {
    let budget = 16;
    for (const slot of rs.slots.values()) {
      if (budget === 0) break;
      if (slot.committedDigest || slot.seq <= rs.lastExecuted || rs.now - slot.touched < rs.opts.retransmitTicks) continue;
      if (!slot.prePrepare) continue;
      budget--;
      rs.counters.retransmissions++;
      if (slot.prePrepare.msg.replica === rs.id) {
        // (A PRE-PREPARE of our NEW-VIEW may name a batch we hold unchecked: it goes without it then.)
        const batch = rs.batchFor(slot, slot.prePrepare.msg.digest);
        rs.broadcast(rs.frames.encodeSignedFrame(slot.prePrepare, batch && signedByClients(rs, batch) ? batch.requests : undefined));
      }
      const own = slot.prepares.get(rs.id);
      if (own) rs.broadcast(rs.frames.encodeSignedFrame(own));
      const commit = slot.commits.get(rs.id);
      if (commit) rs.broadcast(rs.frames.encodeSignedFrame(commit));
      slot.touched = rs.now;
    }
  }
  // A configuration whose proof we lack (a state transfer took us past its boundary checkpoint): ask
  // a peer for the proofs from there on, so that evidence we hold in later epochs can be verified by
  // a third party (membership.ts: each epoch is proven from the one before).
  for (let e = 1; e <= rs.stable.epoch; e++) {
    if (rs.epochProofs.has(e)) continue;
    if (rs.configs.has(e - 1)) rs.sendTo(rs.pickPeer(rs.peerCursor++), rs.frames.encodeLinkFrame({ type: 'epochsreq', epoch: e - 1 }));
    break;
  }
  // Replicas that run a view we have not entered: ask one of them for its NEW-VIEW.
  const ahead = [...rs.aheadViews.entries()].filter(([, v]) => v > rs.view || (v === rs.view && rs.viewChanging));
  if (ahead.length >= rs.q.join) {
    const [peer, view] = ahead[rs.peerCursor++ % ahead.length]!;
    rs.sendTo(peer, rs.frames.encodeLinkFrame({ type: 'newviewreq', view }));
  }
}

/** A replica that stopped progressing while others went on fetches committed entries, then state. */
export function catchUp(rs: ReplicaState): void {
  if (rs.transfer) return;
  const stalled = rs.timers.catchUp.fired(rs.now);
  if (rs.pendingStable && stalled && rs.lastExecuted < rs.pendingStable.seq) {
    const next = rs.slots.get(rs.lastExecuted + 1);
    // Entries at or below a stable checkpoint are gone at the peers: only state transfer helps.
    if (!next?.committedDigest || rs.timers.catchUp.elapsed(rs.now) >= 2 * rs.timers.catchUp.after) {
      return rs.startTransfer(rs.pendingStable, 'behind the stable checkpoint');
    }
  }
  if (!stalled) return;
  if (rs.highestSeqSeen <= rs.lastExecuted) {
    // No sign that anyone is ahead; still, a replica that stands still asks a peer now and then.
    if (!rs.timers.probe.ready(rs.now)) return;
    rs.timers.probe.start(rs.now);
    const from = rs.lastExecuted + 1;
    rs.sendTo(rs.pickPeer(rs.peerCursor++), rs.frames.encodeLinkFrame({ type: 'fetch', from, to: from + rs.opts.fetchEntriesMax - 1, epoch: rs.latestEpoch }));
    return;
  }
  fetchEntries(rs);
}

/** Asks a peer for the committed entries after lastExecuted that others are known to have (one fetch at a time). */
export function fetchEntries(rs: ReplicaState): void {
  const f = rs.fetchState;
  if (f && !rs.timers.fetch.ready(rs.now)) return;
  const from = rs.lastExecuted + 1;
  const to = Math.min(from + rs.opts.fetchEntriesMax - 1, rs.highestSeqSeen);
  const peer = rs.pickPeer(f?.cursor ?? 0);
  rs.fetchState = { peer, cursor: (f?.cursor ?? 0) + 1 };
  rs.timers.fetch.start(rs.now);
  rs.sendTo(peer, rs.frames.encodeLinkFrame({ type: 'fetch', from, to, epoch: rs.latestEpoch }));
}

export function requestBatch(rs: ReplicaState, slot: Slot, digest: Uint8Array): void {
  if (slot.batchRequestedAt !== undefined && rs.now - slot.batchRequestedAt < rs.opts.fetchTimeoutTicks) return;
  slot.batchRequestedAt = rs.now;
  const peer = rs.pickPeer(rs.peerCursor++);
  rs.sendTo(peer, rs.frames.encodeLinkFrame({ type: 'batchreq', seq: slot.seq, digest }));
}

export function serveFetch(rs: ReplicaState, peer: number, from: number, to: number, epoch: number): void {
  const entries: CommittedEntry[] = [];
  const last = Math.min(to, from + rs.opts.fetchEntriesMax - 1);
  // The reply must fit a frame: batches of up to a quarter of the frame limit, at least one entry.
  const bytesMax = rs.opts.frameBytesMax / 4;
  let bytes = 0;
  // Entries at or below our stable checkpoint are gone; the certificate tells the peer to transfer state.
  for (let seq = from <= rs.h ? last + 1 : from; seq <= last; seq++) {
    const slot = rs.slots.get(seq);
    if (!slot?.committedDigest || !slot.commitCert) break;
    const batch = rs.batchFor(slot, slot.committedDigest);
    if (!batch || (entries.length > 0 && bytes + batch.bytes > bytesMax) || !signedByClients(rs, batch)) break;
    bytes += batch.bytes;
    entries.push({ seq, commits: slot.commitCert, batch: batch.requests, time: batch.time });
  }
  // The configurations the asker has not learned, up to our stable checkpoint's (it verifies each
  // from the one before: membership.ts).
  const proofs: EpochProof[] = [];
  for (let e = epoch + 1; e <= rs.stable.epoch && proofs.length < 16; e++) {
    const p = rs.epochProofs.get(e);
    if (!p) break;
    proofs.push(p);
  }
  rs.sendTo(peer, rs.frames.encodeLinkFrame({ type: 'fetched', entries, stable: rs.stable, proofs }));
}

export function onFetched(rs: ReplicaState, peer: number, entries: CommittedEntry[], stable: CheckpointCert, proofs: EpochProof[]): void {
  if (rs.fetchState?.peer === peer) rs.timers.fetch.stop();
  for (const proof of proofs) {
    const reason = rs.learnEpochProof(proof);
    if (reason === UNKNOWN_EPOCH) break;
    if (reason) return rs.misbehaved(peer, 'invalid-epoch-proof', reason);
  }
  if (stable.seq > rs.h) {
    const reason = rs.checkStableCert(stable);
    if (reason === UNKNOWN_EPOCH) return rs.reject('unknown-epoch');
    if (reason) return rs.misbehaved(peer, 'invalid-checkpoint-certificate', reason);
    rs.onStableCert(stable);
  }
  for (const e of entries) {
    if (e.seq <= rs.lastExecuted || !rs.inWindow(e.seq)) continue;
    const slot = rs.slotFor(e.seq);
    if (slot.committedDigest) continue;
    const digest = checkCommitCert(rs, e);
    if (!digest) return rs.misbehaved(peer, 'invalid-commit-certificate', 'fetched entry with an invalid commit certificate');
    for (const c of e.commits) rs.crossCheck(c);
    const batch = rs.checkBatch(digest, e.batch, e.time, peer);
    if (!batch) return;
    rs.addBatch(slot, batch);
    slot.committedDigest = digest;
    slot.commitCert = e.commits;
    rs.counters.entriesFetched++;
    rs.markDirty(slot);
    rs.events.push({ type: 'committed', seq: e.seq, digest });
  }
  rs.executeReady();
}

/** 2f+1 matching COMMITs from distinct replicas: the digest is committed at that sequence number. */
function checkCommitCert(rs: ReplicaState, e: CommittedEntry): Uint8Array | undefined {
  const first = e.commits[0]?.msg;
  if (!first || first.seq !== e.seq) return undefined;
  const senders = new Set<number>();
  for (const c of e.commits) {
    const m = c.msg;
    if (m.seq !== e.seq || m.view !== first.view || !bytesEqual(m.digest, first.digest)) return undefined;
    if (!rs.isMember(m.replica) || senders.has(m.replica) || !rs.auth.verify(c)) return undefined;
    senders.add(m.replica);
  }
  return senders.size >= rs.q.commits ? first.digest : undefined;
}

/**
 * Whether every client signature of a batch we hold checks out, before we hand it to a peer. A
 * backup that skipped the client signatures of a fresh PRE-PREPARE (quorum.ts,
 * skipsClientSignatures) holds what the primary sent: the digest covers the request bodies, which a
 * certificate proves genuine, but not the signatures, so a faulty primary could have sent it bodies
 * with signatures of its own. Serving those would make the peer (acceptBatch, onFetched) report us,
 * a correct replica, as misbehaving. Only batches marked `unchecked` (those, and batches restored
 * from disk: at most a log window of them) are verified, once; a batch that fails is not served,
 * and the peer asks another.
 */
function signedByClients(rs: ReplicaState, batch: Batch): boolean {
  if (!batch.unchecked || rs.deps.unsafeTestOnly?.serveUncheckedBatches === true) return true;
  for (const r of batch.requests) if (!rs.auth.hasClient(r.msg.client) || !rs.auth.verify(r)) return false;
  batch.unchecked = false;
  return true;
}

export function serveBatch(rs: ReplicaState, peer: number, seq: number, digest: Uint8Array): void {
  const slot = rs.slots.get(seq);
  const batch = slot && rs.batchFor(slot, digest);
  if (batch && signedByClients(rs, batch)) rs.sendTo(peer, rs.frames.encodeLinkFrame({ type: 'batch', seq, digest, batch: batch.requests, time: batch.time }));
}

/** True when the slot's pre-prepare, prepared certificate or commit names this digest and its batch is missing. */
export function expectsBatch(rs: ReplicaState, slot: Slot, digest: Uint8Array): boolean {
  if (rs.batchFor(slot, digest)) return false;
  for (const named of [slot.prePrepare?.msg.digest, slot.cert?.prePrepare.msg.digest, slot.committedDigest]) {
    if (named !== undefined && bytesEqual(named, digest)) return true;
  }
  return false;
}

export function acceptBatch(rs: ReplicaState, slot: Slot, digest: Uint8Array, requests: Signed<RequestMsg>[], time: number, from: number): void {
  const batch = makeBatch(rs.hash, requests, time);
  if (!bytesEqual(batch.digest, digest)) return rs.misbehaved(from, 'batch-digest-mismatch', 'batch does not match its digest');
  // A batch named by a certificate was accepted by at least f+1 correct replicas, which checked its
  // client signatures; checking them again here keeps only signed requests in our log regardless.
  for (const r of requests) {
    if (!rs.auth.hasClient(r.msg.client) || !rs.auth.verify(r)) return rs.misbehaved(from, 'batch-with-bad-request', 'batch with an unsigned request');
  }
  rs.addBatch(slot, batch);
  rs.markDirty(slot);
  // Its requests are ordered (a PRE-PREPARE or a certificate names the batch): they wait for the primary no longer.
  rs.noteOrdered(batch.requests, false);
}
