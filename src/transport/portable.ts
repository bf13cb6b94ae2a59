/**
 * The transport's principals, limits and error: the part of src/transport/types.ts that the client
 * SDK needs. No node:* module, not even its types, so that the SDK's declaration files type-check in a
 * browser project without @types/node. types.ts re-exports everything here.
 */
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

export class TransportError extends Error {
  constructor(
    readonly code: 'ADDRESS_IN_USE' | 'LISTEN_FAILED' | 'CLOSED' | 'HANDSHAKE_FAILED' | 'CONNECT_FAILED',
    message: string,
  ) {
    super(message);
    this.name = 'TransportError';
  }
}
