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
  // read-only requests (reads.ts)
  'unordered-not-read-only',
  'read-from-system-principal',
  'reads-per-turn',
  'reads-held-max',
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
  'batch-time-backwards',
  'batch-time-ahead',
  'batch-time-behind',
  'unexpected-batch',
  'duplicate',
  /** A second PREPARE or COMMIT of one replica for one (view, seq) with another digest (kept as evidence, evidence.ts). */
  'conflicting-vote',
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
  'suspect-other-view',
  // membership (membership.ts)
  'unknown-epoch',
  'other-epoch',
] as const;

export type RejectReason = (typeof REJECT_REASONS)[number];

/**
 * What a peer did that no correct replica does, as a closed set of codes: carried in the
 * `peer-misbehaved` event (with a free-form `reason` for the log) and counted per code in /metrics
 * (`pbft_peer_misbehaviour_total{code=...}`).
 */
export const MISBEHAVIOURS = [
  'batch-too-large',
  'batch-digest-mismatch',
  'batch-with-oversized-request',
  'batch-with-bad-request',
  /** A pre-prepare whose batch time goes backwards or too far from the backup's clock (normal.ts checkBatchTime). */
  'bad-batch-time',
  'invalid-commit-certificate',
  'invalid-checkpoint-certificate',
  'invalid-view-change',
  'invalid-new-view',
  'new-view-mismatch',
  'bad-state-transfer',
  'invalid-epoch-proof',
  /** Two PRE-PREPAREs, PREPAREs or COMMITs of one replica for one (view, seq) with different digests (evidence.ts). */
  'equivocation',
] as const;

export type Misbehaviour = (typeof MISBEHAVIOURS)[number];
