/**
 * Four ReplicaNodes in the test process (real transport on 127.0.0.1, real ed25519), each with an
 * in-memory Storage wrapped so that tests can observe and fail writes, and a transport wrapped so
 * that tests can observe sends. Fatal errors are recorded instead of exiting the process.
 */
import type { ClusterConfig } from '../../src/core/cluster.ts';
import { DEFAULT_REPLICA_OPTIONS, type ReplicaOptions } from '../../src/core/options.ts';
import { decodeHorizon } from '../../src/core/horizon.ts';
import { decodeFrame } from '../../src/codec/messages.ts';
import { createNodeSigner } from '../../src/crypto/node.ts';
import type { CryptoChoice } from '../../src/crypto/index.ts';
import { randomSecretKey } from '../../src/crypto/noble.ts';
import { ReplicaNode, type ReplicaNodeHooks } from '../../src/node/replica-node.ts';
import { MemoryStorage } from '../../src/storage/memory.ts';
import { StorageError, type KeyRange, type Storage, type WriteOp } from '../../src/storage/types.ts';
import { createReplicaTransport } from '../../src/transport/replica-transport.ts';
import type { ReplicaTransport } from '../../src/transport/types.ts';
import { createLogger, silentLogger, type LogLevel } from '../../src/util/log.ts';
import { freePorts } from '../../src/transport/free-ports.ts';

/** 'send-vote': a PRE-PREPARE or PREPARE, which waits only for the horizon covering it (durability.ts, rule 1a). */
export type EffectEvent = 'write-begin' | 'write-end' | 'clear' | 'send' | 'send-vote' | 'reply';

/** A Storage that forwards everything to another (tests override what they watch or change). */
export class ForwardingStorage implements Storage {
  constructor(readonly inner: Storage) {}
  open(): Promise<void> {
    return this.inner.open();
  }
  close(): Promise<void> {
    return this.inner.close();
  }
  write(ops: WriteOp[], options: { sync: boolean }): Promise<void> {
    return this.inner.write(ops, options);
  }
  get(key: string): Promise<Uint8Array | undefined> {
    return this.inner.get(key);
  }
  scan(range: KeyRange): Promise<Array<[string, Uint8Array]>> {
    return this.inner.scan(range);
  }
  async forEach(range: KeyRange, onEntry: (key: string, value: Uint8Array) => void): Promise<void> {
    if (this.inner.forEach !== undefined) return this.inner.forEach(range, onEntry);
    for (const [key, value] of await this.inner.scan(range)) onEntry(key, value);
  }
  clear(range: KeyRange): Promise<void> {
    return this.inner.clear(range);
  }
  count(range: KeyRange): Promise<number> {
    return this.inner.count(range);
  }
  readHorizon(): Promise<Uint8Array | undefined> {
    return this.inner.readHorizon();
  }
  writeHorizon(bytes: Uint8Array): Promise<void> {
    return this.inner.writeHorizon(bytes);
  }
  get damage(): string | undefined {
    return this.inner.damage;
  }
}

/** A Storage that records the order of writes and can be told to fail. */
export class ObservedStorage extends ForwardingStorage {
  failWrites = false;
  /** Delay of every write, so that a send racing a write would be seen between begin and end. */
  writeDelayMs = 2;
  constructor(
    inner: Storage,
    readonly events: EffectEvent[],
  ) {
    super(inner);
  }
  /** What is durable: the protocol's records (log, votes, view state), mirrored synchronously. */
  readonly durable = new Map<string, Uint8Array>();

  override async write(ops: WriteOp[], options: { sync: boolean }): Promise<void> {
    this.events.push('write-begin');
    if (!options.sync) throw new Error('ReplicaNode must write with sync: true');
    await new Promise((resolve) => setTimeout(resolve, this.writeDelayMs));
    if (this.failWrites) throw new StorageError('WRITE_FAILED', 'injected write failure');
    await this.inner.write(ops, options);
    for (const op of ops) {
      if (!/^(l|m|c\/v)\//.test(op.key)) continue;
      if (op.type === 'put') this.durable.set(op.key, op.value);
      else this.durable.delete(op.key);
    }
    this.events.push('write-end');
  }

  /** The horizon record as last written (view, stable checkpoint). */
  horizon: { view: number; stable: number } | undefined;

  override async writeHorizon(bytes: Uint8Array): Promise<void> {
    await this.inner.writeHorizon(bytes);
    const h = decodeHorizon(bytes);
    if (h.ok) this.horizon = { view: h.value.view, stable: h.value.stable };
  }

  /** True when some durable protocol record contains these bytes (e.g. a signature). */
  holds(bytes: Uint8Array): boolean {
    for (const value of this.durable.values()) if (Buffer.from(value.buffer, value.byteOffset, value.byteLength).indexOf(bytes) >= 0) return true;
    return false;
  }

  override async clear(range: KeyRange): Promise<void> {
    this.events.push('clear');
    await this.inner.clear(range);
    for (const key of [...this.durable.keys()]) {
      if ((range.gte === undefined || key >= range.gte) && (range.lt === undefined || key < range.lt)) this.durable.delete(key);
    }
  }
}

export interface InProcessReplica {
  node: ReplicaNode;
  storage: ObservedStorage;
  events: EffectEvent[];
  /** Signed messages of this replica, checked at the moment they were handed to the transport. */
  sentOwnSigned: number;
  /** Those that were not yet durable when sent (must stay empty). */
  sentBeforeDurable: string[];
  fatal: unknown[];
  hooks: ReplicaNodeHooks;
}

export class InProcessCluster {
  readonly replicas: InProcessReplica[] = [];
  private constructor(
    readonly cluster: ClusterConfig,
    readonly ports: number[],
    readonly replicaSecrets: Uint8Array[],
    readonly clientSecrets: Map<number, Uint8Array>,
  ) {}

  /** `crypto(id)`: replica id's ed25519 backend (default: the ReplicaNode default, auto); `replicaOverrides[id]`: its options on top of `replica`. */
  static async create(
    options: { replica?: Partial<ReplicaOptions>; replicaOverrides?: Record<number, Partial<ReplicaOptions>>; clients?: number; crypto?: (id: number) => CryptoChoice } = {},
  ): Promise<InProcessCluster> {
    const ports = await freePorts(4);
    const replicaSecrets = ports.map(() => randomSecretKey());
    const clientIds = Array.from({ length: options.clients ?? 3 }, (_, i) => i);
    const clientSecrets = new Map(clientIds.map((id) => [id, randomSecretKey()]));
    const cluster: ClusterConfig = {
      clusterId: `inprocess-${ports[0]}`,
      f: 1,
      replicas: ports.map((port, id) => ({ id, url: `ws://127.0.0.1:${port}`, publicKey: createNodeSigner(replicaSecrets[id]!).publicKey })),
      clients: clientIds.map((id) => ({ id, publicKey: createNodeSigner(clientSecrets.get(id)!).publicKey })),
    };
    const c = new InProcessCluster(cluster, ports, replicaSecrets, clientSecrets);
    for (let id = 0; id < 4; id++) {
      const events: EffectEvent[] = [];
      const fatal: unknown[] = [];
      const hooks: ReplicaNodeHooks = {};
      const storage = new ObservedStorage(new MemoryStorage(), events);
      const replica: InProcessReplica = { node: undefined as unknown as ReplicaNode, storage, events, fatal, hooks, sentOwnSigned: 0, sentBeforeDurable: [] };
      const windowSize = options.replica?.windowSize ?? DEFAULT_REPLICA_OPTIONS.windowSize;
      /** Records the send; a PRE-PREPARE or PREPARE must be covered by the horizon, anything else held by the disk. */
      const checkDurable = (frame: Uint8Array): void => {
        const d = decodeFrame(frame);
        const msg = d.ok && d.value.kind === 'signed' ? d.value.signed.msg : undefined;
        const vote = msg?.type === 'preprepare' || msg?.type === 'prepare';
        events.push(vote ? 'send-vote' : 'send');
        if (!d.ok || d.value.kind !== 'signed' || msg === undefined) return;
        if (msg.type === 'request' || msg.type === 'reply' || msg.type === 'refusal' || msg.type === 'read' || msg.type === 'readreply' || msg.replica !== id) return;
        replica.sentOwnSigned++;
        if (msg.type === 'preprepare' || msg.type === 'prepare') {
          const h = storage.horizon;
          if (h === undefined || h.view < msg.view || msg.seq > h.stable + windowSize) replica.sentBeforeDurable.push(`${msg.type} ${msg.seq} (horizon ${JSON.stringify(h)})`);
        } else if (!storage.holds(d.value.signed.sig)) replica.sentBeforeDurable.push(`${msg.type} ${'seq' in msg ? msg.seq : msg.view}`);
      };
      const node = new ReplicaNode(
        {
          cluster,
          id,
          secretKey: replicaSecrets[id]!,
          dataDir: `(memory ${id})`,
          // PBFT_TEST_LOG_LEVEL=info shows the replicas' logs on stderr (to explain a failure).
          log: process.env.PBFT_TEST_LOG_LEVEL
            ? createLogger({ level: process.env.PBFT_TEST_LOG_LEVEL as LogLevel, format: 'text', fields: { replica: id } })
            : silentLogger,
          hooks,
          ...(options.replica !== undefined || options.replicaOverrides?.[id] !== undefined ? { replica: { ...options.replica, ...options.replicaOverrides?.[id] } } : {}),
          ...(options.crypto !== undefined ? { crypto: options.crypto(id) } : {}),
        },
        {
          storage,
          onFatal: (err) => fatal.push(err),
          createTransport: (opts): ReplicaTransport => {
            const t = createReplicaTransport(opts);
            return {
              ...t,
              sendToReplica(to, frame) {
                checkDurable(frame);
                t.sendToReplica(to, frame);
              },
              sendToClient(client, frame) {
                events.push('reply');
                return t.sendToClient(client, frame);
              },
            };
          },
        },
      );
      replica.node = node;
      c.replicas.push(replica);
    }
    await Promise.all(c.replicas.map((r) => r.node.start()));
    return c;
  }

  clientKey(id: number): { id: number; secretKey: Uint8Array } {
    return { id, secretKey: this.clientSecrets.get(id)! };
  }

  async stop(): Promise<void> {
    await Promise.all(this.replicas.map((r) => r.node.stop()));
  }
}
