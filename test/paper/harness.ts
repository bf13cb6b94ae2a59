/**
 * Test harness for the paper tests: drives real `Replica` cores one message at a time.
 *
 * Everything a test sends is signed here with the key of the principal that must have signed it
 * (the same domain tag as the core: `domainTag(clusterId, type) || body`), framed with the wire
 * codec and fed through `Replica.receive`. What a replica emits (`flush()`) is decoded back into
 * typed messages with their recipients, so that tests assert on observable behaviour only.
 */
import { RequestSigner, refusalOf, replyOf } from '../../src/client/request.ts';
import { createHash } from 'node:crypto';
import { KvStore } from '../../src/app/kv.ts';
import { decodeResult, encodeOp, type KvOp, type KvResult } from '../../src/app/kv-ops.ts';
import { decodeFrame, encodeLinkFrame, encodeSignedFrame, encodeBody, FRAME_CODEC } from '../../src/codec/messages.ts';
import { Authenticator, concatBytes, domainTag } from '../../src/core/auth.ts';
import { batchDigest } from '../../src/core/batch.ts';
import type { ClusterConfig } from '../../src/core/cluster.ts';
import type {
  CheckpointCert,
  CheckpointMsg,
  CommitMsg,
  LinkMessage,
  NewViewMsg,
  PreparedCert,
  PrepareMsg,
  PrePrepareMsg,
  ReadMsg,
  ReadReplyMsg,
  RefusalMsg,
  AnyReply,
  RequestMsg,
  Signed,
  SignedMessage,
  SignedType,
  SuspectMsg,
  ViewChangeMsg,
} from '../../src/core/messages.ts';
import type { ReplicaOptions } from '../../src/core/options.ts';
import { advance, encodeHorizon, type Horizon } from '../../src/core/horizon.ts';
import { KEYS } from '../../src/core/persist.ts';
import { quorumFor } from '../../src/core/quorum.ts';
import type { RejectReason } from '../../src/core/rejections.ts';
import { Replica, type CoreEvent, type Ready } from '../../src/core/replica.ts';
import { planNewView, type QuorumContext } from '../../src/core/newview.ts';
import { createNodeSigner, NodeVerifier } from '../../src/crypto/node.ts';
import type { Signer, Verifier } from '../../src/crypto/types.ts';
import { coreCrypto, sha256, SimKeyring } from '../../src/sim/crypto.ts';
import { Prng } from '../../src/sim/prng.ts';

export type MsgOf<K extends SignedType> = Extract<SignedMessage, { type: K }>;
type ReplicaSigned = Exclude<SignedMessage, RequestMsg | ReadMsg>;

export interface ClusterSpec {
  f?: number;
  /** Real ed25519 (node:crypto) instead of the simulator's fast stand-in signatures. */
  real?: boolean;
  clients?: number;
  seed?: number;
  options?: Partial<ReplicaOptions>;
  partitionCount?: number;
}

/**
 * The wall clock every test replica reads (Replica.setClockMs) and the batch time every pre-prepare
 * the harness signs carries, unless a test says otherwise: with both equal, every batch time is
 * within the backups' bounds and never goes back, so tests of other rules need not think of it.
 */
export const PAPER_TIME_MS = 1_700_000_000_000;

/** Small options: a checkpoint every 4, a window of 8; timers that do not fire unless a test ticks on purpose. */
export const SMALL_OPTIONS: Partial<ReplicaOptions> = {
  checkpointInterval: 4,
  windowSize: 8,
  viewChangeTimeoutTicks: 10,
  viewChangeTimeoutTicksMax: 10_000,
  retransmitTicks: 100_000,
  catchUpTicks: 100_000,
  fetchTimeoutTicks: 100_000,
};

/** One message a replica sent, decoded. */
export interface Sent {
  to: number;
  bytes: Uint8Array;
  signed?: Signed;
  batch?: Signed<RequestMsg>[];
  link?: LinkMessage;
}

export interface SentReply {
  client: number;
  bytes: Uint8Array;
  /** Signed on its own (one request executed), or proven by a signed batch root and a path. */
  signed: AnyReply;
}

/** The decoded effects of one flush. */
export class Out {
  readonly sent: Sent[];
  readonly replies: SentReply[];
  readonly refusals: Array<{ client: number; signed: Signed<RefusalMsg> }>;
  /** Answers to read-only requests (src/core/reads.ts). */
  readonly readReplies: Array<{ client: number; signed: Signed<ReadReplyMsg>; seq: number; after: number }>;
  readonly events: CoreEvent[];
  constructor(readonly ready: Ready) {
    this.sent = ready.messages.map((m) => {
      const d = decodeFrame(m.frame);
      if (!d.ok) throw new Error(`replica sent an undecodable frame: ${d.reason}`);
      const frame = d.value;
      if (frame.kind === 'link') return { to: m.to, bytes: m.frame, link: frame.msg };
      if (frame.kind === 'reply') throw new Error('replica sent a client reply to a replica');
      const s: Sent = { to: m.to, bytes: m.frame, signed: frame.signed };
      if (frame.batch) s.batch = frame.batch;
      return s;
    });
    this.replies = [];
    this.refusals = [];
    this.readReplies = [];
    for (const r of ready.replies) {
      const d = decodeFrame(r.frame);
      if (d.ok && d.value.kind === 'signed' && d.value.signed.msg.type === 'readreply') {
        this.readReplies.push({ client: r.client, signed: d.value.signed as Signed<ReadReplyMsg>, seq: r.seq, after: r.after });
        continue;
      }
      const refusal = d.ok ? refusalOf(d.value) : undefined;
      if (refusal) {
        this.refusals.push({ client: r.client, signed: refusal });
        continue;
      }
      const reply = d.ok ? replyOf(d.value) : undefined;
      if (!reply) throw new Error('replica sent a client something that is neither a REPLY nor a REFUSAL');
      this.replies.push({ client: r.client, bytes: r.frame, signed: reply });
    }
    this.events = ready.events;
  }

  /** Every signed message of this type that left, one entry per recipient. */
  of<K extends SignedType>(type: K): Array<{ to: number; signed: Signed<MsgOf<K>>; batch?: Signed<RequestMsg>[] }> {
    const out: Array<{ to: number; signed: Signed<MsgOf<K>>; batch?: Signed<RequestMsg>[] }> = [];
    for (const s of this.sent) {
      if (s.signed && s.signed.msg.type === type) {
        const e: { to: number; signed: Signed<MsgOf<K>>; batch?: Signed<RequestMsg>[] } = { to: s.to, signed: s.signed as Signed<MsgOf<K>> };
        if (s.batch) e.batch = s.batch;
        out.push(e);
      }
    }
    return out;
  }

  /** The distinct messages of this type (by body), each with the sorted list of recipients. */
  distinct<K extends SignedType>(type: K): Array<{ signed: Signed<MsgOf<K>>; to: number[]; batch?: Signed<RequestMsg>[] }> {
    const byBody = new Map<string, { signed: Signed<MsgOf<K>>; to: number[]; batch?: Signed<RequestMsg>[] }>();
    for (const e of this.of(type)) {
      const key = hex(e.signed.body) + ':' + hex(e.signed.sig);
      let g = byBody.get(key);
      if (!g) {
        g = { signed: e.signed, to: [] };
        if (e.batch) g.batch = e.batch;
        byBody.set(key, g);
      }
      g.to.push(e.to);
    }
    for (const g of byBody.values()) g.to.sort((a, b) => a - b);
    return [...byBody.values()];
  }

  links<K extends LinkMessage['type']>(type: K): Array<{ to: number; msg: Extract<LinkMessage, { type: K }> }> {
    const out: Array<{ to: number; msg: Extract<LinkMessage, { type: K }> }> = [];
    for (const s of this.sent) if (s.link && s.link.type === type) out.push({ to: s.to, msg: s.link as Extract<LinkMessage, { type: K }> });
    return out;
  }

  eventsOf<K extends CoreEvent['type']>(type: K): Array<Extract<CoreEvent, { type: K }>> {
    return this.events.filter((e): e is Extract<CoreEvent, { type: K }> => e.type === type);
  }

  /** Concatenation of several outputs (e.g. over many ticks). */
  static merge(outs: Out[]): Out {
    const last = outs.at(-1)?.ready;
    const ready: Ready = { index: last?.index ?? 0, writes: [], clears: [], messages: [], replies: [], events: [], horizon: last?.horizon ?? { view: 0, stable: 0, executed: 0 } };
    for (const o of outs) {
      ready.writes.push(...o.ready.writes);
      ready.clears.push(...o.ready.clears);
      ready.messages.push(...o.ready.messages);
      ready.replies.push(...o.ready.replies);
      ready.events.push(...o.ready.events);
    }
    return new Out(ready);
  }
}

export function hex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
}

export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.compare(Buffer.from(a), Buffer.from(b)) === 0;
}

/** An in-memory durable store fed with every flush's writes (then clears), as the shell does. */
export class Disk {
  readonly data = new Map<string, Uint8Array>();
  /** The horizon record (src/core/horizon.ts), rewritten with every flush as the pipeline would. */
  horizon?: Horizon;
  apply(ready: Ready): void {
    this.horizon = advance(this.horizon, ready.horizon);
    for (const w of ready.writes) {
      if (w.type === 'put') this.data.set(w.key, new Uint8Array(w.value));
      else this.data.delete(w.key);
    }
    for (const r of ready.clears) {
      for (const key of [...this.data.keys()]) {
        if ((r.gte === undefined || key >= r.gte) && (r.lt === undefined || key < r.lt)) this.data.delete(key);
      }
    }
  }
  entries(): Array<[string, Uint8Array]> {
    return [...this.data.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  }
}

/** A replica under test: the core, its application and its disk. */
export class Node {
  constructor(
    readonly keys: TestCluster,
    readonly id: number,
    readonly replica: Replica,
    readonly app: KvStore,
    readonly disk: Disk,
    readonly options: Partial<ReplicaOptions>,
  ) {}

  /** Sets the replica's wall clock (ms since the Unix epoch), as the shell does every turn. */
  clock(ms: number): this {
    this.replica.setClockMs(ms);
    return this;
  }

  /** A frame from replica `from` (over its authenticated link). */
  fromReplica(from: number, bytes: Uint8Array): this {
    this.replica.receive({ kind: 'replica', id: from }, bytes);
    return this;
  }

  /** A frame from a client's connection. */
  fromClient(client: number, bytes: Uint8Array): this {
    this.replica.receive({ kind: 'client', id: client }, bytes);
    return this;
  }

  /** Flushes, makes the writes durable on this node's disk, and decodes what left. */
  flush(): Out {
    const ready = this.replica.flush();
    this.disk.apply(ready);
    return new Out(ready);
  }

  /** `count` ticks, flushing after each (as the shell's loop does); returns the outputs per tick. */
  tick(count = 1): Out[] {
    const outs: Out[] = [];
    for (let i = 0; i < count; i++) {
      this.replica.tick();
      outs.push(this.flush());
    }
    return outs;
  }

  /**
   * Ticks like `tick`, with the other backups' timers running alike (PBFT's setting: a client whose
   * request is not served broadcasts it, so every correct backup waits for it): whenever this node
   * sends a SUSPECT for view v, f other backups of v send theirs. Returns every flush's output.
   */
  tickWithPeers(count = 1): Out[] {
    const outs: Out[] = [];
    for (let i = 0; i < count; i++) {
      this.replica.tick();
      const out = this.flush();
      outs.push(out);
      for (const s of out.distinct('suspect')) {
        const view = s.signed.msg.view;
        const others = this.keys.backups(view).filter((b) => b !== this.id).slice(0, this.keys.f);
        for (const b of others) this.fromReplica(b, frame(this.keys.suspect(b, view)));
        outs.push(this.flush());
      }
    }
    return outs;
  }

  /** A fresh Replica and KvStore rebuilt from this node's disk (a crash and restart). */
  /**
   * A fresh Replica and KvStore rebuilt from this node's disk (a crash and restart). `records` replaces
   * what the disk holds (damage); the horizon record is the disk's unless given; `options` change
   * the replica's options from now on.
   */
  restart(stored: { records?: Map<string, Uint8Array>; horizon?: Horizon | null; damage?: string; options?: Partial<ReplicaOptions>; streamed?: boolean } = {}): { node: Node; out: Out } {
    const app = new KvStore({ partitionCount: this.app.partitionCount });
    const options = stored.options ? { ...this.options, ...stored.options } : this.options;
    const replica = this.keys.newCore(this.id, app, options);
    replica.setClockMs(this.replica.clockMs ?? PAPER_TIME_MS);
    const records = stored.records ?? this.disk.data;
    const horizon = stored.horizon === null ? undefined : (stored.horizon ?? this.disk.horizon);
    const sorted = [...records.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1));
    const storedMarks = { ...(horizon ? { horizon: encodeHorizon(horizon) } : {}), ...(stored.damage ? { damage: stored.damage } : {}) };
    if (stored.streamed) {
      // As the replica shell does (src/node/disk.ts): the records outside the partitions, then their
      // records, then the partition keys in key order, one at a time, then the second step.
      const step = replica.beginRecovery(sorted.filter(([key]) => !key.startsWith(KEYS.partitionPrefix) && !key.startsWith(KEYS.recordPrefix)));
      if (step.partitions) {
        for (const [key, value] of sorted) if (key.startsWith(KEYS.recordPrefix)) step.partitions.addRecord(key, value);
        for (const [key, value] of sorted) if (key.startsWith(KEYS.partitionPrefix)) step.partitions.add(key, value);
      }
      replica.finishRecovery(step, storedMarks);
    } else replica.recover(sorted, storedMarks);
    const disk = new Disk();
    for (const [k, v] of records) disk.data.set(k, v);
    if (horizon) disk.horizon = horizon;
    const node = new Node(this.keys, this.id, replica, app, disk, options);
    return { node, out: node.flush() };
  }

  rejected(reason: RejectReason): number {
    return this.replica.rejected.get(reason) ?? 0;
  }
}

/**
 * A cluster's keys: n = 3f+1 replicas and some clients, each with its own signer, and the
 * ClusterConfig every replica is built from. Builds replicas and signs messages as any principal.
 */
export class TestCluster {
  readonly f: number;
  readonly n: number;
  readonly cluster: ClusterConfig;
  readonly replicaSigners: Signer[];
  readonly clientSigners: Signer[];
  readonly verifier: Verifier;
  readonly options: Partial<ReplicaOptions>;
  readonly partitionCount: number;
  readonly nullDigest: Uint8Array;
  /** The replicas' ed25519 secret keys (only with `real`: a ReplicaNode needs them). */
  readonly replicaSecretKeys: Uint8Array[] = [];
  private genesisCert?: CheckpointCert;

  constructor(spec: ClusterSpec = {}) {
    this.f = spec.f ?? 1;
    this.n = 3 * this.f + 1;
    const clients = spec.clients ?? 4;
    const seed = spec.seed ?? 7;
    this.options = { ...SMALL_OPTIONS, ...spec.options };
    this.partitionCount = spec.partitionCount ?? 4;
    if (spec.real) {
      // Deterministic ed25519 secret keys derived from the seed.
      const secret = (label: string): Uint8Array => new Uint8Array(createHash('sha256').update(`paper-${seed}-${label}`).digest());
      this.replicaSecretKeys = Array.from({ length: this.n }, (_, i) => secret(`replica-${i}`));
      this.replicaSigners = this.replicaSecretKeys.map((k) => createNodeSigner(k));
      this.clientSigners = Array.from({ length: clients }, (_, i) => createNodeSigner(secret(`client-${i}`)));
      this.verifier = new NodeVerifier();
    } else {
      const ring = new SimKeyring();
      const prng = new Prng(seed);
      this.replicaSigners = Array.from({ length: this.n }, () => ring.newKey(prng));
      this.clientSigners = Array.from({ length: clients }, () => ring.newKey(prng));
      this.verifier = ring.verifier;
    }
    this.cluster = {
      clusterId: `paper-${seed}`,
      f: this.f,
      replicas: this.replicaSigners.map((s, id) => ({ id, url: `test://${id}`, publicKey: s.publicKey })),
      clients: this.clientSigners.map((s, id) => ({ id, publicKey: s.publicKey })),
    };
    this.nullDigest = batchDigest(sha256, [], 0);
  }

  newCore(id: number, app: KvStore, options: Partial<ReplicaOptions> = this.options): Replica {
    return new Replica(this.cluster, id, options, {
      frames: FRAME_CODEC,
      crypto: coreCrypto(this.replicaSigners[id]!, this.verifier),
      app,
      compress: (d) => d,
      decompress: (d, max) => (d.length <= max ? d : undefined),
    });
  }

  /** A fresh replica (genesis state) with a KvStore of `partitionCount` partitions. */
  node(id: number, extra: Partial<ReplicaOptions> = {}): Node {
    const options = { ...this.options, ...extra };
    const app = new KvStore({ partitionCount: this.partitionCount });
    const core = this.newCore(id, app, options);
    core.setClockMs(PAPER_TIME_MS);
    return new Node(this, id, core, app, new Disk(), options);
  }

  primaryOf(view: number): number {
    return view % this.n;
  }

  /** The genesis checkpoint certificate (seq 0, the empty state's digest, no proof). */
  get genesis(): CheckpointCert {
    if (!this.genesisCert) {
      const probe = this.node(0);
      this.genesisCert = probe.replica.stable;
    }
    return this.genesisCert;
  }

  /** A QuorumContext for calling the pure view-change functions directly. */
  quorumContext(verifierId = 0): QuorumContext {
    const o = { ...this.options };
    const members = Array.from({ length: this.n }, (_, i) => i);
    return {
      epoch: 0,
      since: 0,
      members,
      isMember: (r) => r >= 0 && r < this.n,
      n: this.n,
      f: this.f,
      q: quorumFor(this.n, this.f),
      checkpointInterval: o.checkpointInterval ?? 128,
      windowSize: o.windowSize ?? 256,
      genesisDigest: this.genesis.digest,
      nullDigest: this.nullDigest,
      auth: new Authenticator(this.cluster, coreCrypto(this.replicaSigners[verifierId]!, this.verifier)),
    };
  }

  // --- signing --------------------------------------------------------------------------------

  /** Signs `msg` with replica `replica`'s key (whatever the body claims: forge by passing another id). */
  signAs<T extends ReplicaSigned>(replica: number, msg: T): Signed<T> {
    const body = encodeBody(msg);
    const sig = this.replicaSigners[replica]!.sign(concatBytes(domainTag(this.cluster.clusterId, msg.type), body));
    return { msg, body, sig };
  }

  /** A request signed by `client` (op: a KvOp, or raw bytes). */
  /** A request signed by `client`; `repliers` names the replicas asked to reply (absent: all). */
  request(client: number, timestamp: number, op: KvOp | Uint8Array, repliers?: number[]): Signed<RequestMsg> {
    const msg: RequestMsg = { type: 'request', client, timestamp, op: op instanceof Uint8Array ? op : encodeOp(op), ...(repliers !== undefined ? { repliers } : {}) };
    const body = encodeBody(msg);
    const sig = this.clientSigners[client]!.sign(concatBytes(domainTag(this.cluster.clusterId, 'request'), body));
    return { msg, body, sig };
  }

  /** A read-only request (src/core/reads.ts) signed by `client`. */
  read(client: number, timestamp: number, op: KvOp | Uint8Array): Signed<ReadMsg> {
    const msg: ReadMsg = { type: 'read', client, timestamp, op: op instanceof Uint8Array ? op : encodeOp(op) };
    const body = encodeBody(msg);
    const sig = this.clientSigners[client]!.sign(concatBytes(domainTag(this.cluster.clusterId, 'read'), body));
    return { msg, body, sig };
  }

  /** A request claiming to come from `client` but signed by `bySigner` (another client's key). */
  forgedRequest(client: number, bySigner: number, timestamp: number, op: KvOp): Signed<RequestMsg> {
    const msg: RequestMsg = { type: 'request', client, timestamp, op: encodeOp(op) };
    const body = encodeBody(msg);
    const sig = this.clientSigners[bySigner]!.sign(concatBytes(domainTag(this.cluster.clusterId, 'request'), body));
    return { msg, body, sig };
  }

  /** The digest of a batch proposed with `time` (default PAPER_TIME_MS). */
  digest(requests: readonly Signed<RequestMsg>[], time = PAPER_TIME_MS): Uint8Array {
    return batchDigest(sha256, requests, time);
  }

  /** A PRE-PREPARE; its time defaults to PAPER_TIME_MS, or 0 for the null digest (the null request of a NEW-VIEW). */
  prePrepare(view: number, seq: number, digest: Uint8Array, signer = this.primaryOf(view), claimed = signer, time?: number): Signed<PrePrepareMsg> {
    const t = time ?? (sameBytes(digest, this.nullDigest) ? 0 : PAPER_TIME_MS);
    return this.signAs(signer, { type: 'preprepare', view, seq, digest, replica: claimed, time: t });
  }

  prepare(from: number, view: number, seq: number, digest: Uint8Array): Signed<PrepareMsg> {
    return this.signAs(from, { type: 'prepare', view, seq, digest, replica: from });
  }

  suspect(from: number, view: number): Signed<SuspectMsg> {
    return this.signAs(from, { type: 'suspect', view, replica: from });
  }

  commit(from: number, view: number, seq: number, digest: Uint8Array): Signed<CommitMsg> {
    return this.signAs(from, { type: 'commit', view, seq, digest, replica: from });
  }

  checkpoint(from: number, seq: number, digest: Uint8Array, epoch = 0): Signed<CheckpointMsg> {
    return this.signAs(from, { type: 'checkpoint', seq, digest, replica: from, epoch });
  }

  viewChange(from: number, view: number, prepared: PreparedCert[] = [], checkpoint: CheckpointCert = this.genesis): Signed<ViewChangeMsg> {
    return this.signAs(from, { type: 'viewchange', view, replica: from, checkpoint, prepared });
  }

  newView(view: number, viewChanges: Signed<ViewChangeMsg>[], entries: Array<{ seq: number; digest: Uint8Array; time?: number }>, signer = this.primaryOf(view)): Signed<NewViewMsg> {
    const prePrepares = entries.map((e) => this.prePrepare(view, e.seq, e.digest, signer, signer, e.time));
    return this.signAs(signer, { type: 'newview', view, replica: signer, viewChanges, prePrepares });
  }

  /** A prepared certificate for (view, seq, digest): the primary's pre-prepare and prepares from `from` (default: the first 2f backups). */
  preparedCert(view: number, seq: number, digest: Uint8Array, from?: number[], time?: number): PreparedCert {
    const backups = from ?? this.backups(view).slice(0, 2 * this.f);
    const primary = this.primaryOf(view);
    return { prePrepare: this.prePrepare(view, seq, digest, primary, primary, time), prepares: backups.map((b) => this.prepare(b, view, seq, digest)) };
  }

  /** Replica ids other than the primary of `view`, ascending. */
  backups(view: number): number[] {
    const primary = this.primaryOf(view);
    return Array.from({ length: this.n }, (_, i) => i).filter((i) => i !== primary);
  }

  /** Verifies a reply (signed alone, or by its batch root and path) as a client does. */
  verifyReply(reply: AnyReply): boolean {
    return new RequestSigner(this.cluster, reply.msg.client, { publicKey: new Uint8Array(32), sign: () => new Uint8Array(64) }, this.verifier).verifyReply(reply);
  }

  /** Verifies any replica-signed message with the public key of the replica named in its body. */
  verifySigned(signed: Signed): boolean {
    const m = signed.msg;
    const id = m.type === 'request' || m.type === 'read' ? undefined : m.replica;
    const key = m.type === 'request' || m.type === 'read' ? this.cluster.clients.find((c) => c.id === m.client)?.publicKey : this.cluster.replicas[id!]?.publicKey;
    if (!key) return false;
    return this.verifier.verify(key, concatBytes(domainTag(this.cluster.clusterId, m.type), signed.body), signed.sig);
  }
}

// --- framing ----------------------------------------------------------------------------------

export function frame(signed: Signed, batch?: readonly Signed<RequestMsg>[]): Uint8Array {
  return encodeSignedFrame(signed, batch);
}

export function linkFrame(msg: LinkMessage): Uint8Array {
  return encodeLinkFrame(msg);
}

export function result(reply: AnyReply): KvResult {
  const r = decodeResult(reply.msg.result);
  if (!r.ok) throw new Error(`undecodable result: ${r.reason}`);
  return r.value;
}

// --- driving the normal case --------------------------------------------------------------------

/**
 * Brings (view, seq) to committed-local at `node` with the quorum of other replicas: the
 * pre-prepare (unless `node` is the primary and already proposed; its batch time `opts.time`,
 * default PAPER_TIME_MS), 2f matching prepares counting the node's own, and 2f+1 commits counting
 * the node's own. Returns the output of the last flush.
 */
export function agree(node: Node, view: number, seq: number, requests: Signed<RequestMsg>[], opts: { sendPrePrepare?: boolean; time?: number } = {}): Out {
  const k = node.keys;
  const primary = k.primaryOf(view);
  const digest = k.digest(requests, opts.time);
  const outs: Out[] = [];
  if (node.id !== primary && opts.sendPrePrepare !== false) {
    node.fromReplica(primary, frame(k.prePrepare(view, seq, digest, primary, primary, opts.time), requests));
  }
  const needed = 2 * k.f - (node.id === primary ? 0 : 1);
  for (const b of k.backups(view).filter((b) => b !== node.id).slice(0, needed)) node.fromReplica(b, frame(k.prepare(b, view, seq, digest)));
  outs.push(node.flush());
  const others = Array.from({ length: k.n }, (_, i) => i).filter((i) => i !== node.id);
  for (const r of others.slice(0, 2 * k.f)) node.fromReplica(r, frame(k.commit(r, view, seq, digest)));
  outs.push(node.flush());
  return Out.merge(outs);
}

/** The own CHECKPOINT a node emitted in `out` (undefined if none). */
export function ownCheckpoint(out: Out): Signed<CheckpointMsg> | undefined {
  return out.distinct('checkpoint')[0]?.signed;
}

export const put = (key: string, value: string): KvOp => ({ type: 'put', key, value });
export const get = (key: string): KvOp => ({ type: 'get', key });
export const cas = (key: string, expected: string | null, next: string | null): KvOp => ({ type: 'cas', key, expected, next });

/** All replica ids 0..n-1 except `self`. */
export function othersThan(n: number, self: number): number[] {
  return Array.from({ length: n }, (_, i) => i).filter((i) => i !== self);
}

export { sha256 };

/**
 * Moves a backup `node` into `view` with a valid NEW-VIEW from the view's primary, built on 2f+1
 * VIEW-CHANGEs that carry the genesis checkpoint and no prepared certificates.
 */
export function enterViewByNewView(node: Node, view: number): Out {
  const k = node.keys;
  const primary = k.primaryOf(view);
  if (primary === node.id) throw new Error('enterViewByNewView: the node is the primary of that view');
  const senders = [primary, ...othersThan(k.n, primary)].slice(0, 2 * k.f + 1);
  const nv = k.newView(
    view,
    senders.map((r) => k.viewChange(r, view)),
    [],
  );
  node.fromReplica(primary, frame(nv));
  return node.flush();
}

/** A NEW-VIEW for `view` whose pre-prepares are what `viewChanges` imply (planNewView), signed by `signer`. */
export function plannedNewView(k: TestCluster, view: number, viewChanges: Signed<ViewChangeMsg>[], signer = k.primaryOf(view)): Signed<NewViewMsg> {
  const plan = planNewView(
    viewChanges.map((v) => v.msg),
    k.quorumContext(),
  );
  return k.newView(view, viewChanges, plan.entries, signer);
}
