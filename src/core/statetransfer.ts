/**
 * State transfer for a replica behind the stable checkpoint: only the partitions whose digests
 * differ, compressed, checked against the certified state digest (session bookkeeping: transfer.ts).
 */
import { bytesEqual } from './auth.ts';
import { ClientTable } from './clienttable.ts';
import type { CheckpointCert, Digest, StatePart, StateReply } from './messages.ts';
import { decodeMembership, mayHoldInTable } from './membership.ts';
import { leafDigest, stateDigest } from './statetree.ts';
import { TransferSession, checkGroupLeaves, checkMeta, differingGroups, differingPositions, leafKey, leafPrefixes, mergeLeaves, packPartitions, partitionMatches, unpackPartitions } from './transfer.ts';
import { assertNever, type ReplicaState } from './state.ts';
import { ProtocolInvariantError } from './types.ts';

export function startTransfer(rs: ReplicaState, target: CheckpointCert, reason: string): void {
  if (rs.transfer && rs.transfer.target.seq >= target.seq) return;
  rs.syncTree();
  if (target.seq > rs.h) {
    // Move the window now: keep ordering new requests as an observer while the state arrives.
    rs.advanceStable(target, undefined);
  }
  const candidates = target.proof.map((c) => c.msg.replica).filter((r) => r !== rs.id);
  const peers = candidates.length > 0 ? candidates : rs.members.filter((r) => r !== rs.id);
  if (rs.transfer) keepReceived(rs, rs.transfer);
  rs.transfer = new TransferSession(target, rs.now, reason, peers, rs.transferCache);
  rs.counters.stateTransfers++;
  rs.pendingStable = undefined;
  rs.events.push({ type: 'state-transfer-started', seq: target.seq, reason });
  askTransfer(rs, { kind: 'meta' });
}

function keepReceived(rs: ReplicaState, session: TransferSession): void {
  for (const bytes of session.received.values()) {
    if (rs.transferCache.size > 100_000) rs.transferCache.clear();
    rs.transferCache.set(leafKey(leafDigest(rs.hash, bytes)), bytes);
  }
}

/** A request for leaves, with the prefixes of our own leaves unless a sparse answer failed. */
function leavesPart(rs: ReplicaState, t: TransferSession, groups: number[]): StatePart {
  if (t.fullLeaves) return { kind: 'leaves', groups };
  return { kind: 'leaves', groups, have: groups.map((g) => leafPrefixes(rs.liveTree.groupLeaves(g))) };
}

function askTransfer(rs: ReplicaState, part: StatePart, newPeer = true): void {
  const t = rs.transfer!;
  if (newPeer || t.peer < 0) t.peer = t.nextPeer();
  if (part.kind === 'leaves' && part.have) for (const h of part.have) t.bytesSent += h.length;
  t.outstanding = part;
  t.requestedAt = rs.now;
  rs.sendTo(t.peer, rs.frames.encodeLinkFrame({ type: 'statereq', seq: t.target.seq, part }));
}

export function driveTransfer(rs: ReplicaState): void {
  const t = rs.transfer;
  if (!t || !t.outstanding) return;
  if (rs.now - t.requestedAt >= rs.opts.fetchTimeoutTicks) askTransfer(rs, t.outstanding, true);
}

export function serveState(rs: ReplicaState, peer: number, seq: number, part: StatePart): void {
  const snap = rs.stableSnapshot;
  const reply = (r: StateReply): void => rs.sendTo(peer, rs.frames.encodeLinkFrame({ type: 'state', seq, reply: r }));
  if (!snap || snap.seq !== seq || rs.stable.seq !== seq) {
    // We serve only our stable checkpoint; tell the peer which one that is.
    return reply({ kind: 'unavailable', stable: rs.stable });
  }
  switch (part.kind) {
    case 'meta':
      return reply({
        kind: 'meta',
        checkpoint: rs.stable,
        partitionCount: snap.tree.partitionCount,
        groupDigests: snap.tree.groups,
        clients: snap.clients,
        membership: snap.membership,
      });
    case 'leaves': {
      const groups: Array<{ group: number; leaves: Digest[]; positions?: number[] }> = [];
      part.groups.forEach((g, i) => {
        if (!Number.isInteger(g) || g < 0 || g >= snap.tree.groupCount || groups.length >= 4096) return;
        const leaves = snap.tree.groupLeaves(g);
        const have = part.have?.[i];
        if (!have) return groups.push({ group: g, leaves });
        const positions = differingPositions(leaves, have);
        return groups.push({ group: g, leaves: positions.map((k) => leaves[k]!), positions });
      });
      return reply({ kind: 'leaves', groups });
    }
    case 'partitions': {
      const indices: number[] = [];
      const parts: Uint8Array[] = [];
      let bytes = 0;
      for (const i of part.indices) {
        const p = snap.partitions.at(i);
        if (p === undefined) continue;
        if (indices.length > 0 && bytes + p.length > rs.opts.stateChunkBytesMax) break;
        indices.push(i);
        parts.push(p);
        bytes += p.length + 4;
      }
      const raw = packPartitions(parts);
      return reply({ kind: 'partitions', indices, compressed: rs.deps.compress(raw), rawBytes: raw.length });
    }
    default:
      return assertNever(part);
  }
}

export function onStateReply(rs: ReplicaState, peer: number, seq: number, reply: StateReply): void {
  const t = rs.transfer;
  if (!t || peer !== t.peer || seq !== t.target.seq || !t.outstanding) return;
  const bad = (reason: string): void => {
    t.badPeers.add(peer);
    rs.misbehaved(peer, 'bad-state-transfer', reason);
    const part = t.outstanding!;
    askTransfer(rs, part.kind === 'leaves' ? leavesPart(rs, t, part.groups) : part, true);
  };
  switch (reply.kind) {
    case 'unavailable': {
      if (reply.stable.seq > t.target.seq && !rs.checkStableCert(reply.stable)) {
        return startTransfer(rs, reply.stable, 'newer stable checkpoint');
      }
      return askTransfer(rs, t.outstanding, true);
    }
    case 'meta': {
      if (t.outstanding.kind !== 'meta') return;
      if (reply.partitionCount !== rs.app.partitionCount) return bad('state meta with a wrong partition count');
      const reason = checkMeta(rs.hash, reply.partitionCount, t.target, reply.groupDigests, reply.clients, reply.membership);
      if (reason) return bad(reason);
      const membership = decodeMembership(reply.membership);
      if (!membership.ok || membership.value.current.epoch !== t.target.epoch) return bad('state meta with a malformed membership');
      if (!ClientTable.decode(reply.clients, (c) => mayHoldInTable(membership.value, c))) return bad('state meta with a malformed client table');
      t.bytesReceived += reply.clients.length + reply.membership.length + 32 * reply.groupDigests.length;
      t.meta = { groupDigests: reply.groupDigests, clients: reply.clients, membership: reply.membership };
      t.groupsNeeded = differingGroups(reply.groupDigests, rs.liveTree);
      return nextTransferStep(rs);
    }
    case 'leaves': {
      if (t.outstanding.kind !== 'leaves' || !t.meta) return;
      const asked = new Set(t.outstanding.groups);
      for (const g of reply.groups) {
        if (!asked.has(g.group)) return bad('state leaves for a group not asked');
        let leaves = g.leaves;
        if (g.positions) {
          // A sparse answer: our own leaves fill the positions whose prefixes matched.
          const merged = mergeLeaves(rs.liveTree.groupLeaves(g.group), g.leaves, g.positions);
          if (!merged) return bad('state leaves with malformed positions');
          leaves = merged;
        }
        const reason = checkGroupLeaves(rs.hash, rs.app.partitionCount, g.group, leaves, t.meta.groupDigests[g.group]!);
        if (reason) {
          // Ask for whole groups from now on: a sparse answer can also fail by a prefix collision.
          if (g.positions) t.fullLeaves = true;
          return bad(reason);
        }
        t.bytesReceived += 32 * g.leaves.length + (g.positions ? g.positions.length : 0);
        t.leaves.set(g.group, leaves);
        const base = g.group * rs.liveTree.groupSize;
        leaves.forEach((leaf, k) => {
          if (!bytesEqual(leaf, rs.liveTree.leaves.get(base + k))) t.partitionsNeeded.set(base + k, leaf);
        });
      }
      t.groupsNeeded = t.groupsNeeded.filter((g) => !t.leaves.has(g));
      if (reply.groups.length === 0) return bad('state leaves reply is empty');
      return nextTransferStep(rs);
    }
    case 'partitions': {
      if (t.outstanding.kind !== 'partitions') return;
      const raw = rs.deps.decompress(reply.compressed, Math.min(reply.rawBytes, 2 * rs.opts.stateChunkBytesMax + 1024 * 1024));
      if (!raw || raw.length !== reply.rawBytes) return bad('state partitions do not decompress');
      const parts = unpackPartitions(raw, reply.indices.length);
      if (!parts || reply.indices.length === 0) return bad('state partitions are malformed');
      for (let k = 0; k < parts.length; k++) {
        const index = reply.indices[k]!;
        const leaf = t.partitionsNeeded.get(index);
        if (!leaf) return bad('state partition not asked');
        if (!partitionMatches(rs.hash, parts[k]!, leaf)) return bad('state partition does not match its digest');
        t.received.set(index, parts[k]!);
        t.partitionsNeeded.delete(index);
        t.partitionsFetched++;
      }
      t.bytesReceived += reply.compressed.length;
      return nextTransferStep(rs);
    }
    default:
      return assertNever(reply);
  }
}

function nextTransferStep(rs: ReplicaState): void {
  const t = rs.transfer!;
  if (t.groupsNeeded.length > 0) return askTransfer(rs, leavesPart(rs, t, t.groupsNeeded.slice(0, 256)), false);
  // Reuse partitions received by an earlier session when they still match.
  for (const [index, leaf] of t.partitionsNeeded) {
    const cached = rs.transferCache.get(leafKey(leaf));
    if (cached) {
      t.received.set(index, cached);
      t.partitionsNeeded.delete(index);
    }
  }
  if (t.partitionsNeeded.size > 0) {
    return askTransfer(rs, { kind: 'partitions', indices: [...t.partitionsNeeded.keys()].slice(0, 1024) }, false);
  }
  installTransfer(rs, t);
}

function installTransfer(rs: ReplicaState, t: TransferSession): void {
  const meta = t.meta!;
  for (const [index, bytes] of t.received) {
    const res = rs.app.writePartition(index, bytes);
    if (!res.ok) throw new ProtocolInvariantError(`certified partition ${index} rejected by the application: ${res.reason}`);
  }
  const membership = decodeMembership(meta.membership);
  if (!membership.ok) throw new ProtocolInvariantError(`certified membership does not decode: ${membership.reason}`);
  const table = ClientTable.decode(meta.clients, (c) => mayHoldInTable(membership.value, c))!;
  rs.clients.assign(table);
  rs.replyFrames.clear();
  rs.unsentReplyBatches.length = 0;
  rs.membership = membership.value;
  rs.learnConfig(membership.value.current);
  if (membership.value.next) rs.learnConfig(membership.value.next);
  rs.syncTree();
  const digest = stateDigest(rs.hash, rs.liveTree.root, meta.clients, meta.membership);
  if (!bytesEqual(digest, t.target.digest)) {
    throw new ProtocolInvariantError(`state after transfer to ${t.target.seq} does not match the certificate`);
  }
  rs.transferCache.clear();
  rs.transfer = undefined;
  rs.lastExecuted = t.target.seq;
  rs.timers.catchUp.start(rs.now);
  for (const [c, w] of rs.waiting) {
    const r = rs.clients.get(c);
    if (r && w.req.msg.timestamp <= r.timestamp) rs.waiting.delete(c);
  }
  const snapshot = rs.snapshotNow(t.target.seq, digest, meta.clients, meta.membership);
  rs.ownCheckpoints.set(t.target.seq, snapshot);
  rs.lastCheckpoint = { seq: t.target.seq, digest };
  if (rs.stable.seq === t.target.seq) rs.stableSnapshot = snapshot;
  rs.persistSnapshot(snapshot);
  const config = membership.value.current;
  if (config.epoch > 0 && config.since === t.target.seq) rs.storeEpochProof(rs.proofOf(t.target, snapshot));
  // The configuration of the stable checkpoint may have been unknown until now (we only followed).
  rs.enterEpoch();
  rs.events.push({
    type: 'state-transfer-completed',
    seq: t.target.seq,
    partitionsFetched: t.partitionsFetched,
    partitionCount: rs.app.partitionCount,
    bytesReceived: t.bytesReceived,
    bytesSent: t.bytesSent,
    ticks: rs.now - t.startedAt,
  });
  if (rs.nextSeq <= rs.lastExecuted) rs.nextSeq = rs.lastExecuted + 1;
  rs.executeReady();
  // Entries right after the checkpoint that went by during the transfer: fetch them now, before the
  // peers' next stable checkpoint truncates them (waiting catchUpTicks under load means another transfer).
  if (!rs.transfer && rs.highestSeqSeen > rs.lastExecuted && !rs.slots.get(rs.lastExecuted + 1)?.committedDigest) {
    rs.fetchState = undefined;
    rs.timers.fetch.stop();
    rs.fetchEntries();
  }
}

