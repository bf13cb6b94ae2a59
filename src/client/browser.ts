/**
 * The client SDK for browsers (the package's `pbft-kv/browser`): PbftClient over the browser's
 * WebSocket, signing with @noble/ed25519. No module it reaches, statically or through import(),
 * imports a node:* module (checked by test/client/static-imports.test.ts), so
 * `esbuild --bundle --platform=browser` needs no externals or shims.
 *
 *   import { PbftClient, clusterFromJson, clientKeyFromJson } from 'pbft-kv/browser';
 *   const cluster = clusterFromJson(await (await fetch('/cluster.json')).json());
 *   const key = clientKeyFromJson(keyFileJson, cluster);   // the parsed client-<id>.key
 *   const client = await PbftClient.connect({ cluster, key });
 *
 * `cluster` and `key` must be objects here (a path is refused with BAD_CONFIG). A client key is a
 * secret: a page holding one can act as that client; give each user or device its own client id.
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
} from './pbft-client.ts';
export { clientKeyFromJson, clusterFromJson } from './config.ts';
export type { ReadFallbackReason } from './collector.ts';
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
