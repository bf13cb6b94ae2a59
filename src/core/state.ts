/**
 * The replica's state and the small operations every concern uses: the log and its window (slots,
 * batches, the outgoing effects of a turn), digests of the application state, and the owner of all
 * protocol fields. The concerns (normal.ts, checkpoints.ts, viewchange.ts, fetch.ts,
 * statetransfer.ts, recovery.ts) are functions over this state; they reach each other only through
 * the abstract hooks at the end of the class, which Replica (replica.ts) wires, so that no module of
 * the core imports another concern (the import graph stays acyclic). The fields are public to the
 * core's modules, not an API: the shell reads `Replica`'s documented members only.
 */
import { Timeout } from './timeout.ts';
import type { ReplicatedApp } from './ports.ts';
import type { KeyRange } from './ports.ts';
import { Authenticator, bytesEqual, bytesKey, toHex } from './auth.ts';
import { batchDigest, type Batch } from './batch.ts';
import { ClientTable } from './clienttable.ts';
import { DurabilityTracker } from './durability.ts';
import type { Misbehaviour, RejectReason } from './rejections.ts';
import { quorumFor, type Quorum } from './quorum.ts';
import type { ClusterConfig } from './cluster.ts';
import { clusterOf, decodeMembership, encodeMembership, genesisMembership, type MemberConfig, type Membership } from './membership.ts';
import type { ReplyBatchMsg, ReplyMsg, EpochProof, CheckpointCert, CheckpointMsg, CommitMsg, PrePrepareMsg, PrepareMsg, PreparedCert, ReadMsg, RequestMsg, Signed, ViewChangeMsg } from './messages.ts';
import { DELETED_RECORD, KEYS, WriteSet, recordKey, storesRecords, encodeBatch, encodeCheckpointState, encodeEpochProof, encodeViewState } from './persist.ts';
import { CHECKPOINT_PARTITION_COST_BYTES, resolveOptions, type ReplicaOptions } from './options.ts';
import type { SignFloor } from './horizon.ts';
import { checkCheckpointCert, primaryOf, type QuorumContext } from './newview.ts';
import { COW_CHUNK, CowArray } from './cow.ts';

/** checkStableCert's reason for a certificate of a configuration we have not learned yet. */
export const UNKNOWN_EPOCH = 'checkpoint of a configuration not known yet';
import { StateTree, leafDigest, stateDigest, clientsDigest } from './statetree.ts';
import { verifyEpochProof } from './epochproof.ts';
import { TransferSession } from './transfer.ts';
import { PrimaryMonitor } from './monitor.ts';
import { EvidenceStore, describeEvidence, encodeVoteEvidence, voteConflict, voteEvidence, voteKindOf, type VoteMsg } from './evidence.ts';
import { ProtocolInvariantError, type ReplicaDeps, type CoreEvent, type OutMessage, type Ready, type FrameCodec } from './types.ts';

export interface Slot {
  seq: number;
  /** The view `prePrepare`, `prepares` and `commits` belong to. */
  view: number;
  prePrepare?: Signed<PrePrepareMsg>;
  prepares: Map<number, Signed<PrepareMsg>>;
  commits: Map<number, Signed<CommitMsg>>;
  preparedInView: boolean;
  /** Newest prepared certificate, from any view (carried by VIEW-CHANGE). */
  cert?: PreparedCert;
  /** Set once committed (in any view): the digest is final for this sequence number. */
  committedDigest?: Uint8Array;
  commitCert?: Signed<CommitMsg>[];
  /** Batches known for this sequence number, by digest. */
  batches: Map<string, Batch>;
  /** Tick of the last change (for retransmission). */
  touched: number;
  /** The Ready that wrote our own COMMIT for this slot (replies of its execution wait for it). */
  ownCommitTurn?: number;
  batchRequestedAt?: number;
  /** Tick our PRE-PREPARE of this view arrived (proposed, at the primary): the monitor times execution from it. */
  prePreparedAt?: number;
}

export interface Waiting {
  req: Signed<RequestMsg>;
  since: number;
  /**
   * A backup knew this request (from its client, or relayed) before any PRE-PREPARE of the current
   * view carried it: the tick it learned it (or entered the view). Cleared when a PRE-PREPARE
   * carries it; the wait is timed by the primary monitor (monitor.ts).
   */
  unorderedSince?: number;
  /**
   * Its client sent it to this replica itself as a retransmission (to a backup, or to the primary
   * again): this replica replies when it executes it even if the request names other repliers.
   */
  asked?: boolean;
}


/** The request timer allows this many times the longest recent wait of an executed request (requestTimeoutTicks). */
export const LEARNED_WAIT_FACTOR = 2;
/** A read-only request held until the replica has executed through `barrier` (reads.ts). */
export interface HeldRead {
  req: Signed<ReadMsg>;
  barrier: number;
  since: number;
}

export interface CheckpointSnapshot {
  seq: number;
  digest: Uint8Array;
  tree: StateTree;
  /** Partition bytes, shared chunk by chunk with the live state and other snapshots (cow.ts). */
  partitions: CowArray<Uint8Array>;
  clients: Uint8Array;
  /** Canonical membership bytes (membership.ts) that `digest` covers. */
  membership: Uint8Array;
  /**
   * For an application with records: the records its stable checkpoint will write, found before its
   * certificate (by the checkpoint's own turns as they read each changed partition, and by
   * ReplicaState.prepareRecordsAhead); dropped once written.
   */
  records?: RecordsFound;
}

/**
 * What writing one partition of the snapshot at `seq` takes, planned from what is on disk (`before`,
 * by identity, and the records `stored` beside it then, by name, each with the seq its key carries:
 * persist.ts recordKey): the records that differ (`putNames` with `putValues`, and `delNames`),
 * written under `seq`, each replacing the key of a record of the same name stored before; or, with
 * `whole` set, the whole bytes with the records `stored` deleted; and the records stored after it
 * (undefined: none). Kept as arrays, not as write ops: a plan waits for its certificate over many
 * turns, and a bulk load's plans hold hundreds of thousands of records, each object of which the
 * young generation's collections copy (persistPartition makes the ops, in the certificate's turn).
 */
export interface PartitionWrite {
  seq: number;
  before: Uint8Array | undefined;
  whole: Uint8Array | undefined;
  stored: StoredRecords | undefined;
  putNames: string[];
  putValues: Uint8Array[];
  delNames: string[];
  names: StoredRecords | undefined;
}

/** A partition's records on disk: name -> the seq its key carries (persist.ts recordKey). */
export type StoredRecords = Map<string, number>;

const NO_NAMES: string[] = [];
const NO_VALUES: Uint8Array[] = [];

/** Per partition: its write, planned before the certificate (valid while `before` is what is on disk). */
export type RecordsFound = Map<number, PartitionWrite>;

/**
 * A checkpoint being computed over several turns (checkpoints.ts): the application froze the
 * partitions changed up to `seq` (PartitionedState.freezePartitions) and execution goes on; each
 * turn reads and hashes a bounded number of bytes of them; the rest is what the checkpoint covers,
 * taken when `seq` was executed.
 */
export interface CheckpointWork {
  seq: number;
  /** The frozen partitions, ascending; those before `next` are in the live tree. */
  partitions: number[];
  next: number;
  /** Started in this turn, which did its first share (flush() then leaves it for the next turn). */
  fresh: boolean;
  clients: Uint8Array;
  membership: Uint8Array;
  /** Whether this replica was a member of the configuration that ordered `seq` (it signs then). */
  member: boolean;
  epoch: number;
  /** For an application with records: those found as each partition is read (snapshot.records). */
  records?: RecordsFound;
}

/**
 * ReplicaState.prepareRecordsAhead's progress through our next checkpoint to become stable: the
 * partitions that differ from the ones on disk, whose records it finds (into snapshot.records).
 */
export interface RecordsAhead {
  snapshot: CheckpointSnapshot;
  /** rs.h when `partitions` was listed (a stable checkpoint since changes what is on disk). */
  stable: number;
  /** The partitions that differed from the disk's then, ascending; those before `next` are done. */
  partitions: number[];
  next: number;
}

export type { EpochProof } from './messages.ts';

export const GENESIS_SEQ = 0;

export type ViewStatus = 'normal' | 'view-change';

/**
 * The replica's timers. `viewChange` is PBFT's timer T: a request waiting `after` ticks starts a
 * view change, and a view change whose NEW-VIEW does not come within `after` ticks of 2f+1
 * VIEW-CHANGEs moves on to the next view; `after` doubles with each view change without progress.
 */
export interface Timers {
  viewChange: Timeout;
  /** Our recent messages are sent again (running always). */
  retransmit: Timeout;
  /** Armed at each execution: when it fires, the replica counts as stalled and catches up. */
  catchUp: Timeout;
  /** A replica that sees nobody ahead still asks a peer this often. */
  probe: Timeout;
  /** The fetch in flight is abandoned (and another peer asked) after this. */
  fetch: Timeout;
}

/**
 * The replies of one executed batch of several requests, before their REPLY-BATCH is made: the
 * Merkle tree and its signature are made when the first of them is sent (normal.ts replyFrameOf),
 * with the view and the results of the execution, so the bytes are those an eager replica sends.
 */
export interface PendingReplyBatch {
  view: number;
  seq: number;
  /** Each executed request's client, timestamp and result, in the batch's order. */
  replies: ReadonlyArray<{ client: number; timestamp: number; result: Uint8Array }>;
  /**
   * The Merkle paths and the signed REPLY-BATCH, made by the first reply sent (normal.ts
   * replyFrameOf); not kept past the executing turn while the batch waits in unsentReplyBatches
   * (made again, the same bytes, for a retransmission).
   */
  made: { batch: Signed<ReplyBatchMsg>; paths: Uint8Array[][] } | undefined;
  /**
   * Let go to bound memory (ReplicaState.unsentReplyBatches): a reply of it asked for later is
   * signed on its own instead (normal.ts resendReply).
   */
  dropped: boolean;
}

/**
 * A client's last reply (ReplicaState.replyFrames): its frame, or what it is made from when first
 * sent: its place in a REPLY-BATCH, or the REPLY a batch of one request signs on its own.
 */
export interface CachedReply {
  view: number;
  timestamp: number;
  seq: number;
  frame: Uint8Array | undefined;
  reply: { batch: PendingReplyBatch; index: number } | ReplyMsg | undefined;
}

export abstract class ReplicaState {
  // --- the configuration that orders the window (h, ...]: membership.ts ------------------------
  /** The operating configuration: the one that orders the sequence numbers above the stable checkpoint. */
  epoch!: MemberConfig;
  /** Its verification context: members, thresholds, keys (set by useConfig). */
  ctx!: QuorumContext;
  readonly opts: ReplicaOptions;
  /** Checks signatures against the operating configuration's keys. */
  readonly auth: Authenticator;
  /** The replicated membership as of lastExecuted (changed only by executing reconfigurations). */
  membership: Membership;
  /** Every configuration known to be genuine (genesis, executed, or proven), by epoch. */
  readonly configs = new Map<number, MemberConfig>();
  /** Proofs of the epochs after genesis (served to replicas and clients that follow later). */
  readonly epochProofs = new Map<number, EpochProof>();
  private readonly contexts = new Map<number, QuorumContext>();
  readonly hash: (d: Uint8Array) => Uint8Array;
  /** The shell's frame format (types.ts FrameCodec). */
  readonly frames: FrameCodec;
  readonly app: ReplicatedApp;

  // --- protocol state -------------------------------------------------------------------------
  now = 0;
  /**
   * The shell's wall clock (ms since the Unix epoch) as last given (Replica.setClockMs): the only
   * way wall time enters the core. The primary proposes batch times from it and backups bound the
   * times they prepare by it (normal.ts). Undefined until given: then the primary proposes no
   * later time than the ones before, and backups check only that times do not go backwards.
   */
  clockMs?: number;
  view = 0;
  /** PBFT's view status: 'view-change' from sending a VIEW-CHANGE until entering the new view. */
  viewStatus: ViewStatus = 'normal';
  lastExecuted = GENESIS_SEQ;
  stable: CheckpointCert;
  /**
   * The stable checkpoint up to which this incarnation cleared the log and the checkpoint votes
   * on disk (advanceStable); undefined until its first clear, which starts at the prefixes: the
   * clears of an earlier incarnation are not synced, and a crash may have lost them.
   */
  clearedThrough: number | undefined;
  readonly slots = new Map<number, Slot>();
  nextSeq = 1;
  readonly clients = new ClientTable();
  /**
   * Each client's last reply, kept for retransmissions. A reply in a REPLY-BATCH that is not sent
   * when executed (the request named other repliers) keeps its parts, and is encoded when it is
   * first sent (normal.ts replyFrameOf): most of them never are.
   */
  readonly replyFrames = new Map<number, CachedReply>();
  /**
   * The batches with replies not sent, oldest first: at most opts.windowSize (as many batches as
   * the log holds), the oldest let go beyond (PendingReplyBatch.dropped). Without the bound, a client
   * that stays idle would keep its last batch's results (up to 512 of them) as long as it stays idle.
   */
  readonly unsentReplyBatches: PendingReplyBatch[] = [];
  readonly waiting = new Map<number, Waiting>();
  /**
   * The longest a request executed here waited (ticks from `since`, its arrival or the start of the
   * view, to its execution), in the current and in the previous checkpoint interval: what the
   * request timer learns from (requestTimeoutTicks).
   */
  private readonly waitedLongest = { current: 0, previous: 0 };
  /** Primary: clients with a waiting request not yet proposed, in arrival order. */
  queue: number[] = [];
  readonly queued = new Set<number>();
  /** Size of the last batch proposed (adaptive batching). */
  lastBatchSize = 0;
  /** Requests proposed in the current view and not yet executed: client -> timestamp. */
  readonly assigned = new Map<number, number>();
  /**
   * Read-only requests waiting for this replica to execute what it had prepared when they arrived
   * (reads.ts), at most one per client (its newest).
   */
  readonly heldReads = new Map<number, HeldRead>();
  /**
   * The timestamp of each client's newest read-only request taken: an older or repeated one is
   * dropped before any signature work. Local, not replicated: reads are not ordered, so replicas
   * see different ones (the client table, which is replicated, never records a read).
   */
  readonly lastReads = new Map<number, number>();
  /** Clients whose read-only request this turn took (one per client per turn; cleared by flush). */
  readonly readsThisTurn = new Set<number>();
  readonly checkpointVotes = new Map<number, Map<number, Signed<CheckpointMsg>>>();
  readonly ownCheckpoints = new Map<number, CheckpointSnapshot>();
  stableSnapshot?: CheckpointSnapshot;
  /** A stable certificate above our execution, waiting for us to catch up. */
  pendingStable?: CheckpointCert;
  /** Set while recovering from lost durable state (see SignFloor in horizon.ts). */
  floor?: SignFloor;
  /**
   * Set by a restart (recovery.ts): the votes of an earlier incarnation that may have left without
   * being written lie in views up to `view`, sequence numbers up to `seq`; it signs no PRE-PREPARE,
   * PREPARE or COMMIT there (durability.ts, rule 1a). In memory only: every start derives it anew
   * from the horizon record.
   */
  abstain?: SignFloor;
  /** Pre-prepares of the current view's NEW-VIEW above our window: installed when the window reaches them. */
  newViewAhead: Signed<PrePrepareMsg>[] = [];
  /**
   * The pre-vote: replicas that suspect the primary of the current view, with the tick their
   * SUSPECT arrived (ours refreshed every tick while our timer says so); cleared on a view change.
   */
  readonly suspicions = new Map<number, number>();
  /** Our JOIN (requestJoin), signed once and resent until we are a member. */
  joinRequest?: Signed<RequestMsg>;
  /** When our SUSPECT for the current view was last sent (it is resent every retransmit period). */
  suspectSentAt?: number;
  /** VIEW-CHANGEs by sender and view (views above ours, a few per sender). */
  readonly viewChanges = new Map<number, Map<number, Signed<ViewChangeMsg>>>();
  ownViewChangeFrame?: Uint8Array;
  /** Our own recent VIEW-CHANGE frames by view, to help replicas still collecting votes for them. */
  readonly ownViewChangeFrames = new Map<number, Uint8Array>();
  readonly helpedAt = new Map<number, number>();
  newViewFrame?: Uint8Array;
  readonly aheadViews = new Map<number, number>();
  highestSeqSeen = 0;
  /** The fetch of committed entries in flight (its timer: timers.fetch). */
  fetchState?: { peer: number; cursor: number };
  /**
   * Every timer of the replica (timeout.ts); the rate limits per peer, per slot and of our own
   * SUSPECT are helpedAt, Slot.batchRequestedAt and suspectSentAt.
   */
  readonly timers: Timers;
  /** Aardvark's check on the primary's progress (monitor.ts; options.slowPrimaryCheck). */
  readonly monitor: PrimaryMonitor;
  transfer?: TransferSession;
  readonly transferCache = new Map<string, Uint8Array>();
  peerCursor = 0;

  // --- state digest bookkeeping ---------------------------------------------------------------
  liveTree: StateTree;
  livePartitions: CowArray<Uint8Array>;
  /**
   * Leaf digests of the application state on disk: the state of the last stable checkpoint we hold
   * a snapshot of (so that after a restart we can still serve it to replicas that are behind).
   */
  persistedLeaves: CowArray<Uint8Array>;
  /**
   * For an application with records (persist.ts): each partition as on disk (undefined: unreadable),
   * and the records stored beside its base (persist.ts recordKey), by name.
   */
  persistedPartitions: (Uint8Array | undefined)[];
  readonly persistedRecords = new Map<number, StoredRecords>();
  /** Storage keys to delete when a partition is next written (what is stored for it is unreadable). */
  readonly dropOnPersist = new Map<number, string[]>();
  /** Progress through the next stable checkpoint's records, found ahead of its certificate (prepareRecordsAhead). */
  recordsAhead: RecordsAhead | undefined = undefined;
  lastCheckpoint: { seq: number; digest: Uint8Array };
  /** Our latest CHECKPOINT message: retransmitted until that checkpoint is stable. */
  ownCheckpointFrame?: { seq: number; frame: Uint8Array };
  /** Our checkpoint still being computed, while execution goes on (checkpoints.ts). */
  checkpointWork: CheckpointWork | undefined = undefined;

  // --- effects of the current turn ------------------------------------------------------------
  readonly durability: DurabilityTracker;
  readonly writes = new WriteSet();
  clears: KeyRange[] = [];
  messages: OutMessage[] = [];
  replies: Ready['replies'] = [];
  events: CoreEvent[] = [];
  readonly dirtySlots = new Set<number>();

  // --- counters (read by the shell) -----------------------------------------------------------
  /** Inputs refused, by reason (rejections.ts). */
  readonly rejected = new Map<RejectReason, number>();
  /** Misbehaviour seen from peers, by code (rejections.ts). */
  readonly misbehaviours = new Map<Misbehaviour, number>();
  /** Equivocation evidence held (evidence.ts), bounded; written under KEYS.evidence, restored by recovery. */
  readonly evidence = new EvidenceStore();
  readonly counters = {
    requestsExecuted: 0,
    batchesExecuted: 0,
    viewChanges: 0,
    checkpointsStable: 0,
    divergences: 0,
    stateTransfers: 0,
    entriesFetched: 0,
    retransmissions: 0,
    /** Prepares and commits that arrived after their quorum was complete (not verified). */
    surplusVotes: 0,
    /** Requests of fresh PRE-PREPAREs whose client signatures we did not check (quorum.ts, skipsClientSignatures). */
    clientSignaturesUnchecked: 0,
    /** Signatures that covered the replies of a whole batch (instead of one per reply). */
    replyBatchesSigned: 0,
    /** Replies not sent when their request executed: it named other repliers (kept for a retransmission). */
    repliesLeftToOthers: 0,
    /** Read-only requests answered (reads.ts). */
    readsAnswered: 0,
    /** Read-only requests dropped unanswered after readHoldTicksMax. */
    readsExpired: 0,
    /** Read-only requests refused (the operation is not read-only). */
    readsRefused: 0,
    /** Own checkpoints computed over several turns while execution went on (checkpoints.ts). */
    checkpointsOverTurns: 0,
    /**
     * Own checkpoints still computing over turns whose remaining partitions were then computed in
     * one turn (finishCheckpoint): because the next checkpoint was due, or because a stable
     * certificate reached it first (the other replicas were faster); and the partitions so computed.
     * Such a turn is as long as the rest of the checkpoint's work: after a bulk load, seconds.
     */
    checkpointsRushedByNext: 0,
    checkpointsRushedByStable: 0,
    checkpointPartitionsRushed: 0,
    /**
     * Partitions a stable checkpoint wrote as records: their records found in the turns before its
     * certificate (prepareRecordsAhead), or in the certificate's own turn.
     */
    recordsFoundAhead: 0,
    recordsFoundInTurn: 0,
    /** Records found ahead again: the partition on disk changed after they were found (a stable checkpoint since). */
    recordsFoundAgain: 0,
  };


  constructor(
    readonly cluster: ClusterConfig,
    readonly id: number,
    options: Partial<ReplicaOptions>,
    readonly deps: ReplicaDeps,
  ) {
    if (!Number.isInteger(id) || id < 0 || id > 0xffff) throw new RangeError(`replica id ${id} not in 0..65535`);
    this.opts = resolveOptions(options);
    this.timers = {
      viewChange: new Timeout('view-change', this.opts.viewChangeTimeoutTicks, 'exponential', this.opts.viewChangeTimeoutTicksMax),
      retransmit: new Timeout('retransmit', this.opts.retransmitTicks),
      catchUp: new Timeout('catch-up', this.opts.catchUpTicks),
      probe: new Timeout('probe', this.opts.probeTicks),
      fetch: new Timeout('fetch', this.opts.fetchTimeoutTicks),
    };
    this.timers.retransmit.start(0);
    this.timers.catchUp.start(0);
    this.monitor = new PrimaryMonitor({
      floorTicks: Math.max(1, Math.ceil((this.opts.viewChangeTimeoutTicks * this.opts.slowPrimaryDelayFloorPercent) / 100)),
      factor: this.opts.slowPrimaryDelayFactor,
      samples: this.opts.slowPrimarySamples,
    });
    this.durability = new DurabilityTracker(deps.unsafeTestOnly?.replyBeforeWrite === true);
    this.hash = deps.crypto.hash;
    this.frames = deps.frames;
    this.app = deps.app;
    this.auth = new Authenticator(cluster, deps.crypto);
    this.membership = genesisMembership(cluster);
    this.configs.set(0, this.membership.current);
    // Genesis: the application starts empty on every replica, so its digest is the same everywhere.
    this.app.takeDirtyPartitions();
    const partitions: Uint8Array[] = [];
    for (let i = 0; i < this.app.partitionCount; i++) partitions.push(this.app.readPartition(i));
    this.livePartitions = new CowArray(partitions);
    this.liveTree = StateTree.fromPartitions(this.hash, partitions);
    this.persistedLeaves = this.liveTree.leaves.share();
    this.persistedPartitions = partitions.slice();
    const genesisClients = this.clients.encode();
    const genesisMembers = encodeMembership(this.membership);
    const genesis = stateDigest(this.hash, this.liveTree.root, genesisClients, genesisMembers);
    this.genesisDigest = genesis;
    this.stable = { epoch: 0, seq: GENESIS_SEQ, digest: genesis, proof: [] };
    this.lastCheckpoint = { seq: GENESIS_SEQ, digest: genesis };
    const snapshot = this.snapshotNow(GENESIS_SEQ, genesis, genesisClients, genesisMembers);
    this.ownCheckpoints.set(GENESIS_SEQ, snapshot);
    this.stableSnapshot = snapshot;
    this.useConfig(this.membership.current);
  }

  private readonly genesisDigest: Uint8Array;

  /** The verification context of a known epoch (undefined when the epoch is not known). */
  ctxFor(epoch: number): QuorumContext | undefined {
    const cached = this.contexts.get(epoch);
    if (cached) return cached;
    const config = this.configs.get(epoch);
    if (!config) return undefined;
    const cluster = clusterOf(this.cluster.clusterId, config);
    const members = config.replicas.map((r) => r.id);
    const memberSet = new Set(members);
    const n = members.length;
    const f = cluster.f;
    const isOperating = this.epoch === config;
    const ctx: QuorumContext = {
      epoch,
      since: config.since,
      n,
      f,
      members,
      isMember: (r) => memberSet.has(r),
      q: quorumFor(n, f, this.deps.unsafeTestOnly?.quorum, cluster.faultModel),
      checkpointInterval: this.opts.checkpointInterval,
      windowSize: this.opts.windowSize,
      genesisDigest: this.genesisDigest,
      nullDigest: batchDigest(this.hash, [], 0),
      auth: isOperating ? this.auth : new Authenticator(cluster, this.deps.crypto),
    };
    const next = this.configs.get(epoch + 1);
    if (next) ctx.until = next.since;
    this.contexts.set(epoch, ctx);
    ctx.previous = epoch > 0 ? this.ctxFor(epoch - 1) : undefined;
    // Keep a few: the operating epoch and its neighbours are what anyone asks about.
    for (const e of this.contexts.keys()) if (e < epoch - 2 && e !== this.epoch?.epoch) this.contexts.delete(e);
    return ctx;
  }

  /**
   * Checks a stable checkpoint certificate against the configuration that signed it (its epoch's,
   * or the previous one's for the checkpoint where its epoch began); a reason when it is invalid or
   * its epoch is one we do not know yet (`unknown-epoch`: not the sender's fault).
   */
  checkStableCert(cert: CheckpointCert): string | undefined {
    const ctx = this.ctxFor(cert.epoch) ?? this.ctxFor(cert.epoch - 1);
    if (!ctx) return UNKNOWN_EPOCH;
    return checkCheckpointCert(cert, ctx);
  }

  /** A configuration becomes known (executed here, or proven by an EpochProof). */
  learnConfig(config: MemberConfig): void {
    if (this.configs.has(config.epoch)) return;
    this.configs.set(config.epoch, config);
    const before = this.contexts.get(config.epoch - 1);
    if (before) before.until = config.since;
  }

  /** Makes `config` the operating configuration: quorums, keys, primary rotation. */
  useConfig(config: MemberConfig): void {
    this.epoch = config;
    const cluster = clusterOf(this.cluster.clusterId, config);
    this.auth.setCluster(cluster);
    // The shared Authenticator now holds this configuration's keys: every other epoch's context
    // (the previous one checks the checkpoint this epoch began at) gets its own again.
    this.contexts.clear();
    const ctx = this.ctxFor(config.epoch)!;
    ctx.auth = this.auth;
    this.ctx = ctx;
  }

  /** Members of the operating configuration, its f and its vote thresholds (src/core/quorum.ts). */
  get n(): number {
    return this.ctx.n;
  }

  get f(): number {
    return this.ctx.f;
  }

  get q(): Quorum {
    return this.ctx.q;
  }

  /** Member ids, ascending (the primary rotation). */
  get members(): readonly number[] {
    return this.ctx.members;
  }

  /** The last sequence number the operating configuration orders (Infinity until a change is known). */
  get epochEnd(): number {
    return this.configs.get(this.epoch.epoch + 1)?.since ?? Infinity;
  }

  isMember(id: number): boolean {
    return this.ctx.isMember(id);
  }

  /**
   * Canonical bytes of the live membership, encoded once per membership (it changes only with a
   * reconfiguration; every checkpoint digest covers it).
   */
  membershipBytes(): Uint8Array {
    if (this.encodedMembership?.of !== this.membership) {
      const bytes = encodeMembership(this.membership);
      this.encodedMembership = { of: this.membership, bytes };
      this.membershipOfBytes.set(bytes, this.membership);
    }
    return this.encodedMembership.bytes;
  }

  /** The configuration in a snapshot's membership bytes (decoded only if they are not ours). */
  configOf(bytes: Uint8Array): MemberConfig | undefined {
    const known = this.membershipOfBytes.get(bytes);
    if (known) return known.current;
    const m = decodeMembership(bytes);
    return m.ok ? m.value.current : undefined;
  }

  private encodedMembership?: { of: Membership; bytes: Uint8Array };
  private readonly membershipOfBytes = new WeakMap<Uint8Array, Membership>();

  /** The newest configuration known (a fetch tells peers, whose reply brings the proofs of later ones). */
  get latestEpoch(): number {
    let e = 0;
    for (const k of this.configs.keys()) if (k > e) e = k;
    return e;
  }

  /**
   * Learns configuration `proof.epoch` from its proof (the previous configuration must be known):
   * the boundary checkpoint certified by the previous configuration, and the opening of its digest
   * to the membership bytes. A reason when the proof is invalid; undefined when learned or known.
   */
  learnEpochProof(proof: EpochProof): string | undefined {
    if (this.configs.has(proof.epoch) && this.epochProofs.has(proof.epoch)) return undefined;
    const prev = this.configs.get(proof.epoch - 1);
    if (!prev || proof.epoch === 0) return UNKNOWN_EPOCH;
    if (proof.cert.seq % this.opts.checkpointInterval !== 0) return `epoch proof ${proof.epoch}: checkpoint seq is not a multiple of the interval`;
    const r = this.deps.unsafeTestOnly?.trustEpochProofs ? trustedProof(proof) : verifyEpochProof(this.cluster.clusterId, prev, proof, this.deps.crypto);
    if (!r.ok) return r.reason;
    const known = this.configs.get(proof.epoch);
    if (known && (known.since !== r.config.since || !bytesEqual(encodeMembership({ current: known }), encodeMembership({ current: r.config })))) {
      // Two certified configurations for one epoch: more than f of the previous one are faulty.
      throw new ProtocolInvariantError(`epoch ${proof.epoch}: a proof certifies another configuration than the one this replica executed`);
    }
    this.learnConfig(r.config);
    this.storeEpochProof(proof);
    return undefined;
  }

  storeEpochProof(proof: EpochProof): void {
    if (this.epochProofs.has(proof.epoch)) return;
    this.epochProofs.set(proof.epoch, proof);
    this.writes.put(KEYS.epochProof(proof.epoch), encodeEpochProof(proof));
  }

  /**
   * The stable checkpoint decides the operating configuration (membership.ts): the one of its epoch.
   * Entering a new one changes quorums, keys and the primary rotation; votes gathered under the old
   * one for a view change are dropped (a view change in progress is asked again, in the new epoch).
   * While the stable checkpoint's configuration is unknown (a transfer is installing it), the
   * replica only follows: nothing is in its window (inWindow).
   */
  enterEpoch(): void {
    const target = this.stable.epoch;
    if (target === this.epoch.epoch) return;
    const config = this.configs.get(target);
    if (!config) return;
    const was = this.epoch.epoch;
    const wasMember = this.isMember(this.id);
    this.useConfig(config);
    this.viewChanges.clear();
    this.suspicions.clear();
    this.suspectSentAt = undefined;
    this.aheadViews.clear();
    this.helpedAt.clear();
    this.newViewAhead = [];
    this.events.push({ type: 'epoch-entered', epoch: target, since: config.since, replicas: [...this.members], member: this.isMember(this.id), was });
    if (wasMember && !this.isMember(this.id)) this.events.push({ type: 'replica-removed', epoch: target });
    this.epochEntered();
  }

  /**
   * A replica in a configuration we know of (operating, the next, or the previous one): its fetches
   * and state requests are served (a joining replica catches up, a removed one learns it is out).
   */
  isKnownReplica(id: number): boolean {
    if (this.isMember(id)) return true;
    const next = this.configs.get(this.epoch.epoch + 1) ?? this.membership.next;
    const previous = this.configs.get(this.epoch.epoch - 1);
    return [next, previous].some((c) => c !== undefined && c.replicas.some((r) => r.id === id));
  }

  get h(): number {
    return this.stable.seq;
  }

  get primary(): number {
    return primaryOf(this.view, this.members);
  }

  /** A request we waited for executed after `ticks` (see waitedLongest). */
  noteExecutedWait(ticks: number): void {
    if (ticks > this.waitedLongest.current) this.waitedLongest.current = ticks;
  }

  /** Our checkpoint interval ended: the one before it is forgotten. */
  rollExecutedWaits(): void {
    this.waitedLongest.previous = this.waitedLongest.current;
    this.waitedLongest.current = 0;
  }

  /**
   * How long a request may wait before we suspect the primary: the view-change timeout (with its
   * backoff), or, when longer, LEARNED_WAIT_FACTOR times the longest a request executed here waited
   * in this or the previous checkpoint interval, at most requestTimeoutLearnedMaxFactor times the
   * base timeout. A cluster whose requests take long (a bulk load into a large store, whose
   * checkpoints hold every replica for 1-2 s at once) is not a faulty primary: the timer learns its
   * pace from the requests that executed, and forgets it two checkpoints after it passed. What a
   * faulty primary gains by delaying requests to raise it is bounded by the cap, and a primary that
   * holds PRE-PREPAREs back is caught by the slow-primary check, which this does not change.
   */
  requestTimeoutTicks(): number {
    const base = this.timers.viewChange.after;
    const learned = Math.min(LEARNED_WAIT_FACTOR * Math.max(this.waitedLongest.current, this.waitedLongest.previous), this.opts.requestTimeoutLearnedMaxFactor * this.opts.viewChangeTimeoutTicks);
    return Math.max(base, learned);
  }

  isPrimary(): boolean {
    return this.primary === this.id;
  }

  enqueue(client: number): void {
    if (this.queued.has(client)) return;
    this.queued.add(client);
    this.queue.push(client);
  }

  /**
   * False for (view, seq) it may have voted on before and no longer knows how: while recovering from
   * lost durable state (see SignFloor), and after a restart (abstain: durability.ts, rule 1a).
   */
  mayVote(view: number, seq: number): boolean {
    if (!this.isMember(this.id)) return false;
    const a = this.abstain;
    if (a !== undefined && view <= a.view && seq <= a.seq) return false;
    return this.floor === undefined || view > this.floor.view || seq > this.floor.seq;
  }

  /** False while recovering, until the stable checkpoint covers everything it may have prepared. */
  mayViewChange(): boolean {
    return this.floor === undefined || this.h >= this.floor.seq;
  }

  /** (h, h+L], cut at the end of the operating configuration (membership.ts). */
  inWindow(seq: number): boolean {
    if (this.stable.epoch !== this.epoch.epoch) return false;
    return seq > this.h && seq <= this.h + this.opts.windowSize && seq <= this.epochEnd;
  }

  noteAhead(replica: number, view: number, seq?: number): void {
    if (view > this.view || (view === this.view && this.viewChanging)) {
      this.aheadViews.set(replica, Math.max(view, this.aheadViews.get(replica) ?? 0));
    }
    if (seq !== undefined && seq > this.highestSeqSeen) this.highestSeqSeen = seq;
  }

  /**
   * Brings the digest tree up to date with the partitions the application changed. A checkpoint
   * still being computed is abandoned (a state transfer replaces the state it covered): the
   * partitions it had not read yet are read as they are now, with the rest.
   */
  syncTree(): void {
    let dirty = this.app.takeDirtyPartitions();
    const work = this.checkpointWork;
    if (work !== undefined) {
      this.checkpointWork = undefined;
      const unread = work.partitions.slice(work.next);
      if (unread.length > 0) dirty = [...new Set([...unread, ...dirty])].sort((a, b) => a - b);
    }
    if (dirty.length === 0) return;
    for (const i of dirty) this.setLivePartition(i, this.app.readPartition(i));
    this.liveTree.commit();
  }

  /** Partition i's bytes and leaf in the live tree (its groups and root: at the next commit()). */
  setLivePartition(i: number, bytes: Uint8Array): void {
    this.livePartitions.set(i, bytes);
    this.liveTree.setLeaf(i, leafDigest(this.hash, bytes));
  }

  /** The live state as a checkpoint snapshot; `clients` are the client-table bytes `digest` covers. */
  snapshotNow(seq: number, digest: Uint8Array, clients: Uint8Array, membership: Uint8Array, records?: RecordsFound): CheckpointSnapshot {
    return { seq, digest, tree: this.liveTree.clone(), partitions: this.livePartitions.share(), clients, membership, ...(records !== undefined ? { records } : {}) };
  }

  /** The epoch proof a snapshot at the start of its configuration gives. */
  proofOf(cert: CheckpointCert, snap: { tree: StateTree; clients: Uint8Array; membership: Uint8Array }): EpochProof {
    return { epoch: cert.epoch, cert, root: snap.tree.root, clients: clientsDigest(this.hash, snap.clients), membership: snap.membership };
  }

  /**
   * Makes a snapshot's application state the one on disk (writing only the partitions that differ
   * from what is there).
   * Called for the stable checkpoint, in the same batch as its certificate and the log truncation, so
   * that a restarted replica restores its stable checkpoint, replays the log above it, and can serve
   * the stable checkpoint's state to replicas that are behind.
   */
  persistSnapshot(snap: CheckpointSnapshot): void {
    const found = snap.records;
    snap.records = undefined;
    if (this.recordsAhead?.snapshot === snap) this.recordsAhead = undefined;
    for (const i of this.differingFromDisk(snap.tree.leaves)) this.persistPartition(snap.seq, i, snap.partitions.get(i), found?.get(i));
    // Every leaf on disk is now the snapshot's (written above, or equal already).
    this.persistedLeaves = snap.tree.leaves.share();
    this.writes.put(KEYS.checkpointState, encodeCheckpointState(snap.seq, snap.digest, snap.clients, snap.membership));
  }

  /**
   * The partitions whose leaf in `leaves` differs from the one on disk, ascending. A chunk the two
   * share (cow.ts) is the same in both and is not compared: after a checkpoint of 128 changed
   * partitions, 128 chunks of 1,024 at most are.
   */
  private differingFromDisk(leaves: CowArray<Uint8Array>): number[] {
    const persisted = this.persistedLeaves;
    const out: number[] = [];
    for (let c = 0; c < leaves.chunkCount; c++) {
      if (leaves.sharesChunk(persisted, c)) continue;
      const end = Math.min(leaves.length, (c + 1) * COW_CHUNK);
      for (let i = c * COW_CHUNK; i < end; i++) {
        const leaf = leaves.get(i);
        const onDisk = persisted.get(i);
        if (leaf !== onDisk && !bytesEqual(leaf, onDisk)) out.push(i);
      }
    }
    return out;
  }

  /**
   * Partition i's write for a checkpoint whose bytes for it are `after` (into `into`), planned from
   * what is on disk now; kept when already planned from the same bytes. Returns whether it diffed.
   */
  findRecords(into: RecordsFound, seq: number, i: number, after: Uint8Array): boolean {
    if (!storesRecords(this.app)) return false;
    const dropped = this.dropOnPersist.has(i);
    const before = dropped ? undefined : this.persistedPartitions[i];
    const found = into.get(i);
    if (found !== undefined && found.before === before && found.seq === seq) return false;
    if (found !== undefined) this.counters.recordsFoundAgain++;
    into.set(i, this.planPartition(seq, before, dropped ? undefined : this.persistedRecords.get(i), after));
    return true;
  }

  /**
   * How partition i goes from `before` (on disk, with the records `stored` beside it) to `after`:
   * a record for each key that changed (an empty one for a deleted key), beside the records already
   * there; or, when the partition would then have more than opts.storedRecordsMax, the whole bytes
   * as its new base, with its records deleted.
   */
  private planPartition(seq: number, before: Uint8Array | undefined, stored: StoredRecords | undefined, after: Uint8Array): PartitionWrite {
    const diff = (this.app as Required<ReplicatedApp>).diffPartition(before, after);
    const names: StoredRecords = new Map(stored);
    for (const [name] of diff.put) names.set(name, seq);
    for (const name of diff.del) names.set(name, seq);
    if (names.size > this.opts.storedRecordsMax) {
      return { seq, before, whole: after, stored, putNames: NO_NAMES, putValues: NO_VALUES, delNames: NO_NAMES, names: undefined };
    }
    const putNames: string[] = new Array<string>(diff.put.length);
    const putValues: Uint8Array[] = new Array<Uint8Array>(diff.put.length);
    for (let k = 0; k < diff.put.length; k++) {
      const [name, value] = diff.put[k]!;
      putNames[k] = name;
      putValues[k] = value;
    }
    return { seq, before, whole: undefined, stored, putNames, putValues, delNames: diff.del, names: names.size > 0 ? names : undefined };
  }

  /** The write ops of a plan, in order, into the WriteSet's second lane. */
  private writePlan(i: number, plan: PartitionWrite): void {
    const { seq, stored } = plan;
    if (plan.whole !== undefined) {
      this.writes.record({ type: 'put', key: KEYS.partition(i), value: plan.whole });
      if (stored !== undefined) for (const [name, at] of stored) this.writes.record({ type: 'del', key: recordKey(i, name, at) });
      return;
    }
    // Each record under this checkpoint; the key of the same name's record before it goes.
    const prefix = KEYS.record(seq, i, '');
    const replace = (name: string, value: Uint8Array): void => {
      const at = stored?.get(name);
      if (at !== undefined && at !== seq) this.writes.record({ type: 'del', key: recordKey(i, name, at) });
      this.writes.record({ type: 'put', key: prefix + name, value });
    };
    const { putNames, putValues } = plan;
    for (let k = 0; k < putNames.length; k++) replace(putNames[k]!, putValues[k]!);
    for (const name of plan.delNames) replace(name, DELETED_RECORD);
  }

  /**
   * The own checkpoint that is to become stable next (the lowest above h), while its partitions'
   * records are still to be found ahead of its certificate; undefined when there is nothing to do.
   */
  private recordsAheadTarget(): CheckpointSnapshot | undefined {
    if (this.transfer || !storesRecords(this.app)) return undefined;
    let target: CheckpointSnapshot | undefined;
    for (const [seq, snap] of this.ownCheckpoints) if (seq > this.h && (target === undefined || seq < target.seq)) target = snap;
    if (target === undefined) return undefined;
    const ahead = this.recordsAhead;
    if (ahead !== undefined && ahead.snapshot === target && ahead.stable === this.h && ahead.next >= ahead.partitions.length) return undefined;
    return target;
  }

  /** Whether prepareRecordsAhead has work left (the loop then runs turns for it). */
  get recordsAheadPending(): boolean {
    return this.recordsAheadTarget() !== undefined;
  }

  /**
   * Finds, in the turns between our checkpoint and its certificate, the records its stable
   * checkpoint will write (diffPartition against each changed partition as on disk), `budget` bytes
   * of partitions per turn, beside those the checkpoint's own turns found (checkpoints.ts). The
   * turn that lists the partitions (a new checkpoint, or a stable one since) diffs none of them.
   *
   * persistSnapshot uses each diff whose `before` is still what is on disk (the identical bytes
   * object: a diff is a function of its two partitions only) and computes the others, so what it
   * writes is the same either way; only the certificate's turn is shorter (after a bulk load the
   * diffs of every partition took seconds there). A diff goes stale when the checkpoint before
   * became stable after it was found: the checkpoint's own turns find them while that one may still
   * wait for its certificate; this lists the partitions again after each stable checkpoint.
   */
  prepareRecordsAhead(budget: number): void {
    const target = this.recordsAheadTarget();
    if (target === undefined) return;
    const ahead = this.recordsAhead;
    if (ahead === undefined || ahead.snapshot !== target || ahead.stable !== this.h) {
      const partitions = this.differingFromDisk(target.tree.leaves);
      target.records ??= new Map();
      this.recordsAhead = { snapshot: target, stable: this.h, partitions, next: 0 };
      return;
    }
    const records = (target.records ??= new Map());
    let bytes = 0;
    while (ahead.next < ahead.partitions.length && bytes < budget) {
      const i = ahead.partitions[ahead.next++]!;
      const after = target.partitions.get(i);
      if (this.findRecords(records, target.seq, i, after)) bytes += after.length + CHECKPOINT_PARTITION_COST_BYTES;
    }
  }

  /**
   * Writes partition i as `bytes` (persist.ts). For an application with records: as planPartition
   * says; for another application: the whole bytes. Storage keys listed in dropOnPersist are deleted
   * first (the same batch: all or nothing). `ahead`: the write planned before the certificate
   * (findRecords), used when it was planned from what is on disk now.
   */
  private persistPartition(seq: number, i: number, bytes: Uint8Array, ahead?: PartitionWrite): void {
    const drop = this.dropOnPersist.get(i);
    if (drop !== undefined) {
      for (const key of drop) this.writes.del(key);
      this.dropOnPersist.delete(i);
      this.persistedPartitions[i] = undefined;
      this.persistedRecords.delete(i);
    }
    if (!storesRecords(this.app)) {
      this.writes.put(KEYS.partition(i), bytes);
      return;
    }
    const before = this.persistedPartitions[i];
    const early = ahead !== undefined && ahead.before === before && ahead.seq === seq;
    const plan = early ? ahead : this.planPartition(seq, before, this.persistedRecords.get(i), bytes);
    this.counters[early ? 'recordsFoundAhead' : 'recordsFoundInTurn']++;
    this.persistedPartitions[i] = bytes;
    this.writePlan(i, plan);
    if (plan.names !== undefined) this.persistedRecords.set(i, plan.names);
    else this.persistedRecords.delete(i);
  }

  get viewChanging(): boolean {
    return this.viewStatus === 'view-change';
  }

  persistViewState(): void {
    this.writes.put(KEYS.view, encodeViewState(this.view, this.viewChanging, this.timers.viewChange.attempts));
  }

  storeViewChange(vc: Signed<ViewChangeMsg>): void {
    let bySender = this.viewChanges.get(vc.msg.replica);
    if (!bySender) this.viewChanges.set(vc.msg.replica, (bySender = new Map()));
    bySender.set(vc.msg.view, vc);
    // Bound memory per sender: a byzantine replica can only crowd out its own messages.
    if (bySender.size > 8) bySender.delete(Math.max(...bySender.keys()));
  }

  resetSlotView(slot: Slot, view: number): void {
    slot.view = view;
    slot.prePrepare = undefined;
    slot.prePreparedAt = undefined;
    slot.prepares.clear();
    slot.commits.clear();
    slot.preparedInView = false;
    this.markDirty(slot);
  }

  /**
   * Requests a PRE-PREPARE carries: those we knew before it no longer wait for the primary. With
   * `timed` (a PRE-PREPARE of the current view, just arrived), the PRE-PREPARE is timed by the
   * longest wait of those requests (monitor.ts): one sample per PRE-PREPARE, so that one stall
   * of the primary, answered with one large batch, counts once.
   */
  noteOrdered(requests: readonly Signed<RequestMsg>[], timed: boolean): void {
    let waited = -1;
    for (const r of requests) {
      const w = this.waiting.get(r.msg.client);
      if (!w || w.unorderedSince === undefined || w.req.msg.timestamp > r.msg.timestamp) continue;
      if (w.req.msg.timestamp === r.msg.timestamp) waited = Math.max(waited, this.now - w.unorderedSince);
      w.unorderedSince = undefined;
    }
    if (timed && waited >= 0) this.monitor.timed(waited, this.counters.requestsExecuted);
  }

  pickPeer(cursor: number): number {
    const peers = this.members.filter((r) => r !== this.id);
    return peers[(this.id + cursor) % peers.length]!;
  }

  slotFor(seq: number): Slot {
    let slot = this.slots.get(seq);
    if (!slot) {
      slot = {
        seq,
        view: this.view,
        prepares: new Map(),
        commits: new Map(),
        preparedInView: false,
        batches: new Map(),
        touched: this.now,
      };
      this.slots.set(seq, slot);
    } else if (slot.view < this.view && !this.viewChanging) {
      this.resetSlotView(slot, this.view);
    }
    return slot;
  }

  batchFor(slot: Slot, digest: Uint8Array): Batch | undefined {
    return slot.batches.get(bytesKey(digest));
  }

  addBatch(slot: Slot, batch: Batch): void {
    const key = bytesKey(batch.digest);
    if (slot.batches.has(key)) return;
    // A byzantine primary can offer many batches per sequence number over views; keep a few, in
    // memory and on disk.
    if (slot.batches.size >= 4) {
      const keep = new Set([slot.prePrepare, slot.cert?.prePrepare].map((p) => (p ? bytesKey(p.msg.digest) : '')));
      if (slot.committedDigest) keep.add(bytesKey(slot.committedDigest));
      for (const [k, b] of [...slot.batches]) {
        if (keep.has(k)) continue;
        slot.batches.delete(k);
        this.writes.del(KEYS.batch(slot.seq, toHex(b.digest)));
      }
    }
    slot.batches.set(key, batch);
    this.writes.put(KEYS.batch(slot.seq, toHex(batch.digest)), encodeBatch(batch.requests, batch.time));
  }

  markDirty(slot: Slot): void {
    slot.touched = this.now;
    this.dirtySlots.add(slot.seq);
  }

  broadcast(frame: Uint8Array): void {
    // Only members speak: a replica that is joining (or has left) signs no protocol message.
    if (!this.isMember(this.id)) return;
    const after = this.durability.messageAfter;
    for (const r of this.members) if (r !== this.id) this.messages.push({ to: r, frame, after });
  }

  /** A PRE-PREPARE or PREPARE signed in this turn: it waits for the horizon that covers it (durability.ts, rule 1a). */
  broadcastVote(frame: Uint8Array): void {
    if (!this.isMember(this.id)) return;
    const after = this.durability.voteAfter(this.view, this.viewChanging, this.h);
    for (const r of this.members) if (r !== this.id) this.messages.push({ to: r, frame, after });
  }

  sendTo(to: number, frame: Uint8Array): void {
    if (to !== this.id) this.messages.push({ to, frame, after: this.durability.messageAfter });
  }

  reject(reason: RejectReason): void {
    this.rejected.set(reason, (this.rejected.get(reason) ?? 0) + 1);
  }

  misbehaved(peer: number, code: Misbehaviour, reason: string): void {
    this.misbehaviours.set(code, (this.misbehaviours.get(code) ?? 0) + 1);
    this.events.push({ type: 'peer-misbehaved', peer, code, reason });
  }

  /**
   * `conflicting` names the same signer and slot as `held` (a vote we hold) with another digest: the
   * signer equivocated. Both are kept as evidence (evidence.ts), once both signatures verify under
   * the operating configuration's keys; one piece per (kind, signer, view, seq), within the store's
   * caps (beyond them nothing is verified, only counted). The evidence is written in this turn's
   * batch and survives restarts.
   */
  noteEquivocation(held: Signed<VoteMsg>, conflicting: Signed<VoteMsg>): void {
    const m = conflicting.msg;
    if (m.replica === this.id || voteConflict(held, conflicting) !== undefined) return;
    if (!this.evidence.wants(`${voteKindOf(held.msg, m)}/${m.replica}/${m.view}/${m.seq}`, m.replica)) return;
    if (!this.auth.verify(held) || !this.auth.verify(conflicting)) return;
    const e = voteEvidence(held, conflicting, this.epoch.epoch);
    if (this.evidence.add(e) !== 'added') return;
    this.writes.put(KEYS.evidence(e.kind, e.signer, e.view, e.seq), encodeVoteEvidence(e));
    this.misbehaved(e.signer, 'equivocation', `${describeEvidence(e)}; kept as evidence`);
    this.events.push({ type: 'evidence', evidence: e });
  }

  /**
   * A vote of another replica that reached us inside a certificate (a prepared certificate of a
   * VIEW-CHANGE, a commit certificate of a fetched entry, a NEW-VIEW's pre-prepare): evidence if it
   * contradicts a vote of the same signer for the same (view, seq) that we hold, in the slot or in
   * its certificates. Lookups only; signatures are checked when there is a contradiction.
   */
  crossCheck(signed: Signed<VoteMsg>): void {
    const m = signed.msg;
    if (m.replica === this.id) return;
    const slot = this.slots.get(m.seq);
    if (!slot) return;
    const held: Array<Signed<VoteMsg> | undefined> = [slot.prePrepare, slot.prepares.get(m.replica), slot.commits.get(m.replica), slot.cert?.prePrepare];
    for (const s of held) {
      if (s !== undefined && s.msg.replica === m.replica && s.msg.view === m.view && !bytesEqual(s.msg.digest, m.digest)) return this.noteEquivocation(s, signed);
    }
    for (const s of [...(slot.cert?.prepares ?? []), ...(slot.commitCert ?? [])]) {
      if (s.msg.replica === m.replica && s.msg.view === m.view && !bytesEqual(s.msg.digest, m.digest)) return this.noteEquivocation(s, signed);
    }
  }

  // --- hooks: one concern calling another (wired in replica.ts) ---------------------------------
  abstract acceptBatch(slot: Slot, digest: Uint8Array, requests: Signed<RequestMsg>[], time: number, from: number): void;
  abstract advanceStable(cert: CheckpointCert, snapshot: CheckpointSnapshot | undefined): void;
  abstract checkBatch(digest: Uint8Array, requests: Signed<RequestMsg>[], time: number, proposer: number): Batch | undefined;
  abstract checkCommitted(slot: Slot): void;
  abstract checkPrepared(slot: Slot): void;
  abstract executeReady(): void;
  abstract fetchEntries(): void;
  abstract installNewViewAhead(): void;
  abstract onStableCert(cert: CheckpointCert): void;
  abstract requestBatch(slot: Slot, digest: Uint8Array): void;
  abstract startTransfer(target: CheckpointCert, reason: string): void;
  abstract takeCheckpoint(seq: number): void;
  abstract finishCheckpoint(): void;
  /** The operating configuration changed (a view change in progress must be asked again in it). */
  abstract epochEntered(): void;
  /** Asks to leave the configuration (the audit found our state faulty). */
  abstract quitSelf(reason: string): void;
}

export function slotRecord(slot: Slot): import('./persist.ts').SlotRecord {
  return {
    view: slot.view,
    prePrepare: slot.prePrepare,
    prepares: [...slot.prepares.values()],
    commits: [...slot.commits.values()],
    cert: slot.cert,
    committedDigest: slot.committedDigest,
    commitCert: slot.commitCert,
  };
}

export function assertNever(x: never): never {
  throw new Error(`unexpected ${JSON.stringify(x)}`);
}


/** The negative control trustEpochProofs: the configuration a proof names, unchecked. */
function trustedProof(proof: EpochProof): { ok: true; config: MemberConfig } | { ok: false; reason: string } {
  const m = decodeMembership(proof.membership);
  return m.ok ? { ok: true, config: m.value.current } : { ok: false, reason: m.reason };
}
