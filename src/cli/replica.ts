/**
 * `pbft replica --id <n>`: runs one replica (RocksDB + PBFT core + transport) until SIGTERM, SIGINT or SIGHUP.
 *
 * Every setting comes from a flag, an environment variable (PBFT_ID, PBFT_KEYS, ...: REPLICA_ENV)
 * or a JSON config file (--config FILE or PBFT_CONFIG; keys as in ReplicaFlags, e.g. "id",
 * "logLevel", "batchRequestsMax"), in that order of precedence: a flag beats the environment, which
 * beats the file, which beats the default. Relative "keys" and "data" paths in the file are relative
 * to the file's directory. Unknown keys and bad values in the file are errors (one line, exit 1).
 */
import { readAdmission } from './member.ts';
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { KeyringError, loadIdentity } from '../crypto/keyring.ts';
import { CRYPTO_CHOICES, type CryptoChoice } from '../crypto/index.ts';
import { runReplicaProcess } from '../node/replica-process.ts';
import { createLogger, type LogLevel } from '../util/log.ts';
import type { ReplicaOptions } from '../core/options.ts';
import { CliError, hostPortOf, parseListen, parseNonNegativeInt, parsePositiveInt } from './common.ts';
import { WRITE_BUFFER_BYTES_DEFAULT, WRITE_BUFFER_BYTES_MAX, WRITE_BUFFER_BYTES_MIN } from '../storage/rocksdb.ts';
import { HEAP_GROWING_PERCENT_DEFAULT, HEAP_GROWING_PERCENT_MAX, HEAP_POLICY_LARGE_BYTES, startHeapPolicy } from '../node/heap.ts';

/** Set by `pbft start` for its children: a replica exits when the process that started it is gone. */
export const EXIT_WITH_PARENT_ENV = 'PBFT_EXIT_WITH_PARENT';

/** The environment variable of each setting that has one. */
export const REPLICA_ENV = {
  config: 'PBFT_CONFIG',
  id: 'PBFT_ID',
  keys: 'PBFT_KEYS',
  data: 'PBFT_DATA',
  logLevel: 'PBFT_LOG_LEVEL',
  logFormat: 'PBFT_LOG_FORMAT',
  listen: 'PBFT_LISTEN',
  batchRequestsMax: 'PBFT_BATCH_REQUESTS_MAX',
  batchBytesMax: 'PBFT_BATCH_BYTES_MAX',
  inFlightBatchesMax: 'PBFT_IN_FLIGHT_BATCHES_MAX',
  verifyWorkers: 'PBFT_VERIFY_WORKERS',
  writeBufferMib: 'PBFT_WRITE_BUFFER_MIB',
  heapGrowingPercent: 'PBFT_HEAP_GROWING_PERCENT',
  crypto: 'PBFT_CRYPTO',
} as const;

/** Every variable `pbft replica` reads its settings from (`pbft start` keeps them from its children). */
export const REPLICA_ENV_VARS: ReadonlySet<string> = new Set(Object.values(REPLICA_ENV));

export interface ReplicaFlags {
  /** Required: from --id, PBFT_ID or the config file (checked once they are merged). */
  id: number;
  /** The JSON config file the other settings were completed from, if any. */
  config?: string;
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
  /** RocksDB's write buffer in MiB (default 16: WRITE_BUFFER_BYTES_DEFAULT in src/storage/rocksdb.ts). */
  writeBufferMib?: number;
  /** V8's heap growth between major collections while little is live, percent (default 100: src/node/heap.ts; 0: V8 decides). */
  heapGrowingPercent?: number;
  /** The ed25519 backend: auto (libsodium where it loads, else node:crypto), sodium or node. */
  crypto?: CryptoChoice;
  /** Loop tuning (benchmarks; see ReplicaNodeOptions): commander's --no-* flags set them false. */
  pipelineTurns?: boolean;
  deferWrites?: boolean;
  /** Ask to leave the configuration when the audit finds this replica's state faulty (membership). */
  quitOnDivergence?: boolean;
  /** An admission file (pbft member admit): this replica joins by itself. */
  join?: string;
}

const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;
const LOG_FORMATS = ['json', 'text'] as const;

/** How each key of a config file is read: the flag's own parser, on the JSON value. */
const CONFIG_KEYS: Record<string, (v: unknown) => unknown> = {
  id: (v) => parseNonNegativeInt(integerText(v)),
  keys: (v) => text(v),
  data: (v) => text(v),
  logLevel: (v) => oneOf(v, LOG_LEVELS),
  logFormat: (v) => oneOf(v, LOG_FORMATS),
  listen: (v) => parseListen(text(v)),
  batchRequestsMax: (v) => parsePositiveInt(integerText(v)),
  batchBytesMax: (v) => parsePositiveInt(integerText(v)),
  inFlightBatchesMax: (v) => parsePositiveInt(integerText(v)),
  verifyWorkers: (v) => parseNonNegativeInt(integerText(v)),
  writeBufferMib: (v) => parseWriteBufferMib(integerText(v)),
  heapGrowingPercent: (v) => parseHeapGrowingPercent(integerText(v)),
  crypto: (v) => oneOf(v, CRYPTO_CHOICES),
  pipelineTurns: (v) => bool(v),
  deferWrites: (v) => bool(v),
  quitOnDivergence: (v) => bool(v),
  join: (v) => text(v),
};

const MIB = 1024 * 1024;

/** commander argument parser: RocksDB's write buffer in MiB, within RocksStorage's bounds. */
function parseWriteBufferMib(value: string): number {
  const min = WRITE_BUFFER_BYTES_MIN / MIB;
  const max = WRITE_BUFFER_BYTES_MAX / MIB;
  const n = /^[0-9]{1,5}$/.test(value) ? Number(value) : Number.NaN;
  if (!(n >= min && n <= max)) throw new InvalidArgumentError(`must be an integer from ${min} to ${max}.`);
  return n;
}

/** commander argument parser: V8's heap growing percent, 0..HEAP_GROWING_PERCENT_MAX. */
function parseHeapGrowingPercent(value: string): number {
  const n = /^[0-9]{1,4}$/.test(value) ? Number(value) : Number.NaN;
  if (!(n >= 0 && n <= HEAP_GROWING_PERCENT_MAX)) throw new InvalidArgumentError(`must be an integer from 0 to ${HEAP_GROWING_PERCENT_MAX}.`);
  return n;
}

function text(v: unknown): string {
  if (typeof v !== 'string' || v === '') throw new InvalidArgumentError('must be a non-empty string.');
  return v;
}
function integerText(v: unknown): string {
  if (typeof v === 'number' || typeof v === 'string') return String(v);
  throw new InvalidArgumentError('must be an integer.');
}
function bool(v: unknown): boolean {
  if (typeof v !== 'boolean') throw new InvalidArgumentError('must be true or false.');
  return v;
}
function oneOf<T extends string>(v: unknown, choices: readonly T[]): T {
  if (typeof v !== 'string' || !(choices as readonly string[]).includes(v)) throw new InvalidArgumentError(`must be one of ${choices.join(', ')}.`);
  return v as T;
}

/** A config file's settings, checked; relative keys and data paths resolved against the file's directory. */
export function loadReplicaConfig(path: string): Partial<ReplicaFlags> {
  let raw: string;
  try {
    raw = readFileSync(path, 'utf8');
  } catch (err) {
    throw new CliError(`config file ${path}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'not found' : (err as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch (err) {
    throw new CliError(`config file ${path}: invalid JSON (${(err as Error).message})`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new CliError(`config file ${path}: must be a JSON object`);
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(parsed)) {
    const read = CONFIG_KEYS[key];
    if (read === undefined) throw new CliError(`config file ${path}: unknown key "${key}" (known: ${Object.keys(CONFIG_KEYS).join(', ')})`);
    try {
      out[key] = read(value);
    } catch (err) {
      throw new CliError(`config file ${path}: "${key}" ${(err as Error).message}`);
    }
  }
  for (const key of ['keys', 'data', 'join'] as const) {
    const p = out[key];
    if (typeof p === 'string' && !isAbsolute(p)) out[key] = join(dirname(resolve(path)), p);
  }
  return out as Partial<ReplicaFlags>;
}

/**
 * The settings of a parsed command line completed from the config file: a value from a flag or
 * the environment stays, one that is only a default (or missing) takes the file's.
 */
export function mergeReplicaConfig(cmd: Command, flags: ReplicaFlags): ReplicaFlags {
  const merged: Record<string, unknown> = { ...flags };
  if (flags.config !== undefined) {
    for (const [key, value] of Object.entries(loadReplicaConfig(flags.config))) {
      const source = cmd.getOptionValueSource(key);
      if (source === undefined || source === 'default') {
        merged[key] = value;
        cmd.setOptionValueWithSource(key, value, 'config');
      }
    }
  }
  if (merged.id === undefined) throw new CliError(`missing the replica id: give --id <n>, ${REPLICA_ENV.id}, or "id" in a config file (--config)`);
  return merged as unknown as ReplicaFlags;
}

const HELP_AFTER = `
Settings come from flags, environment variables (shown above as "env: ..."), and a JSON config
file (--config FILE or ${REPLICA_ENV.config}), in this order of precedence: flag > environment >
file > default. The file is one object whose keys are the flags' long names in camelCase, e.g.
  { "id": 0, "keys": "/etc/pbft/keys", "data": "/var/lib/pbft", "listen": "0.0.0.0:7001",
    "logLevel": "info", "logFormat": "json", "batchRequestsMax": 512, "pipelineTurns": true }
(also: batchBytesMax, inFlightBatchesMax, verifyWorkers, writeBufferMib, heapGrowingPercent, crypto, deferWrites). Relative "keys" and "data"
paths are relative to the file's directory. An unknown key or a bad value is an error.`;

export function addReplicaCommand(program: Command, action: (flags: ReplicaFlags) => Promise<number>, done: (code: number) => void): Command {
  const env = REPLICA_ENV;
  return program
    .command('replica')
    .description('run one replica until SIGTERM, SIGINT or SIGHUP (status: GET http://<host>:<port>/status, /metrics)')
    .addOption(new Option('--id <n>', 'replica id (0..n-1); required (flag, env or config file)').argParser(parseNonNegativeInt).env(env.id))
    .addOption(new Option('--config <file>', 'JSON config file: settings not given as flags or environment variables').env(env.config))
    .addOption(new Option('--keys <dir>', 'keyring directory: cluster.json and replica-<id>.key').default('keys').env(env.keys))
    .addOption(new Option('--data <dir>', 'RocksDB directory of this replica (default: data/replica-<id>)').env(env.data))
    .addOption(new Option('--log-level <level>', 'least severe level logged').choices(LOG_LEVELS).default('info').env(env.logLevel))
    .addOption(new Option('--log-format <format>', 'log lines as JSON or text').choices(LOG_FORMATS).default('json').env(env.logFormat))
    .addOption(
      new Option('--listen <host[:port]>', "listen address (default: host and port of the replica's URL in cluster.json)").argParser(parseListen).env(env.listen),
    )
    .addOption(
      new Option('--batch-requests-max <n>', 'tuning: requests per pre-prepare, at most (default 512)').argParser(parsePositiveInt).env(env.batchRequestsMax),
    )
    .addOption(
      new Option(
        '--batch-bytes-max <n>',
        'tuning: request bytes per pre-prepare this replica proposes, at most (default 1 MiB, at most 4 MiB; a larger request goes alone)',
      )
        .argParser(parsePositiveInt)
        .env(env.batchBytesMax),
    )
    .addOption(
      new Option('--in-flight-batches-max <n>', 'tuning: batches proposed and not yet executed, at most (default 4)')
        .argParser(parsePositiveInt)
        .env(env.inFlightBatchesMax),
    )
    .addOption(
      new Option('--verify-workers <n>', 'tuning: worker threads verifying signatures off the loop (default 0: on the loop)')
        .argParser(parseNonNegativeInt)
        .env(env.verifyWorkers),
    )
    .addOption(
      new Option('--write-buffer-mib <n>', `RocksDB's write buffer in MiB, ${WRITE_BUFFER_BYTES_MIN / MIB}..${WRITE_BUFFER_BYTES_MAX / MIB} (default ${WRITE_BUFFER_BYTES_DEFAULT / MIB}): a larger one merges stored files less often; a replica holds up to two in memory`)
        .argParser(parseWriteBufferMib)
        .env(env.writeBufferMib),
    )
    .addOption(
      new Option(
        '--heap-growing-percent <n>',
        `how far V8 lets the JavaScript heap grow between major collections while little is live (up to ${HEAP_POLICY_LARGE_BYTES / MIB} MiB after a major collection; above, V8 decides), 0..${HEAP_GROWING_PERCENT_MAX} percent of what is live (default ${HEAP_GROWING_PERCENT_DEFAULT}; 0: V8 decides, up to 4x): keeps the replica's memory flat under load`,
      )
        .argParser(parseHeapGrowingPercent)
        .env(env.heapGrowingPercent),
    )
    .addOption(
      new Option(
        '--crypto <backend>',
        'ed25519 implementation: auto (libsodium where its binding loads, else node:crypto), sodium (an error where it cannot load) or node; every backend accepts exactly the same signatures',
      )
        .choices(CRYPTO_CHOICES)
        .default('auto')
        .env(env.crypto),
    )
    .option('--join <file>', 'join by itself with the operator\'s admission (pbft member admit): its JOIN is signed with this replica\'s key; --listen defaults to the admitted URL (config file: "join")')
    .option('--quit-on-divergence', 'when the audit finds this replica\'s state faulty, it also asks to leave the configuration (a QUIT signed with its key; the operator adds it again after the repair; config file: "quitOnDivergence": true)')
    .option('--no-pipeline-turns', 'tuning: do not compute turns while a synced write is in flight (config file: "pipelineTurns": false)')
    .option('--no-defer-writes', 'tuning: sync the writes of every turn, also of turns that send nothing (config file: "deferWrites": false)')
    .addHelpText('after', HELP_AFTER)
    .action(async (flags: ReplicaFlags, cmd: Command) => {
      done(await action(mergeReplicaConfig(cmd, flags)));
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
  startHeapPolicy(flags.heapGrowingPercent ?? HEAP_GROWING_PERCENT_DEFAULT);
  const tuning: Partial<ReplicaOptions> = {
    ...(flags.batchRequestsMax !== undefined ? { batchRequestsMax: flags.batchRequestsMax } : {}),
    ...(flags.batchBytesMax !== undefined ? { batchBytesMax: flags.batchBytesMax } : {}),
    ...(flags.inFlightBatchesMax !== undefined ? { inFlightBatchesMax: flags.inFlightBatchesMax } : {}),
    ...(flags.quitOnDivergence === true ? { quitOnDivergence: true } : {}),
  };
  const admission = flags.join !== undefined ? readAdmission(flags.join, identity.cluster, flags.id, identity.key.publicKey) : undefined;
  const listen = flags.listen ?? (admission !== undefined ? hostPortOf(admission.url) : undefined);
  await runReplicaProcess({
    cluster: identity.cluster,
    id: flags.id,
    secretKey: identity.key.secretKey,
    dataDir: flags.data ?? join('data', `replica-${flags.id}`),
    log,
    replica: tuning,
    ...(flags.verifyWorkers !== undefined ? { verifyWorkers: flags.verifyWorkers } : {}),
    ...(flags.crypto !== undefined ? { crypto: flags.crypto } : {}),
    ...(flags.writeBufferMib !== undefined ? { writeBufferBytes: flags.writeBufferMib * MIB } : {}),
    ...(flags.pipelineTurns === false ? { pipelineTurns: false } : {}),
    ...(flags.deferWrites === false ? { deferWrites: false } : {}),
    ...(listen !== undefined ? { listenHost: listen.host } : {}),
    ...(listen?.port !== undefined ? { listenPort: listen.port } : {}),
    ...(admission !== undefined ? { join: { url: admission.url, admission: admission.admission, timestamp: admission.timestamp } } : {}),
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
