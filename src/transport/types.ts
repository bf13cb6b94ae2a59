/**
 * Transport: moves opaque byte frames between authenticated principals over WebSocket.
 * It knows no PBFT: the replica shell and the client SDK decode frames themselves.
 *
 * One WebSocket port per replica serves both other replicas and clients. Every connection starts
 * with a signed handshake (see src/transport/handshake.ts) in which each side proves it holds the
 * private key of the principal it claims, and the cluster ids must match. After it, each WebSocket
 * binary message carries exactly one frame.
 */
import type { ClientInfo, ClusterConfig, ReplicaInfo } from '../core/cluster.ts';
import type { Signer, Verifier } from '../crypto/types.ts';
import type { Logger } from '../util/log.ts';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Principal, TransportLimits } from './portable.ts';

// The parts the client SDK uses live in portable.ts (no node:* types, so the SDK's declarations load without @types/node).
export { DEFAULT_TRANSPORT_LIMITS, TransportError, type Principal, type TransportLimits } from './portable.ts';

export interface TransportStats {
  framesIn: number;
  framesOut: number;
  bytesIn: number;
  bytesOut: number;
  /** Frames dropped because a queue was full or a frame exceeded frameBytesMax. */
  framesDropped: number;
  /** Open connections closed because nothing arrived on them for silenceMsMax (then redialed). */
  silentLinksClosed: number;
  /** Handshakes refused, by reason (e.g. 'cluster-mismatch', 'unknown-principal', 'bad-signature', 'timeout', 'malformed'). */
  handshakesRejected: Record<string, number>;
  /** Replica ids with an open authenticated outbound connection. */
  replicasConnected: number[];
  clientsConnected: number;
  /** Of framesIn and framesOut: those from and to clients (requests in; replies and refusals out). */
  clientFramesIn?: number;
  clientFramesOut?: number;
  /** Clients cut off (refuseClient) and handshakes refused because the client was cut off. */
  clientsCutOff?: number;
  cutOffHandshakesRefused?: number;
}

export interface ReplicaTransportOptions {
  cluster: ClusterConfig;
  selfId: number;
  signer: Signer;
  verifier: Verifier;
  /** Listen address; defaults to host and port of this replica's URL in the cluster config. */
  host?: string;
  port?: number;
  limits?: Partial<TransportLimits>;
  /** A replica that joins: the operator's admission, sent with its AUTH to replicas that do not know it yet. */
  admission?: { url: string; publicKey: Uint8Array; sig: Uint8Array };
  /** Serves plain HTTP requests on the same port (e.g. GET /status). */
  httpHandler?: (req: IncomingMessage, res: ServerResponse) => void;
  log?: Logger;
}

export interface ReplicaTransport {
  /** Listens and starts dialing the other replicas. Rejects with TransportError('ADDRESS_IN_USE' | 'LISTEN_FAILED'). */
  start(): Promise<void>;
  /** Closes every connection and the server; pending frames are discarded. */
  stop(): Promise<void>;
  /** Queues a frame for a replica (never throws; drops and counts when over limits). */
  sendToReplica(id: number, frame: Uint8Array): void;
  /** Sends a frame to a client's most recent authenticated connection; false if none is open. */
  sendToClient(id: number, frame: Uint8Array): boolean;
  /**
   * Cuts a client off: closes its connections, drops frames still arriving on them, and refuses its
   * handshakes for `forMs` (before any signature is checked).
   */
  refuseClient?(id: number, forMs: number): void;
  /** Handler for every frame received from an authenticated principal. */
  onFrame(handler: (from: Principal, frame: Uint8Array) => void): void;
  /**
   * The replicas and clients of the configurations the replica knows (membership.ts): links to
   * replicas that left are closed, new ones dialed; handshakes are checked against these keys.
   */
  setMembership(m: Membership): void;
  stats(): TransportStats;
}

export interface Membership {
  replicas: readonly ReplicaInfo[];
  clients: readonly ClientInfo[];
  operatorKey?: Uint8Array;
}
