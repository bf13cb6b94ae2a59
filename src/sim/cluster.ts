/**
 * A deterministic in-memory cluster: n production Replica cores, each behind the production turn
 * pipeline (src/node/pipeline.ts) over a simulated disk (src/sim/disk.ts: a batch is durable only
 * when its simulated sync completes), a simulated network and simulated clients, all driven by one
 * seeded PRNG. The same seed gives the same run, bit for bit.
 *
 * A replica can crash at every point of the pipeline: at any time (`crash`), right after a turn was
 * computed and before its writes are durable (`crash-before-write`), while a batch is being written
 * (`crash-during-write`: the batch lands whole or not at all), and after the batch landed but before
 * the turn's effects left (`crash-after-write-before-send`). The checkers run on what leaves each
 * replica, at the moment it leaves (src/sim/checkers.ts).
 */
import type { RepliesMode } from '../client/repliers.ts';
import { KvStore } from '../app/kv.ts';
import { decodeFrame, encodeSignedFrame, FRAME_CODEC } from '../codec/messages.ts';
import { replyOf, RequestSigner } from '../client/request.ts';
import { OPERATOR_CLIENT, admissionBytes, encodeReconfigOp, type ReconfigOp } from '../core/membership.ts';
import { replicaOfPrincipal, replicaPrincipal } from '../core/cluster.ts';
import type { ClusterConfig, FaultModel } from '../core/cluster.ts';
import { Replica, type CoreEvent, type Ready, type ReplicaDeps } from '../core/replica.ts';
import { replicasFor, type UnsafeQuorum } from '../core/quorum.ts';
import { decodeHorizon, encodeCleanToken, encodeHorizon } from '../core/horizon.ts';
import { KEYS } from '../core/persist.ts';
import { DEFAULT_REPLICA_OPTIONS, type ReplicaOptions } from '../core/options.ts';
import { LATE_TICKS_MAX } from '../core/timeout.ts';
import type { Signer } from '../crypto/types.ts';
import { DEFAULT_PIPELINE_OPTIONS, TurnPipeline, type Sent, type SentReply } from '../node/pipeline.ts';
import type { Behavior } from './byzantine.ts';
import type { ExecuteContext } from '../app/types.ts';
import { Checker } from './checkers.ts';
import { SimClient, type KvOp } from './client.ts';
import { coreCrypto, SimKeyring } from './crypto.ts';
import { SimDisk } from './disk.ts';
import { SimNetwork, type NetworkFaults, CALM_NETWORK } from './network.ts';
import { Prng } from './prng.ts';
import { inflateRawSync, deflateRawSync } from 'node:zlib';
import { evidenceFileJson, evidenceKey, verifyEvidenceFile, type Evidence } from '../core/evidence.ts';
import type { EpochProof } from '../core/messages.ts';
import { sha256 } from './crypto.ts';

export { SimDisk };

/** Simulated milliseconds per tick (the pipeline's clock, for deferred writes, and the replicas' wall clocks). */
export const SIM_TICK_MS = 10;
/**
 * The simulated wall clock at tick 0 (ms since the Unix epoch, 2023-11-14): replica i's clock
 * (Replica.setClockMs, for batch times) reads SIM_EPOCH_MS + tick x SIM_TICK_MS + clockSkewsMs[i].
 */
export const SIM_EPOCH_MS = 1_700_000_000_000;
/**
 * The simulator's turns write a few ops each, far below the pipeline's lookup bound for merged
 * batches (MERGE_LOOKUP_OPS_MAX): with this bound a turn of more than two ops passes without lookups,
 * so crashes attack both ways of merging a batch.
 */
export const SIM_MERGE_LOOKUP_OPS_MAX = 2;

export interface SimOptions {
  seed: number;
  f: number;
  /** The cluster's fault model (default byzantine: n = 3f+1; crash: n = 2f+1). */
  faultModel?: FaultModel;
  clients: number;
  requestsPerClient: number;
  /** Distinct keys the clients use (small: more conflicts). */
  keySpace: number;
  partitionCount: number;
  replica: Partial<ReplicaOptions>;
  /** Options of single replicas on top of `replica` (e.g. a byzantine primary's own pipeline depth). */
  replicaOverrides?: Record<number, Partial<ReplicaOptions>>;
  network: NetworkFaults;
  clientTimeoutTicks: number;
  /** Compress state-transfer chunks with zlib (as the shell does) or not. */
  compress: boolean;
  /** A synced write completes 0..diskLatencyTicksMax ticks after it was issued (0: in the same tick). */
  diskLatencyTicksMax: number;
  /** Negative controls: deliberately broken vote thresholds at every replica (src/core/quorum.ts). */
  unsafeQuorum?: UnsafeQuorum;
  /** Negative controls: broken thresholds in recovery's use of the quorum rules only. */
  unsafeRecoveryQuorum?: UnsafeQuorum;
  /** Negative controls: replies leave without waiting for the writes they depend on (the old shell). */
  unsafeReplyBeforeWrite?: boolean;
  /** Negative controls: a replica whose durable state is behind its horizon record votes as if nothing was lost. */
  unsafeIgnoreLostData?: boolean;
  /** Negative controls: a restarted replica votes at once, though votes it sent unwritten were lost (durability.ts, rule 1a). */
  unsafeNoAbstain?: boolean;
  /** Negative control: a clean stop writes its record at once, without draining (deferred writes are lost). */
  unsafeCleanBeforeDrain?: boolean;
  /** Negative controls: configurations are taken from epoch proofs without checking them. */
  unsafeTrustEpochProofs?: boolean;
  /** Negative controls: backups prepare any batch time (no bounds against their clocks, no monotonicity). */
  unsafeIgnoreBatchTimeBounds?: boolean;
  /** Negative control: replicas serve batches whose client signatures they did not check (fetch.ts signedByClients). */
  unsafeServeUncheckedBatches?: boolean;
  /** Per replica id, how far its wall clock is off (ms, may be negative; default 0). */
  clockSkewsMs?: number[];
  /** Client workload: the op of client c's i-th request (default: random ops over keySpace). */
  workload?: (client: number, index: number) => KvOp;
  /**
   * Hosts beyond the 3f+1 members, with ids 3f+1.., started with the genesis keyring but not in it
   * (replicas that JOIN later: they follow as observers until a reconfiguration makes them members).
   */
  spareReplicas?: number;
  /** The keyring has an operator key (reconfiguration requests: SimCluster.reconfigure). */
  operator?: boolean;
  /**
   * Clients follow the membership with epoch proofs (default true, src/client/follow.ts); false
   * keeps every client on the keyring's configuration (a negative control).
   */
  clientsFollowMembership?: boolean;
  /** Which replicas the clients ask to reply (src/client/repliers.ts); default 'quorum', as the SDK. */
  clientReplies?: RepliesMode;
  /** Negative control: clients keep naming repliers that did not answer (src/client/repliers.ts). */
  unsafeClientsNeverSuspect?: boolean;
  /** Clients send gets as read-only requests first, as the SDK does (src/core/reads.ts); default false. */
  readOnlyGets?: boolean;
  /** Negative control: clients accept a read on this many matching answers (f+1: stale reads). */
  unsafeReadQuorum?: number;
  /** Negative control: replicas answer reads at once, without executing what they prepared first. */
  unsafeReadsWithoutHold?: boolean;
}

export const DEFAULT_SIM_OPTIONS: SimOptions = {
  seed: 1,
  f: 1,
  clients: 4,
  requestsPerClient: 20,
  keySpace: 8,
  partitionCount: 16,
  // storedRecordsMax 2: the small workloads then store partitions in every form (records only, base,
  // base and records) and crashes hit each (persist.ts).
  replica: { checkpointInterval: 8, windowSize: 16, viewChangeTimeoutTicks: 120, retransmitTicks: 20, catchUpTicks: 25, fetchTimeoutTicks: 40, storedRecordsMax: 2 },
  network: CALM_NETWORK,
  clientTimeoutTicks: 60,
  compress: false,
  diskLatencyTicksMax: 0,
};

/** Where in the pipeline a crash falls (see the file comment). */
export type CrashKind = 'crash' | 'crash-before-write' | 'crash-during-write' | 'crash-after-write-before-send';
export const CRASH_KINDS: readonly CrashKind[] = ['crash', 'crash-before-write', 'crash-during-write', 'crash-after-write-before-send'];

/** One running incarnation of a replica: the core, its application, its pipeline and its disk. */
export interface Instance {
  replica: Replica;
  app: KvStore;
  pipeline: TurnPipeline;
  disk: SimDisk;
  /** Ticks owed while the pipeline had no room for a turn (the shell's loop runs them late, too). */
  owedTicks: number;
  /**
   * What the replica said after its last turn (Replica.quietTicks): up to tick `until` a turn with no
   * frame delivered in between changes nothing. Cleared by a delivery.
   */
  quiet?: { at: number; until: number };
}

export interface Host {
  id: number;
  signer: Signer;
  disk: SimDisk;
  replica?: Replica;
  app?: KvStore;
  main?: Instance;
  /** A second instance with the same key (Twins): receives from `twinPeers`, the first from the rest. */
  twin?: Replica;
  twinInstance?: Instance;
  twinPeers?: Set<number>;
  twinDisk?: SimDisk;
  byzantine?: Behavior;
  incarnation: number;
  crashes: number;
  /** A crash waiting for its point in the pipeline. */
  armed?: Exclude<CrashKind, 'crash'>;
  /** Older images of the disk's records (see keepImages / damage). */
  images?: Array<Map<string, Uint8Array>>;
  /** Paused (SIGSTOP) until this tick: runs nothing; what arrives waits in `inbox`. */
  pausedUntil?: number;
  pausedSince?: number;
  inbox?: Array<{ from: number; bytes: Uint8Array }>;
  /** After a pause: the tick it resumed, until it is back in the view of the others (see pauseRecoveries). */
  resumedAt?: number;
  /** Stopping cleanly (stopCleanly): no turns, nothing received or sent, its pipeline draining. */
  stopping?: boolean;
  /** Clean stops so far: the token of the next one (horizon.ts, `clean`). */
  cleanStops: number;
}

/**
 * The simulator's application: the key-value store, whose answers to read-only requests a byzantine
 * behaviour may replace (Behavior.readOnly: e.g. answering from a stale copy of the state).
 */
class SimApp extends KvStore {
  constructor(
    options: ConstructorParameters<typeof KvStore>[0],
    private readonly host: Host,
  ) {
    super(options);
  }

  override execute(op: Uint8Array, ctx: ExecuteContext): Uint8Array {
    if (ctx.readOnly === true) {
      const answer = this.host.byzantine?.readOnly?.(op, ctx);
      if (answer !== undefined) return answer;
    }
    return super.execute(op, ctx);
  }
}


export type FaultCounter = Record<string, number>;

export class SimCluster {
  readonly opts: SimOptions;
  readonly prng: Prng;
  readonly net: SimNetwork;
  readonly keys = new SimKeyring();
  readonly cluster: ClusterConfig;
  readonly n: number;
  readonly hosts: Host[] = [];
  readonly clients: SimClient[] = [];
  readonly checker: Checker;
  readonly faults: FaultCounter = {};
  now = 0;
  viewChanges = 0;
  readonly events: Array<{ replica: number; tick: number; event: CoreEvent }> = [];
  /** Keep every event (tests) or only count them (swarm). */
  keepEvents = true;
  /** Extra sources of signed requests (byzantine clients): client id -> issued ops by timestamp. */
  readonly extraIssued = new Map<number, Map<number, Uint8Array>>();
  /** Requests a byzantine client signed twice under one timestamp: either may execute. */
  readonly extraIssuedAlternatives = new Map<string, Uint8Array[]>();
  private readonly clientNodeBase: number;
  private readonly diskPrng: Prng;
  /** Results clients accepted so far, per client (checked as they arrive). */
  private readonly acceptedSeen: number[] = [];
  /** Reply evidence of each client checked so far. */
  private readonly evidenceSeen: number[] = [];
  /** Evidence correct replicas found and do not serve yet (its epoch's proof is not theirs yet). */
  private evidencePending: Array<{ host: number; key: string; waited?: boolean }> = [];
  /** Evidence of replicas checked when served, and how many pieces waited for an epoch proof first. */
  readonly evidenceServed = { checked: 0, waited: 0 };

  constructor(options: Partial<SimOptions> = {}) {
    this.opts = { ...DEFAULT_SIM_OPTIONS, ...options, replica: { ...DEFAULT_SIM_OPTIONS.replica, ...options.replica } };
    this.prng = new Prng(this.opts.seed);
    this.net = new SimNetwork(this.prng.fork());
    this.net.faults = this.opts.network;
    const model = this.opts.faultModel ?? 'byzantine';
    this.n = replicasFor(this.opts.f, model);
    const keyPrng = this.prng.fork();
    const spares = this.opts.spareReplicas ?? 0;
    const replicaSigners = Array.from({ length: this.n }, () => this.keys.newKey(keyPrng));
    const clientSigners = Array.from({ length: this.opts.clients + 2 }, () => this.keys.newKey(keyPrng));
    // (Drawn after the others, so that runs without them keep their keys.)
    for (let i = 0; i < spares; i++) replicaSigners.push(this.keys.newKey(keyPrng));
    this.operatorSigner = this.opts.operator ? this.keys.newKey(keyPrng) : undefined;
    this.cluster = {
      clusterId: `sim-${this.opts.seed}`,
      f: this.opts.f,
      ...(model === 'crash' ? { faultModel: model } : {}),
      replicas: replicaSigners.slice(0, this.n).map((s, id) => ({ id, url: `sim://${id}`, publicKey: s.publicKey })),
      clients: clientSigners.map((s, id) => ({ id, publicKey: s.publicKey })),
      ...(this.operatorSigner ? { operatorKey: this.operatorSigner.publicKey } : {}),
    };
    this.replicaInfo = replicaSigners.map((s, id) => ({ id, url: `sim://${id}`, publicKey: s.publicKey }));
    this.clientNodeBase = this.n + spares;
    this.checker = new Checker(this.opts.f, (client, ts) => {
      const single = this.clients[client]?.issued.get(ts) ?? this.extraIssued.get(client)?.get(ts);
      if (single) return [single];
      // A replica's own QUIT (options.quitOnDivergence): valid once that replica said it asked.
      const replica = replicaOfPrincipal(client);
      if (replica !== undefined && this.quitAsked.has(replica)) return [encodeReconfigOp({ kind: 'quit', id: replica })];
      return this.extraIssuedAlternatives.get(`${client}:${ts}`);
    });
    const skews = this.opts.clockSkewsMs ?? [0];
    const aheadMsMax = this.opts.replica.batchTimeAheadMsMax ?? DEFAULT_REPLICA_OPTIONS.batchTimeAheadMsMax;
    this.checker.windowSize = this.opts.replica.windowSize ?? DEFAULT_REPLICA_OPTIONS.windowSize;
    this.checker.batchTimeSlackMs = aheadMsMax + Math.max(0, ...skews) - Math.min(0, ...skews);
    // Drawn from its own stream, so that disk timing does not shift the other random choices.
    this.diskPrng = this.prng.fork();
    for (let id = 0; id < this.n + spares; id++) {
      const disk = new SimDisk(id);
      const host: Host = { id, signer: replicaSigners[id]!, disk, incarnation: 0, crashes: 0, cleanStops: 0 };
      this.hosts.push(host);
      this.boot(host);
    }
    const clientPrng = this.prng.fork();
    for (let c = 0; c < this.opts.clients; c++) {
      this.clients.push(
        new SimClient(c, this.clientNodeBase + c, this.cluster, clientSigners[c]!, this.keys.verifier, clientPrng.fork(), this.opts.requestsPerClient, this.opts.clientTimeoutTicks, this.opts.keySpace, this.opts.workload, this.opts.clientsFollowMembership ?? true, {
          readOnlyGets: this.opts.readOnlyGets === true,
          ...(this.opts.unsafeReadQuorum !== undefined ? { unsafeReadQuorum: this.opts.unsafeReadQuorum } : {}),
        }, this.opts.clientReplies ?? 'quorum', this.opts.unsafeClientsNeverSuspect === true),
      );
      this.acceptedSeen.push(0);
    }
    // Two spare client identities for byzantine clients.
    this.spareClientSigners = clientSigners.slice(this.opts.clients);
  }

  readonly spareClientSigners: Signer[];
  /** The operator's key (opts.operator). */
  readonly operatorSigner?: Signer;
  /** Every host's id, URL and public key (members and spares). */
  readonly replicaInfo: Array<{ id: number; url: string; publicKey: Uint8Array }>;
  private operatorTimestamp = 0;

  /**
   * Replica `id` (not a member) asks to join with an admission the operator signed, as `pbft
   * replica --join` does: its own JOIN, resent by the caller until it is a member. Registered as
   * issued for the checkers. `forged` signs the admission with another key (refused).
   */
  requestJoin(id: number, timestamp: number, forged = false): void {
    if (!this.operatorSigner) throw new Error('requestJoin: the simulated keyring has no operator key (opts.operator)');
    const self = this.replicaInfo[id]!;
    const signer = forged ? this.hosts[id]!.signer : this.operatorSigner;
    const admission = signer.sign(admissionBytes(this.cluster.clusterId, self));
    const op = encodeReconfigOp({ kind: 'join', replica: self, admission });
    const principal = replicaPrincipal(id);
    let issued = this.extraIssued.get(principal);
    if (!issued) this.extraIssued.set(principal, (issued = new Map()));
    issued.set(timestamp, op);
    const host = this.hosts[id]!;
    if (!host.main) return;
    // (Its messages leave with the host's next turn.)
    host.main.replica.requestJoin(self, admission, timestamp);
    host.main.quiet = undefined; // (an input, like a frame: the shell runs a turn for it)
  }

  /**
   * Submits a reconfiguration signed with the operator's key to every host (as the operator's
   * client would); returns its timestamp. Registered as issued, so the checkers accept it in the order.
   */
  reconfigure(op: ReconfigOp): number {
    if (!this.operatorSigner) throw new Error('reconfigure: the simulated keyring has no operator key (opts.operator)');
    const signer = new RequestSigner(this.cluster, OPERATOR_CLIENT, this.operatorSigner, this.keys.verifier);
    const ts = ++this.operatorTimestamp;
    const bytes = encodeReconfigOp(op);
    let issued = this.extraIssued.get(OPERATOR_CLIENT);
    if (!issued) this.extraIssued.set(OPERATOR_CLIENT, (issued = new Map()));
    issued.set(ts, bytes);
    const frame = encodeSignedFrame(signer.sign(ts, bytes));
    for (const h of this.hosts) this.net.send(this.now, this.clientNodeBase + OPERATOR_CLIENT, h.id, frame);
    return ts;
  }

  count(kind: string, by = 1): void {
    this.faults[kind] = (this.faults[kind] ?? 0) + by;
  }

  private newInstance(host: Host, disk: SimDisk): Instance {
    const app = new SimApp({ partitionCount: this.opts.partitionCount }, host);
    const o = this.opts;
    const unsafe: ReplicaDeps['unsafeTestOnly'] =
      o.unsafeQuorum || o.unsafeRecoveryQuorum || o.unsafeReplyBeforeWrite || o.unsafeIgnoreLostData || o.unsafeNoAbstain || o.unsafeTrustEpochProofs || o.unsafeReadsWithoutHold || o.unsafeIgnoreBatchTimeBounds || o.unsafeServeUncheckedBatches
        ? {
            ...(o.unsafeReadsWithoutHold ? { readsWithoutHold: true } : {}),
            ...(o.unsafeTrustEpochProofs ? { trustEpochProofs: true } : {}),
            ...(o.unsafeIgnoreBatchTimeBounds ? { ignoreBatchTimeBounds: true } : {}),
            ...(o.unsafeServeUncheckedBatches ? { serveUncheckedBatches: true } : {}),
            ...(o.unsafeQuorum ? { quorum: o.unsafeQuorum } : {}),
            ...(o.unsafeRecoveryQuorum ? { recoveryQuorum: o.unsafeRecoveryQuorum } : {}),
            ...(o.unsafeReplyBeforeWrite ? { replyBeforeWrite: true } : {}),
            ...(o.unsafeIgnoreLostData ? { ignoreLostData: true } : {}),
            ...(o.unsafeNoAbstain ? { noAbstain: true } : {}),
          }
        : undefined;
    const replica = new Replica(this.cluster, host.id, { ...this.opts.replica, ...this.opts.replicaOverrides?.[host.id] }, {
      frames: FRAME_CODEC,
      crypto: coreCrypto(host.signer, this.keys.verifier),
      app,
      compress: this.opts.compress ? (d) => new Uint8Array(deflateRawSync(d)) : (d) => d,
      decompress: this.opts.compress
        ? (d, max) => {
            try {
              return new Uint8Array(inflateRawSync(d, { maxOutputLength: max }));
            } catch {
              return undefined;
            }
          }
        : (d, max) => (d.length <= max ? d : undefined),
      unsafeTestOnly: unsafe,
    });
    replica.now = this.now;
    replica.setClockMs(this.clockMsOf(host.id));
    replica.recover(disk.entries(), disk.horizon !== undefined ? { horizon: disk.horizon } : {});
    const onDisk = disk.horizon === undefined ? undefined : decodeHorizon(disk.horizon);
    const instance: Instance = { replica, app, disk, owedTicks: 0, pipeline: undefined as unknown as TurnPipeline };
    instance.pipeline = new TurnPipeline(
      {
        write: (ops, clears, horizon, done) => {
          disk.write({ ops, clears, horizon, done, dueAt: this.now + this.diskPrng.range(0, this.opts.diskLatencyTicksMax) });
        },
      },
      {
        release: (messages, replies, events) => this.release(host, instance, messages, replies, events),
        fatal: (err) => this.onCrashError(host, err),
      },
      { ...DEFAULT_PIPELINE_OPTIONS, mergeLookupOpsMax: SIM_MERGE_LOOKUP_OPS_MAX, now: () => this.now * SIM_TICK_MS, ...(onDisk?.ok ? { horizonOnDisk: onDisk.value } : {}) },
    );
    return instance;
  }

  private boot(host: Host): void {
    if (this.isCorrect(host.id)) this.checker.onBoot(host.id, host.disk, this.now);
    const inst = this.newInstance(host, host.disk);
    if (host.incarnation > 0 && inst.pipeline.horizon?.clean !== undefined && inst.replica.abstain === undefined) this.count('clean-restart');
    host.main = inst;
    host.replica = inst.replica;
    host.app = inst.app;
    host.incarnation++;
    host.armed = undefined;
    this.computeTurn(host, inst, 0);
  }

  /** Replica `id`'s wall clock now (see SIM_EPOCH_MS). */
  clockMsOf(id: number): number {
    return SIM_EPOCH_MS + this.now * SIM_TICK_MS + (this.opts.clockSkewsMs?.[id] ?? 0);
  }

  isCorrect(id: number): boolean {
    return this.hosts[id]!.byzantine === undefined && this.hosts[id]!.twin === undefined;
  }

  /** Makes replica `id` run two instances with its key: one talks to `peers`, the other to the rest. */
  makeTwins(id: number, peers: number[]): void {
    const host = this.hosts[id]!;
    host.twinPeers = new Set(peers);
    host.twinDisk = new SimDisk();
    for (const [k, v] of host.disk.data) host.twinDisk.data.set(k, v);
    host.twinInstance = this.newInstance(host, host.twinDisk);
    host.twin = host.twinInstance.replica;
    this.count('twins');
  }

  /**
   * Crashes replica `id` now. A batch in flight lands whole or not at all (a crash during the write);
   * turns not yet written are lost (a crash before the write).
   */
  crash(id: number): void {
    const host = this.hosts[id]!;
    const inst = host.main;
    if (!inst) return;
    host.pausedUntil = undefined;
    host.pausedSince = undefined;
    host.inbox = undefined;
    host.resumedAt = undefined;
    let kind: CrashKind = 'crash';
    if (host.disk.inFlight) kind = 'crash-during-write';
    else if (inst.pipeline.undurableTurns > 0) kind = 'crash-before-write';
    this.crashAt(host, kind);
  }

  /**
   * Arms a crash of replica `id` at a point of its pipeline: `crash-before-write` right after the
   * next turn with writes is computed; `crash-during-write` while its next batch is being written;
   * `crash-after-write-before-send` once its next batch is durable, before that batch's effects leave.
   */
  armCrash(id: number, kind: Exclude<CrashKind, 'crash'>): void {
    const host = this.hosts[id]!;
    if (host.main) host.armed = kind;
  }

  /** Crashes replica `id` after its next batch is durable and before anything that waited for it is sent. */
  crashAfterPersist(id: number): void {
    this.armCrash(id, 'crash-after-write-before-send');
  }

  private crashAt(host: Host, kind: CrashKind): void {
    const inst = host.main;
    if (!inst) return;
    // During a write the batch lands whole or not at all; before the write nothing of it lands.
    host.disk.crash(kind === 'crash-during-write' ? this.diskPrng.chance(0.5) : false);
    this.down(host);
    host.crashes++;
    this.count(kind);
  }

  private down(host: Host): void {
    host.main = undefined;
    host.replica = undefined;
    host.app = undefined;
    host.armed = undefined;
    host.stopping = undefined;
  }

  /**
   * Stops replica `id` as SIGTERM does (src/node/replica-node.ts stop): it takes no more turns and
   * neither receives nor sends (its transport is closed), its pipeline drains (deferred writes land),
   * then, unless it is abstaining, the pipeline writes the clean stop's token and record
   * (TurnPipeline.markClean); then it is down until restart(). A crash meanwhile is an ordinary crash.
   */
  stopCleanly(id: number): void {
    const host = this.hosts[id]!;
    const inst = host.main;
    if (!inst || host.stopping || host.twin || host.pausedUntil !== undefined) return;
    host.stopping = true;
    host.armed = undefined;
    this.count('clean-stop');
    const token = ++host.cleanStops;
    if (this.opts.unsafeCleanBeforeDrain) {
      // The broken shell: the record first (the disk has turns it has not written), then it is gone.
      const onDisk = host.disk.horizon === undefined ? undefined : decodeHorizon(host.disk.horizon);
      if (onDisk?.ok) {
        host.disk.data.set(KEYS.cleanStop, encodeCleanToken(token));
        host.disk.horizon = encodeHorizon({ ...onDisk.value, clean: token });
      }
      this.crashAt(host, 'crash');
      return;
    }
    inst.pipeline.drain(() => {
      if (host.main !== inst) return; // crashed meanwhile
      if (!inst.replica.cleanStopAllowed) return this.down(host);
      inst.pipeline.markClean(token, (err) => {
        if (host.main !== inst) return;
        if (err === undefined) this.count('clean-stopped');
        this.down(host);
      });
    });
  }

  restart(id: number): void {
    const host = this.hosts[id]!;
    if (host.main) return;
    this.count('restart');
    this.boot(host);
  }

  /** Wipes a crashed replica's disk (a new machine, or a lost data directory). */
  wipe(id: number): void {
    const host = this.hosts[id]!;
    host.disk.wipe();
    this.checker.resetProgress(id);
    this.count('wipe');
  }

  /** Keeps an image of replica `id`'s records every `everyTicks` (the last few), for damage(). */
  keepImages(id: number, everyTicks: number): void {
    this.imageEvery.set(id, everyTicks);
    this.hosts[id]!.images = [];
  }

  private readonly imageEvery = new Map<number, number>();
  /** Replicas whose disk damage() changed (their stored state may legitimately fail its checks). */
  private readonly damagedDisks = new Set<number>();

  /**
   * Damages a crashed replica's disk: its records go back to an older image (a log truncated by
   * damage, a restored backup), while its horizon record stays. It must notice when it restarts and
   * never contradict what it signed before.
   */
  damage(id: number, image = 0): boolean {
    const host = this.hosts[id]!;
    const images = host.images ?? [];
    const old = images[Math.min(image, images.length - 1)];
    if (old === undefined || host.main) return false;
    host.disk.revertTo(old);
    this.damagedDisks.add(id);
    this.checker.resetProgress(id, false);
    this.count('disk-damage');
    return true;
  }

  private nodeOfClient(c: number): number {
    return this.clientNodeBase + c;
  }

  /** Sends from a replica host (possibly through its byzantine behaviour). */
  sendFromReplica(from: number, to: number, frame: Uint8Array): void {
    this.net.send(this.now, from, to, frame);
  }

  /** What the pipeline of one instance releases: checked (correct replicas), then sent. */
  private release(host: Host, inst: Instance, messages: Sent[], replies: SentReply[], events: CoreEvent[]): void {
    const replica = inst.replica;
    // Stopping: the transport is closed, what the drain releases is not sent.
    if (host.stopping && inst === host.main) {
      messages = [];
      replies = [];
    }
    const correct = this.isCorrect(host.id);
    if (correct) {
      for (const m of messages) this.checker.onSent(host.id, m.frame, inst.disk, this.now);
      if (replies.length > 0) {
        const disks = this.hosts.filter((h) => this.isCorrect(h.id)).map((h) => h.disk);
        for (const r of replies) this.checker.onReplySent(host.id, r.frame, r.seq, replica.h, disks, this.now);
      }
    }
    if (host.byzantine) ({ messages, replies } = host.byzantine.outgoing(this, host, replica, messages, replies));
    const isTwin = inst === host.twinInstance;
    for (const m of messages) {
      if (host.twinInstance && host.twinPeers!.has(m.to) !== isTwin) continue;
      this.net.send(this.now, host.id, m.to, m.frame);
    }
    for (const r of replies) {
      if (r.client < this.clients.length) this.net.send(this.now, host.id, this.nodeOfClient(r.client), r.frame);
    }
    for (const event of events) this.onEvent(host, replica, event);
  }

  /** Replicas that asked to quit (their 'quitting' event): their QUIT requests are theirs. */
  private readonly quitAsked = new Set<number>();

  private onEvent(host: Host, replica: Replica, event: CoreEvent): void {
    if (this.keepEvents) this.events.push({ replica: host.id, tick: this.now, event });
    if (event.type === 'quitting') this.quitAsked.add(host.id);
    const correct = this.isCorrect(host.id);
    switch (event.type) {
      case 'executed':
        if (correct) {
          this.checker.onExecuted(host.id, event.seq, event.digest, event.requests, this.now);
          this.checker.onBatchTime(host.id, event.seq, event.timeMs, this.clockMsOf(host.id), this.now);
          this.checker.onDurable(host.id, { executed: event.seq });
        }
        break;
      case 'view-change-started':
        if (correct) this.checker.onDurable(host.id, { view: event.view });
        break;
      case 'committed':
        if (correct) this.checker.onCommitted(host.id, event.seq, event.digest, this.now);
        break;
      case 'checkpoint-stable':
        if (correct) this.checker.onStable(host.id, event.seq, event.digest, this.now);
        break;
      case 'view-entered':
        if (correct) {
          this.viewChanges++;
          this.checker.onDurable(host.id, { view: event.view });
        }
        break;
      case 'state-diverged':
        if (correct) this.checker.violation('correctness', 'divergence', `replica ${host.id} diverged at ${event.seq}`, this.now);
        break;
      case 'evidence':
        // Checked once the replica serves it (heldEvidence: once it holds the proof of its epoch).
        if (correct) this.evidencePending.push({ host: host.id, key: evidenceKey(event.evidence) });
        break;
      case 'state-transfer-completed':
        this.count('state-transfer');
        break;
      case 'stored-state-lost':
        this.count('lost-state-detected');
        break;
      case 'stored-state-corrupt':
        // Crashes lose whole batches only (the disk is all or nothing per batch): what a correct replica
        // stored must read back as the state its checkpoint digest names, e.g. a partition's base and
        // records joined (src/core/recovery.ts).
        if (correct && !this.damagedDisks.has(host.id)) this.checker.violation('correctness', 'stored-state-intact', `replica ${host.id} found its own undamaged stored state corrupt at restart: ${event.reason}`, this.now);
        break;
      case 'signing-resumed':
        this.count('signing-resumed');
        break;
      default:
        break;
    }
    void replica;
  }

  /** Ticks the instance (`ticks` times), flushes it and submits the turn to its pipeline. */
  private computeTurn(host: Host, inst: Instance, ticks: number): void {
    const replica = inst.replica;
    for (let i = 0; i < ticks; i++) {
      replica.tick();
      if (host.byzantine) host.byzantine.tick?.(this, host, replica);
    }
    const ready = replica.flush();
    if (inst === host.main && !host.byzantine) this.checkQuiet(host, inst, ready);
    inst.pipeline.submit(ready);
  }

  /**
   * The shell's loop sleeps through the ticks a replica says are quiet (Replica.quietTicks) and runs
   * them in one later turn: that is only the same as ticking each of them if none of those turns
   * would have done anything. Here every tick has its turn, so each is checked against the promise
   * the loop would sleep on: the one made at the turn it last ran (a delivery, or the first tick
   * after the promise, is such a turn), not a newer one.
   */
  private checkQuiet(host: Host, inst: Instance, ready: Ready): void {
    const replica = inst.replica;
    const q = inst.quiet;
    if (q !== undefined && replica.now <= q.until) {
      const did = ready.messages.length + ready.replies.length + ready.events.length + ready.writes.length + ready.clears.length;
      if (did > 0) {
        const what = `${ready.messages.length} messages, ${ready.replies.length} replies, ${ready.events.length} events (${ready.events.map((e) => e.type).join(', ')}), ${ready.writes.length} writes`;
        this.checker.violation('liveness', 'quiet-ticks', `replica ${host.id} said at tick ${q.at} that its ticks up to ${q.until} would be quiet, but its turn at tick ${replica.now} made ${what}`, this.now);
      }
      return;
    }
    inst.quiet = { at: replica.now, until: replica.now + replica.quietTicks() };
  }

  /**
   * One tick: deliver due messages; tick, flush and submit every replica whose pipeline has room;
   * complete the disk writes that are due (releasing what waited for them); let clients act. Armed
   * crashes fire at their points; the invariants are checked at the end of the step.
   */
  step(): void {
    this.now++;
    // Every replica's clock first (the shell gives it at the start of each turn).
    for (const host of this.hosts) {
      for (const r of [host.main?.replica, host.twin]) r?.setClockMs(this.clockMsOf(host.id));
    }
    for (const m of this.net.due(this.now)) this.deliver(m.from, m.to, m.bytes);
    for (const host of this.hosts) {
      for (const inst of [host.main, host.twinInstance]) {
        // (an instance that crashed earlier in this step is gone)
        if (!inst || (inst !== host.main && inst !== host.twinInstance)) continue;
        try {
          if (inst === host.main && host.pausedUntil !== undefined) {
            if (this.now < host.pausedUntil) continue;
            this.resume(host, inst);
            continue;
          }
          if (inst === host.main && host.stopping) continue;
          if (!inst.pipeline.canCompute) {
            inst.owedTicks++;
            continue;
          }
          // (The shell's rule, src/core/timeout.ts: a stall of its own is not time its timers see.)
          const ticks = Math.min(1 + inst.owedTicks, LATE_TICKS_MAX);
          inst.owedTicks = 0;
          this.computeTurn(host, inst, ticks);
          if (host.armed === 'crash-before-write' && inst === host.main && inst.pipeline.undurableTurns > 0) this.crashAt(host, 'crash-before-write');
        } catch (err) {
          this.onCrashError(host, err);
        }
      }
    }
    for (const host of this.hosts) {
      for (const inst of [host.main, host.twinInstance]) {
        if (!inst) continue;
        try {
          if (inst === host.main && host.pausedUntil !== undefined) continue;
          const w = inst.disk.inFlight;
          if (w && w.dueAt <= this.now) {
            if (inst === host.main && host.armed === 'crash-during-write') {
              this.crashAt(host, 'crash-during-write');
              continue;
            }
            if (inst === host.main && host.armed === 'crash-after-write-before-send') {
              inst.disk.land(w);
              inst.disk.inFlight = undefined;
              this.crashAt(host, 'crash-after-write-before-send');
              continue;
            }
            inst.disk.complete();
          }
          inst.pipeline.kick();
        } catch (err) {
          this.onCrashError(host, err);
        }
      }
    }
    for (const c of this.clients) c.tick(this.now, (to, frame) => this.net.send(this.now, c.node, to, frame));
    this.trackResumed();
    for (const [id, every] of this.imageEvery) {
      const host = this.hosts[id]!;
      if (this.now % every !== 0 || !host.main) continue;
      host.images!.push(host.disk.image());
      if (host.images!.length > 4) host.images!.shift();
    }
    this.checkInvariants();
  }

  /**
   * Evidence a correct replica or client holds, checked as `pbft evidence verify` checks it: written
   * to the file format, read back from its JSON text, verified with the keyring (and epoch proofs).
   */
  private checkEvidence(holder: string, evidence: Evidence, proofs: ReadonlyMap<number, EpochProof>): void {
    const text = JSON.stringify(evidenceFileJson(this.cluster.clusterId, [{ evidence, reportedBy: holder }], proofs));
    const v = verifyEvidenceFile(JSON.parse(text), this.cluster, { verify: (k, d, s) => this.keys.verifier.verify(k, d, s), hash: sha256 });
    const verdict = v.ok ? v.verdicts[0]! : { ok: false as const, reason: v.reason };
    const host = this.hosts[evidence.signer];
    this.checker.onEvidence(holder, evidence, verdict, host === undefined || !this.isCorrect(host.id), this.now);
  }

  /** Evidence a correct replica found, checked as soon as it serves it (GET /evidence: heldEvidence). */
  private checkServedEvidence(): void {
    if (this.evidencePending.length === 0) return;
    const left: Array<{ host: number; key: string; waited?: boolean }> = [];
    const served = new Map<number, ReturnType<Replica['heldEvidence']>>();
    for (const p of this.evidencePending) {
      const host = this.hosts[p.host]!;
      if (!host.main || !this.isCorrect(host.id)) continue;
      let held = served.get(p.host);
      if (held === undefined) {
        held = host.main.replica.heldEvidence();
        served.set(p.host, held);
      }
      const e = held.evidence.find((x) => evidenceKey(x) === p.key);
      if (e === undefined) {
        left.push({ ...p, waited: true });
        continue;
      }
      if (p.waited) this.evidenceServed.waited++;
      this.evidenceServed.checked++;
      this.checkEvidence(`replica ${p.host}`, e, held.proofs);
    }
    this.evidencePending = left;
  }

  /** After every step: each correct replica's own invariants, and every result a client accepted. */
  private checkInvariants(): void {
    this.checkServedEvidence();
    for (const host of this.hosts) {
      if (!host.main || !this.isCorrect(host.id)) continue;
      try {
        host.main.replica.checkInvariants();
      } catch (err) {
        this.onCrashError(host, err);
        continue;
      }
      const r = host.main.replica;
      this.checker.onProgress(host.id, host.incarnation, r.view, r.lastExecuted, r.status().transferring, this.now);
    }
    this.clients.forEach((c, i) => {
      for (let k = this.acceptedSeen[i]!; k < c.completed.length; k++) {
        const done = c.completed[k]!;
        this.checker.onAccepted(done.client, done.timestamp, done.result, this.now);
      }
      this.acceptedSeen[i] = c.completed.length;
      for (let k = this.evidenceSeen[i] ?? 0; k < c.evidence.length; k++) this.checkEvidence(`client ${c.id}`, c.evidence[k]!, c.follower.proofs);
      this.evidenceSeen[i] = c.evidence.length;
    });
  }

  private onCrashError(host: Host, err: unknown): void {
    if (this.isCorrect(host.id)) {
      this.checker.violation('crash', 'exception', `replica ${host.id}: ${err instanceof Error ? err.stack ?? err.message : String(err)}`, this.now);
    }
    host.main = undefined;
    host.replica = undefined;
    host.twin = undefined;
    host.twinInstance = undefined;
    host.stopping = undefined;
  }

  /**
   * Pauses replica `id` (like SIGSTOP) for `ticks`: it computes nothing, its disk completes nothing it
   * could see, and what arrives waits. When it resumes it runs, in one turn, a burst of the missed
   * ticks (at most LATE_TICKS_MAX, src/core/timeout.ts: the rest is not run) and then the messages that waited: the shell's order
   * (src/node/loop.ts). The time until it is back in the view of the others is recorded.
   */
  pause(id: number, ticks: number): void {
    const host = this.hosts[id];
    if (!host?.main || host.twin || host.pausedUntil !== undefined) return;
    host.pausedUntil = this.now + ticks;
    host.pausedSince = this.now;
    host.inbox = [];
    this.count('pause');
  }

  /** Ticks each paused replica took, after it resumed, to be in the view of the other correct replicas again. */
  readonly pauseRecoveries: number[] = [];

  private resume(host: Host, inst: Instance): void {
    const missed = this.now - host.pausedSince!;
    const inbox = host.inbox ?? [];
    host.pausedUntil = undefined;
    host.pausedSince = undefined;
    host.inbox = undefined;
    host.resumedAt = this.now;
    inst.quiet = undefined;
    const replica = inst.replica;
    for (let i = 0; i < Math.min(missed, LATE_TICKS_MAX); i++) replica.tick();
    for (const m of inbox) this.deliver(m.from, host.id, m.bytes);
    inst.pipeline.submit(replica.flush());
  }

  /** Records how long a resumed replica stayed out of the view most other correct replicas are in. */
  private trackResumed(): void {
    for (const host of this.hosts) {
      if (host.resumedAt === undefined) continue;
      const r = host.replica;
      if (!r) {
        host.resumedAt = undefined;
        continue;
      }
      const views = new Map<number, number>();
      for (const other of this.hosts) {
        if (other === host || !other.replica || !this.isCorrect(other.id) || other.pausedUntil !== undefined) continue;
        const s = other.replica;
        if (!s.viewChanging) views.set(s.view, (views.get(s.view) ?? 0) + 1);
      }
      let majority: number | undefined;
      let best = 0;
      for (const [v, c] of views) if (c > best) [majority, best] = [v, c];
      if (majority === undefined || (!r.viewChanging && r.view === majority)) {
        this.pauseRecoveries.push(this.now - host.resumedAt);
        host.resumedAt = undefined;
      }
    }
  }

  deliver(from: number, to: number, bytes: Uint8Array): void {
    if (to >= this.clientNodeBase) {
      const c = this.clients[to - this.clientNodeBase];
      if (c && from < this.clientNodeBase) c.onFrame(this.now, from, bytes);
      return;
    }
    const host = this.hosts[to];
    if (!host || host.stopping) return;
    if (host.pausedUntil !== undefined) {
      host.inbox!.push({ from, bytes });
      return;
    }
    const source = from < this.clientNodeBase ? { kind: 'replica' as const, id: from } : { kind: 'client' as const, id: from - this.clientNodeBase };
    let target = host.replica;
    if (host.twin && from < this.clientNodeBase && host.twinPeers!.has(from)) target = host.twin;
    if (!target) return;
    if (target === host.main?.replica) host.main.quiet = undefined;
    try {
      target.receive(source, bytes);
    } catch (err) {
      this.onCrashError(host, err);
    }
  }

  /** Injects raw bytes as if sent by `from` (a client node id or a replica id). */
  inject(from: number, to: number, bytes: Uint8Array): void {
    this.net.send(this.now, from, to, bytes);
  }

  clientNode(c: number): number {
    return this.nodeOfClient(c);
  }

  run(ticks: number): void {
    for (let i = 0; i < ticks; i++) this.step();
  }

  /** Runs until `done` or `maxTicks`; returns whether `done` held. */
  runUntil(done: () => boolean, maxTicks: number): boolean {
    for (let i = 0; i < maxTicks; i++) {
      if (done()) return true;
      this.step();
    }
    return done();
  }

  /** Runs until every pipeline has written what it holds (deferred writes included), at most `maxTicks`. */
  settle(maxTicks = 50): void {
    const idle = (): boolean => this.hosts.every((h) => (!h.main || h.main.pipeline.idle) && (!h.twinInstance || h.twinInstance.pipeline.idle));
    for (let i = 0; i < maxTicks && !idle(); i++) this.step();
  }

  /**
   * Ends a run: lets every pipeline write what it holds (events of deferred writes are reported only
   * once durable), then replays the agreed order on the sequential model and compares every result
   * a client accepted (Checker.finish).
   */
  finish(): ReturnType<Checker['finish']> {
    this.settle();
    return this.checker.finish(this.clients, this.now);
  }

  allClientsDone(): boolean {
    return this.clients.every((c) => c.done);
  }

  correctReplicas(): Replica[] {
    return this.hosts.filter((h) => this.isCorrect(h.id) && h.replica).map((h) => h.replica!);
  }

  /** Decodes a reply frame (for checkers and tests). */
  static replyIn(frame: Uint8Array): ReturnType<typeof replyOf> {
    const d = decodeFrame(frame);
    return d.ok ? replyOf(d.value) : undefined;
  }
}
