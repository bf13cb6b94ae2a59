/**
 * Keyrings on disk: the public `cluster.json` and one private key file per replica and client.
 *
 * `cluster.json` (public, shared by every replica and client):
 *   { "version": 1, "clusterId": "...", "f": 1,
 *     "replicas": [{ "id": 0, "url": "ws://127.0.0.1:7001", "publicKey": "<64 hex>" }, ...],
 *     "clients":  [{ "id": 0, "publicKey": "<64 hex>" }, ...] }
 *
 * `replica-<id>.key` / `client-<id>.key` (private, mode 0600):
 *   { "version": 1, "clusterId": "...", "principal": "replica", "id": 0,
 *     "publicKey": "<64 hex>", "secretKey": "<64 hex: the 32-byte ed25519 seed>" }
 *
 * Everything read here is validated strictly and every failure is a `KeyringError` with a `code`
 * and a one-line message that names the file and what is wrong. Secret key material never appears
 * in a message. Files are written atomically (temporary file, fsync, rename, directory fsync).
 */
import {
  closeSync,
  fchmodSync,
  fstatSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  statSync,
  unlinkSync,
  writeSync,
  chmodSync,
} from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import * as ed from '@noble/ed25519';
import type { ClientInfo, ClusterConfig, ReplicaInfo } from '../core/cluster.ts';
import { nodeDerivePublicKey } from './node.ts';
import { nobleDerivePublicKey, randomSecretKey } from './noble.ts';
import { PUBLIC_KEY_BYTES, SECRET_KEY_BYTES } from './types.ts';

export const KEYRING_VERSION = 1;
export const CLUSTER_FILE = 'cluster.json';
export const CLUSTER_ID_CHARS_MAX = 128;
/** Larger files are refused before they are read (a keyring of 10,000 clients is about 1 MiB). */
export const KEYRING_FILE_BYTES_MAX = 16 * 1024 * 1024;
const KEY_FILE_BYTES_MAX = 64 * 1024;

export type Principal = 'replica' | 'client';

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

export interface Identity {
  cluster: ClusterConfig;
  key: PrivateKey;
}

export interface GenerateKeyringOptions {
  /** 3f+1; with replicaUrls, optional (their count). */
  replicas?: number;
  clients: number;
  out: string;
  /** Host in every replica URL; default 127.0.0.1. IPv6 literals may be given with or without brackets. */
  host?: string;
  /** Replica i listens at basePort + i; default 7001. */
  basePort?: number;
  /**
   * One URL per replica, in id order (replicas on many hosts): ws://host:port, the address the
   * replica listens on and its peers and clients dial. Excludes host/basePort; `replicas`, when
   * given, must equal its length.
   */
  replicaUrls?: readonly string[];
  /** Default: 16 random bytes, hex. */
  clusterId?: string;
  /** Overwrite an existing keyring and remove stale key files beyond the new counts. */
  force?: boolean;
}

export interface GeneratedKeyring {
  cluster: ClusterConfig;
  /** Every file written, key files first, cluster.json last. */
  written: string[];
  /** Stale files removed (only with force). */
  removed: string[];
}

export function keyFileName(principal: Principal, id: number): string {
  return `${principal}-${id}.key`;
}

// ---------------------------------------------------------------------------------------------
// Validation helpers

type Json = Record<string, unknown>;

const HEX_KEY = /^[0-9a-fA-F]{64}$/;
const PRINTABLE_ASCII = /^[\x20-\x7e]+$/;

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function describe(value: unknown): string {
  if (value === undefined) return 'missing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return `"${value.length > 40 ? value.slice(0, 40) + '...' : value}"`;
  if (typeof value === 'object') return 'an object';
  return String(value);
}

function isNonNegativeInteger(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/** Why `id` is not an acceptable cluster id, or null when it is. */
function clusterIdProblem(id: unknown): string | null {
  if (typeof id !== 'string') return `must be a string, got ${describe(id)}`;
  if (id.length === 0) return 'must not be empty';
  if (id.length > CLUSTER_ID_CHARS_MAX) return `must be at most ${CLUSTER_ID_CHARS_MAX} characters, got ${id.length}`;
  if (!PRINTABLE_ASCII.test(id)) return 'must contain only printable ASCII characters';
  return null;
}

function checkFields(obj: Json, allowed: readonly string[], where: string, source: string): void {
  for (const key of allowed) {
    if (!(key in obj)) throw malformed(source, `${where}missing field "${key}"`);
  }
  for (const key of Object.keys(obj)) {
    if (!allowed.includes(key)) throw malformed(source, `${where}unknown field "${key.slice(0, 40)}"`);
  }
}

function malformed(source: string, problem: string): KeyringError {
  return new KeyringError('MALFORMED', `${source}: ${problem}`, source);
}

function hexToBytes(hex: string): Uint8Array {
  return new Uint8Array(Buffer.from(hex, 'hex'));
}

function bytesToHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
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
function parseReplicaUrl(value: unknown): { address: string } | { problem: string } {
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

/**
 * Checks one URL per replica (keygen --replica-urls / --hosts-file): each a ws:// URL with a host
 * and an explicit port, no two replicas at the same host:port. Returns them normalized (no
 * trailing path); throws a KeyringError naming the replica at fault.
 */
export function checkReplicaUrls(urls: readonly string[]): string[] {
  const seen = new Map<string, number>();
  return urls.map((raw, id) => {
    const value = raw.trim();
    const parsed = parseReplicaUrl(value);
    if ('problem' in parsed) throw new KeyringError('BAD_OPTION', `replica ${id}: URL ${parsed.problem}`);
    if (!/^ws:\/\//i.test(value)) {
      throw new KeyringError('BAD_OPTION', `replica ${id}: URL ${describe(value)}: replicas serve plain ws:// (put TLS in front with a proxy and keep ws:// here)`);
    }
    const url = new URL(value);
    if ((url.pathname !== '/' && url.pathname !== '') || url.search !== '') {
      throw new KeyringError('BAD_OPTION', `replica ${id}: URL ${describe(value)} must not have a path or query`);
    }
    const other = seen.get(parsed.address);
    if (other !== undefined) throw new KeyringError('BAD_OPTION', `replicas ${other} and ${id} both use ${parsed.address}`);
    seen.set(parsed.address, id);
    return `ws://${url.host}`;
  });
}

/**
 * A hosts file (in the spirit of BFT-SMaRt's hosts.config): one replica per line, in id order,
 * `<id> <host> <port>` or `<id> ws://host:port`; blank lines and `#` comments are ignored. Ids must
 * be 0, 1, 2, ... in order. Returns the URLs; throws a KeyringError naming the line at fault.
 */
export function parseHostsFile(text: string, source: string): string[] {
  const urls: string[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.replace(/#.*$/, '').trim();
    if (line === '') continue;
    const where = `${source}:${i + 1}`;
    const fields = line.split(/\s+/);
    if (!/^\d+$/.test(fields[0]!)) throw new KeyringError('BAD_OPTION', `${where}: expected "<id> <host> <port>" or "<id> ws://host:port"; got ${describe(line)}`);
    const id = Number(fields[0]);
    if (id !== urls.length) throw new KeyringError('BAD_OPTION', `${where}: expected replica id ${urls.length} (ids are 0, 1, 2, ... in order); got ${id}`);
    if (fields.length === 2 && /^wss?:\/\//i.test(fields[1]!)) urls.push(fields[1]!);
    else if (fields.length === 3 && /^\d{1,5}$/.test(fields[2]!)) {
      const host = fields[1]!.includes(':') && !fields[1]!.startsWith('[') ? `[${fields[1]}]` : fields[1]!;
      urls.push(`ws://${host}:${fields[2]}`);
    } else throw new KeyringError('BAD_OPTION', `${where}: expected "<id> <host> <port>" or "<id> ws://host:port"; got ${describe(line)}`);
  }
  if (urls.length === 0) throw new KeyringError('BAD_OPTION', `${source}: no replicas listed`);
  return urls;
}

/** Validates a parsed cluster.json strictly; `source` names it in error messages. */
export function parseCluster(json: unknown, source: string): ClusterConfig {
  if (!isObject(json)) throw malformed(source, `must be a JSON object, got ${describe(json)}`);
  checkFields(json, ['version', 'clusterId', 'f', 'replicas', 'clients'], '', source);
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
  const n = 3 * f + 1;
  if (json.replicas.length !== n) {
    throw malformed(source, `f = ${f} needs n = 3f+1 = ${n} replicas, got ${json.replicas.length}`);
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

  return { clusterId, f, replicas, clients };
}

/** cluster.json text: stable key order, two-space indent, trailing newline. Validates first. */
export function serializeCluster(cluster: ClusterConfig): string {
  const json = {
    version: KEYRING_VERSION,
    clusterId: cluster.clusterId,
    f: cluster.f,
    replicas: cluster.replicas.map((r) => ({ id: r.id, url: r.url, publicKey: bytesToHex(r.publicKey) })),
    clients: cluster.clients.map((c) => ({ id: c.id, publicKey: bytesToHex(c.publicKey) })),
  };
  // Never write a keyring that cannot be read back.
  parseCluster(json, 'cluster to serialize');
  return JSON.stringify(json, null, 2) + '\n';
}

/** Reads a file of bounded size; `fd` handling lets callers fstat the same file they read. */
function readBounded(path: string, what: string, bytesMax: number, check?: (fd: number) => void): Buffer {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    throw readError(path, what, err);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new KeyringError('READ_FAILED', `${what} ${path} is not a regular file`, path);
    check?.(fd);
    if (st.size > bytesMax) {
      throw new KeyringError('MALFORMED', `${what} ${path} is too large (${st.size} bytes, at most ${bytesMax})`, path);
    }
    return readFileSync(fd);
  } catch (err) {
    if (err instanceof KeyringError) throw err;
    throw readError(path, what, err);
  } finally {
    closeSync(fd);
  }
}

function errnoCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err ? String((err as { code: unknown }).code) : undefined;
}

function errnoMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function readError(path: string, what: string, err: unknown): KeyringError {
  const code = errnoCode(err);
  if (code === 'ENOENT') return new KeyringError('NOT_FOUND', `${what} ${path} not found`, path);
  if (code === 'EISDIR') return new KeyringError('READ_FAILED', `${what} ${path} is a directory`, path);
  return new KeyringError('READ_FAILED', `cannot read ${what} ${path}: ${errnoMessage(err)}`, path);
}

/** Reads and validates a cluster.json. */
export function loadCluster(path: string): ClusterConfig {
  const text = readBounded(path, 'cluster file', KEYRING_FILE_BYTES_MAX).toString('utf8');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw malformed(path, `invalid JSON (${errnoMessage(err)})`);
  }
  return parseCluster(json, path);
}

// ---------------------------------------------------------------------------------------------
// Private key files

function checkKeyFileMode(path: string, fd: number): void {
  // Windows reports synthetic modes; its ACLs are out of scope here.
  if (process.platform === 'win32') return;
  const mode = fstatSync(fd).mode & 0o777;
  if ((mode & 0o077) !== 0) {
    throw new KeyringError(
      'INSECURE_PERMISSIONS',
      `private key ${path} has mode 0${mode.toString(8).padStart(3, '0')}, which lets group or others access it; run chmod 600 ${path}`,
      path,
    );
  }
}

/**
 * Loads a private key file: refuses one readable (or writable) by group or others, validates its
 * shape, checks that the stored public key is the one derived from the secret key and, when
 * `expected` is given, that it belongs to that principal (and cluster keyring entry).
 */
export function loadPrivateKey(path: string, expected?: ExpectedKey): PrivateKey {
  const raw = readBounded(path, 'private key', KEY_FILE_BYTES_MAX, (fd) => checkKeyFileMode(path, fd));
  let json: unknown;
  try {
    json = JSON.parse(raw.toString('utf8'));
  } catch {
    // The parser's message can quote the file's text, which holds the secret: do not include it.
    throw malformed(path, 'invalid JSON');
  } finally {
    raw.fill(0);
  }
  if (!isObject(json)) throw malformed(path, `must be a JSON object, got ${describe(json)}`);
  checkFields(json, ['version', 'clusterId', 'principal', 'id', 'publicKey', 'secretKey'], '', path);
  if (json.version !== KEYRING_VERSION) {
    throw malformed(path, `unsupported version ${describe(json.version)} (expected ${KEYRING_VERSION})`);
  }
  const idProblem = clusterIdProblem(json.clusterId);
  if (idProblem !== null) throw malformed(path, `clusterId ${idProblem}`);
  const clusterId = json.clusterId as string;
  const principal = json.principal;
  if (principal !== 'replica' && principal !== 'client') {
    throw malformed(path, `principal must be "replica" or "client", got ${describe(principal)}`);
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
  if (!bytesEqual(nodeDerivePublicKey(secretKey), publicKey)) {
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

function checkExpected(path: string, key: PrivateKey, expected: ExpectedKey): void {
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

/** Loads `<keysDir>/cluster.json` and `<keysDir>/<principal>-<id>.key` and checks them together. */
export function loadIdentity(keysDir: string, principal: Principal, id: number): Identity {
  if (principal !== 'replica' && principal !== 'client') {
    throw new KeyringError('BAD_OPTION', `principal must be "replica" or "client", got ${describe(principal)}`);
  }
  if (!isNonNegativeInteger(id)) throw new KeyringError('BAD_OPTION', `${principal} id must be a non-negative integer, got ${describe(id)}`);
  const cluster = loadCluster(join(keysDir, CLUSTER_FILE));
  const key = loadPrivateKey(join(keysDir, keyFileName(principal, id)), { principal, id, cluster });
  return { cluster, key };
}

// ---------------------------------------------------------------------------------------------
// Generation

const KEY_FILE_PATTERN = /^(replica|client)-(0|[1-9][0-9]*)\.key$/;
const TEMP_FILE_PATTERN = /^(?:(?:replica|client)-(?:0|[1-9][0-9]*)\.key|cluster\.json)\.tmp-[0-9a-f]{12}$/;

function writeError(path: string, err: unknown): KeyringError {
  return new KeyringError('WRITE_FAILED', `cannot write ${path}: ${errnoMessage(err)}`, path);
}

/**
 * Writes `data` to `path` atomically: a fresh temporary file in the same directory (created with
 * mode 0600, never following an existing file), fsync, then rename over the destination.
 * The caller fsyncs the directory.
 */
export function writeFileAtomic(path: string, data: Uint8Array | string, mode = 0o600): void {
  const temp = `${path}.tmp-${randomBytes(6).toString('hex')}`;
  let fd: number | undefined;
  try {
    fd = openSync(temp, 'wx', 0o600);
    if (mode !== 0o600) fchmodSync(fd, mode);
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    let offset = 0;
    while (offset < bytes.length) offset += writeSync(fd, bytes, offset, bytes.length - offset);
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    renameSync(temp, path);
  } catch (err) {
    if (fd !== undefined) {
      try {
        closeSync(fd);
      } catch {
        // already failing; report the first error
      }
    }
    try {
      unlinkSync(temp);
    } catch {
      // the temporary file may not exist
    }
    throw writeError(path, err);
  }
}

function fsyncDirectory(dir: string): void {
  if (process.platform === 'win32') return; // directories cannot be opened for fsync there
  let fd: number | undefined;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch (err) {
    throw writeError(dir, err);
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

function validateHost(host: string): string {
  const bad = (why: string): KeyringError => new KeyringError('BAD_OPTION', `--host ${describe(host)} ${why}`);
  if (host.length === 0) throw bad('must not be empty');
  if (host.length > 253) throw bad('is too long');
  const ipv6 = /^\[?([0-9a-fA-F:.]+)\]?$/.exec(host);
  let urlHost: string;
  if (host.includes(':')) {
    if (ipv6 === null) throw bad('is not a valid host name or IP address');
    urlHost = `[${ipv6[1]}]`;
  } else {
    if (!/^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*\.?$/.test(host)) {
      throw bad('is not a valid host name or IP address');
    }
    urlHost = host;
  }
  try {
    const url = new URL(`ws://${urlHost}:1/`);
    if (url.hostname === '') throw new Error('empty');
  } catch {
    throw bad('is not a valid host name or IP address');
  }
  return urlHost;
}

function isReplicaCount(n: number): boolean {
  return Number.isSafeInteger(n) && n >= 4 && (n - 1) % 3 === 0;
}

/**
 * Generates a fresh keyring in `options.out`: one private key file per replica and client, then
 * cluster.json, each written atomically, then the directory is fsynced.
 */
export function generateKeyring(options: GenerateKeyringOptions): GeneratedKeyring {
  const { clients, out } = options;
  const urls = options.replicaUrls;
  if (urls !== undefined) {
    if (options.host !== undefined || options.basePort !== undefined) {
      throw new KeyringError('BAD_OPTION', '--replica-urls gives every replica its address: do not combine it with --host or --base-port');
    }
    if (options.replicas !== undefined && options.replicas !== urls.length) {
      throw new KeyringError('BAD_OPTION', `--replicas ${options.replicas} does not match the ${urls.length} replica URLs given`);
    }
  }
  const replicas = urls?.length ?? options.replicas;
  if (replicas === undefined || !isReplicaCount(replicas)) {
    if (urls !== undefined) throw new KeyringError('BAD_REPLICA_COUNT', `give 3f+1 replica URLs with f >= 1 (4, 7, 10, ...); got ${urls.length}`);
    throw new KeyringError('BAD_REPLICA_COUNT', `--replicas must be 3f+1 with f >= 1 (4, 7, 10, ...); got ${replicas}`);
  }
  if (!Number.isSafeInteger(clients) || clients < 0) {
    throw new KeyringError('BAD_OPTION', `--clients must be a non-negative integer; got ${clients}`);
  }
  const urlHost = validateHost(options.host ?? '127.0.0.1');
  const basePort = options.basePort ?? 7001;
  if (!Number.isSafeInteger(basePort) || basePort < 1 || basePort > 65535) {
    throw new KeyringError('BAD_OPTION', `--base-port must be an integer from 1 to 65535; got ${basePort}`);
  }
  const replicaUrls = urls !== undefined ? checkReplicaUrls(urls) : undefined;
  if (replicaUrls === undefined && basePort + replicas - 1 > 65535) {
    throw new KeyringError(
      'BAD_OPTION',
      `--base-port ${basePort} with ${replicas} replicas needs ports up to ${basePort + replicas - 1}; the maximum is 65535`,
    );
  }
  const clusterId = options.clusterId ?? randomBytes(16).toString('hex');
  const idProblem = clusterIdProblem(clusterId);
  if (idProblem !== null) throw new KeyringError('BAD_OPTION', `--cluster-id ${idProblem}`);
  if (typeof out !== 'string' || out.length === 0) throw new KeyringError('BAD_OPTION', '--out must be a directory path');
  const force = options.force === true;

  // Refuse to clobber an existing keyring (or stray private keys) unless forced.
  const clusterPath = join(out, CLUSTER_FILE);
  let dirExists = false;
  try {
    const st = statSync(out);
    if (!st.isDirectory()) throw new KeyringError('BAD_OPTION', `--out ${out} exists and is not a directory`, out);
    dirExists = true;
  } catch (err) {
    if (err instanceof KeyringError) throw err;
    if (errnoCode(err) !== 'ENOENT') throw new KeyringError('READ_FAILED', `cannot inspect ${out}: ${errnoMessage(err)}`, out);
  }
  let existing: string[] = [];
  if (dirExists) {
    try {
      existing = readdirSync(out);
    } catch (err) {
      throw new KeyringError('READ_FAILED', `cannot list ${out}: ${errnoMessage(err)}`, out);
    }
    if (!force) {
      if (existing.includes(CLUSTER_FILE)) {
        throw new KeyringError('EXISTS', `${clusterPath} already exists; pass --force to overwrite the keyring`, clusterPath);
      }
      const keyFile = existing.find((name) => KEY_FILE_PATTERN.test(name));
      if (keyFile !== undefined) {
        const path = join(out, keyFile);
        throw new KeyringError('EXISTS', `${path} already exists; pass --force to overwrite the keyring`, path);
      }
    }
  } else {
    try {
      mkdirSync(out, { recursive: true, mode: 0o700 });
      chmodSync(out, 0o700); // independent of the umask
    } catch (err) {
      throw new KeyringError('WRITE_FAILED', `cannot create directory ${out}: ${errnoMessage(err)}`, out);
    }
  }

  const written: string[] = [];
  const makeKey = (principal: Principal, id: number): Uint8Array => {
    const secretKey = randomSecretKey();
    const publicKey = nobleDerivePublicKey(secretKey);
    const path = join(out, keyFileName(principal, id));
    const body = {
      version: KEYRING_VERSION,
      clusterId,
      principal,
      id,
      publicKey: bytesToHex(publicKey),
      secretKey: bytesToHex(secretKey),
    };
    const bytes = Buffer.from(JSON.stringify(body, null, 2) + '\n', 'utf8');
    try {
      writeFileAtomic(path, bytes, 0o600);
    } finally {
      bytes.fill(0);
      secretKey.fill(0);
    }
    written.push(path);
    return publicKey;
  };

  const replicaInfos: ReplicaInfo[] = [];
  for (let id = 0; id < replicas; id++) {
    replicaInfos.push({ id, url: replicaUrls?.[id] ?? `ws://${urlHost}:${basePort + id}`, publicKey: makeKey('replica', id) });
  }
  const clientInfos: ClientInfo[] = [];
  for (let id = 0; id < clients; id++) clientInfos.push({ id, publicKey: makeKey('client', id) });

  const cluster: ClusterConfig = { clusterId, f: (replicas - 1) / 3, replicas: replicaInfos, clients: clientInfos };
  // cluster.json is public: readable by all once the directory permits it.
  writeFileAtomic(clusterPath, serializeCluster(cluster), 0o644);
  written.push(clusterPath);

  const removed: string[] = [];
  if (force) {
    for (const name of existing) {
      const match = KEY_FILE_PATTERN.exec(name);
      const stale = match !== null
        ? Number(match[2]) >= (match[1] === 'replica' ? replicas : clients)
        : TEMP_FILE_PATTERN.test(name);
      if (!stale) continue;
      const path = join(out, name);
      try {
        unlinkSync(path);
        removed.push(path);
      } catch (err) {
        if (errnoCode(err) !== 'ENOENT') {
          throw new KeyringError('WRITE_FAILED', `cannot remove stale file ${path}: ${errnoMessage(err)}`, path);
        }
      }
    }
  }
  fsyncDirectory(out);
  return { cluster, written, removed };
}
