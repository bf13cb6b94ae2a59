/** Batches of signed requests with their proposed time, and their digests. */
import type { Hash } from './statetree.ts';
import type { RequestMsg, Signed } from './messages.ts';

export interface Batch {
  requests: Signed<RequestMsg>[];
  /**
   * The time the primary proposed with the batch (ms since the Unix epoch; 0 for the null request).
   * Covered by `digest`: replicas that agree on the digest agree on the time.
   */
  time: number;
  digest: Uint8Array;
  /** Sum of request body and signature bytes. */
  bytes: number;
  /**
   * Set when this replica holds the batch without having checked every client signature in it: a
   * backup that skipped them (quorum.ts, skipsClientSignatures), or a batch restored from disk.
   * The bodies are what the digest covers; the signatures are checked before the batch is served
   * to a peer (fetch.ts), and the flag is cleared once they all verify.
   */
  unchecked?: boolean;
}

const BATCH_TAG = new TextEncoder().encode('pbft/1/batch\0');

/**
 * H(tag || u64(time) || H(body_1) || ... || H(body_k)); the empty batch with time 0 is the null
 * request (what a NEW-VIEW proposes where nothing prepared).
 */
export function batchDigest(hash: Hash, requests: readonly Signed<RequestMsg>[], time: number): Uint8Array {
  if (!Number.isSafeInteger(time) || time < 0) throw new RangeError(`batch time ${time} is not an integer >= 0`);
  const head = BATCH_TAG.length + 8;
  const buf = new Uint8Array(head + 32 * requests.length);
  buf.set(BATCH_TAG, 0);
  new DataView(buf.buffer).setBigUint64(BATCH_TAG.length, BigInt(time));
  let off = head;
  for (const r of requests) {
    buf.set(hash(r.body), off);
    off += 32;
  }
  return hash(buf);
}

export function makeBatch(hash: Hash, requests: Signed<RequestMsg>[], time: number): Batch {
  let bytes = 0;
  for (const r of requests) bytes += r.body.length + r.sig.length;
  return { requests, time, digest: batchDigest(hash, requests, time), bytes };
}
