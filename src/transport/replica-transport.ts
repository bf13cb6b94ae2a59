/**
 * The replica side of the transport: one HTTP + WebSocket port that serves other replicas and
 * clients, plus one outbound connection to every other replica.
 *
 * - Inbound connections run the server side of the handshake (src/transport/handshake.ts) under
 *   a timeout. Authenticated clients are registered by id (the latest connection wins, for
 *   sendToClient); authenticated replicas are receive paths (a newer one from the same replica
 *   replaces the older, which is stale after that replica reconnected).
 * - Outbound connections run the dialer side, stay open, and reconnect with exponential backoff
 *   and jitter. sendToReplica() writes on them; while a connection is down or congested, frames
 *   wait in a bounded per-peer queue that drops its oldest frames first.
 * - Frames received on any authenticated connection go to the onFrame handler with the
 *   authenticated principal. Each binary WebSocket message is one frame; a text message, or any
 *   message that is not the expected handshake step before authentication, closes the connection.
 *
 * Frames are passed by reference: a caller must not modify a frame after handing it over, and
 * a handler that keeps a received frame beyond the call should copy it if it may be modified.
 */
import { startHeartbeat } from './heartbeat.ts';
import http from 'node:http';
// cbor-x's Node entry: it installs cbor-extract's native string decoder (when installed) into the
// decoder module every cbor-x import shares. The SDK's modules import the pure 'cbor-x/encode', so
// only a process that runs a replica loads the native addon.
import 'cbor-x';
import WebSocket, { WebSocketServer, type RawData } from 'ws';
import type { Duplex } from 'node:stream';
import { silentLogger, type Logger } from '../util/log.ts';
import {
  dialerAnswerHello,
  dialerCheckWelcome,
  keyringLookup,
  randomNonce,
  serverAcceptAuth,
  serverHello,
  TRANSPORT_CLOSE_CODES,
  type DialerHandshakeContext,
  type DialerPending,
  type Admission,
  type HandshakeRejectReason,
  type ServerHandshakeContext,
  type TransportCloseReason,
} from './handshake.ts';
import {
  DEFAULT_TRANSPORT_LIMITS,
  TransportError,
  type Principal,
  type ReplicaTransport,
  type ReplicaTransportOptions,
  type TransportLimits,
  type TransportStats,
  type Membership,
} from './types.ts';
import { admissionBytes } from '../core/membership.ts';
import { bytesEqual } from '../core/auth.ts';

/** Above this many bytes buffered in a WebSocket, sends wait in the peer queue (or fail, for clients). */
export const SEND_BUFFERED_BYTES_MAX = 4 * 1024 * 1024;
/** How long stop() waits for close handshakes before it terminates the remaining sockets. */
const STOP_GRACE_MS = 1_000;
/** How long a refused connection may take to finish its close handshake before it is terminated. */
const REJECT_GRACE_MS = 1_000;
/** Prefix of handshakesRejected keys counted on outbound (dialer-side) handshakes. */
export const DIAL_REJECT_PREFIX = 'dial:';

type Timer = ReturnType<typeof setTimeout>;

interface InboundConn {
  ws: WebSocket;
  serverNonce: Uint8Array;
  principal: Principal | null;
  /** Set once this side decided to close the connection; later messages are ignored. */
  closing: boolean;
  timer: Timer | null;
}

interface OutboundConn {
  ws: WebSocket;
  state: 'connecting' | 'hello' | 'welcome' | 'open';
  dialerNonce: Uint8Array;
  pending: DialerPending | null;
  closing: boolean;
  timer: Timer | null;
}

interface Peer {
  id: number;
  url: string;
  handshake: DialerHandshakeContext;
  conn: OutboundConn | null;
  reconnectTimer: Timer | null;
  /** Failed attempts since the last successful handshake (backoff exponent). */
  attempt: number;
  /** Frames waiting to be sent; queue[queueHead..] are live. */
  queue: Uint8Array[];
  queueHead: number;
  queueBytes: number;
  /** ws.send callback: continues draining the queue as the socket drains. */
  onSent: (err?: Error) => void;
}

function toBytes(data: RawData): Uint8Array {
  if (Array.isArray(data)) {
    const joined = Buffer.concat(data);
    return new Uint8Array(joined.buffer, joined.byteOffset, joined.byteLength);
  }
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

function listenAddressOf(url: string): { host: string; port: number } {
  const u = new URL(url);
  const host = u.hostname.startsWith('[') && u.hostname.endsWith(']') ? u.hostname.slice(1, -1) : u.hostname;
  const port = u.port !== '' ? Number(u.port) : u.protocol === 'wss:' || u.protocol === 'https:' ? 443 : 80;
  return { host, port };
}

function closeCodeOf(reason: TransportCloseReason): number {
  return TRANSPORT_CLOSE_CODES[reason];
}

export function createReplicaTransport(options: ReplicaTransportOptions): ReplicaTransport {
  const { cluster, selfId, signer, verifier } = options;
  const limits: TransportLimits = { ...DEFAULT_TRANSPORT_LIMITS, ...options.limits };
  const log: Logger = (options.log ?? silentLogger).child({ component: 'transport', replica: selfId });
  const self = cluster.replicas.find((r) => r.id === selfId);
  // A replica that joins is not in the keyring it starts with: it needs its listen address.
  if (self === undefined && (options.host === undefined || options.port === undefined)) {
    throw new RangeError(`replica ${selfId} is not in cluster ${cluster.clusterId}: a joining replica needs its listen address`);
  }
  const defaults = self !== undefined ? listenAddressOf(self.url) : { host: options.host!, port: options.port! };
  const host = options.host ?? defaults.host;
  const port = options.port ?? defaults.port;

  // Clients cut off (refuseClient) until this time (performance.now()): their handshakes fail as if
  // they were not in the keyring, before the signature is checked.
  const refusedUntil = new Map<number, number>();
  const isRefused = (id: number): boolean => {
    const until = refusedUntil.get(id);
    if (until === undefined) return false;
    if (performance.now() < until) return true;
    refusedUntil.delete(id);
    return false;
  };
  // Who may connect: the keyring's replicas and clients, then whatever setMembership says; and a
  // replica the operator admitted (it joins), by its admission.
  let lookup = keyringLookup(cluster);
  let operatorKey = cluster.operatorKey;
  const admit = (id: number, a: Admission): Uint8Array | undefined => {
    if (operatorKey === undefined) return undefined;
    const replica = { id, url: a.url, publicKey: a.publicKey };
    return verifier.verify(operatorKey, admissionBytes(cluster.clusterId, replica), a.sig) ? a.publicKey : undefined;
  };
  const serverCtx: ServerHandshakeContext = {
    clusterId: cluster.clusterId,
    selfId,
    signer,
    verifier,
    publicKeyOf: (kind, id) => {
      if (kind === 'client' && isRefused(id)) {
        counters.cutOffHandshakesRefused++;
        return undefined;
      }
      return lookup(kind, id);
    },
    admit,
  };

  const counters = {
    framesIn: 0,
    framesOut: 0,
    clientFramesIn: 0,
    clientFramesOut: 0,
    bytesIn: 0,
    bytesOut: 0,
    framesDropped: 0,
    silentLinksClosed: 0,
    clientsCutOff: 0,
    cutOffHandshakesRefused: 0,
  };
  const handshakesRejected: Record<string, number> = {};
  let frameHandler: ((from: Principal, frame: Uint8Array) => void) | null = null;

  const inbound = new Set<InboundConn>();
  const clients = new Map<number, InboundConn>();
  const replicaInbound = new Map<number, InboundConn>();
  const peers = new Map<number, Peer>();
  for (const r of cluster.replicas) addPeer(r);

  function addPeer(r: { id: number; url: string; publicKey: Uint8Array }): Peer | undefined {
    if (r.id === selfId) return undefined;
    const peer: Peer = {
      id: r.id,
      url: r.url,
      handshake: {
        clusterId: cluster.clusterId,
        serverId: r.id,
        serverPublicKey: r.publicKey,
        kind: 'replica',
        id: selfId,
        signer,
        verifier,
        ...(options.admission ? { admission: options.admission } : {}),
      },
      conn: null,
      reconnectTimer: null,
      attempt: 0,
      queue: [],
      queueHead: 0,
      queueBytes: 0,
      onSent: (err) => {
        if (err === undefined || err === null) flush(peer);
      },
    };
    peers.set(r.id, peer);
    return peer;
  }

  function removePeer(peer: Peer): void {
    peers.delete(peer.id);
    if (peer.reconnectTimer !== null) clearTimeout(peer.reconnectTimer);
    peer.reconnectTimer = null;
    clearQueue(peer);
    const conn = peer.conn;
    peer.conn = null;
    if (conn !== null) closeOutbound(conn, 'replaced');
  }

  let state: 'new' | 'starting' | 'running' | 'stopping' | 'stopped' = 'new';
  let stopPromise: Promise<void> | null = null;
  let listenPromise: Promise<void> | null = null;

  // Slowloris: a connection that does not finish its HTTP request (the WebSocket upgrade or a GET
  // /status) within the handshake timeout is closed; Node's defaults (60 s for the headers, checked
  // every 30 s) let idle half-open sockets pile up.
  const server = http.createServer({ headersTimeout: limits.handshakeTimeoutMs, requestTimeout: limits.handshakeTimeoutMs * 2, connectionsCheckingInterval: 1_000 }, (req, res) => {
    if (options.httpHandler !== undefined) {
      try {
        options.httpHandler(req, res);
      } catch (err) {
        log.error('http handler threw', { err, url: req.url });
        if (!res.headersSent) res.statusCode = 500;
        res.end();
      }
      return;
    }
    res.statusCode = 404;
    res.setHeader('content-type', 'text/plain; charset=utf-8');
    res.end('not found\n');
  });
  const wss = new WebSocketServer({
    noServer: true,
    perMessageDeflate: false,
    maxPayload: limits.frameBytesMax,
    clientTracking: false,
  });
  server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    if (state !== 'running' && state !== 'starting') {
      socket.destroy();
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => acceptInbound(ws));
  });

  // ---------------------------------------------------------------------------------------------
  // Delivery

  function deliver(from: Principal, frame: Uint8Array): void {
    counters.framesIn++;
    if (from.kind === 'client') counters.clientFramesIn++;
    counters.bytesIn += frame.length;
    if (frameHandler === null) return;
    try {
      frameHandler(from, frame);
    } catch (err) {
      log.error('frame handler threw', { err, from: `${from.kind} ${from.id}` });
    }
  }

  function countRejected(key: string): void {
    handshakesRejected[key] = (handshakesRejected[key] ?? 0) + 1;
  }

  // ---------------------------------------------------------------------------------------------
  // Inbound

  function acceptInbound(ws: WebSocket): void {
    const conn: InboundConn = { ws, serverNonce: randomNonce(), principal: null, closing: false, timer: null };
    inbound.add(conn);
    conn.timer = setTimeout(() => {
      conn.timer = null;
      if (conn.principal === null) rejectInbound(conn, 'timeout', 'no auth within the handshake timeout');
    }, limits.handshakeTimeoutMs);
    ws.on('message', (data, isBinary) => onInboundMessage(conn, data, isBinary));
    ws.on('error', (err: Error & { code?: string }) => {
      if (err.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') counters.framesDropped++;
      log.debug('inbound connection error', { err, peer: describe(conn.principal), code: err.code });
    });
    ws.on('close', () => {
      if (conn.timer !== null) clearTimeout(conn.timer);
      conn.timer = null;
      inbound.delete(conn);
      const p = conn.principal;
      if (p !== null) {
        const registry = p.kind === 'client' ? clients : replicaInbound;
        if (registry.get(p.id) === conn) registry.delete(p.id);
        log.debug('inbound connection closed', { peer: describe(p) });
      }
    });
    ws.send(serverHello(serverCtx, conn.serverNonce));
  }

  function describe(p: Principal | null): string {
    return p === null ? 'unauthenticated' : `${p.kind} ${p.id}`;
  }

  function closeWith(ws: WebSocket, reason: TransportCloseReason): Timer | null {
    if (ws.readyState === WebSocket.CONNECTING) {
      ws.terminate();
      return null;
    }
    if (ws.readyState !== WebSocket.OPEN) return null;
    ws.close(closeCodeOf(reason), reason);
    // Do not wait ws's 30 s close timeout for a peer that ignores the close frame.
    return setTimeout(() => ws.terminate(), REJECT_GRACE_MS);
  }

  function closeInbound(conn: InboundConn, reason: TransportCloseReason): void {
    if (conn.closing) return;
    conn.closing = true;
    if (conn.timer !== null) clearTimeout(conn.timer);
    conn.timer = closeWith(conn.ws, reason);
  }

  function rejectInbound(conn: InboundConn, reason: HandshakeRejectReason, detail: string): void {
    if (conn.closing) return;
    countRejected(reason);
    log.debug('handshake refused', { reason, detail });
    closeInbound(conn, reason);
  }

  function onInboundMessage(conn: InboundConn, data: RawData, isBinary: boolean): void {
    if (conn.closing) return;
    const principal = conn.principal;
    if (principal === null) {
      if (!isBinary) {
        rejectInbound(conn, 'malformed', 'text message during the handshake');
        return;
      }
      const result = serverAcceptAuth(serverCtx, conn.serverNonce, toBytes(data));
      if (!result.ok) {
        rejectInbound(conn, result.reason, result.detail);
        return;
      }
      if (conn.timer !== null) clearTimeout(conn.timer);
      conn.timer = null;
      const p = result.value.principal;
      conn.principal = p;
      conn.ws.send(result.value.welcome);
      const registry = p.kind === 'client' ? clients : replicaInbound;
      const previous = registry.get(p.id);
      registry.set(p.id, conn);
      // A replica keeps one outbound connection to us: an older one from it is stale.
      if (previous !== undefined && p.kind === 'replica') closeInbound(previous, 'replaced');
      log.debug('inbound connection authenticated', { peer: describe(p) });
      startHeartbeat(conn.ws, limits.heartbeatMs, limits.silenceMsMax, () => {
        counters.silentLinksClosed++;
        log.warn('inbound link silent; closing it', { peer: describe(p), silentMs: limits.silenceMsMax });
      });
      // It just proved it is up: if our link to it waits out a reconnection backoff (it restarted),
      // dial now rather than leave its catch-up requests unanswered until the timer fires.
      if (p.kind === 'replica') {
        const peer = peers.get(p.id);
        if (peer !== undefined && peer.conn === null && peer.reconnectTimer !== null) {
          clearTimeout(peer.reconnectTimer);
          peer.attempt = 0;
          dial(peer);
        }
      }
      return;
    }
    if (!isBinary) {
      log.debug('text message after the handshake', { peer: describe(principal) });
      closeInbound(conn, 'protocol');
      return;
    }
    if (principal.kind === 'client' && refusedUntil.size > 0 && isRefused(principal.id)) return;
    deliver(principal, toBytes(data));
  }

  // ---------------------------------------------------------------------------------------------
  // Outbound

  function dial(peer: Peer): void {
    peer.reconnectTimer = null;
    if (state !== 'running') return;
    let ws: WebSocket;
    try {
      ws = new WebSocket(peer.url, {
        perMessageDeflate: false,
        maxPayload: limits.frameBytesMax,
        handshakeTimeout: limits.handshakeTimeoutMs,
      });
    } catch (err) {
      log.warn('cannot dial replica', { peer: peer.id, url: peer.url, err });
      scheduleReconnect(peer);
      return;
    }
    const conn: OutboundConn = { ws, state: 'connecting', dialerNonce: randomNonce(), pending: null, closing: false, timer: null };
    peer.conn = conn;
    conn.timer = setTimeout(() => {
      conn.timer = null;
      if (conn.state !== 'open') failOutbound(peer, conn, 'timeout', 'handshake not complete within the timeout');
    }, limits.handshakeTimeoutMs);
    ws.on('open', () => {
      if (conn.state === 'connecting') conn.state = 'hello';
    });
    ws.on('message', (data, isBinary) => onOutboundMessage(peer, conn, data, isBinary));
    ws.on('error', (err: Error & { code?: string }) => {
      if (err.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') counters.framesDropped++;
      log.debug('outbound connection error', { peer: peer.id, err, code: err.code });
    });
    ws.on('close', (code: number) => {
      if (conn.timer !== null) clearTimeout(conn.timer);
      conn.timer = null;
      const wasOpen = conn.state === 'open';
      if (peer.conn === conn) peer.conn = null;
      if (wasOpen) log.info('replica connection closed', { peer: peer.id, code });
      if (state === 'running') scheduleReconnect(peer);
    });
  }

  function closeOutbound(conn: OutboundConn, reason: TransportCloseReason): void {
    if (conn.closing) return;
    conn.closing = true;
    if (conn.timer !== null) clearTimeout(conn.timer);
    conn.timer = closeWith(conn.ws, reason);
  }

  function failOutbound(peer: Peer, conn: OutboundConn, reason: HandshakeRejectReason, detail: string): void {
    if (conn.closing) return;
    countRejected(DIAL_REJECT_PREFIX + reason);
    log.warn('handshake with replica failed', { peer: peer.id, url: peer.url, reason, detail });
    closeOutbound(conn, reason);
  }

  function onOutboundMessage(peer: Peer, conn: OutboundConn, data: RawData, isBinary: boolean): void {
    if (conn.closing) return;
    if (conn.state === 'open') {
      if (!isBinary) {
        log.debug('text message from replica', { peer: peer.id });
        closeOutbound(conn, 'protocol');
        return;
      }
      deliver({ kind: 'replica', id: peer.id }, toBytes(data));
      return;
    }
    if (!isBinary) {
      failOutbound(peer, conn, 'malformed', 'text message during the handshake');
      return;
    }
    const bytes = toBytes(data);
    if (conn.state === 'welcome' && conn.pending !== null) {
      const result = dialerCheckWelcome(peer.handshake, conn.pending, bytes);
      if (!result.ok) {
        failOutbound(peer, conn, result.reason, result.detail);
        return;
      }
      if (conn.timer !== null) clearTimeout(conn.timer);
      conn.timer = null;
      conn.state = 'open';
      conn.pending = null;
      peer.attempt = 0;
      log.info('replica connected', { peer: peer.id });
      startHeartbeat(conn.ws, limits.heartbeatMs, limits.silenceMsMax, () => {
        counters.silentLinksClosed++;
        log.warn('replica link silent; closing it and dialing again', { peer: peer.id, silentMs: limits.silenceMsMax });
      });
      flush(peer);
      return;
    }
    // 'connecting' cannot receive messages; treat it like 'hello'.
    const result = dialerAnswerHello(peer.handshake, conn.dialerNonce, bytes);
    if (!result.ok) {
      failOutbound(peer, conn, result.reason, result.detail);
      return;
    }
    conn.pending = result.value.pending;
    conn.state = 'welcome';
    conn.ws.send(result.value.auth);
  }

  function scheduleReconnect(peer: Peer): void {
    if (state !== 'running' || peer.reconnectTimer !== null || peer.conn !== null) return;
    const exponent = Math.min(peer.attempt, 30);
    peer.attempt++;
    const ceiling = Math.min(limits.reconnectDelayMsMax, limits.reconnectDelayMsMin * 2 ** exponent);
    // Jitter: uniformly in [ceiling/2, ceiling], so replicas that fail together spread out.
    const delayMs = Math.max(0, Math.round(ceiling / 2 + (Math.random() * ceiling) / 2));
    peer.reconnectTimer = setTimeout(() => dial(peer), delayMs);
  }

  // ---------------------------------------------------------------------------------------------
  // Sending

  function writable(conn: OutboundConn | null): conn is OutboundConn {
    return (
      conn !== null &&
      conn.state === 'open' &&
      !conn.closing &&
      conn.ws.readyState === WebSocket.OPEN &&
      conn.ws.bufferedAmount <= SEND_BUFFERED_BYTES_MAX
    );
  }

  function queueLength(peer: Peer): number {
    return peer.queue.length - peer.queueHead;
  }

  function dequeue(peer: Peer): Uint8Array | undefined {
    if (peer.queueHead >= peer.queue.length) return undefined;
    const frame = peer.queue[peer.queueHead];
    peer.queue[peer.queueHead] = undefined as unknown as Uint8Array; // release the reference
    peer.queueHead++;
    if (peer.queueHead === peer.queue.length) {
      peer.queue = [];
      peer.queueHead = 0;
    } else if (peer.queueHead >= 1024 && peer.queueHead * 2 >= peer.queue.length) {
      peer.queue = peer.queue.slice(peer.queueHead);
      peer.queueHead = 0;
    }
    if (frame !== undefined) peer.queueBytes -= frame.length;
    return frame;
  }

  function sendNow(peer: Peer, conn: OutboundConn, frame: Uint8Array): void {
    counters.framesOut++;
    counters.bytesOut += frame.length;
    conn.ws.send(frame, { binary: true }, peer.onSent);
  }

  function flush(peer: Peer): void {
    while (queueLength(peer) > 0) {
      const conn = peer.conn;
      if (!writable(conn)) return;
      const frame = dequeue(peer);
      if (frame === undefined) return;
      sendNow(peer, conn, frame);
    }
  }

  function enqueue(peer: Peer, frame: Uint8Array): void {
    if (frame.length > limits.peerQueueBytesMax || limits.peerQueueFramesMax <= 0) {
      counters.framesDropped++;
      return;
    }
    peer.queue.push(frame);
    peer.queueBytes += frame.length;
    while (queueLength(peer) > limits.peerQueueFramesMax || peer.queueBytes > limits.peerQueueBytesMax) {
      dequeue(peer);
      counters.framesDropped++;
    }
  }

  function clearQueue(peer: Peer): void {
    peer.queue = [];
    peer.queueHead = 0;
    peer.queueBytes = 0;
  }

  // ---------------------------------------------------------------------------------------------
  // Lifecycle

  function listen(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException): void => {
        server.off('listening', onListening);
        if (err.code === 'EADDRINUSE') {
          reject(new TransportError('ADDRESS_IN_USE', `port ${port} on ${host} is already in use`));
        } else {
          const why = (err.message || String(err)).split('\n')[0];
          reject(new TransportError('LISTEN_FAILED', `cannot listen on ${host}:${port}: ${why}`));
        }
      };
      const onListening = (): void => {
        server.off('error', onError);
        server.on('error', (err) => log.error('server error', { err }));
        resolve();
      };
      server.once('error', onError);
      server.once('listening', onListening);
      try {
        server.listen({ host, port });
      } catch (err) {
        server.off('error', onError);
        server.off('listening', onListening);
        const why = (err instanceof Error ? err.message : String(err)).split('\n')[0];
        reject(new TransportError('LISTEN_FAILED', `cannot listen on ${host}:${port}: ${why}`));
      }
    });
  }

  async function start(): Promise<void> {
    if (state !== 'new') {
      throw new TransportError(state === 'running' || state === 'starting' ? 'LISTEN_FAILED' : 'CLOSED', `transport of replica ${selfId} was already started`);
    }
    state = 'starting';
    listenPromise = listen();
    try {
      await listenPromise;
    } catch (err) {
      state = 'stopped';
      throw err;
    }
    if (state !== 'starting') return; // stop() was called while listening
    state = 'running';
    log.info('transport listening', { host, port });
    for (const peer of peers.values()) dial(peer);
  }

  function waitClosed(ws: WebSocket): Promise<void> {
    if (ws.readyState === WebSocket.CLOSED) return Promise.resolve();
    return new Promise((resolve) => ws.once('close', () => resolve()));
  }

  async function doStop(): Promise<void> {
    const wasStarting = state === 'starting';
    state = 'stopping';
    if (wasStarting && listenPromise !== null) await listenPromise.catch(() => undefined);
    const wasListening = server.listening;
    const sockets: WebSocket[] = [];
    for (const peer of peers.values()) {
      if (peer.reconnectTimer !== null) clearTimeout(peer.reconnectTimer);
      peer.reconnectTimer = null;
      clearQueue(peer);
      const conn = peer.conn;
      if (conn !== null) {
        conn.closing = true;
        if (conn.timer !== null) clearTimeout(conn.timer);
        conn.timer = null;
        sockets.push(conn.ws);
      }
    }
    for (const conn of inbound) {
      conn.closing = true;
      if (conn.timer !== null) clearTimeout(conn.timer);
      conn.timer = null;
      sockets.push(conn.ws);
    }
    const closed = Promise.all(sockets.map(waitClosed));
    for (const ws of sockets) {
      if (ws.readyState === WebSocket.CONNECTING) ws.terminate();
      else if (ws.readyState === WebSocket.OPEN) ws.close(1001, 'shutdown');
    }
    let graceTimer: Timer | null = null;
    const grace = new Promise<void>((resolve) => {
      graceTimer = setTimeout(resolve, STOP_GRACE_MS);
    });
    await Promise.race([closed, grace]);
    if (graceTimer !== null) clearTimeout(graceTimer);
    for (const ws of sockets) if (ws.readyState !== WebSocket.CLOSED) ws.terminate();
    await closed;
    clients.clear();
    replicaInbound.clear();
    wss.close();
    if (wasListening) {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    }
    state = 'stopped';
    log.info('transport stopped');
  }

  return {
    start,
    stop(): Promise<void> {
      if (stopPromise === null) stopPromise = doStop();
      return stopPromise;
    },
    sendToReplica(id: number, frame: Uint8Array): void {
      if (id === selfId) return;
      const peer = peers.get(id);
      if (peer === undefined) {
        counters.framesDropped++;
        log.debug('frame for an unknown replica dropped', { peer: id });
        return;
      }
      if (state === 'stopping' || state === 'stopped') return;
      if (frame.length > limits.frameBytesMax) {
        counters.framesDropped++;
        log.warn('frame above frameBytesMax dropped', { peer: id, bytes: frame.length, frameBytesMax: limits.frameBytesMax });
        return;
      }
      const conn = peer.conn;
      if (queueLength(peer) === 0 && writable(conn)) {
        sendNow(peer, conn, frame);
        return;
      }
      enqueue(peer, frame);
    },
    sendToClient(id: number, frame: Uint8Array): boolean {
      const conn = clients.get(id);
      if (conn === undefined || conn.closing || conn.ws.readyState !== WebSocket.OPEN) return false;
      if (frame.length > limits.frameBytesMax || conn.ws.bufferedAmount > SEND_BUFFERED_BYTES_MAX) {
        // Too large, or a client that does not read: never buffer without bound for it.
        counters.framesDropped++;
        return false;
      }
      counters.framesOut++;
      counters.clientFramesOut++;
      counters.bytesOut += frame.length;
      conn.ws.send(frame, { binary: true });
      return true;
    },
    refuseClient(id: number, forMs: number): void {
      counters.clientsCutOff++;
      refusedUntil.set(id, Math.max(refusedUntil.get(id) ?? 0, performance.now() + forMs));
      // Every connection it has (the registry holds only the latest).
      for (const conn of inbound) if (conn.principal?.kind === 'client' && conn.principal.id === id) closeInbound(conn, 'protocol');
    },
    onFrame(handler: (from: Principal, frame: Uint8Array) => void): void {
      frameHandler = handler;
    },
    setMembership(m: Membership): void {
      operatorKey = m.operatorKey ?? operatorKey;
      lookup = keyringLookup({ replicas: [...m.replicas], clients: [...m.clients], ...(m.operatorKey ? { operatorKey: m.operatorKey } : {}) });
      for (const peer of [...peers.values()]) {
        const now = lookup('replica', peer.id);
        if (now === undefined || !bytesEqual(now, peer.handshake.serverPublicKey)) {
          log.info('replica left the configuration; link closed', { peer: peer.id });
          removePeer(peer);
        }
      }
      for (const r of m.replicas) {
        if (r.id === selfId || peers.has(r.id)) continue;
        const peer = addPeer(r);
        log.info('replica joined the configuration; dialing it', { peer: r.id, url: r.url });
        if (peer !== undefined && state === 'running') dial(peer);
      }
    },
    stats(): TransportStats {
      const replicasConnected: number[] = [];
      for (const peer of peers.values()) {
        const conn = peer.conn;
        if (conn !== null && conn.state === 'open' && !conn.closing) replicasConnected.push(peer.id);
      }
      replicasConnected.sort((a, b) => a - b);
      return {
        ...counters,
        handshakesRejected: { ...handshakesRejected },
        replicasConnected,
        clientsConnected: clients.size,
      };
    },
  };
}

