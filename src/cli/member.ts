/**
 * Membership changes from the command line (src/core/membership.ts):
 *
 *   pbft member list                             the configuration in force, as the replicas report it
 *   pbft member add --id N --url ws://host:port  a replica joins (its key: keys/replica-N.key, made
 *                                                here unless --public-key gives the one its host made)
 *   pbft member remove --id N                    a replica leaves
 *   pbft client-key add --id N / remove --id N   a client is registered / removed
 *
 * A change is a request signed with the operator's key (keys/operator.key, made by keygen), ordered
 * like any other; the replicas refuse what would break the cluster (an unknown id, a duplicate key
 * or address, fewer than four replicas, a change while another is pending) with a reason, printed
 * here. The change takes effect after a checkpoint; `--wait` (default) waits until a quorum of the
 * new configuration reports it.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { CLUSTER_FILE, KeyringError, OPERATOR_KEY_FILE, keyFileName, loadCluster, loadIdentity, loadPrivateKey, writeFileAtomic, writeNewKey } from '../crypto/keyring.ts';
import { bytesEqual, bytesToHex, hexToBytes, parseReplicaUrl } from '../crypto/keyring-json.ts';
import { OPERATOR_CLIENT, admissionBytes, decodeReconfigResult, encodeReconfigOp, faultsFor, modelOf, type ReconfigOp } from '../core/membership.ts';
import { quorumFor } from '../core/quorum.ts';
import { replicaPrincipal, type ClusterConfig, type FaultModel } from '../core/cluster.ts';
import { PbftClient } from '../client/client.ts';
import { PbftClientError } from '../client/errors.ts';
import { CliError, errorMessage, httpBaseOf, parseNonNegativeInt, type CliIo } from './common.ts';

export interface MemberFlags {
  keys: string;
  timeout: number;
  wait: boolean;
  waitTimeout: number;
  json?: boolean;
}

export type MemberAction =
  | { kind: 'list' }
  | { kind: 'add-replica'; id: number; url: string; publicKey?: Uint8Array }
  | { kind: 'remove-replica'; id: number }
  | { kind: 'add-client'; id: number; publicKey?: Uint8Array }
  | { kind: 'remove-client'; id: number }
  | { kind: 'admit'; id: number; url: string; publicKey?: Uint8Array; out?: string }
  | { kind: 'quit'; id: number };

function parseUrl(value: string): string {
  const r = parseReplicaUrl(value);
  if ('problem' in r) throw new InvalidArgumentError(`the url ${r.problem}`);
  return value;
}

function parseKeyHex(value: string): Uint8Array {
  if (!/^[0-9a-fA-F]{64}$/.test(value)) throw new InvalidArgumentError('a public key is 64 hex characters (32 bytes)');
  return hexToBytes(value);
}

function parseId(value: string): number {
  const id = parseNonNegativeInt(value);
  if (id > 0xffff) throw new InvalidArgumentError('a replica id is at most 65535');
  return id;
}

export function addMemberCommands(program: Command, action: (a: MemberAction, flags: MemberFlags) => Promise<number>, done: (code: number) => void): void {
  const common = (cmd: Command): Command =>
    cmd
      .option('--keys <dir>', 'keyring directory (cluster.json, operator.key)', 'keys')
      .addOption(new Option('--timeout <ms>', 'how long to wait for the replicas to answer').default(15_000).argParser(parseNonNegativeInt))
      .option('--no-wait', 'return once the change is ordered, without waiting for it to take effect')
      .addOption(new Option('--wait-timeout <ms>', 'how long to wait for the new configuration to be in force').default(120_000).argParser(parseNonNegativeInt));
  const run = (a: MemberAction, cmd: Command): Promise<void> =>
    action(a, cmd.optsWithGlobals() as MemberFlags).then(done);

  const member = program.command('member').description('the replicas of the cluster: list, add (join) or remove (quit) one, signed with the operator key');
  common(member.command('list').description('the configuration in force (epoch, replicas), as the replicas report it').option('--json', 'print JSON')).action(
    (_o: unknown, cmd: Command) => run({ kind: 'list' }, cmd),
  );
  common(
    member
      .command('add')
      .description('add a replica: it starts with this keyring and its own key (pbft replica --id N --listen host:port), follows, catches up, then votes')
      .requiredOption('--id <n>', 'the new replica id (not a member)', parseId)
      .requiredOption('--url <ws://host:port>', 'where the other replicas and clients reach it', parseUrl)
      .option('--public-key <hex>', 'its public key, if its host made the key (default: make keys/replica-<id>.key here; copy it to that host only)', parseKeyHex),
  ).action((o: { id: number; url: string; publicKey?: Uint8Array }, cmd: Command) =>
    run({ kind: 'add-replica', id: o.id, url: o.url, ...(o.publicKey ? { publicKey: o.publicKey } : {}) }, cmd),
  );
  common(
    member
      .command('admit')
      .description('admit a replica that joins by itself: write the operator-signed admission it starts with (pbft replica --id N --join FILE); its JOIN is then signed with its own key')
      .requiredOption('--id <n>', 'the new replica id (not a member)', parseId)
      .requiredOption('--url <ws://host:port>', 'where the other replicas and clients reach it', parseUrl)
      .option('--public-key <hex>', 'its public key, if its host made the key (default: make keys/replica-<id>.key here)', parseKeyHex)
      .option('--out <file>', 'where to write the admission (default: keys/admission-<id>.json)'),
  ).action((o: { id: number; url: string; publicKey?: Uint8Array; out?: string }, cmd: Command) =>
    run({ kind: 'admit', id: o.id, url: o.url, ...(o.publicKey ? { publicKey: o.publicKey } : {}), ...(o.out ? { out: o.out } : {}) }, cmd),
  );
  common(
    member
      .command('quit')
      .description('on a replica\'s own host: it leaves, with a QUIT signed with its own key (keys/replica-<id>.key; no operator key needed); then stop it and delete its data')
      .requiredOption('--id <n>', 'this replica\'s id', parseId),
  ).action((o: { id: number }, cmd: Command) => run({ kind: 'quit', id: o.id }, cmd));
  common(member.command('remove').description('remove a replica (at least 4 remain): it stops voting once the change is in force; then stop it and delete its data').requiredOption('--id <n>', 'the replica id', parseId)).action(
    (o: { id: number }, cmd: Command) => run({ kind: 'remove-replica', id: o.id }, cmd),
  );

  const clientKey = program.command('client-key').description('the clients allowed to submit requests: register or remove one, signed with the operator key');
  common(
    clientKey
      .command('add')
      .description('register a client (its key: keys/client-<id>.key, made here unless --public-key is given)')
      .requiredOption('--id <n>', 'the client id', parseNonNegativeInt)
      .option('--public-key <hex>', 'its public key, if the client made its own', parseKeyHex),
  ).action((o: { id: number; publicKey?: Uint8Array }, cmd: Command) => run({ kind: 'add-client', id: o.id, ...(o.publicKey ? { publicKey: o.publicKey } : {}) }, cmd));
  common(clientKey.command('remove').description('remove a client: the replicas refuse its requests once the change is in force').requiredOption('--id <n>', 'the client id', parseNonNegativeInt)).action(
    (o: { id: number }, cmd: Command) => run({ kind: 'remove-client', id: o.id }, cmd),
  );
}

interface MemberStatus {
  replica: number;
  url: string;
  epoch?: number;
  members?: number[];
  member?: boolean;
  nextEpoch?: { epoch: number; since: number; replicas: number[] };
  memberUrls?: Record<string, string>;
  error?: string;
}

async function statusOf(clusterId: string, replica: number, url: string, timeoutMs: number): Promise<MemberStatus> {
  try {
    const res = await fetch(`${httpBaseOf(url)}/status`, { signal: AbortSignal.timeout(timeoutMs) });
    const body = (await res.json()) as Record<string, unknown>;
    if (body.clusterId !== clusterId || body.id !== replica) return { replica, url, error: 'answers as another replica or cluster' };
    return { replica, url, ...(body as object) } as MemberStatus;
  } catch (err) {
    return { replica, url, error: errorMessage(err) };
  }
}

/**
 * Every replica the keyring names, and every member the replicas report (with the URL they report:
 * shown, not trusted; what the SDK and replicas trust comes from epoch proofs).
 */
async function survey(cluster: ClusterConfig, timeoutMs: number): Promise<MemberStatus[]> {
  const urls = new Map<number, string>(cluster.replicas.map((r) => [r.id, r.url]));
  const seen = new Map<number, MemberStatus>();
  for (let round = 0; round < 3; round++) {
    const ask = [...urls].filter(([id]) => !seen.has(id));
    if (ask.length === 0) break;
    const got = await Promise.all(ask.map(([id, url]) => statusOf(cluster.clusterId, id, url, Math.min(timeoutMs, 3_000))));
    for (const s of got) {
      seen.set(s.replica, s);
      for (const [id, url] of Object.entries(s.memberUrls ?? {})) if (!urls.has(Number(id))) urls.set(Number(id), url);
    }
  }
  return [...seen.values()].sort((a, b) => a.replica - b.replica);
}

/** The newest configuration that a quorum of its own members reports. */
function inForce(statuses: MemberStatus[], model: FaultModel): { epoch: number; members: number[] } | undefined {
  const byEpoch = new Map<string, { epoch: number; members: number[]; count: number }>();
  for (const s of statuses) {
    if (s.epoch === undefined || !s.members || s.member !== true) continue;
    const key = `${s.epoch}:${s.members.join(',')}`;
    const e = byEpoch.get(key) ?? { epoch: s.epoch, members: s.members, count: 0 };
    e.count++;
    byEpoch.set(key, e);
  }
  let best: { epoch: number; members: number[] } | undefined;
  for (const e of byEpoch.values()) {
    const n = e.members.length;
    if (e.count >= quorumFor(n, faultsFor(n, model), {}, model).checkpoints && (!best || e.epoch > best.epoch)) best = e;
  }
  return best;
}

export async function runMemberCommand(action: MemberAction, flags: MemberFlags, io: CliIo): Promise<number> {
  let cluster: ClusterConfig;
  try {
    cluster = loadCluster(join(flags.keys, CLUSTER_FILE));
  } catch (err) {
    if (err instanceof KeyringError) throw new CliError(err.message);
    throw err;
  }
  if (action.kind === 'list') {
    const statuses = await survey(cluster, flags.timeout);
    const force = inForce(statuses, modelOf(cluster));
    if (flags.json === true) {
      io.out(JSON.stringify({ inForce: force ?? null, replicas: statuses }, null, 2));
      return force ? 0 : 2;
    }
    if (!force) io.err('pbft member list: no configuration is reported by a quorum of its members (replicas down or still switching)');
    else io.out(`epoch ${force.epoch}: replicas ${force.members.join(', ')} (n = ${force.members.length}, f = ${faultsFor(force.members.length, modelOf(cluster))}, ${modelOf(cluster)} faults)`);
    for (const s of statuses) {
      const state = s.error !== undefined ? `unreachable (${s.error})` : `epoch ${s.epoch}${s.member ? '' : ', not a member'}${s.nextEpoch ? `, epoch ${s.nextEpoch.epoch} pending after checkpoint ${s.nextEpoch.since}: ${s.nextEpoch.replicas.join(',')}` : ''}`;
      io.out(`  replica ${s.replica}  ${s.url}  ${state}`);
    }
    return force ? 0 : 2;
  }
  if (action.kind === 'quit') return quit(action.id, cluster, flags, io);
  if (!cluster.operatorKey) {
    throw new CliError(`the keyring in ${flags.keys} has no operator key: it was made before membership changes existed; make a new keyring with pbft keygen`);
  }
  if (!existsSync(join(flags.keys, OPERATOR_KEY_FILE))) {
    throw new CliError(`${join(flags.keys, OPERATOR_KEY_FILE)} is missing: membership changes are signed with the operator key (keep it on the operator's machine only)`);
  }
  let operator;
  try {
    operator = loadIdentity(flags.keys, 'operator', 0).key;
  } catch (err) {
    if (err instanceof KeyringError) throw new CliError(err.message);
    throw err;
  }
  if (action.kind === 'admit') return admit(action, cluster, operator.secretKey, flags, io);
  let op: ReconfigOp;
  switch (action.kind) {
    case 'add-replica':
    case 'add-client': {
      const principal = action.kind === 'add-replica' ? 'replica' : 'client';
      const publicKey = keyFor(flags, cluster.clusterId, principal, action.id, action.publicKey, io);
      op = action.kind === 'add-replica' ? { kind: 'add-replica', replica: { id: action.id, url: action.url, publicKey } } : { kind: 'add-client', client: { id: action.id, publicKey } };
      break;
    }
    case 'remove-replica':
      op = { kind: 'remove-replica', id: action.id };
      break;
    case 'remove-client':
      op = { kind: 'remove-client', id: action.id };
      break;
  }
  const epoch = await submit(cluster, { id: OPERATOR_CLIENT, secretKey: operator.secretKey }, op, flags, io);
  if (action.kind === 'add-replica') {
    io.out(`start it on its host with its own key and this keyring's cluster.json: pbft replica --id ${action.id} --keys <dir> --listen <host:port of ${action.url}>`);
  }
  return flags.wait ? waitInForce(cluster, epoch, action.kind === 'remove-replica' ? action.id : undefined, flags, io) : 0;
}

/** `pbft member quit`: the replica's own QUIT, signed with its key as its replica principal. */
async function quit(id: number, cluster: ClusterConfig, flags: MemberFlags, io: CliIo): Promise<number> {
  let key;
  try {
    key = loadIdentity(flags.keys, 'replica', id).key;
  } catch (err) {
    if (err instanceof KeyringError) throw new CliError(`${err.message} (pbft member quit runs where the replica's key is)`);
    throw err;
  }
  const epoch = await submit(cluster, { id: replicaPrincipal(id), secretKey: key.secretKey }, { kind: 'quit', id }, flags, io);
  return flags.wait ? waitInForce(cluster, epoch, id, flags, io) : 0;
}

/** Sends one reconfiguration and prints its result; returns the epoch it makes (throws if refused). */
async function submit(cluster: ClusterConfig, key: { id: number; secretKey: Uint8Array }, op: ReconfigOp, flags: MemberFlags, io: CliIo): Promise<number> {
  let client: PbftClient;
  try {
    client = await PbftClient.connect({ cluster, key, timeoutMs: flags.timeout });
  } catch (err) {
    if (err instanceof PbftClientError) throw new CliError(err.message);
    throw err;
  }
  let result;
  try {
    result = decodeReconfigResult(await client.invoke(encodeReconfigOp(op)));
  } catch (err) {
    if (err instanceof PbftClientError) throw new CliError(err.message);
    throw err;
  } finally {
    await client.close();
  }
  if (!result.ok) throw new CliError(`the replicas answered with something that is not a reconfiguration result (${result.reason})`);
  const r = result.value;
  if (!r.ok) throw new CliError(`refused by the replicas: ${r.reason}`);
  io.out(`ordered: epoch ${r.epoch} (replicas ${r.replicas.join(', ')}) takes effect after checkpoint ${r.since}`);
  return r.epoch;
}

/** Waits until a quorum of the configuration `epoch` (or a later one) reports it in force. */
async function waitInForce(cluster: ClusterConfig, epoch: number, removed: number | undefined, flags: MemberFlags, io: CliIo): Promise<number> {
  const deadline = Date.now() + flags.waitTimeout;
  for (;;) {
    const force = inForce(await survey(cluster, flags.timeout), modelOf(cluster));
    if (force && force.epoch >= epoch) {
      io.out(`in force: epoch ${force.epoch}, replicas ${force.members.join(', ')}`);
      if (removed !== undefined) io.out(`replica ${removed} votes no more: stop it and delete its data directory`);
      return 0;
    }
    if (Date.now() > deadline) {
      io.err(`pbft: epoch ${epoch} is ordered but not yet in force after ${flags.waitTimeout} ms (is the new replica started? check pbft member list)`);
      return 2;
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

/** The key of a replica or client a change adds: given, from its key file here, or made here. */
function keyFor(flags: MemberFlags, clusterId: string, principal: 'replica' | 'client', id: number, given: Uint8Array | undefined, io: CliIo): Uint8Array {
  if (given !== undefined) return given;
  const path = join(flags.keys, keyFileName(principal, id));
  try {
    if (existsSync(path)) return loadPrivateKey(path, { principal, id }).publicKey;
    const w = writeNewKey(flags.keys, clusterId, principal, id);
    io.out(`made ${w.path} (its private key: copy it to that ${principal}'s host only)`);
    return w.publicKey;
  } catch (err) {
    if (err instanceof KeyringError) throw new CliError(err.message);
    throw err;
  }
}

/** `pbft member admit`: the operator's admission, for a replica that then joins by itself. */
async function admit(action: Extract<MemberAction, { kind: 'admit' }>, cluster: ClusterConfig, operatorSecret: Uint8Array, flags: MemberFlags, io: CliIo): Promise<number> {
  if (cluster.replicas.some((r) => r.id === action.id)) throw new CliError(`replica ${action.id} is in the keyring already`);
  const publicKey = keyFor(flags, cluster.clusterId, 'replica', action.id, action.publicKey, io);
  const { createNodeSigner } = await import('../crypto/node.ts');
  const signer = createNodeSigner(operatorSecret);
  const replica = { id: action.id, url: action.url, publicKey };
  const file = {
    version: 1,
    clusterId: cluster.clusterId,
    id: action.id,
    url: action.url,
    publicKey: bytesToHex(publicKey),
    admission: bytesToHex(signer.sign(admissionBytes(cluster.clusterId, replica))),
    // The JOIN's timestamp: above any earlier request of this replica (one that quit comes back).
    timestamp: Date.now(),
  };
  const out = action.out ?? join(flags.keys, `admission-${action.id}.json`);
  writeFileAtomic(out, JSON.stringify(file, null, 2) + '\n', 0o644);
  io.out(`wrote ${out}: copy it with cluster.json and replica-${action.id}.key to that host, then: pbft replica --id ${action.id} --keys <dir> --join ${out.split('/').pop()}`);
  return 0;
}

export interface AdmissionFile {
  clusterId: string;
  id: number;
  url: string;
  publicKey: Uint8Array;
  admission: Uint8Array;
  timestamp: number;
}

/** Reads an admission file (pbft replica --join); one-line errors. */
export function readAdmission(path: string, cluster: ClusterConfig, id: number, publicKey: Uint8Array): AdmissionFile {
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  } catch (err) {
    throw new CliError(`cannot read the admission ${path}: ${errorMessage(err)}`);
  }
  const hex = (v: unknown, bytes: number, what: string): Uint8Array => {
    if (typeof v !== 'string' || !new RegExp(`^[0-9a-fA-F]{${bytes * 2}}$`).test(v)) throw new CliError(`${path}: ${what} must be ${bytes * 2} hex characters`);
    return hexToBytes(v);
  };
  if (json.clusterId !== cluster.clusterId) throw new CliError(`${path} admits a replica of cluster ${String(json.clusterId)}, not of ${cluster.clusterId}`);
  if (json.id !== id) throw new CliError(`${path} admits replica ${String(json.id)}, not replica ${id}`);
  const url = typeof json.url === 'string' ? json.url : '';
  if ('problem' in parseReplicaUrl(url)) throw new CliError(`${path}: url must be ws://host:port`);
  const key = hex(json.publicKey, 32, 'publicKey');
  if (!bytesEqual(key, publicKey)) throw new CliError(`${path} admits another key than this replica's`);
  const timestamp = json.timestamp;
  if (typeof timestamp !== 'number' || !Number.isSafeInteger(timestamp) || timestamp <= 0) throw new CliError(`${path}: timestamp must be a positive integer`);
  return { clusterId: cluster.clusterId, id, url, publicKey: key, admission: hex(json.admission, 64, 'admission'), timestamp };
}

