/**
 * A Verifier that remembers the signatures it has already found valid, for the clients of one
 * process to share. No node-only imports (the browser SDK uses it too).
 *
 * Why: a replica answers a whole batch of requests with one signed REPLY-BATCH (a Merkle root over
 * the batch's replies, src/core/replytree.ts), and every client of the batch checks that same
 * signature. An application that runs several PbftClients in one process (one per user, or a pool
 * for concurrency: a client has one request outstanding at a time) would otherwise verify the same
 * (key, message, signature) once per client. ed25519 verification is deterministic, so the second
 * answer is the first one's: only the bytes must be the same, and they are compared in full (the
 * key and the message as well as the signature), never through a hash or a prefix.
 *
 * Only valid signatures are remembered; an invalid one is checked again each time (a faulty replica
 * that resends it costs what it cost before). The cache is bounded in entries and in bytes per
 * entry (a longer message is verified but not remembered), and evicts the least recently used.
 */
import { bytesEqual } from '../core/auth.ts';
import { SIGNATURE_BYTES, type Verifier } from './types.ts';

/** Counts of a CachingVerifier since it was made. */
export interface VerifyCacheStats {
  /** verify() calls. */
  checks: number;
  /** Of those, answered from the cache (no signature check ran). */
  hits: number;
  /** Entries held now. */
  entries: number;
}

interface Entry {
  publicKey: Uint8Array;
  data: Uint8Array;
}

/** Entries kept by default: about two seconds of reply batches of 4 replicas at 500 batches/s. */
export const VERIFY_CACHE_ENTRIES_DEFAULT = 4096;
/** Longest message remembered (a REPLY-BATCH body with its domain tag is about 100 bytes). */
export const VERIFY_CACHE_DATA_BYTES_MAX = 512;

export class CachingVerifier implements Verifier {
  /** By the signature's bytes as a latin1 string; insertion order is recency (a hit moves to the end). */
  private readonly entries = new Map<string, Entry>();
  private checks = 0;
  private hits = 0;

  constructor(
    private readonly inner: Verifier,
    private readonly entriesMax = VERIFY_CACHE_ENTRIES_DEFAULT,
    private readonly dataBytesMax = VERIFY_CACHE_DATA_BYTES_MAX,
  ) {
    if (!Number.isInteger(entriesMax) || entriesMax < 1) throw new RangeError(`entriesMax must be a positive integer, got ${entriesMax}`);
    if (!Number.isInteger(dataBytesMax) || dataBytesMax < 0) throw new RangeError(`dataBytesMax must be a non-negative integer, got ${dataBytesMax}`);
  }

  verify(publicKey: Uint8Array, data: Uint8Array, signature: Uint8Array): boolean {
    this.checks++;
    if (signature.length !== SIGNATURE_BYTES || data.length > this.dataBytesMax) return this.inner.verify(publicKey, data, signature);
    const id = String.fromCharCode.apply(null, signature as unknown as number[]);
    const entry = this.entries.get(id);
    if (entry !== undefined && bytesEqual(entry.publicKey, publicKey) && bytesEqual(entry.data, data)) {
      this.hits++;
      this.entries.delete(id);
      this.entries.set(id, entry);
      return true;
    }
    if (!this.inner.verify(publicKey, data, signature)) return false;
    // Copies: the caller may reuse its buffers.
    if (entry !== undefined) this.entries.delete(id);
    else if (this.entries.size >= this.entriesMax) this.entries.delete(this.entries.keys().next().value as string);
    this.entries.set(id, { publicKey: publicKey.slice(), data: data.slice() });
    return true;
  }

  stats(): VerifyCacheStats {
    return { checks: this.checks, hits: this.hits, entries: this.entries.size };
  }
}
