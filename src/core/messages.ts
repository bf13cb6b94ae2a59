/**
 * Protocol messages as discriminated unions (dispatched with exhaustive switches).
 *
 * Signed messages travel as `Signed<T>`: the typed message, the raw CBOR `body` bytes it was decoded
 * from (or encoded to), and an ed25519 signature over `domainTag(clusterId, type) || body`. Bodies are
 * never re-encoded to check a signature; digests and certificates use the raw bytes.
 *
 * The signer of every signed message is named inside its body (`client` for requests, `replica` for
 * everything else), so a certificate of forwarded envelopes is self-describing.
 *
 * Link messages (fetching log entries and state) are not signed: they travel on authenticated
 * replica-to-replica links, and everything they carry is checked against digests and certificates.
 */

import type { RefusalReason } from './limits.ts';

export type Digest = Uint8Array;

export interface RequestMsg {
  type: 'request';
  client: number;
  /** Strictly increasing per client; orders a client's requests and makes execution at-most-once. */
  timestamp: number;
  /** Application operation, opaque to the protocol. */
  op: Uint8Array;
  /**
   * The replicas asked to send their reply when the request executes (ids, strictly increasing);
   * absent: every replica. The others keep theirs for a retransmission: a replica resends its reply
   * to a request it executed whenever the client sends it again, and one the client sent the
   * request to itself (a retransmission) replies when it executes it. The client names as many as
   * a result needs (f+1), so the others send no frame and the client decodes none.
   */
  repliers?: readonly number[];
}

export interface ReplyMsg {
  type: 'reply';
  /** The replica's view when it executed (or re-sent) the request: tells the client the primary. */
  view: number;
  client: number;
  timestamp: number;
  replica: number;
  result: Uint8Array;
}

/**
 * One signature for the replies of a whole executed batch: the Merkle root over one leaf per reply
 * (see src/core/replytree.ts). Each client receives its reply with the path to this root.
 */
export interface ReplyBatchMsg {
  type: 'replybatch';
  view: number;
  replica: number;
  seq: number;
  /** Number of leaves (fixes the tree's shape). */
  count: number;
  root: Digest;
}

/**
 * A read-only request (PBFT §5.1.3; BFT-SMaRt `invokeUnordered`), sent by a client to every replica
 * and executed by each on its own committed state without ordering (src/core/reads.ts). Its own
 * type, and so its own domain tag: a replica can never take it for an ordered request, nor put it
 * in a batch. `timestamp` comes from the client's one increasing sequence (it matches the replies);
 * a read never enters the replicated client table.
 */
export interface ReadMsg {
  type: 'read';
  client: number;
  timestamp: number;
  /** An application operation that the state machine declares read-only (StateMachine.isReadOnly). */
  op: Uint8Array;
}

/**
 * A replica's answer to a read-only request: the result of the operation on its state after
 * executing every sequence number up to at least every one it had prepared when the read arrived.
 * Not an ordered REPLY (another type, another domain tag): it cannot stand for the reply to an
 * ordered request with the same timestamp. `epoch` is the membership epoch of the state the
 * result was computed on (the replicated membership as of the replica's last executed sequence
 * number): a client accepts only 2f+1 replies that match in result and name its own epoch.
 */
export interface ReadReplyMsg {
  type: 'readreply';
  client: number;
  timestamp: number;
  replica: number;
  epoch: number;
  result: Uint8Array;
}

/** A reply proven by a signed REPLY-BATCH and a Merkle path (what the client checks). */
export interface BatchedReply {
  /** The reply it states (view and replica from the batch). */
  msg: ReplyMsg;
  batch: Signed<ReplyBatchMsg>;
  index: number;
  path: Digest[];
}

/**
 * A replica's refusal to order a request (e.g. its operation is larger than the protocol allows),
 * or to answer a read-only request (its operation is not read-only), sent to the client in place of
 * a reply. `digest` is the SHA-256 of the request's body, so that a refusal speaks only of the
 * request the client signed. A client gives up an ordered request once f+1 replicas refused; a
 * refused read falls back to an ordered request.
 */
export interface RefusalMsg {
  type: 'refusal';
  replica: number;
  client: number;
  timestamp: number;
  digest: Digest;
  reason: RefusalReason;
  /** The limit the request exceeded (bytes); 0 for 'not-read-only'. */
  limit: number;
}

/**
 * A replica suspects the primary of `view` (a request it waits for timed out). Not a promise: the
 * replica stays in the view. f+1 suspicions for a view (at least one from a correct replica) start
 * the view change at every correct replica (the pre-vote: one replica alone, e.g. one that was
 * paused or partitioned and is merely behind, cannot leave a healthy view).
 */
export interface SuspectMsg {
  type: 'suspect';
  view: number;
  replica: number;
}

/** Signed header of a pre-prepare; the batch it orders travels beside it (bound by `digest`). */
export interface PrePrepareMsg {
  type: 'preprepare';
  view: number;
  seq: number;
  /** Digest of the batch, which covers its requests and `time` (batch.ts). */
  digest: Digest;
  replica: number;
  /**
   * The batch time the primary proposes, in milliseconds since the Unix epoch (0 for the null
   * request of a NEW-VIEW): part of the digest, so the replicas that prepare `digest` agree on it.
   * A backup prepares a fresh pre-prepare only if its time is within bounds of its own clock and
   * not below the times before it (normal.ts checkBatchTime). What the application is given is the
   * batch's agreed time: this time, or the previous batch's if that is later (monotonic).
   */
  time: number;
}

export interface PrepareMsg {
  type: 'prepare';
  view: number;
  seq: number;
  digest: Digest;
  replica: number;
}

export interface CommitMsg {
  type: 'commit';
  view: number;
  seq: number;
  digest: Digest;
  replica: number;
}

export interface CheckpointMsg {
  type: 'checkpoint';
  seq: number;
  /** Digest of the application state, the client table and the membership after executing `seq`. */
  digest: Digest;
  replica: number;
  /**
   * The membership epoch of that state (membership.ts): a replica that has not followed a
   * reconfiguration sees that it must learn the new configuration before using the checkpoint.
   */
  epoch: number;
}

/** A prepared certificate: the pre-prepare and 2f matching prepares from distinct backups. */
export interface PreparedCert {
  prePrepare: Signed<PrePrepareMsg>;
  prepares: Signed<PrepareMsg>[];
}

/** A checkpoint and its proof (2f+1 matching CHECKPOINT messages; empty for the genesis checkpoint 0). */
export interface CheckpointCert {
  /** The membership epoch of the certified state (every proof message names it too). */
  epoch: number;
  seq: number;
  digest: Digest;
  proof: Signed<CheckpointMsg>[];
}

/**
 * The proof that configuration `epoch` followed epoch-1: the certificate of the checkpoint at which
 * it took effect (signed by epoch-1's replicas) and the opening of that checkpoint's state digest to
 * the membership bytes (the application root and the client table's digest).
 */
export interface EpochProof {
  epoch: number;
  cert: CheckpointCert;
  root: Uint8Array;
  clients: Uint8Array;
  membership: Uint8Array;
}


export interface ViewChangeMsg {
  type: 'viewchange';
  /** The view the sender wants to move to. */
  view: number;
  replica: number;
  /** The sender's last stable checkpoint. */
  checkpoint: CheckpointCert;
  /** For every sequence number above the checkpoint that prepared at the sender, its newest certificate. */
  prepared: PreparedCert[];
}

export interface NewViewMsg {
  type: 'newview';
  view: number;
  replica: number;
  /** 2f+1 VIEW-CHANGE messages for `view` from distinct replicas. */
  viewChanges: Signed<ViewChangeMsg>[];
  /** The re-issued pre-prepares, one per sequence number in (min-s, max-s], signed by the new primary. */
  prePrepares: Signed<PrePrepareMsg>[];
}

export type SignedMessage =
  | RequestMsg
  | ReplyMsg
  | ReplyBatchMsg
  | PrePrepareMsg
  | PrepareMsg
  | CommitMsg
  | CheckpointMsg
  | ViewChangeMsg
  | NewViewMsg
  | RefusalMsg
  | SuspectMsg
  | ReadMsg
  | ReadReplyMsg;

export type SignedType = SignedMessage['type'];

export interface Signed<T extends SignedMessage = SignedMessage> {
  msg: T;
  /** The CBOR body exactly as signed. */
  body: Uint8Array;
  sig: Uint8Array;
}

/** A committed batch with its commit certificate: 2f+1 matching COMMITs from distinct replicas. */
export interface CommittedEntry {
  seq: number;
  commits: Signed<CommitMsg>[];
  batch: Signed<RequestMsg>[];
  /** The batch's proposed time (the committed digest covers it). */
  time: number;
}

/** Link messages: unsigned, between replicas on authenticated links. */
export type LinkMessage =
  /** Ask for the committed batches with sequence numbers in [from, to]. */
  /** `epoch`: the newest configuration the asker knows (the reply brings the proofs of later ones). */
  | { type: 'fetch'; from: number; to: number; epoch: number }
  /**
   * Committed entries the peer still holds (a prefix of the range asked for), its stable checkpoint,
   * and the proofs of the configurations after the asker's, oldest first (at most a few).
   */
  | { type: 'fetched'; entries: CommittedEntry[]; stable: CheckpointCert; proofs: EpochProof[] }
  /** Ask for the batch with this digest (e.g. re-issued in a NEW-VIEW), for sequence number `seq`. */
  | { type: 'batchreq'; seq: number; digest: Digest }
  /** The batch with this digest and its proposed time (the digest covers both). */
  | { type: 'batch'; seq: number; digest: Digest; batch: Signed<RequestMsg>[]; time: number }
  /** State transfer, step 1: the digest tree's upper level and the client table of checkpoint `seq`. */
  | { type: 'statereq'; seq: number; part: StatePart }
  | { type: 'state'; seq: number; reply: StateReply }
  /** Ask the receiver to resend its NEW-VIEW for its current view (sent by a replica stuck in a lower view). */
  | { type: 'newviewreq'; view: number }
  /**
   * From a client (or a replica): the proofs of the configurations after `epoch` (membership.ts),
   * answered with `epochs`; each proof is checked against the one before, so any replica may answer.
   */
  | { type: 'epochsreq'; epoch: number }
  | { type: 'epochs'; proofs: EpochProof[] };

export type StatePart =
  | { kind: 'meta' }
  /**
   * Leaf digests of these groups. `have[i]`, when present, holds the first LEAF_PREFIX_BYTES of each
   * of the asker's own leaves of `groups[i]`: the peer sends only the leaves whose prefix differs.
   */
  | { kind: 'leaves'; groups: number[]; have?: Uint8Array[] }
  | { kind: 'partitions'; indices: number[] };

export type StateReply =
  | {
      kind: 'meta';
      /** The peer's stable checkpoint certificate for `seq` (so a newer target can be verified). */
      checkpoint: CheckpointCert;
      partitionCount: number;
      /** Digest of each group of leaves; their hash is the application root. */
      groupDigests: Digest[];
      /** Canonical client table bytes. */
      clients: Uint8Array;
      /** Canonical membership bytes (membership.ts). */
      membership: Uint8Array;
    }
  /**
   * Leaf digests by group: every leaf of the group, or, with `positions` (for an asker that sent
   * `have`), only those at these positions; the others matched the asker's prefixes. Either way the
   * asker checks the whole group against its certified digest.
   */
  | { kind: 'leaves'; groups: Array<{ group: number; leaves: Digest[]; positions?: number[] }> }
  /** Partition contents, compressed as one blob (see deps.compress). */
  | { kind: 'partitions'; indices: number[]; compressed: Uint8Array; rawBytes: number }
  /** The peer does not hold checkpoint `seq`; it tells its own stable checkpoint instead. */
  | { kind: 'unavailable'; stable: CheckpointCert };

/** What arrives in one frame: a signed message (a pre-prepare with its batch), a batched reply, or a link message. */
export type Frame =
  | { kind: 'signed'; signed: Signed; batch?: Signed<RequestMsg>[] }
  | { kind: 'reply'; reply: BatchedReply }
  | { kind: 'link'; msg: LinkMessage };

/** A reply as a client receives it: signed on its own, or proven by a signed batch root. */
export type AnyReply = Signed<ReplyMsg> | BatchedReply;
