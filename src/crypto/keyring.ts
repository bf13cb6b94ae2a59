/**
 * Keyrings on disk: the public `cluster.json` and one private key file per replica and client.
 *
 * `cluster.json` (public, shared by every replica and client):
 *   { "version": 1, "clusterId": "...", "f": 1, ["faultModel": "crash",]
 *     "replicas": [{ "id": 0, "url": "ws://127.0.0.1:7001", "publicKey": "<64 hex>" }, ...],
 *     "clients":  [{ "id": 0, "publicKey": "<64 hex>" }, ...] }
 *   n = 3f+1 replicas; with "faultModel": "crash" (absent: byzantine), n = 2f+1 (src/core/quorum.ts).
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
  existsSync,
} from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { ClientInfo, ClusterConfig, FaultModel, ReplicaInfo } from '../core/cluster.ts';
import { faultsOf, replicasFor, replicasMin } from '../core/quorum.ts';
import {
  bytesToHex,
  clusterIdProblem,
  describe,
  isNonNegativeInteger,
  KEYRING_VERSION,
  KeyringError,
  malformed,
  parseCluster,
  parsePrivateKey,
  parseReplicaUrl,
  serializeCluster,
  type ExpectedKey,
  type Principal,
  type PrivateKey,
} from './keyring-json.ts';
import { nobleDerivePublicKey, randomSecretKey } from './noble.ts';

// Validation of the files' JSON lives in keyring-json.ts (no node:*, shared with the browser SDK).
export {
  CLUSTER_ID_CHARS_MAX,
  KEYRING_VERSION,
  KeyringError,
  parseCluster,
  parsePrivateKey,
  serializeCluster,
  type ExpectedKey,
  type KeyringErrorCode,
  type Principal,
  type PrivateKey,
} from './keyring-json.ts';

export const CLUSTER_FILE = 'cluster.json';
/** Larger files are refused before they are read (a keyring of 10,000 clients is about 1 MiB). */
export const KEYRING_FILE_BYTES_MAX = 16 * 1024 * 1024;
const KEY_FILE_BYTES_MAX = 64 * 1024;

export interface Identity {
  cluster: ClusterConfig;
  key: PrivateKey;
  /** Not in the keyring's own lists: a replica or client that a membership change adds. */
  added?: boolean;
}

export interface GenerateKeyringOptions {
  /** 3f+1 (crash: 2f+1); with replicaUrls, optional (their count). */
  replicas?: number;
  /** Default 'byzantine' (n = 3f+1); 'crash' makes a crash-fault cluster of n = 2f+1 (src/core/quorum.ts). */
  faultModel?: FaultModel;
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
  return principal === 'operator' ? OPERATOR_KEY_FILE : `${principal}-${id}.key`;
}

/** The operator's private key: it signs membership changes (`pbft member`, `pbft client-key`). */
export const OPERATOR_KEY_FILE = 'operator.key';

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
  return parsePrivateKey(json, path, expected);
}

/** Loads `<keysDir>/cluster.json` and `<keysDir>/<principal>-<id>.key` and checks them together. */
export function loadIdentity(keysDir: string, principal: Principal, id: number): Identity {
  if (principal !== 'replica' && principal !== 'client' && principal !== 'operator') {
    throw new KeyringError('BAD_OPTION', `principal must be "replica", "client" or "operator", got ${describe(principal)}`);
  }
  if (!isNonNegativeInteger(id)) throw new KeyringError('BAD_OPTION', `${principal} id must be a non-negative integer, got ${describe(id)}`);
  const cluster = loadCluster(join(keysDir, CLUSTER_FILE));
  const path = join(keysDir, keyFileName(principal, id));
  const listed = principal === 'operator' || (principal === 'replica' ? cluster.replicas : cluster.clients).some((e) => e.id === id);
  if (listed) return { cluster, key: loadPrivateKey(path, { principal, id, cluster }) };
  // Not in the keyring it starts from: a replica or client added later by a membership change. Its
  // key is checked against the configuration that admitted it (the replicas refuse a wrong one).
  const key = loadPrivateKey(path, { principal, id });
  if (key.clusterId !== cluster.clusterId) {
    key.secretKey.fill(0);
    throw new KeyringError('KEY_MISMATCH', `private key ${path} belongs to cluster "${key.clusterId}", not to cluster "${cluster.clusterId}"`, path);
  }
  return { cluster, key, added: true };
}

/**
 * Writes a new private key file (for a replica or client a membership change adds); refuses to
 * overwrite one. Returns the public key.
 */
export function writeNewKey(dir: string, clusterId: string, principal: Principal, id: number): { path: string; publicKey: Uint8Array } {
  const path = join(dir, keyFileName(principal, id));
  if (existsSync(path)) throw new KeyringError('EXISTS', `${path} already exists; use its public key (or remove it first)`, path);
  const publicKey = writeKeyFile(path, clusterId, principal, id);
  fsyncDirectory(dir);
  return { path, publicKey };
}

// ---------------------------------------------------------------------------------------------
// Generation

/** A fresh key pair written as a private key file (atomically, mode 0600); returns the public key. */
function writeKeyFile(path: string, clusterId: string, principal: Principal, id: number): Uint8Array {
  const secretKey = randomSecretKey();
  const publicKey = nobleDerivePublicKey(secretKey);
  const body = { version: KEYRING_VERSION, clusterId, principal, id, publicKey: bytesToHex(publicKey), secretKey: bytesToHex(secretKey) };
  const bytes = Buffer.from(JSON.stringify(body, null, 2) + '\n', 'utf8');
  try {
    writeFileAtomic(path, bytes, 0o600);
  } finally {
    bytes.fill(0);
    secretKey.fill(0);
  }
  return publicKey;
}

const KEY_FILE_PATTERN = /^(replica|client)-(0|[1-9][0-9]*)\.key$/;
const TEMP_FILE_PATTERN = /^(?:(?:replica|client)-(?:0|[1-9][0-9]*)\.key|cluster\.json|operator\.key)\.tmp-[0-9a-f]{12}$/;

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

/**
 * n = 3f+1 (crash: 2f+1) with f >= 1. The counts in between are refused: 3f+2 and 3f+3 replicas
 * tolerate no more faults than 3f+1 (f is floor((n-1)/3)) but need a larger quorum, and in the crash
 * mode 2f+2 tolerates no more crashes than 2f+1 but needs f+2 votes: each extra machine only adds
 * one that must be up. (A reconfiguration may still reach such a count; quorum.ts handles it.)
 */
function isReplicaCount(n: number, model: FaultModel): boolean {
  return Number.isSafeInteger(n) && n >= replicasMin(model) && n === replicasFor(faultsOf(n, model), model);
}

function replicaCountRule(model: FaultModel, what = ''): string {
  return model === 'crash' ? `2f+1${what} with f >= 1 for --fault-model crash (3, 5, 7, ...)` : `3f+1${what} with f >= 1 (4, 7, 10, ...)`;
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
  const model = options.faultModel ?? 'byzantine';
  if (model !== 'byzantine' && model !== 'crash') throw new KeyringError('BAD_OPTION', `--fault-model must be byzantine or crash; got ${describe(model)}`);
  if (replicas === undefined || !isReplicaCount(replicas, model)) {
    const even = model === 'crash' && replicas !== undefined && replicas >= 4 && replicas % 2 === 0
      ? ` (${replicas} replicas tolerate no more crashes than ${replicas - 1} and need one more vote)`
      : model === 'crash' && replicas !== undefined && replicas < 3 ? ' (fewer than 3 replicas cannot survive one crash)' : '';
    if (urls !== undefined) throw new KeyringError('BAD_REPLICA_COUNT', `give ${replicaCountRule(model, ' replica URLs')}; got ${urls.length}${even}`);
    throw new KeyringError('BAD_REPLICA_COUNT', `--replicas must be ${replicaCountRule(model)}; got ${replicas}${even}`);
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
    const path = join(out, keyFileName(principal, id));
    const publicKey = writeKeyFile(path, clusterId, principal, id);
    written.push(path);
    return publicKey;
  };

  const replicaInfos: ReplicaInfo[] = [];
  for (let id = 0; id < replicas; id++) {
    replicaInfos.push({ id, url: replicaUrls?.[id] ?? `ws://${urlHost}:${basePort + id}`, publicKey: makeKey('replica', id) });
  }
  const clientInfos: ClientInfo[] = [];
  for (let id = 0; id < clients; id++) clientInfos.push({ id, publicKey: makeKey('client', id) });

  const operatorKey = makeKey('operator', 0);
  const cluster: ClusterConfig = { clusterId, f: faultsOf(replicas, model), ...(model === 'crash' ? { faultModel: model } : {}), replicas: replicaInfos, clients: clientInfos, operatorKey };
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
