/**
 * The package's server entry (`pbft-kv/server`): run replicas from your own program, with the
 * built-in key-value store or your own deterministic state machine.
 *
 *   import { ReplicaNode, loadIdentity, createLogger } from 'pbft-kv/server';
 *   const { cluster, key } = loadIdentity('keys', 'replica', 0);
 *   const node = new ReplicaNode({ cluster, id: 0, secretKey: key.secretKey, dataDir: 'data/replica-0',
 *                                  log: createLogger(), app: new MyStateMachine() });
 *   await node.start();
 *
 * RocksStorage (the default storage) needs the `rocksdb` package, an optional peer dependency:
 * `npm install pbft-kv rocksdb`. It is loaded when a RocksStorage opens, not when this module is
 * imported, so a replica on MemoryStorage (tests) runs without it.
 */
export {
  ReplicaNode,
  ReplicaNodeError,
  TICK_MS_DEFAULT,
  type NodeStatus,
  type ReplicaNodeDeps,
  type ReplicaNodeErrorCode,
  type ReplicaNodeOptions,
} from './node/replica-node.ts';
export { runReplicaProcess, type ReplicaProcessOptions } from './node/replica-process.ts';
export { asReplicatedApp, type ExecuteContext, type PartitionedState, type ReplicatedApp, type Result, type StateMachine } from './app/types.ts';
export { KvStore, type KvStoreOptions } from './app/kv.ts';
export { decodeOp, decodePutMany, decodeResult, encodeOp, encodePutMany, encodeResult, PUT_MANY_ENTRIES_MAX, type KvOp, type KvPutMany, type KvResult, type Value } from './app/kv-ops.ts';
export { DEFAULT_REPLICA_OPTIONS, type ReplicaOptions } from './core/options.ts';
export type { ClientInfo, ClusterConfig, ReplicaInfo } from './core/cluster.ts';
export { StorageError, type KeyRange, type Storage, type WriteOp } from './storage/types.ts';
export { MemoryStorage } from './storage/memory.ts';
export { RocksStorage, type RocksStorageOptions } from './storage/rocksdb.ts';
export {
  CLUSTER_FILE,
  generateKeyring,
  keyFileName,
  KeyringError,
  loadCluster,
  loadIdentity,
  loadPrivateKey,
  parseCluster,
  serializeCluster,
  type GenerateKeyringOptions,
  type KeyringErrorCode,
  type PrivateKey,
} from './crypto/keyring.ts';
export { DEFAULT_TRANSPORT_LIMITS, type TransportLimits } from './transport/types.ts';
export { createLogger, silentLogger, type Logger, type LoggerOptions, type LogLevel } from './util/log.ts';
