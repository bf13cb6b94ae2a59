/**
 * Transport: moves opaque byte frames between authenticated principals over WebSocket.
 * It knows no PBFT: the replica shell and the client SDK decode frames themselves.
 *
 * One WebSocket port per replica serves both other replicas and clients. Every connection starts
 * with a signed handshake (see src/transport/handshake.ts) in which each side proves it holds the
 * private key of the principal it claims, and the cluster ids must match. After it, each WebSocket
 * binary message carries exactly one frame.
 */
import type { ClusterConfig } from '../core/cluster.ts';
import type { Signer, Verifier } from '../crypto/types.ts';
import type { Logger } from '../util/log.ts';
import type { IncomingMessage, ServerResponse } from 'node:http';

export type Principal = { kind: 'replica'; id: number } | { kind: 'client'; id: number };

export interface TransportLimits {
  /** Largest frame accepted or sent (WebSocket maxPayload), bytes. */
  frameBytesMax: number;
  /** Per-peer outbound queue bounds (frames waiting while disconnected or congested). Oldest frames drop first. */
  peerQueueFramesMax: number;
  peerQueueBytesMax: number;
  /** Reconnection backoff between replicas, doubled per failed attempt, with jitter. */
  reconnectDelayMsMin: number;
  reconnectDelayMsMax: number;
  /** A connection that has not completed its handshake by then is closed. */
  handshakeTimeoutMs: number;
  /** An open connection is pinged this often... */
  heartbeatMs: number;
  /** ...and closed (the dialer reconnects) when nothing arrived on it for this long. */
  silenceMsMax: number;
}

export const DEFAULT_TRANSPORT_LIMITS: TransportLimits = {
  frameBytesMax: 32 * 1024 * 1024,
  peerQueueFramesMax: 10_000,
  peerQueueBytesMax: 64 * 1024 * 1024,
  reconnectDelayMsMin: 50,
  reconnectDelayMsMax: 2_000,
  handshakeTimeoutMs: 5_000,
  heartbeatMs: 1_000,
  silenceMsMax: 5_000,
};

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
  stats(): TransportStats;
}

export class TransportError extends Error {
  constructor(
    readonly code: 'ADDRESS_IN_USE' | 'LISTEN_FAILED' | 'CLOSED' | 'HANDSHAKE_FAILED' | 'CONNECT_FAILED',
    message: string,
  ) {
    super(message);
    this.name = 'TransportError';
  }
}
