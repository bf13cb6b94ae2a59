/**
 * State transfer session (requester side): fetch the state of a stable checkpoint, certified by
 * 2f+1 CHECKPOINT messages, moving only the partitions whose digests differ from our own.
 *
 *   meta        group digests + client table + membership; checked: H(root(groups), clients,
 *               membership) = certified digest
 *   leaves      leaf digests of the groups that differ; the asker sends a 4-byte prefix of each of
 *               its own leaves and the peer sends only the leaves that differ; checked: the asker's
 *               own leaves with the peer's in their places hash to the certified group digest
 *   partitions  bytes of the partitions whose leaves differ, compressed; checked against the leaves
 *
 * Every reply is checked against what the certificate implies, so a byzantine peer can only waste
 * a round trip: it is marked bad for this session and another peer is asked.
 */
import { bytesEqual, bytesKey } from './auth.ts';
import type { CheckpointCert, Digest, StatePart } from './messages.ts';
import { groupDigest, groupSizeFor, leafDigest, rootDigest, stateDigest, type Hash, type StateTree } from './statetree.ts';

export interface TransferMeta {
  groupDigests: Digest[];
  clients: Uint8Array;
  membership: Uint8Array;
}

/** One state transfer in progress: what it has, what it still needs, whom it asked. */
export class TransferSession {
  meta?: TransferMeta;
  /** Groups whose leaves we still need. */
  groupsNeeded: number[] = [];
  readonly leaves = new Map<number, Digest[]>();
  /** Partitions whose bytes we still need, with their certified leaf digests. */
  partitionsNeeded = new Map<number, Digest>();
  /** Partition bytes received and checked, by index. */
  readonly received = new Map<number, Uint8Array>();
  /** The request outstanding: which peer, when, and what. */
  peer = -1;
  requestedAt = 0;
  outstanding?: StatePart;
  readonly badPeers = new Set<number>();
  /** Ask for whole groups of leaves (after a sparse answer failed its check). */
  fullLeaves = false;
  bytesReceived = 0;
  bytesSent = 0;
  partitionsFetched = 0;
  private peerCursor = 0;

  constructor(
    readonly target: CheckpointCert,
    readonly startedAt: number,
    readonly reason: string,
    private readonly candidates: number[],
    /** Partitions received by an earlier session, by leaf digest: reused when they still match. */
    readonly cache: Map<string, Uint8Array>,
  ) {}

  /** Next peer to ask, skipping those that misbehaved (all of them again if every peer did). */
  nextPeer(): number {
    const usable = this.candidates.filter((p) => !this.badPeers.has(p));
    const pool = usable.length > 0 ? usable : this.candidates;
    const peer = pool[this.peerCursor % pool.length]!;
    this.peerCursor++;
    return peer;
  }
}

/** Checks a meta reply against the certified digest. */
export function checkMeta(
  hash: Hash,
  partitionCount: number,
  target: CheckpointCert,
  groupDigests: Digest[],
  clients: Uint8Array,
  membership: Uint8Array,
): string | undefined {
  const groupSize = groupSizeFor(partitionCount);
  if (groupDigests.length !== Math.ceil(partitionCount / groupSize)) return 'state meta: wrong number of groups';
  const root = rootDigest(hash, partitionCount, groupDigests);
  if (!bytesEqual(stateDigest(hash, root, clients, membership), target.digest)) return 'state meta does not match the certified digest';
  return undefined;
}

/** Groups whose certified digest differs from ours. */
export function differingGroups(groupDigests: Digest[], own: StateTree): number[] {
  const out: number[] = [];
  for (let j = 0; j < groupDigests.length; j++) if (!bytesEqual(groupDigests[j]!, own.groups[j]!)) out.push(j);
  return out;
}

export function checkGroupLeaves(
  hash: Hash,
  partitionCount: number,
  group: number,
  leaves: Digest[],
  expected: Digest,
): string | undefined {
  const groupSize = groupSizeFor(partitionCount);
  const count = Math.min(partitionCount, (group + 1) * groupSize) - group * groupSize;
  if (leaves.length !== count) return 'state leaves: wrong count for group';
  if (!bytesEqual(groupDigest(hash, leaves), expected)) return 'state leaves do not match the group digest';
  return undefined;
}

/** Bytes of each own leaf digest sent with a request for leaves (see StatePart 'leaves'). */
export const LEAF_PREFIX_BYTES = 4;

/** The first LEAF_PREFIX_BYTES of each leaf, concatenated. */
export function leafPrefixes(leaves: readonly Digest[]): Uint8Array {
  const out = new Uint8Array(leaves.length * LEAF_PREFIX_BYTES);
  leaves.forEach((leaf, k) => out.set(leaf.subarray(0, LEAF_PREFIX_BYTES), k * LEAF_PREFIX_BYTES));
  return out;
}

/** Serving side: the positions of the leaves whose prefix differs from the asker's (all when `have` does not fit). */
export function differingPositions(leaves: readonly Digest[], have: Uint8Array): number[] {
  const all = leaves.map((_, k) => k);
  if (have.length !== leaves.length * LEAF_PREFIX_BYTES) return all;
  return all.filter((k) => {
    const leaf = leaves[k]!;
    for (let b = 0; b < LEAF_PREFIX_BYTES; b++) if (leaf[b] !== have[k * LEAF_PREFIX_BYTES + b]) return true;
    return false;
  });
}

/**
 * Asking side: our own leaves of a group with the peer's at `positions` (strictly increasing, in
 * range). Undefined when the positions are malformed. The caller checks the result against the
 * certified group digest, which is what makes it trustworthy.
 */
export function mergeLeaves(own: readonly Digest[], leaves: readonly Digest[], positions: readonly number[]): Digest[] | undefined {
  if (positions.length !== leaves.length) return undefined;
  const out = own.slice();
  let last = -1;
  for (let i = 0; i < positions.length; i++) {
    const k = positions[i]!;
    if (k <= last || k >= own.length) return undefined;
    out[k] = leaves[i]!;
    last = k;
  }
  return out;
}

/** Packs partitions as [u32 length][bytes]... (the blob that is compressed). */
export function packPartitions(parts: readonly Uint8Array[]): Uint8Array {
  let len = 0;
  for (const p of parts) len += 4 + p.length;
  const out = new Uint8Array(len);
  const view = new DataView(out.buffer);
  let off = 0;
  for (const p of parts) {
    view.setUint32(off, p.length);
    out.set(p, off + 4);
    off += 4 + p.length;
  }
  return out;
}

export function unpackPartitions(blob: Uint8Array, count: number): Uint8Array[] | undefined {
  const view = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
  const out: Uint8Array[] = [];
  let off = 0;
  for (let i = 0; i < count; i++) {
    if (off + 4 > blob.length) return undefined;
    const len = view.getUint32(off);
    if (off + 4 + len > blob.length) return undefined;
    out.push(blob.slice(off + 4, off + 4 + len));
    off += 4 + len;
  }
  return off === blob.length ? out : undefined;
}

export function partitionMatches(hash: Hash, bytes: Uint8Array, leaf: Digest): boolean {
  return bytesEqual(leafDigest(hash, bytes), leaf);
}

export const leafKey = bytesKey;
