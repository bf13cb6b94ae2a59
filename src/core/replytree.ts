/**
 * The Merkle tree over the replies of one executed batch (one signature per batch, not per reply).
 *
 *   leaf  = H(0x20 || u32 client || u64 timestamp || result)
 *   inner = H(0x21 || left || right)
 * Levels pair nodes left to right; an odd last node moves up unchanged. The signed REPLY-BATCH
 * carries the root and the leaf count, which fixes the shape; a path lists the siblings from the
 * leaf up. No node-only imports: clients verify paths too.
 */
export type Hash = (data: Uint8Array) => Uint8Array;

export function replyLeaf(hash: Hash, client: number, timestamp: number, result: Uint8Array): Uint8Array {
  const buf = new Uint8Array(13 + result.length);
  buf[0] = 0x20;
  writeUint32(buf, 1, client);
  // u64 big-endian without a BigInt: timestamps are safe integers (below 2^53).
  writeUint32(buf, 5, Math.floor(timestamp / 0x1_0000_0000));
  writeUint32(buf, 9, timestamp >>> 0);
  buf.set(result, 13);
  return hash(buf);
}

function writeUint32(buf: Uint8Array, at: number, v: number): void {
  buf[at] = v >>> 24;
  buf[at + 1] = (v >>> 16) & 0xff;
  buf[at + 2] = (v >>> 8) & 0xff;
  buf[at + 3] = v & 0xff;
}

/** The input of an inner node over two 32-byte digests, reused: a hash reads its input and keeps none of it. */
const innerInput = new Uint8Array(65);

function inner(hash: Hash, left: Uint8Array, right: Uint8Array): Uint8Array {
  const buf = left.length === 32 && right.length === 32 ? innerInput : new Uint8Array(1 + left.length + right.length);
  buf[0] = 0x21;
  buf.set(left, 1);
  buf.set(right, 1 + left.length);
  return hash(buf);
}

/** The root and every leaf's path. */
export function buildReplyTree(hash: Hash, leaves: Uint8Array[]): { root: Uint8Array; paths: Uint8Array[][] } {
  if (leaves.length === 0) throw new RangeError('a reply tree needs at least one leaf');
  const paths: Uint8Array[][] = leaves.map(() => []);
  // positions[i]: index of leaf i's ancestor in the current level.
  const positions = leaves.map((_, i) => i);
  let level = leaves;
  while (level.length > 1) {
    const next: Uint8Array[] = [];
    for (let j = 0; j < level.length; j += 2) next.push(j + 1 < level.length ? inner(hash, level[j]!, level[j + 1]!) : level[j]!);
    for (let i = 0; i < leaves.length; i++) {
      const p = positions[i]!;
      const sibling = p % 2 === 1 ? p - 1 : p + 1;
      if (sibling < level.length) paths[i]!.push(level[sibling]!);
      positions[i] = p >> 1;
    }
    level = next;
  }
  return { root: level[0]!, paths };
}

/** The root a leaf at `index` of `count` leaves implies through `path`; undefined if the path does not fit. */
export function replyRootFromPath(hash: Hash, leaf: Uint8Array, index: number, count: number, path: readonly Uint8Array[]): Uint8Array | undefined {
  if (!Number.isInteger(index) || index < 0 || index >= count) return undefined;
  let h = leaf;
  let idx = index;
  let size = count;
  let used = 0;
  while (size > 1) {
    if (idx % 2 === 1) {
      const s = path[used++];
      if (!s) return undefined;
      h = inner(hash, s, h);
    } else if (idx + 1 < size) {
      const s = path[used++];
      if (!s) return undefined;
      h = inner(hash, h, s);
    }
    idx >>= 1;
    size = (size + 1) >> 1;
  }
  return used === path.length ? h : undefined;
}
