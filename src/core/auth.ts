/**
 * Signing and verifying protocol messages for the core: domain tags, the signer's public key by
 * message type, and a cache of verified (signature, body) pairs so that nothing is verified twice
 * (a request seen directly and again inside a pre-prepare, prepares seen again inside a VIEW-CHANGE).
 */
import { encodeBody } from './body.ts';
import { OPERATOR_CLIENT, replicaOfPrincipal, type ClusterConfig } from './cluster.ts';
import { admissionBytes, decodeReconfigOp } from './membership.ts';
import type { Signed, SignedMessage, SignedType } from './messages.ts';

/** Cryptography the core needs; pure functions of their inputs (no I/O). */
export interface CoreCrypto {
  /** Signs with this replica's private key. */
  sign(data: Uint8Array): Uint8Array;
  verify(publicKey: Uint8Array, data: Uint8Array, signature: Uint8Array): boolean;
  /** SHA-256. */
  hash(data: Uint8Array): Uint8Array;
}

const textEncoder = new TextEncoder();

/** `pbft/1/<type>/<clusterId>` followed by a zero byte: prefixes every signed body. */
export function domainTag(clusterId: string, type: SignedType): Uint8Array {
  return textEncoder.encode(`pbft/1/${type}/${clusterId}\0`);
}

export function concatBytes(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

import { bytesEqual } from './encoding.ts';
export { bytesEqual };

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));
export function toHex(bytes: Uint8Array): string {
  const parts = new Array<string>(bytes.length);
  for (let i = 0; i < bytes.length; i++) parts[i] = HEX[bytes[i]!]!;
  return parts.join('');
}

const KEY_CHUNK = 4096;
/**
 * Key for maps indexed by bytes: one char per byte, built as a flat string in one call. (Appending
 * a char at a time builds a rope of one node per byte, about 2 KB per 64-byte key, which kept a
 * cache of 100,000 signatures at 140 MB.)
 */
export function bytesKey(bytes: Uint8Array): string {
  if (bytes.length <= KEY_CHUNK) return String.fromCharCode.apply(null, bytes as unknown as number[]);
  const parts: string[] = [];
  for (let i = 0; i < bytes.length; i += KEY_CHUNK) {
    parts.push(String.fromCharCode.apply(null, bytes.subarray(i, i + KEY_CHUNK) as unknown as number[]));
  }
  return parts.join('');
}

/** Every signed type (a Record, so that a new type cannot be forgotten here). */
const TYPE_SET: Record<SignedType, true> = {
  request: true,
  reply: true,
  replybatch: true,
  preprepare: true,
  prepare: true,
  commit: true,
  checkpoint: true,
  viewchange: true,
  newview: true,
  refusal: true,
  suspect: true,
  read: true,
  readreply: true,
};
const TYPES = Object.keys(TYPE_SET) as SignedType[];

/** Memory one generation of the cache of verified signatures may keep alive (Authenticator). */
export const VERIFIED_CACHE_BYTES_MAX = 32 * 1024 * 1024;
/** A verified body up to this long that is a view into a larger frame is cached as a copy. */
export const COPIED_BODY_BYTES_MAX = 16 * 1024;

export class Authenticator {
  private readonly tags = new Map<SignedType, Uint8Array>();
  private readonly clientKeys = new Map<number, Uint8Array>();
  private readonly replicaKeys = new Map<number, Uint8Array>();
  /**
   * Two generations of verified signatures (the signed body of each, to compare on a hit): bounded
   * memory, recent entries stay. A generation ends at cacheEntriesMax entries or once the memory its
   * bodies keep alive reaches cacheBytesMax (see remember).
   */
  private verifiedNew = new Map<string, Uint8Array>();
  private verifiedOld = new Map<string, Uint8Array>();
  private newBytes = 0;
  private oldBytes = 0;
  verifications = 0;
  cacheHits = 0;

  constructor(
    cluster: ClusterConfig,
    private readonly crypto: CoreCrypto,
    /**
     * Entries per generation. The cache needs to cover a request seen directly and then inside a
     * pre-prepare (seconds apart) and the messages a certificate can carry (at most about 2,000 per
     * log window); a small cache fills in seconds, so a replica's memory is flat soon after start.
     */
    private readonly cacheEntriesMax = 8_192,
    /** Memory the bodies of one generation may keep alive (bytes; see remember). */
    private readonly cacheBytesMax = VERIFIED_CACHE_BYTES_MAX,
  ) {
    this.cluster = cluster;
    for (const t of TYPES) this.tags.set(t, domainTag(cluster.clusterId, t));
    this.setKeys(cluster);
  }

  cluster: ClusterConfig;

  /**
   * Another configuration of the same cluster (a membership change): its keys replace the old ones,
   * and the cache of verified signatures is emptied (a signature checked under a departed key must
   * not count for whoever holds that id next).
   */
  setCluster(cluster: ClusterConfig): void {
    if (cluster.clusterId !== this.cluster.clusterId) throw new RangeError('setCluster: another cluster');
    this.cluster = cluster;
    this.setKeys(cluster);
    this.verifiedNew = new Map();
    this.verifiedOld = new Map();
    this.newBytes = 0;
    this.oldBytes = 0;
  }

  /** Memory the cached bodies keep alive (both generations, bytes as counted by remember). */
  get cachedBytes(): number {
    return this.newBytes + this.oldBytes;
  }

  /** Entries in the cache of verified signatures (both generations). */
  get cachedEntries(): number {
    return this.verifiedNew.size + this.verifiedOld.size;
  }

  private setKeys(cluster: ClusterConfig): void {
    this.clientKeys.clear();
    this.replicaKeys.clear();
    for (const c of cluster.clients) this.clientKeys.set(c.id, c.publicKey);
    if (cluster.operatorKey) this.clientKeys.set(OPERATOR_CLIENT, cluster.operatorKey);
    for (const r of cluster.replicas) this.replicaKeys.set(r.id, r.publicKey);
  }

  /**
   * A registered client, the operator, or a replica signing its own request (its QUIT, or the JOIN
   * of a replica the operator admitted: its key is checked with the request, signerKey).
   */
  hasClient(id: number): boolean {
    return this.clientKeys.has(id) || replicaOfPrincipal(id) !== undefined;
  }

  /** Public key of the principal that must have signed this message, or undefined if unknown. */
  signerKey(msg: SignedMessage): Uint8Array | undefined {
    // A read-only request: registered clients only (the operator and replica principals order).
    if (msg.type === 'read') return replicaOfPrincipal(msg.client) === undefined && msg.client !== OPERATOR_CLIENT ? this.clientKeys.get(msg.client) : undefined;
    if (msg.type !== 'request') return this.replicaKeys.get(msg.replica);
    const replica = replicaOfPrincipal(msg.client);
    if (replica === undefined) return this.clientKeys.get(msg.client);
    return this.replicaKeys.get(replica) ?? this.admittedKey(replica, msg.op);
  }

  /**
   * The key of a replica that is not a member, from the JOIN it signs: the one the operator's
   * admission names (membership.ts), when the admission verifies with the operator's key.
   */
  private admittedKey(replica: number, op: Uint8Array): Uint8Array | undefined {
    const operator = this.cluster.operatorKey;
    if (operator === undefined) return undefined;
    const d = decodeReconfigOp(op);
    if (!d.ok || d.value.kind !== 'join' || d.value.replica.id !== replica) return undefined;
    const join = d.value;
    return this.crypto.verify(operator, admissionBytes(this.cluster.clusterId, join.replica), join.admission) ? join.replica.publicKey : undefined;
  }

  sign<T extends SignedMessage>(msg: T): Signed<T> {
    const body = encodeBody(msg);
    const sig = this.crypto.sign(concatBytes(this.tags.get(msg.type)!, body));
    this.remember(sig, body);
    return { msg, body, sig };
  }

  /** True when this signature was verified (or made) here and is still remembered; no crypto. */
  isVerified(signed: Signed): boolean {
    return this.signerKey(signed.msg) !== undefined && this.remembered(signed, bytesKey(signed.sig));
  }

  private remembered(signed: Signed, cacheKey: string): boolean {
    const known = this.verifiedNew.get(cacheKey) ?? this.verifiedOld.get(cacheKey);
    return known !== undefined && bytesEqual(known, signed.body);
  }

  /** True when the signature is valid for the signer named in the body. */
  verify(signed: Signed): boolean {
    const key = this.signerKey(signed.msg);
    if (key === undefined) return false;
    const cacheKey = bytesKey(signed.sig);
    if (this.remembered(signed, cacheKey)) {
      this.cacheHits++;
      return true;
    }
    this.verifications++;
    const ok = this.crypto.verify(key, concatBytes(this.tags.get(signed.msg.type)!, signed.body), signed.sig);
    if (ok) this.remember(signed.sig, signed.body, cacheKey);
    return ok;
  }

  /**
   * A verified body is usually a view into the frame it arrived in (a request inside a PRE-PREPARE,
   * a vote inside a certificate), and a view keeps the whole frame's memory alive. So a body that
   * uses less than half of its buffer and is at most COPIED_BODY_BYTES_MAX long is kept as a copy;
   * any other is kept as it is and counts as its whole buffer. Without this, 16,384 remembered
   * requests of a bulk load kept their 3 MiB PRE-PREPARE frames alive: 380 MiB per replica after a
   * 1M-key load, more than three times the store's own data.
   */
  private remember(sig: Uint8Array, body: Uint8Array, cacheKey = bytesKey(sig)): void {
    let kept = body;
    let cost = body.buffer.byteLength;
    if (cost >= 2 * body.length && body.length <= COPIED_BODY_BYTES_MAX) {
      kept = new Uint8Array(body.length);
      kept.set(body);
      cost = body.length;
    }
    if (this.verifiedNew.size >= this.cacheEntriesMax || (this.newBytes > 0 && this.newBytes + cost > this.cacheBytesMax)) {
      this.verifiedOld = this.verifiedNew;
      this.oldBytes = this.newBytes;
      this.verifiedNew = new Map();
      this.newBytes = 0;
    }
    this.verifiedNew.set(cacheKey, kept);
    this.newBytes += cost;
  }
}
