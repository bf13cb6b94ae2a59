/**
 * The package's main entry: the client SDK of the PBFT key-value store.
 *
 *   import { PbftClient, QuorumFailure } from 'pbft-kv';
 *   const client = await PbftClient.connect({ cluster: 'keys/cluster.json', key: 'keys/client-0.key' });
 *   await client.put('a', '1');
 *   const value = await client.get('a');
 *   await client.close();
 *
 * On Node, `cluster` and `key` may be file paths and signing uses node:crypto (client.ts). Its
 * static import graph has no node-only module (checked by test/client/static-imports.test.ts);
 * for browsers use the `pbft-kv/browser` entry (browser.ts), whose whole graph has none.
 */
export {
  PbftClient,
  READ_TIMEOUT_MS_DEFAULT,
  RETRANSMIT_MS_DEFAULT,
  TIMEOUT_MS_DEFAULT,
  type CasResult,
  type ClientKey,
  type CryptoChoice,
  type FaultyReplyEvidence,
  type InvalidEpochProof,
  type MembershipChange,
  type PbftClientEvents,
  type PbftClientOptions,
  type ReadFallback,
  verifyCacheStats,
} from './client.ts';
export { clientKeyFromJson, clusterFromJson } from './config.ts';
export {
  ClientClosedError,
  ClientConfigError,
  ConnectError,
  KvError,
  PbftClientError,
  QuorumFailure,
  RequestTooLargeError,
  TimeoutError,
  UnexpectedResultError,
  type PbftClientErrorCode,
} from './errors.ts';
export { ReadCollector, ReplyCollector, type CollectOutcome, type ReadFallbackReason, type ReadOutcome } from './collector.ts';
export { RequestSigner } from './request.ts';
export type { VerifyCacheStats } from '../crypto/verify-cache.ts';
export { OP_BYTES_MAX } from '../core/limits.ts';
export { decodeResult, encodeOp, encodeResult, decodeOp, type KvOp, type KvResult, type Value } from '../app/kv-ops.ts';
export type { ClusterConfig, ClientInfo, ReplicaInfo } from '../core/cluster.ts';
export type { MemberConfig } from '../core/membership.ts';
export type { AnyReply, ReplyMsg, RequestMsg, Signed } from '../core/messages.ts';
export type { Logger } from '../util/log.ts';
export {
  EvidenceVerifier,
  evidenceFileJson,
  parseEvidenceFile,
  EVIDENCE_FORMAT,
  EVIDENCE_VERSION,
  type Evidence,
  type EvidenceFileJson,
  type EvidenceVerdict,
  type ReplyEvidence,
  type VoteEvidence,
} from '../core/evidence.ts';
