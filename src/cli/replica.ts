/**
 * `pbft replica --id <n>`: runs one replica (RocksDB + PBFT core + transport) until SIGTERM, SIGINT or SIGHUP.
 */
import { join } from 'node:path';
import { Option, type Command } from 'commander';
import { KeyringError, loadIdentity } from '../crypto/keyring.ts';
import { runReplicaProcess } from '../node/replica-process.ts';
import { createLogger, type LogLevel } from '../util/log.ts';
import type { ReplicaOptions } from '../core/options.ts';
import { CliError, parseListen, parseNonNegativeInt, parsePositiveInt } from './common.ts';

/** Set by `pbft start` for its children: a replica exits when the process that started it is gone. */
export const EXIT_WITH_PARENT_ENV = 'PBFT_EXIT_WITH_PARENT';

export interface ReplicaFlags {
  id: number;
  keys: string;
  data?: string;
  logLevel: LogLevel;
  logFormat: 'json' | 'text';
  listen?: { host: string; port?: number };
  /** Tuning (benchmarks): batching and the pipeline, see src/core/options.ts; default the core's. */
  batchRequestsMax?: number;
  batchBytesMax?: number;
  inFlightBatchesMax?: number;
  /** Worker threads that verify signatures off the loop; 0 (default) verifies on the loop. */
  verifyWorkers?: number;
  /** Loop tuning (benchmarks; see ReplicaNodeOptions): commander's --no-* flags set them false. */
  pipelineTurns?: boolean;
  deferWrites?: boolean;
}

export function addReplicaCommand(program: Command, action: (flags: ReplicaFlags) => Promise<number>, done: (code: number) => void): Command {
  return program
    .command('replica')
    .description('run one replica until SIGTERM, SIGINT or SIGHUP (status: GET http://<host>:<port>/status, /metrics)')
    .requiredOption('--id <n>', 'replica id (0..n-1)', parseNonNegativeInt)
    .option('--keys <dir>', 'keyring directory: cluster.json and replica-<id>.key', 'keys')
    .option('--data <dir>', 'RocksDB directory of this replica (default: data/replica-<id>)')
    .addOption(new Option('--log-level <level>', 'least severe level logged').choices(['debug', 'info', 'warn', 'error']).default('info'))
    .addOption(new Option('--log-format <format>', 'log lines as JSON or text').choices(['json', 'text']).default('json'))
    .option('--listen <host[:port]>', "listen address (default: host and port of the replica's URL in cluster.json)", parseListen)
    .option('--batch-requests-max <n>', 'tuning: requests per pre-prepare, at most (default 512)', parsePositiveInt)
    .option('--batch-bytes-max <n>', 'tuning: request bytes per pre-prepare this replica proposes, at most (default 1 MiB, at most 4 MiB; a larger request goes alone)', parsePositiveInt)
    .option('--in-flight-batches-max <n>', 'tuning: batches proposed and not yet executed, at most (default 4)', parsePositiveInt)
    .option('--verify-workers <n>', 'tuning: worker threads verifying signatures off the loop (default 0: on the loop)', parseNonNegativeInt)
    .option('--no-pipeline-turns', 'tuning: do not compute turns while a synced write is in flight')
    .option('--no-defer-writes', 'tuning: sync the writes of every turn, also of turns that send nothing')
    .action(async (flags: ReplicaFlags) => {
      done(await action(flags));
    });
}

/** The real action: never resolves while the replica runs (the process exits on a signal). */
export async function runReplicaCommand(flags: ReplicaFlags): Promise<number> {
  let identity;
  try {
    identity = loadIdentity(flags.keys, 'replica', flags.id);
  } catch (err) {
    if (err instanceof KeyringError) {
      const hint = err.code === 'NOT_FOUND' ? ' (create a keyring with: pbft keygen --out ' + flags.keys + ')' : '';
      throw new CliError(err.message + hint);
    }
    throw err;
  }
  const log = createLogger({ level: flags.logLevel, format: flags.logFormat });
  const tuning: Partial<ReplicaOptions> = {
    ...(flags.batchRequestsMax !== undefined ? { batchRequestsMax: flags.batchRequestsMax } : {}),
    ...(flags.batchBytesMax !== undefined ? { batchBytesMax: flags.batchBytesMax } : {}),
    ...(flags.inFlightBatchesMax !== undefined ? { inFlightBatchesMax: flags.inFlightBatchesMax } : {}),
  };
  await runReplicaProcess({
    cluster: identity.cluster,
    id: flags.id,
    secretKey: identity.key.secretKey,
    dataDir: flags.data ?? join('data', `replica-${flags.id}`),
    log,
    replica: tuning,
    ...(flags.verifyWorkers !== undefined ? { verifyWorkers: flags.verifyWorkers } : {}),
    ...(flags.pipelineTurns === false ? { pipelineTurns: false } : {}),
    ...(flags.deferWrites === false ? { deferWrites: false } : {}),
    ...(flags.listen !== undefined ? { listenHost: flags.listen.host } : {}),
    ...(flags.listen?.port !== undefined ? { listenPort: flags.listen.port } : {}),
  });
  if (process.env[EXIT_WITH_PARENT_ENV] === '1') {
    // Started by `pbft start`: do not outlive it (e.g. when it was killed with SIGKILL).
    const parent = process.ppid;
    setInterval(() => {
      if (process.ppid !== parent) {
        log.warn('the process that started this replica is gone; stopping', { parent });
        process.kill(process.pid, 'SIGTERM');
      }
    }, 1_000).unref();
  }
  return new Promise<number>(() => {
    // Runs until a signal: runReplicaProcess exits the process.
  });
}
