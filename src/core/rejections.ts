/**
 * Why the core refused an input, as a closed set of codes: counted per code in `Replica.rejected`,
 * shown in /status (`rejected`) and /metrics (`pbft_rejected_messages_total{reason=...}`). A new
 * reason is added here first, so that operators' dashboards know every code there can be.
 */
export const REJECT_REASONS = [
  // framing and decoding
  'oversized-frame',
  'malformed',
  // who sent it
  'link-from-non-replica',
  'protocol-message-from-non-replica',
  'sender-mismatch',
  'unexpected-reply',
  // requests
  'request-client-mismatch',
  'unknown-client',
  'request-too-large',
  'stale-request',
  'conflicting-request',
  'bad-request-signature',
  // normal case
  'old-view',
  'future-view',
  'out-of-window',
  'preprepare-not-from-primary',
  'preprepare-without-batch',
  'conflicting-preprepare',
  'prepare-from-primary',
  'batch-too-large',
  'batch-digest-mismatch',
  'batch-with-oversized-request',
  'batch-with-bad-request',
  'unexpected-batch',
  'duplicate',
  'bad-signature',
  // checkpoints
  'checkpoint-not-on-interval',
  'stale-checkpoint',
  // view change
  'old-view-change',
  'invalid-view-change',
  'newview-not-from-primary',
  'old-new-view',
  'invalid-new-view',
] as const;

export type RejectReason = (typeof REJECT_REASONS)[number];
