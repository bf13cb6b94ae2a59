/**
 * The client side of the transport, used by the client SDK: one connection to every replica as
 * principal kind 'client', the dialer side of the handshake, reconnection with backoff.
 *
 * Portable: no static `node:*` import. It uses the WebSocket constructor given in the options,
 * else `globalThis.WebSocket` (browsers, Node >= 22), else the `ws` package, loaded lazily.
 * Only the standard WebSocket API is used (on* handlers, binaryType 'arraybuffer', or 'nodebuffer'
 * with the `ws` package loaded here, which skips a copy of every frame received); the third
 * constructor argument ({ perMessageDeflate: false, maxPayload }) is understood by `ws` and
 * ignored by browsers, and received frames are checked against frameBytesMax here as well.
 *
 * No queuing: send() returns false when that replica's connection is not open (the SDK
 * retransmits), or when the socket already buffers more than SEND_BUFFERED_BYTES_MAX.
 *
 * The replicas are those of the keyring at first; setReplicas() replaces them when the client has
 * learned a newer configuration (src/client/follow.ts): it dials the new members and closes the
 * connections to removed ones (and stops reconnecting to them). Ids need not be dense.
 */
import type { ClusterConfig, ReplicaInfo } from '../core/cluster.ts';
import type { Signer, Verifier } from '../crypto/types.ts';
import { silentLogger, type Logger } from '../util/log.ts';
import {
  closeReasonOfCode,
  dialerAnswerHello,
  dialerCheckWelcome,
  randomNonce,
  TRANSPORT_CLOSE_CODES,
  type DialerHandshakeContext,
  type DialerPending,
  type TransportCloseReason,
} from './handshake.ts';
import { DEFAULT_TRANSPORT_LIMITS, TransportError, type TransportLimits } from './portable.ts';

/** Above this many bytes buffered in a connection, send() refuses frames. */
export const CLIENT_SEND_BUFFERED_BYTES_MAX = 4 * 1024 * 1024;
const CLOSE_GRACE_MS = 1_000;

const WS_CONNECTING = 0;
const WS_OPEN = 1;
const WS_CLOSED = 3;

/** The part of the standard WebSocket API this transport uses. */
export interface WebSocketLike {
  binaryType: string;
  readonly readyState: number;
  readonly bufferedAmount: number;
  // Handlers take `any` so that both the DOM WebSocket and `ws` (whose event types differ) fit.
  onopen: ((event: any) => void) | null;
  onmessage: ((event: any) => void) | null;
  onclose: ((event: any) => void) | null;
  onerror: ((event: any) => void) | null;
  send(data: Uint8Array): void;
  close(code?: number, reason?: string): void;
}

/** A WebSocket constructor: the DOM one, `ws`'s, or a compatible one. */
export type WebSocketConstructor = new (url: string, protocols?: string | string[], options?: never) => WebSocketLike;

export interface ClientTransportOptions {
  cluster: ClusterConfig;
  clientId: number;
  signer: Signer;
  verifier: Verifier;
  limits?: Partial<TransportLimits>;
  log?: Logger;
  WebSocketImpl?: WebSocketConstructor;
}

export interface ClientTransport {
  /** Sends a frame to one replica; false if its connection is not open (nothing is queued). */
  send(replicaId: number, frame: Uint8Array): boolean;
  /** Sends a frame to every connected replica; returns how many it was handed to. */
  broadcast(frame: Uint8Array): number;
  /** Handler for every frame received from an authenticated replica. */
  onFrame(handler: (replicaId: number, frame: Uint8Array) => void): void;
  /** Handler called each time a connection to a replica opens (authenticated), reconnections too. */
  onConnected(handler: (replicaId: number) => void): void;
  /** Ids of the replicas with an open authenticated connection, ascending. */
  connectedReplicas(): number[];
  /** Whether the connection to one replica is open and authenticated (connectedReplicas without the list). */
  isConnected?(replicaId: number): boolean;
  /**
   * The replicas to be connected to from now on (a newer configuration): connects to the ones not
   * connected yet, closes the connections to those no longer listed, and redials one whose URL or
   * public key changed. Frames already delivered are not recalled.
   */
  setReplicas(replicas: readonly ReplicaInfo[]): void;
  /**
   * Resolves once at least `count` replicas are connected; rejects with
   * TransportError('CONNECT_FAILED') naming the unreachable replicas after `timeoutMs`,
   * or TransportError('CLOSED') when the transport is closed first (`waitedMs`: the time the message
   * reports, when the caller waited before calling).
   */
  waitConnected(count: number, timeoutMs: number, waitedMs?: number): Promise<void>;
  /** Closes every connection and stops reconnecting. */
  close(): Promise<void>;
}

type Timer = ReturnType<typeof setTimeout>;

interface Link {
  id: number;
  url: string;
  handshake: DialerHandshakeContext;
  ws: WebSocketLike | null;
  state: 'connecting' | 'hello' | 'welcome' | 'open';
  closing: boolean;
  pending: DialerPending | null;
  dialerNonce: Uint8Array;
  timer: Timer | null;
  reconnectTimer: Timer | null;
  attempt: number;
  /** Why the last attempt failed, for CONNECT_FAILED messages. */
  lastError: string;
  /** No longer a replica of the configuration: never redialled. */
  removed: boolean;
  publicKey: Uint8Array;
}

interface Waiter {
  count: number;
  resolve: () => void;
  reject: (err: Error) => void;
  timer: Timer;
}

function messageBytes(data: unknown): Uint8Array | string | null {
  if (typeof data === 'string') return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return null; // e.g. a Blob: binaryType was not honoured
}

/** The `ws` package's constructor once loaded here: its sockets deliver Buffers without a copy. */
let wsPackage: WebSocketConstructor | undefined;

async function resolveWebSocket(given: WebSocketConstructor | undefined): Promise<WebSocketConstructor> {
  if (given !== undefined) return given;
  const global = (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
  if (typeof global === 'function') return global;
  const mod = await import('ws');
  wsPackage = mod.default as unknown as WebSocketConstructor;
  return wsPackage;
}

export function createClientTransport(options: ClientTransportOptions): ClientTransport {
  const { cluster, clientId, signer, verifier } = options;
  const limits: TransportLimits = { ...DEFAULT_TRANSPORT_LIMITS, ...options.limits };
  const log: Logger = (options.log ?? silentLogger).child({ component: 'client-transport', client: clientId });

  const links = new Map<number, Link>();
  function newLink(r: ReplicaInfo): Link {
    return {
      id: r.id,
      url: r.url,
      handshake: {
        clusterId: cluster.clusterId,
        serverId: r.id,
        serverPublicKey: r.publicKey,
        kind: 'client',
        id: clientId,
        signer,
        verifier,
      },
      ws: null,
      state: 'connecting',
      closing: false,
      pending: null,
      dialerNonce: new Uint8Array(0),
      timer: null,
      reconnectTimer: null,
      attempt: 0,
      lastError: 'not connected yet',
      removed: false,
      publicKey: r.publicKey,
    };
  }
  for (const r of cluster.replicas) links.set(r.id, newLink(r));

  let frameHandler: ((replicaId: number, frame: Uint8Array) => void) | null = null;
  let connectedHandler: ((replicaId: number) => void) | null = null;
  const waiters = new Set<Waiter>();
  let closed = false;
  let closePromise: Promise<void> | null = null;
  let Impl: WebSocketConstructor | null = null;
  const sockets = new Set<WebSocketLike>();
  const socketClosed = new Map<WebSocketLike, () => void>();

  function isOpen(link: Link): boolean {
    return link.state === 'open' && !link.closing && link.ws !== null && link.ws.readyState === WS_OPEN;
  }

  function connectedReplicas(): number[] {
    const out: number[] = [];
    for (const link of links.values()) if (isOpen(link)) out.push(link.id);
    return out.sort((a, b) => a - b);
  }

  function checkWaiters(): void {
    if (waiters.size === 0) return;
    const connected = connectedReplicas().length;
    for (const w of waiters) {
      if (connected >= w.count) {
        waiters.delete(w);
        clearTimeout(w.timer);
        w.resolve();
      }
    }
  }

  function deliver(link: Link, frame: Uint8Array): void {
    if (frameHandler === null) return;
    try {
      frameHandler(link.id, frame);
    } catch (err) {
      log.error('frame handler threw', { err, replica: link.id });
    }
  }

  function closeLink(link: Link, reason: TransportCloseReason | 'shutdown'): void {
    if (link.closing) return;
    link.closing = true;
    if (link.timer !== null) clearTimeout(link.timer);
    link.timer = null;
    const ws = link.ws;
    if (ws === null) return;
    try {
      if (reason === 'shutdown') ws.close(1000, 'client closing');
      else ws.close(TRANSPORT_CLOSE_CODES[reason], reason);
    } catch {
      // a WebSocket in a state that refuses close(): it is going away anyway
    }
  }

  function fail(link: Link, reason: TransportCloseReason, detail: string): void {
    if (link.closing) return;
    link.lastError = `handshake failed (${reason}): ${detail}`;
    log.warn('handshake with replica failed', { replica: link.id, reason, detail });
    closeLink(link, reason);
  }

  function onMessage(link: Link, data: unknown): void {
    if (link.closing) return;
    const bytes = messageBytes(data);
    if (link.state === 'open') {
      if (typeof bytes === 'string' || bytes === null) {
        link.lastError = 'replica sent a non-binary message';
        closeLink(link, 'protocol');
        return;
      }
      if (bytes.length > limits.frameBytesMax) {
        link.lastError = `replica sent a frame of ${bytes.length} bytes, above frameBytesMax`;
        closeLink(link, 'protocol');
        return;
      }
      deliver(link, bytes);
      return;
    }
    if (typeof bytes === 'string' || bytes === null) {
      fail(link, 'malformed', 'non-binary message during the handshake');
      return;
    }
    if (link.state === 'welcome' && link.pending !== null) {
      const result = dialerCheckWelcome(link.handshake, link.pending, bytes);
      if (!result.ok) {
        fail(link, result.reason, result.detail);
        return;
      }
      if (link.timer !== null) clearTimeout(link.timer);
      link.timer = null;
      link.state = 'open';
      link.pending = null;
      link.attempt = 0;
      link.lastError = '';
      log.debug('connected to replica', { replica: link.id });
      checkWaiters();
      if (connectedHandler !== null) {
        try {
          connectedHandler(link.id);
        } catch (err) {
          log.error('connected handler threw', { err, replica: link.id });
        }
      }
      return;
    }
    const result = dialerAnswerHello(link.handshake, link.dialerNonce, bytes);
    if (!result.ok) {
      fail(link, result.reason, result.detail);
      return;
    }
    link.pending = result.value.pending;
    link.state = 'welcome';
    try {
      link.ws?.send(result.value.auth);
    } catch (err) {
      fail(link, 'malformed', `cannot send auth: ${String(err)}`);
    }
  }

  function dial(link: Link): void {
    link.reconnectTimer = null;
    if (closed || Impl === null || link.removed) return;
    let ws: WebSocketLike;
    try {
      ws = new Impl(link.url, [], { perMessageDeflate: false, maxPayload: limits.frameBytesMax } as never);
    } catch (err) {
      link.lastError = `cannot open ${link.url}: ${err instanceof Error ? err.message : String(err)}`;
      scheduleReconnect(link);
      return;
    }
    // 'nodebuffer' (ws only) hands over the received bytes as they are; 'arraybuffer' copies them.
    ws.binaryType = Impl === wsPackage ? 'nodebuffer' : 'arraybuffer';
    link.ws = ws;
    link.state = 'connecting';
    link.closing = false;
    link.pending = null;
    link.dialerNonce = randomNonce();
    sockets.add(ws);
    link.timer = setTimeout(() => {
      link.timer = null;
      if (link.ws === ws && link.state !== 'open') {
        link.lastError = 'handshake timed out';
        if (ws.readyState === WS_CONNECTING) {
          // close() before open is allowed by the WebSocket API and aborts the attempt.
          link.closing = true;
          try {
            ws.close();
          } catch {
            // ignore
          }
        } else {
          fail(link, 'timeout', 'no welcome within the handshake timeout');
        }
      }
    }, limits.handshakeTimeoutMs);
    ws.onopen = () => {
      if (link.ws === ws && link.state === 'connecting') link.state = 'hello';
    };
    ws.onmessage = (event: { data?: unknown }) => {
      if (link.ws === ws) onMessage(link, event.data);
    };
    ws.onerror = (event: { message?: unknown; error?: unknown }) => {
      if (link.ws !== ws) return;
      const message = typeof event?.message === 'string' && event.message !== '' ? event.message : 'connection error';
      if (link.state !== 'open' && !link.closing) link.lastError = message;
      log.debug('connection error', { replica: link.id, message });
    };
    ws.onclose = (event: { code?: unknown; reason?: unknown }) => {
      sockets.delete(ws);
      socketClosed.get(ws)?.();
      socketClosed.delete(ws);
      if (link.ws !== ws) return;
      if (link.timer !== null) clearTimeout(link.timer);
      link.timer = null;
      const wasOpen = link.state === 'open';
      const code = typeof event?.code === 'number' ? event.code : 0;
      const reason = typeof event?.reason === 'string' ? event.reason : '';
      const refused = closeReasonOfCode(code);
      if (refused !== undefined && !link.closing) link.lastError = `replica closed the connection (${refused})`;
      else if (wasOpen) link.lastError = `connection closed (code ${code}${reason !== '' ? ` ${reason}` : ''})`;
      link.ws = null;
      link.state = 'connecting';
      link.closing = false;
      link.pending = null;
      if (wasOpen) log.debug('connection to replica closed', { replica: link.id, code });
      scheduleReconnect(link);
    };
  }

  function scheduleReconnect(link: Link): void {
    if (closed || link.removed || link.reconnectTimer !== null || link.ws !== null) return;
    const exponent = Math.min(link.attempt, 30);
    link.attempt++;
    const ceiling = Math.min(limits.reconnectDelayMsMax, limits.reconnectDelayMsMin * 2 ** exponent);
    const delayMs = Math.max(0, Math.round(ceiling / 2 + (Math.random() * ceiling) / 2));
    link.reconnectTimer = setTimeout(() => dial(link), delayMs);
  }

  void resolveWebSocket(options.WebSocketImpl).then(
    (impl) => {
      Impl = impl;
      for (const link of links.values()) dial(link);
    },
    (err: unknown) => {
      const message = `no WebSocket implementation: ${err instanceof Error ? err.message : String(err)}`;
      for (const link of links.values()) link.lastError = message;
      log.error('no WebSocket implementation', { err });
    },
  );

  function send(replicaId: number, frame: Uint8Array): boolean {
    const link = links.get(replicaId);
    if (link === undefined || !isOpen(link) || link.ws === null) return false;
    if (frame.length > limits.frameBytesMax) return false;
    if (link.ws.bufferedAmount > CLIENT_SEND_BUFFERED_BYTES_MAX) return false;
    try {
      link.ws.send(frame);
      return true;
    } catch {
      return false;
    }
  }

  function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
    return a.length === b.length && a.every((x, i) => x === b[i]);
  }

  /** Stops a link for good: closes its connection, cancels its timers, forgets it. */
  function removeLink(link: Link): void {
    link.removed = true;
    links.delete(link.id);
    if (link.reconnectTimer !== null) clearTimeout(link.reconnectTimer);
    link.reconnectTimer = null;
    if (link.ws !== null) closeLink(link, 'shutdown');
    else if (link.timer !== null) {
      clearTimeout(link.timer);
      link.timer = null;
    }
  }

  function setReplicas(replicas: readonly ReplicaInfo[]): void {
    if (closed) return;
    const wanted = new Map(replicas.map((r) => [r.id, r]));
    for (const link of [...links.values()]) {
      const r = wanted.get(link.id);
      if (r === undefined || r.url !== link.url || !sameBytes(r.publicKey, link.publicKey)) {
        log.debug('closing the connection to a replica that left the configuration', { replica: link.id });
        removeLink(link);
      }
    }
    for (const r of replicas) {
      if (links.has(r.id)) continue;
      const link = newLink(r);
      links.set(r.id, link);
      log.debug('connecting to a replica of the new configuration', { replica: r.id, url: r.url });
      if (Impl !== null) dial(link);
    }
    checkWaiters();
  }

  function waitConnected(count: number, timeoutMs: number, waitedMs = timeoutMs): Promise<void> {
    if (closed) return Promise.reject(new TransportError('CLOSED', 'client transport is closed'));
    if (count > links.size) {
      return Promise.reject(
        new TransportError('CONNECT_FAILED', `cannot wait for ${count} replicas: the cluster has ${links.size}`),
      );
    }
    if (connectedReplicas().length >= count) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        count,
        resolve,
        reject,
        timer: setTimeout(() => {
          waiters.delete(waiter);
          const missing = [...links.values()]
            .filter((l) => !isOpen(l))
            .map((l) => `replica ${l.id} (${l.url}): ${l.lastError || 'not connected'}`);
          const connected = links.size - missing.length;
          reject(
            new TransportError(
              'CONNECT_FAILED',
              `connected to ${connected} of ${links.size} replicas within ${waitedMs} ms, needed ${count}; not reachable: ${missing.join('; ')}`.replace(/\s*\n\s*/g, ' '),
            ),
          );
        }, timeoutMs),
      };
      waiters.add(waiter);
    });
  }

  async function doClose(): Promise<void> {
    closed = true;
    for (const w of waiters) {
      clearTimeout(w.timer);
      w.reject(new TransportError('CLOSED', 'client transport closed'));
    }
    waiters.clear();
    for (const link of links.values()) {
      if (link.reconnectTimer !== null) clearTimeout(link.reconnectTimer);
      link.reconnectTimer = null;
      if (link.timer !== null) clearTimeout(link.timer);
      link.timer = null;
      if (link.ws !== null) closeLink(link, 'shutdown');
    }
    const pending = [...sockets].filter((ws) => ws.readyState !== WS_CLOSED);
    if (pending.length === 0) return;
    const allClosed = Promise.all(
      pending.map((ws) => new Promise<void>((resolve) => socketClosed.set(ws, resolve))),
    );
    let graceTimer: Timer | null = null;
    await Promise.race([
      allClosed,
      new Promise<void>((resolve) => {
        graceTimer = setTimeout(resolve, CLOSE_GRACE_MS);
      }),
    ]);
    if (graceTimer !== null) clearTimeout(graceTimer);
    // `ws` offers terminate(); the DOM WebSocket closes on its own.
    let terminated = true;
    for (const ws of pending) {
      if (ws.readyState === WS_CLOSED) continue;
      const terminate = (ws as { terminate?: () => void }).terminate;
      if (typeof terminate === 'function') terminate.call(ws);
      else terminated = false;
    }
    if (terminated) await allClosed;
    for (const ws of pending) socketClosed.delete(ws);
    sockets.clear();
  }

  return {
    send,
    broadcast(frame: Uint8Array): number {
      let sent = 0;
      for (const id of links.keys()) if (send(id, frame)) sent++;
      return sent;
    },
    onFrame(handler) {
      frameHandler = handler;
    },
    onConnected(handler) {
      connectedHandler = handler;
    },
    connectedReplicas,
    isConnected(replicaId: number): boolean {
      const link = links.get(replicaId);
      return link !== undefined && isOpen(link);
    },
    setReplicas,
    waitConnected,
    close(): Promise<void> {
      if (closePromise === null) closePromise = doClose();
      return closePromise;
    },
  };
}
