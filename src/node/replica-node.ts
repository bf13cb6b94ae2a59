/**
 * The replica shell: ReplicaNode runs one replica of the cluster, assembled from
 *
 *   the core            the pure PBFT state machine (src/core/replica.ts) with the application (a
 *                       KvStore by default), node:crypto signatures and zlib (core-deps.ts)
 *   the disk            a Storage, RocksStorage by default (disk.ts: recovery, synced writes)
 *   the loop            one serialized loop: frames and ticks into the core, each turn's Ready into
 *                       the turn pipeline (loop.ts, pipeline.ts)
 *   the transport       WebSockets to replicas and clients; its HTTP server answers GET /status and
 *                       GET /metrics on the same port (http.ts)
 *   the verify pool     optional worker threads that verify signatures before frames reach the loop
 *                       (option verifyWorkers, verify-pool.ts)
 *   the log             a line per notable core event, a periodic rejected-message summary (log.ts)
 *
 * start() opens the storage, recovers the core from it, runs the first turn (it persists what
 * recovery produced), then starts the transport; if any of that fails it throws a ReplicaNodeError
 * with one line of explanation. While running, the effects the pipeline releases go out here:
 * messages and replies to the transport, events to the /status counters and the log. An exception
 * of the core, a failed write or a verify worker's error is fatal: it is logged, no further turn
 * runs, and onFatal is called (default: exit the process with status 1). stop() stops ticking, the
 * transport and the verify pool, lets every computed turn be written (unless the replica failed),
 * and closes the storage. Signals and exit codes of a replica process: replica-process.ts.
 */
import { randomInt } from 'node:crypto';
import { FRAME_CODEC } from '../codec/messages.ts';
import { KvStore, PARTITION_COUNT_MAX } from '../app/kv.ts';
import { asReplicatedApp, type StateMachine } from '../app/types.ts';
import type { ClusterConfig } from '../core/cluster.ts';
import { resolveOptions, type ReplicaOptions } from '../core/options.ts';
import { ProtocolInvariantError, Replica, type CoreEvent } from '../core/replica.ts';
import { createSigner, createVerifier, hotPathBackend, type CryptoChoice } from '../crypto/index.ts';
import { RocksStorage } from '../storage/rocksdb.ts';
import type { Storage, StorageLsm } from '../storage/types.ts';
import { createReplicaTransport } from '../transport/replica-transport.ts';
import {
  TransportError,
  type ReplicaTransport,
  type ReplicaTransportOptions,
  type TransportLimits,
  type TransportStats,
} from '../transport/types.ts';
import type { Logger } from '../util/log.ts';
import { compress, countedCrypto, decompress, type CryptoWork } from './core-deps.ts';
import { recoverFromStorage, StorageDisk } from './disk.ts';
import { KEYS } from '../core/persist.ts';
import { serveHttp, type NodeStatus, type RecoveryStats } from './http.ts';
import { heapGrowingPercentInForce } from './heap.ts';
import { processMalloc } from './malloc.ts';
import { NodeMetrics } from './metrics.ts';
import { errorText, gatedLogger, logCoreEvent, LogLimiter, RejectedSummary, REJECTED_SUMMARY_MS, stackLine } from './log.ts';
import { TICK_MS_DEFAULT, TurnLoop } from './loop.ts';
import type { Sent, SentReply } from './pipeline.ts';
import { VerifyPool } from './verify-pool.ts';
import { ClientCutOffs } from './cutoff.ts';
import { EventHistory } from './history.ts';
import { evidenceFileJson, type EvidenceFileJson } from '../core/evidence.ts';

export { compress, decompress } from './core-deps.ts';
export type { NodeStatus } from './http.ts';
export { REJECTED_SUMMARY_MS } from './log.ts';
export { CATCH_UP_TICKS_MAX, DEFERRED_WRITES_MS_MAX, INBOUND_QUEUE_BYTES_MAX, PENDING_TURNS_MAX, TICK_MS_DEFAULT } from './loop.ts';

/** Test-only behaviour changes. The production CLI never sets these. */
export interface ReplicaNodeHooks {
  /** Replaces a reply frame before it is sent (e.g. to play a replica that lies). */
  mutateReply?(client: number, frame: Uint8Array): Uint8Array;
  /** Sees every core event after the turn's effects were performed. */
  onEvent?(event: CoreEvent): void;
  /** Returns true to drop a frame to replica `to` instead of sending it (e.g. a primary silent towards one backup). */
  dropOutgoing?(to: number, frame: Uint8Array): boolean;
  /**
   * Milliseconds to hold a frame to replica `to` before sending it (e.g. a slow primary that delays
   * its pre-prepares). Frames to one replica keep their order: a frame after a held one waits for it.
   */
  delayOutgoingMs?(to: number, frame: Uint8Array): number;
  /** Frames to send to replica `to` right after `frame` (e.g. a second, conflicting vote: a replica that equivocates). */
  extraOutgoing?(to: number, frame: Uint8Array): Uint8Array[];
  /** Frames to send to client `client` right after the reply `frame` (e.g. a second, different reply). */
  extraReplies?(client: number, frame: Uint8Array): Uint8Array[];
}

/** A joining replica sends its JOIN again this often until it is a member. */
const JOIN_RETRY_MS = 2_000;

export interface ReplicaNodeOptions {
  cluster: ClusterConfig;
  id: number;
  /** 32-byte ed25519 seed of this replica. */
  secretKey: Uint8Array;
  /** RocksDB directory of this replica. */
  dataDir: string;
  /** Protocol tunables (see src/core/options.ts). */
  replica?: Partial<ReplicaOptions>;
  /** Wall time of one core tick; default 10 ms. */
  tickMs?: number;
  transportLimits?: Partial<TransportLimits>;
  /** Listen address; defaults to the host and port of this replica's URL in the cluster. */
  listenHost?: string;
  listenPort?: number;
  /**
   * A replica that joins by itself (membership.ts): its address, the operator's admission and the
   * timestamp of its JOIN. The replica sends its JOIN until it is a member.
   */
  join?: { url: string; admission: Uint8Array; timestamp: number };
  log: Logger;
  /** The replicated application; default a fresh KvStore. */
  app?: StateMachine;
  /** Test-only (see ReplicaNodeHooks). */
  hooks?: ReplicaNodeHooks;
  /** Worker threads that verify signatures before frames reach the loop; 0 (default): on the loop. */
  verifyWorkers?: number;
  /** RocksDB's write buffer (RocksStorageOptions.writeBufferBytes); only for the default storage. */
  writeBufferBytes?: number;
  /**
   * The ed25519 backend (src/crypto/index.ts hotPathBackend): 'auto' (default: PBFT_CRYPTO, else
   * libsodium where it loads, else node:crypto), 'sodium' (an error where it cannot load) or 'node'.
   */
  crypto?: CryptoChoice;
  /**
   * Compute the next turns while the synced write of earlier ones is in flight (default true). Their
   * writes then go to disk together in the next synced batch, and their effects follow in order.
   */
  pipelineTurns?: boolean;
  /**
   * A turn with nothing waiting for its writes (no message or reply) does not sync them on its own:
   * they go in the synced batch of the next turn that needs one (default true).
   */
  deferWrites?: boolean;
}

export interface ReplicaNodeDeps {
  /** Default: RocksStorage at options.dataDir. */
  storage?: Storage;
  /** Builds the transport; default createReplicaTransport (tests wrap it to observe sends). */
  createTransport?: (options: ReplicaTransportOptions) => ReplicaTransport;
  /** Called after a fatal error was logged. Default: exit the process with status 1. */
  onFatal?: (err: unknown) => void;
  /** Clock in milliseconds (monotonic); default performance.now. */
  now?: () => number;
  /** Wall clock in milliseconds since the Unix epoch (the core's batch times, the times of /status histories); default Date.now. */
  wallClockMs?: () => number;
}

export type ReplicaNodeErrorCode = 'BAD_OPTIONS' | 'STORAGE_OPEN_FAILED' | 'RECOVERY_FAILED' | 'ADDRESS_IN_USE' | 'LISTEN_FAILED' | 'BAD_STATE';

/** Why the constructor (BAD_OPTIONS), start() or status() (BAD_STATE) refused, in one line. */
export class ReplicaNodeError extends Error {
  override readonly name = 'ReplicaNodeError';
  constructor(
    readonly code: ReplicaNodeErrorCode,
    message: string,
  ) {
    super(message.replace(/\s*[\r\n]+\s*/g, ' '));
  }
}

function defaultFatal(): void {
  process.exit(1);
}

export class ReplicaNode {
  readonly id: number;
  private readonly log: Logger;
  private readonly tickMs: number;
  private readonly storage: Storage;
  private readonly onFatal: (err: unknown) => void;
  private readonly createTransport: (options: ReplicaTransportOptions) => ReplicaTransport;
  private readonly now: () => number;
  private replica?: Replica;
  private transport?: ReplicaTransport;
  private state: 'new' | 'starting' | 'running' | 'stopping' | 'stopped' | 'failed' = 'new';
  private listenAddress = '';
  /** Set once the transport listens (see gatedLogger). */
  private listening = false;
  private readonly disk: StorageDisk;
  private readonly loop: TurnLoop;
  private pool: VerifyPool | undefined;
  private summaryTimer: ReturnType<typeof setInterval> | undefined;
  private joinTimer: ReturnType<typeof setInterval> | undefined;
  private readonly rejectedSummary: RejectedSummary;
  /** One 'peer misbehaved' line per peer and code per 10 s (the rest counted into the next line). */
  private readonly logLimiter = new LogLimiter();
  private startedAt = 0;
  /** The ed25519 implementation on the loop (hotPathBackend). */
  readonly cryptoBackend: 'sodium' | 'node';
  private readonly cryptoWork: CryptoWork = { signs: 0, verifies: 0, signMs: 0, verifyMs: 0, verifiesOffloaded: 0 };
  private storedStateCorruptions = 0;
  private storedStateLosses = 0;
  private stateTransfersCompleted = 0;
  /** The start from the data directory (NodeStatus.recovery). */
  private recovered: RecoveryStats = { records: 0, readSeconds: 0, rebuildSeconds: 0 };
  private readonly metricsRegistry: NodeMetrics;
  /** Test-only (hooks.delayOutgoingMs): per replica, when its last held frame leaves (ms, this.now). */
  private readonly heldUntil = new Map<number, number>();
  private readonly cutOffs = new ClientCutOffs();
  /** The last view changes and the misbehaviour seen, with times (/status viewChangeHistory, misbehaviourHistory). */
  private readonly history: EventHistory;

  constructor(
    private readonly options: ReplicaNodeOptions,
    deps: ReplicaNodeDeps = {},
  ) {
    this.id = options.id;
    this.log = options.log.child({ replica: options.id });
    this.tickMs = options.tickMs ?? TICK_MS_DEFAULT;
    if (!(this.tickMs > 0)) throw new ReplicaNodeError('BAD_OPTIONS', `tickMs must be positive, got ${this.tickMs}`);
    try {
      resolveOptions(options.replica);
    } catch (err) {
      throw new ReplicaNodeError('BAD_OPTIONS', `bad protocol options: ${errorText(err)}`);
    }
    try {
      this.cryptoBackend = hotPathBackend(options.crypto);
    } catch (err) {
      throw new ReplicaNodeError('BAD_OPTIONS', `crypto: ${errorText(err)}`);
    }
    try {
      this.storage = deps.storage ?? new RocksStorage({ path: options.dataDir, ...(options.writeBufferBytes !== undefined ? { writeBufferBytes: options.writeBufferBytes } : {}) });
    } catch (err) {
      throw new ReplicaNodeError('BAD_OPTIONS', errorText(err));
    }
    this.onFatal = deps.onFatal ?? defaultFatal;
    this.createTransport = deps.createTransport ?? createReplicaTransport;
    this.now = deps.now ?? (() => performance.now());
    const wallClockMs = deps.wallClockMs ?? Date.now;
    this.history = new EventHistory(wallClockMs);
    this.rejectedSummary = new RejectedSummary(this.log);
    this.metricsRegistry = new NodeMetrics(this.now);
    this.disk = new StorageDisk(this.storage, this.now, (ms) => this.metricsRegistry.syncedWrite(ms));
    this.loop = new TurnLoop(
      this.disk,
      {
        running: () => this.state === 'running',
        perform: (messages, replies, events) => this.perform(messages, replies, events),
        computed: (ready) => this.metricsRegistry.computed(ready.messages, ready.events, ready.replies),
        fatal: (err) => this.fatal(err),
        clientMisbehaved: (client, reason) => this.cutOffClient(client, reason),
      },
      { tickMs: this.tickMs, now: this.now, wallClockMs, pipelineTurns: options.pipelineTurns ?? true, deferWrites: options.deferWrites ?? true },
    );
  }

  /** Opens storage, recovers the core from it, runs the first turn, then starts the transport. */
  async start(): Promise<void> {
    if (this.state !== 'new') throw new ReplicaNodeError('BAD_STATE', `replica ${this.id} was already started`);
    this.state = 'starting';
    const o = this.options;
    try {
      await this.storage.open();
    } catch (err) {
      this.state = 'stopped';
      throw new ReplicaNodeError('STORAGE_OPEN_FAILED', `cannot open data directory ${o.dataDir}: ${errorText(err)}`);
    }
    const signer = createSigner(o.secretKey, this.cryptoBackend);
    const verifier = createVerifier(this.cryptoBackend);
    const self = o.cluster.replicas.find((r) => r.id === o.id);
    try {
      if (self === undefined && (o.listenHost === undefined || o.listenPort === undefined)) {
        throw new Error(`replica ${o.id} is not in the keyring of cluster ${o.cluster.clusterId}; a replica that joins later needs its listen address (--listen host:port)`);
      }
      const crypto = countedCrypto(signer, verifier, this.cryptoWork, () => this.pool);
      if (o.app === undefined) await checkStoreFormat(this.storage);
      const app = asReplicatedApp(o.app ?? new KvStore({ partitionCount: NODE_PARTITION_COUNT }));
      this.replica = new Replica(o.cluster, o.id, o.replica ?? {}, { crypto, app, frames: FRAME_CODEC, compress, decompress });
      const recovered = await recoverFromStorage(this.replica, this.storage, this.now);
      const horizonOnDisk = recovered.horizon;
      this.recovered = { records: recovered.records, readSeconds: Math.round(recovered.readMs) / 1000, rebuildSeconds: Math.round(recovered.rebuildMs) / 1000 };
      if (horizonOnDisk?.clean !== undefined && this.replica.abstain === undefined) this.log.info('the last stop was clean: votes at once (the record loses its clean mark before anything leaves)');
      this.history.setView(this.replica.status().view);
      this.loop.attach(this.replica, horizonOnDisk);
    } catch (err) {
      this.state = 'stopped';
      await this.storage.close().catch(() => undefined);
      throw new ReplicaNodeError('RECOVERY_FAILED', `replica ${o.id} cannot recover from ${o.dataDir}: ${errorText(err)}`);
    }
    const replica = this.replica;

    const limits: Partial<TransportLimits> = { frameBytesMax: replica.opts.frameBytesMax, ...o.transportLimits };
    this.transport = this.createTransport({
      cluster: o.cluster,
      selfId: o.id,
      signer,
      verifier,
      ...(o.listenHost !== undefined ? { host: o.listenHost } : {}),
      ...(o.listenPort !== undefined ? { port: o.listenPort } : {}),
      ...(o.join !== undefined ? { admission: { url: o.join.url, publicKey: signer.publicKey, sig: o.join.admission } } : {}),
      limits,
      httpHandler: (req, res) =>
        serveHttp(req, res, { started: () => this.replica !== undefined, status: () => this.status(), metrics: () => this.metrics(), evidence: () => this.evidence() }),
      log: gatedLogger(this.log, () => this.listening),
    });
    const workers = o.verifyWorkers ?? 0;
    if (workers > 0) {
      this.pool = new VerifyPool(o.cluster, workers, (from, frame) => this.loop.enqueue(from, frame), (err) => this.fatal(err), this.cryptoBackend);
    }
    const toLoop = this.loop.frameHandler(this.pool);
    this.transport.onFrame((from, frame) => {
      if (from.kind === 'client') this.metricsRegistry.requestArrived(frame);
      toLoop(from, frame);
    });

    // The loop runs before the transport accepts anything: the first turn persists what recovery
    // produced (and queues its messages, which the transport sends once peers are connected).
    this.state = 'running';
    this.startedAt = this.now();
    await this.loop.runFirstTurn();
    if (this.state !== 'running' || this.loop.failed) throw new ReplicaNodeError('RECOVERY_FAILED', `replica ${o.id} failed in its first turn`);
    this.loop.startTicking();
    this.summaryTimer = setInterval(() => this.rejectedSummary.summarize(this.replica?.rejected), REJECTED_SUMMARY_MS);
    this.summaryTimer.unref();
    const join = o.join;
    if (join !== undefined) {
      // Between turns (the next turn sends what it queued): until the configuration names us.
      const self = { id: o.id, url: join.url, publicKey: signer.publicKey };
      const ask = (): void => {
        const r = this.replica;
        if (r === undefined || this.state !== 'running') return;
        if (r.status().member) {
          if (this.joinTimer !== undefined) clearInterval(this.joinTimer);
          this.joinTimer = undefined;
          return;
        }
        r.requestJoin(self, join.admission, join.timestamp);
        this.loop.runTurnSoon();
      };
      this.joinTimer = setInterval(ask, JOIN_RETRY_MS);
      this.joinTimer.unref();
      setTimeout(ask, 200).unref();
    }

    try {
      await this.transport.start();
    } catch (err) {
      await this.stopInternal();
      if (err instanceof TransportError && err.code === 'ADDRESS_IN_USE') {
        throw new ReplicaNodeError('ADDRESS_IN_USE', `replica ${o.id}: ${err.message}`);
      }
      throw new ReplicaNodeError('LISTEN_FAILED', `replica ${o.id}: ${errorText(err)}`);
    }
    this.listening = true;
    this.syncMembership('all');
    const defaults = self !== undefined ? new URL(self.url) : { hostname: o.listenHost!, port: String(o.listenPort!) };
    const host = o.listenHost ?? defaults.hostname;
    this.listenAddress = `${host}:${o.listenPort ?? defaults.port}`;
    const s = replica.status();
    this.log.info(s.member ? 'replica started' : 'replica started; not a member of the configuration in force yet: following', {
      listen: this.listenAddress,
      url: self?.url ?? `(joining) ws://${this.listenAddress}`,
      epoch: s.epoch,
      dataDir: o.dataDir,
      view: s.view,
      lastExecuted: s.lastExecuted,
      stableCheckpoint: s.stableCheckpoint.seq,
      crypto: this.cryptoBackend === 'sodium' ? 'libsodium' : 'node:crypto',
      recoveredRecords: this.recovered.records,
      recoveryReadSeconds: this.recovered.readSeconds,
      recoveryRebuildSeconds: this.recovered.rebuildSeconds,
    });
  }

  /** Stops ticking, the transport and the verify pool, waits until every computed turn is written (unless failed), closes storage. */
  async stop(): Promise<void> {
    if (this.state === 'stopped' || this.state === 'stopping') return;
    const clean = await this.stopInternal();
    this.log.info(clean ? 'replica stopped cleanly: every vote it sent is on disk, so the next start need not abstain' : 'replica stopped');
  }

  /** Stops everything; true when the clean stop was recorded (horizon.ts, `clean`). */
  private async stopInternal(): Promise<boolean> {
    const failed = this.state === 'failed';
    this.state = 'stopping';
    this.loop.stopTicking();
    if (this.summaryTimer !== undefined) clearInterval(this.summaryTimer);
    this.summaryTimer = undefined;
    if (this.joinTimer !== undefined) clearInterval(this.joinTimer);
    this.joinTimer = undefined;
    if (this.transport !== undefined) await this.transport.stop();
    if (this.pool !== undefined) await this.pool.stop();
    // Deferred writes are written too (their effects go to a stopped transport: they are merely kept).
    if (!failed) await this.loop.drain();
    // Then, when the core allows it (not while abstaining), the record that lets the next start vote
    // at once (horizon.ts, `clean`).
    let clean = false;
    if (!failed && this.replica !== undefined && this.replica.cleanStopAllowed) {
      await this.loop.markClean(randomInt(1, 2 ** 47)).then(
        () => (clean = true),
        (err: unknown) => this.log.warn('no clean stop record: the next start abstains', { err: errorText(err) }),
      );
    }
    this.loop.clearQueue();
    await this.storage.close().catch((err: unknown) => this.log.warn('closing storage failed', { err: errorText(err) }));
    this.state = failed ? 'failed' : 'stopped';
    return clean;
  }

  status(): NodeStatus {
    const replica = this.replica;
    if (replica === undefined) throw new ReplicaNodeError('BAD_STATE', `replica ${this.id} is not started`);
    const transport: TransportStats = this.transport?.stats() ?? {
      silentLinksClosed: 0,
      framesIn: 0,
      framesOut: 0,
      bytesIn: 0,
      bytesOut: 0,
      framesDropped: 0,
      handshakesRejected: {},
      replicasConnected: [],
      clientsConnected: 0,
    };
    const checkpoint = this.loop.checkpointStats();
    return {
      ...replica.status(),
      clusterId: this.options.cluster.clusterId,
      pid: process.pid,
      listen: this.listenAddress,
      counters: { ...replica.counters },
      rejected: Object.fromEntries([...replica.rejected.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1))),
      misbehaviour: Object.fromEntries([...replica.misbehaviours.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1))),
      transport,
      loop: {
        turns: this.loop.turns,
        tickWakeups: this.loop.tickWakeups,
        lateTicksDropped: this.loop.lateTicksDropped,
        lateTurns: this.loop.lateTurns,
        inboundFramesDropped: this.loop.inboundFramesDropped,
        linkFramesOverBudget: this.loop.linkBudgets.dropped,
        queuedFrames: this.loop.queuedFrames,
        storageWrites: this.disk.writes,
        storageWriteMs: Math.round(this.disk.writeMs * 1000) / 1000,
        checkpointMs: Math.round(checkpoint.ms * 1000) / 1000,
        checkpointBatches: checkpoint.batches,
      },
      crypto: {
        backend: this.cryptoBackend,
        ...this.cryptoWork,
        signMs: Math.round(this.cryptoWork.signMs * 1000) / 1000,
        verifyMs: Math.round(this.cryptoWork.verifyMs * 1000) / 1000,
      },
      storedStateCorruptions: this.storedStateCorruptions,
      storedStateLosses: this.storedStateLosses,
      horizonWrites: this.disk.horizonWrites,
      horizonWriteMs: Math.round(this.disk.horizonWriteMs * 1000) / 1000,
      stateTransfersCompleted: this.stateTransfersCompleted,
      recovery: { ...this.recovered },
      viewChangeHistory: this.history.viewChangeHistory(),
      misbehaviourHistory: this.history.misbehaviourHistory(),
      memory: memoryStatus(this.storage),
      ...lsmStatus(this.storage),
      uptimeSeconds: Math.round((this.now() - this.startedAt) / 100) / 10,
    };
  }

  /**
   * The equivocation evidence this replica holds (what GET /evidence serves): the file that
   * `pbft evidence verify` checks with cluster.json, with the epoch proofs of later configurations.
   */
  evidence(): EvidenceFileJson {
    const replica = this.replica;
    if (replica === undefined) throw new ReplicaNodeError('BAD_STATE', `replica ${this.id} is not started`);
    const held = replica.heldEvidence();
    return evidenceFileJson(
      this.options.cluster.clusterId,
      held.evidence.map((evidence) => ({ evidence, reportedBy: `replica ${this.id}` })),
      held.proofs,
    );
  }

  /** Prometheus text exposition (what GET /metrics serves): see metrics.ts. */
  metrics(): Promise<string> {
    return this.metricsRegistry.render(this.status());
  }

  /** Effects whose writes are durable (from the pipeline): messages, replies, then events. */
  private perform(messages: Sent[], replies: SentReply[], events: CoreEvent[]): void {
    this.metricsRegistry.released(replies);
    const transport = this.transport;
    if (transport !== undefined) {
      // Before the messages: links to replicas that joined (some messages may be for them); links
      // to replicas that left are closed only after (the last CHECKPOINT of their configuration
      // may be among the messages).
      this.syncMembership('add');
      const drop = this.options.hooks?.dropOutgoing;
      const delay = this.options.hooks?.delayOutgoingMs;
      const extra = this.options.hooks?.extraOutgoing;
      const send = (to: number, frame: Uint8Array): void => {
        transport.sendToReplica(to, frame);
        if (extra !== undefined) for (const x of extra(to, frame)) transport.sendToReplica(to, x);
      };
      for (const m of messages) {
        if (drop !== undefined && drop(m.to, m.frame)) continue;
        if (delay !== undefined) {
          const now = this.now();
          const at = Math.max(now + delay(m.to, m.frame), this.heldUntil.get(m.to) ?? 0);
          if (at > now) {
            this.heldUntil.set(m.to, at);
            setTimeout(() => send(m.to, m.frame), at - now);
            continue;
          }
        }
        send(m.to, m.frame);
      }
      const mutate = this.options.hooks?.mutateReply;
      const extraReplies = this.options.hooks?.extraReplies;
      for (const r of replies) {
        const frame = mutate ? mutate(r.client, r.frame) : r.frame;
        transport.sendToClient(r.client, frame);
        if (extraReplies !== undefined) for (const x of extraReplies(r.client, frame)) transport.sendToClient(r.client, x);
      }
      this.syncMembership('all');
    }
    for (const event of events) this.onEvent(event);
  }

  /**
   * Tells the transport whom to connect to and let in, when the membership changed: 'add' keeps the
   * replicas and clients it had too, 'all' is exactly what the core knows now.
   */
  private syncMembership(phase: 'add' | 'all'): void {
    const replica = this.replica;
    if (replica === undefined || this.transport === undefined) return;
    const mark = replica.membershipEpoch;
    if (mark === this.membershipMark) return;
    const now = replica.knownMembership();
    if (phase === 'add' && this.membershipApplied !== undefined) {
      const before = this.membershipApplied;
      const ids = new Set(now.replicas.map((r) => r.id));
      const clientIds = new Set(now.clients.map((c) => c.id));
      this.transport.setMembership({
        replicas: [...now.replicas, ...before.replicas.filter((r) => !ids.has(r.id))],
        clients: [...now.clients, ...before.clients.filter((c) => !clientIds.has(c.id))],
        ...(now.operatorKey ? { operatorKey: now.operatorKey } : {}),
      });
      return;
    }
    this.membershipMark = mark;
    this.membershipApplied = now;
    this.transport.setMembership(now);
  }

  private membershipApplied?: ReturnType<Replica['knownMembership']>;
  private membershipMark = '';

  /** A core event: counted for /status, logged, then shown to the test hook. */
  private onEvent(event: CoreEvent): void {
    if (event.type === 'stored-state-corrupt') this.storedStateCorruptions++;
    else if (event.type === 'state-transfer-completed') this.stateTransfersCompleted++;
    else if (event.type === 'stored-state-lost') this.storedStateLosses++;
    this.history.observe(event);
    logCoreEvent(this.log, event, this.tickMs, this.logLimiter);
    this.options.hooks?.onEvent?.(event);
  }

  /** A client sent what only a faulty client sends (cutoff.ts): close its connections and refuse it for a while. */
  private cutOffClient(client: number, reason: string): void {
    const forMs = this.cutOffs.cutOff(client);
    this.transport?.refuseClient?.(client, forMs);
    // At most one line per client per cut-off (a cut-off lasts at least CUT_OFF_MS_MIN).
    this.log.warn('client misbehaved; cut off', { client, reason, forMs });
  }

  private fatal(err: unknown): void {
    if (this.state === 'failed') return;
    this.state = 'failed';
    this.loop.stopTicking();
    if (this.summaryTimer !== undefined) clearInterval(this.summaryTimer);
    const what = err instanceof ProtocolInvariantError ? 'protocol invariant broken' : 'replica loop failed';
    const stack = err instanceof Error && err.stack !== undefined ? stackLine(err.stack) : '';
    this.log.error(`${what}; stopping`, { err: errorText(err), code: (err as { code?: unknown })?.code, stack });
    this.onFatal(err);
  }
}

/**
 * process.memoryUsage(), with the malloc this process runs on (malloc.ts), the heap growing percent
 * in force when the heap policy runs and the store's own accounting of its memory when it keeps one
 * (RocksDB).
 */
function memoryStatus(storage: Storage): NodeStatus['memory'] {
  const percent = heapGrowingPercentInForce();
  const stored = storage.memoryUsage?.();
  return {
    ...process.memoryUsage(),
    malloc: processMalloc(),
    ...(percent !== undefined ? { heapGrowingPercent: percent } : {}),
    ...(stored !== undefined ? { storage: stored } : {}),
  };
}

/** NodeStatus.storage: RocksDB's tree and compactions, when the store has them. */
function lsmStatus(storage: Storage): { storage?: StorageLsm } {
  const lsm = storage.lsm?.();
  return lsm === undefined ? {} : { storage: lsm };
}

/**
 * Partitions of the built-in key-value store in a replica process: the most there can be, so that
 * a partition stays small with a large state (10M keys: about 150 keys, 19 KB), and a checkpoint
 * hashes and writes, and a state transfer moves, little more than what changed. (The class's
 * default, 4096, serves the simulator and small in-process stores.) Every replica of a cluster must
 * use the same count: it is part of the state digest.
 */
export const NODE_PARTITION_COUNT = PARTITION_COUNT_MAX;

/** The record naming the layout of the built-in store's state in a data directory. */
const STORE_FORMAT_KEY = 'n/app-format';
/**
 * One record per key, keyed by the checkpoint that wrote it (persist.ts: b/<seq>/<partition>/<key>);
 * partitions stored whole (a/<partition>) and records in the older layout are read too.
 */
export const STORE_FORMAT = `kv/partitions=${NODE_PARTITION_COUNT}/records-by-checkpoint`;
/** Records under their partition (a/<partition>/<key>): what versions before records by checkpoint wrote and read. */
const STORE_FORMAT_RECORDS = `kv/partitions=${NODE_PARTITION_COUNT}/records`;
/** Whole partitions only (a/<partition>): what versions before per-key records wrote and read. */
const STORE_FORMAT_WHOLE = `kv/partitions=${NODE_PARTITION_COUNT}`;

/**
 * Refuses a data directory whose key-value state was written with another partition count (before
 * the record existed: 4096) instead of failing later on digests that cannot match; marks a new one.
 * A directory of an older layout (whole partitions, STORE_FORMAT_WHOLE, or records under their
 * partition, STORE_FORMAT_RECORDS) is read as it is and marked with the current format: from then on
 * partitions that change are stored as records keyed by checkpoint, which the earlier versions would
 * not read (the mark makes them refuse the directory with a message instead). An older record is
 * deleted when its key's next record replaces it, or when its partition is written whole.
 */
export async function checkStoreFormat(storage: Storage): Promise<void> {
  const marker = await storage.get(STORE_FORMAT_KEY);
  if (marker !== undefined) {
    const found = new TextDecoder().decode(marker);
    if (found === STORE_FORMAT_WHOLE || found === STORE_FORMAT_RECORDS) {
      await storage.write([{ type: 'put', key: STORE_FORMAT_KEY, value: new TextEncoder().encode(STORE_FORMAT) }], { sync: true });
      return;
    }
    if (found !== STORE_FORMAT) {
      throw new Error(`the data directory holds key-value state in format "${found}", this version reads "${STORE_FORMAT}": move it away and start with an empty data directory (the replica then fetches the state from its peers)`);
    }
    return;
  }
  if ((await storage.get(KEYS.checkpointState)) !== undefined) {
    throw new Error(`the data directory holds key-value state written by an older version (4096 partitions), this version reads "${STORE_FORMAT}": move it away and start with an empty data directory (the replica then fetches the state from its peers)`);
  }
  await storage.write([{ type: 'put', key: STORE_FORMAT_KEY, value: new TextEncoder().encode(STORE_FORMAT) }], { sync: true });
}
