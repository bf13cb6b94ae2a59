/**
 * Membership as replicated state: which replicas (id, URL, public key) and which clients make up
 * the cluster, in numbered epochs, changed only by requests ordered through consensus.
 *
 * The rules (README, "How it stays correct": Membership):
 *
 *   - Reconfiguration requests come from the operator (the principal OPERATOR_CLIENT, whose key is
 *     part of the configuration) and are executed like any request, at some sequence number s. One
 *     change at a time: a second one while another is pending is refused (an error result).
 *   - A change executed at s takes effect after the checkpoint c = the first multiple of K at or
 *     above s + L (K the checkpoint interval, L the log window): the batches s+1..c are still
 *     ordered by the old configuration, and c+1.. by the new one ("epoch" + 1). Why s + L: a
 *     correct replica votes on a sequence number q only inside its window (h, h+L], h its stable
 *     checkpoint; q > c >= s + L means h > s, so every correct replica that votes on q has a stable
 *     checkpoint past s and knows which configuration orders q.
 *   - No correct replica votes above c until it holds a stable checkpoint at c (the window is cut at
 *     c): the new epoch starts from a checkpoint certified by the old configuration, whose state
 *     digest covers the new configuration. That certificate plus the opening of the digest is an
 *     EpochProof: a replica or client that knows epoch e verifies epoch e+1 from it, offline, and
 *     so follows any number of reconfigurations from the genesis keyring (never from a file it is
 *     handed later).
 *   - f follows n: f = floor((n-1)/3), and every quorum is ceil((n+f+1)/2) (2f+1 when n = 3f+1),
 *     so that any two quorums share a correct replica for n = 3f+1 .. 3f+3. In the crash-fault mode
 *     f = floor((n-1)/2) and every quorum is a majority (quorum.ts chooses both). The fault model is
 *     part of the configuration (and so of the certified state digest) and no change alters it.
 *
 * Pure data and pure functions: no I/O, no clocks.
 */
import { OPERATOR_CLIENT, REPLICA_PRINCIPAL_BASE, replicaOfPrincipal, type ClientInfo, type ClusterConfig, type FaultModel, type ReplicaInfo } from './cluster.ts';
import { asArray, asBytes, asString, asUint, bytesEqual, decodeCbor, encodeCbor, fail, guarded, type Decoded } from './encoding.ts';
import { faultsOf, replicasMin } from './quorum.ts';

export { OPERATOR_CLIENT, REPLICA_PRINCIPAL_BASE };
/** The most replicas a configuration may have. */
const REPLICAS_MAX = 64;
/** The most clients a configuration may register. */
const CLIENTS_MAX = 100_000;
const URL_BYTES_MAX = 512;

export interface MemberConfig {
  /** 0 for the keyring's configuration; +1 per change. */
  epoch: number;
  /** The checkpoint after which this configuration orders requests (0 for epoch 0). */
  since: number;
  /** Ascending ids (not necessarily dense after a removal). */
  replicas: ReplicaInfo[];
  /** Ascending ids. */
  clients: ClientInfo[];
  /** The operator's public key (32 bytes), or undefined when the keyring has none (no reconfiguration). */
  operator?: Uint8Array;
  /** The keyring's fault model, carried unchanged through every epoch; absent: byzantine. */
  faultModel?: FaultModel;
}

/** The replicated membership: the configuration in force, and the next one once a change executed. */
export interface Membership {
  current: MemberConfig;
  next?: MemberConfig;
}

export type ReconfigOp =
  | { kind: 'add-replica'; replica: ReplicaInfo }
  | { kind: 'remove-replica'; id: number }
  | { kind: 'add-client'; client: ClientInfo }
  | { kind: 'remove-client'; id: number }
  /** A replica leaves, signed by itself (e.g. when its audit found its state faulty). */
  | { kind: 'quit'; id: number }
  /**
   * A replica joins, signed by itself (its key is the one in `replica`), carrying the operator's
   * admission: the operator's signature over admissionBytes(clusterId, replica).
   */
  | { kind: 'join'; replica: ReplicaInfo; admission: Uint8Array };

export type ReconfigResult =
  | { ok: true; epoch: number; since: number; replicas: number[] }
  | { ok: false; reason: string };

/** The largest f that n replicas tolerate in the fault model (quorum.ts decides). */
export function faultsFor(n: number, model: FaultModel = 'byzantine'): number {
  return faultsOf(n, model);
}

/** The fault model of a configuration ('byzantine' when it names none). */
export function modelOf(c: { faultModel?: FaultModel }): FaultModel {
  return c.faultModel ?? 'byzantine';
}

export function genesisMembership(cluster: ClusterConfig): Membership {
  const sorted = <T extends { id: number }>(xs: T[]): T[] => [...xs].sort((a, b) => a.id - b.id);
  return {
    current: {
      epoch: 0,
      since: 0,
      replicas: sorted(cluster.replicas),
      clients: sorted(cluster.clients),
      operator: cluster.operatorKey,
      ...(cluster.faultModel === 'crash' ? { faultModel: 'crash' as const } : {}),
    },
  };
}

/** The configuration as the ClusterConfig the Authenticator and the shell know. */
export function clusterOf(clusterId: string, c: MemberConfig): ClusterConfig {
  const model = modelOf(c);
  return { clusterId, f: faultsFor(c.replicas.length, model), ...(model === 'crash' ? { faultModel: model } : {}), replicas: c.replicas, clients: c.clients, operatorKey: c.operator };
}

// --- canonical encoding ---------------------------------------------------------------------------

function configToCbor(c: MemberConfig): unknown[] {
  const fields: unknown[] = [
    c.epoch,
    c.since,
    c.replicas.map((r) => [r.id, r.url, r.publicKey]),
    c.clients.map((k) => [k.id, k.publicKey]),
    c.operator ?? new Uint8Array(0),
  ];
  // A sixth field only in the crash mode: a byzantine configuration encodes (and digests) exactly as
  // it did before the mode existed.
  if (c.faultModel === 'crash') fields.push('crash');
  return fields;
}

function configFromCbor(v: unknown, what: string): MemberConfig {
  const a = asArray(v, what, 6);
  if (a.length !== 5 && !(a.length === 6 && a[5] === 'crash')) fail(`${what}: expected 5 fields, or 6 ending in "crash"`);
  const faultModel: FaultModel = a.length === 6 ? 'crash' : 'byzantine';
  let prev = -1;
  const replicas = asArray(a[2], `${what}.replicas`, REPLICAS_MAX).map((r, i) => {
    const x = asArray(r, `${what}.replicas[${i}]`, 3);
    const id = asUint(x[0], 'replica id', 0xffff);
    if (id <= prev) fail(`${what}: replica ids not ascending`);
    prev = id;
    return { id, url: asString(x[1], 'replica url', URL_BYTES_MAX), publicKey: asBytes(x[2], 'replica key', 32) };
  });
  prev = -1;
  const clients = asArray(a[3], `${what}.clients`, CLIENTS_MAX).map((k, i) => {
    const x = asArray(k, `${what}.clients[${i}]`, 2);
    const id = asUint(x[0], 'client id', REPLICA_PRINCIPAL_BASE - 1);
    if (id <= prev) fail(`${what}: client ids not ascending`);
    prev = id;
    return { id, publicKey: asBytes(x[1], 'client key', 32) };
  });
  const op = asBytes(a[4], 'operator key', undefined, 32);
  if (op.length !== 0 && op.length !== 32) fail(`${what}: operator key must be 32 bytes`);
  if (replicas.length < replicasMin(faultModel)) fail(`${what}: fewer than ${replicasMin(faultModel)} replicas`);
  return {
    epoch: asUint(a[0], 'epoch'),
    since: asUint(a[1], 'since'),
    replicas,
    clients,
    operator: op.length === 32 ? op : undefined,
    ...(faultModel === 'crash' ? { faultModel } : {}),
  };
}

/** Canonical bytes of the membership (covered by the checkpoint digest). */
export function encodeMembership(m: Membership): Uint8Array {
  return encodeCbor([configToCbor(m.current), m.next ? configToCbor(m.next) : null]);
}

export function decodeMembership(bytes: Uint8Array): Decoded<Membership> {
  const d = decodeCbor(bytes);
  if (!d.ok) return d;
  return guarded(() => {
    const a = asArray(d.value, 'membership', 2);
    if (a.length !== 2) fail('membership: expected 2 fields');
    const current = configFromCbor(a[0], 'membership.current');
    const next = a[1] === null ? undefined : configFromCbor(a[1], 'membership.next');
    if (next && next.epoch !== current.epoch + 1) fail('membership: next epoch is not current + 1');
    if (next && modelOf(next) !== modelOf(current)) fail('membership: a reconfiguration cannot change the fault model');
    return { current, next };
  });
}

// --- reconfiguration requests -------------------------------------------------------------------

export function encodeReconfigOp(op: ReconfigOp): Uint8Array {
  switch (op.kind) {
    case 'add-replica':
      return encodeCbor(['add-replica', op.replica.id, op.replica.url, op.replica.publicKey]);
    case 'remove-replica':
      return encodeCbor(['remove-replica', op.id]);
    case 'add-client':
      return encodeCbor(['add-client', op.client.id, op.client.publicKey]);
    case 'remove-client':
      return encodeCbor(['remove-client', op.id]);
    case 'quit':
      return encodeCbor(['quit', op.id]);
    case 'join':
      return encodeCbor(['join', op.replica.id, op.replica.url, op.replica.publicKey, op.admission]);
  }
}

export function decodeReconfigOp(bytes: Uint8Array): Decoded<ReconfigOp> {
  const d = decodeCbor(bytes);
  if (!d.ok) return d;
  return guarded((): ReconfigOp => {
    const a = asArray(d.value, 'reconfiguration', 5);
    const kind = asString(a[0], 'reconfiguration kind', 32);
    switch (kind) {
      case 'add-replica':
        return { kind, replica: { id: asUint(a[1], 'replica id', 0xffff), url: asString(a[2], 'replica url', URL_BYTES_MAX), publicKey: asBytes(a[3], 'replica key', 32) } };
      case 'remove-replica':
        return { kind, id: asUint(a[1], 'replica id', 0xffff) };
      case 'add-client':
        return { kind, client: { id: asUint(a[1], 'client id', REPLICA_PRINCIPAL_BASE - 1), publicKey: asBytes(a[2], 'client key', 32) } };
      case 'remove-client':
        return { kind, id: asUint(a[1], 'client id', REPLICA_PRINCIPAL_BASE - 1) };
      case 'quit':
        return { kind, id: asUint(a[1], 'replica id', 0xfffe) };
      case 'join':
        return {
          kind,
          replica: { id: asUint(a[1], 'replica id', 0xfffe), url: asString(a[2], 'replica url', URL_BYTES_MAX), publicKey: asBytes(a[3], 'replica key', 32) },
          admission: asBytes(a[4], 'admission', 64),
        };
      default:
        return fail(`unknown reconfiguration '${kind.slice(0, 32)}'`);
    }
  });
}

export function encodeReconfigResult(r: ReconfigResult): Uint8Array {
  return encodeCbor(r.ok ? ['ok', r.epoch, r.since, r.replicas] : ['error', r.reason]);
}

export function decodeReconfigResult(bytes: Uint8Array): Decoded<ReconfigResult> {
  const d = decodeCbor(bytes);
  if (!d.ok) return d;
  return guarded((): ReconfigResult => {
    const a = asArray(d.value, 'reconfiguration result', 4);
    if (a[0] === 'ok') {
      return { ok: true, epoch: asUint(a[1], 'epoch'), since: asUint(a[2], 'since'), replicas: asArray(a[3], 'replicas', REPLICAS_MAX).map((x) => asUint(x, 'replica id')) };
    }
    if (a[0] === 'error') return { ok: false, reason: asString(a[1], 'reason') };
    return fail('reconfiguration result: unknown kind');
  });
}

const admissionEncoder = new TextEncoder();

/**
 * What the operator signs to admit a replica (the JOIN it then signs itself carries the signature):
 * a domain tag of its own (never a message of the protocol) and the replica's id, URL and key.
 */
export function admissionBytes(clusterId: string, replica: ReplicaInfo): Uint8Array {
  const tag = admissionEncoder.encode(`pbft/1/admission/${clusterId}\0`);
  const body = encodeCbor([replica.id, replica.url, replica.publicKey]);
  const out = new Uint8Array(tag.length + body.length);
  out.set(tag, 0);
  out.set(body, tag.length);
  return out;
}

/** Checks an admission with the operator key of `config` (deterministic: it runs at execution). */
export type AdmissionCheck = (operator: Uint8Array, replica: ReplicaInfo, admission: Uint8Array) => boolean;

/** The checkpoint after which a change executed at `seq` takes effect. */
function switchPoint(seq: number, checkpointInterval: number, windowSize: number): number {
  return Math.ceil((seq + windowSize) / checkpointInterval) * checkpointInterval;
}

/**
 * Executes one reconfiguration request (deterministic; every refusal is a result, never a throw).
 * Returns the membership after it (unchanged on refusal) and the result for the operator.
 */
export function applyReconfig(
  m: Membership,
  opBytes: Uint8Array,
  seq: number,
  checkpointInterval: number,
  windowSize: number,
  /** Who signed the request: OPERATOR_CLIENT, or a replica principal (cluster.ts). */
  requester: number = OPERATOR_CLIENT,
  checkAdmission: AdmissionCheck = () => false,
): { membership: Membership; result: ReconfigResult } {
  const refuse = (reason: string): { membership: Membership; result: ReconfigResult } => ({ membership: m, result: { ok: false, reason } });
  if (m.next) return refuse(`a reconfiguration to epoch ${m.next.epoch} is pending (takes effect after checkpoint ${m.next.since})`);
  const decoded = decodeReconfigOp(opBytes);
  if (!decoded.ok) return refuse(`malformed reconfiguration: ${decoded.reason}`);
  const op = decoded.value;
  // The operator changes anything; a replica only joins (admitted by the operator) or quits, itself.
  const self = replicaOfPrincipal(requester);
  if (self !== undefined && !((op.kind === 'quit' && op.id === self) || (op.kind === 'join' && op.replica.id === self))) {
    return refuse(`replica ${self} may only join or quit itself`);
  }
  if (self === undefined && (op.kind === 'quit' || op.kind === 'join')) {
    return refuse(`${op.kind} is signed by the replica itself (the operator uses ${op.kind === 'quit' ? 'remove-replica' : 'add-replica'})`);
  }
  const cur = m.current;
  let replicas = cur.replicas;
  let clients = cur.clients;
  const keyInUse = (key: Uint8Array): boolean => replicas.some((r) => bytesEqual(r.publicKey, key)) || clients.some((c) => bytesEqual(c.publicKey, key)) || (cur.operator !== undefined && bytesEqual(cur.operator, key));
  switch (op.kind) {
    case 'join':
    case 'add-replica': {
      if (op.kind === 'join' && (cur.operator === undefined || !checkAdmission(cur.operator, op.replica, op.admission))) {
        return refuse(`the admission of replica ${op.replica.id} is not signed by the operator`);
      }
      if (replicas.some((r) => r.id === op.replica.id)) return refuse(`replica ${op.replica.id} is already a member`);
      if (replicas.length >= REPLICAS_MAX) return refuse(`a configuration has at most ${REPLICAS_MAX} replicas`);
      if (keyInUse(op.replica.publicKey)) return refuse('that public key is already in use');
      if (replicas.some((r) => r.url === op.replica.url)) return refuse(`address ${op.replica.url} is already a member's`);
      if (op.replica.url.length === 0) return refuse('a replica needs an address');
      replicas = [...replicas, op.replica].sort((a, b) => a.id - b.id);
      break;
    }
    case 'remove-replica':
    case 'quit': {
      if (!replicas.some((r) => r.id === op.id)) return refuse(`replica ${op.id} is not a member`);
      const min = replicasMin(modelOf(cur));
      if (replicas.length - 1 < min) return refuse(`removing replica ${op.id} would leave ${replicas.length - 1} replicas; at least ${min} are needed`);
      replicas = replicas.filter((r) => r.id !== op.id);
      break;
    }
    case 'add-client': {
      if (clients.some((c) => c.id === op.client.id)) return refuse(`client ${op.client.id} is already registered`);
      if (op.client.id >= REPLICA_PRINCIPAL_BASE) return refuse(`client ids are below ${REPLICA_PRINCIPAL_BASE}`);
      if (clients.length >= CLIENTS_MAX) return refuse(`a configuration has at most ${CLIENTS_MAX} clients`);
      if (keyInUse(op.client.publicKey)) return refuse('that public key is already in use');
      clients = [...clients, op.client].sort((a, b) => a.id - b.id);
      break;
    }
    case 'remove-client': {
      if (!clients.some((c) => c.id === op.id)) return refuse(`client ${op.id} is not registered`);
      clients = clients.filter((c) => c.id !== op.id);
      break;
    }
  }
  const next: MemberConfig = { epoch: cur.epoch + 1, since: switchPoint(seq, checkpointInterval, windowSize), replicas, clients, operator: cur.operator, ...(cur.faultModel === 'crash' ? { faultModel: cur.faultModel } : {}) };
  return { membership: { current: cur, next }, result: { ok: true, epoch: next.epoch, since: next.since, replicas: replicas.map((r) => r.id) } };
}

/** After executing `seq`: the pending configuration becomes the current one at its switch point. */
export function advanceMembership(m: Membership, seq: number): Membership {
  return m.next && m.next.since === seq ? { current: m.next } : m;
}

/**
 * Whether a client table that goes with this membership (a checkpoint's state, stored or
 * transferred) may hold `client`'s entry: the operator, a client of the configuration in force or
 * of the pending one, and any replica principal. A replica that is not a member gets an entry from
 * its JOIN (admitted by the operator), executed like any request whether it is granted or refused;
 * the entry stays until the next configuration takes effect (switchMembership drops what
 * mayHoldClient no longer allows). Checking only the configuration in force rejected every
 * checkpoint taken in between: no lagging replica could fetch the state, and a restarted one took
 * its own stored state for corrupt.
 */
export function mayHoldInTable(membership: Membership, client: number): boolean {
  if (replicaOfPrincipal(client) !== undefined) return true;
  return mayHoldClient(membership.current, client) || (membership.next !== undefined && mayHoldClient(membership.next, client));
}

/** Whether the client table of a state with this configuration may hold `client`'s entry. */
export function mayHoldClient(config: MemberConfig, client: number): boolean {
  if (client === OPERATOR_CLIENT) return true;
  const replica = replicaOfPrincipal(client);
  if (replica !== undefined) return config.replicas.some((r) => r.id === replica);
  return config.clients.some((c) => c.id === client);
}

