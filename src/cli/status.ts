/**
 * `pbft status [--keys keys] [--json]`: asks every replica in cluster.json for GET /status
 * (2 s timeout each) and prints a table, or the JSON array with --json. A replica counts as
 * reachable only when its /status names this keyring's cluster id and its own replica id (another
 * cluster's replica at the same address does not count). Exit status 0 when at least a quorum
 * (2f+1) is reachable; STATUS_EXIT_NO_QUORUM (2) with one line on stderr when fewer are (the cluster
 * cannot order requests); 1 for an unreadable keyring or a bad flag.
 */
import { join } from 'node:path';
import type { Command } from 'commander';
import type { ClusterConfig, FaultModel } from '../core/cluster.ts';
import { faultsFor, modelOf } from '../core/membership.ts';
import { quorumFor } from '../core/quorum.ts';
import { CLUSTER_FILE, KeyringError, loadCluster } from '../crypto/keyring.ts';
import { CliError, errorMessage, httpBaseOf, type CliIo } from './common.ts';

export interface StatusFlags {
  keys: string;
  json?: boolean;
  timeout: number;
}

export const STATUS_TIMEOUT_MS = 2_000;
/** Exit status when fewer than 2f+1 replicas are reachable (1 stays for errors). */
export const STATUS_EXIT_NO_QUORUM = 2;

export function addStatusCommand(program: Command, action: (flags: StatusFlags) => Promise<number>, done: (code: number) => void): Command {
  return program
    .command('status')
    .description(
      'show the status of every replica in the keyring; exit status 0 when at least 2f+1 replicas of this cluster are reachable, ' +
        `${STATUS_EXIT_NO_QUORUM} when fewer are, 1 on an error`,
    )
    .option('--keys <dir>', 'keyring directory (cluster.json)', 'keys')
    .option('--json', 'print the statuses as a JSON array')
    .action(async (flags: Omit<StatusFlags, 'timeout'>) => {
      done(await action({ ...flags, timeout: STATUS_TIMEOUT_MS }));
    });
}

/** What /status returns (the fields the table shows; the JSON output keeps everything). */
export interface RemoteStatus {
  clusterId?: string;
  epoch?: number;
  members?: number[];
  member?: boolean;
  memberUrls?: Record<string, string>;
  id?: number;
  view?: number;
  primary?: number;
  viewChanging?: boolean;
  lastExecuted?: number;
  stableCheckpoint?: { seq?: number; digest?: string };
  lastCheckpoint?: { seq?: number; digest?: string };
  transferring?: boolean;
  divergences?: number;
  /** Equivocation evidence held (src/core/evidence.ts; `pbft evidence list` shows it). */
  evidence?: { held?: number; signers?: number[] };
}

export type ReplicaReport =
  | ({ replica: number; url: string; reachable: true } & RemoteStatus & Record<string, unknown>)
  | { replica: number; url: string; reachable: false; error: string };

/** Why a /status answer is not this replica of this cluster, or undefined when it is. */
function identityMismatch(body: Record<string, unknown>, clusterId: string, replica: number): string | undefined {
  if (typeof body.clusterId !== 'string') return 'its /status does not name a cluster id (not a pbft replica, or an older version)';
  if (body.clusterId !== clusterId) return `answers as replica ${String(body.id)} of cluster ${body.clusterId}, not of this keyring's cluster ${clusterId}`;
  if (body.id !== replica) return `answers as replica ${String(body.id)} of this cluster, not replica ${replica}`;
  return undefined;
}

export async function fetchStatus(clusterId: string, replica: number, url: string, timeoutMs: number): Promise<ReplicaReport> {
  const target = `${httpBaseOf(url)}/status`;
  try {
    const res = await fetch(target, { signal: AbortSignal.timeout(timeoutMs) });
    const text = await res.text();
    if (!res.ok) return { replica, url, reachable: false, error: `HTTP ${res.status} from ${target}` };
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      return { replica, url, reachable: false, error: `${target} did not answer JSON` };
    }
    if (body === null || typeof body !== 'object' || Array.isArray(body)) return { replica, url, reachable: false, error: `${target} did not answer a JSON object` };
    const wrong = identityMismatch(body as Record<string, unknown>, clusterId, replica);
    if (wrong !== undefined) return { replica, url, reachable: false, error: wrong };
    return { ...(body as Record<string, unknown>), replica, url, reachable: true };
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause?.code;
    const why = (err as { name?: string }).name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : cause ?? errorMessage(err);
    return { replica, url, reachable: false, error: why };
  }
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, col) => Math.max(...rows.map((r) => r[col]!.length)));
  return rows.map((r) => r.map((cell, col) => cell.padEnd(widths[col]!)).join('  ').trimEnd()).join('\n');
}

/** cluster.json of a keyring directory; a missing or malformed keyring is a CliError (one line). */
export function loadKeyringCluster(keysDir: string): ClusterConfig {
  try {
    return loadCluster(join(keysDir, CLUSTER_FILE));
  } catch (err) {
    if (err instanceof KeyringError) throw new CliError(err.message);
    throw err;
  }
}

/** One round of /status answers from a cluster, and the configuration in force they report. */
export interface ClusterPoll {
  /** Every replica of the keyring and every replica the reachable ones name as members, by id. */
  reports: ReplicaReport[];
  /** The newest epoch the reachable replicas report (0: the keyring's), and its members. */
  epoch: number;
  members: number[];
  n: number;
  f: number;
  /** The keyring's fault model (cluster.json; reconfigurations keep it). */
  model: FaultModel;
  /** Replicas needed to order requests in that configuration (2f+1 when n = 3f+1, f+1 when crash n = 2f+1). */
  quorum: number;
  /** Members that answered as themselves. */
  up: number;
}

/**
 * Asks every replica of the keyring for /status, then the replicas that joined after the keyring
 * was made (the reachable ones name them, with their addresses, in memberUrls); `pbft status` and
 * `pbft dashboard` both see the cluster through this.
 */
export async function pollCluster(cluster: ClusterConfig, timeoutMs: number): Promise<ClusterPoll> {
  const reports = await Promise.all(cluster.replicas.map((r) => fetchStatus(cluster.clusterId, r.id, r.url, timeoutMs)));
  // Replicas that joined after the keyring was made: the members name them (with their addresses).
  const known = new Set(reports.map((r) => r.replica));
  const joined = new Map<number, string>();
  for (const r of reports) {
    if (!r.reachable || typeof r.memberUrls !== 'object' || r.memberUrls === null) continue;
    for (const [id, url] of Object.entries(r.memberUrls as Record<string, unknown>)) {
      if (!known.has(Number(id)) && typeof url === 'string') joined.set(Number(id), url);
    }
  }
  reports.push(...(await Promise.all([...joined].map(([id, url]) => fetchStatus(cluster.clusterId, id, url, timeoutMs)))));
  reports.sort((a, b) => a.replica - b.replica);
  // The configuration in force: the newest epoch the reachable replicas report (its members decide
  // the quorum; the keyring's replicas before any membership change).
  let epoch = 0;
  let members = cluster.replicas.map((r) => r.id);
  for (const r of reports) {
    if (r.reachable && typeof r.epoch === 'number' && r.epoch > epoch && Array.isArray(r.members)) {
      epoch = r.epoch;
      members = r.members as number[];
    }
  }
  const memberSet = new Set(members);
  const up = reports.filter((r) => r.reachable && memberSet.has(r.replica)).length;
  const n = members.length;
  const model = modelOf(cluster);
  const f = faultsFor(n, model);
  const quorum = quorumFor(n, f, {}, model).commits;
  return { reports, epoch, members, n, f, model, quorum, up };
}

export async function runStatusCommand(flags: StatusFlags, io: CliIo): Promise<number> {
  const cluster = loadKeyringCluster(flags.keys);
  const { reports, epoch, members, n, f, model, quorum, up } = await pollCluster(cluster, flags.timeout);
  const verdict = (): number => {
    if (up >= quorum) return 0;
    const quorumText = model === 'byzantine' && n === 3 * f + 1 ? `2f+1 = ${quorum}` : model === 'crash' && n === 2 * f + 1 ? `f+1 = ${quorum}` : `${quorum} of ${n}`;
    io.err(
      `pbft status: ${up} of ${n} replicas of cluster ${cluster.clusterId} reachable, fewer than a quorum (${quorumText}) of epoch ${epoch}: the cluster cannot order requests`,
    );
    return STATUS_EXIT_NO_QUORUM;
  };
  if (flags.json === true) {
    io.out(JSON.stringify(reports, null, 2));
    return verdict();
  }
  const rows: string[][] = [['replica', 'url', 'reachable', 'epoch', 'view', 'primary', 'last executed', 'stable checkpoint', 'state digest', 'divergences', 'evidence']];
  for (const r of reports) {
    if (!r.reachable) {
      rows.push([String(r.replica), r.url, `no (${r.error})`, '-', '-', '-', '-', '-', '-', '-', '-']);
      continue;
    }
    const held = r.evidence?.held;
    const signers = Array.isArray(r.evidence?.signers) ? r.evidence.signers : [];
    const evidence = held === undefined ? '?' : held === 0 ? '0' : `${held} (against ${signers.join(', ')})`;
    const memberText = `${r.epoch ?? '?'}${r.member === false ? ' (not a member)' : ''}`;
    const view = `${r.view ?? '?'}${r.viewChanging === true ? ' (changing)' : ''}`;
    const digest = r.lastCheckpoint?.digest !== undefined ? `${r.lastCheckpoint.digest.slice(0, 12)} @${r.lastCheckpoint.seq ?? '?'}` : '?';
    rows.push([
      String(r.replica),
      r.url,
      'yes',
      memberText,
      view,
      String(r.primary ?? '?'),
      `${r.lastExecuted ?? '?'}${r.transferring === true ? ' (transferring)' : ''}`,
      String(r.stableCheckpoint?.seq ?? '?'),
      digest,
      String(r.divergences ?? '?'),
      evidence,
    ]);
  }
  io.out(`cluster ${cluster.clusterId}: ${up} of ${n} replicas reachable (${model} faults, f = ${f}, quorum ${quorum}); epoch ${epoch}: replicas ${members.join(', ')}`);
  io.out(table(rows));
  const accused = new Set<number>();
  for (const r of reports) if (r.reachable && Array.isArray(r.evidence?.signers)) for (const s of r.evidence.signers) accused.add(s);
  if (accused.size > 0) {
    io.out(`equivocation evidence held against replica${accused.size === 1 ? '' : 's'} ${[...accused].sort((a, b) => a - b).join(', ')}: pbft evidence list, pbft evidence export --out FILE`);
  }
  return verdict();
}
