/**
 * A deterministic in-memory cluster: n production Replica cores, a simulated network, simulated
 * disks (synced at every turn, as the shell does) and simulated clients, all driven by one seeded PRNG.
 * The same seed gives the same run, bit for bit.
 */
import { KvStore } from '../app/kv.ts';
import type { ClusterConfig } from '../core/cluster.ts';
import { Replica, type CoreEvent, type Ready } from '../core/replica.ts';
import type { ReplicaOptions } from '../core/options.ts';
import type { Signer } from '../crypto/types.ts';
import type { KeyRange, WriteOp } from '../storage/types.ts';
import type { Behavior } from './byzantine.ts';
import { Checker } from './checkers.ts';
import { SimClient, type KvOp } from './client.ts';
import { coreCrypto, SimKeyring } from './crypto.ts';
import { SimNetwork, type NetworkFaults, CALM_NETWORK } from './network.ts';
import { Prng } from './prng.ts';
import { inflateRawSync, deflateRawSync } from 'node:zlib';

export interface SimOptions {
  seed: number;
  f: number;
  clients: number;
  requestsPerClient: number;
  /** Distinct keys the clients use (small: more conflicts). */
  keySpace: number;
  partitionCount: number;
  replica: Partial<ReplicaOptions>;
  network: NetworkFaults;
  clientTimeoutTicks: number;
  /** Compress state-transfer chunks with zlib (as the shell does) or not. */
  compress: boolean;
  /** Negative controls: a deliberately broken commit quorum at every replica. */
  unsafeCommitQuorum?: number;
  /** Client workload: the op of client c's i-th request (default: random ops over keySpace). */
  workload?: (client: number, index: number) => KvOp;
}

export const DEFAULT_SIM_OPTIONS: SimOptions = {
  seed: 1,
  f: 1,
  clients: 4,
  requestsPerClient: 20,
  keySpace: 8,
  partitionCount: 16,
  replica: { checkpointInterval: 8, windowSize: 16, viewChangeTimeoutTicks: 120, retransmitTicks: 20, catchUpTicks: 25, fetchTimeoutTicks: 40 },
  network: CALM_NETWORK,
  clientTimeoutTicks: 60,
  compress: false,
};

/** A simulated durable disk: a sorted map written in whole turns (the shell syncs every turn). */
export class SimDisk {
  readonly data = new Map<string, Uint8Array>();
  apply(writes: WriteOp[], clears: KeyRange[]): void {
    for (const w of writes) {
      if (w.type === 'put') this.data.set(w.key, w.value);
      else this.data.delete(w.key);
    }
    for (const range of clears) {
      for (const key of [...this.data.keys()]) {
        if ((range.gte === undefined || key >= range.gte) && (range.lt === undefined || key < range.lt)) this.data.delete(key);
      }
    }
  }
  entries(): Array<[string, Uint8Array]> {
    return [...this.data.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  }
}

export interface Host {
  id: number;
  signer: Signer;
  disk: SimDisk;
  replica?: Replica;
  /** A second instance with the same key (Twins): receives from `twinPeers`, the first from the rest. */
  twin?: Replica;
  twinPeers?: Set<number>;
  twinDisk?: SimDisk;
  app?: KvStore;
  byzantine?: Behavior;
  incarnation: number;
  crashes: number;
  /** Crash at the end of the next turn, after its writes are durable but before anything is sent. */
  crashAfterPersist?: boolean;
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

  constructor(options: Partial<SimOptions> = {}) {
    this.opts = { ...DEFAULT_SIM_OPTIONS, ...options, replica: { ...DEFAULT_SIM_OPTIONS.replica, ...options.replica } };
    this.prng = new Prng(this.opts.seed);
    this.net = new SimNetwork(this.prng.fork());
    this.net.faults = this.opts.network;
    this.n = 3 * this.opts.f + 1;
    const keyPrng = this.prng.fork();
    const replicaSigners = Array.from({ length: this.n }, () => this.keys.newKey(keyPrng));
    const clientSigners = Array.from({ length: this.opts.clients + 2 }, () => this.keys.newKey(keyPrng));
    this.cluster = {
      clusterId: `sim-${this.opts.seed}`,
      f: this.opts.f,
      replicas: replicaSigners.map((s, id) => ({ id, url: `sim://${id}`, publicKey: s.publicKey })),
      clients: clientSigners.map((s, id) => ({ id, publicKey: s.publicKey })),
    };
    this.clientNodeBase = this.n;
    this.checker = new Checker((client, ts) => {
      const single = this.clients[client]?.issued.get(ts) ?? this.extraIssued.get(client)?.get(ts);
      return single ? [single] : this.extraIssuedAlternatives.get(`${client}:${ts}`);
    });
    for (let id = 0; id < this.n; id++) {
      const host: Host = { id, signer: replicaSigners[id]!, disk: new SimDisk(), incarnation: 0, crashes: 0 };
      this.hosts.push(host);
      this.boot(host);
    }
    const clientPrng = this.prng.fork();
    for (let c = 0; c < this.opts.clients; c++) {
      this.clients.push(
        new SimClient(c, this.clientNodeBase + c, this.cluster, clientSigners[c]!, this.keys.verifier, clientPrng.fork(), this.opts.requestsPerClient, this.opts.clientTimeoutTicks, this.opts.keySpace, this.opts.workload),
      );
    }
    // Two spare client identities for byzantine clients.
    this.spareClientSigners = clientSigners.slice(this.opts.clients);
  }

  readonly spareClientSigners: Signer[];

  count(kind: string, by = 1): void {
    this.faults[kind] = (this.faults[kind] ?? 0) + by;
  }

  private newReplica(host: Host, disk: SimDisk): { replica: Replica; app: KvStore } {
    const app = new KvStore({ partitionCount: this.opts.partitionCount });
    const replica = new Replica(this.cluster, host.id, this.opts.replica, {
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
      unsafeTestOnly: this.opts.unsafeCommitQuorum ? { commitQuorum: this.opts.unsafeCommitQuorum } : undefined,
    });
    replica.now = this.now;
    replica.recover(disk.entries());
    return { replica, app };
  }

  private boot(host: Host): void {
    const { replica, app } = this.newReplica(host, host.disk);
    host.replica = replica;
    host.app = app;
    host.incarnation++;
    this.handleReady(host, replica, replica.flush(), host.disk);
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
    host.twin = this.newReplica(host, host.twinDisk).replica;
    this.count('twins');
  }

  crash(id: number): void {
    const host = this.hosts[id]!;
    if (!host.replica) return;
    host.replica = undefined;
    host.app = undefined;
    host.crashes++;
    this.count('crash');
  }

  /** Crashes replica `id` after its next turn is persisted and before that turn sends anything. */
  crashAfterPersist(id: number): void {
    const host = this.hosts[id]!;
    if (host.replica) host.crashAfterPersist = true;
  }

  restart(id: number): void {
    const host = this.hosts[id]!;
    if (host.replica) return;
    this.count('restart');
    this.boot(host);
  }

  /** Wipes a crashed replica's disk (a new machine, or a lost data directory). */
  wipe(id: number): void {
    const host = this.hosts[id]!;
    host.disk.data.clear();
    this.checker.resetProgress(id);
    this.count('wipe');
  }

  private nodeOfClient(c: number): number {
    return this.clientNodeBase + c;
  }

  /** Sends from a replica host (possibly through its byzantine behaviour). */
  sendFromReplica(from: number, to: number, frame: Uint8Array): void {
    this.net.send(this.now, from, to, frame);
  }

  private handleReady(host: Host, replica: Replica, ready: Ready, disk: SimDisk): void {
    disk.apply(ready.writes, ready.clears);
    let { messages, replies } = ready;
    if (host.byzantine) ({ messages, replies } = host.byzantine.outgoing(this, host, replica, messages, replies));
    const isTwin = replica === host.twin;
    for (const m of messages) {
      if (host.twin && host.twinPeers!.has(m.to) !== isTwin) continue;
      this.net.send(this.now, host.id, m.to, m.frame);
    }
    for (const r of replies) {
      if (r.client < this.clients.length) this.net.send(this.now, host.id, this.nodeOfClient(r.client), r.frame);
    }
    for (const event of ready.events) this.onEvent(host, replica, event);
    if (this.isCorrect(host.id)) this.checker.onProgress(host.id, replica.view, replica.lastExecuted, replica.status().transferring, this.now);
  }

  private onEvent(host: Host, replica: Replica, event: CoreEvent): void {
    if (this.keepEvents) this.events.push({ replica: host.id, tick: this.now, event });
    const correct = this.isCorrect(host.id);
    switch (event.type) {
      case 'executed':
        if (correct) this.checker.onExecuted(host.id, event.seq, event.digest, event.requests, this.now);
        break;
      case 'view-entered':
        if (correct) this.viewChanges++;
        break;
      case 'state-diverged':
        if (correct) this.checker.violation('correctness', 'divergence', `replica ${host.id} diverged at ${event.seq}`, this.now);
        break;
      case 'state-transfer-completed':
        this.count('state-transfer');
        break;
      default:
        break;
    }
    void replica;
  }

  /** One tick: deliver due messages, tick every replica, flush, let clients act. */
  step(): void {
    this.now++;
    for (const m of this.net.due(this.now)) this.deliver(m.from, m.to, m.bytes);
    for (const host of this.hosts) {
      for (const replica of [host.replica, host.twin]) {
        if (!replica) continue;
        const disk = replica === host.twin ? host.twinDisk! : host.disk;
        try {
          replica.tick();
          if (host.byzantine) host.byzantine.tick?.(this, host, replica);
          if (host.crashAfterPersist && replica === host.replica) {
            const ready = replica.flush();
            disk.apply(ready.writes, ready.clears);
            host.crashAfterPersist = false;
            this.crash(host.id);
            this.count('crash-after-persist');
            continue;
          }
          this.handleReady(host, replica, replica.flush(), disk);
        } catch (err) {
          this.onCrashError(host, err);
        }
      }
    }
    for (const c of this.clients) c.tick(this.now, (to, frame) => this.net.send(this.now, c.node, to, frame));
  }

  private onCrashError(host: Host, err: unknown): void {
    if (this.isCorrect(host.id)) {
      this.checker.violation('crash', 'exception', `replica ${host.id}: ${err instanceof Error ? err.stack ?? err.message : String(err)}`, this.now);
    }
    host.replica = undefined;
    host.twin = undefined;
  }

  deliver(from: number, to: number, bytes: Uint8Array): void {
    if (to >= this.clientNodeBase) {
      const c = this.clients[to - this.clientNodeBase];
      if (c && from < this.n) c.onFrame(this.now, from, bytes);
      return;
    }
    const host = this.hosts[to];
    if (!host) return;
    const source = from < this.n ? { kind: 'replica' as const, id: from } : { kind: 'client' as const, id: from - this.clientNodeBase };
    let target = host.replica;
    if (host.twin && from < this.n && host.twinPeers!.has(from)) target = host.twin;
    if (!target) return;
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

  allClientsDone(): boolean {
    return this.clients.every((c) => c.done);
  }

  correctReplicas(): Replica[] {
    return this.hosts.filter((h) => this.isCorrect(h.id) && h.replica).map((h) => h.replica!);
  }
}
