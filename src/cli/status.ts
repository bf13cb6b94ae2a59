/**
 * `pbft status [--keys keys] [--json]`: asks every replica in cluster.json for GET /status
 * (2 s timeout each) and prints a table, or the JSON array with --json. Unreachable replicas are
 * shown as such (exit 0); only an unreadable keyring is an error.
 */
import { join } from 'node:path';
import type { Command } from 'commander';
import { CLUSTER_FILE, KeyringError, loadCluster } from '../crypto/keyring.ts';
import { CliError, errorMessage, httpBaseOf, type CliIo } from './common.ts';

export interface StatusFlags {
  keys: string;
  json?: boolean;
  timeout: number;
}

export const STATUS_TIMEOUT_MS = 2_000;

export function addStatusCommand(program: Command, action: (flags: StatusFlags) => Promise<number>, done: (code: number) => void): Command {
  return program
    .command('status')
    .description('show the status of every replica in the keyring')
    .option('--keys <dir>', 'keyring directory (cluster.json)', 'keys')
    .option('--json', 'print the statuses as a JSON array')
    .action(async (flags: Omit<StatusFlags, 'timeout'>) => {
      done(await action({ ...flags, timeout: STATUS_TIMEOUT_MS }));
    });
}

/** What /status returns (the fields the table shows; the JSON output keeps everything). */
interface RemoteStatus {
  view?: number;
  primary?: number;
  viewChanging?: boolean;
  lastExecuted?: number;
  stableCheckpoint?: { seq?: number; digest?: string };
  lastCheckpoint?: { seq?: number; digest?: string };
  transferring?: boolean;
  divergences?: number;
}

export type ReplicaReport =
  | ({ replica: number; url: string; reachable: true } & RemoteStatus & Record<string, unknown>)
  | { replica: number; url: string; reachable: false; error: string };

async function fetchStatus(replica: number, url: string, timeoutMs: number): Promise<ReplicaReport> {
  const target = `${httpBaseOf(url)}/status`;
  try {
    const res = await fetch(target, { signal: AbortSignal.timeout(timeoutMs) });
    const text = await res.text();
    if (!res.ok) return { replica, url, reachable: false, error: `HTTP ${res.status} from ${target}` };
    const body = JSON.parse(text) as Record<string, unknown>;
    return { ...body, replica, url, reachable: true };
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

export async function runStatusCommand(flags: StatusFlags, io: CliIo): Promise<number> {
  let cluster;
  try {
    cluster = loadCluster(join(flags.keys, CLUSTER_FILE));
  } catch (err) {
    if (err instanceof KeyringError) throw new CliError(err.message);
    throw err;
  }
  const reports = await Promise.all(cluster.replicas.map((r) => fetchStatus(r.id, r.url, flags.timeout)));
  if (flags.json === true) {
    io.out(JSON.stringify(reports, null, 2));
    return 0;
  }
  const rows: string[][] = [['replica', 'url', 'reachable', 'view', 'primary', 'last executed', 'stable checkpoint', 'state digest', 'divergences']];
  for (const r of reports) {
    if (!r.reachable) {
      rows.push([String(r.replica), r.url, `no (${r.error})`, '-', '-', '-', '-', '-', '-']);
      continue;
    }
    const view = `${r.view ?? '?'}${r.viewChanging === true ? ' (changing)' : ''}`;
    const digest = r.lastCheckpoint?.digest !== undefined ? `${r.lastCheckpoint.digest.slice(0, 12)} @${r.lastCheckpoint.seq ?? '?'}` : '?';
    rows.push([
      String(r.replica),
      r.url,
      'yes',
      view,
      String(r.primary ?? '?'),
      `${r.lastExecuted ?? '?'}${r.transferring === true ? ' (transferring)' : ''}`,
      String(r.stableCheckpoint?.seq ?? '?'),
      digest,
      String(r.divergences ?? '?'),
    ]);
  }
  const up = reports.filter((r) => r.reachable).length;
  io.out(`cluster ${cluster.clusterId}: ${up} of ${reports.length} replicas reachable (f = ${cluster.f})`);
  io.out(table(rows));
  return 0;
}
