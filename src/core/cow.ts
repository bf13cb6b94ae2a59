/**
 * A fixed-length array that a live owner shares with its snapshots, copied chunk by chunk on write.
 *
 * The replica keeps one entry per application partition twice over: the partitions' bytes and their
 * leaf digests (state.ts livePartitions, statetree.ts leaves). Every checkpoint takes a snapshot of
 * both, and the owner then writes the partitions that changed since. Copying the whole array at the
 * first write after a snapshot cost 1.6-4.4 ms per checkpoint for the node's 65,536 partitions, with
 * 128 of them changed (one client: a checkpoint every 128 requests, a stall of the loop each time).
 * Here a snapshot copies the 1,024 chunk references, and a write copies only its chunk of CHUNK
 * entries, the first time after a snapshot.
 *
 * Pure and synchronous (src/core). Both sides may write: each copies a shared chunk before it writes
 * it, so a snapshot never sees the owner's later writes, nor the owner the snapshot's.
 */
const SHIFT = 6;
/** Entries per chunk. */
export const COW_CHUNK = 1 << SHIFT;
const MASK = COW_CHUNK - 1;

export class CowArray<T> {
  readonly length: number;
  private readonly chunks: T[][];
  /** 1 where this array's chunk is its own (written in place), 0 where it may be shared. */
  private readonly owned: Uint8Array;

  /** A new array holding a copy of `items`. (The second form is share()'s: chunks taken as they are, none owned.) */
  constructor(items: readonly T[]);
  constructor(items: readonly T[] | undefined, length: number, chunks: T[][]);
  constructor(items: readonly T[] | undefined, length?: number, chunks?: T[][]) {
    if (items !== undefined) {
      this.length = items.length;
      this.chunks = [];
      for (let start = 0; start < items.length; start += COW_CHUNK) this.chunks.push(items.slice(start, start + COW_CHUNK));
      this.owned = new Uint8Array(this.chunks.length).fill(1);
    } else {
      this.length = length!;
      this.chunks = chunks!;
      this.owned = new Uint8Array(this.chunks.length);
    }
  }

  get(index: number): T {
    if (!(index >= 0 && index < this.length)) throw new RangeError(`index ${index} outside 0..${this.length - 1}`);
    return this.chunks[index >>> SHIFT]![index & MASK]!;
  }

  /** The entry at `index`, or undefined for an index that is not an integer in 0..length-1 (a peer's). */
  at(index: number): T | undefined {
    if (!(index >= 0 && index < this.length) || !Number.isInteger(index)) return undefined;
    return this.chunks[index >>> SHIFT]![index & MASK];
  }

  set(index: number, value: T): void {
    if (!(index >= 0 && index < this.length) || !Number.isInteger(index)) throw new RangeError(`index ${index} outside 0..${this.length - 1}`);
    const c = index >>> SHIFT;
    let chunk = this.chunks[c]!;
    if (this.owned[c] === 0) {
      chunk = this.chunks[c] = chunk.slice();
      this.owned[c] = 1;
    }
    chunk[index & MASK] = value;
  }

  get chunkCount(): number {
    return this.chunks.length;
  }

  /**
   * Whether chunk `c` (entries c x COW_CHUNK ..) is one and the same in both arrays: then every entry
   * of it is the same. A chunk held by two arrays is never written in place (each copies it first),
   * so a loop comparing a snapshot with what is on disk can skip it.
   */
  sharesChunk(other: CowArray<T>, c: number): boolean {
    return this.chunks[c] !== undefined && this.chunks[c] === other.chunks[c];
  }

  /** A copy sharing every chunk with this array; from now on each copies a chunk before writing it. */
  share(): CowArray<T> {
    this.owned.fill(0);
    return new CowArray<T>(undefined, this.length, this.chunks.slice());
  }

  /** Entries start..end-1 as a new plain array (end clamped to the length). */
  slice(start: number, end: number = this.length): T[] {
    const out: T[] = [];
    const stop = Math.min(end, this.length);
    for (let i = Math.max(0, start); i < stop; i++) out.push(this.chunks[i >>> SHIFT]![i & MASK]!);
    return out;
  }

  /** Every entry, as a new plain array. */
  toArray(): T[] {
    return this.chunks.flat();
  }
}
