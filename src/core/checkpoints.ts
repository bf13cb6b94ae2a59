/**
 * Checkpoints (PBFT section 4.3): our own CHECKPOINT every K executions, 2f+1 matching votes make
 * one stable, and a stable checkpoint truncates the log and moves the window (h, h+L].
 */
import { bytesEqual, bytesKey } from './auth.ts';
import { firstQuorum } from './quorum.ts';
import type { CheckpointCert, CheckpointMsg, Signed } from './messages.ts';
import { CHECKPOINT_PARTITION_COST_BYTES } from './options.ts';
import { KEYS, encodeCheckpointCert, encodePair } from './persist.ts';
import { stateDigest } from './statetree.ts';
import { type ReplicaState, type CheckpointSnapshot, type CheckpointWork } from './state.ts';

/**
 * Our checkpoint at `seq`, just executed. With an application that can freeze its partitions
 * (PartitionedState.freezePartitions) the partitions changed since the last checkpoint are fixed
 * as they are now and read and hashed a bounded number of bytes per turn (opts.checkpointSliceBytes:
 * advanceCheckpoint, from flush()), while execution goes on; the CHECKPOINT is sent when the
 * digest is done. A bulk load that changed every partition then no longer stops the replica for
 * the whole state's merge and hash in one turn. Every partition counts a fixed cost besides its
 * bytes (CHECKPOINT_PARTITION_COST_BYTES), so a checkpoint of many small partitions is spread too.
 * Small checkpoints finish in this turn, as before.
 * Everything the checkpoint covers besides the partitions (client table, membership, whether we
 * sign, the epoch) is taken now, so a reconfiguration executed meanwhile does not change it
 * (test/sim/checkpoint-turns.test.ts orders a JOIN during one). An earlier checkpoint still
 * computing is finished first; so is one that a stable certificate reaches (finishCheckpoint).
 */
export function takeCheckpoint(rs: ReplicaState, seq: number): void {
  if (rs.checkpointWork) finishCheckpoint(rs, 'next');
  const app = rs.app;
  const work: CheckpointWork = {
    seq,
    partitions: [],
    next: 0,
    fresh: true,
    clients: rs.clients.encode(),
    membership: rs.membershipBytes(),
    // Signed by the members of the configuration that ordered `seq` (the operating one): a joining
    // replica computes its checkpoints too, and says nothing until it is a member.
    member: rs.isMember(rs.id),
    epoch: rs.membership.current.epoch,
  };
  // While a reconfiguration is under way, in one turn as before (conservative: the next configuration
  // starts at a checkpoint; the simulator's JOIN during a checkpoint in progress passes either way).
  if (app.freezePartitions === undefined || app.readFrozenPartition === undefined || rs.membership.next !== undefined) {
    rs.syncTree();
    return completeCheckpoint(rs, work);
  }
  work.partitions = app.freezePartitions();
  work.records = new Map();
  rs.checkpointWork = work;
  advanceCheckpoint(rs, rs.opts.checkpointSliceBytes);
}

/**
 * A turn's share of the checkpoint being computed (from flush(): none in the turn that started it);
 * with none computing, of the records our next stable checkpoint will write (prepareRecordsAhead).
 */
export function checkpointTurn(rs: ReplicaState): void {
  const work = rs.checkpointWork;
  if (work === undefined) return rs.prepareRecordsAhead(rs.opts.checkpointSliceBytes);
  if (work.fresh) {
    work.fresh = false;
    return;
  }
  advanceCheckpoint(rs, rs.opts.checkpointSliceBytes);
}

/**
 * Frozen partitions read and hashed until `budget` bytes (at least one partition); completes the
 * checkpoint when none is left.
 */
export function advanceCheckpoint(rs: ReplicaState, budget: number): void {
  const work = rs.checkpointWork;
  if (work === undefined) return;
  const read = rs.app.readFrozenPartition!.bind(rs.app);
  let bytes = 0;
  while (work.next < work.partitions.length && bytes < budget) {
    const i = work.partitions[work.next++]!;
    const b = read(i);
    rs.setLivePartition(i, b);
    // The records its stable checkpoint will write, found now: the certificate's turn then only
    // writes them (state.ts prepareRecordsAhead finds the rest, and those gone stale, before it).
    // Finding them is a second pass over the partition: it counts as one in the budget.
    if (work.records !== undefined && rs.findRecords(work.records, work.seq, i, b)) bytes += b.length;
    bytes += b.length + CHECKPOINT_PARTITION_COST_BYTES;
  }
  if (work.next < work.partitions.length) {
    if (work.fresh) rs.counters.checkpointsOverTurns++;
    return;
  }
  rs.checkpointWork = undefined;
  rs.liveTree.commit();
  completeCheckpoint(rs, work);
}

/**
 * Completes the checkpoint being computed now, in this turn; `why` (the next checkpoint is due, a
 * stable certificate reached it) is counted when partitions were left (counters.checkpointsRushed*).
 */
export function finishCheckpoint(rs: ReplicaState, why?: 'next' | 'stable'): void {
  const work = rs.checkpointWork;
  if (work !== undefined && why !== undefined && work.next < work.partitions.length) {
    if (why === 'next') rs.counters.checkpointsRushedByNext++;
    else rs.counters.checkpointsRushedByStable++;
    rs.counters.checkpointPartitionsRushed += work.partitions.length - work.next;
  }
  advanceCheckpoint(rs, Infinity);
}

/** The live tree holds the state at work.seq: its digest, snapshot and our CHECKPOINT. */
function completeCheckpoint(rs: ReplicaState, work: CheckpointWork): void {
  const { seq, clients, membership } = work;
  const digest = stateDigest(rs.hash, rs.liveTree.root, clients, membership);
  const snapshot = rs.snapshotNow(seq, digest, clients, membership, work.records);
  rs.ownCheckpoints.set(seq, snapshot);
  rs.lastCheckpoint = { seq, digest };
  if (!work.member) return checkStable(rs, seq);
  const msg = rs.auth.sign<CheckpointMsg>({ type: 'checkpoint', seq, digest, replica: rs.id, epoch: work.epoch });
  addCheckpointVote(rs, msg);
  rs.ownCheckpointFrame = { seq, frame: rs.frames.encodeSignedFrame(msg) };
  rs.broadcast(rs.ownCheckpointFrame.frame);
  checkStable(rs, seq);
}

export function onCheckpoint(rs: ReplicaState, signed: Signed<CheckpointMsg>): void {
  const m = signed.msg;
  if (m.seq % rs.opts.checkpointInterval !== 0) return rs.reject('checkpoint-not-on-interval');
  if (m.seq <= rs.h) return rs.reject('stale-checkpoint');
  // Beyond the operating configuration: its signers are the next configuration's (we follow by
  // our own checkpoint at the switch, or by a fetch that brings the epoch proof).
  if (m.seq > rs.epochEnd) return rs.reject('out-of-window');
  const existing = rs.checkpointVotes.get(m.seq)?.get(m.replica);
  if (existing) return rs.reject('duplicate');
  if (!rs.auth.verify(signed)) return rs.reject('bad-signature');
  if (m.seq > rs.highestSeqSeen) rs.highestSeqSeen = m.seq;
  addCheckpointVote(rs, signed);
  checkStable(rs, m.seq);
}

function addCheckpointVote(rs: ReplicaState, signed: Signed<CheckpointMsg>): void {
  const m = signed.msg;
  let votes = rs.checkpointVotes.get(m.seq);
  if (!votes) {
    votes = new Map();
    rs.checkpointVotes.set(m.seq, votes);
  }
  votes.set(m.replica, signed);
  rs.writes.put(KEYS.checkpointVote(m.seq, m.replica), encodePair(signed));
  // Bound memory: each replica keeps at most (L/K + 2) pending checkpoints.
  const perReplicaMax = rs.opts.windowSize / rs.opts.checkpointInterval + 2;
  const mine = [...rs.checkpointVotes.entries()].filter(([, v]) => v.has(m.replica)).map(([s]) => s);
  if (mine.length > perReplicaMax) {
    const lowest = Math.min(...mine);
    rs.checkpointVotes.get(lowest)!.delete(m.replica);
    rs.writes.del(KEYS.checkpointVote(lowest, m.replica));
    if (rs.checkpointVotes.get(lowest)!.size === 0) rs.checkpointVotes.delete(lowest);
  }
}

/** Stable (quorum.ts): matching CHECKPOINTs from a quorum. */
function checkStable(rs: ReplicaState, seq: number): void {
  const votes = rs.checkpointVotes.get(seq);
  if (!votes || seq <= rs.h) return;
  const proof = firstQuorum(votes.values(), (v) => `${v.msg.epoch}:${bytesKey(v.msg.digest)}`, rs.q.checkpoints);
  if (proof) onStableCert(rs, { epoch: proof[0]!.msg.epoch, seq, digest: proof[0]!.msg.digest, proof });
}

/** A verified stable checkpoint certificate, from votes, a VIEW-CHANGE, a NEW-VIEW or a peer. */
export function onStableCert(rs: ReplicaState, cert: CheckpointCert): void {
  if (cert.seq <= rs.h) return;
  // Our own checkpoint at or below it, still being computed, is needed now: to audit ours against
  // the certificate and to make the state on disk the stable one.
  if (rs.checkpointWork && rs.checkpointWork.seq <= cert.seq) {
    finishCheckpoint(rs, 'stable');
    if (cert.seq <= rs.h) return;
  }
  const own = rs.ownCheckpoints.get(cert.seq);
  if (own && !rs.transfer) {
    if (bytesEqual(own.digest, cert.digest)) return advanceStable(rs, cert, own);
    // Audit: our state after executing cert.seq differs from what 2f+1 replicas computed.
    rs.counters.divergences++;
    rs.events.push({ type: 'state-diverged', seq: cert.seq, own: own.digest, agreed: cert.digest });
    if (rs.opts.quitOnDivergence) rs.quitSelf(`own state at ${cert.seq} differs from the stable checkpoint`);
    rs.ownCheckpoints.delete(cert.seq);
    return rs.startTransfer(cert, 'state diverged from the stable checkpoint');
  }
  if (rs.transfer) {
    if (cert.seq > rs.transfer.target.seq) rs.startTransfer(cert, 'newer stable checkpoint');
    return;
  }
  if (cert.seq > rs.lastExecuted) {
    // Behind: keep executing if we can; catchUp() transfers state if we stay stuck. (A certificate
    // of a configuration we do not know yet is from a reconfiguration we have not executed: we
    // learn it by executing up to it, or from the state a transfer installs.)
    if (!rs.pendingStable || cert.seq > rs.pendingStable.seq) rs.pendingStable = cert;
    if (cert.seq > rs.lastExecuted + rs.opts.windowSize) rs.startTransfer(cert, 'far behind the stable checkpoint');
    return;
  }
  // Executed past it without a checkpoint of our own (after a state transfer): adopt the proof.
  advanceStable(rs, cert, undefined);
}

/** Moves the low watermark to cert.seq and discards everything at or below it. */
export function advanceStable(rs: ReplicaState, cert: CheckpointCert, snapshot: CheckpointSnapshot | undefined): void {
  rs.stable = cert;
  if (snapshot) {
    rs.stableSnapshot = snapshot;
    rs.persistSnapshot(snapshot);
    const config = rs.configOf(snapshot.membership);
    if (config) {
      rs.learnConfig(config);
      if (config.since === cert.seq && config.epoch > 0) rs.storeEpochProof(rs.proofOf(cert, snapshot));
    }
  } else if (rs.stableSnapshot && rs.stableSnapshot.seq < cert.seq) rs.stableSnapshot = undefined;
  rs.enterEpoch();
  rs.counters.checkpointsStable++;
  rs.writes.put(KEYS.stable, encodeCheckpointCert(cert));
  for (const seq of [...rs.slots.keys()]) if (seq <= cert.seq) rs.slots.delete(seq);
  for (const seq of [...rs.checkpointVotes.keys()]) if (seq <= cert.seq) rs.checkpointVotes.delete(seq);
  for (const seq of [...rs.ownCheckpoints.keys()]) if (seq < cert.seq) rs.ownCheckpoints.delete(seq);
  for (const seq of rs.dirtySlots) if (seq <= cert.seq) rs.dirtySlots.delete(seq);
  // From where this incarnation's last clear ended: nothing at or below it is written again (the
  // log and the votes take nothing at or below h), and a range clear that starts at the prefix
  // walks every key the clears before deleted, until RocksDB compacts them away (with one client
  // 1 ms at the start of a run, 4 ms thirty checkpoints later).
  const from = rs.clearedThrough;
  rs.clears.push({ gte: from === undefined ? KEYS.logPrefix : KEYS.logBelow(from + 1), lt: KEYS.logBelow(cert.seq + 1) });
  rs.clears.push({ gte: from === undefined ? KEYS.checkpointVotePrefix : KEYS.checkpointVotesBelow(from + 1), lt: KEYS.checkpointVotesBelow(cert.seq + 1) });
  rs.clearedThrough = cert.seq;
  if (rs.nextSeq <= cert.seq) rs.nextSeq = cert.seq + 1;
  if (rs.pendingStable && rs.pendingStable.seq <= cert.seq) rs.pendingStable = undefined;
  rs.events.push({ type: 'checkpoint-stable', seq: cert.seq, digest: cert.digest });
  rs.installNewViewAhead();
}

