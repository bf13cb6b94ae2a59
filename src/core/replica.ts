/**
 * The PBFT replica as a pure state machine: no I/O, clocks or randomness.
 *
 *   receive(from, bytes)   a frame from an authenticated link (replica or client)
 *   tick()                 time passes (the shell maps a tick to 10 ms)
 *   flush() -> Ready       effects of everything since the last flush: `writes` (one synced batch,
 *                          all or nothing), then `clears`; messages, replies and events, each sent
 *                          once the writes it depends on are durable (`after`: see durability.ts,
 *                          the one place that states what must be on disk before what leaves)
 *
 * Castro & Liskov, "Practical Byzantine Fault Tolerance" (OSDI 1999) and TOCS 2002, with signatures:
 * normal case (pre-prepare / prepare / commit), checkpoints and the log window, view change with
 * prepared certificates, plus fetching committed entries and state transfer for replicas behind.
 */
import { decodeFrame, encodeBatchedReplyFrame, encodeLinkFrame, encodeSignedFrame } from '../codec/messages.ts';
import { buildReplyTree, replyLeaf } from './replytree.ts';
import type { ReplicatedApp } from '../app/types.ts';
import type { KeyRange, WriteOp } from '../storage/types.ts';
import { Authenticator, bytesEqual, bytesKey, toHex, type CoreCrypto } from './auth.ts';
import { batchDigest, makeBatch, type Batch } from './batch.ts';
import { ClientTable } from './clienttable.ts';
import { DurabilityTracker } from './durability.ts';
import type { RejectReason } from './rejections.ts';
import { commitQuorum, firstQuorum, preparedCertificate, quorumFor, type Quorum, type UnsafeQuorum } from './quorum.ts';
import type { ClusterConfig } from './cluster.ts';
import type {
  BatchedReply,
  ReplyBatchMsg,
  CheckpointCert,
  CheckpointMsg,
  CommitMsg,
  CommittedEntry,
  Digest,
  LinkMessage,
  NewViewMsg,
  PreparedCert,
  PrepareMsg,
  PrePrepareMsg,
  RefusalMsg,
  ReplyMsg,
  RequestMsg,
  Signed,
  StatePart,
  StateReply,
  ViewChangeMsg,
} from './messages.ts';
import {
  decodeBatch,
  decodeCheckpointCert,
  decodeCheckpointState,
  decodePair,
  decodeSlot,
  decodeViewState,
  encodeBatch,
  encodeCheckpointCert,
  encodeCheckpointState,
  encodePair,
  encodeSlot,
  encodeViewState,
  KEYS,
  WriteSet,
} from './persist.ts';
import { resolveOptions, type ReplicaOptions } from './options.ts';
import { decodeHorizon, decodeSignFloor, encodeSignFloor, lostAgainst, type Horizon, type SignFloor } from './horizon.ts';
import { BATCH_BYTES_LIMIT, BATCH_REQUESTS_LIMIT, OP_BYTES_MAX, type RefusalReason } from './limits.ts';
import {
  checkCheckpointCert,
  checkViewChange,
  checkViewChangeSet,
  planNewView,
  primaryOf,
  type QuorumContext,
} from './viewchange.ts';
import { StateTree, leafDigest, stateDigest } from './statetree.ts';
import {
  checkGroupLeaves,
  checkMeta,
  differingGroups,
  differingPositions,
  leafKey,
  leafPrefixes,
  mergeLeaves,
  packPartitions,
  partitionMatches,
  TransferSession,
  unpackPartitions,
} from './transfer.ts';

export interface Source {
  kind: 'replica' | 'client';
  id: number;
}

export interface ReplicaDeps {
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
  unsafeTestOnly?: { quorum?: UnsafeQuorum; recoveryQuorum?: UnsafeQuorum; replyBeforeWrite?: boolean; ignoreLostData?: boolean };
}

export interface ExecutedRequest {
  client: number;
  timestamp: number;
  op: Uint8Array;
  result: Uint8Array;
}

export type CoreEvent =
  | { type: 'executed'; seq: number; view: number; digest: Uint8Array; requests: ExecutedRequest[] }
  /** A batch became committed here (with our own COMMIT counted, or on a commit certificate of others). */
  | { type: 'committed'; seq: number; digest: Uint8Array }
  | { type: 'view-change-started'; view: number; reason: string }
  | { type: 'view-entered'; view: number; primary: number }
  | { type: 'checkpoint-stable'; seq: number; digest: Uint8Array }
  | { type: 'state-diverged'; seq: number; own: Uint8Array; agreed: Uint8Array }
  | { type: 'stored-state-corrupt'; seq: number; reason: string }
  /**
   * Recovery found less than the horizon record says the replica had (or the store found its log
   * damaged): it rejoins as a recovering replica that signs nothing below `floor` (see SignFloor).
   */
  | { type: 'stored-state-lost'; reasons: string[]; floor: SignFloor }
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
  | { type: 'peer-misbehaved'; peer: number; reason: string };

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
  viewChanging: boolean;
  lastExecuted: number;
  stableCheckpoint: { seq: number; digest: string };
  lastCheckpoint: { seq: number; digest: string };
  transferring: boolean;
  divergences: number;
  logSlots: number;
  waitingRequests: number;
  /** Set while recovering from lost durable state: what it does not sign yet. */
  recovering?: SignFloor;
}

interface Slot {
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
}

interface Waiting {
  req: Signed<RequestMsg>;
  since: number;
}

interface CheckpointSnapshot {
  seq: number;
  digest: Uint8Array;
  tree: StateTree;
  partitions: Uint8Array[];
  clients: Uint8Array;
}

export class ProtocolInvariantError extends Error {}

const GENESIS_SEQ = 0;

export class Replica {
  readonly n: number;
  readonly f: number;
  /** The vote thresholds (src/core/quorum.ts). */
  readonly q: Quorum;
  readonly opts: ReplicaOptions;
  readonly auth: Authenticator;
  private readonly ctx: QuorumContext;
  private readonly hash: (d: Uint8Array) => Uint8Array;
  private readonly app: ReplicatedApp;

  // --- protocol state -------------------------------------------------------------------------
  now = 0;
  view = 0;
  viewChanging = false;
  /** Consecutive view changes without progress: the timeout is base * 2^attempts. */
  viewChangeAttempts = 0;
  lastExecuted = GENESIS_SEQ;
  stable: CheckpointCert;
  private readonly slots = new Map<number, Slot>();
  private nextSeq = 1;
  private readonly clients = new ClientTable();
  private readonly replyFrames = new Map<number, { view: number; timestamp: number; seq: number; frame: Uint8Array }>();
  private readonly waiting = new Map<number, Waiting>();
  /** Primary: clients with a waiting request not yet proposed, in arrival order. */
  private queue: number[] = [];
  private readonly queued = new Set<number>();
  /** Size of the last batch proposed (adaptive batching). */
  private lastBatchSize = 0;
  /** Requests proposed in the current view and not yet executed: client -> timestamp. */
  private readonly assigned = new Map<number, number>();
  private readonly checkpointVotes = new Map<number, Map<number, Signed<CheckpointMsg>>>();
  private readonly ownCheckpoints = new Map<number, CheckpointSnapshot>();
  private stableSnapshot?: CheckpointSnapshot;
  /** A stable certificate above our execution, waiting for us to catch up. */
  private pendingStable?: CheckpointCert;
  /** Set while recovering from lost durable state (see SignFloor in horizon.ts). */
  private floor?: SignFloor;
  /** Pre-prepares of the current view's NEW-VIEW above our window: installed when the window reaches them. */
  private newViewAhead: Signed<PrePrepareMsg>[] = [];
  /** VIEW-CHANGEs by sender and view (views above ours, a few per sender). */
  private readonly viewChanges = new Map<number, Map<number, Signed<ViewChangeMsg>>>();
  private ownViewChangeFrame?: Uint8Array;
  /** Our own recent VIEW-CHANGE frames by view, to help replicas still collecting votes for them. */
  private readonly ownViewChangeFrames = new Map<number, Uint8Array>();
  private readonly helpedAt = new Map<number, number>();
  private newViewDeadline?: number;
  private newViewFrame?: Uint8Array;
  private readonly aheadViews = new Map<number, number>();
  private highestSeqSeen = 0;
  private progressTick = 0;
  private lastRetransmit = 0;
  private fetchState?: { peer: number; at: number; cursor: number };
  private lastProbe = -Infinity;
  private transfer?: TransferSession;
  private readonly transferCache = new Map<string, Uint8Array>();
  private peerCursor = 0;

  // --- state digest bookkeeping ---------------------------------------------------------------
  private liveTree: StateTree;
  private livePartitions: Uint8Array[];
  private livePartitionsShared = false;
  /**
   * Leaf digests of the application state on disk: the state of the last stable checkpoint we hold
   * a snapshot of (so that after a restart we can still serve it to replicas that are behind).
   */
  private persistedLeaves: Uint8Array[];
  private lastCheckpoint: { seq: number; digest: Uint8Array };
  /** Our latest CHECKPOINT message: retransmitted until that checkpoint is stable. */
  private ownCheckpointFrame?: { seq: number; frame: Uint8Array };

  // --- effects of the current turn ------------------------------------------------------------
  private readonly durability: DurabilityTracker;
  private readonly writes = new WriteSet();
  private clears: KeyRange[] = [];
  private messages: OutMessage[] = [];
  private replies: Ready['replies'] = [];
  private events: CoreEvent[] = [];
  private readonly dirtySlots = new Set<number>();

  // --- counters (read by the shell) -----------------------------------------------------------
  /** Inputs refused, by reason (rejections.ts). */
  readonly rejected = new Map<RejectReason, number>();
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
    /** Signatures that covered the replies of a whole batch (instead of one per reply). */
    replyBatchesSigned: 0,
  };

  constructor(
    readonly cluster: ClusterConfig,
    readonly id: number,
    options: Partial<ReplicaOptions>,
    private readonly deps: ReplicaDeps,
  ) {
    this.n = cluster.replicas.length;
    this.f = cluster.f;
    this.q = quorumFor(this.n, this.f, deps.unsafeTestOnly?.quorum);
    if (!Number.isInteger(id) || id < 0 || id >= this.n) throw new RangeError(`replica id ${id} not in 0..${this.n - 1}`);
    this.opts = resolveOptions(options);
    this.durability = new DurabilityTracker(deps.unsafeTestOnly?.replyBeforeWrite === true);
    this.hash = deps.crypto.hash;
    this.app = deps.app;
    this.auth = new Authenticator(cluster, deps.crypto);
    // Genesis: the application starts empty on every replica, so its digest is the same everywhere.
    this.app.takeDirtyPartitions();
    this.livePartitions = [];
    for (let i = 0; i < this.app.partitionCount; i++) this.livePartitions.push(this.app.readPartition(i));
    this.liveTree = StateTree.fromPartitions(this.hash, this.livePartitions);
    this.persistedLeaves = this.liveTree.leaves.slice();
    const genesisClients = this.clients.encode();
    const genesis = stateDigest(this.hash, this.liveTree.root, genesisClients);
    this.stable = { seq: GENESIS_SEQ, digest: genesis, proof: [] };
    this.lastCheckpoint = { seq: GENESIS_SEQ, digest: genesis };
    const snapshot = this.snapshotNow(GENESIS_SEQ, genesis, genesisClients);
    this.ownCheckpoints.set(GENESIS_SEQ, snapshot);
    this.stableSnapshot = snapshot;
    this.ctx = {
      n: this.n,
      f: this.f,
      q: this.q,
      checkpointInterval: this.opts.checkpointInterval,
      windowSize: this.opts.windowSize,
      genesisDigest: genesis,
      nullDigest: batchDigest(this.hash, []),
      auth: this.auth,
    };
  }

  // ==============================================================================================
  // Public interface
  // ==============================================================================================

  get h(): number {
    return this.stable.seq;
  }

  get primary(): number {
    return primaryOf(this.view, this.n);
  }

  isPrimary(): boolean {
    return this.primary === this.id;
  }

  /** A frame from an authenticated link. Never throws on peer input. */
  receive(from: Source, bytes: Uint8Array): void {
    if (bytes.length > this.opts.frameBytesMax) return this.reject('oversized-frame');
    const decoded = decodeFrame(bytes);
    if (!decoded.ok) return this.reject('malformed');
    const frame = decoded.value;
    if (frame.kind === 'link') {
      if (from.kind !== 'replica' || from.id === this.id || from.id >= this.n) return this.reject('link-from-non-replica');
      return this.onLink(from.id, frame.msg);
    }
    if (frame.kind === 'reply') return this.reject('unexpected-reply');
    const signed = frame.signed;
    const msg = signed.msg;
    if (msg.type === 'request') return this.onRequest(signed as Signed<RequestMsg>, from);
    if (from.kind !== 'replica' || from.id === this.id || from.id >= this.n) return this.reject('protocol-message-from-non-replica');
    // Replica messages come from their signer, except a NEW-VIEW relayed to a replica that missed it.
    if (msg.type !== 'newview' && msg.replica !== from.id) return this.reject('sender-mismatch');
    switch (msg.type) {
      case 'preprepare':
        return this.onPrePrepare(signed as Signed<PrePrepareMsg>, frame.batch);
      case 'prepare':
        return this.onPrepare(signed as Signed<PrepareMsg>);
      case 'commit':
        return this.onCommit(signed as Signed<CommitMsg>);
      case 'checkpoint':
        return this.onCheckpoint(signed as Signed<CheckpointMsg>);
      case 'viewchange':
        return this.onViewChange(signed as Signed<ViewChangeMsg>);
      case 'newview':
        return this.onNewView(signed as Signed<NewViewMsg>, from.id);
      case 'reply':
      case 'replybatch':
      case 'refusal':
        return this.reject('unexpected-reply');
      default:
        return assertNever(msg);
    }
  }

  tick(): void {
    this.now++;
    if (this.viewChanging) {
      if (this.newViewDeadline !== undefined && this.now >= this.newViewDeadline) {
        this.startViewChange(this.view + 1, 'new-view timeout');
      }
    } else if (!this.transfer && this.waiting.size > 0) {
      let oldest = Infinity;
      for (const w of this.waiting.values()) if (w.since < oldest) oldest = w.since;
      if (this.now - oldest >= this.viewChangeTimeout()) this.startViewChange(this.view + 1, 'request timeout');
    }
    if (this.now - this.lastRetransmit >= this.opts.retransmitTicks) {
      this.lastRetransmit = this.now;
      this.retransmit();
    }
    this.catchUp();
    this.driveTransfer();
  }

  /** Runs deferred work and returns the effects accumulated since the last flush. */
  flush(): Ready {
    this.propose();
    const floor = this.floor;
    if (floor && this.h >= floor.seq) {
      this.floor = undefined;
      this.writes.del(KEYS.floor);
      this.events.push({ type: 'signing-resumed', view: this.view, stable: this.h });
    }
    for (const seq of this.dirtySlots) {
      const slot = this.slots.get(seq);
      if (slot) this.writes.put(KEYS.slot(seq), encodeSlot(slotRecord(slot)));
    }
    this.dirtySlots.clear();
    this.assertInvariants();
    const ready: Ready = {
      index: this.durability.next(),
      writes: this.writes.take(),
      clears: this.clears,
      messages: this.messages,
      replies: this.replies,
      events: this.events,
      horizon: { view: this.view, stable: this.h, executed: this.lastExecuted },
    };
    this.clears = [];
    this.messages = [];
    this.replies = [];
    this.events = [];
    return ready;
  }

  status(): ReplicaStatus {
    return {
      id: this.id,
      view: this.view,
      primary: this.primary,
      viewChanging: this.viewChanging,
      lastExecuted: this.lastExecuted,
      stableCheckpoint: { seq: this.stable.seq, digest: toHex(this.stable.digest) },
      lastCheckpoint: { seq: this.lastCheckpoint.seq, digest: toHex(this.lastCheckpoint.digest) },
      transferring: this.transfer !== undefined,
      divergences: this.counters.divergences,
      logSlots: this.slots.size,
      waitingRequests: this.waiting.size,
      ...(this.floor ? { recovering: { ...this.floor } } : {}),
    };
  }

  /** Number of log slots held in memory (bounded by the window). */
  get logSize(): number {
    return this.slots.size;
  }

  // ==============================================================================================
  // Requests and batching
  // ==============================================================================================

  private onRequest(signed: Signed<RequestMsg>, from: Source): void {
    const m = signed.msg;
    if (from.kind === 'client' && from.id !== m.client) return this.reject('request-client-mismatch');
    if (!this.auth.hasClient(m.client)) return this.reject('unknown-client');
    if (m.op.length > OP_BYTES_MAX) {
      // Never ordered: refused at once (a batch could not carry it everywhere), with a signed answer.
      this.reject('request-too-large');
      if (from.kind === 'client') this.refuse(signed, 'op-too-large', OP_BYTES_MAX);
      return;
    }
    const record = this.clients.get(m.client);
    if (record && m.timestamp < record.timestamp) return this.reject('stale-request');
    if (record && m.timestamp === record.timestamp) {
      // Executed already: a retransmission gets the cached reply (at-most-once execution).
      if (from.kind === 'client') this.resendReply(m.client);
      return;
    }
    const w = this.waiting.get(m.client);
    if (w && m.timestamp < w.req.msg.timestamp) return this.reject('stale-request');
    const known = w !== undefined && w.req.msg.timestamp === m.timestamp;
    if (known && !bytesEqual(w.req.body, signed.body)) return this.reject('conflicting-request');
    if (!known) {
      if (!this.auth.verify(signed)) return this.reject('bad-request-signature');
      this.waiting.set(m.client, { req: signed, since: this.now });
    }
    if (this.viewChanging) return;
    if (this.isPrimary()) this.enqueue(m.client);
    else if (from.kind === 'client') this.sendTo(this.primary, encodeSignedFrame(signed));
  }

  /** Tells the client, in a signed REFUSAL, that its request will not be ordered. */
  private refuse(req: Signed<RequestMsg>, reason: RefusalReason, limit: number): void {
    const m = req.msg;
    const refusal = this.auth.sign<RefusalMsg>({ type: 'refusal', replica: this.id, client: m.client, timestamp: m.timestamp, digest: this.hash(req.body), reason, limit });
    this.replies.push({ client: m.client, frame: encodeSignedFrame(refusal), after: this.durability.refusalAfter, seq: this.lastExecuted });
  }

  private enqueue(client: number): void {
    if (this.queued.has(client)) return;
    this.queued.add(client);
    this.queue.push(client);
  }

  /** False while recovering from lost durable state, for (view, seq) it may have voted on before (see SignFloor). */
  private mayVote(view: number, seq: number): boolean {
    return this.floor === undefined || view > this.floor.view || seq > this.floor.seq;
  }

  /** False while recovering, until the stable checkpoint covers everything it may have prepared. */
  private mayViewChange(): boolean {
    return this.floor === undefined || this.h >= this.floor.seq;
  }

  /** Primary: turn waiting requests into pre-prepares while the pipeline has room. */
  private propose(): void {
    if (this.viewChanging || !this.isPrimary() || this.transfer || this.queue.length === 0 || !this.mayVote(this.view, this.nextSeq)) return;
    let head = 0;
    while (head < this.queue.length) {
      const inFlight = this.nextSeq - 1 - this.lastExecuted;
      if (inFlight >= this.opts.inFlightBatchesMax) break;
      if (this.nextSeq > this.h + this.opts.windowSize) break;
      // Adaptive batching: with nothing in flight, propose at once (low load: batches of one, low
      // latency). With batches in flight, wait until the queue fills a batch as large as the last
      // one: under load batches grow and fewer are in flight, which amortizes the per-batch
      // signatures; when load rises faster than batches execute, several go out in a row.
      if (inFlight > 0 && this.queue.length - head < Math.min(this.lastBatchSize, this.opts.batchRequestsMax)) break;
      const requests: Signed<RequestMsg>[] = [];
      let bytes = 0;
      while (head < this.queue.length && requests.length < this.opts.batchRequestsMax) {
        const client = this.queue[head]!;
        const w = this.waiting.get(client);
        if (w === undefined || this.assigned.get(client) === w.req.msg.timestamp) {
          head++;
          this.queued.delete(client);
          continue;
        }
        const size = w.req.body.length + w.req.sig.length;
        if (requests.length > 0 && bytes + size > this.opts.batchBytesMax) break;
        head++;
        this.queued.delete(client);
        requests.push(w.req);
        this.assigned.set(client, w.req.msg.timestamp);
        bytes += size;
      }
      if (requests.length === 0) break;
      this.lastBatchSize = requests.length;
      const batch = makeBatch(this.hash, requests);
      const seq = this.nextSeq++;
      const pp = this.auth.sign<PrePrepareMsg>({ type: 'preprepare', view: this.view, seq, digest: batch.digest, replica: this.id });
      const slot = this.slotFor(seq);
      slot.prePrepare = pp;
      this.addBatch(slot, batch);
      this.markDirty(slot);
      this.broadcast(encodeSignedFrame(pp, batch.requests));
      this.checkPrepared(slot);
    }
    this.queue = this.queue.slice(head);
  }

  // ==============================================================================================
  // Normal case: pre-prepare, prepare, commit
  // ==============================================================================================

  private inWindow(seq: number): boolean {
    return seq > this.h && seq <= this.h + this.opts.windowSize;
  }

  private noteAhead(replica: number, view: number, seq?: number): void {
    if (view > this.view || (view === this.view && this.viewChanging)) {
      this.aheadViews.set(replica, Math.max(view, this.aheadViews.get(replica) ?? 0));
    }
    if (seq !== undefined && seq > this.highestSeqSeen) this.highestSeqSeen = seq;
  }

  /** Messages of the current view, in the window, in normal status; notes evidence of being behind. */
  private admitPhase(msg: { view: number; seq: number; replica: number }): boolean {
    this.noteAhead(msg.replica, msg.view, msg.seq);
    if (msg.view !== this.view || this.viewChanging) {
      this.reject(msg.view < this.view ? 'old-view' : 'future-view');
      return false;
    }
    if (!this.inWindow(msg.seq)) {
      this.reject('out-of-window');
      return false;
    }
    return true;
  }

  private onPrePrepare(signed: Signed<PrePrepareMsg>, requests: Signed<RequestMsg>[] | undefined): void {
    const m = signed.msg;
    if (m.replica !== primaryOf(m.view, this.n)) return this.reject('preprepare-not-from-primary');
    if (!this.admitPhase(m)) return;
    const slot = this.slotFor(m.seq);
    if (slot.prePrepare) {
      if (!bytesEqual(slot.prePrepare.msg.digest, m.digest)) return this.reject('conflicting-preprepare');
      // A retransmission: it may bring the batch we lack.
      if (requests && !this.batchFor(slot, m.digest)) this.acceptBatch(slot, m.digest, requests, m.replica);
      return;
    }
    if (!requests) return this.reject('preprepare-without-batch');
    if (requests.length > BATCH_REQUESTS_LIMIT) return this.reject('batch-too-large');
    if (!this.auth.verify(signed)) return this.reject('bad-signature');
    const batch = this.checkBatch(m.digest, requests, m.replica);
    if (!batch) return;
    slot.prePrepare = signed;
    this.addBatch(slot, batch);
    this.markDirty(slot);
    for (const r of batch.requests) this.noteWaiting(r);
    if (this.mayVote(m.view, m.seq)) {
      const prepare = this.auth.sign<PrepareMsg>({ type: 'prepare', view: m.view, seq: m.seq, digest: m.digest, replica: this.id });
      slot.prepares.set(this.id, prepare);
      this.broadcast(encodeSignedFrame(prepare));
    }
    this.checkPrepared(slot);
  }

  /** Digest and client signatures of a batch proposed by `proposer`; undefined (and counted) if invalid. */
  private checkBatch(digest: Uint8Array, requests: Signed<RequestMsg>[], proposer: number): Batch | undefined {
    const batch = makeBatch(this.hash, requests);
    if (batch.bytes > BATCH_BYTES_LIMIT) {
      this.reject('batch-too-large');
      this.misbehaved(proposer, 'batch larger than the protocol allows');
      return undefined;
    }
    if (!bytesEqual(batch.digest, digest)) {
      this.reject('batch-digest-mismatch');
      this.misbehaved(proposer, 'batch does not match its digest');
      return undefined;
    }
    for (const r of requests) {
      if (r.msg.op.length > OP_BYTES_MAX) {
        this.reject('batch-with-oversized-request');
        this.misbehaved(proposer, 'batch with a request larger than the protocol allows');
        return undefined;
      }
      if (!this.auth.hasClient(r.msg.client) || !this.auth.verify(r)) {
        this.reject('batch-with-bad-request');
        this.misbehaved(proposer, 'batch with an unsigned request');
        return undefined;
      }
    }
    return batch;
  }

  /** A request seen in a pre-prepare is verified: wait for it too (its timer covers a stalled primary). */
  private noteWaiting(r: Signed<RequestMsg>): void {
    const m = r.msg;
    const record = this.clients.get(m.client);
    if (record && m.timestamp <= record.timestamp) return;
    const w = this.waiting.get(m.client);
    if (w && w.req.msg.timestamp >= m.timestamp) return;
    this.waiting.set(m.client, { req: r, since: this.now });
  }

  private onPrepare(signed: Signed<PrepareMsg>): void {
    const m = signed.msg;
    if (m.replica === primaryOf(m.view, this.n)) return this.reject('prepare-from-primary');
    if (!this.admitPhase(m)) return;
    const slot = this.slotFor(m.seq);
    if (slot.prepares.has(m.replica)) return this.reject('duplicate');
    // Prepared already: a further prepare changes nothing, so its signature is not worth checking.
    if (slot.preparedInView) {
      this.counters.surplusVotes++;
      return;
    }
    if (!this.auth.verify(signed)) return this.reject('bad-signature');
    slot.prepares.set(m.replica, signed);
    this.markDirty(slot);
    this.checkPrepared(slot);
  }

  private onCommit(signed: Signed<CommitMsg>): void {
    const m = signed.msg;
    if (!this.admitPhase(m)) return;
    const slot = this.slotFor(m.seq);
    if (slot.commits.has(m.replica)) return this.reject('duplicate');
    // Committed already (a commit certificate is kept): a further commit is not worth a signature check.
    if (slot.committedDigest) {
      this.counters.surplusVotes++;
      return;
    }
    if (!this.auth.verify(signed)) return this.reject('bad-signature');
    slot.commits.set(m.replica, signed);
    this.markDirty(slot);
    this.checkCommitted(slot);
  }

  /** Prepared (quorum.ts): then it commits. */
  private checkPrepared(slot: Slot): void {
    if (slot.preparedInView) return;
    const cert = preparedCertificate(this.q, slot.prePrepare, slot.prepares.values());
    if (!cert) return;
    const pp = cert.prePrepare.msg;
    slot.preparedInView = true;
    slot.cert = cert;
    this.markDirty(slot);
    if (this.mayVote(pp.view, pp.seq) && !slot.commits.has(this.id)) {
      const commit = this.auth.sign<CommitMsg>({ type: 'commit', view: pp.view, seq: pp.seq, digest: pp.digest, replica: this.id });
      slot.commits.set(this.id, commit);
      slot.ownCommitTurn = this.durability.turn;
      this.broadcast(encodeSignedFrame(commit));
    }
    this.checkCommitted(slot);
  }

  /** Committed-local (quorum.ts): then it executes. */
  private checkCommitted(slot: Slot): void {
    if (!slot.preparedInView || !slot.prePrepare) return;
    const pp = slot.prePrepare.msg;
    const matching = commitQuorum(this.q, pp, slot.commits.values());
    if (!matching) return;
    if (slot.committedDigest) {
      if (!bytesEqual(slot.committedDigest, pp.digest)) {
        throw new ProtocolInvariantError(`seq ${slot.seq} committed with two digests`);
      }
      return;
    }
    slot.committedDigest = pp.digest;
    slot.commitCert = matching;
    this.markDirty(slot);
    this.events.push({ type: 'committed', seq: slot.seq, digest: pp.digest });
    this.executeReady();
  }

  // ==============================================================================================
  // Execution and replies
  // ==============================================================================================

  private executeReady(): void {
    // (a stable certificate applied on the way may find our state diverged and start a transfer)
    while (!this.transfer) {
      const seq = this.lastExecuted + 1;
      const slot = this.slots.get(seq);
      if (!slot || !slot.committedDigest) return;
      const batch = this.batchFor(slot, slot.committedDigest);
      if (!batch) {
        this.requestBatch(slot, slot.committedDigest);
        return;
      }
      this.durability.executed(slot.ownCommitTurn);
      this.executeBatch(seq, slot.committedDigest, batch);
    }
  }

  private executeBatch(seq: number, digest: Uint8Array, batch: Batch): void {
    const executed: ExecutedRequest[] = [];
    for (const req of batch.requests) {
      const m = req.msg;
      const record = this.clients.get(m.client);
      if (record && m.timestamp <= record.timestamp) continue; // at most once
      const result = this.app.execute(m.op, { seq, client: m.client, timestamp: m.timestamp });
      this.clients.set(m.client, { timestamp: m.timestamp, result });
      const w = this.waiting.get(m.client);
      if (w && w.req.msg.timestamp <= m.timestamp) this.waiting.delete(m.client);
      this.assigned.delete(m.client);
      executed.push({ client: m.client, timestamp: m.timestamp, op: m.op, result });
    }
    this.replyToBatch(seq, executed);
    this.lastExecuted = seq;
    this.progressTick = this.now;
    this.counters.batchesExecuted++;
    if (executed.length > 0) {
      this.counters.requestsExecuted += executed.length;
      // Progress in this view: the next view change waits the base timeout again. Requests still
      // waiting keep their own timers (no restart: a primary must not starve any client).
      this.viewChangeAttempts = 0;
    }
    this.events.push({ type: 'executed', seq, view: this.view, digest, requests: executed });
    if (seq % this.opts.checkpointInterval === 0) this.takeCheckpoint(seq);
    // A stable certificate learned ahead of execution (from a VIEW-CHANGE, a NEW-VIEW or a peer) now
    // applies: it moves the window (or, if our checkpoint differs, reveals a divergence).
    const pending = this.pendingStable;
    if (pending && pending.seq <= seq) {
      this.pendingStable = undefined;
      this.onStableCert(pending);
    }
  }

  /**
   * Replies to the requests a batch executed: one signed REPLY for a single request; for several,
   * one signed REPLY-BATCH over a Merkle tree of the replies, each client getting its path (one
   * signature per batch instead of one per request).
   */
  private replyToBatch(seq: number, executed: ExecutedRequest[]): void {
    if (executed.length === 0) return;
    if (executed.length === 1) {
      const r = executed[0]!;
      this.pushReply(r.client, this.signReply(r.client, r.timestamp, seq, r.result), seq);
      return;
    }
    const leaves = executed.map((r) => replyLeaf(this.hash, r.client, r.timestamp, r.result));
    const tree = buildReplyTree(this.hash, leaves);
    const batch = this.auth.sign<ReplyBatchMsg>({ type: 'replybatch', view: this.view, replica: this.id, seq, count: leaves.length, root: tree.root });
    this.counters.replyBatchesSigned++;
    executed.forEach((r, index) => {
      const reply: BatchedReply = {
        msg: { type: 'reply', view: this.view, replica: this.id, client: r.client, timestamp: r.timestamp, result: r.result },
        batch,
        index,
        path: tree.paths[index]!,
      };
      const frame = encodeBatchedReplyFrame(reply);
      this.replyFrames.set(r.client, { view: this.view, timestamp: r.timestamp, seq, frame });
      this.pushReply(r.client, frame, seq);
    });
  }

  private signReply(client: number, timestamp: number, seq: number, result: Uint8Array): Uint8Array {
    const reply = this.auth.sign<ReplyMsg>({ type: 'reply', view: this.view, client, timestamp, replica: this.id, result });
    const frame = encodeSignedFrame(reply);
    this.replyFrames.set(client, { view: this.view, timestamp, seq, frame });
    return frame;
  }

  /** A reply to a request executed at `seq` (or earlier): it waits for what execution depended on. */
  private pushReply(client: number, frame: Uint8Array, seq: number): void {
    this.replies.push({ client, frame, after: this.durability.replyDependency, seq });
  }

  private resendReply(client: number): void {
    const record = this.clients.get(client);
    if (!record) return;
    const cached = this.replyFrames.get(client);
    // After a state transfer the sequence number of the cached result is unknown: at most lastExecuted.
    const seq = cached && cached.timestamp === record.timestamp ? cached.seq : this.lastExecuted;
    const frame =
      cached && cached.view === this.view && cached.timestamp === record.timestamp
        ? cached.frame
        : this.signReply(client, record.timestamp, seq, record.result);
    this.pushReply(client, frame, seq);
  }

  // ==============================================================================================
  // Checkpoints and the log window
  // ==============================================================================================

  /** Brings the digest tree up to date with the partitions the application changed. */
  private syncTree(): void {
    const dirty = this.app.takeDirtyPartitions();
    if (dirty.length === 0) return;
    if (this.livePartitionsShared) {
      this.livePartitions = this.livePartitions.slice();
      this.livePartitionsShared = false;
    }
    for (const i of dirty) {
      const bytes = this.app.readPartition(i);
      this.livePartitions[i] = bytes;
      this.liveTree.setLeaf(i, leafDigest(this.hash, bytes));
    }
    this.liveTree.commit();
  }

  /** The live state as a checkpoint snapshot; `clients` are the client-table bytes `digest` covers. */
  private snapshotNow(seq: number, digest: Uint8Array, clients: Uint8Array): CheckpointSnapshot {
    this.livePartitionsShared = true;
    return { seq, digest, tree: this.liveTree.clone(), partitions: this.livePartitions, clients };
  }

  /**
   * Makes a snapshot's application state the one on disk (writing only the partitions that differ
   * from what is there).
   * Called for the stable checkpoint, in the same batch as its certificate and the log truncation, so
   * that a restarted replica restores its stable checkpoint, replays the log above it, and can serve
   * the stable checkpoint's state to replicas that are behind.
   */
  private persistSnapshot(snap: CheckpointSnapshot): void {
    const leaves = snap.tree.leaves;
    for (let i = 0; i < leaves.length; i++) {
      const leaf = leaves[i]!;
      const onDisk = this.persistedLeaves[i]!;
      if (leaf === onDisk || bytesEqual(leaf, onDisk)) continue;
      this.writes.put(KEYS.partition(i), snap.partitions[i]!);
      this.persistedLeaves[i] = leaf;
    }
    this.writes.put(KEYS.checkpointState, encodeCheckpointState(snap.seq, snap.digest, snap.clients));
  }

  private takeCheckpoint(seq: number): void {
    this.syncTree();
    const clients = this.clients.encode();
    const digest = stateDigest(this.hash, this.liveTree.root, clients);
    const snapshot = this.snapshotNow(seq, digest, clients);
    this.ownCheckpoints.set(seq, snapshot);
    this.lastCheckpoint = { seq, digest };
    const msg = this.auth.sign<CheckpointMsg>({ type: 'checkpoint', seq, digest, replica: this.id });
    this.addCheckpointVote(msg);
    this.ownCheckpointFrame = { seq, frame: encodeSignedFrame(msg) };
    this.broadcast(this.ownCheckpointFrame.frame);
    this.checkStable(seq);
  }

  private onCheckpoint(signed: Signed<CheckpointMsg>): void {
    const m = signed.msg;
    if (m.seq % this.opts.checkpointInterval !== 0) return this.reject('checkpoint-not-on-interval');
    if (m.seq <= this.h) return this.reject('stale-checkpoint');
    const existing = this.checkpointVotes.get(m.seq)?.get(m.replica);
    if (existing) return this.reject('duplicate');
    if (!this.auth.verify(signed)) return this.reject('bad-signature');
    if (m.seq > this.highestSeqSeen) this.highestSeqSeen = m.seq;
    this.addCheckpointVote(signed);
    this.checkStable(m.seq);
  }

  private addCheckpointVote(signed: Signed<CheckpointMsg>): void {
    const m = signed.msg;
    let votes = this.checkpointVotes.get(m.seq);
    if (!votes) {
      votes = new Map();
      this.checkpointVotes.set(m.seq, votes);
    }
    votes.set(m.replica, signed);
    this.writes.put(KEYS.checkpointVote(m.seq, m.replica), encodePair(signed));
    // Bound memory: each replica keeps at most (L/K + 2) pending checkpoints.
    const perReplicaMax = this.opts.windowSize / this.opts.checkpointInterval + 2;
    const mine = [...this.checkpointVotes.entries()].filter(([, v]) => v.has(m.replica)).map(([s]) => s);
    if (mine.length > perReplicaMax) {
      const lowest = Math.min(...mine);
      this.checkpointVotes.get(lowest)!.delete(m.replica);
      this.writes.del(KEYS.checkpointVote(lowest, m.replica));
      if (this.checkpointVotes.get(lowest)!.size === 0) this.checkpointVotes.delete(lowest);
    }
  }

  /** Stable (quorum.ts): matching CHECKPOINTs from a quorum. */
  private checkStable(seq: number): void {
    const votes = this.checkpointVotes.get(seq);
    if (!votes || seq <= this.h) return;
    const proof = firstQuorum(votes.values(), (v) => bytesKey(v.msg.digest), this.q.checkpoints);
    if (proof) this.onStableCert({ seq, digest: proof[0]!.msg.digest, proof });
  }

  /** A verified stable checkpoint certificate, from votes, a VIEW-CHANGE, a NEW-VIEW or a peer. */
  private onStableCert(cert: CheckpointCert): void {
    if (cert.seq <= this.h) return;
    const own = this.ownCheckpoints.get(cert.seq);
    if (own && !this.transfer) {
      if (bytesEqual(own.digest, cert.digest)) return this.advanceStable(cert, own);
      // Audit: our state after executing cert.seq differs from what 2f+1 replicas computed.
      this.counters.divergences++;
      this.events.push({ type: 'state-diverged', seq: cert.seq, own: own.digest, agreed: cert.digest });
      this.ownCheckpoints.delete(cert.seq);
      return this.startTransfer(cert, 'state diverged from the stable checkpoint');
    }
    if (this.transfer) {
      if (cert.seq > this.transfer.target.seq) this.startTransfer(cert, 'newer stable checkpoint');
      return;
    }
    if (cert.seq > this.lastExecuted) {
      // Behind: keep executing if we can; catchUp() transfers state if we stay stuck.
      if (!this.pendingStable || cert.seq > this.pendingStable.seq) this.pendingStable = cert;
      if (cert.seq > this.lastExecuted + this.opts.windowSize) this.startTransfer(cert, 'far behind the stable checkpoint');
      return;
    }
    // Executed past it without a checkpoint of our own (after a state transfer): adopt the proof.
    this.advanceStable(cert, undefined);
  }

  /** Moves the low watermark to cert.seq and discards everything at or below it. */
  private advanceStable(cert: CheckpointCert, snapshot: CheckpointSnapshot | undefined): void {
    this.stable = cert;
    if (snapshot) {
      this.stableSnapshot = snapshot;
      this.persistSnapshot(snapshot);
    } else if (this.stableSnapshot && this.stableSnapshot.seq < cert.seq) this.stableSnapshot = undefined;
    this.counters.checkpointsStable++;
    this.writes.put(KEYS.stable, encodeCheckpointCert(cert));
    for (const seq of [...this.slots.keys()]) if (seq <= cert.seq) this.slots.delete(seq);
    for (const seq of [...this.checkpointVotes.keys()]) if (seq <= cert.seq) this.checkpointVotes.delete(seq);
    for (const seq of [...this.ownCheckpoints.keys()]) if (seq < cert.seq) this.ownCheckpoints.delete(seq);
    for (const seq of this.dirtySlots) if (seq <= cert.seq) this.dirtySlots.delete(seq);
    this.clears.push({ gte: KEYS.logPrefix, lt: KEYS.logBelow(cert.seq + 1) });
    this.clears.push({ gte: KEYS.checkpointVotePrefix, lt: KEYS.checkpointVotesBelow(cert.seq + 1) });
    if (this.nextSeq <= cert.seq) this.nextSeq = cert.seq + 1;
    if (this.pendingStable && this.pendingStable.seq <= cert.seq) this.pendingStable = undefined;
    this.events.push({ type: 'checkpoint-stable', seq: cert.seq, digest: cert.digest });
    this.installNewViewAhead();
  }

  // ==============================================================================================
  // View change
  // ==============================================================================================

  private viewChangeTimeout(): number {
    return Math.min(this.opts.viewChangeTimeoutTicks * 2 ** this.viewChangeAttempts, this.opts.viewChangeTimeoutTicksMax);
  }

  /** Stops accepting messages of the current view and asks to move to `view`. */
  private startViewChange(view: number, reason: string): void {
    if (view <= this.view && (this.viewChanging || view < this.view)) return;
    this.view = view;
    this.viewChanging = true;
    this.viewChangeAttempts++;
    this.counters.viewChanges++;
    this.newViewDeadline = undefined;
    this.newViewFrame = undefined;
    this.newViewAhead = [];
    this.assigned.clear();
    this.queue = [];
    this.queued.clear();
    if (!this.mayViewChange()) {
      // Recovering: it follows the view but says nothing (a VIEW-CHANGE without the certificates it
      // forgot could let a committed request be reordered).
      this.persistViewState();
      this.events.push({ type: 'view-change-started', view, reason: `${reason} (recovering: no VIEW-CHANGE before stable checkpoint ${this.floor!.seq})` });
      return;
    }
    const prepared: PreparedCert[] = [];
    for (const slot of [...this.slots.values()].sort((a, b) => a.seq - b.seq)) {
      if (slot.cert && slot.seq > this.h) prepared.push(slot.cert);
    }
    const vc = this.auth.sign<ViewChangeMsg>({ type: 'viewchange', view, replica: this.id, checkpoint: this.stable, prepared });
    this.pruneViewChanges(view);
    this.storeViewChange(vc);
    this.ownViewChangeFrame = encodeSignedFrame(vc);
    this.ownViewChangeFrames.set(view, this.ownViewChangeFrame);
    this.writes.put(KEYS.viewChange(view), encodePair(vc));
    for (const v of [...this.ownViewChangeFrames.keys()]) {
      if (v < view - 4) {
        this.ownViewChangeFrames.delete(v);
        this.writes.del(KEYS.viewChange(v));
      }
    }
    this.persistViewState();
    this.broadcast(this.ownViewChangeFrame);
    this.events.push({ type: 'view-change-started', view, reason });
    this.afterViewChangeVote();
  }

  private persistViewState(): void {
    this.writes.put(KEYS.view, encodeViewState(this.view, this.viewChanging, this.viewChangeAttempts));
  }

  private onViewChange(signed: Signed<ViewChangeMsg>): void {
    const m = signed.msg;
    if (m.view < this.view || (m.view === this.view && !this.viewChanging)) {
      this.helpLagging(m.replica, m.view);
      return this.reject('old-view-change');
    }
    const bySender = this.viewChanges.get(m.replica);
    if (bySender?.has(m.view)) return this.reject('duplicate');
    const reason = checkViewChange(signed, this.ctx);
    if (reason) {
      this.misbehaved(m.replica, reason);
      return this.reject('invalid-view-change');
    }
    this.storeViewChange(signed);
    this.noteAhead(m.replica, m.view);
    // Its checkpoint certificate is as good as our own votes.
    if (m.checkpoint.seq > this.h) this.onStableCert(m.checkpoint);
    // The f+1 rule: f+1 replicas want views above ours; join the smallest of them.
    const above: number[] = [];
    for (const [sender, byView] of this.viewChanges) {
      if (sender === this.id) continue;
      let lowest = Infinity;
      for (const v of byView.keys()) if (v > this.view && v < lowest) lowest = v;
      if (lowest !== Infinity) above.push(lowest);
    }
    if (above.length >= this.q.join) {
      this.startViewChange(Math.min(...above), 'f+1 view-changes');
      return;
    }
    this.afterViewChangeVote();
  }

  private storeViewChange(vc: Signed<ViewChangeMsg>): void {
    let bySender = this.viewChanges.get(vc.msg.replica);
    if (!bySender) this.viewChanges.set(vc.msg.replica, (bySender = new Map()));
    bySender.set(vc.msg.view, vc);
    // Bound memory per sender: a byzantine replica can only crowd out its own messages.
    if (bySender.size > 8) bySender.delete(Math.max(...bySender.keys()));
  }

  /** Forgets VIEW-CHANGEs for views below `view`. */
  private pruneViewChanges(view: number): void {
    for (const [sender, byView] of this.viewChanges) {
      for (const v of [...byView.keys()]) if (v < view) byView.delete(v);
      if (byView.size === 0) this.viewChanges.delete(sender);
    }
  }

  /**
   * A replica still collecting VIEW-CHANGEs for a view we left: send it our NEW-VIEW if we entered a
   * later view, our own VIEW-CHANGE for its view (so it can reach 2f+1) and our newest one (so the
   * f+1 rule can pull it forward). At most once per retransmission period per replica.
   */
  private helpLagging(peer: number, view: number): void {
    const last = this.helpedAt.get(peer);
    if (last !== undefined && this.now - last < this.opts.retransmitTicks) return;
    this.helpedAt.set(peer, this.now);
    if (!this.viewChanging && this.newViewFrame) this.sendTo(peer, this.newViewFrame);
    const old = this.ownViewChangeFrames.get(view);
    if (old) this.sendTo(peer, old);
    if (this.viewChanging && this.ownViewChangeFrame && this.ownViewChangeFrame !== old) this.sendTo(peer, this.ownViewChangeFrame);
  }

  private viewChangesFor(view: number): Signed<ViewChangeMsg>[] {
    const out: Signed<ViewChangeMsg>[] = [];
    for (const byView of this.viewChanges.values()) {
      const vc = byView.get(view);
      if (vc) out.push(vc);
    }
    return out;
  }

  /** With 2f+1 VIEW-CHANGEs for our view: start the new-view timer; the new primary sends NEW-VIEW. */
  private afterViewChangeVote(): void {
    if (!this.viewChanging) return;
    const votes = this.viewChangesFor(this.view);
    if (votes.length < this.q.viewChanges) return;
    if (this.newViewDeadline === undefined) this.newViewDeadline = this.now + this.viewChangeTimeout();
    if (this.isPrimary()) this.sendNewView(votes);
  }

  private sendNewView(votes: Signed<ViewChangeMsg>[]): void {
    const own = votes.find((v) => v.msg.replica === this.id);
    if (!own) return;
    const chosen = [own, ...votes.filter((v) => v !== own).sort((a, b) => a.msg.replica - b.msg.replica)].slice(0, this.q.viewChanges);
    const plan = planNewView(chosen.map((v) => v.msg), this.ctx);
    const prePrepares = plan.entries.map((e) =>
      this.auth.sign<PrePrepareMsg>({ type: 'preprepare', view: this.view, seq: e.seq, digest: e.digest, replica: this.id }),
    );
    const nv = this.auth.sign<NewViewMsg>({ type: 'newview', view: this.view, replica: this.id, viewChanges: chosen, prePrepares });
    this.enterView(nv, plan.checkpoint);
    this.broadcast(this.newViewFrame!);
  }

  private onNewView(signed: Signed<NewViewMsg>, from: number): void {
    const m = signed.msg;
    if (m.replica !== primaryOf(m.view, this.n)) return this.reject('newview-not-from-primary');
    if (m.view < this.view || (m.view === this.view && !this.viewChanging)) return this.reject('old-new-view');
    if (!this.auth.verify(signed)) return this.reject('bad-signature');
    const reason = checkViewChangeSet(m.view, m.viewChanges, this.ctx);
    if (reason) {
      this.misbehaved(from, reason);
      return this.reject('invalid-new-view');
    }
    // Recompute the pre-prepares from the VIEW-CHANGEs; reject a NEW-VIEW that differs.
    const plan = planNewView(m.viewChanges.map((v) => v.msg), this.ctx);
    if (plan.entries.length !== m.prePrepares.length) {
      this.misbehaved(from, 'new-view pre-prepares differ from the view-changes');
      return this.reject('invalid-new-view');
    }
    for (let i = 0; i < plan.entries.length; i++) {
      const e = plan.entries[i]!;
      const pp = m.prePrepares[i]!;
      if (
        pp.msg.view !== m.view ||
        pp.msg.replica !== m.replica ||
        pp.msg.seq !== e.seq ||
        !bytesEqual(pp.msg.digest, e.digest) ||
        !this.auth.verify(pp)
      ) {
        this.misbehaved(from, 'new-view pre-prepares differ from the view-changes');
        return this.reject('invalid-new-view');
      }
    }
    this.enterView(signed, plan.checkpoint);
  }

  /** Enters the view of a valid NEW-VIEW: adopt its checkpoint, install its pre-prepares, prepare them. */
  private enterView(nv: Signed<NewViewMsg>, checkpoint: CheckpointCert): void {
    const view = nv.msg.view;
    this.view = view;
    this.viewChanging = false;
    this.newViewDeadline = undefined;
    this.newViewFrame = encodeSignedFrame(nv);
    this.writes.put(KEYS.newView, encodePair(nv));
    this.persistViewState();
    this.assigned.clear();
    this.queue = [];
    this.queued.clear();
    this.aheadViews.clear();
    this.pruneViewChanges(view + 1);
    if (checkpoint.seq > this.h) this.onStableCert(checkpoint);
    // Votes of earlier views no longer count; prepared certificates and commits stay.
    for (const slot of this.slots.values()) {
      if (slot.view < view) this.resetSlotView(slot, view);
    }
    let maxSeq = this.h;
    this.newViewAhead = [];
    for (const pp of nv.msg.prePrepares) {
      const seq = pp.msg.seq;
      if (seq > maxSeq) maxSeq = seq;
      if (this.inWindow(seq)) this.installNewViewPrePrepare(pp);
      else if (seq > this.h) this.newViewAhead.push(pp);
    }
    this.nextSeq = Math.max(maxSeq, this.lastExecuted) + 1;
    // Requests still waiting get a full timeout in the new view; the new primary proposes them.
    for (const w of this.waiting.values()) {
      w.since = this.now;
      if (this.isPrimary() && this.assigned.get(w.req.msg.client) !== w.req.msg.timestamp) this.enqueue(w.req.msg.client);
    }
    this.events.push({ type: 'view-entered', view, primary: this.primary });
    this.executeReady();
  }

  /** A pre-prepare of the current view's NEW-VIEW, in our window: adopt it and prepare it. */
  private installNewViewPrePrepare(pp: Signed<PrePrepareMsg>): void {
    const slot = this.slotFor(pp.msg.seq);
    if (slot.prePrepare && slot.prePrepare.msg.view === pp.msg.view) return;
    slot.prePrepare = pp;
    this.markDirty(slot);
    if (bytesEqual(pp.msg.digest, this.ctx.nullDigest) && !this.batchFor(slot, pp.msg.digest)) {
      this.addBatch(slot, makeBatch(this.hash, []));
    }
    const batch = this.batchFor(slot, pp.msg.digest);
    if (batch) {
      for (const r of batch.requests) this.assigned.set(r.msg.client, r.msg.timestamp);
    }
    if (!this.isPrimary() && this.mayVote(pp.msg.view, pp.msg.seq)) {
      const prepare = this.auth.sign<PrepareMsg>({ type: 'prepare', view: pp.msg.view, seq: pp.msg.seq, digest: pp.msg.digest, replica: this.id });
      slot.prepares.set(this.id, prepare);
      this.broadcast(encodeSignedFrame(prepare));
    }
    this.checkPrepared(slot);
  }

  /** After the window moved: the NEW-VIEW pre-prepares it now covers. */
  private installNewViewAhead(): void {
    if (this.viewChanging || this.newViewAhead.length === 0) return;
    const ahead = this.newViewAhead;
    this.newViewAhead = [];
    for (const pp of ahead) {
      if (pp.msg.view !== this.view || pp.msg.seq <= this.h) continue;
      if (this.inWindow(pp.msg.seq)) this.installNewViewPrePrepare(pp);
      else this.newViewAhead.push(pp);
    }
  }

  private resetSlotView(slot: Slot, view: number): void {
    slot.view = view;
    slot.prePrepare = undefined;
    slot.prepares.clear();
    slot.commits.clear();
    slot.preparedInView = false;
    this.markDirty(slot);
  }

  // ==============================================================================================
  // Retransmission, fetching committed entries, state transfer
  // ==============================================================================================

  private retransmit(): void {
    // CHECKPOINT messages lost on the way would leave the checkpoint unstable and the window full.
    if (this.ownCheckpointFrame && this.ownCheckpointFrame.seq > this.h) {
      this.counters.retransmissions++;
      this.broadcast(this.ownCheckpointFrame.frame);
    }
    if (this.viewChanging) {
      if (this.ownViewChangeFrame) {
        this.counters.retransmissions++;
        this.broadcast(this.ownViewChangeFrame);
      }
    } else {
      let budget = 16;
      for (const slot of this.slots.values()) {
        if (budget === 0) break;
        if (slot.committedDigest || slot.seq <= this.lastExecuted || this.now - slot.touched < this.opts.retransmitTicks) continue;
        if (!slot.prePrepare) continue;
        budget--;
        this.counters.retransmissions++;
        if (slot.prePrepare.msg.replica === this.id) {
          const batch = this.batchFor(slot, slot.prePrepare.msg.digest);
          this.broadcast(encodeSignedFrame(slot.prePrepare, batch?.requests));
        }
        const own = slot.prepares.get(this.id);
        if (own) this.broadcast(encodeSignedFrame(own));
        const commit = slot.commits.get(this.id);
        if (commit) this.broadcast(encodeSignedFrame(commit));
        slot.touched = this.now;
      }
    }
    // Replicas that run a view we have not entered: ask one of them for its NEW-VIEW.
    const ahead = [...this.aheadViews.entries()].filter(([, v]) => v > this.view || (v === this.view && this.viewChanging));
    if (ahead.length >= this.q.join) {
      const [peer, view] = ahead[this.peerCursor++ % ahead.length]!;
      this.sendTo(peer, encodeLinkFrame({ type: 'newviewreq', view }));
    }
  }

  /** A replica that stopped progressing while others went on fetches committed entries, then state. */
  private catchUp(): void {
    if (this.transfer) return;
    const stalled = this.now - this.progressTick >= this.opts.catchUpTicks;
    if (this.pendingStable && stalled && this.lastExecuted < this.pendingStable.seq) {
      const next = this.slots.get(this.lastExecuted + 1);
      // Entries at or below a stable checkpoint are gone at the peers: only state transfer helps.
      if (!next?.committedDigest || this.now - this.progressTick >= 2 * this.opts.catchUpTicks) {
        return this.startTransfer(this.pendingStable, 'behind the stable checkpoint');
      }
    }
    if (!stalled) return;
    if (this.highestSeqSeen <= this.lastExecuted) {
      // No sign that anyone is ahead; still, a replica that stands still asks a peer now and then.
      if (this.now - this.lastProbe < this.opts.probeTicks) return;
      this.lastProbe = this.now;
      const from = this.lastExecuted + 1;
      this.sendTo(this.pickPeer(this.peerCursor++), encodeLinkFrame({ type: 'fetch', from, to: from + this.opts.fetchEntriesMax - 1 }));
      return;
    }
    this.fetchEntries();
  }

  /** Asks a peer for the committed entries after lastExecuted that others are known to have (one fetch at a time). */
  private fetchEntries(): void {
    const f = this.fetchState;
    if (f && this.now - f.at < this.opts.fetchTimeoutTicks) return;
    const from = this.lastExecuted + 1;
    const to = Math.min(from + this.opts.fetchEntriesMax - 1, this.highestSeqSeen);
    const peer = this.pickPeer(f?.cursor ?? 0);
    this.fetchState = { peer, at: this.now, cursor: (f?.cursor ?? 0) + 1 };
    this.sendTo(peer, encodeLinkFrame({ type: 'fetch', from, to }));
  }

  private pickPeer(cursor: number): number {
    const peers = this.cluster.replicas.map((r) => r.id).filter((r) => r !== this.id);
    return peers[(this.id + cursor) % peers.length]!;
  }

  private requestBatch(slot: Slot, digest: Uint8Array): void {
    if (slot.batchRequestedAt !== undefined && this.now - slot.batchRequestedAt < this.opts.fetchTimeoutTicks) return;
    slot.batchRequestedAt = this.now;
    const peer = this.pickPeer(this.peerCursor++);
    this.sendTo(peer, encodeLinkFrame({ type: 'batchreq', seq: slot.seq, digest }));
  }

  private onLink(from: number, msg: LinkMessage): void {
    switch (msg.type) {
      case 'fetch':
        return this.serveFetch(from, msg.from, msg.to);
      case 'fetched':
        return this.onFetched(from, msg.entries, msg.stable);
      case 'batchreq':
        return this.serveBatch(from, msg.seq, msg.digest);
      case 'batch': {
        // Only a batch that a slot of ours names and lacks: a peer cannot make us store anything else.
        const slot = this.slots.get(msg.seq);
        if (!slot || !this.expectsBatch(slot, msg.digest)) return this.reject('unexpected-batch');
        this.acceptBatch(slot, msg.digest, msg.batch, from);
        return this.executeReady();
      }
      case 'statereq':
        return this.serveState(from, msg.seq, msg.part);
      case 'state':
        return this.onStateReply(from, msg.seq, msg.reply);
      case 'newviewreq':
        if (!this.viewChanging && this.newViewFrame && msg.view <= this.view) this.sendTo(from, this.newViewFrame);
        return;
      default:
        return assertNever(msg);
    }
  }

  private serveFetch(peer: number, from: number, to: number): void {
    const entries: CommittedEntry[] = [];
    const last = Math.min(to, from + this.opts.fetchEntriesMax - 1);
    // The reply must fit a frame: batches of up to a quarter of the frame limit, at least one entry.
    const bytesMax = this.opts.frameBytesMax / 4;
    let bytes = 0;
    // Entries at or below our stable checkpoint are gone; the certificate tells the peer to transfer state.
    for (let seq = from <= this.h ? last + 1 : from; seq <= last; seq++) {
      const slot = this.slots.get(seq);
      if (!slot?.committedDigest || !slot.commitCert) break;
      const batch = this.batchFor(slot, slot.committedDigest);
      if (!batch || (entries.length > 0 && bytes + batch.bytes > bytesMax)) break;
      bytes += batch.bytes;
      entries.push({ seq, commits: slot.commitCert, batch: batch.requests });
    }
    this.sendTo(peer, encodeLinkFrame({ type: 'fetched', entries, stable: this.stable }));
  }

  private onFetched(peer: number, entries: CommittedEntry[], stable: CheckpointCert): void {
    if (this.fetchState?.peer === peer) this.fetchState = { ...this.fetchState, at: -Infinity };
    if (stable.seq > this.h) {
      const reason = checkCheckpointCert(stable, this.ctx);
      if (reason) return this.misbehaved(peer, reason);
      this.onStableCert(stable);
    }
    for (const e of entries) {
      if (e.seq <= this.lastExecuted || !this.inWindow(e.seq)) continue;
      const slot = this.slotFor(e.seq);
      if (slot.committedDigest) continue;
      const digest = this.checkCommitCert(e);
      if (!digest) return this.misbehaved(peer, 'fetched entry with an invalid commit certificate');
      const batch = this.checkBatch(digest, e.batch, peer);
      if (!batch) return;
      this.addBatch(slot, batch);
      slot.committedDigest = digest;
      slot.commitCert = e.commits;
      this.counters.entriesFetched++;
      this.markDirty(slot);
      this.events.push({ type: 'committed', seq: e.seq, digest });
    }
    this.executeReady();
  }

  /** 2f+1 matching COMMITs from distinct replicas: the digest is committed at that sequence number. */
  private checkCommitCert(e: CommittedEntry): Uint8Array | undefined {
    const first = e.commits[0]?.msg;
    if (!first || first.seq !== e.seq) return undefined;
    const senders = new Set<number>();
    for (const c of e.commits) {
      const m = c.msg;
      if (m.seq !== e.seq || m.view !== first.view || !bytesEqual(m.digest, first.digest)) return undefined;
      if (m.replica >= this.n || senders.has(m.replica) || !this.auth.verify(c)) return undefined;
      senders.add(m.replica);
    }
    return senders.size >= this.q.commits ? first.digest : undefined;
  }

  private serveBatch(peer: number, seq: number, digest: Uint8Array): void {
    const slot = this.slots.get(seq);
    const batch = slot && this.batchFor(slot, digest);
    if (batch) this.sendTo(peer, encodeLinkFrame({ type: 'batch', seq, digest, batch: batch.requests }));
  }

  /** True when the slot's pre-prepare, prepared certificate or commit names this digest and its batch is missing. */
  private expectsBatch(slot: Slot, digest: Uint8Array): boolean {
    if (this.batchFor(slot, digest)) return false;
    for (const named of [slot.prePrepare?.msg.digest, slot.cert?.prePrepare.msg.digest, slot.committedDigest]) {
      if (named !== undefined && bytesEqual(named, digest)) return true;
    }
    return false;
  }

  private acceptBatch(slot: Slot, digest: Uint8Array, requests: Signed<RequestMsg>[], from: number): void {
    const batch = makeBatch(this.hash, requests);
    if (!bytesEqual(batch.digest, digest)) return this.misbehaved(from, 'batch does not match its digest');
    // A batch named by a certificate was accepted by at least f+1 correct replicas, which checked its
    // client signatures; checking them again here keeps only signed requests in our log regardless.
    for (const r of requests) {
      if (!this.auth.hasClient(r.msg.client) || !this.auth.verify(r)) return this.misbehaved(from, 'batch with an unsigned request');
    }
    this.addBatch(slot, batch);
    this.markDirty(slot);
  }

  // --- state transfer -------------------------------------------------------------------------

  private startTransfer(target: CheckpointCert, reason: string): void {
    if (this.transfer && this.transfer.target.seq >= target.seq) return;
    this.syncTree();
    if (target.seq > this.h) {
      // Move the window now: keep ordering new requests as an observer while the state arrives.
      this.advanceStable(target, undefined);
    }
    const candidates = target.proof.map((c) => c.msg.replica).filter((r) => r !== this.id);
    const peers = candidates.length > 0 ? candidates : this.cluster.replicas.map((r) => r.id).filter((r) => r !== this.id);
    if (this.transfer) this.keepReceived(this.transfer);
    this.transfer = new TransferSession(target, this.now, reason, peers, this.transferCache);
    this.counters.stateTransfers++;
    this.pendingStable = undefined;
    this.events.push({ type: 'state-transfer-started', seq: target.seq, reason });
    this.askTransfer({ kind: 'meta' });
  }

  private keepReceived(session: TransferSession): void {
    for (const bytes of session.received.values()) {
      if (this.transferCache.size > 100_000) this.transferCache.clear();
      this.transferCache.set(leafKey(leafDigest(this.hash, bytes)), bytes);
    }
  }

  /** A request for leaves, with the prefixes of our own leaves unless a sparse answer failed. */
  private leavesPart(t: TransferSession, groups: number[]): StatePart {
    if (t.fullLeaves) return { kind: 'leaves', groups };
    return { kind: 'leaves', groups, have: groups.map((g) => leafPrefixes(this.liveTree.groupLeaves(g))) };
  }

  private askTransfer(part: StatePart, newPeer = true): void {
    const t = this.transfer!;
    if (newPeer || t.peer < 0) t.peer = t.nextPeer();
    if (part.kind === 'leaves' && part.have) for (const h of part.have) t.bytesSent += h.length;
    t.outstanding = part;
    t.requestedAt = this.now;
    this.sendTo(t.peer, encodeLinkFrame({ type: 'statereq', seq: t.target.seq, part }));
  }

  private driveTransfer(): void {
    const t = this.transfer;
    if (!t || !t.outstanding) return;
    if (this.now - t.requestedAt >= this.opts.fetchTimeoutTicks) this.askTransfer(t.outstanding, true);
  }

  private serveState(peer: number, seq: number, part: StatePart): void {
    const snap = this.stableSnapshot;
    const reply = (r: StateReply): void => this.sendTo(peer, encodeLinkFrame({ type: 'state', seq, reply: r }));
    if (!snap || snap.seq !== seq || this.stable.seq !== seq) {
      // We serve only our stable checkpoint; tell the peer which one that is.
      return reply({ kind: 'unavailable', stable: this.stable });
    }
    switch (part.kind) {
      case 'meta':
        return reply({
          kind: 'meta',
          checkpoint: this.stable,
          partitionCount: snap.tree.partitionCount,
          groupDigests: snap.tree.groups,
          clients: snap.clients,
        });
      case 'leaves': {
        const groups: Array<{ group: number; leaves: Digest[]; positions?: number[] }> = [];
        part.groups.forEach((g, i) => {
          if (!Number.isInteger(g) || g < 0 || g >= snap.tree.groupCount || groups.length >= 4096) return;
          const leaves = snap.tree.groupLeaves(g);
          const have = part.have?.[i];
          if (!have) return groups.push({ group: g, leaves });
          const positions = differingPositions(leaves, have);
          return groups.push({ group: g, leaves: positions.map((k) => leaves[k]!), positions });
        });
        return reply({ kind: 'leaves', groups });
      }
      case 'partitions': {
        const indices: number[] = [];
        const parts: Uint8Array[] = [];
        let bytes = 0;
        for (const i of part.indices) {
          const p = snap.partitions[i];
          if (p === undefined) continue;
          if (indices.length > 0 && bytes + p.length > this.opts.stateChunkBytesMax) break;
          indices.push(i);
          parts.push(p);
          bytes += p.length + 4;
        }
        const raw = packPartitions(parts);
        return reply({ kind: 'partitions', indices, compressed: this.deps.compress(raw), rawBytes: raw.length });
      }
      default:
        return assertNever(part);
    }
  }

  private onStateReply(peer: number, seq: number, reply: StateReply): void {
    const t = this.transfer;
    if (!t || peer !== t.peer || seq !== t.target.seq || !t.outstanding) return;
    const bad = (reason: string): void => {
      t.badPeers.add(peer);
      this.misbehaved(peer, reason);
      const part = t.outstanding!;
      this.askTransfer(part.kind === 'leaves' ? this.leavesPart(t, part.groups) : part, true);
    };
    switch (reply.kind) {
      case 'unavailable': {
        if (reply.stable.seq > t.target.seq && !checkCheckpointCert(reply.stable, this.ctx)) {
          return this.startTransfer(reply.stable, 'newer stable checkpoint');
        }
        return this.askTransfer(t.outstanding, true);
      }
      case 'meta': {
        if (t.outstanding.kind !== 'meta') return;
        if (reply.partitionCount !== this.app.partitionCount) return bad('state meta with a wrong partition count');
        const reason = checkMeta(this.hash, reply.partitionCount, t.target, reply.groupDigests, reply.clients);
        if (reason) return bad(reason);
        if (!ClientTable.decode(reply.clients, (c) => this.auth.hasClient(c))) return bad('state meta with a malformed client table');
        t.bytesReceived += reply.clients.length + 32 * reply.groupDigests.length;
        t.meta = { groupDigests: reply.groupDigests, clients: reply.clients };
        t.groupsNeeded = differingGroups(reply.groupDigests, this.liveTree);
        return this.nextTransferStep();
      }
      case 'leaves': {
        if (t.outstanding.kind !== 'leaves' || !t.meta) return;
        const asked = new Set(t.outstanding.groups);
        for (const g of reply.groups) {
          if (!asked.has(g.group)) return bad('state leaves for a group not asked');
          let leaves = g.leaves;
          if (g.positions) {
            // A sparse answer: our own leaves fill the positions whose prefixes matched.
            const merged = mergeLeaves(this.liveTree.groupLeaves(g.group), g.leaves, g.positions);
            if (!merged) return bad('state leaves with malformed positions');
            leaves = merged;
          }
          const reason = checkGroupLeaves(this.hash, this.app.partitionCount, g.group, leaves, t.meta.groupDigests[g.group]!);
          if (reason) {
            // Ask for whole groups from now on: a sparse answer can also fail by a prefix collision.
            if (g.positions) t.fullLeaves = true;
            return bad(reason);
          }
          t.bytesReceived += 32 * g.leaves.length + (g.positions ? g.positions.length : 0);
          t.leaves.set(g.group, leaves);
          const base = g.group * this.liveTree.groupSize;
          leaves.forEach((leaf, k) => {
            if (!bytesEqual(leaf, this.liveTree.leaves[base + k]!)) t.partitionsNeeded.set(base + k, leaf);
          });
        }
        t.groupsNeeded = t.groupsNeeded.filter((g) => !t.leaves.has(g));
        if (reply.groups.length === 0) return bad('state leaves reply is empty');
        return this.nextTransferStep();
      }
      case 'partitions': {
        if (t.outstanding.kind !== 'partitions') return;
        const raw = this.deps.decompress(reply.compressed, Math.min(reply.rawBytes, 2 * this.opts.stateChunkBytesMax + 1024 * 1024));
        if (!raw || raw.length !== reply.rawBytes) return bad('state partitions do not decompress');
        const parts = unpackPartitions(raw, reply.indices.length);
        if (!parts || reply.indices.length === 0) return bad('state partitions are malformed');
        for (let k = 0; k < parts.length; k++) {
          const index = reply.indices[k]!;
          const leaf = t.partitionsNeeded.get(index);
          if (!leaf) return bad('state partition not asked');
          if (!partitionMatches(this.hash, parts[k]!, leaf)) return bad('state partition does not match its digest');
          t.received.set(index, parts[k]!);
          t.partitionsNeeded.delete(index);
          t.partitionsFetched++;
        }
        t.bytesReceived += reply.compressed.length;
        return this.nextTransferStep();
      }
      default:
        return assertNever(reply);
    }
  }

  private nextTransferStep(): void {
    const t = this.transfer!;
    if (t.groupsNeeded.length > 0) return this.askTransfer(this.leavesPart(t, t.groupsNeeded.slice(0, 256)), false);
    // Reuse partitions received by an earlier session when they still match.
    for (const [index, leaf] of t.partitionsNeeded) {
      const cached = this.transferCache.get(leafKey(leaf));
      if (cached) {
        t.received.set(index, cached);
        t.partitionsNeeded.delete(index);
      }
    }
    if (t.partitionsNeeded.size > 0) {
      return this.askTransfer({ kind: 'partitions', indices: [...t.partitionsNeeded.keys()].slice(0, 1024) }, false);
    }
    this.installTransfer(t);
  }

  private installTransfer(t: TransferSession): void {
    const meta = t.meta!;
    for (const [index, bytes] of t.received) {
      const res = this.app.writePartition(index, bytes);
      if (!res.ok) throw new ProtocolInvariantError(`certified partition ${index} rejected by the application: ${res.reason}`);
    }
    const table = ClientTable.decode(meta.clients, (c) => this.auth.hasClient(c))!;
    this.clients.records.clear();
    for (const [c, r] of table.records) this.clients.set(c, r);
    this.replyFrames.clear();
    this.syncTree();
    const digest = stateDigest(this.hash, this.liveTree.root, meta.clients);
    if (!bytesEqual(digest, t.target.digest)) {
      throw new ProtocolInvariantError(`state after transfer to ${t.target.seq} does not match the certificate`);
    }
    this.transferCache.clear();
    this.transfer = undefined;
    this.lastExecuted = t.target.seq;
    this.progressTick = this.now;
    for (const [c, w] of this.waiting) {
      const r = this.clients.get(c);
      if (r && w.req.msg.timestamp <= r.timestamp) this.waiting.delete(c);
    }
    const snapshot = this.snapshotNow(t.target.seq, digest, meta.clients);
    this.ownCheckpoints.set(t.target.seq, snapshot);
    this.lastCheckpoint = { seq: t.target.seq, digest };
    if (this.stable.seq === t.target.seq) this.stableSnapshot = snapshot;
    this.persistSnapshot(snapshot);
    this.events.push({
      type: 'state-transfer-completed',
      seq: t.target.seq,
      partitionsFetched: t.partitionsFetched,
      partitionCount: this.app.partitionCount,
      bytesReceived: t.bytesReceived,
      bytesSent: t.bytesSent,
      ticks: this.now - t.startedAt,
    });
    if (this.nextSeq <= this.lastExecuted) this.nextSeq = this.lastExecuted + 1;
    this.executeReady();
    // Entries right after the checkpoint that went by during the transfer: fetch them now, before the
    // peers' next stable checkpoint truncates them (waiting catchUpTicks under load means another transfer).
    if (!this.transfer && this.highestSeqSeen > this.lastExecuted && !this.slots.get(this.lastExecuted + 1)?.committedDigest) {
      this.fetchState = undefined;
      this.fetchEntries();
    }
  }

  // ==============================================================================================
  // Recovery from storage
  // ==============================================================================================

  /**
   * Rebuilds the replica from what it persisted: view, stable checkpoint, application state at the
   * stable checkpoint, the log above it; then re-executes committed entries. Call once, before any
   * other input. Records that do not decode are reported and skipped.
   */
  recover(records: Iterable<[string, Uint8Array]>, stored: { horizon?: Uint8Array; damage?: string } = {}): void {
    this.recoverRecords(new Map(records));
    this.checkHorizon(stored);
    this.resumePrepared();
  }

  /**
   * The slots of the current view that are prepared by the same rule as the normal case (quorum.ts)
   * continue as they would have: a COMMIT of ours that is missing (it was not allowed while
   * recovering, say) is signed now, and what is committed executes.
   */
  private resumePrepared(): void {
    if (this.transfer) return;
    const q = this.deps.unsafeTestOnly?.recoveryQuorum ? quorumFor(this.n, this.f, this.deps.unsafeTestOnly.recoveryQuorum) : this.q;
    for (const slot of [...this.slots.values()].sort((a, b) => a.seq - b.seq)) {
      if (slot.view !== this.view || slot.preparedInView || slot.seq <= this.lastExecuted) continue;
      if (!preparedCertificate(q, slot.prePrepare, slot.prepares.values())) continue;
      if (q === this.q) this.checkPrepared(slot);
      else this.unsafePrepared(slot);
    }
    this.executeReady();
  }

  /** The negative control `recovery-quorum`: treats the slot as prepared whatever the quorum says. */
  private unsafePrepared(slot: Slot): void {
    const pp = slot.prePrepare!.msg;
    slot.preparedInView = true;
    slot.cert = { prePrepare: slot.prePrepare!, prepares: [...slot.prepares.values()] };
    this.markDirty(slot);
    if (!slot.commits.has(this.id)) {
      const commit = this.auth.sign<CommitMsg>({ type: 'commit', view: pp.view, seq: pp.seq, digest: pp.digest, replica: this.id });
      slot.commits.set(this.id, commit);
      slot.ownCommitTurn = this.durability.turn;
      this.broadcast(encodeSignedFrame(commit));
    }
    this.checkCommitted(slot);
  }

  /**
   * Compares what recovery found with the horizon record (horizon.ts) and the store's own damage
   * report. Less than recorded: the durable state is missing or damaged, and the replica rejoins as a
   * recovering replica. Damage that no horizon record can bound: it refuses to start (throws).
   */
  private checkHorizon(stored: { horizon?: Uint8Array; damage?: string }): void {
    let recorded: Horizon | undefined;
    if (stored.horizon !== undefined) {
      const h = decodeHorizon(stored.horizon);
      if (!h.ok) throw new ProtocolInvariantError(`the horizon record is damaged (${h.reason}): cannot tell what this replica signed before`);
      recorded = h.value;
    }
    // A stable checkpoint above what was executed covers it (state transfer brings it back).
    const found = { view: this.view, stable: this.h, executed: Math.max(this.lastExecuted, this.h) };
    const reasons = recorded ? lostAgainst(recorded, found) : [];
    if (stored.damage !== undefined) reasons.unshift(stored.damage);
    if (reasons.length === 0 || this.deps.unsafeTestOnly?.ignoreLostData) return;
    if (!recorded) {
      throw new ProtocolInvariantError(
        `${stored.damage}; no horizon record bounds what this replica signed before, so it cannot rejoin safely (move the data directory aside to start it as a new, empty replica)`,
      );
    }
    // Views: it may have signed in every view up to the recorded one, and in the one it recovered, unless
    // it was already recovering (a stored floor): then only a view lost since counts.
    const floor: SignFloor = {
      view: found.view < recorded.view ? recorded.view : (this.floor?.view ?? found.view),
      seq: Math.max(recorded.stable, this.h, (this.floor?.seq ?? 0) - this.opts.windowSize) + this.opts.windowSize,
    };
    this.floor = floor;
    this.writes.put(KEYS.floor, encodeSignFloor(floor));
    if (this.view < floor.view) {
      this.view = floor.view;
      this.viewChanging = false;
    }
    this.persistViewState();
    this.events.push({ type: 'stored-state-lost', reasons, floor: { ...floor } });
  }

  private recoverRecords(byKey: Map<string, Uint8Array>): void {
    const corrupt = (what: string): void => {
      this.events.push({ type: 'stored-state-corrupt', seq: this.lastExecuted, reason: what });
    };
    const viewBytes = byKey.get(KEYS.view);
    if (viewBytes) {
      const v = decodeViewState(viewBytes);
      if (v.ok) {
        this.view = v.value.view;
        this.viewChanging = v.value.viewChanging;
        this.viewChangeAttempts = v.value.attempts;
      } else corrupt('view state');
    }
    const stableBytes = byKey.get(KEYS.stable);
    if (stableBytes) {
      const s = decodeCheckpointCert(stableBytes);
      if (s.ok && !checkCheckpointCert(s.value, this.ctx)) this.stable = s.value;
      else corrupt('stable checkpoint');
    }
    // Application state as of our last checkpoint.
    const stateBytes = byKey.get(KEYS.checkpointState);
    /** Why the stored application state cannot be used (undefined: it can). */
    let unusable: string | undefined;
    if (stateBytes) {
      const st = decodeCheckpointState(stateBytes);
      const table = st.ok ? ClientTable.decode(st.value.clients, (c) => this.auth.hasClient(c)) : undefined;
      if (st.ok && table) {
        for (const [key, value] of byKey) {
          if (!key.startsWith(KEYS.partitionPrefix)) continue;
          const index = Number(key.slice(KEYS.partitionPrefix.length));
          const res = Number.isInteger(index) ? this.app.writePartition(index, value) : { ok: false as const, reason: 'bad key' };
          if (!res.ok) unusable ??= `stored partition ${key} is malformed: ${res.reason}`;
        }
        for (const [c, r] of table.records) this.clients.set(c, r);
        this.syncTree();
        this.persistedLeaves = this.liveTree.leaves.slice();
        const digest = stateDigest(this.hash, this.liveTree.root, st.value.clients);
        this.lastExecuted = st.value.seq;
        if (!bytesEqual(digest, st.value.digest)) unusable ??= `stored application state does not match its checkpoint digest (seq ${st.value.seq})`;
        else {
          this.lastCheckpoint = { seq: st.value.seq, digest };
          const snap = this.snapshotNow(st.value.seq, digest, st.value.clients);
          this.ownCheckpoints.set(st.value.seq, snap);
          if (st.value.seq === this.stable.seq) this.stableSnapshot = snap;
        }
      } else unusable = 'stored checkpoint record is malformed';
    }
    if (this.stable.seq > 0 && this.stableSnapshot?.seq !== this.stable.seq) this.stableSnapshot = undefined;
    // The log above the stable checkpoint.
    for (const [key, value] of byKey) {
      if (!key.startsWith(KEYS.logPrefix)) continue;
      const seq = Number(key.slice(2, 18));
      if (!(seq > this.h)) continue;
      if (key.endsWith('/s')) {
        const rec = decodeSlot(value);
        if (!rec.ok) {
          corrupt(`log slot ${seq}`);
          continue;
        }
        const slot = this.slotFor(seq);
        const r = rec.value;
        slot.view = r.view;
        slot.prePrepare = r.prePrepare;
        for (const p of r.prepares) slot.prepares.set(p.msg.replica, p);
        for (const c of r.commits) slot.commits.set(c.msg.replica, c);
        slot.cert = r.cert;
        slot.committedDigest = r.committedDigest;
        slot.commitCert = r.commitCert;
        // Whether it is prepared is decided by resumePrepared, with the normal case's rule.
      } else {
        const b = decodeBatch(value);
        if (!b.ok) {
          corrupt(`log batch ${seq}`);
          continue;
        }
        this.addBatch(this.slotFor(seq), makeBatch(this.hash, b.value));
      }
    }
    for (const [key, value] of byKey) {
      if (!key.startsWith(KEYS.checkpointVotePrefix)) continue;
      const v = decodePair(value, 'checkpoint');
      if (v.ok && v.value.msg.seq > this.h) {
        let votes = this.checkpointVotes.get(v.value.msg.seq);
        if (!votes) this.checkpointVotes.set(v.value.msg.seq, (votes = new Map()));
        votes.set(v.value.msg.replica, v.value);
        if (v.value.msg.replica === this.id && v.value.msg.seq > (this.ownCheckpointFrame?.seq ?? -1)) {
          this.ownCheckpointFrame = { seq: v.value.msg.seq, frame: encodeSignedFrame(v.value) };
        }
      }
    }
    for (const [key, value] of byKey) {
      if (!key.startsWith(KEYS.viewChangePrefix)) continue;
      const vc = decodePair(value, 'viewchange');
      if (!vc.ok || vc.value.msg.replica !== this.id) {
        corrupt(`own view-change ${key}`);
        continue;
      }
      const frame = encodeSignedFrame(vc.value);
      this.ownViewChangeFrames.set(vc.value.msg.view, frame);
      if (this.viewChanging && vc.value.msg.view === this.view) {
        this.storeViewChange(vc.value);
        this.ownViewChangeFrame = frame;
      }
    }
    const floorBytes = byKey.get(KEYS.floor);
    if (floorBytes) {
      const f = decodeSignFloor(floorBytes);
      if (f.ok) this.floor = f.value;
      else throw new ProtocolInvariantError(`the recovering record is damaged (${f.reason})`);
    }
    const nvBytes = byKey.get(KEYS.newView);
    if (nvBytes && !this.viewChanging) {
      const nv = decodePair(nvBytes, 'newview');
      if (nv.ok && nv.value.msg.view === this.view) {
        this.newViewFrame = encodeSignedFrame(nv.value);
        this.newViewAhead = nv.value.msg.prePrepares.filter((pp) => pp.msg.seq > this.h + this.opts.windowSize);
      }
    }
    // A primary never reuses a sequence number it assigned in this view.
    let maxSeq = Math.max(this.h, this.lastExecuted);
    for (const slot of this.slots.values()) if (slot.prePrepare && slot.seq > maxSeq) maxSeq = slot.seq;
    this.nextSeq = maxSeq + 1;
    this.dirtySlots.clear();
    const needTransfer = unusable !== undefined;
    if (needTransfer || this.lastExecuted < this.h) {
      if (unusable) corrupt(unusable);
      this.lastExecuted = Math.min(this.lastExecuted, this.h);
      this.startTransfer(this.stable, needTransfer ? 'stored state corrupt' : 'stored state older than the stable checkpoint');
      return;
    }
    this.executeReady();
  }

  // ==============================================================================================
  // Helpers
  // ==============================================================================================

  private slotFor(seq: number): Slot {
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

  private batchFor(slot: Slot, digest: Uint8Array): Batch | undefined {
    return slot.batches.get(bytesKey(digest));
  }

  private addBatch(slot: Slot, batch: Batch): void {
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
    this.writes.put(KEYS.batch(slot.seq, toHex(batch.digest)), encodeBatch(batch.requests));
  }

  private markDirty(slot: Slot): void {
    slot.touched = this.now;
    this.dirtySlots.add(slot.seq);
  }

  private broadcast(frame: Uint8Array): void {
    const after = this.durability.messageAfter;
    for (let r = 0; r < this.n; r++) if (r !== this.id) this.messages.push({ to: r, frame, after });
  }

  private sendTo(to: number, frame: Uint8Array): void {
    if (to !== this.id) this.messages.push({ to, frame, after: this.durability.messageAfter });
  }

  private reject(reason: RejectReason): void {
    this.rejected.set(reason, (this.rejected.get(reason) ?? 0) + 1);
  }

  private misbehaved(peer: number, reason: string): void {
    this.events.push({ type: 'peer-misbehaved', peer, reason });
  }

  /**
   * Every invariant, the O(window) ones too (the simulator calls this after every step; flush()
   * checks the O(1) ones). Throws ProtocolInvariantError.
   */
  checkInvariants(): void {
    this.assertInvariants();
    const hi = this.h + this.opts.windowSize;
    for (const seq of this.slots.keys()) {
      if (seq <= this.h || seq > hi) throw new ProtocolInvariantError(`log slot ${seq} outside the window (${this.h}, ${hi}]`);
    }
    if (this.lastExecuted > this.h + this.opts.windowSize && !this.transfer) {
      throw new ProtocolInvariantError(`executed ${this.lastExecuted} beyond the window of the stable checkpoint ${this.h}`);
    }
  }

  private assertInvariants(): void {
    if (!this.transfer && this.lastExecuted < this.h) {
      throw new ProtocolInvariantError(`executed ${this.lastExecuted} below the stable checkpoint ${this.h}`);
    }
    if (this.isPrimary() && !this.viewChanging && this.nextSeq <= this.h) {
      throw new ProtocolInvariantError(`next sequence number ${this.nextSeq} at or below the watermark ${this.h}`);
    }
  }
}

function slotRecord(slot: Slot): import('./persist.ts').SlotRecord {
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

function assertNever(x: never): never {
  throw new Error(`unexpected ${JSON.stringify(x)}`);
}
