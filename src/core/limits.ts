/**
 * Protocol size limits: the same on every replica and in every client, whatever a replica's tuning,
 * so that correct replicas always agree on which requests and batches are acceptable.
 *
 *   client SDK     refuses an operation above OP_BYTES_MAX before signing it (REQUEST_TOO_LARGE)
 *   replica        refuses a request whose operation is above OP_BYTES_MAX on arrival, and answers
 *                  the client with a signed REFUSAL (it never reaches a batch, so it cannot stall the
 *                  cluster); a batch proposed with such a request is invalid everywhere
 *   batches        every request up to the limit fits a batch: a primary proposes batches of at most
 *                  `batchBytesMax` bytes and `batchRequestsMax` requests (its tuning, at most
 *                  BATCH_BYTES_LIMIT and BATCH_REQUESTS_LIMIT; a request larger than batchBytesMax
 *                  goes alone); a backup accepts any batch within the protocol limits, whatever its
 *                  own tuning
 *   frames         the codec decodes operations up to 4 MiB (so that a replica can name the request it
 *                  refuses) and frames up to the transport's frame limit (32 MiB), above every limit here
 */

/** The largest operation a request may carry. The key-value store's largest (a 1 KiB key, a 1 MiB value) fits. */
export const OP_BYTES_MAX = 1024 * 1024 + 16 * 1024;

/** What a request adds to its operation, at most: CBOR framing, client id, timestamp, 64-byte signature. */
export const REQUEST_OVERHEAD_BYTES_MAX = 128;

/** The largest request (body and signature). */
export const REQUEST_BYTES_MAX = OP_BYTES_MAX + REQUEST_OVERHEAD_BYTES_MAX;

/** The largest batch (request bodies and signatures) any replica accepts from a primary. */
export const BATCH_BYTES_LIMIT = 4 * 1024 * 1024;

/** The most requests in one batch any replica accepts from a primary. */
export const BATCH_REQUESTS_LIMIT = 4096;

/**
 * Why a replica refuses a request (carried in a signed REFUSAL): an operation above OP_BYTES_MAX,
 * or a read-only request whose operation the state machine does not declare read-only.
 */
export type RefusalReason = 'op-too-large' | 'not-read-only';

/**
 * Records a partition may have stored beside its base (persist.ts; ReplicaOptions.storedRecordsMax is
 * at most this): a restart refuses more as damage, whatever the option is now.
 */
export const STORED_RECORDS_LIMIT = 1024;
