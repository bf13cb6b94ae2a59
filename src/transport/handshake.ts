/**
 * The connection handshake: every new WebSocket connection to a replica runs it before any frame
 * flows. Pure functions plus message encoding; no I/O, no node-only imports (the client SDK uses
 * this module in browsers too).
 *
 * Protocol (S = the replica that accepted the connection):
 *   1. S      -> dialer  HELLO   ['hello', 1, clusterId, S, serverNonce]
 *   2. dialer -> S       AUTH    ['auth', clusterId, kind, id, dialerNonce, sig]
 *        sig  = sign_dialer(domainTag('handshake-dialer') || serverNonce || dialerNonce || u8(kind) || u32be(id) || u32be(S))
 *   3. S      -> dialer  WELCOME ['welcome', sig2]
 *        sig2 = sign_S(domainTag('handshake-server') || dialerNonce || serverNonce || u32be(S))
 *      or S closes the connection with a close code from HANDSHAKE_CLOSE_CODES.
 *   4. The dialer verifies sig2 with the key of the replica it meant to dial. Then frames flow.
 *
 * Both nonces are fresh per connection, so a recorded handshake cannot be replayed to another
 * connection; each signature covers both nonces, the claimed principal and the server id, and the
 * domain tag carries the cluster id, so signatures cannot cross clusters or roles.
 *
 * Decoding never throws on peer input: it returns `{ ok: false, reason }`.
 */
import { Encoder } from 'cbor-x/encode'; // the pure-JavaScript build (see src/core/encoding.ts)
import { OPERATOR_CLIENT, replicaPrincipal, type ClusterConfig } from '../core/cluster.ts';
import type { Signer, Verifier } from '../crypto/types.ts';
import { PUBLIC_KEY_BYTES, SIGNATURE_BYTES } from '../crypto/types.ts';
import type { Principal } from './portable.ts';

export const HANDSHAKE_PROTOCOL_VERSION = 1;
export const NONCE_BYTES = 32;
/** Every handshake message is far below this; larger ones are rejected before decoding. */
export const HANDSHAKE_MESSAGE_BYTES_MAX = 1024;
/** Longest cluster id accepted in a handshake message (UTF-16 code units). */
export const CLUSTER_ID_LENGTH_MAX = 256;
const U32_MAX = 0xffff_ffff;

export type PrincipalKind = Principal['kind'];

/** Why a handshake was refused; also the WebSocket close reason sent to the peer. */
export type HandshakeRejectReason =
  | 'malformed'
  | 'version'
  | 'cluster-mismatch'
  | 'unknown-principal'
  | 'bad-signature'
  | 'timeout';

/** Reasons a transport closes a connection: handshake refusals, plus violations after it. */
export type TransportCloseReason =
  | HandshakeRejectReason
  /** A text message, or a message after the handshake that is not a binary frame. */
  | 'protocol'
  /** A newer authenticated connection from the same replica replaced this one. */
  | 'replaced';

/** WebSocket close codes (private-use range 4000-4999) for each reason. */
export const TRANSPORT_CLOSE_CODES: Readonly<Record<TransportCloseReason, number>> = {
  'cluster-mismatch': 4001,
  'unknown-principal': 4002,
  'bad-signature': 4003,
  malformed: 4004,
  timeout: 4005,
  version: 4006,
  protocol: 4007,
  replaced: 4008,
};

/** The reason for a close code sent by a transport, or undefined for other codes. */
export function closeReasonOfCode(code: number): TransportCloseReason | undefined {
  for (const [reason, c] of Object.entries(TRANSPORT_CLOSE_CODES)) {
    if (c === code) return reason as TransportCloseReason;
  }
  return undefined;
}

export interface HelloMessage {
  type: 'hello';
  version: number;
  clusterId: string;
  replicaId: number;
  nonce: Uint8Array;
}

export interface AuthMessage {
  type: 'auth';
  clusterId: string;
  kind: PrincipalKind;
  id: number;
  nonce: Uint8Array;
  sig: Uint8Array;
  /**
   * A replica the server does not know yet (it joins): the operator's admission of its id, URL and
   * key (src/core/membership.ts admissionBytes); the server checks it with the operator's key and
   * then the AUTH signature with the admitted key. Such a link carries only the replica's JOIN until
   * the configuration names it.
   */
  admission?: Admission;
}

export interface Admission {
  url: string;
  publicKey: Uint8Array;
  sig: Uint8Array;
}

const ADMISSION_URL_LENGTH_MAX = 512;

export interface WelcomeMessage {
  type: 'welcome';
  sig: Uint8Array;
}

export type HandshakeMessage = HelloMessage | AuthMessage | WelcomeMessage;

export type HandshakeResult<T> = { ok: true; value: T } | { ok: false; reason: HandshakeRejectReason; detail: string };

function fail(reason: HandshakeRejectReason, detail: string): { ok: false; reason: HandshakeRejectReason; detail: string } {
  return { ok: false, reason, detail };
}

// ---------------------------------------------------------------------------------------------
// Encoding

const cbor = new Encoder({ useRecords: false, tagUint8Array: false, mapsAsObjects: true });

export function encodeHandshakeMessage(m: HandshakeMessage): Uint8Array {
  let value: unknown[];
  switch (m.type) {
    case 'hello':
      value = ['hello', m.version, m.clusterId, m.replicaId, m.nonce];
      break;
    case 'auth':
      value = ['auth', m.clusterId, m.kind, m.id, m.nonce, m.sig];
      if (m.admission) value.push([m.admission.url, m.admission.publicKey, m.admission.sig]);
      break;
    case 'welcome':
      value = ['welcome', m.sig];
      break;
    default:
      return assertNever(m);
  }
  const out = cbor.encode(value);
  // cbor-x may return a Buffer that views a shared buffer; hand out an exact copy.
  return new Uint8Array(out);
}

function assertNever(x: never): never {
  throw new Error(`unexpected value ${String(x)}`);
}

function isU32(x: unknown): x is number {
  return typeof x === 'number' && Number.isInteger(x) && x >= 0 && x <= U32_MAX;
}

function bytesOf(x: unknown, length: number): Uint8Array | undefined {
  if (!(x instanceof Uint8Array) || x.length !== length) return undefined;
  return new Uint8Array(x); // copy: cbor-x returns views into the input
}

function clusterIdOf(x: unknown): string | undefined {
  return typeof x === 'string' && x.length > 0 && x.length <= CLUSTER_ID_LENGTH_MAX ? x : undefined;
}

/** Decodes one handshake message. Never throws. */
export function decodeHandshakeMessage(bytes: Uint8Array): HandshakeResult<HandshakeMessage> {
  if (bytes.length === 0 || bytes.length > HANDSHAKE_MESSAGE_BYTES_MAX) {
    return fail('malformed', `handshake message of ${bytes.length} bytes`);
  }
  let value: unknown;
  try {
    value = cbor.decode(bytes);
  } catch {
    return fail('malformed', 'not CBOR');
  }
  if (!Array.isArray(value) || value.length === 0) return fail('malformed', 'not a CBOR array');
  const tag: unknown = value[0];
  switch (tag) {
    case 'hello': {
      if (value.length !== 5) return fail('malformed', 'hello: wrong length');
      const version: unknown = value[1];
      if (!isU32(version)) return fail('malformed', 'hello: bad version');
      const clusterId = clusterIdOf(value[2]);
      if (clusterId === undefined) return fail('malformed', 'hello: bad cluster id');
      const replicaId: unknown = value[3];
      if (!isU32(replicaId)) return fail('malformed', 'hello: bad replica id');
      const nonce = bytesOf(value[4], NONCE_BYTES);
      if (nonce === undefined) return fail('malformed', 'hello: bad nonce');
      return { ok: true, value: { type: 'hello', version, clusterId, replicaId, nonce } };
    }
    case 'auth': {
      if (value.length !== 6 && value.length !== 7) return fail('malformed', 'auth: wrong length');
      const clusterId = clusterIdOf(value[1]);
      if (clusterId === undefined) return fail('malformed', 'auth: bad cluster id');
      const kind: unknown = value[2];
      if (kind !== 'replica' && kind !== 'client') return fail('malformed', 'auth: bad kind');
      const id: unknown = value[3];
      if (!isU32(id)) return fail('malformed', 'auth: bad id');
      const nonce = bytesOf(value[4], NONCE_BYTES);
      if (nonce === undefined) return fail('malformed', 'auth: bad nonce');
      const sig = bytesOf(value[5], SIGNATURE_BYTES);
      if (sig === undefined) return fail('malformed', 'auth: bad signature length');
      if (value.length === 7) {
        const a: unknown = value[6];
        if (!Array.isArray(a) || a.length !== 3) return fail('malformed', 'auth: bad admission');
        const url: unknown = a[0];
        const publicKey = bytesOf(a[1], PUBLIC_KEY_BYTES);
        const admissionSig = bytesOf(a[2], SIGNATURE_BYTES);
        if (typeof url !== 'string' || url.length === 0 || url.length > ADMISSION_URL_LENGTH_MAX || !publicKey || !admissionSig) return fail('malformed', 'auth: bad admission');
        return { ok: true, value: { type: 'auth', clusterId, kind, id, nonce, sig, admission: { url, publicKey, sig: admissionSig } } };
      }
      return { ok: true, value: { type: 'auth', clusterId, kind, id, nonce, sig } };
    }
    case 'welcome': {
      if (value.length !== 2) return fail('malformed', 'welcome: wrong length');
      const sig = bytesOf(value[1], SIGNATURE_BYTES);
      if (sig === undefined) return fail('malformed', 'welcome: bad signature length');
      return { ok: true, value: { type: 'welcome', sig } };
    }
    default:
      return fail('malformed', 'unknown handshake message');
  }
}

// ---------------------------------------------------------------------------------------------
// Signed bytes

const utf8 = new TextEncoder();

/** UTF-8 of `pbft/1/${purpose}/${clusterId}` followed by one 0 byte. */
export function domainTag(purpose: string, clusterId: string): Uint8Array {
  const text = utf8.encode(`pbft/1/${purpose}/${clusterId}`);
  const out = new Uint8Array(text.length + 1);
  out.set(text, 0);
  return out; // last byte stays 0
}

/** u8 code of a principal kind inside signed handshake bytes. */
export const PRINCIPAL_KIND_CODES: Readonly<Record<PrincipalKind, number>> = { replica: 1, client: 2 };

function concat(parts: readonly Uint8Array[]): Uint8Array {
  let length = 0;
  for (const p of parts) length += p.length;
  const out = new Uint8Array(length);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function u32be(x: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, x, false);
  return out;
}

/** What the dialer signs in AUTH. */
export function dialerSignedBytes(
  clusterId: string,
  serverNonce: Uint8Array,
  dialerNonce: Uint8Array,
  kind: PrincipalKind,
  id: number,
  serverId: number,
): Uint8Array {
  return concat([
    domainTag('handshake-dialer', clusterId),
    serverNonce,
    dialerNonce,
    Uint8Array.of(PRINCIPAL_KIND_CODES[kind]),
    u32be(id),
    u32be(serverId),
  ]);
}

/** What the server signs in WELCOME. */
export function serverSignedBytes(clusterId: string, dialerNonce: Uint8Array, serverNonce: Uint8Array, serverId: number): Uint8Array {
  return concat([domainTag('handshake-server', clusterId), dialerNonce, serverNonce, u32be(serverId)]);
}

/** 32 fresh random bytes from the platform CSPRNG (WebCrypto; present in Node 20 and browsers). */
export function randomNonce(): Uint8Array {
  const out = new Uint8Array(NONCE_BYTES);
  globalThis.crypto.getRandomValues(out);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Keyring lookup

/** Public key of a principal, or undefined when it is not in the cluster's keyring. */
export type PublicKeyLookup = (kind: PrincipalKind, id: number) => Uint8Array | undefined;

/**
 * Builds a lookup over a configuration's replicas and clients (maps built once): the keyring's, or
 * a later one the membership changed to (the replica transport's setMembership).
 */
export function keyringLookup(cluster: Pick<ClusterConfig, 'replicas' | 'clients' | 'operatorKey'>): PublicKeyLookup {
  const replicas = new Map<number, Uint8Array>();
  for (const r of cluster.replicas) replicas.set(r.id, r.publicKey);
  const clients = new Map<number, Uint8Array>();
  for (const c of cluster.clients) clients.set(c.id, c.publicKey);
  // The operator connects as a client under its reserved id (membership.ts), and a replica under its
  // replica principal (to send its own QUIT: pbft member quit).
  if (cluster.operatorKey) clients.set(OPERATOR_CLIENT, cluster.operatorKey);
  for (const r of cluster.replicas) clients.set(replicaPrincipal(r.id), r.publicKey);
  return (kind, id) => (kind === 'replica' ? replicas.get(id) : clients.get(id));
}

// ---------------------------------------------------------------------------------------------
// Server side

export interface ServerHandshakeContext {
  clusterId: string;
  /** The accepting replica's id (S). */
  selfId: number;
  signer: Signer;
  verifier: Verifier;
  publicKeyOf: PublicKeyLookup;
  /** The admitted key of a replica that is not in the keyring yet, when its admission verifies. */
  admit?: (id: number, admission: Admission) => Uint8Array | undefined;
}

/** Step 1: HELLO bytes for a fresh connection. `serverNonce` must be fresh (randomNonce()). */
export function serverHello(ctx: Pick<ServerHandshakeContext, 'clusterId' | 'selfId'>, serverNonce: Uint8Array): Uint8Array {
  return encodeHandshakeMessage({
    type: 'hello',
    version: HANDSHAKE_PROTOCOL_VERSION,
    clusterId: ctx.clusterId,
    replicaId: ctx.selfId,
    nonce: serverNonce,
  });
}

/**
 * Step 3: checks the dialer's AUTH (cheap checks first, the signature last) and, when it is
 * valid, returns the authenticated principal and the WELCOME bytes to send.
 */
export function serverAcceptAuth(
  ctx: ServerHandshakeContext,
  serverNonce: Uint8Array,
  bytes: Uint8Array,
): HandshakeResult<{ principal: Principal; welcome: Uint8Array }> {
  const decoded = decodeHandshakeMessage(bytes);
  if (!decoded.ok) return decoded;
  const auth = decoded.value;
  if (auth.type !== 'auth') return fail('malformed', `expected auth, got ${auth.type}`);
  if (auth.clusterId !== ctx.clusterId) return fail('cluster-mismatch', `dialer is in cluster ${JSON.stringify(auth.clusterId)}`);
  // A replica never dials itself: a dialer claiming our own id is refused like an unknown one.
  if (auth.kind === 'replica' && auth.id === ctx.selfId) return fail('unknown-principal', 'dialer claims to be this replica');
  let publicKey = ctx.publicKeyOf(auth.kind, auth.id);
  if (publicKey === undefined && auth.kind === 'replica' && auth.admission !== undefined && ctx.admit !== undefined) {
    publicKey = ctx.admit(auth.id, auth.admission);
  }
  if (publicKey === undefined || publicKey.length !== PUBLIC_KEY_BYTES) {
    return fail('unknown-principal', `${auth.kind} ${auth.id} is not in the keyring`);
  }
  const signed = dialerSignedBytes(ctx.clusterId, serverNonce, auth.nonce, auth.kind, auth.id, ctx.selfId);
  if (!ctx.verifier.verify(publicKey, signed, auth.sig)) {
    return fail('bad-signature', `auth signature of ${auth.kind} ${auth.id} does not verify`);
  }
  const sig = ctx.signer.sign(serverSignedBytes(ctx.clusterId, auth.nonce, serverNonce, ctx.selfId));
  const principal: Principal = auth.kind === 'replica' ? { kind: 'replica', id: auth.id } : { kind: 'client', id: auth.id };
  return { ok: true, value: { principal, welcome: encodeHandshakeMessage({ type: 'welcome', sig }) } };
}

// ---------------------------------------------------------------------------------------------
// Dialer side

export interface DialerHandshakeContext {
  clusterId: string;
  /** The replica the dialer meant to reach, and its public key from the keyring. */
  serverId: number;
  serverPublicKey: Uint8Array;
  kind: PrincipalKind;
  id: number;
  signer: Signer;
  verifier: Verifier;
  /** Sent with AUTH by a replica that joins (AuthMessage.admission). */
  admission?: Admission;
}

/** What the dialer remembers between sending AUTH and receiving WELCOME. */
export interface DialerPending {
  serverNonce: Uint8Array;
  dialerNonce: Uint8Array;
}

/** Step 2: checks HELLO and returns the AUTH bytes to send. `dialerNonce` must be fresh. */
export function dialerAnswerHello(
  ctx: DialerHandshakeContext,
  dialerNonce: Uint8Array,
  bytes: Uint8Array,
): HandshakeResult<{ auth: Uint8Array; pending: DialerPending }> {
  const decoded = decodeHandshakeMessage(bytes);
  if (!decoded.ok) return decoded;
  const hello = decoded.value;
  if (hello.type !== 'hello') return fail('malformed', `expected hello, got ${hello.type}`);
  if (hello.version !== HANDSHAKE_PROTOCOL_VERSION) return fail('version', `server speaks handshake version ${hello.version}`);
  if (hello.clusterId !== ctx.clusterId) return fail('cluster-mismatch', `server is in cluster ${JSON.stringify(hello.clusterId)}`);
  if (hello.replicaId !== ctx.serverId) {
    return fail('unknown-principal', `expected replica ${ctx.serverId}, server says it is replica ${hello.replicaId}`);
  }
  const sig = ctx.signer.sign(dialerSignedBytes(ctx.clusterId, hello.nonce, dialerNonce, ctx.kind, ctx.id, ctx.serverId));
  const auth = encodeHandshakeMessage({ type: 'auth', clusterId: ctx.clusterId, kind: ctx.kind, id: ctx.id, nonce: dialerNonce, sig, ...(ctx.admission ? { admission: ctx.admission } : {}) });
  return { ok: true, value: { auth, pending: { serverNonce: hello.nonce, dialerNonce } } };
}

/** Step 4: checks WELCOME against the key of the replica the dialer meant to reach. */
export function dialerCheckWelcome(ctx: DialerHandshakeContext, pending: DialerPending, bytes: Uint8Array): HandshakeResult<null> {
  const decoded = decodeHandshakeMessage(bytes);
  if (!decoded.ok) return decoded;
  const welcome = decoded.value;
  if (welcome.type !== 'welcome') return fail('malformed', `expected welcome, got ${welcome.type}`);
  const signed = serverSignedBytes(ctx.clusterId, pending.dialerNonce, pending.serverNonce, ctx.serverId);
  if (!ctx.verifier.verify(ctx.serverPublicKey, signed, welcome.sig)) {
    return fail('bad-signature', `welcome signature of replica ${ctx.serverId} does not verify`);
  }
  return { ok: true, value: null };
}
