/**
 * The keyring's JSON, validated: cluster.json and the content of a private key file, as parsed
 * JSON. No file system and no node:* module: the browser SDK validates what it is given with these
 * functions (src/client/config.ts); src/crypto/keyring.ts reads the files and calls them (the file
 * formats are described there). Every failure is a `KeyringError` with a `code` and a one-line
 * message that names the source and what is wrong; secret key material never appears in a message.
 */
import * as ed from '@noble/ed25519';
import type { ClientInfo, ClusterConfig, ReplicaInfo } from '../core/cluster.ts';
import { replicasFor } from '../core/quorum.ts';
import { nobleDerivePublicKey } from './noble.ts';
import { PUBLIC_KEY_BYTES, SECRET_KEY_BYTES } from './types.ts';

export const KEYRING_VERSION = 1;
export const CLUSTER_ID_CHARS_MAX = 128;

/** Who a private key file belongs to; the operator (membership changes) has one key, id 0. */
export type Principal = 'replica' | 'client' | 'operator';

export type KeyringErrorCode =
  | 'NOT_FOUND'
  | 'READ_FAILED'
  | 'MALFORMED'
  | 'INSECURE_PERMISSIONS'
  | 'EXISTS'
  | 'BAD_REPLICA_COUNT'
  | 'BAD_OPTION'
  | 'KEY_MISMATCH'
  | 'WRITE_FAILED';

export class KeyringError extends Error {
  override readonly name = 'KeyringError';
  constructor(
    readonly code: KeyringErrorCode,
    message: string,
    /** The file the error is about, when there is one. */
    readonly file?: string,
  ) {
    // One line, always: messages end up as a single `keygen: ...` line or a log field.
    super(message.replace(/\s*[\r\n]+\s*/g, ' '));
  }
}

/** A loaded private key file. */
export interface PrivateKey {
  principal: Principal;
  id: number;
  clusterId: string;
  /** 32-byte ed25519 seed. */
  secretKey: Uint8Array;
  /** 32-byte raw ed25519 public key (checked to be derived from `secretKey`). */
  publicKey: Uint8Array;
}

export interface ExpectedKey {
  principal: Principal;
  id: number;
  /** When given, the key must belong to this cluster and match its keyring entry. */
  cluster?: ClusterConfig;
}

// ---------------------------------------------------------------------------------------------
// Validation helpers

type Json = Record<string, unknown>;

const HEX_KEY = /^[0-9a-fA-F]{64}$/;
const PRINTABLE_ASCII = /^[\x20-\x7e]+$/;

export function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function describe(value: unknown): string {
  if (value === undefined) return 'missing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return `"${value.length > 40 ? value.slice(0, 40) + '...' : value}"`;
  if (typeof value === 'object') return 'an object';
  return String(value);
}

export function isNonNegativeInteger(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/** Why `id` is not an acceptable cluster id, or null when it is. */
export function clusterIdProblem(id: unknown): string | null {
  if (typeof id !== 'string') return `must be a string, got ${describe(id)}`;
  if (id.length === 0) return 'must not be empty';
  if (id.length > CLUSTER_ID_CHARS_MAX) return `must be at most ${CLUSTER_ID_CHARS_MAX} characters, got ${id.length}`;
  if (!PRINTABLE_ASCII.test(id)) return 'must contain only printable ASCII characters';
  return null;
}

export function checkFields(obj: Json, allowed: readonly string[], where: string, source: string): void {
  for (const key of allowed) {
    if (!(key in obj)) throw malformed(source, `${where}missing field "${key}"`);
  }
  for (const key of Object.keys(obj)) {
    if (!allowed.includes(key)) throw malformed(source, `${where}unknown field "${key.slice(0, 40)}"`);
  }
}

export function malformed(source: string, problem: string): KeyringError {
  return new KeyringError('MALFORMED', `${source}: ${problem}`, source);
}

export function hexToBytes(hex: string): Uint8Array {
  // Callers checked the shape (an even number of hex digits).
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

export function bytesToHex(bytes: Uint8Array): string {
  let hex = '';
  for (const b of bytes) hex += b.toString(16).padStart(2, '0');
  return hex;
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

/** True when `key` decodes to an ed25519 curve point that is not of small order. */
function isUsablePublicKey(key: Uint8Array): boolean {
  try {
    return !ed.Point.fromBytes(key, false).isSmallOrder();
  } catch {
    return false;
  }
}

function parsePublicKey(value: unknown, where: string, source: string): Uint8Array {
  if (typeof value !== 'string' || !HEX_KEY.test(value)) {
    throw malformed(source, `${where}.publicKey must be ${PUBLIC_KEY_BYTES * 2} hex characters, got ${describe(value)}`);
  }
  const key = hexToBytes(value);
  if (!isUsablePublicKey(key)) throw malformed(source, `${where}.publicKey is not a valid ed25519 public key`);
  return key;
}

/** host:port of a replica URL, or a reason it is unusable. */
export function parseReplicaUrl(value: unknown): { address: string } | { problem: string } {
  if (typeof value !== 'string') return { problem: `must be a string, got ${describe(value)}` };
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return { problem: `${describe(value)} is not a valid URL` };
  }
  if (url.protocol !== 'ws:' && url.protocol !== 'wss:') {
    return { problem: `${describe(value)} must use ws:// or wss://` };
  }
  if (url.username !== '' || url.password !== '') return { problem: `${describe(value)} must not contain credentials` };
  if (url.hash !== '') return { problem: `${describe(value)} must not contain a fragment` };
  if (url.hostname === '') return { problem: `${describe(value)} has no host` };
  // URL drops a port equal to the scheme's default (80 / 443), so read the authority as written.
  const authority = /^wss?:\/\/([^/?#]*)/i.exec(value)?.[1] ?? '';
  const written = /:(\d{1,5})$/.exec(authority)?.[1];
  const port = written === undefined ? NaN : Number(written);
  if (!(port >= 1 && port <= 65535)) return { problem: `${describe(value)} must include a port (1-65535)` };
  return { address: `${url.hostname.toLowerCase()}:${port}` };
}

// ---------------------------------------------------------------------------------------------
// cluster.json

/** Validates a parsed cluster.json strictly; `source` names it in error messages. */
export function parseCluster(json: unknown, source: string): ClusterConfig {
  if (!isObject(json)) throw malformed(source, `must be a JSON object, got ${describe(json)}`);
  // faultModel is optional: keyrings written before the crash mode existed have none (byzantine).
  checkFields(json, ['version', 'clusterId', 'f', ...('faultModel' in json ? ['faultModel'] : []), 'replicas', 'clients', 'operator'], '', source);
  const faultModel = json.faultModel ?? 'byzantine';
  if (faultModel !== 'byzantine' && faultModel !== 'crash') {
    throw malformed(source, `faultModel must be "byzantine" or "crash", got ${describe(json.faultModel)}`);
  }
  if (json.version !== KEYRING_VERSION) {
    throw malformed(source, `unsupported version ${describe(json.version)} (expected ${KEYRING_VERSION})`);
  }
  const idProblem = clusterIdProblem(json.clusterId);
  if (idProblem !== null) throw malformed(source, `clusterId ${idProblem}`);
  const clusterId = json.clusterId as string;
  const f = json.f;
  if (typeof f !== 'number' || !Number.isSafeInteger(f) || f < 1) {
    throw malformed(source, `f must be an integer >= 1, got ${describe(f)}`);
  }
  if (!Array.isArray(json.replicas)) throw malformed(source, `replicas must be an array, got ${describe(json.replicas)}`);
  const n = replicasFor(f, faultModel);
  if (json.replicas.length !== n) {
    throw malformed(source, `f = ${f} needs n = ${faultModel === 'crash' ? '2f+1 (crash faults)' : '3f+1'} = ${n} replicas, got ${json.replicas.length}`);
  }
  if (!Array.isArray(json.clients)) throw malformed(source, `clients must be an array, got ${describe(json.clients)}`);

  const keyOwners = new Map<string, string>(); // public key hex -> who has it
  const claimKey = (key: Uint8Array, who: string): void => {
    const hex = bytesToHex(key);
    const other = keyOwners.get(hex);
    if (other !== undefined) throw malformed(source, `duplicate public key: ${other} and ${who} have the same key`);
    keyOwners.set(hex, who);
  };

  const addresses = new Map<string, number>(); // host:port -> replica id
  const replicas: ReplicaInfo[] = json.replicas.map((entry: unknown, index: number): ReplicaInfo => {
    const where = `replicas[${index}]`;
    if (!isObject(entry)) throw malformed(source, `${where} must be an object, got ${describe(entry)}`);
    checkFields(entry, ['id', 'url', 'publicKey'], `${where}: `, source);
    if (entry.id !== index) {
      throw malformed(source, `${where}.id must be ${index} (replica ids are 0..${n - 1} in order), got ${describe(entry.id)}`);
    }
    const url = parseReplicaUrl(entry.url);
    if ('problem' in url) throw malformed(source, `${where}.url ${url.problem}`);
    const other = addresses.get(url.address);
    if (other !== undefined) throw malformed(source, `duplicate url: replicas ${other} and ${index} both use ${url.address}`);
    addresses.set(url.address, index);
    const publicKey = parsePublicKey(entry.publicKey, where, source);
    claimKey(publicKey, `replica ${index}`);
    return { id: index, url: entry.url as string, publicKey };
  });

  const clientIds = new Set<number>();
  const clients: ClientInfo[] = json.clients.map((entry: unknown, index: number): ClientInfo => {
    const where = `clients[${index}]`;
    if (!isObject(entry)) throw malformed(source, `${where} must be an object, got ${describe(entry)}`);
    checkFields(entry, ['id', 'publicKey'], `${where}: `, source);
    if (!isNonNegativeInteger(entry.id)) {
      throw malformed(source, `${where}.id must be a non-negative integer, got ${describe(entry.id)}`);
    }
    if (clientIds.has(entry.id)) throw malformed(source, `duplicate client id ${entry.id}`);
    clientIds.add(entry.id);
    const publicKey = parsePublicKey(entry.publicKey, where, source);
    claimKey(publicKey, `client ${entry.id}`);
    return { id: entry.id, publicKey };
  });

  let operatorKey: Uint8Array | undefined;
  if (json.operator !== undefined) {
    if (!isObject(json.operator)) throw malformed(source, `operator must be an object, got ${describe(json.operator)}`);
    checkFields(json.operator, ['publicKey'], 'operator: ', source);
    operatorKey = parsePublicKey(json.operator.publicKey, 'operator', source);
    claimKey(operatorKey, 'the operator');
  }
  return { clusterId, f, ...(faultModel === 'crash' ? { faultModel } : {}), replicas, clients, ...(operatorKey ? { operatorKey } : {}) };
}

/** cluster.json text: stable key order, two-space indent, trailing newline. Validates first. */
export function serializeCluster(cluster: ClusterConfig): string {
  const json = {
    version: KEYRING_VERSION,
    clusterId: cluster.clusterId,
    f: cluster.f,
    // Written only for the crash mode, so a byzantine keyring reads as it always did.
    ...(cluster.faultModel === 'crash' ? { faultModel: 'crash' } : {}),
    replicas: cluster.replicas.map((r) => ({ id: r.id, url: r.url, publicKey: bytesToHex(r.publicKey) })),
    clients: cluster.clients.map((c) => ({ id: c.id, publicKey: bytesToHex(c.publicKey) })),
    ...(cluster.operatorKey ? { operator: { publicKey: bytesToHex(cluster.operatorKey) } } : {}),
  };
  // Never write a keyring that cannot be read back.
  parseCluster(json, 'cluster to serialize');
  return JSON.stringify(json, null, 2) + '\n';
}

// ---------------------------------------------------------------------------------------------
// Private keys

/**
 * Validates the parsed JSON of a private key file: its shape, that the stored public key is the one
 * derived from the secret key and, when `expected` is given, that it belongs to that principal (and
 * cluster keyring entry). `source` names it in error messages (never the secret).
 */
export function parsePrivateKey(json: unknown, source: string, expected?: ExpectedKey): PrivateKey {
  const path = source;
  if (!isObject(json)) throw malformed(path, `must be a JSON object, got ${describe(json)}`);
  checkFields(json, ['version', 'clusterId', 'principal', 'id', 'publicKey', 'secretKey'], '', path);
  if (json.version !== KEYRING_VERSION) {
    throw malformed(path, `unsupported version ${describe(json.version)} (expected ${KEYRING_VERSION})`);
  }
  const idProblem = clusterIdProblem(json.clusterId);
  if (idProblem !== null) throw malformed(path, `clusterId ${idProblem}`);
  const clusterId = json.clusterId as string;
  const principal = json.principal;
  if (principal !== 'replica' && principal !== 'client' && principal !== 'operator') {
    throw malformed(path, `principal must be "replica", "client" or "operator", got ${describe(principal)}`);
  }
  const id = json.id;
  if (!isNonNegativeInteger(id)) throw malformed(path, `id must be a non-negative integer, got ${describe(id)}`);
  if (typeof json.publicKey !== 'string' || !HEX_KEY.test(json.publicKey)) {
    throw malformed(path, `publicKey must be ${PUBLIC_KEY_BYTES * 2} hex characters, got ${describe(json.publicKey)}`);
  }
  if (typeof json.secretKey !== 'string' || !HEX_KEY.test(json.secretKey)) {
    throw malformed(path, `secretKey must be ${SECRET_KEY_BYTES * 2} hex characters`);
  }
  const publicKey = hexToBytes(json.publicKey);
  const secretKey = hexToBytes(json.secretKey);
  if (!bytesEqual(nobleDerivePublicKey(secretKey), publicKey)) {
    secretKey.fill(0);
    throw new KeyringError('KEY_MISMATCH', `private key ${path}: publicKey is not the key derived from secretKey`, path);
  }
  const key: PrivateKey = { principal, id, clusterId, secretKey, publicKey };
  if (expected !== undefined) {
    try {
      checkExpected(path, key, expected);
    } catch (err) {
      secretKey.fill(0);
      throw err;
    }
  }
  return key;
}

export function checkExpected(path: string, key: PrivateKey, expected: ExpectedKey): void {
  if (key.principal !== expected.principal || key.id !== expected.id) {
    throw new KeyringError(
      'KEY_MISMATCH',
      `private key ${path} is for ${key.principal} ${key.id}, expected ${expected.principal} ${expected.id}`,
      path,
    );
  }
  const cluster = expected.cluster;
  if (cluster === undefined) return;
  if (key.clusterId !== cluster.clusterId) {
    throw new KeyringError(
      'KEY_MISMATCH',
      `private key ${path} belongs to cluster "${key.clusterId}", not to cluster "${cluster.clusterId}"`,
      path,
    );
  }
  if (key.principal === 'operator') {
    if (cluster.operatorKey === undefined) throw new KeyringError('KEY_MISMATCH', `private key ${path}: the cluster keyring has no operator key`, path);
    if (!bytesEqual(cluster.operatorKey, key.publicKey)) throw new KeyringError('KEY_MISMATCH', `private key ${path}: public key differs from the keyring's operator key`, path);
    return;
  }
  const entries: readonly { id: number; publicKey: Uint8Array }[] =
    key.principal === 'replica' ? cluster.replicas : cluster.clients;
  const entry = entries.find((e) => e.id === key.id);
  if (entry === undefined) {
    throw new KeyringError('KEY_MISMATCH', `private key ${path}: ${key.principal} ${key.id} is not in the cluster keyring`, path);
  }
  if (!bytesEqual(entry.publicKey, key.publicKey)) {
    throw new KeyringError(
      'KEY_MISMATCH',
      `private key ${path}: public key differs from the cluster keyring's entry for ${key.principal} ${key.id}`,
      path,
    );
  }
}
