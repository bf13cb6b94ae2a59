/**
 * The core's interface: its inputs (Source, ReplicaDeps), its effects (Ready: writes, messages,
 * replies, events, each with the turn it waits for), and its status.
 */
import type { Decoded } from './encoding.ts';
import type { BatchedReply, Frame, LinkMessage, RequestMsg, Signed } from './messages.ts';
import type { Misbehaviour } from './rejections.ts';
import type { TimeoutName } from './timeout.ts';
import type { ReplicatedApp } from './ports.ts';
import type { KeyRange, WriteOp } from './ports.ts';
import type { CoreCrypto } from './auth.ts';
import type { UnsafeQuorum } from './quorum.ts';
import type { ReconfigResult } from './membership.ts';
import type { Horizon, SignFloor } from './horizon.ts';
import type { VoteEvidence, VoteKind } from './evidence.ts';

export interface Source {
  kind: 'replica' | 'client';
  id: number;
}

/**
 * How messages travel on a link: the shell's wire format (src/codec/messages.ts, FRAME_CODEC). The
 * core speaks its own message types (messages.ts) and reaches frames only through this.
 */
export interface FrameCodec {
  /** One frame from a peer; never throws. */
  decodeFrame(bytes: Uint8Array): Decoded<Frame>;
  encodeSignedFrame(signed: Signed, batch?: readonly Signed<RequestMsg>[]): Uint8Array;
  encodeLinkFrame(msg: LinkMessage): Uint8Array;
  encodeBatchedReplyFrame(reply: BatchedReply): Uint8Array;
}

export interface ReplicaDeps {
  /** The frame format (FRAME_CODEC in the shell). */
  frames: FrameCodec;
  crypto: CoreCrypto;
  app: ReplicatedApp;
  /** Compression for state transfer (deterministic); identity is acceptable. */
  compress(data: Uint8Array): Uint8Array;
  /** Inverse of compress; undefined when malformed or larger than `bytesMax`. */
  decompress(data: Uint8Array, bytesMax: number): Uint8Array | undefined;
  /**
   * Deliberately broken rules, for the simulator's negative controls only (a checker that cannot
   * catch a broken build proves nothing). Never set by the shell or the CLI.
   */
  unsafeTestOnly?: {
    quorum?: UnsafeQuorum;
    recoveryQuorum?: UnsafeQuorum;
    replyBeforeWrite?: boolean;
    ignoreLostData?: boolean;
    /** Negative control: a restarted replica votes at once, though votes it sent unwritten may be lost (durability.ts, rule 1a). */
    noAbstain?: boolean;
    /** Negative control: a configuration is taken from an epoch proof without checking it (without consensus). */
    trustEpochProofs?: boolean;
    /** Negative control: read-only requests are answered at once, not held until what was prepared is executed (reads.ts). */
    readsWithoutHold?: boolean;
    /** Negative control: a backup prepares a pre-prepare whatever its batch time (normal.ts checkBatchTime). */
    ignoreBatchTimeBounds?: boolean;
    /** Negative control: batches whose client signatures were not checked here are served to peers unchecked (fetch.ts signedByClients). */
    serveUncheckedBatches?: boolean;
  };
}

export interface ExecutedRequest {
  client: number;
  timestamp: number;
  op: Uint8Array;
  result: Uint8Array;
}

export type CoreEvent =
  /** `timeMs`: the batch's agreed time (what the application was given). */
  | { type: 'executed'; seq: number; view: number; digest: Uint8Array; requests: ExecutedRequest[]; timeMs: number }
  /** A batch became committed here (with our own COMMIT counted, or on a commit certificate of others). */
  | { type: 'committed'; seq: number; digest: Uint8Array }
  | { type: 'view-change-started'; view: number; reason: string }
  /** Our timer says the primary of `view` is faulty: we say so (SUSPECT) and stay until f+1 agree. */
  | { type: 'primary-suspected'; view: number; reason: string }
  | { type: 'view-entered'; view: number; primary: number }
  | { type: 'checkpoint-stable'; seq: number; digest: Uint8Array }
  | { type: 'state-diverged'; seq: number; own: Uint8Array; agreed: Uint8Array }
  | { type: 'stored-state-corrupt'; seq: number; reason: string }
  /**
   * Recovery found less than the horizon record says the replica had (or the store found its log
   * damaged): it rejoins as a recovering replica that signs nothing below `floor` (see SignFloor).
   */
  | { type: 'stored-state-lost'; reasons: string[]; floor: SignFloor }
  /**
   * Restarted: votes of an earlier incarnation may have left unwritten (durability.ts, rule 1a), so
   * it signs no PRE-PREPARE, PREPARE or COMMIT in a view up to `abstain.view` for a sequence number up
   * to `abstain.seq` (it follows, executes and changes views meanwhile).
   */
  | { type: 'abstaining'; abstain: SignFloor }
  /** A restarted replica reached a view above the one it abstains in, or a stable checkpoint at or above its seq. */
  | { type: 'abstaining-ended'; view: number; stable: number }
  /** A recovering replica reached a view above its floor and a stable checkpoint at or above floor.seq. */
  | { type: 'signing-resumed'; view: number; stable: number }
  | { type: 'state-transfer-started'; seq: number; reason: string }
  | {
      type: 'state-transfer-completed';
      seq: number;
      partitionsFetched: number;
      partitionCount: number;
      bytesReceived: number;
      /** Bytes of our own leaf prefixes sent with requests for leaves. */
      bytesSent: number;
      ticks: number;
    }
  /** A peer did what no correct replica does: `code` is one of MISBEHAVIOURS (rejections.ts), `reason` the detail. */
  | { type: 'peer-misbehaved'; peer: number; code: Misbehaviour; reason: string }
  /** A reconfiguration request executed (membership.ts): `result` says whether it was refused. */
  | { type: 'reconfiguration'; seq: number; result: ReconfigResult }
  /** The stable checkpoint reached a new configuration: quorums, keys and the primary rotation follow it. */
  | { type: 'epoch-entered'; epoch: number; since: number; replicas: number[]; member: boolean; was: number }
  /** This replica is not a member of the configuration it entered: it votes no more (its data can go). */
  | { type: 'replica-removed'; epoch: number }
  /** This replica asked to leave (options.quitOnDivergence): its audit found its state faulty. */
  | { type: 'quitting'; reason: string }
  /**
   * A peer signed two conflicting votes for one (view, seq) and we keep both (evidence.ts): written
   * in this turn's batch, so the event leaves once the evidence is durable.
   */
  | { type: 'evidence'; evidence: VoteEvidence };

export interface OutMessage {
  to: number;
  frame: Uint8Array;
  /** Sent once the writes are durable through this Ready (see durability.ts). */
  after: number;
}

export interface OutReply {
  client: number;
  frame: Uint8Array;
  /** Sent once the writes are durable through this Ready (see durability.ts, rule 2). */
  after: number;
  /** The sequence number whose execution produced the result. */
  seq: number;
}

export interface Ready {
  /** 1, 2, 3, ... per incarnation: `after` fields refer to these numbers. */
  index: number;
  /** One synced batch, all or nothing; `clears` run after it. */
  writes: WriteOp[];
  clears: KeyRange[];
  messages: OutMessage[];
  replies: OutReply[];
  /** Performed after this Ready's writes are durable. */
  events: CoreEvent[];
  /** What the replica may have signed and holds after this Ready (see horizon.ts). */
  horizon: Horizon;
}

export interface ReplicaStatus {
  id: number;
  view: number;
  primary: number;
  /**
   * What the replica is doing, the most pressing first: 'state-transfer' (fetching the state of a
   * stable checkpoint), 'view-change', 'recovering' (signing nothing below its floor), or 'normal'.
   * The fields below describe each part (they are independent: a view change can run during a transfer).
   */
  status: 'normal' | 'view-change' | 'state-transfer' | 'recovering';
  viewChanging: boolean;
  lastExecuted: number;
  stableCheckpoint: { seq: number; digest: string };
  lastCheckpoint: { seq: number; digest: string };
  /** The sequence number of our checkpoint still being computed over several turns (null: none). */
  checkpointInProgress: number | null;
  transferring: boolean;
  divergences: number;
  logSlots: number;
  waitingRequests: number;
  /** How long a request may wait before this replica suspects the primary (ticks; ReplicaState.requestTimeoutTicks). */
  requestTimeoutTicks: number;
  /** Replicas that suspect the primary of the current view (the view changes once f+1 do). */
  suspicions: number[];
  /** The operating configuration (membership.ts): its epoch and replica ids, and whether we are one. */
  epoch: number;
  members: number[];
  /** Their addresses (by id), as the configuration names them. */
  memberUrls: Record<string, string>;
  member: boolean;
  /** A reconfiguration executed and not yet in force: it takes effect after checkpoint `since`. */
  nextEpoch?: { epoch: number; since: number; replicas: number[] };
  /** The replica's timers (timeout.ts), in ticks. */
  timers: Array<{ name: TimeoutName; after: number; attempts: number; remaining?: number }>;
  /** Set while recovering from lost durable state: what it does not sign yet. */
  recovering?: SignFloor;
  /** Set after a restart (durability.ts, rule 1a): the votes it does not sign yet. */
  abstaining?: SignFloor;
  /**
   * Equivocation evidence held (evidence.ts): pieces by kind, the replicas they name, and conflicts
   * not kept because a cap was reached.
   */
  evidence: { held: number; byKind: Record<VoteKind, number>; signers: number[]; notKept: number };
}

export class ProtocolInvariantError extends Error {}
