/**
 * The digest tree over application partitions, used by checkpoints and state transfer.
 *
 *   leaf[i]  = H(0x00 || partition i bytes)
 *   group[j] = H(0x01 || leaf[j*G] || ... || leaf[j*G+G-1])        (G = groupSize, last group may be short)
 *   root     = H(0x02 || u32(partitionCount) || group[0] || ... )
 *   state    = H(0x03 || root || H(0x04 || client table bytes) || H(0x05 || membership bytes))
 *                                                                     (the digest in CHECKPOINT messages)
 *
 * The membership (membership.ts) has its own digest so that an epoch proof opens the state digest to
 * the configuration without carrying the application state or the client table.
 *
 * A replica behind compares group digests first, then the leaves of differing groups, and fetches
 * only partitions whose leaves differ.
 */
import { CowArray } from './cow.ts';
import { bytesEqual } from './encoding.ts';

/**
 * A synchronous hash that keeps nothing of its input (callers reuse the input's memory); `parts`,
 * where the implementation has it, hashes the concatenation of several arrays without making it.
 */
export type Hash = ((data: Uint8Array) => Uint8Array) & { parts?: (parts: readonly Uint8Array[]) => Uint8Array };

export function groupSizeFor(partitionCount: number): number {
  let g = 1;
  while (g * g < partitionCount) g *= 2;
  return g;
}

function prefixed(tag: number, parts: readonly Uint8Array[], extra?: Uint8Array): Uint8Array {
  let len = 1 + (extra?.length ?? 0);
  for (const p of parts) len += p.length;
  const out = new Uint8Array(len);
  out[0] = tag;
  let off = 1;
  if (extra) {
    out.set(extra, off);
    off += extra.length;
  }
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/**
 * Preimages of leaves up to this size are assembled in one reused buffer: a checkpoint after a bulk
 * load hashes every partition, and a fresh array per leaf was a third of that (allocation and GC).
 * Safe because a Hash is synchronous and keeps nothing of its input.
 */
const LEAF_SCRATCH_MAX = 1 << 20;
let leafScratch = new Uint8Array(4096);
const LEAF_TAG = Uint8Array.of(0x00);
/** Undefined where SharedArrayBuffer is not offered (a browser page that is not cross-origin isolated). */
const Shared: typeof SharedArrayBuffer | undefined = typeof SharedArrayBuffer === 'function' ? SharedArrayBuffer : undefined;

export function leafDigest(hash: Hash, partition: Uint8Array): Uint8Array {
  // Partition bytes on shared memory (the key-value store's PartitionBytes): V8 copies them with
  // relaxed atomics, 5 us for 18 KiB against 0.35 us for an ordinary array; hash them in place.
  if (hash.parts !== undefined && Shared !== undefined && partition.buffer instanceof Shared) return hash.parts([LEAF_TAG, partition]);
  const len = 1 + partition.length;
  if (len > LEAF_SCRATCH_MAX) return hash(prefixed(0x00, [partition]));
  if (len > leafScratch.length) {
    let size = leafScratch.length;
    while (size < len) size *= 2;
    leafScratch = new Uint8Array(size);
  }
  leafScratch[0] = 0x00;
  leafScratch.set(partition, 1);
  return hash(leafScratch.subarray(0, len));
}

export function groupDigest(hash: Hash, leaves: readonly Uint8Array[]): Uint8Array {
  return hash(prefixed(0x01, leaves));
}

export function rootDigest(hash: Hash, partitionCount: number, groups: readonly Uint8Array[]): Uint8Array {
  const count = new Uint8Array(4);
  new DataView(count.buffer).setUint32(0, partitionCount);
  return hash(prefixed(0x02, groups, count));
}

export function stateDigest(hash: Hash, root: Uint8Array, clientTable: Uint8Array, membership: Uint8Array): Uint8Array {
  return stateDigestOfParts(hash, root, clientsDigest(hash, clientTable), membershipDigest(hash, membership));
}

export function clientsDigest(hash: Hash, clientTable: Uint8Array): Uint8Array {
  return hash(prefixed(0x04, [clientTable]));
}

export function membershipDigest(hash: Hash, membership: Uint8Array): Uint8Array {
  return hash(prefixed(0x05, [membership]));
}

export function stateDigestOfParts(hash: Hash, root: Uint8Array, clients: Uint8Array, membership: Uint8Array): Uint8Array {
  return hash(prefixed(0x03, [root, clients, membership]));
}

export class StateTree {
  readonly groupSize: number;
  readonly groupCount: number;
  /** Leaf digests, shared with clones chunk by chunk until written (cow.ts). */
  readonly leaves: CowArray<Uint8Array>;
  readonly groups: Uint8Array[];
  root: Uint8Array;
  private readonly dirtyGroups = new Set<number>();
  /**
   * Each group's digest preimage, 0x01 || its leaves, kept up to date by setLeaf, so that commit
   * hashes it as it is (undefined for a group whose leaves differ in length: commit assembles that
   * one). Assembling every changed group from its leaf objects took a loaded replica about 150 ms
   * per checkpoint (65,536 leaves scattered over a heap of gigabytes: a few cache misses each, and
   * most groups change at every checkpoint); the preimages are 2 MiB in one place per group.
   * Never shared: setLeaf writes them in place. A clone (a checkpoint's snapshot, never written in
   * production) gets none, and assembles a group from its leaves if it is ever written. Sharing
   * them copy-on-write cost every checkpoint a new 8 KiB buffer per group it touched, about 20 us
   * each in a replica (with one client, 128 partitions in about 100 groups: a third of the
   * checkpoint's turn; docs/performance.md). test/unit/transfer.test.ts writes both
   * clones and originals and checks each against its leaves.
   */
  private readonly preimages: Array<Uint8Array | undefined>;

  constructor(
    private readonly hash: Hash,
    readonly partitionCount: number,
    leaves: Uint8Array[] | CowArray<Uint8Array>,
    groups?: Uint8Array[],
    preimages?: Array<Uint8Array | undefined>,
  ) {
    if (leaves.length !== partitionCount) throw new RangeError('leaf count differs from partition count');
    this.groupSize = groupSizeFor(partitionCount);
    this.groupCount = Math.ceil(partitionCount / this.groupSize);
    this.leaves = leaves instanceof CowArray ? leaves : new CowArray(leaves);
    if (preimages !== undefined && preimages.length === this.groupCount) {
      this.preimages = preimages;
    } else {
      this.preimages = [];
      for (let j = 0; j < this.groupCount; j++) this.preimages.push(groupPreimage(this.groupLeaves(j)));
    }
    if (groups) {
      this.groups = groups;
    } else {
      this.groups = [];
      for (let j = 0; j < this.groupCount; j++) this.groups.push(this.digestOfGroup(j));
    }
    this.root = rootDigest(hash, partitionCount, this.groups);
  }

  static fromPartitions(hash: Hash, partitions: readonly Uint8Array[]): StateTree {
    // A partition equal to the one before it gets a copy of its leaf, not a second hash: every
    // replica starts from a store of 65,536 empty partitions (about 0.1 s of hashing saved per start).
    const leaves: Uint8Array[] = [];
    for (let i = 0; i < partitions.length; i++) {
      const p = partitions[i]!;
      const before = i > 0 ? partitions[i - 1]! : undefined;
      leaves.push(before !== undefined && bytesEqual(before, p) ? leaves[i - 1]!.slice() : leafDigest(hash, p));
    }
    return new StateTree(hash, partitions.length, leaves);
  }

  groupLeaves(group: number): Uint8Array[] {
    return this.leaves.slice(group * this.groupSize, Math.min(this.partitionCount, (group + 1) * this.groupSize));
  }

  setLeaf(index: number, digest: Uint8Array): void {
    this.leaves.set(index, digest);
    const j = Math.floor(index / this.groupSize);
    this.dirtyGroups.add(j);
    const pre = this.preimages[j];
    if (pre === undefined) return;
    const slot = index - j * this.groupSize;
    const size = (pre.length - 1) / (Math.min(this.partitionCount, (j + 1) * this.groupSize) - j * this.groupSize);
    if (digest.length !== size) {
      // A leaf of another length: this group is assembled from its leaves from now on.
      this.preimages[j] = undefined;
      return;
    }
    pre.set(digest, 1 + slot * size);
  }

  /** Recomputes dirty groups and the root; returns the root. */
  commit(): Uint8Array {
    if (this.dirtyGroups.size === 0) return this.root;
    for (const j of this.dirtyGroups) this.groups[j] = this.digestOfGroup(j);
    this.dirtyGroups.clear();
    this.root = rootDigest(this.hash, this.partitionCount, this.groups);
    return this.root;
  }

  clone(): StateTree {
    this.commit();
    return new StateTree(this.hash, this.partitionCount, this.leaves.share(), this.groups.slice(), new Array<undefined>(this.groupCount).fill(undefined));
  }

  /** groupDigest of group j's leaves: from its preimage when it has one. */
  private digestOfGroup(j: number): Uint8Array {
    const pre = this.preimages[j];
    if (pre === undefined) return groupDigest(this.hash, this.groupLeaves(j));
    return this.hash(pre);
  }
}

/** 0x01 || leaves (groupDigest's preimage) when every leaf has the same length; else undefined. */
function groupPreimage(leaves: readonly Uint8Array[]): Uint8Array | undefined {
  const size = leaves[0]?.length ?? 0;
  for (const leaf of leaves) if (leaf.length !== size) return undefined;
  return prefixed(0x01, leaves);
}
