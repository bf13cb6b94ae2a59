/** Batches of signed requests and their digests. */
import type { Hash } from './statetree.ts';
import type { RequestMsg, Signed } from './messages.ts';

export interface Batch {
  requests: Signed<RequestMsg>[];
  digest: Uint8Array;
  /** Sum of request body and signature bytes. */
  bytes: number;
}

const BATCH_TAG = new TextEncoder().encode('pbft/1/batch\0');

/** H(tag || H(body_1) || ... || H(body_k)); the empty batch is the null request. */
export function batchDigest(hash: Hash, requests: readonly Signed<RequestMsg>[]): Uint8Array {
  const buf = new Uint8Array(BATCH_TAG.length + 32 * requests.length);
  buf.set(BATCH_TAG, 0);
  let off = BATCH_TAG.length;
  for (const r of requests) {
    buf.set(hash(r.body), off);
    off += 32;
  }
  return hash(buf);
}

export function makeBatch(hash: Hash, requests: Signed<RequestMsg>[]): Batch {
  let bytes = 0;
  for (const r of requests) bytes += r.body.length + r.sig.length;
  return { requests, digest: batchDigest(hash, requests), bytes };
}
