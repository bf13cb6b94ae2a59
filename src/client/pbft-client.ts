/**
 * The client SDK: `PbftClient.connect({ cluster, key })`, then put/get/del/cas or invoke(op).
 *
 * - Each request is signed with a strictly increasing timestamp (microseconds since the epoch,
 *   at least previous + 1). Requests from one client are serialized: replicas order a client's
 *   requests by timestamp and keep only its latest, so one is outstanding at a time; later calls queue.
 * - A request goes to the primary the client believes in (the member at view mod n in ascending id
 *   order, the view learned from accepted replies); when no result is accepted after `retransmitMs`
 *   (or longer, up to 8x, when this client's requests have been taking longer: src/client/rto.ts)
 *   it is broadcast to every replica, again with exponential backoff (the backups forward it to the
 *   primary and start their view-change timers).
 * - A result is accepted once f+1 distinct members of the configuration in force sent valid,
 *   matching, signed replies (ReplyCollector): at least one of them is correct. As soon as no result
 *   can still reach f+1, the call fails with QuorumFailure carrying every reply; at the deadline
 *   with TimeoutError.
 * - The client follows the membership on its own (src/client/follow.ts): it starts from the
 *   keyring's configuration (epoch 0) and learns each later one only from an epoch proof signed by
 *   a quorum of the one before, asking its replicas (`epochsreq`) when a connection opens, when a
 *   request is retransmitted, when something arrives from a replica it does not know, and every
 *   `refreshMs`. A newer configuration replaces the replica keys, n, f and the primary rotation,
 *   the transport connects to joined replicas and drops removed ones, and the outstanding request
 *   is re-judged by the new configuration (ReplyCollector.rebase says why that is safe).
 * - Every valid reply that differs from an accepted result, including ones arriving just after
 *   acceptance, is reported as 'faulty-reply' evidence: a signed statement of a wrong result.
 * - A replica that signs two different results for one request (two replies to this client's
 *   request with different results, both validly signed) is caught: 'equivocation' event with the
 *   evidence (src/core/evidence.ts), kept (at most EVIDENCE_KEPT_MAX) for `evidence()` and
 *   `evidenceFile()`, the file `pbft evidence verify` checks offline with cluster.json.
 *
 * Portable: no module reached from here imports node:*, statically or through import(), so a
 * bundler targeting browsers follows no import into node:* (the `ws` package, imported only where
 * there is no global WebSocket, resolves to its browser stub there). What only Node can do (reading the keyring files given as paths, signing with
 * node:crypto, about 10x faster than @noble) comes from a NodeSupport installed by the Node entry
 * (src/client/client.ts, the package's `.`); the browser entry (src/client/browser.ts) installs none,
 * so there the cluster and key are objects (see src/client/config.ts) and signing uses @noble.
 */
import { decodeResult, encodeOp, encodePutMany, type KvOp, type KvResult, type Value } from '../app/kv-ops.ts';
import { OPERATOR_CLIENT, replicaOfPrincipal, type ClusterConfig } from '../core/cluster.ts';
import type { AnyReply } from '../core/messages.ts';
import { decodeFrame, encodeSignedFrame } from '../codec/messages.ts';
import { createNobleSigner, NobleVerifier } from '../crypto/noble.ts';
import type { Signer, Verifier } from '../crypto/types.ts';
import { CachingVerifier, type VerifyCacheStats } from '../crypto/verify-cache.ts';
import { createClientTransport, type ClientTransport, type WebSocketConstructor } from '../transport/client-transport.ts';
import type { TransportLimits } from '../transport/portable.ts';
import { silentLogger, type Logger } from '../util/log.ts';
import { ReadCollector, RefusalCollector, ReplyCollector, type CollectOutcome, type ReadFallbackReason, type ReadOutcome } from './collector.ts';
import { MembershipFollower } from './follow.ts';
import { RetransmitEstimator } from './rto.ts';
import { ReplierChoice, REPLIES_MODES, type RepliesMode } from './repliers.ts';
import type { MemberConfig } from '../core/membership.ts';
import type { EpochProof } from '../core/messages.ts';
import type { ClientTransportOptions } from '../transport/client-transport.ts';
import {
  ClientClosedError,
  ClientConfigError,
  ConnectError,
  KvError,
  QuorumFailure,
  RequestTooLargeError,
  TimeoutError,
  UnexpectedResultError,
} from './errors.ts';
import { RequestSigner, readReplyOf, refusalOf, replyOf } from './request.ts';
import { OP_BYTES_MAX } from '../core/limits.ts';
import { quorumFor } from '../core/quorum.ts';
import type { ReadMsg, ReadReplyMsg, RefusalMsg, RequestMsg, Signed } from '../core/messages.ts';
import { evidenceFileJson, replyEvidence, type EvidenceFileJson, type ReplyEvidence } from '../core/evidence.ts';

export const TIMEOUT_MS_DEFAULT = 10_000;
export const RETRANSMIT_MS_DEFAULT = 300;
/** A read-only request without a quorum of matching answers this long falls back to an ordered one. */
export const READ_TIMEOUT_MS_DEFAULT = 1_000;
/** Retransmissions back off up to this multiple of retransmitMs. */
const RETRANSMIT_BACKOFF_MAX = 8;
/** Accepted requests remembered for judging replies that arrive after acceptance. */
const SETTLED_REMEMBERED_MAX = 64;
/** Of those, the newest whose replies are kept to catch a replica that later signs another result. */
const SETTLED_REPLIES_KEPT_MAX = 8;
/** Reply equivocations kept (the first ones); later ones are counted in `evidenceNotKept`. */
export const EVIDENCE_KEPT_MAX = 64;
/** At most one urgent `epochsreq` round (retransmission, unknown replica) per this interval. */
export const MEMBERSHIP_ASK_INTERVAL_MS = 1_000;
/** Without any sign of a change, ask again when the last ask is this old (checked when a request starts). */
export const MEMBERSHIP_REFRESH_MS_DEFAULT = 30_000;
/** How often connect() looks whether f+1 members of the configuration in force are connected. */
const CONNECT_POLL_MS = 20;

export type CryptoChoice = 'auto' | 'sodium' | 'node' | 'noble';

export interface ClientKey {
  id: number;
  /** 32-byte ed25519 seed. */
  secretKey: Uint8Array;
}

export interface PbftClientOptions {
  /** Path of cluster.json, or an already-loaded cluster description. */
  cluster: string | ClusterConfig;
  /** Path of a client key file (client-<id>.key), or an already-loaded key. */
  key: string | ClientKey;
  /** Deadline of each operation; default 10,000 ms. Also bounds connect(). */
  timeoutMs?: number;
  /**
   * First retransmission (to every replica) after this long, then backoff; default 300 ms. Longer
   * (up to 8x) while accepted requests take longer than that (src/client/rto.ts).
   */
  retransmitMs?: number;
  /**
   * How long a read-only request (get, invokeReadOnly) waits for 2f+1 matching answers before it
   * falls back to an ordered request; default 1,000 ms. Disagreeing answers fall back at once.
   */
  readTimeoutMs?: number;
  /**
   * Signature backend: 'auto' (through the Node entry: libsodium where its binding loads, else
   * node:crypto, or what PBFT_CRYPTO names; from the browser entry: @noble), 'sodium', 'node' or 'noble'.
   */
  crypto?: CryptoChoice;
  log?: Logger;
  /** How long connect() waits for f+1 replicas; default timeoutMs. */
  connectTimeoutMs?: number;
  /** WebSocket constructor (default: globalThis.WebSocket, else the `ws` package). */
  WebSocketImpl?: WebSocketConstructor;
  /**
   * Without a sign of a change, the client asks its replicas for newer configurations when the last
   * ask is older than this (default 30,000 ms; checked when a request starts).
   */
  membershipRefreshMs?: number;
  /**
   * Which replicas send their reply when a request executes: 'quorum' (the default) names as many as
   * a result needs (f+1), backups first, rotating, and leaves out for a while one that missed
   * (src/client/repliers.ts); the rest reply only to a retransmission. 'all': every replica replies
   * (the client then waits for the fastest f+1 of n, and compares every reply).
   */
  replies?: RepliesMode;
  /** Replaces the WebSocket transport (tests, embedders with their own links); default createClientTransport. */
  createTransport?: (options: ClientTransportOptions) => ClientTransport;
  transportLimits?: Partial<TransportLimits>;
  /**
   * Deliberately broken acceptance, for negative controls only (a checker that cannot catch a
   * broken client proves nothing): `acceptFirstReply` takes the first reply instead of f+1
   * matching ones. Never set by the CLI.
   */
  unsafeTestOnly?: { acceptFirstReply?: boolean };
}

/**
 * Evidence of a faulty replica: its signed reply, which differs from the accepted result (signed on
 * its own, or as a leaf of a signed REPLY-BATCH root with its Merkle path).
 */
export interface FaultyReplyEvidence {
  replica: number;
  reply: AnyReply;
  accepted: Uint8Array;
}

/** The client moved to a newer configuration (learned from epoch proofs). */
export interface MembershipChange {
  epoch: number;
  previousEpoch: number;
  /** Member ids of the new configuration, ascending. */
  replicas: number[];
  added: number[];
  removed: number[];
  /** False when this client is no longer registered (its requests will be refused). */
  clientRegistered: boolean;
}

/** Asks for epoch proofs counted as out to one replica, at most (see PbftClient.epochsAsked). */
const EPOCHS_ASKS_OUT_MAX = 4;

/** A replica answered `epochsreq` with a proof that does not verify (it is faulty, or its link is). */
export interface InvalidEpochProof {
  replica: number;
  reason: string;
}

/** A read-only request could not be answered unordered: the SDK sends it ordered (with a fresh timestamp). */
export interface ReadFallback {
  /** The timestamp of the read-only request that fell back. */
  timestamp: number;
  reason: ReadFallbackReason;
  /** Replicas that answered it (matching or not) and that refused it. */
  answered: number[];
  refused: number[];
}

export interface PbftClientEvents {
  'faulty-reply': (evidence: FaultyReplyEvidence) => void;
  membership: (change: MembershipChange) => void;
  'invalid-epoch-proof': (evidence: InvalidEpochProof) => void;
  /** A replica signed two different results for one of this client's requests (src/core/evidence.ts). */
  equivocation: (evidence: ReplyEvidence) => void;
  'read-fallback': (fallback: ReadFallback) => void;
}

const EVENTS: ReadonlyArray<keyof PbftClientEvents> = ['faulty-reply', 'membership', 'invalid-epoch-proof', 'equivocation', 'read-fallback'];

export interface CasResult {
  swapped: boolean;
  /** The value after the operation. */
  current: Value | null;
}

interface Pending {
  timestamp: number;
  /** Signed; names the replicas asked to reply (request.msg.repliers, absent: all). */
  request: Signed<RequestMsg>;
  frame: Uint8Array;
  /** Made by the first refusal (rare: a request over a replica's limits). */
  refusals: RefusalCollector | undefined;
  collector: ReplyCollector;
  attempt: number;
  /** Date.now() when it was first sent (a latency sample if it is accepted without a retransmission). */
  sentAt: number;
  retransmitTimer?: ReturnType<typeof setTimeout>;
  deadlineTimer?: ReturnType<typeof setTimeout>;
  resolve(result: Uint8Array): void;
  reject(err: Error): void;
}

/** The outstanding read-only request (at most one: calls are serialized, like ordered ones). */
interface PendingRead {
  timestamp: number;
  read: Signed<ReadMsg>;
  collector: ReadCollector;
  timer?: ReturnType<typeof setTimeout>;
  /** Ends the unordered attempt: the agreed result, a reason to fall back, or the client closed. */
  done(outcome: { kind: 'accepted'; result: Uint8Array } | { kind: 'fallback'; reason: ReadFallbackReason; timestamp: number } | { kind: 'closed' }): void;
}

interface Settled {
  result: Uint8Array;
  /** Replicas whose reply was already judged (accepted or reported). */
  judged: Set<number>;
  /** The request's replies (the newest SETTLED_REPLIES_KEPT_MAX requests only): a later, different one is evidence. */
  collector?: ReplyCollector;
}

const NONE: ReadonlySet<number> = new Set();

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function positive(name: string, value: number): number {
  if (!Number.isFinite(value) || value <= 0) throw new ClientConfigError(`${name} must be a positive number, got ${value}`);
  return value;
}

/**
 * What only Node provides to the SDK. The Node entry installs it (installNodeSupport); without it,
 * file paths are refused with BAD_CONFIG and signing uses @noble.
 */
export interface NodeSupport {
  loadCluster(path: string): Promise<ClusterConfig>;
  loadKey(path: string, cluster: ClusterConfig): Promise<ClientKey>;
  /**
   * Signer, verifier and SHA-256 of a Node backend ('auto': libsodium where it loads, else
   * node:crypto; see src/crypto/index.ts hotPathBackend); throws where the one asked for is not available.
   */
  nodeCrypto(
    secretKey: Uint8Array,
    choice: 'auto' | 'sodium' | 'node',
  ): Promise<{ backend: 'sodium' | 'node'; signer: Signer; verifier: Verifier; hash: (data: Uint8Array) => Uint8Array }>;
}

let nodeSupport: NodeSupport | undefined;

/** Called once by the Node entry (src/client/client.ts). */
export function installNodeSupport(support: NodeSupport): void {
  nodeSupport = support;
}

function pathNeedsNode(what: string, path: string): ClientConfigError {
  return new ClientConfigError(
    `${what} "${path}" is a file path, which only the Node entry reads ("pbft-kv"); here pass the parsed JSON through ${what === 'cluster' ? 'clusterFromJson' : 'clientKeyFromJson'}()`,
  );
}

async function loadClusterOption(cluster: string | ClusterConfig): Promise<ClusterConfig> {
  if (typeof cluster !== 'string') return cluster;
  if (nodeSupport === undefined) throw pathNeedsNode('cluster', cluster);
  return nodeSupport.loadCluster(cluster);
}

async function loadKeyOption(key: string | ClientKey, cluster: ClusterConfig): Promise<ClientKey> {
  if (typeof key !== 'string') return key;
  if (nodeSupport === undefined) throw pathNeedsNode('key', key);
  return nodeSupport.loadKey(key, cluster);
}

/**
 * The signature checkers the clients of this process share, one per backend: each remembers the
 * signatures it found valid (src/crypto/verify-cache.ts), so that the clients answered by one
 * signed REPLY-BATCH check its signature once between them, not once each.
 */
const sharedVerifiers: { sodium?: CachingVerifier; node?: CachingVerifier; noble?: CachingVerifier } = {};

/**
 * What the signature cache the clients of this process share has done since the process loaded
 * the SDK (every backend together): signature checks asked for, and how many of them the cache
 * answered without checking again.
 */
export function verifyCacheStats(): VerifyCacheStats {
  const all = [sharedVerifiers.sodium, sharedVerifiers.node, sharedVerifiers.noble].flatMap((v) => (v === undefined ? [] : [v.stats()]));
  return {
    checks: all.reduce((s, x) => s + x.checks, 0),
    hits: all.reduce((s, x) => s + x.hits, 0),
    entries: all.reduce((s, x) => s + x.entries, 0),
  };
}

async function loadCrypto(
  choice: CryptoChoice,
  secretKey: Uint8Array,
): Promise<{ signer: Signer; verifier: Verifier; hash?: (data: Uint8Array) => Uint8Array }> {
  if (!(['auto', 'sodium', 'node', 'noble'] as unknown[]).includes(choice)) {
    throw new ClientConfigError(`crypto must be 'auto', 'sodium', 'node' or 'noble', got ${JSON.stringify(choice)}`);
  }
  if (choice === 'node' || choice === 'sodium' || (choice === 'auto' && nodeSupport !== undefined)) {
    try {
      if (nodeSupport === undefined) throw new Error('the SDK was not loaded through its Node entry');
      const loaded = await nodeSupport.nodeCrypto(secretKey, choice);
      const verifier = (sharedVerifiers[loaded.backend] ??= new CachingVerifier(loaded.verifier));
      return { signer: loaded.signer, verifier, hash: loaded.hash };
    } catch (err) {
      // A PBFT_CRYPTO that names no backend is the caller's mistake, never a reason to fall back.
      const reason = err instanceof Error ? err.message : String(err);
      if (choice === 'auto' && err instanceof Error && err.name === 'CryptoChoiceError') throw new ClientConfigError(reason);
      if (choice !== 'auto') throw new ClientConfigError(`crypto '${choice}' is not available here: ${reason}`);
    }
  }
  sharedVerifiers.noble ??= new CachingVerifier(new NobleVerifier());
  return { signer: createNobleSigner(secretKey), verifier: sharedVerifiers.noble };
}

export class PbftClient {
  readonly clientId: number;
  /** The keyring the client started from (epoch 0); `configuration` is the one in force. */
  readonly cluster: ClusterConfig;
  readonly timeoutMs: number;
  readonly retransmitMs: number;
  /** The wait before a request's first retransmission, from this client's accepted requests. */
  private readonly retransmits: RetransmitEstimator;
  private readonly repliers: ReplierChoice;
  readonly readTimeoutMs: number;
  private readonly log: Logger;
  private readonly acceptFirstReply: boolean;
  /** The configuration in force as far as the client knows, and when to ask for newer ones. */
  private readonly follower: MembershipFollower;
  /**
   * Asks for epoch proofs whose answer has not arrived, per replica: only solicited answers are
   * verified. A count, not a flag: two asks can be out at once (at connect and on the next request),
   * and the answer to the second (the one that may carry the new configuration) must not be dropped
   * as unasked once the first answer arrived.
   */
  private readonly epochsAsked = new Map<number, number>();
  /** Answers to `epochsreq` that carried a proof that did not verify. */
  private invalidProofAnswers = 0;
  /** The view the client believes the cluster is in (its primary is the member at view mod n). */
  private currentView = 0;
  private lastTimestamp = 0;
  private tail: Promise<unknown> = Promise.resolve();
  private pending: Pending | undefined;
  private pendingRead: PendingRead | undefined;
  private readsUnordered = 0;
  /** Ordered requests sent again to every replica at least once. */
  private requestsRetransmitted = 0;
  private readsFellBack = 0;
  private readonly settled = new Map<number, Settled>();
  /** The settled requests whose collectors are kept (the newest SETTLED_REPLIES_KEPT_MAX), oldest first. */
  private readonly keptReplies: Settled[] = [];
  /** The member ids and the collector's f of the configuration in force, computed once per configuration. */
  private memberCache: { config: MemberConfig; ids: ReadonlySet<number>; list: readonly number[]; replyFaults: number } | undefined;
  private readonly equivocations: ReplyEvidence[] = [];
  private equivocationsNotKept = 0;
  private readonly listeners = new Map<keyof PbftClientEvents, Set<(arg: never) => void>>();
  private closed = false;

  private constructor(
    cluster: ClusterConfig,
    clientId: number,
    private readonly requests: RequestSigner,
    private readonly transport: ClientTransport,
    options: { timeoutMs: number; retransmitMs: number; readTimeoutMs: number; log: Logger; acceptFirstReply: boolean; membershipRefreshMs: number; replies: RepliesMode },
  ) {
    this.cluster = cluster;
    this.clientId = clientId;
    this.timeoutMs = options.timeoutMs;
    this.retransmitMs = options.retransmitMs;
    this.retransmits = new RetransmitEstimator(options.retransmitMs, options.retransmitMs * RETRANSMIT_BACKOFF_MAX);
    this.readTimeoutMs = options.readTimeoutMs;
    this.log = options.log;
    this.acceptFirstReply = options.acceptFirstReply;
    this.repliers = new ReplierChoice(options.replies, clientId);
    this.follower = MembershipFollower.fromKeyring(cluster, requests.proofCrypto(), MEMBERSHIP_ASK_INTERVAL_MS, options.membershipRefreshMs);
    transport.onFrame((replica, frame) => this.onFrame(replica, frame));
    transport.onConnected((replica) => this.onConnected(replica));
  }

  /** f of the configuration in force: floor((n-1)/3). */
  private get f(): number {
    return this.follower.f;
  }

  /**
   * Loads the keyring entries, connects to the replicas and waits until f+1 members of the
   * configuration in force are connected: those of the keyring, or of a newer configuration learned
   * meanwhile from the first replicas that answered (so a client started from an old cluster.json
   * still connects when most of its replicas have left).
   */
  static async connect(options: PbftClientOptions): Promise<PbftClient> {
    const timeoutMs = positive('timeoutMs', options.timeoutMs ?? TIMEOUT_MS_DEFAULT);
    const retransmitMs = positive('retransmitMs', options.retransmitMs ?? RETRANSMIT_MS_DEFAULT);
    const readTimeoutMs = positive('readTimeoutMs', options.readTimeoutMs ?? READ_TIMEOUT_MS_DEFAULT);
    const connectTimeoutMs = positive('connectTimeoutMs', options.connectTimeoutMs ?? timeoutMs);
    const membershipRefreshMs = positive('membershipRefreshMs', options.membershipRefreshMs ?? MEMBERSHIP_REFRESH_MS_DEFAULT);
    const replies = options.replies ?? 'quorum';
    if (!REPLIES_MODES.includes(replies)) throw new ClientConfigError(`replies must be one of ${REPLIES_MODES.join(', ')}, got ${String(replies)}`);
    const log = (options.log ?? silentLogger).child({ component: 'client' });
    const cluster = await loadClusterOption(options.cluster);
    const key = await loadKeyOption(options.key, cluster);
    const { signer, verifier, hash } = await loadCrypto(options.crypto ?? 'auto', key.secretKey);
    // The operator signs membership changes as the reserved client OPERATOR_CLIENT (membership.ts).
    // A replica sends its own QUIT as its replica principal: the replicas check that key (the
    // keyring may not name it: it joined later).
    const entry =
      key.id === OPERATOR_CLIENT && cluster.operatorKey
        ? { id: key.id, publicKey: cluster.operatorKey }
        : replicaOfPrincipal(key.id) !== undefined
          ? { id: key.id, publicKey: signer.publicKey }
          : cluster.clients.find((c) => c.id === key.id);
    if (entry === undefined) throw new ClientConfigError(`client ${key.id} is not in the keyring of cluster "${cluster.clusterId}"`);
    if (!bytesEqual(entry.publicKey, signer.publicKey)) {
      throw new ClientConfigError(`the key of client ${key.id} does not match its entry in the keyring of cluster "${cluster.clusterId}"`);
    }
    const transport = (options.createTransport ?? createClientTransport)({
      cluster,
      clientId: key.id,
      signer,
      verifier,
      log,
      ...(options.transportLimits !== undefined ? { limits: options.transportLimits } : {}),
      ...(options.WebSocketImpl !== undefined ? { WebSocketImpl: options.WebSocketImpl } : {}),
    });
    const requests = new RequestSigner(cluster, key.id, signer, verifier, hash);
    // Built before any connection opens, so that every connection is asked for newer configurations.
    const client = new PbftClient(cluster, key.id, requests, transport, {
      timeoutMs,
      retransmitMs,
      readTimeoutMs,
      log,
      acceptFirstReply: options.unsafeTestOnly?.acceptFirstReply === true,
      membershipRefreshMs,
      replies,
    });
    try {
      await client.waitForMembers(Date.now() + connectTimeoutMs, connectTimeoutMs);
    } catch (err) {
      await client.close();
      throw new ConnectError(`cannot reach the cluster: ${err instanceof Error ? err.message : String(err)}`);
    }
    return client;
  }

  /** Until f+1 members of the configuration in force are connected (it may change meanwhile). */
  private async waitForMembers(deadline: number, waitedMs: number): Promise<void> {
    for (;;) {
      if (this.closed) throw new ClientClosedError();
      if (this.transport.connectedReplicas().filter((id) => this.follower.isMember(id)).length >= this.f + 1) return;
      if (Date.now() >= deadline) {
        // The transport names the replicas it could not reach.
        await this.transport.waitConnected(this.f + 1, 0, waitedMs);
        throw new Error(`fewer than ${this.f + 1} replicas of epoch ${this.follower.epoch} connected`);
      }
      await new Promise((resolve) => setTimeout(resolve, Math.min(CONNECT_POLL_MS, Math.max(1, deadline - Date.now()))));
    }
  }

  // ----------------------------------------------------------------------------------------------
  // Events

  on<E extends keyof PbftClientEvents>(event: E, listener: PbftClientEvents[E]): this {
    if (!EVENTS.includes(event)) throw new TypeError(`unknown event ${String(event)}`);
    let set = this.listeners.get(event);
    if (set === undefined) this.listeners.set(event, (set = new Set()));
    set.add(listener as (arg: never) => void);
    return this;
  }

  off<E extends keyof PbftClientEvents>(event: E, listener: PbftClientEvents[E]): this {
    this.listeners.get(event)?.delete(listener as (arg: never) => void);
    return this;
  }

  private emit<E extends keyof PbftClientEvents>(event: E, arg: Parameters<PbftClientEvents[E]>[0]): void {
    for (const listener of [...(this.listeners.get(event) ?? [])]) {
      try {
        (listener as (a: typeof arg) => void)(arg);
      } catch (err) {
        this.log.error(`${event} listener threw`, { err });
      }
    }
  }

  private emitFaulty(evidence: FaultyReplyEvidence): void {
    this.log.warn('replica sent a reply that differs from the accepted result', { replica: evidence.replica, timestamp: evidence.reply.msg.timestamp });
    this.emit('faulty-reply', evidence);
  }

  // ----------------------------------------------------------------------------------------------
  // Key-value operations (src/app/kv-ops.ts)

  async put(key: string, value: Value): Promise<void> {
    await this.kv({ type: 'put', key, value }, 'put');
  }

  /**
   * The value of `key` (null when absent), as a read-only request: one round trip to every replica,
   * accepted on 2f+1 matching answers, else sent ordered (see invokeReadOnly). Linearizable.
   */
  async get(key: string): Promise<Value | null> {
    const r = await this.kv({ type: 'get', key }, 'get');
    return r.value;
  }

  /** Deletes the key; true when it existed. */
  async del(key: string): Promise<boolean> {
    const r = await this.kv({ type: 'del', key }, 'del');
    return r.existed;
  }

  /** Sets `next` (null deletes) if the current value equals `expected` (null = absent). */
  async cas(key: string, expected: Value | null, next: Value | null): Promise<CasResult> {
    const r = await this.kv({ type: 'cas', key, expected, next }, 'cas');
    return { swapped: r.swapped, current: r.current };
  }

  /**
   * Writes every pair in one request (a bulk load: one signature and one agreement slot for up to
   * PUT_MANY_ENTRIES_MAX = 4,096 pairs), applied in order, all or none: a pair over a key or value
   * limit fails the whole operation with that KvError and changes nothing. A TypeError for a count
   * outside 1..4,096 or a malformed pair, RequestTooLargeError when the pairs exceed the request
   * limit (OP_BYTES_MAX, about 1 MiB): nothing is sent then.
   */
  async putMany(entries: ReadonlyArray<readonly [string, Value]>): Promise<void> {
    await this.kvEncoded(encodePutMany(entries), 'put-many', 'put', false);
  }

  private kv<T extends Exclude<KvResult['type'], 'error'>>(op: KvOp, type: T): Promise<Extract<KvResult, { type: T }>> {
    return this.kvEncoded(encodeOp(op), op.type, type, op.type === 'get');
  }

  private async kvEncoded<T extends Exclude<KvResult['type'], 'error'>>(encoded: Uint8Array, name: string, type: T, readOnly: boolean): Promise<Extract<KvResult, { type: T }>> {
    const bytes = await (readOnly ? this.invokeReadOnly(encoded) : this.invoke(encoded));
    const decoded = decodeResult(bytes);
    if (!decoded.ok) throw new UnexpectedResultError(`the agreed result of ${name} is not a key-value result: ${decoded.reason}`, bytes);
    const result = decoded.value;
    if (result.type === 'error') throw new KvError(result.code, result.message);
    if (result.type !== type) throw new UnexpectedResultError(`the agreed result of ${name} is a ${result.type} result`, bytes);
    return result as Extract<KvResult, { type: T }>;
  }

  // ----------------------------------------------------------------------------------------------
  // Requests

  /** Executes an application operation; resolves with the result f+1 replicas agreed on. */
  invoke(op: Uint8Array): Promise<Uint8Array> {
    if (this.closed) return Promise.reject(new ClientClosedError());
    const run = this.tail.then(() => this.execute(op));
    this.tail = run.catch(() => undefined);
    return run;
  }

  /**
   * Executes an operation the state machine declares read-only (StateMachine.isReadOnly; the
   * key-value store's get) without ordering it: signed as a READ and sent to every replica, each
   * answers from its own committed state once it has executed everything it had prepared; the
   * result is accepted once 2f+1 members of the configuration in force (Quorum.reads) sent matching
   * signed answers naming its epoch. Otherwise (answers that disagree, e.g. with a concurrent write;
   * a refusal; a newer epoch; no quorum within readTimeoutMs) the operation is sent as an ordered
   * request with a fresh timestamp, within what is left of timeoutMs: a 'read-fallback' event says
   * why. Either way the result is linearizable (README, "Read-only requests").
   */
  invokeReadOnly(op: Uint8Array): Promise<Uint8Array> {
    if (this.closed) return Promise.reject(new ClientClosedError());
    const run = this.tail.then(() => this.executeReadOnly(op));
    this.tail = run.catch(() => undefined);
    return run;
  }

  /**
   * How ordered requests got their replies: the `replies` mode, the requests that had to be sent to
   * every replica again (no f+1 matching replies in time), and the replicas left out of the repliers
   * for now because they did not answer when named (src/client/repliers.ts): a replica that stays
   * there is worth a look.
   */
  get replyStats(): { mode: RepliesMode; retransmitted: number; leftOut: number[] } {
    return { mode: this.repliers.mode, retransmitted: this.requestsRetransmitted, leftOut: this.repliers.suspected() };
  }

  /** Read-only requests answered unordered, and those that fell back to an ordered request. */
  get readStats(): { unordered: number; fellBack: number } {
    return { unordered: this.readsUnordered, fellBack: this.readsFellBack };
  }

  private async executeReadOnly(op: Uint8Array): Promise<Uint8Array> {
    if (this.closed) throw new ClientClosedError();
    if (op.length > OP_BYTES_MAX) throw new RequestTooLargeError(op.length, OP_BYTES_MAX);
    const startedAt = Date.now();
    this.askEpochs(false);
    const outcome = await this.readUnordered(op);
    if (outcome.kind === 'closed') throw new ClientClosedError();
    if (outcome.kind === 'accepted') {
      this.readsUnordered++;
      return outcome.result;
    }
    this.readsFellBack++;
    const remainingMs = this.timeoutMs - (Date.now() - startedAt);
    // (A read has no effect: at the deadline nothing is left to wait for.)
    if (remainingMs <= 0) throw new TimeoutError(this.timeoutMs, [], outcome.timestamp);
    return this.execute(op, remainingMs);
  }

  /** One unordered attempt: sends the READ to every replica and collects the answers (ReadCollector). */
  private readUnordered(op: Uint8Array): Promise<Parameters<PendingRead['done']>[0]> {
    const timestamp = this.nextTimestamp();
    const read = this.requests.signRead(timestamp, op);
    // (The negative control acceptFirstReply takes the first answer here too.)
    const quorum = this.acceptFirstReply ? 1 : quorumFor(this.follower.n, this.f, {}, this.follower.model).reads;
    return new Promise((resolve) => {
      const collector = new ReadCollector(this.follower.members, quorum, this.follower.epoch, this.clientId, timestamp, (r) => this.requests.verifyReadReply(r));
      const r: PendingRead = {
        timestamp,
        read,
        collector,
        done: (outcome) => {
          if (this.pendingRead !== r) return;
          this.pendingRead = undefined;
          if (r.timer !== undefined) clearTimeout(r.timer);
          if (outcome.kind === 'fallback') {
            const fallback: ReadFallback = { timestamp, reason: outcome.reason, answered: [...collector.replies.keys()].sort((a, b) => a - b), refused: [...collector.refusedBy].sort((a, b) => a - b) };
            this.log.debug('read-only request falls back to an ordered request', { ...fallback });
            this.emit('read-fallback', fallback);
          }
          resolve(outcome);
        },
      };
      this.pendingRead = r;
      const sent = this.transport.broadcast(encodeSignedFrame(read));
      if (sent < quorum) return r.done({ kind: 'fallback', reason: 'unreachable', timestamp });
      r.timer = setTimeout(() => r.done({ kind: 'fallback', reason: 'timeout', timestamp }), Math.min(this.readTimeoutMs, this.timeoutMs));
    });
  }

  /** Settles the outstanding read-only request once its collector accepted a result or found none possible. */
  private concludeRead(r: PendingRead, outcome: ReadOutcome): void {
    if (outcome.kind === 'accepted') r.done({ kind: 'accepted', result: outcome.result });
    else if (outcome.kind === 'failed') r.done({ kind: 'fallback', reason: outcome.reason, timestamp: r.timestamp });
  }

  private nextTimestamp(): number {
    const t = Math.max(Date.now() * 1000, this.lastTimestamp + 1);
    this.lastTimestamp = t;
    return t;
  }

  private execute(op: Uint8Array, timeoutMs = this.timeoutMs): Promise<Uint8Array> {
    if (this.closed) return Promise.reject(new ClientClosedError());
    // The replicas would refuse it (src/core/limits.ts): say so without signing or sending anything.
    if (op.length > OP_BYTES_MAX) return Promise.reject(new RequestTooLargeError(op.length, OP_BYTES_MAX));
    this.askEpochs(false);
    const timestamp = this.nextTimestamp();
    const members = this.memberView();
    const request = this.requests.sign(timestamp, op, this.chooseRepliers(members.replyFaults + 1));
    const frame = encodeSignedFrame(request);
    return new Promise<Uint8Array>((resolve, reject) => {
      const p: Pending = {
        timestamp,
        request,
        frame,
        refusals: undefined,
        collector: new ReplyCollector(members.ids, members.replyFaults, this.clientId, timestamp, this.verifyReply),
        attempt: 0,
        sentAt: Date.now(),
        resolve,
        reject,
      };
      this.pending = p;
      if (!this.transport.send(this.primary, frame)) this.transport.broadcast(frame);
      this.scheduleRetransmit(p);
      p.deadlineTimer = setTimeout(() => {
        if (this.pending !== p) return;
        this.finish(p);
        // Named replicas that answered at all were not silent; the others are left out for a while.
        this.repliers.settled(request.msg.repliers, new Set(p.collector.replies.keys()), timestamp);
        p.reject(new TimeoutError(this.timeoutMs, [...p.collector.replies.values()], timestamp));
      }, timeoutMs);
    });
  }

  /**
   * The repliers of the next request (src/client/repliers.ts), among the members whose connection is
   * open: a replica that is down is not named, so its absence costs no retransmission.
   */
  private chooseRepliers(needed: number): number[] | undefined {
    if (this.repliers.mode === 'all') return undefined;
    const transport = this.transport;
    const connected = transport.isConnected === undefined ? transport.connectedReplicas() : undefined;
    const reachable = (id: number): boolean => (connected === undefined ? transport.isConnected!(id) : connected.includes(id));
    return this.repliers.choose(this.memberView().list, this.primary, needed, reachable);
  }

  private scheduleRetransmit(p: Pending): void {
    const delayMs = Math.min(this.retransmits.timeoutMs * 2 ** p.attempt, this.retransmitMs * RETRANSMIT_BACKOFF_MAX);
    p.retransmitTimer = setTimeout(() => {
      if (this.pending !== p) return;
      p.attempt++;
      if (p.attempt === 1) this.requestsRetransmitted++;
      // No result yet: perhaps the members changed (the ones it sends to left, or there are new ones).
      this.askEpochs(true);
      const sent = this.transport.broadcast(p.frame);
      this.log.debug('retransmitted request to every replica', { timestamp: p.timestamp, attempt: p.attempt, sent });
      this.scheduleRetransmit(p);
    }, delayMs);
  }

  private finish(p: Pending): void {
    if (p.retransmitTimer !== undefined) clearTimeout(p.retransmitTimer);
    if (p.deadlineTimer !== undefined) clearTimeout(p.deadlineTimer);
    if (this.pending === p) this.pending = undefined;
  }

  private onFrame(replica: number, bytes: Uint8Array): void {
    const decoded = decodeFrame(bytes);
    if (!decoded.ok) return;
    const frame = decoded.value;
    if (frame.kind === 'link') {
      if (frame.msg.type === 'epochs') this.onEpochs(replica, frame.msg.proofs);
      return;
    }
    // Something from a replica the client does not know: a configuration it has not learned yet.
    if (!this.follower.isMember(replica)) this.askEpochs(true);
    const refusal = refusalOf(frame);
    if (refusal !== undefined) return this.onRefusal(replica, refusal);
    const readReply = readReplyOf(frame);
    if (readReply !== undefined) return this.onReadReply(replica, readReply);
    const reply = replyOf(frame);
    if (reply === undefined) return;
    const p = this.pending;
    if (p !== undefined && reply.msg.timestamp === p.timestamp) {
      const outcome = p.collector.add(reply, replica);
      if (outcome.kind === 'ignored' && outcome.conflict !== undefined) this.equivocated(outcome.conflict);
      this.conclude(p, outcome);
      return;
    }
    // A reply for a request accepted already: still evidence if it differs. One that agrees with the
    // accepted result says nothing new, so its signature is not checked (the client verifies f+1
    // replies per request, not n); one that differs is evidence only with a valid signature.
    const settled = this.settled.get(reply.msg.timestamp);
    if (settled === undefined) return;
    const conflict = settled.collector?.conflictOf(reply, replica);
    if (conflict !== undefined) return this.equivocated(conflict);
    settled.collector?.noteLate(reply, replica);
    const m = reply.msg;
    // A named replica that missed the request but replies now was slow, not silent (repliers.ts).
    if (m.replica === replica && m.client === this.clientId && bytesEqual(m.result, settled.result)) this.repliers.answeredLate(replica, m.timestamp);
    if (settled.judged.has(replica)) return;
    if (m.replica !== replica || m.client !== this.clientId || bytesEqual(m.result, settled.result)) return;
    if (!this.requests.verifyReply(reply)) return;
    settled.judged.add(replica);
    this.emitFaulty({ replica, reply, accepted: settled.result });
  }

  /** Settles the outstanding request once its collector accepted a result or found none possible. */
  /**
   * The collector's f: it accepts f+1 matching replies, so this is Quorum.replies - 1 for the
   * configuration held (f in the byzantine mode, 0 in the crash mode: one reply), or 0 for the
   * acceptFirstReply negative control.
   */
  private memberView(): { ids: ReadonlySet<number>; list: readonly number[]; replyFaults: number } {
    const config = this.follower.config;
    if (this.memberCache?.config !== config) {
      const list = this.follower.members;
      this.memberCache = { config, ids: new Set(list), list, replyFaults: this.replyFaults() };
    }
    return this.memberCache;
  }

  /** RequestSigner.verifyReply, bound once (a collector per request holds it). */
  private readonly verifyReply = (reply: AnyReply): boolean => this.requests.verifyReply(reply);

  private replyFaults(): number {
    return this.acceptFirstReply ? 0 : quorumFor(this.follower.n, this.f, {}, this.follower.model).replies - 1;
  }

  private conclude(p: Pending, outcome: CollectOutcome): void {
    if (outcome.kind === 'accepted') {
      this.finish(p);
      if (p.attempt === 0) this.retransmits.sample(Date.now() - p.sentAt);
      else this.retransmits.retransmitted();
      if (outcome.view > this.currentView) this.currentView = outcome.view;
      this.repliers.settled(p.request.msg.repliers, new Set(outcome.replicas), p.timestamp);
      const settled: Settled = { result: outcome.result, judged: new Set(p.collector.replies.keys()), collector: p.collector };
      this.remember(p.timestamp, settled);
      p.resolve(outcome.result);
      for (const dissent of p.collector.dissenters(outcome.result)) {
        this.emitFaulty({ replica: dissent.msg.replica, reply: dissent, accepted: outcome.result });
      }
    } else if (outcome.kind === 'failed') {
      this.finish(p);
      this.repliers.settled(p.request.msg.repliers, NONE, p.timestamp);
      p.reject(new QuorumFailure([...p.collector.replies.values()], p.timestamp, this.f + 1));
    }
  }

  // ----------------------------------------------------------------------------------------------
  // Membership (src/client/follow.ts)

  /** Asks every connected replica for the proofs after the client's epoch, if due (see follow.ts). */
  private askEpochs(urgent: boolean): void {
    if (this.closed || !this.follower.shouldAsk(Date.now(), urgent)) return;
    const frame = this.follower.request();
    for (const id of this.transport.connectedReplicas()) if (this.transport.send(id, frame)) this.notedAsk(id);
  }

  /**
   * A connection opened (a reconnection, or a replica of a newer configuration): ask it for newer
   * configurations, and hand it the outstanding request if that was already broadcast (a joined
   * replica's reply may be what the request still lacks; the retransmission would come later).
   */
  private onConnected(replica: number): void {
    this.askEpochsOf(replica);
    const p = this.pending;
    if (p !== undefined && p.attempt > 0) this.transport.send(replica, p.frame);
  }

  /** Asks one replica (whatever the throttle says: one frame per connection). */
  private askEpochsOf(replica: number): void {
    if (this.closed || !this.follower.canChange) return;
    if (!this.transport.send(replica, this.follower.request())) return;
    this.notedAsk(replica);
    this.follower.noteAsked(Date.now());
  }

  /** One more ask out to `replica` (at most EPOCHS_ASKS_OUT_MAX counted: a replica that never answers costs nothing more). */
  private notedAsk(replica: number): void {
    this.epochsAsked.set(replica, Math.min(EPOCHS_ASKS_OUT_MAX, (this.epochsAsked.get(replica) ?? 0) + 1));
  }

  /** An answer from `replica`: true (and one ask fewer) when one was out. */
  private takeAsk(replica: number): boolean {
    const out = this.epochsAsked.get(replica);
    if (out === undefined) return false;
    if (out <= 1) this.epochsAsked.delete(replica);
    else this.epochsAsked.set(replica, out - 1);
    return true;
  }

  /**
   * An answer to `epochsreq`. Only answers the client asked for are verified (an unasked flood of
   * proofs would only cost signature checks); each proof is checked against the configuration
   * before it, so the sender need not be trusted. A proof that does not verify is reported and
   * the answer's valid prefix kept.
   */
  private onEpochs(replica: number, proofs: EpochProof[]): void {
    if (!this.takeAsk(replica)) return;
    const outcome = this.follower.offer(proofs);
    if (outcome.invalid !== undefined) {
      this.invalidProofAnswers++;
      this.log.warn('replica sent an epoch proof that does not verify', { replica, reason: outcome.invalid });
      this.emit('invalid-epoch-proof', { replica, reason: outcome.invalid });
    }
    if (outcome.previous !== undefined) this.enter(outcome.previous, outcome.config);
    if (outcome.more) this.askEpochs(true);
  }

  /** The client now holds configuration `next`: keys, connections, n, f and the outstanding request follow it. */
  private enter(previous: MemberConfig, next: MemberConfig): void {
    const before = new Set(previous.replicas.map((r) => r.id));
    const ids = next.replicas.map((r) => r.id);
    this.requests.setReplicas(next.replicas);
    this.transport.setReplicas(next.replicas);
    for (const id of [...this.epochsAsked.keys()]) if (!ids.includes(id)) this.epochsAsked.delete(id);
    const change: MembershipChange = {
      epoch: next.epoch,
      previousEpoch: previous.epoch,
      replicas: ids,
      added: ids.filter((id) => !before.has(id)),
      removed: [...before].filter((id) => !ids.includes(id)),
      clientRegistered: this.follower.hasClient(this.clientId),
    };
    this.log.info('following a new configuration', { ...change });
    if (!change.clientRegistered) this.log.warn('this client is not registered in the configuration in force: replicas will refuse its requests', { epoch: next.epoch });
    // A read judged by the old configuration's quorum and epoch: sent ordered instead.
    if (this.pendingRead !== undefined) this.pendingRead.done({ kind: 'fallback', reason: 'membership', timestamp: this.pendingRead.timestamp });
    const p = this.pending;
    if (p !== undefined) {
      // Judged by the new configuration alone from now on (ReplyCollector.rebase says why).
      const request = p.request;
      if (p.refusals?.rebase(ids, this.f, (r) => this.requests.verifyRefusal(r, request))) {
        this.finish(p);
        p.reject(new RequestTooLargeError(request.msg.op.length, OP_BYTES_MAX, [...p.refusals.refusedBy].sort((a, b) => a - b)));
      } else {
        this.conclude(p, p.collector.rebase(ids, this.replyFaults()));
      }
    }
    this.emit('membership', change);
  }

  /** An answer to a read-only request: counted if it is the outstanding one's. */
  private onReadReply(replica: number, reply: Signed<ReadReplyMsg>): void {
    const r = this.pendingRead;
    if (r === undefined || reply.msg.timestamp !== r.timestamp) return;
    const outcome = r.collector.add(reply, replica);
    // A replica whose state is of a newer configuration: learn it (the read falls back meanwhile).
    if (reply.msg.epoch > this.follower.epoch && outcome.kind !== 'ignored') this.askEpochs(true);
    this.concludeRead(r, outcome);
  }

  /** f+1 valid refusals of the outstanding request: at least one correct replica will never order it. */
  private onRefusal(replica: number, refusal: Signed<RefusalMsg>): void {
    const r = this.pendingRead;
    if (r !== undefined && refusal.msg.timestamp === r.timestamp) {
      // A read-only request refused (not read-only for this state machine): it is sent ordered.
      if (refusal.msg.replica === replica && this.requests.verifyRefusal(refusal, r.read)) this.concludeRead(r, r.collector.refuse(replica));
      return;
    }
    const p = this.pending;
    if (p === undefined) return;
    const request = p.request;
    p.refusals ??= new RefusalCollector(this.f, this.clientId, p.timestamp, (r) => this.requests.verifyRefusal(r, request));
    if (!p.refusals.add(refusal, replica)) return;
    this.finish(p);
    p.reject(new RequestTooLargeError(p.request.msg.op.length, refusal.msg.limit, [...p.refusals.refusedBy].sort((a, b) => a - b)));
  }

  private remember(timestamp: number, settled: Settled): void {
    this.settled.set(timestamp, settled);
    if (this.settled.size > SETTLED_REMEMBERED_MAX) {
      const oldest = this.settled.keys().next().value;
      if (oldest !== undefined) this.settled.delete(oldest);
    }
    // Replies are kept for the newest few only (bounded memory: a result can be megabytes). Each
    // settled request comes with its collector, so the newest few are the last few remembered.
    if (settled.collector !== undefined) this.keptReplies.push(settled);
    if (this.keptReplies.length > SETTLED_REPLIES_KEPT_MAX) this.keptReplies.shift()!.collector = undefined;
  }

  /**
   * A replica signed two different results for one of our requests: evidence (both replies are
   * verified again with the keys in force, whose epoch the evidence names). Kept, reported, logged.
   */
  private equivocated(conflict: readonly [AnyReply, AnyReply]): void {
    const [a, b] = conflict;
    if (!this.requests.verifyReply(a) || !this.requests.verifyReply(b)) return;
    const evidence = replyEvidence(a, b, this.follower.epoch);
    if (this.equivocations.length < EVIDENCE_KEPT_MAX) this.equivocations.push(evidence);
    else this.equivocationsNotKept++;
    this.log.warn('replica signed two different results for one request: kept as evidence', { replica: evidence.signer, timestamp: evidence.timestamp });
    this.emit('equivocation', evidence);
  }

  /** Reply equivocations seen (the first EVIDENCE_KEPT_MAX), oldest first. */
  evidence(): ReplyEvidence[] {
    return [...this.equivocations];
  }

  /** Equivocations seen once EVIDENCE_KEPT_MAX were kept (reported by the event, not kept). */
  get evidenceNotKept(): number {
    return this.equivocationsNotKept;
  }

  /**
   * The evidence as the file `pbft evidence verify FILE --cluster cluster.json` checks (JSON; write
   * it with JSON.stringify), with the epoch proofs a verifier needs for keys of later configurations.
   */
  evidenceFile(): EvidenceFileJson {
    return evidenceFileJson(this.cluster.clusterId, this.equivocations.map((evidence) => ({ evidence, reportedBy: `client ${this.clientId}` })), this.follower.proofs);
  }

  /** The view the client believes the cluster is in (learned from accepted replies). */
  get view(): number {
    return this.currentView;
  }

  /** The replica the client sends new requests to first: the member at view mod n, ids ascending. */
  get primary(): number {
    return this.follower.primaryOf(this.currentView);
  }

  /** The epoch of the configuration in force as far as the client knows (0: the keyring's). */
  get epoch(): number {
    return this.follower.epoch;
  }

  /** Member replica ids of that configuration, ascending (not necessarily 0..n-1). */
  get members(): number[] {
    return this.follower.members;
  }

  /** That configuration: replicas (id, URL, key), clients, the checkpoint after which it orders. */
  get configuration(): MemberConfig {
    return this.follower.config;
  }

  /** Answers to `epochsreq` that carried a proof that did not verify (also 'invalid-epoch-proof' events). */
  get invalidEpochProofs(): number {
    return this.invalidProofAnswers;
  }

  /** Replica ids with an open connection. */
  connectedReplicas(): number[] {
    return this.transport.connectedReplicas();
  }

  /** Fails the outstanding and queued requests with ClientClosedError and closes the connections. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.pendingRead?.done({ kind: 'closed' });
    const p = this.pending;
    if (p !== undefined) {
      this.finish(p);
      p.reject(new ClientClosedError());
    }
    this.listeners.clear();
    this.epochsAsked.clear();
    await this.transport.close();
  }
}
