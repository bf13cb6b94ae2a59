/**
 * `npm run bench`: the service measured against its own limits, in one run.
 *
 *   crypto     the crypto floor: requests/s of nothing but the signature work every request needs
 *   cluster    n replica processes (default 4) x N closed-loop clients (default 64): throughput, and
 *              the client workers' CPU per request against one sign + f+1 reply verifies (the SDK target)
 *   latency    the same cluster, one closed-loop client: latency
 *   baseline   ONE server with the same transport, signed requests and replies, KvStore and synced
 *              RocksDB writes, no agreement: 1 client (latency) and N clients (throughput)
 *   cluster7   7 replica processes x N clients: how throughput scales with n
 *   reads      gets of existing keys on a fresh n-replica cluster, ordered (a request like any other)
 *              against read-only (src/core/reads.ts: one round trip, 2f+1 matching answers): N clients
 *              (throughput) and 1 client (latency) each
 *   crash      the crash-fault mode (keygen --fault-model crash): 2f+1 replica processes for the main
 *              cluster's f (3 for 4), majority quorums, same N clients and 1 client, printed next to the
 *              byzantine cluster's throughput and p50 (BFT-SMaRt's system.bft=false is the anchor)
 *   pool       the main cluster again with --pool-workers verify worker threads per replica (verify-pool.ts):
 *              whether moving signature checks off the loop helps or costs on this machine
 *   attacks    (not in the default suite; --only cluster,attacks) the main cluster under attack, one
 *              fresh cluster per scenario (Aardvark's list: a silent replica, a slow primary, a
 *              byzantine replica flooding, byzantine clients, slowloris; see ATTACK_SCENARIOS), each
 *              scenario's throughput as a fraction of the fault-free cluster's, with replica RSS, data
 *              directory size and log volume before and after
 *   keys       (--keys N; not in the default suite) scale with state size: an empty-store cluster under
 *              N clients, then a fresh cluster loaded with N keys of 100-byte values through the protocol
 *              (put-many operations) and taken to the stable checkpoint that covers the load, the
 *              same N clients, one replica SIGKILLed and restarted from its own disk, then a fresh
 *              empty-store cluster again (the machine's speed drifts over a long load); load time,
 *              throughput against the empty store (the mean of both empty runs), restart time, replica RSS
 *
 * Replicas run as `bin/pbft.mjs replica` child processes (real WebSockets, RocksDB with sync), each
 * with a data directory in a fresh temporary directory; clients run in worker processes
 * (bench/client-worker.ts), one client identity per closed-loop client. Every process started
 * here is stopped at the end, on Ctrl-C and on errors; the temporary directory is removed.
 *
 * See `npm run bench -- --help` for the options.
 */
import type { RepliesMode } from '../src/client/repliers.ts';
import { intParser, parseNonNegativeInt, parsePositiveInt } from '../src/cli/common.ts';
import { spawn, spawnSync, fork, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync, type Dirent } from 'node:fs';
import { arch, availableParallelism, cpus, loadavg, platform, tmpdir, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, InvalidArgumentError, Option } from 'commander';
import type { NodeStatus } from '../src/node/replica-node.ts';
import type { StorageLsm } from '../src/storage/types.ts';
import type { RecoveryStats } from '../src/node/http.ts';
import type { FromWorker, ToWorker, WorkerInit, WorkerResult } from './client-worker.ts';
import type { BaselineConfig } from './baseline-server.ts';
import { measureCryptoFloor, type CryptoFloor } from './crypto-floor.ts';
import { measureFrameCost, type FrameCost } from './frame-cost.ts';
import { measureWakeupCost, type WakeupCost } from './wakeup-cost.ts';
import { formatSplit, splitRecording, type PerfRun, type Split } from './perf-split.ts';
import { benchKeyring, clusterToJson, type ClusterJson } from './lib/keys.ts';
import { freePorts } from '../src/transport/free-ports.ts';
import { Histogram, meanMsBetween, processCpuSeconds, processRssBytes, runQueueNs, runQueueSecondsBetween, threadCpuSeconds } from './lib/stats.ts';
import { medianRatios, repeatedTargetLines, targetsOverRepetitions } from './lib/repeat.ts';
import { parseHistogram, type Histogram as PromHistogram } from '../src/dashboard/model.ts';
import type { Attack, AttackConfig, AttackStats } from './attacker.ts';
import type { FixtureConfig } from '../test/integration/fixtures/faults.ts';
import { DEFAULT_REPLICA_OPTIONS } from '../src/core/options.ts';
import { TICK_MS_DEFAULT } from '../src/node/loop.ts';
import type { FaultModel } from '../src/core/cluster.ts';
import { faultsOf, replicasFor } from '../src/core/quorum.ts';
import { connectLoader, LOAD_VALUE_BYTES } from './keys-load.ts';
import { RocksStorage } from '../src/storage/rocksdb.ts';
import { alive } from '../src/transport/free-ports.ts';
import { JEMALLOC_MISSING_HINT, MALLOC_CHOICES, mallocEnv, type MallocChoice, type MallocEnv, type MallocInUse } from '../src/node/malloc.ts';

const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));
const LAUNCHER = join(REPO_ROOT, 'bin', 'pbft.mjs');
const WORKER = join(REPO_ROOT, 'bench', 'client-worker.ts');
const BASELINE = join(REPO_ROOT, 'bench', 'baseline-server.ts');
const RESULTS_DIR = join(REPO_ROOT, 'bench', 'results');
const ATTACKER = join(REPO_ROOT, 'bench', 'attacker.ts');
/** The integration tests' replica fixture: the slow primary (test-only behaviour, not in the CLI). */
const FIXTURE = join(REPO_ROOT, 'test', 'integration', 'fixtures', 'replica.ts');
const PARTS = ['crypto', 'cluster', 'latency', 'baseline', 'cluster7', 'reads', 'crash', 'pool', 'attacks', 'keys'] as const;
/** What runs without --only (the attack part takes a few minutes more: ask for it). */
const DEFAULT_PARTS: readonly Part[] = ['crypto', 'cluster', 'latency', 'baseline', 'cluster7', 'reads', 'crash', 'pool'];
/**
 * Seconds of load before each measured window, unless --warmup says otherwise (also with --rss). V8 compiles
 * the replicas' code for a long time under load (TurboFan, concurrently, on the same two cores):
 * perf (--perf) counted its compiler at 10.8-11.8% of the replicas' CPU 10-18 s into a run and
 * 5.7% 30-38 s in; three alternating pairs (--only cluster --duration 8) gave 1,099 / 1,510 /
 * 1,584 req/s after 10 s against 1,280 / 1,712 / 2,128 after 30 s. A replica that runs for days
 * pays that once.
 */
const WARMUP_S_DEFAULT = 30;
/** Keys each client of the reads part writes before its run and then reads (at most --keys-per-client). */
const READ_KEYS_PER_CLIENT = 16;
type Part = (typeof PARTS)[number];

// =================================================================================================
// Options

interface Options {
  replicas: number;
  clients: number;
  duration: number;
  warmup: number;
  payload: number;
  keyBytes: number;
  keysPerClient: number;
  clientProcs: number;
  batchRequestsMax?: number;
  batchBytesMax?: number;
  inFlightBatchesMax?: number;
  verifyWorkers?: number;
  /** Extra node flags for the replica and baseline-server processes, and for the client workers. */
  serverNodeFlags: string[];
  clientNodeFlags: string[];
  poolWorkers: number;
  pipelineTurns: boolean;
  deferWrites: boolean;
  only: Part[];
  rss: boolean;
  rssInterval: number;
  floorSeconds: number;
  /** Seconds the cluster of the cluster / latency runs is left without clients, its CPU measured (0: not at all). */
  idleSeconds: number;
  json: boolean;
  jsonFile?: string;
  profile?: string;
  /** perf record over every run's measured window into <perf>/<run>/ (bench/perf-split.ts). */
  perf?: string;
  retransmitMs: number;
  /** Each client's pause after each answer before its next request, ms (0: a closed loop without pause). */
  thinkMs: number;
  /** The SDK's `replies` option for the measured clients. */
  replies: RepliesMode;
  timeoutMs: number;
  attacks: ScenarioName[];
  attackDuration: number;
  attackRate?: number;
  /** --keys: keys the keys part loads (undefined: the part does not run). */
  keys?: number;
  /** --repeat: the selected parts measured this many times in a row, each target judged in each (bench/lib/repeat.ts). */
  repeat: number;
  /** --crypto: the ed25519 backend of every process of the run (PBFT_CRYPTO); undefined: auto. */
  crypto?: 'sodium' | 'node';
  /** --malloc: the C allocator of every process the run starts (src/node/malloc.ts). */
  malloc: MallocChoice;
}

function positiveNumber(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('must be a positive number.');
  return n;
}

function nonNegativeNumber(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) throw new InvalidArgumentError('must be a non-negative number.');
  return n;
}

/** Repetitions at most (--repeat): a default suite takes about 8 minutes. */
const REPEAT_MAX = 9;
const repeatCount = intParser(1, REPEAT_MAX, `must be from 1 to ${REPEAT_MAX}.`);

function replicaCount(value: string): number {
  const n = parsePositiveInt(value);
  if (n < 4 || (n - 1) % 3 !== 0) throw new InvalidArgumentError('must be 3f+1 with f >= 1 (4, 7, ...).');
  return n;
}

function partList(value: string): Part[] {
  const aliases: Record<string, Part> = { floor: 'crypto', cluster4: 'cluster', scale: 'cluster7' };
  const out: Part[] = [];
  for (const raw of value.split(',').map((s) => s.trim()).filter((s) => s !== '')) {
    const p = (aliases[raw] ?? raw) as Part;
    if (!PARTS.includes(p)) throw new InvalidArgumentError(`unknown part "${raw}"; parts: ${PARTS.join(', ')}`);
    if (!out.includes(p)) out.push(p);
  }
  if (out.length === 0) throw new InvalidArgumentError('name at least one part.');
  return out;
}

function scenarioList(value: string): ScenarioName[] {
  const names = ATTACK_SCENARIOS.map((s) => s.name);
  const out: ScenarioName[] = [];
  for (const raw of value.split(',').map((s) => s.trim()).filter((s) => s !== '')) {
    if (!(names as string[]).includes(raw)) throw new InvalidArgumentError(`unknown attack "${raw}"; attacks: ${names.join(', ')}`);
    if (!out.includes(raw as ScenarioName)) out.push(raw as ScenarioName);
  }
  if (out.length === 0) throw new InvalidArgumentError('name at least one attack.');
  return out;
}

function parseOptions(argv: string[]): Options {
  const program = new Command('npm run bench --')
    .description(
      'Benchmark of the PBFT key-value store against its own limits: a real cluster (replica processes, WebSockets,\n' +
        'synced RocksDB) under closed-loop clients, the unreplicated baseline, and the crypto floor, in one run.\n' +
        'Default suite: crypto floor (with the CPU of one WebSocket frame), cluster (4 replicas x 64 clients),\n' +
        'latency (1 client), baseline (1 and 64 clients), cluster7 (7 replicas x 64 clients), reads (ordered\n' +
        'against read-only gets, 64 clients and 1), crash (the crash-fault mode: 2f+1 replicas x 64 clients and\n' +
        '1 client, next to the byzantine cluster); one table with the ratios and the targets, and each run\n' +
        "split into signatures, frames and the rest of its CPU per request.",
    )
    .addOption(new Option('--replicas <n>', 'replicas of the main cluster (3f+1)').argParser(replicaCount).default(4))
    .addOption(new Option('--clients <n>', 'closed-loop clients of the throughput runs').argParser(parsePositiveInt).default(64))
    .addOption(new Option('--duration <s>', 'measured seconds of each run').argParser(positiveNumber))
    .addOption(new Option('--warmup <s>', 'seconds of load before each measured window (default 30: V8 is still compiling the replicas\' code 10 s into a run)').argParser(nonNegativeNumber))
    .addOption(new Option('--payload <bytes>', 'value bytes of each put').argParser(parseNonNegativeInt).default(16))
    .addOption(new Option('--key-bytes <bytes>', 'key bytes of each put').argParser(parsePositiveInt).default(16))
    .addOption(new Option('--keys-per-client <n>', 'distinct keys each client cycles through').argParser(parsePositiveInt).default(256))
    .addOption(new Option('--client-procs <n>', 'worker processes hosting the clients').argParser(parsePositiveInt).default(2))
    .addOption(new Option('--batch-requests-max <n>', 'replica tuning: requests per batch, at most (core default 512)').argParser(parsePositiveInt))
    .addOption(new Option('--batch-bytes-max <n>', 'replica tuning: request bytes per batch, at most (core default 1 MiB)').argParser(parsePositiveInt))
    .addOption(new Option('--in-flight-batches-max <n>', 'replica tuning: batches in flight, at most (core default 4)').argParser(parsePositiveInt))
    .addOption(new Option('--verify-workers <n>', 'replica tuning: signature-verification worker threads (default 0: on the loop)').argParser(parseNonNegativeInt))
    .addOption(new Option('--server-node-flags <flags>', 'node flags for every replica and the baseline server, e.g. "--max-semi-space-size=32" (space-separated)').argParser(nodeFlags).default([]))
    .addOption(new Option('--client-node-flags <flags>', 'node flags for the client worker processes (the SDK\'s host), e.g. "--max-semi-space-size=32"').argParser(nodeFlags).default([]))
    .addOption(new Option('--crypto <backend>', 'ed25519 backend of replicas, clients, baseline and floor: sodium (libsodium) or node (node:crypto); default: libsodium where it loads').choices(['sodium', 'node']))
    .addOption(
      new Option('--malloc <allocator>', 'C allocator of every replica, server and client process: auto (jemalloc where installed, as pbft start), jemalloc (required) or system')
        .choices([...MALLOC_CHOICES])
        .default('auto'),
    )
    .addOption(new Option('--pool-workers <n>', 'verify worker threads per replica of the pool part').argParser(parsePositiveInt).default(1))
    .addOption(new Option('--no-pipeline-turns', 'replica tuning: no turns computed while a synced write is in flight'))
    .addOption(new Option('--no-defer-writes', 'replica tuning: every turn with writes syncs, also one that sends nothing'))
    .addOption(new Option('--only <parts>', `comma-separated parts to run: ${PARTS.join(', ')} (default: all but attacks)`).argParser(partList))
    .addOption(new Option('--attacks <names>', `attack scenarios of the attacks part: ${ATTACK_SCENARIOS.map((s) => s.name).join(', ')} (default: all)`).argParser(scenarioList))
    .addOption(new Option('--attack-duration <s>', 'measured seconds of each attack scenario').argParser(positiveNumber).default(8))
    .addOption(new Option('--attack-rate <n>', 'flood rate: frames per second per attacked replica (slowloris: connections per replica); default per scenario').argParser(parsePositiveInt))
    .addOption(new Option('--keys <n>', 'scale with state size (the keys part; alone unless --only names more): load n keys of 100-byte values, then throughput against an empty store (measured before and after the load), a replica restart, RSS').argParser(parsePositiveInt))
    .addOption(new Option('--rss', 'memory mode: the main cluster only, --duration default 300, replica RSS sampled every --rss-interval'))
    .addOption(new Option('--rss-interval <s>', 'seconds between RSS samples').argParser(positiveNumber).default(5))
    .addOption(new Option('--floor-seconds <s>', 'seconds per crypto micro-benchmark operation').argParser(positiveNumber).default(1))
    .addOption(new Option('--idle-seconds <s>', 'after the cluster and latency runs, the same replicas without clients: their CPU over this many seconds (0: skip)').argParser(nonNegativeNumber).default(5))
    .addOption(
      new Option('--repeat <n>', `measure the selected parts n times in a row (1-${REPEAT_MAX}), each time with its own crypto floor; each target is judged in every repetition, then [MET] over all when met in more than half`)
        .argParser(repeatCount)
        .default(1),
    )
    .addOption(new Option('--json', 'write a JSON record to bench/results/'))
    .addOption(new Option('--json-file <path>', 'write the JSON record to this file instead'))
    .addOption(new Option('--profile <dir>', 'run replicas, baseline server and client workers with node --cpu-prof into <dir>/<run>/'))
    .addOption(new Option('--perf <dir>', 'record every thread and the kernel with Linux perf over each measured window into <dir>/<run>/ and print where the CPU goes (bench/perf-split.ts; needs perf, as root)'))
    .addOption(new Option('--think-ms <ms>', 'each client pauses this long after each answer before its next request (0: a closed loop); e.g. --only crypto,baseline,latency --think-ms 20 for one client on an otherwise quiet machine').argParser(parseNonNegativeInt).default(0))
    .addOption(new Option('--retransmit-ms <ms>', 'client retransmission delay').argParser(parsePositiveInt).default(300))
    .addOption(new Option('--replies <mode>', "which replicas send a reply when a request executes (the SDK's replies option): quorum (f+1 named by the client) or all").choices(['quorum', 'all']).default('quorum'))
    .addOption(new Option('--timeout-ms <ms>', 'client deadline per request').argParser(parsePositiveInt).default(10_000))
    .addHelpText(
      'after',
      '\nExamples:\n' +
        '  npm run bench -- --duration 10                     the default suite, 10 s windows\n' +
        '  npm run bench -- --only cluster,latency --json     some parts; record in bench/results/\n' +
        '  npm run bench -- --only reads                      ordered against read-only gets\n' +
        '  npm run bench -- --only cluster,latency,crash      crash-fault mode next to the byzantine mode\n' +
        '  npm run bench -- --rss                             5-minute replica memory run\n' +
        '  npm run bench -- --only cluster --profile /tmp/p   CPU profiles (see bench/profile-top.ts)\n' +
        '  npm run bench -- --only cluster --perf /tmp/q      CPU by category over every thread and the kernel (see bench/perf-split.ts)\n' +
        '  npm run bench -- --only cluster,attacks            every attack scenario against the fault-free cluster\n' +
        '  npm run bench -- --only attacks --attacks silent-replica,vc-flood --attack-duration 5\n' +
        '  npm run bench -- --keys 1000000                    1M keys loaded: throughput vs empty, restart time, RSS\n' +
        '  npm run bench -- --only crypto,cluster --repeat 3  the floor and the cluster three times; targets judged over the three\n' +
        '\nAttack scenarios (each on a fresh cluster, the attacker speaks the wire format with keys of the bench keyring):\n' +
        ATTACK_SCENARIOS.map((s) => `  ${s.name.padEnd(16)} ${s.description}\n`).join(''),
    )
    .exitOverride((err) => process.exit(err.exitCode))
    .parse(argv, { from: 'node' });
  const o = program.opts<Record<string, unknown>>();
  const rss = o.rss === true;
  const keys = o.keys as number | undefined;
  let only = (o.only as Part[] | undefined) ?? (rss ? ['cluster'] : keys !== undefined ? ['keys'] : [...DEFAULT_PARTS]);
  if (keys !== undefined && !only.includes('keys')) only = [...only, 'keys'];
  if (keys === undefined && only.includes('keys')) {
    process.stderr.write('npm run bench: the keys part needs --keys <n>\n');
    process.exit(2);
  }
  const repeat = o.repeat as number;
  if (repeat > 1) {
    // Each of these writes per-run directories or runs for many minutes: one repetition each.
    const alone = [
      ...(o.profile !== undefined ? ['--profile'] : []),
      ...(o.perf !== undefined ? ['--perf'] : []),
      ...(rss ? ['--rss'] : []),
      ...(only.includes('keys') ? ['the keys part (--keys)'] : []),
      ...(only.includes('attacks') ? ['the attacks part'] : []),
    ];
    if (alone.length > 0) {
      process.stderr.write(`npm run bench: --repeat ${repeat} cannot be combined with ${alone.join(', ')}; run those once\n`);
      process.exit(2);
    }
  }
  return {
    replicas: o.replicas as number,
    clients: o.clients as number,
    duration: (o.duration as number | undefined) ?? (rss ? 300 : 10),
    warmup: (o.warmup as number | undefined) ?? WARMUP_S_DEFAULT,
    payload: o.payload as number,
    keyBytes: o.keyBytes as number,
    keysPerClient: o.keysPerClient as number,
    clientProcs: o.clientProcs as number,
    ...(o.batchRequestsMax !== undefined ? { batchRequestsMax: o.batchRequestsMax as number } : {}),
    ...(o.batchBytesMax !== undefined ? { batchBytesMax: o.batchBytesMax as number } : {}),
    ...(o.inFlightBatchesMax !== undefined ? { inFlightBatchesMax: o.inFlightBatchesMax as number } : {}),
    ...(o.verifyWorkers !== undefined ? { verifyWorkers: o.verifyWorkers as number } : {}),
    ...(o.crypto !== undefined ? { crypto: o.crypto as 'sodium' | 'node' } : {}),
    malloc: o.malloc as MallocChoice,
    serverNodeFlags: o.serverNodeFlags as string[],
    clientNodeFlags: o.clientNodeFlags as string[],
    poolWorkers: o.poolWorkers as number,
    pipelineTurns: o.pipelineTurns !== false,
    deferWrites: o.deferWrites !== false,
    only,
    rss,
    rssInterval: o.rssInterval as number,
    floorSeconds: o.floorSeconds as number,
    idleSeconds: o.idleSeconds as number,
    json: o.json === true || o.jsonFile !== undefined,
    ...(o.jsonFile !== undefined ? { jsonFile: resolve(o.jsonFile as string) } : {}),
    ...(o.profile !== undefined ? { profile: resolve(o.profile as string) } : {}),
    ...(o.perf !== undefined ? { perf: resolve(o.perf as string) } : {}),
    retransmitMs: o.retransmitMs as number,
    thinkMs: o.thinkMs as number,
    replies: o.replies as RepliesMode,
    timeoutMs: o.timeoutMs as number,
    attacks: (o.attacks as ScenarioName[] | undefined) ?? ATTACK_SCENARIOS.map((s) => s.name),
    attackDuration: o.attackDuration as number,
    ...(o.attackRate !== undefined ? { attackRate: o.attackRate as number } : {}),
    ...(keys !== undefined ? { keys } : {}),
    repeat,
  };
}

// =================================================================================================
// Processes: every child is tracked, and stopped on exit, Ctrl-C and errors

const children = new Set<ChildProcess>();
const tempDirs = new Set<string>();
/** The JIT maps V8 writes for perf with --perf (/tmp/perf-<pid>.map): removed on exit, copies kept. */
const perfMaps = new Set<string>();

function track<T extends ChildProcess>(proc: T): T {
  children.add(proc);
  proc.once('exit', () => children.delete(proc));
  return proc;
}

function exited(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
  return new Promise((resolvePromise) => proc.once('exit', () => resolvePromise()));
}

/** SIGTERM (a replica then stops cleanly and writes its CPU profile), SIGKILL after `graceMs`. */
async function stopProcess(proc: ChildProcess, graceMs = 10_000): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  proc.kill('SIGTERM');
  const timer = setTimeout(() => proc.kill('SIGKILL'), graceMs);
  await exited(proc);
  clearTimeout(timer);
}

function removeTempDirs(): void {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  tempDirs.clear();
}

process.once('exit', () => {
  for (const p of children) p.kill('SIGKILL');
  removeTempDirs();
  for (const map of perfMaps) rmSync(map, { force: true });
});

let interrupted = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (interrupted) return;
    interrupted = true;
    process.stderr.write(`\nbench: ${signal}: stopping ${children.size} processes\n`);
    void Promise.all([...children].map((p) => stopProcess(p, 3_000))).finally(() => {
      removeTempDirs();
      process.exit(130);
    });
  });
}

/**
 * Microseconds of CLOCK_MONOTONIC, the clock of V8 CPU profiles' timestamps (startTime, endTime and
 * the samples' times) in every process of this machine.
 */
const monotonicUs = (): number => Number(process.hrtime.bigint() / 1000n);

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// =================================================================================================
// Progress

const tty = process.stderr.isTTY === true;
let lastProgressLine = 0;

function progress(text: string, force = false): void {
  if (tty) {
    process.stderr.write(`\r\x1b[2K${text}`);
  } else if (force || Date.now() - lastProgressLine >= 5_000) {
    lastProgressLine = Date.now();
    process.stderr.write(text + '\n');
  }
}

function progressDone(text: string): void {
  if (tty) process.stderr.write(`\r\x1b[2K${text}\n`);
  else process.stderr.write(text + '\n');
  lastProgressLine = 0;
}

// =================================================================================================
// Replicas and the baseline server

interface Server {
  name: string;
  procs: ChildProcess[];
  statusUrls: string[];
  output: string[][];
  /** Bytes each process wrote on stdout and stderr so far (its log volume). */
  outputBytes: number[];
  /** Data directory of each process (replicas; '' where none). */
  dataDirs: string[];
  /** The cluster clients talk to (the one-replica cluster for the baseline). */
  cluster: ClusterJson;
  keysDir: string;
  stop(): Promise<void>;
  /** Starts process k again with the arguments it was started with (its data directory kept); replaces procs[k]. */
  respawn?(k: number): ChildProcess;
}

function collectOutput(proc: ChildProcess, into: string[], bytes?: { n: number }): void {
  const add = (chunk: Buffer): void => {
    if (bytes !== undefined) bytes.n += chunk.length;
    into.push(...chunk.toString('utf8').split('\n').filter((l) => l !== ''));
    if (into.length > 200) into.splice(0, into.length - 200);
  };
  proc.stdout?.on('data', add);
  proc.stderr?.on('data', add);
}

async function getJson<T>(url: string): Promise<T | undefined> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(3_000) });
    if (!res.ok) return undefined;
    return (await res.json()) as T;
  } catch {
    return undefined;
  }
}

/**
 * node --cpu-prof into <profile>/<run>/<name>/: one file per thread (the main thread, where the
 * loop runs, and tsx's module-loader thread), named CPU.<date>.<time>.<pid>.<tid>.<seq>.cpuprofile.
 */
function profileArgs(o: Options, run: string, name: string): string[] {
  if (o.profile === undefined) return [];
  const dir = join(o.profile, run, name);
  mkdirSync(dir, { recursive: true });
  return ['--cpu-prof', `--cpu-prof-dir=${dir}`];
}

/** Node's own arguments for a replica or the baseline server: profiling, then --server-node-flags. */
function serverNodeArgs(o: Options, run: string, name: string): string[] {
  return [...profileArgs(o, run, name), ...perfArgs(o), ...o.serverNodeFlags];
}

/** perf record's sampling rate with --perf (per CPU): a sample stands for about 1 ms of a thread's CPU. */
const PERF_FREQUENCY = 999;

interface PerfRecorder {
  /** Stops the recording (SIGINT: perf then writes its file); resolves once perf has exited. */
  stop(): Promise<void>;
  /** Writes pids.json, runs perf script over the recording and adds it up, then copies the JIT maps beside it. */
  split(run: PerfRun): Promise<Split>;
}

/**
 * `perf record -a -g` into dir/perf.data, every CPU, from now until stop(). Resolves once perf
 * runs (it prints nothing when it starts: half a second is what its setup takes here).
 */
async function startPerf(dir: string): Promise<PerfRecorder> {
  mkdirSync(dir, { recursive: true });
  const data = join(dir, 'perf.data');
  const proc = track(spawn('perf', ['record', '-a', '-g', '-F', String(PERF_FREQUENCY), '-o', data], { stdio: ['ignore', 'ignore', 'pipe'] }));
  let stderr = '';
  proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((resolveExit, reject) => {
    proc.on('error', reject);
    proc.on('exit', (code, signal) => {
      if (code === 0 || signal === 'SIGINT' || code === 130 || code === null) resolveExit();
      else reject(new Error(`perf record exited with ${code}: ${stderr.trim().split('\n').slice(-3).join(' | ')}`));
    });
  });
  exited.catch(() => undefined);
  await Promise.race([sleep(500), exited]);
  if (proc.exitCode !== null) await exited.then(() => Promise.reject(new Error(`perf record stopped at once: ${stderr.trim()}`)));
  return {
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGINT');
      await exited;
    },
    async split(run) {
      writeFileSync(join(dir, 'pids.json'), JSON.stringify(run) + '\n');
      const result = await splitRecording(dir);
      // The JIT maps V8 wrote for perf (--perf-basic-prof): copied beside the recording, where
      // perf-split.ts finds them again. The originals stay while the bench runs (a replica of a
      // later run on the same cluster goes on appending to its own) and are removed at its exit.
      mkdirSync(join(dir, 'maps'), { recursive: true });
      for (const pid of Object.keys(run.kinds)) {
        const map = `/tmp/perf-${pid}.map`;
        if (!existsSync(map)) continue;
        copyFileSync(map, join(dir, 'maps', `perf-${pid}.map`));
        perfMaps.add(map);
      }
      return result;
    },
  };
}

/** --perf: perf must be there and allowed to record every CPU (root, or perf_event_paranoid <= -1). */
function checkPerf(): void {
  const r = spawnSync('perf', ['record', '-a', '-o', '/dev/null', '--', 'true'], { encoding: 'utf8' });
  if (r.error !== undefined) {
    process.stderr.write(`npm run bench: --perf needs Linux perf, which is not installed here (${r.error.message}; Debian: apt-get install linux-perf)\n`);
    process.exit(2);
  }
  if (r.status !== 0) {
    process.stderr.write(`npm run bench: --perf: perf cannot record every CPU here (run as root, or lower /proc/sys/kernel/perf_event_paranoid): ${(r.stderr ?? '').trim().split('\n').slice(-2).join(' | ')}\n`);
    process.exit(2);
  }
}

/** With --perf, V8 names its compiled JavaScript for perf (/tmp/perf-<pid>.map). */
function perfArgs(o: Options): string[] {
  if (o.perf === undefined) return [];
  // --perf-basic-prof also turns on V8's event log, a file per isolate named by its process id, in
  // the working directory (the repository) unless told where: DIR/v8-logs/.
  const dir = join(o.perf, 'v8-logs');
  mkdirSync(dir, { recursive: true });
  return ['--perf-basic-prof', `--logfile=${join(dir, 'v8.log')}`];
}

/** --server-node-flags / --client-node-flags: space-separated, each an option (starts with --). */
function nodeFlags(value: string): string[] {
  const flags = value.split(/\s+/).filter((f) => f !== '');
  for (const f of flags) if (!f.startsWith('--')) throw new InvalidArgumentError(`"${f}" is not a node option (options start with --)`);
  return flags;
}

/** How a scenario changes the cluster: a replica not started, a replica run by the test fixture. */
interface ClusterSpec {
  /** Replicas not started (a silent replica, or one whose identity the attacker takes). */
  skip?: number[];
  /** Replicas run by the integration tests' fixture with this configuration (PBFT_TEST_NODE). */
  fixture?: Map<number, FixtureConfig>;
  /** The keyring's fault model (default byzantine). */
  faultModel?: FaultModel;
}

/** The malloc the first replica started in this run reports (GET /status memory.malloc). */
let mallocSeen: MallocInUse | undefined;

async function startCluster(o: Options, run: string, n: number, clientIdentities: number, spec: ClusterSpec = {}): Promise<Server> {
  const dir = mkdtempSync(join(tmpdir(), `pbft-bench-${run}-`));
  tempDirs.add(dir);
  const keyring = await benchKeyring(dir, n, clientIdentities, `bench-${run}-${process.pid}`, spec.faultModel);
  const tuning = [
    ...(o.batchRequestsMax !== undefined ? ['--batch-requests-max', String(o.batchRequestsMax)] : []),
    ...(o.batchBytesMax !== undefined ? ['--batch-bytes-max', String(o.batchBytesMax)] : []),
    ...(o.inFlightBatchesMax !== undefined ? ['--in-flight-batches-max', String(o.inFlightBatchesMax)] : []),
    ...(o.verifyWorkers !== undefined ? ['--verify-workers', String(o.verifyWorkers)] : []),
    ...(o.pipelineTurns ? [] : ['--no-pipeline-turns']),
    ...(o.deferWrites ? [] : ['--no-defer-writes']),
  ];
  const procs: ChildProcess[] = [];
  const output: string[][] = [];
  const counters: Array<{ n: number }> = [];
  const running: number[] = [];
  const dataDirs: string[] = [];
  /** The launcher's arguments of each replica process (by index in procs; not the fixture's). */
  const spawnArgs = new Map<number, string[]>();
  for (let id = 0; id < n; id++) {
    if (spec.skip?.includes(id)) continue;
    running.push(id);
    dataDirs.push(join(dir, `data-${id}`));
    const fixture = spec.fixture?.get(id);
    if (fixture !== undefined) {
      const args = [...serverNodeArgs(o, run, `replica-${id}`), '--import', 'tsx', FIXTURE, '--keys', keyring.keysDir, '--id', String(id), '--data', join(dir, `data-${id}`)];
      const env = { ...process.env, PBFT_EXIT_WITH_PARENT: '1', PBFT_TEST_NODE: JSON.stringify({ logLevel: 'warn', ...fixture }) };
      const proc = track(spawn(process.execPath, args, { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] }));
      const lines: string[] = [];
      const bytes = { n: 0 };
      collectOutput(proc, lines, bytes);
      procs.push(proc);
      output.push(lines);
      counters.push(bytes);
      continue;
    }
    const args = [
      ...serverNodeArgs(o, run, `replica-${id}`),
      LAUNCHER,
      'replica',
      '--id',
      String(id),
      '--keys',
      keyring.keysDir,
      '--data',
      join(dir, `data-${id}`),
      '--log-level',
      'warn',
      ...tuning,
    ];
    const proc = track(spawn(process.execPath, args, { cwd: REPO_ROOT, env: { ...process.env, PBFT_EXIT_WITH_PARENT: '1' }, stdio: ['ignore', 'pipe', 'pipe'] }));
    const lines: string[] = [];
    const bytes = { n: 0 };
    collectOutput(proc, lines, bytes);
    spawnArgs.set(procs.length, args);
    procs.push(proc);
    output.push(lines);
    counters.push(bytes);
  }
  const statusUrls = running.map((id) => `http://127.0.0.1:${keyring.ports[id]}/status`);
  const deadline = Date.now() + 60_000;
  for (;;) {
    for (let k = 0; k < procs.length; k++) {
      const p = procs[k]!;
      if (p.exitCode !== null || p.signalCode !== null) {
        throw new Error(`replica ${running[k]} exited during startup:\n${output[k]!.join('\n')}`);
      }
    }
    const all = await Promise.all(statusUrls.map((u) => getJson<NodeStatus>(u)));
    if (all.every((s) => s !== undefined && s.transport.replicasConnected.length === running.length - 1)) {
      mallocSeen ??= all[0]?.memory.malloc;
      break;
    }
    if (Date.now() > deadline) {
      // Name what is missing, so that a failure (seen once in CI, not reproduced) says which links were down.
      const detail = all.map((s, k) => {
        const id = running[k]!;
        const state = s === undefined ? '/status did not answer' : `connected to [${s.transport.replicasConnected.join(', ')}]`;
        const tail = output[k]!.slice(-5).join('\n    ');
        return `  replica ${id} (port ${keyring.ports[id]}): ${state}${tail ? `; last output:\n    ${tail}` : ''}`;
      });
      throw new Error(`${run}: replicas did not connect within 60 s:\n${detail.join('\n')}`);
    }
    await sleep(100);
  }
  return {
    name: run,
    procs,
    statusUrls,
    output,
    get outputBytes() {
      return counters.map((c) => c.n);
    },
    dataDirs,
    cluster: clusterToJson(keyring.cluster),
    keysDir: keyring.keysDir,
    async stop() {
      await Promise.all(procs.map((p) => stopProcess(p)));
      rmSync(dir, { recursive: true, force: true });
      tempDirs.delete(dir);
    },
    respawn(k: number): ChildProcess {
      const args = spawnArgs.get(k);
      if (args === undefined) throw new Error(`${run}: process ${k} cannot be restarted`);
      const proc = track(spawn(process.execPath, args, { cwd: REPO_ROOT, env: { ...process.env, PBFT_EXIT_WITH_PARENT: '1' }, stdio: ['ignore', 'pipe', 'pipe'] }));
      collectOutput(proc, output[k]!, counters[k]!);
      procs[k] = proc;
      return proc;
    },
  };
}

async function startBaseline(o: Options, clientIdentities: number, run = 'baseline'): Promise<Server> {
  const dir = mkdtempSync(join(tmpdir(), 'pbft-bench-baseline-'));
  tempDirs.add(dir);
  // A regular keyring provides the keys; the server is replica 0 of a one-replica cluster (f = 0).
  const keyring = await benchKeyring(dir, 4, clientIdentities, `bench-baseline-${process.pid}`);
  const [port] = await freePorts(1);
  const full = clusterToJson(keyring.cluster);
  const cluster: ClusterJson = { ...full, f: 0, replicas: [{ ...full.replicas[0]!, url: `ws://127.0.0.1:${port}` }] };
  const config: BaselineConfig = { cluster, keysDir: keyring.keysDir, dataDir: join(dir, 'data') };
  const proc = track(
    spawn(process.execPath, [...serverNodeArgs(o, run, 'baseline-server'), '--import', 'tsx', BASELINE, JSON.stringify(config)], {
      cwd: REPO_ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
  const lines: string[] = [];
  const bytes = { n: 0 };
  collectOutput(proc, lines, bytes);
  const deadline = Date.now() + 60_000;
  while (!lines.some((l) => l.startsWith('ready '))) {
    if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`baseline server exited during startup:\n${lines.join('\n')}`);
    if (Date.now() > deadline) throw new Error('baseline server did not start within 60 s');
    await sleep(50);
  }
  return {
    name: run,
    procs: [proc],
    statusUrls: [],
    output: [lines],
    get outputBytes() {
      return [bytes.n];
    },
    dataDirs: [join(dir, 'data')],
    cluster,
    keysDir: keyring.keysDir,
    async stop() {
      await stopProcess(proc);
      rmSync(dir, { recursive: true, force: true });
      tempDirs.delete(dir);
    },
  };
}

// =================================================================================================
// One load: closed-loop clients in worker processes, warm-up, measured window

interface LoadResult {
  run: string;
  replicas: number;
  clients: number;
  requests: number;
  errors: number;
  seconds: number;
  requestsPerSecond: number;
  latencyMs: { p50: number; p99: number; max: number; mean: number };
  cpuSeconds: { servers: number; clients: number; total: number };
  /** The client workers' CPU split into user and system (kernel) time. */
  clientCpuSplit?: { user: number; system: number };
  /** Signature checks of the client workers in the window, and those their shared cache answered. */
  clientSignatureChecks?: { checks: number; cacheHits: number };
  /**
   * Requests the clients sent again to every replica in the window (no f+1 matching replies in
   * time), and the replicas some client left out of its named repliers at its end.
   */
  clientRetransmits?: { requests: number; leftOut: number[] };
  cpuSecondsPerRequest: number;
  /** Replica (or baseline server) resident memory at the start and the end of the window, bytes. */
  rssBytes: Array<{ start: number; end: number; max: number }>;
  /**
   * RSS per replica at each sample; with --rss also heap used + array buffers from /status, and
   * RocksDB's memory by its own accounting (memtables + table readers + block cache) (NaN if it did
   * not answer).
   */
  rssSamples: Array<{ t: number; bytes: number[]; heap?: number[]; rocks?: number[] }>;
  /** From replica 0's /status over the window (replicated runs only). */
  replica0?: { batches: number; requestsPerBatch: number; syncedWrites: number; turns: number; viewChanges: number; retransmissions: number };
  /** Work per completed request of every replica (0: the primary in view 0), from /status; printed for 0 and 1. */
  work?: Array<FrameCounts & {
    replica: number;
    verifies: number;
    verifiesOffloaded: number;
    signs: number;
    verifyUs: number;
    signUs: number;
    syncedWrites: number;
    writeWaitUs: number;
    /** Horizon record writes per request and the wait for each (us; 0 with none). */
    horizonWrites: number;
    horizonWaitUs: number;
    turns: number;
    /**
     * The share of the window in which the replica's own checkpoint was pending (/status
     * loop.checkpointMs), and the batches it executed per second then and otherwise: what the
     * checkpoint's work costs the protocol, within one run (absent from replicas without it).
     */
    checkpoint?: { share: number; batchesPerSecond: number; otherwisePerSecond: number };
  }>;
  /**
   * Every frame of the window once (each has one sender): what the replicas sent plus what they
   * received from clients, per request; undefined when a replica's /status was missing.
   */
  framesPerRequest?: number;
  /**
   * Where a request's time went at replica 0 (the primary) and replica 1 (a backup): means over the
   * window of the replica's latency histograms (its /metrics), milliseconds (NaN: none observed).
   */
  phases?: Array<{ replica: number; requestMs: number; prepareMs: number; commitMs: number; executeMs: number; writeMs: number }>;
  errorSamples: string[];
  /** The clients' operation: put (default), or get ordered / read-only (the reads part). */
  workload?: NonNullable<WorkerInit['workload']>;
  /** Read-only gets answered unordered and fallen back to ordered requests, in the window. */
  reads?: { unordered: number; fellBack: number };
  /** With --perf: the window's CPU by process kind and category (bench/perf-split.ts). */
  perf?: Split;
  /**
   * Time spent runnable but waiting for a core over the window (Linux's /proc/<pid>/task/<tid>/
   * schedstat), microseconds per request: each server process's main thread and all its threads,
   * and the client workers' threads together. Absent where the kernel keeps no such figures.
   */
  runQueue?: { serversMainUs: number[]; serversAllUs: number[]; clientsUs: number };
}

interface WorkerHandle {
  proc: ChildProcess;
  completed: number;
  next(type: FromWorker['type']): Promise<FromWorker>;
}

function startWorker(o: Options, run: string, index: number): WorkerHandle {
  const proc = track(
    fork(WORKER, [], {
      cwd: REPO_ROOT,
      execArgv: [...profileArgs(o, run, `client-worker-${index}`), ...perfArgs(o), ...o.clientNodeFlags, '--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    }),
  );
  const waiting = new Map<string, Array<(m: FromWorker) => void>>();
  let failure: Error | undefined;
  const handle: WorkerHandle = {
    proc,
    completed: 0,
    next(type) {
      if (failure !== undefined) return Promise.reject(failure);
      return new Promise((resolvePromise, reject) => {
        const list = waiting.get(type) ?? [];
        list.push(resolvePromise);
        waiting.set(type, list);
        proc.once('exit', (code) => reject(failure ?? new Error(`client worker ${index} exited (${code}) while waiting for ${type}`)));
      });
    },
  };
  proc.on('message', (raw: unknown) => {
    const m = raw as FromWorker;
    if (m.type === 'progress') handle.completed = m.completed;
    if (m.type === 'failed') {
      failure = new Error(`client worker ${index}: ${m.message}`);
      for (const list of waiting.values()) list.length = 0;
      proc.kill('SIGKILL');
      return;
    }
    const list = waiting.get(m.type);
    const resolver = list?.shift();
    resolver?.(m);
  });
  return handle;
}

function post(w: WorkerHandle, m: ToWorker): void {
  w.proc.send(m);
}

/** WebSocket frames per request: sent (of them to clients), received (of them from clients). */
interface FrameCounts {
  framesOut?: number;
  clientFramesOut?: number;
  framesIn?: number;
  clientFramesIn?: number;
}

/** Frames per request between two /status samples (undefined fields: a replica without the client counters). */
function framesOf(a: NodeStatus, b: NodeStatus, requests: number): FrameCounts {
  const ta = a.transport;
  const tb = b.transport;
  if (ta === undefined || tb === undefined) return {};
  const out: FrameCounts = {
    framesOut: (tb.framesOut - ta.framesOut) / requests,
    framesIn: (tb.framesIn - ta.framesIn) / requests,
  };
  if (ta.clientFramesOut !== undefined && tb.clientFramesOut !== undefined) out.clientFramesOut = (tb.clientFramesOut - ta.clientFramesOut) / requests;
  if (ta.clientFramesIn !== undefined && tb.clientFramesIn !== undefined) out.clientFramesIn = (tb.clientFramesIn - ta.clientFramesIn) / requests;
  return out;
}

/** Every replica's /status (the work lines print replicas 0 and 1; the frame count needs them all). */
/** The window's share with the replica's own checkpoint pending, and its batch rates then and otherwise. */
function checkpointOf(a: NodeStatus, b: NodeStatus, seconds: number): { checkpoint?: { share: number; batchesPerSecond: number; otherwisePerSecond: number } } {
  if (a.loop.checkpointMs === undefined || b.loop.checkpointMs === undefined || seconds <= 0) return {};
  const pendingS = Math.min(seconds, (b.loop.checkpointMs - a.loop.checkpointMs) / 1000);
  const during = (b.loop.checkpointBatches ?? 0) - (a.loop.checkpointBatches ?? 0);
  const all = b.counters.batchesExecuted - a.counters.batchesExecuted;
  return {
    checkpoint: {
      share: pendingS / seconds,
      batchesPerSecond: pendingS > 0 ? during / pendingS : NaN,
      otherwisePerSecond: seconds - pendingS > 0 ? (all - during) / (seconds - pendingS) : NaN,
    },
  };
}

async function sampleStatus(server: Server): Promise<Array<NodeStatus | undefined>> {
  return Promise.all(server.statusUrls.map((u) => getJson<NodeStatus>(u)));
}

interface LoadOptions {
  /** Measured seconds (default o.duration). */
  duration?: number;
  /** Replicas the clients can reach (default all). */
  expectReplicas?: number;
  /** The clients' operation (default put). */
  workload?: NonNullable<WorkerInit['workload']>;
  /** Distinct keys per client (default o.keysPerClient). */
  keysPerClient?: number;
}

async function runLoad(o: Options, server: Server, run: string, clientCount: number, firstClientId: number, lo: LoadOptions = {}): Promise<LoadResult> {
  const label = `[${run}: ${server.cluster.replicas.length === 1 ? 'baseline server' : `${server.cluster.replicas.length} replicas`}, ${clientCount} client${clientCount === 1 ? '' : 's'}]`;
  const duration = lo.duration ?? o.duration;
  progress(`${label} connecting clients`, true);
  const procsCount = Math.min(o.clientProcs, clientCount);
  const workers: WorkerHandle[] = [];
  try {
    for (let k = 0; k < procsCount; k++) workers.push(startWorker(o, run, k));
    const ids = Array.from({ length: clientCount }, (_, i) => firstClientId + i);
    await Promise.all(
      workers.map((w, k) => {
        const init: WorkerInit = {
          cluster: server.cluster,
          keysDir: server.keysDir,
          clientIds: ids.filter((_, i) => i % procsCount === k),
          keyBytes: o.keyBytes,
          valueBytes: o.payload,
          keysPerClient: lo.keysPerClient ?? o.keysPerClient,
          timeoutMs: o.timeoutMs,
          retransmitMs: o.retransmitMs,
          ...(o.thinkMs > 0 ? { thinkMs: o.thinkMs } : {}),
          replies: o.replies,
          expectReplicas: lo.expectReplicas ?? server.cluster.replicas.length,
          ...(lo.workload !== undefined ? { workload: lo.workload } : {}),
        };
        const ready = w.next('ready');
        post(w, { type: 'init', ...init });
        return ready;
      }),
    );
    for (const w of workers) post(w, { type: 'run' });

    const totalCompleted = (): number => workers.reduce((s, w) => s + w.completed, 0);
    let lastCompleted = 0;
    let lastAt = performance.now();
    const rate = (): string => {
      const now = performance.now();
      const c = totalCompleted();
      const r = ((c - lastCompleted) * 1000) / Math.max(1, now - lastAt);
      lastCompleted = c;
      lastAt = now;
      return `${Math.round(r)} req/s`;
    };
    const warmupEnd = performance.now() + o.warmup * 1000;
    while (performance.now() < warmupEnd) {
      await sleep(Math.min(1_000, Math.max(1, warmupEnd - performance.now())));
      progress(`${label} warm-up ${Math.min(o.warmup, o.warmup - (warmupEnd - performance.now()) / 1000).toFixed(0)}/${o.warmup} s  ${rate()}`);
    }

    // The measured window.
    const pids = server.procs.map((p) => p.pid!);
    const cpuStart = pids.map((pid) => processCpuSeconds(pid) ?? 0);
    const workerPids = workers.map((w) => w.proc.pid!);
    const waitStart = [...pids, ...workerPids].map((pid) => runQueueNs(pid));
    const rssStart = pids.map((pid) => processRssBytes(pid) ?? 0);
    const rssMax = [...rssStart];
    const statusStart = await sampleStatus(server);
    const phasesStart = server.cluster.replicas.length > 1 ? await phaseHistograms(server.statusUrls.slice(0, 2)) : [];
    const recorder = o.perf !== undefined ? await startPerf(join(o.perf, run)) : undefined;
    for (const w of workers) post(w, { type: 'mark' });
    const windowStart = performance.now();
    const windowStartUs = monotonicUs();
    const windowEnd = windowStart + duration * 1000;
    const rssSamples: LoadResult['rssSamples'] = [{ t: 0, bytes: rssStart }];
    let nextRssSample = windowStart + o.rssInterval * 1000;
    while (performance.now() < windowEnd) {
      await sleep(Math.min(1_000, Math.max(1, windowEnd - performance.now())));
      const now = performance.now();
      if (now >= nextRssSample) {
        nextRssSample += o.rssInterval * 1000;
        const bytes = pids.map((pid) => processRssBytes(pid) ?? 0);
        bytes.forEach((b, i) => (rssMax[i] = Math.max(rssMax[i]!, b)));
        // With --rss, the heap as well: RSS alone cannot tell a leak from pages the allocator keeps.
        const statuses = o.rss ? await Promise.all(server.statusUrls.map((u) => getJson<NodeStatus>(u))) : undefined;
        const heap = statuses?.map((st) => (st === undefined ? NaN : st.memory.heapUsed + st.memory.arrayBuffers));
        const rocks = statuses?.map((st) => {
          const m = st?.memory.storage;
          return m === undefined ? NaN : m.memtables + m.tableReaders + m.blockCache;
        });
        rssSamples.push({ t: Math.round((now - windowStart) / 100) / 10, bytes, ...(heap !== undefined ? { heap, rocks } : {}) });
        const mib = (xs: number[]): string => xs.map((b) => (b / 2 ** 20).toFixed(1)).join(' ');
        if (o.rss) progress(`${label} RSS MiB: ${mib(bytes)}  heap+array buffers MiB: ${mib(heap!)}  RocksDB MiB: ${mib(rocks!)}`, true);
      }
      for (const p of server.procs) {
        if (p.exitCode !== null || p.signalCode !== null) throw new Error(`${run}: a server process exited during the run:\n${server.output.flat().slice(-20).join('\n')}`);
      }
      progress(`${label} measuring ${((now - windowStart) / 1000).toFixed(0)}/${duration} s  ${rate()}`);
    }
    const results = workers.map((w) => w.next('result'));
    for (const w of workers) post(w, { type: 'stop' });
    const recorded = recorder?.stop();
    recorded?.catch(() => undefined); // awaited below, after the results
    const cpuEnd = pids.map((pid) => processCpuSeconds(pid) ?? 0);
    const waited = [...pids, ...workerPids].map((pid, i) => runQueueSecondsBetween(pid, waitStart[i]!, runQueueNs(pid)));
    const rssEnd = pids.map((pid) => processRssBytes(pid) ?? 0);
    rssEnd.forEach((b, i) => (rssMax[i] = Math.max(rssMax[i]!, b)));
    const seconds = (performance.now() - windowStart) / 1000;
    const windowEndUs = monotonicUs();
    const parts = (await Promise.all(results)) as Array<{ type: 'result' } & WorkerResult>;
    const statusEnd = await sampleStatus(server);
    const phasesEnd = phasesStart.length > 0 ? await phaseHistograms(server.statusUrls.slice(0, 2)) : [];

    const histogram = Histogram.merge(parts.map((p) => p.histogram));
    const requests = parts.reduce((s, p) => s + p.completed, 0);
    const serverCpu = cpuEnd.reduce((s, c, i) => s + (c - cpuStart[i]!), 0);
    const clientCpu = parts.reduce((s, p) => s + p.cpuSeconds, 0);
    const result: LoadResult = {
      run,
      replicas: server.cluster.replicas.length,
      clients: clientCount,
      requests,
      errors: parts.reduce((s, p) => s + p.errors, 0),
      seconds,
      requestsPerSecond: requests / seconds,
      latencyMs: {
        p50: histogram.quantileUs(0.5) / 1000,
        p99: histogram.quantileUs(0.99) / 1000,
        max: histogram.maxUs / 1000,
        mean: histogram.meanUs() / 1000,
      },
      cpuSeconds: { servers: serverCpu, clients: clientCpu, total: serverCpu + clientCpu },
      clientCpuSplit: { user: parts.reduce((s, p) => s + p.cpuUserSeconds, 0), system: parts.reduce((s, p) => s + p.cpuSystemSeconds, 0) },
      clientSignatureChecks: { checks: parts.reduce((s, p) => s + p.signatureChecks, 0), cacheHits: parts.reduce((s, p) => s + p.signatureCacheHits, 0) },
      clientRetransmits: { requests: parts.reduce((s, p) => s + p.retransmitted, 0), leftOut: [...new Set(parts.flatMap((p) => p.leftOut))].sort((a, b) => a - b) },
      cpuSecondsPerRequest: requests > 0 ? (serverCpu + clientCpu) / requests : NaN,
      rssBytes: pids.map((_, i) => ({ start: rssStart[i]!, end: rssEnd[i]!, max: rssMax[i]! })),
      rssSamples: [...rssSamples, { t: Math.round(seconds * 10) / 10, bytes: rssEnd }],
      errorSamples: parts.flatMap((p) => p.errorSamples).slice(0, 5),
      ...(lo.workload !== undefined ? { workload: lo.workload } : {}),
    };
    if (o.profile !== undefined) {
      // The measured window on the clock of the profiles' timestamps: profile-top.ts counts only it.
      const dir = join(o.profile, run);
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, 'window.json'), JSON.stringify({ run, startUs: windowStartUs, endUs: windowEndUs, requests }) + '\n');
    }
    if (recorder !== undefined) {
      await recorded;
      const kinds: Record<string, string> = {};
      for (const pid of pids) kinds[String(pid)] = server.cluster.replicas.length === 1 ? 'server' : 'replicas';
      for (const w of workers) if (w.proc.pid !== undefined) kinds[String(w.proc.pid)] = 'clients';
      result.perf = await recorder.split({ run, kinds, requests, seconds, frequency: PERF_FREQUENCY });
    }
    if (lo.workload === 'get-readonly') {
      result.reads = parts.reduce((t, p) => ({ unordered: t.unordered + (p.reads?.unordered ?? 0), fellBack: t.fellBack + (p.reads?.fellBack ?? 0) }), { unordered: 0, fellBack: 0 });
    }
    const s0 = statusStart[0];
    const e0 = statusEnd[0];
    if (s0 !== undefined && e0 !== undefined) {
      const batches = e0.counters.batchesExecuted - s0.counters.batchesExecuted;
      const executed = e0.counters.requestsExecuted - s0.counters.requestsExecuted;
      result.replica0 = {
        batches,
        requestsPerBatch: batches > 0 ? executed / batches : 0,
        syncedWrites: e0.loop.storageWrites - s0.loop.storageWrites,
        turns: e0.loop.turns - s0.loop.turns,
        viewChanges: e0.counters.viewChanges - s0.counters.viewChanges,
        retransmissions: e0.counters.retransmissions - s0.counters.retransmissions,
      };
    }
    if (requests > 0) {
      result.work = [];
      for (let i = 0; i < statusStart.length; i++) {
        const a = statusStart[i];
        const b = statusEnd[i];
        if (a?.crypto === undefined || b?.crypto === undefined) continue;
        const writes = b.loop.storageWrites - a.loop.storageWrites;
        const horizonWrites = b.horizonWrites - a.horizonWrites;
        result.work.push({
          replica: i,
          verifies: (b.crypto.verifies - a.crypto.verifies) / requests,
          verifiesOffloaded: ((b.crypto.verifiesOffloaded ?? 0) - (a.crypto.verifiesOffloaded ?? 0)) / requests,
          signs: (b.crypto.signs - a.crypto.signs) / requests,
          verifyUs: ((b.crypto.verifyMs - a.crypto.verifyMs) * 1000) / requests,
          signUs: ((b.crypto.signMs - a.crypto.signMs) * 1000) / requests,
          syncedWrites: writes / requests,
          writeWaitUs: writes > 0 ? ((b.loop.storageWriteMs - a.loop.storageWriteMs) * 1000) / writes : 0,
          horizonWrites: horizonWrites / requests,
          horizonWaitUs: horizonWrites > 0 ? (((b.horizonWriteMs ?? 0) - (a.horizonWriteMs ?? 0)) * 1000) / horizonWrites : 0,
          turns: (b.loop.turns - a.loop.turns) / requests,
          ...framesOf(a, b, requests),
          ...checkpointOf(a, b, seconds),
        });
      }
      const counted = result.work.filter((w) => w.framesOut !== undefined && w.clientFramesIn !== undefined);
      if (counted.length === statusStart.length && counted.length === server.cluster.replicas.length) {
        result.framesPerRequest = counted.reduce((t, w) => t + w.framesOut! + w.clientFramesIn!, 0);
      }
    }
    const phases: NonNullable<LoadResult['phases']> = [];
    phasesStart.forEach((a, i) => {
      const b = phasesEnd[i];
      if (a === undefined || b === undefined) return;
      phases.push({
        replica: i,
        requestMs: meanMsBetween(a.request, b.request),
        prepareMs: meanMsBetween(a.prepare, b.prepare),
        commitMs: meanMsBetween(a.commit, b.commit),
        executeMs: meanMsBetween(a.execute, b.execute),
        writeMs: meanMsBetween(a.write, b.write),
      });
    });
    if (phases.length > 0) result.phases = phases;
    if (requests > 0 && waited.every((w) => w !== undefined)) {
      const us = (seconds: number): number => (seconds * 1e6) / requests;
      const servers = waited.slice(0, pids.length);
      const clients = waited.slice(pids.length);
      result.runQueue = {
        serversMainUs: servers.map((w) => us(w.main)),
        serversAllUs: servers.map((w) => us(w.all)),
        clientsUs: us(clients.reduce((t, w) => t + w.all, 0)),
      };
    }
    progressDone(
      `${label} ${fmt(result.requestsPerSecond, 1)} req/s, p50 ${fmt(result.latencyMs.p50, 2)} ms, p99 ${fmt(result.latencyMs.p99, 2)} ms` +
        (result.errors > 0 ? `, ${result.errors} errors (${result.errorSamples[0] ?? ''})` : ''),
    );
    return result;
  } finally {
    for (const w of workers) if (w.proc.connected) post(w, { type: 'exit' });
    await Promise.all(workers.map((w) => stopAfter(w.proc, 5_000)));
  }
}

/** Waits for a process to exit by itself for up to `ms`, then stops it. */
async function stopAfter(proc: ChildProcess, ms: number): Promise<void> {
  await Promise.race([exited(proc), sleep(ms)]);
  await stopProcess(proc, 3_000);
}


// =================================================================================================
// Attack scenarios (Aardvark, NSDI 2009: throughput under attack >= 50% of fault-free)

/** Replica 3 of 4 (the last) is the byzantine replica: its process is not started; the attacker takes its identity. */
const ATTACK_SCENARIOS = [
  { name: 'silent-replica', description: 'one replica (the last) never started', kind: 'silent' },
  { name: 'paused-replica', description: 'one replica (the last) SIGSTOPped once connected: its links stay open, it reads nothing', kind: 'paused' },
  { name: 'slow-primary', description: 'the primary holds every PRE-PREPARE for 90% of the view-change timeout, 64 batches in flight (test fixture)', kind: 'slow-primary' },
  { name: 'vc-flood', description: 'byzantine replica: signed VIEW-CHANGEs for ever higher views and CHECKPOINTs, 2,000/s per replica', kind: 'replica', rate: 2_000 },
  { name: 'future-votes', description: 'byzantine replica: signed PRE-PREPARE/PREPARE/COMMIT far beyond the window and view, 2,000/s', kind: 'replica', rate: 2_000 },
  { name: 'state-requests', description: 'byzantine replica: state-transfer requests (meta, all leaves, 64 partitions) and fetches, 500/s', kind: 'replica', rate: 500 },
  { name: 'garbage', description: 'byzantine replica: random bytes, truncated CBOR, bad signatures, one invalid VIEW-CHANGE re-sent, 2,000/s', kind: 'replica', rate: 2_000 },
  { name: 'batch-flood', description: 'byzantine replica: unrequested ~64 KiB batch bodies, 200/s per replica', kind: 'replica', rate: 200 },
  { name: 'bad-sigs', description: '8 byzantine clients: requests with invalid signatures, 2,000/s per replica', kind: 'client', rate: 2_000 },
  { name: 'deep-cbor', description: '8 byzantine clients: 20,000-level nested CBOR frames, 2,000/s per replica', kind: 'client', rate: 2_000 },
  { name: 'same-timestamp', description: '8 byzantine clients: signed requests, one to the primary and another to the backups per timestamp, 500/s', kind: 'client', rate: 500 },
  { name: 'slowloris', description: '200 connections per replica that never finish HTTP headers or the WebSocket handshake', kind: 'client', rate: 200 },
] as const;
type ScenarioName = (typeof ATTACK_SCENARIOS)[number]['name'];
type Scenario = (typeof ATTACK_SCENARIOS)[number];
/** Byzantine client identities of the client scenarios. */
const ATTACK_CLIENTS = 8;
/** The slow primary holds each PRE-PREPARE this fraction of the base view-change timeout. */
const SLOW_PRIMARY_FRACTION = 0.9;
/** ... and keeps this many batches in flight (the default 4 would get it replaced: see runScenario). */
const SLOW_PRIMARY_IN_FLIGHT = 64;
/** Aardvark's criterion. */
const ATTACK_TARGET_FRACTION = 0.5;

interface AttackResult {
  scenario: ScenarioName;
  description: string;
  load?: LoadResult;
  /** Throughput / the fault-free cluster's. */
  fraction?: number;
  met?: boolean;
  failure?: string;
  /** Per running replica: resident memory when the attack started and at the end of the window, and the highest sample. */
  rss: Array<{ replica: number; before: number; after: number; max: number }>;
  /** Per running replica: bytes of its data directory when the attack started and at the end. */
  disk: Array<{ replica: number; before: number; after: number }>;
  /** Per running replica: bytes it wrote on stdout/stderr from the attack's start to the end of the window. */
  logBytes: Array<{ replica: number; bytes: number }>;
  attacker?: AttackStats;
  /** From the replicas' /status at the end: view changes, rejected frames, frames dropped. */
  viewChanges?: number;
  rejected?: number;
  dropped?: number;
}

/** The scenario's throughput as a fraction of `faultFree`, and whether it meets the target. */
function judge(result: AttackResult, faultFree: number | undefined): void {
  if (result.load !== undefined && faultFree !== undefined && faultFree > 0) {
    result.fraction = result.load.requestsPerSecond / faultFree;
    result.met = result.fraction >= ATTACK_TARGET_FRACTION;
  } else {
    delete result.fraction;
    result.met = false;
  }
}

/** Bytes of the files under `path` (recursively); 0 when it does not exist. */
function dirBytes(path: string): number {
  let total = 0;
  let entries: Dirent[];
  try {
    entries = readdirSync(path, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const e of entries) {
    const p = join(path, e.name);
    try {
      if (e.isDirectory()) total += dirBytes(p);
      else total += statSync(p).size;
    } catch {
      // removed meanwhile (RocksDB compaction)
    }
  }
  return total;
}

interface AttackerHandle {
  proc: ChildProcess;
  last?: AttackStats;
  lines: string[];
  /** Resolves once the attacker reports a frame sent or a connection opened, or has exited. */
  attacking: Promise<void>;
}

/** How long a scenario waits for its attacker to start attacking before the clients' load starts anyway. */
const ATTACK_START_TIMEOUT_MS = 30_000;

function startAttacker(config: AttackConfig): AttackerHandle {
  const proc = track(spawn(process.execPath, ['--import', 'tsx', ATTACKER, JSON.stringify(config)], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] }));
  let started: () => void = () => undefined;
  const handle: AttackerHandle = { proc, lines: [], attacking: new Promise<void>((resolveStart) => (started = resolveStart)) };
  proc.once('exit', () => started());
  let buffered = '';
  proc.stdout!.on('data', (chunk: Buffer) => {
    buffered += chunk.toString('utf8');
    const lines = buffered.split('\n');
    buffered = lines.pop()!;
    for (const l of lines) {
      if (!l.startsWith('stats ')) continue;
      handle.last = JSON.parse(l.slice(6)) as AttackStats;
      if (handle.last.framesSent > 0 || handle.last.opened > 0) started();
    }
  });
  collectOutput(proc, handle.lines);
  return handle;
}

async function runScenario(o: Options, scenario: Scenario, faultFree: number | undefined, firstAttackClient: number, clientIds: number): Promise<AttackResult> {
  const n = o.replicas;
  const byzantine = n - 1;
  const spec: ClusterSpec = {};
  if (scenario.kind === 'silent' || scenario.kind === 'replica') spec.skip = [byzantine];
  if (scenario.kind === 'slow-primary') {
    const ticks = DEFAULT_REPLICA_OPTIONS.viewChangeTimeoutTicks;
    // With the default 4 batches in flight, requests would queue behind the held batches, wait longer
    // than the timeout at the backups and get the primary replaced: a slow primary keeps enough
    // batches in flight that no request waits much longer than its delay.
    spec.fixture = new Map([[0, { prePrepareDelayMs: Math.round(ticks * TICK_MS_DEFAULT * SLOW_PRIMARY_FRACTION), replica: { inFlightBatchesMax: SLOW_PRIMARY_IN_FLIGHT } }]]);
  }
  const result: AttackResult = { scenario: scenario.name, description: scenario.description, rss: [], disk: [], logBytes: [] };
  const server = await startCluster(o, `attack-${scenario.name}`, n, clientIds, spec);
  const running = Array.from({ length: n }, (_, i) => i).filter((i) => !spec.skip?.includes(i));
  let attacker: AttackerHandle | undefined;
  try {
    const pids = server.procs.map((p) => p.pid!);
    const rssBefore = pids.map((pid) => processRssBytes(pid) ?? 0);
    const diskBefore = server.dataDirs.map(dirBytes);
    const logBefore = server.outputBytes;
    if (scenario.kind === 'paused') server.procs[byzantine]!.kill('SIGSTOP');
    if (scenario.kind === 'replica' || scenario.kind === 'client') {
      attacker = startAttacker({
        attack: scenario.name as Attack,
        cluster: server.cluster,
        keysDir: server.keysDir,
        replica: byzantine,
        clients: Array.from({ length: ATTACK_CLIENTS }, (_, i) => firstAttackClient + i),
        targets: running,
        rate: o.attackRate ?? scenario.rate,
      });
    }
    try {
      // The attacker (a process of its own, started through tsx) first loads and dials: on a busy
      // machine that took longer than a short window, which then measured no attack at all.
      if (attacker !== undefined) await Promise.race([attacker.attacking, sleep(ATTACK_START_TIMEOUT_MS)]);
      const expectReplicas = scenario.kind === 'paused' ? n - 1 : running.length;
      result.load = await runLoad(o, server, scenario.name, o.clients, 0, { duration: o.attackDuration, expectReplicas });
    } catch (err) {
      result.failure = err instanceof Error ? err.message.split('\n')[0] : String(err);
    }
    const rssAfter = pids.map((pid) => processRssBytes(pid) ?? 0);
    const maxes = result.load?.rssBytes.map((b) => b.max) ?? rssAfter;
    result.rss = running.map((replica, k) => ({ replica, before: rssBefore[k]!, after: rssAfter[k]!, max: Math.max(maxes[k] ?? 0, rssAfter[k]!) }));
    result.disk = running.map((replica, k) => ({ replica, before: diskBefore[k]!, after: dirBytes(server.dataDirs[k]!) }));
    const logAfter = server.outputBytes;
    result.logBytes = running.map((replica, k) => ({ replica, bytes: logAfter[k]! - logBefore[k]! }));
    const statuses = await Promise.all(server.statusUrls.map((u) => getJson<NodeStatus>(u)));
    const live = statuses.filter((st): st is NodeStatus => st !== undefined);
    result.viewChanges = Math.max(0, ...live.map((st) => st.counters.viewChanges));
    result.rejected = live.reduce((sum, st) => sum + Object.values(st.rejected).reduce((a, b) => a + b, 0), 0);
    result.dropped = live.reduce((sum, st) => sum + st.loop.inboundFramesDropped + st.transport.framesDropped, 0);
    if (attacker !== undefined) {
      await stopProcess(attacker.proc, 3_000);
      result.attacker = attacker.last;
    }
  } finally {
    if (attacker !== undefined) await stopProcess(attacker.proc, 3_000);
    if (scenario.kind === 'paused') server.procs[byzantine]!.kill('SIGCONT');
    await server.stop();
  }
  judge(result, faultFree);
  progressDone(
    `[attack ${scenario.name}] ` +
      (result.load !== undefined ? `${fmt(result.load.requestsPerSecond, 1)} req/s` : `failed: ${result.failure}`) +
      (result.fraction !== undefined ? ` = ${pct(result.fraction)} of the first fault-free run` : ''),
  );
  return result;
}

// =================================================================================================
// The keys part: scale with state size

/** Loader clients of the keys part (client ids after the throughput and latency clients). */
const KEY_LOADERS = 8;
/** The restart target (issue 15): a replica with 10M keys recovers from its own disk in under 30 s. */
const RESTART_TARGET_S = 30;
/** Throughput with the keys loaded, at least this fraction of the empty store's. */
const KEYS_THROUGHPUT_FRACTION = 0.8;
/**
 * The replica RSS bound the README states: RSS_BASE_MIB plus RSS_BYTES_PER_KEY per loaded key
 * (keys of 15 bytes, values of 100 bytes: 115 bytes of data, 126 encoded with the index). Measured
 * (docs/performance.md, Scale with state size): about 170 MiB empty; a replica restarted on 1M keys 418 MiB; the
 * replicas that took the load up to 1,326 MiB (the load's high-water: checkpoints holding the old
 * bytes of every partition the load changed, whole-state synced writes, an allocator that keeps
 * what it freed).
 */
const RSS_BASE_MIB = 400;
const RSS_BYTES_PER_KEY = 1200;

interface KeysResult {
  keys: number;
  loadSeconds: number;
  /** Seconds from the load's start until every replica had executed it. */
  executedSeconds: number;
  /**
   * Seconds from the load's start until the checkpoint covering it was stable at every replica
   * (taken there by `settlePuts` single puts): the throughput run starts after it.
   */
  checkpointedSeconds: number;
  settlePuts: number;
  /** The primary's last executed sequence number after the load, and each replica's stable checkpoint when the run began. */
  loadHead: number;
  stableSeqs: number[];
  empty: LoadResult;
  loaded: LoadResult;
  /**
   * A fresh empty-store cluster again, measured after the loaded one: the load takes minutes (17 at
   * 10M keys), and this machine's speed drifts by more than the target's margin over that time. The
   * loaded throughput is judged against the mean of `empty` and `emptyAfter`, which bracket it.
   */
  emptyAfter?: LoadResult;
  /** Replica RSS (bytes, replica order) once every replica executed the load. */
  rssAfterLoad: number[];
  /** Replica RSS after the restarted replica executes again. */
  rssAfterRestart: number[];
  /** V8 heap used and array buffers of each replica (its /status) after the load and after the restart. */
  /** From each replica's /status; heapGrowingPercent: the heap policy's percent in force (src/node/heap.ts), when reported. */
  memoryAfterLoad: Array<{ heapUsed: number; arrayBuffers: number; heapGrowingPercent?: number }>;
  memoryAfterRestart: Array<{ heapUsed: number; arrayBuffers: number }>;
  /** Data directory bytes of each replica after the load. */
  dataBytes: number[];
  /**
   * Each replica's RocksDB tree and compactions (its /status `storage`) once it executed the load, and
   * after the loaded throughput run: its compactions during that run are the difference.
   */
  lsmAfterLoad?: Array<StorageLsm | undefined>;
  lsmAfterLoadedRun?: Array<StorageLsm | undefined>;
  /**
   * Longest event-loop stall of each replica (seconds, prom-client's nodejs_eventloop_lag_max_seconds,
   * which restarts at each scrape): during the load (until the checkpoint covering it was stable),
   * and during the throughput run after it.
   */
  stallDuringLoad: number[];
  stallAfterLoad: number[];
  /** CPU seconds of each replica from the load's start until its checkpoint was stable everywhere. */
  cpuDuringLoad: number[];
  /** GC seconds of each replica in the same window (minor: scavenges; major: mark-compact). */
  gcDuringLoad: Array<{ minor: number; major: number }>;
  /**
   * Each replica's /status counters when the load was checkpointed: partitions whose stable write was
   * planned ahead of its certificate, planned in its turn, and plans made again (gone stale).
   */
  /** CPU seconds of each replica's threads by name over the loaded throughput run (its warm-up included). */
  threadCpuLoaded: Array<Record<string, number>>;
  recordsFound: Array<{ ahead: number; inTurn: number; again: number; batches: number; checkpointsStable: number; checkpointsOverTurns: number; rushedByNext: number; rushedByStable: number; partitionsRushed: number; viewChanges: number; lateTurns?: number; lateTicksDropped?: number }>;
  restart: {
    replica: number;
    /** Seconds from the restart to its first /status answer (its disk read and recovered). */
    statusSeconds: number;
    /** Seconds from the restart until it had executed what the cluster had at the kill. */
    caughtUpSeconds: number;
    /** Seconds from the restart until it executed a request sent after it was up. */
    executingSeconds: number;
    /** Its /status `recovery`: records read, seconds reading them and rebuilding from them (records since 2026-12-06). */
    recovery?: RecoveryStats;
  };
}

/** Each replica's /metrics text (its /status URL with /metrics instead), undefined when it does not answer. */
async function metricsTexts(statusUrls: string[]): Promise<Array<string | undefined>> {
  return Promise.all(
    statusUrls.map(async (u) => {
      try {
        const res = await fetch(u.replace(/\/status$/, '/metrics'), { signal: AbortSignal.timeout(5_000) });
        return res.ok ? await res.text() : undefined;
      } catch {
        return undefined;
      }
    }),
  );
}

/**
 * Each replica's longest event-loop stall since the last call (seconds; NaN when its /metrics does
 * not answer): prom-client's nodejs_eventloop_lag_max_seconds, whose measurement restarts at each scrape.
 */
async function loopStalls(statusUrls: string[]): Promise<number[]> {
  return (await metricsTexts(statusUrls)).map((text) => {
    const m = text === undefined ? null : /^nodejs_eventloop_lag_max_seconds (\S+)$/m.exec(text);
    return m === null ? NaN : Number(m[1]);
  });
}

/**
 * Each replica's GC seconds so far by kind (prom-client's nodejs_gc_duration_seconds_sum: minor,
 * major, incremental, weakcb); an empty object when its /metrics does not answer.
 */
async function gcSeconds(statusUrls: string[]): Promise<Array<Record<string, number>>> {
  return (await metricsTexts(statusUrls)).map((text) => {
    const out: Record<string, number> = {};
    for (const m of text?.matchAll(/^nodejs_gc_duration_seconds_sum\{kind="(\w+)"\} (\S+)$/gm) ?? []) out[m[1]!] = Number(m[2]);
    return out;
  });
}

/** The replica's latency histograms (src/node/metrics.ts), parsed from its /metrics. */
interface PhaseHistograms {
  /** pbft_request_duration_seconds: a client's request arriving here -> its answer leaving, or its execution here when it named other repliers (requests this replica got from the client). */
  request: PromHistogram | undefined;
  /** pbft_phase_duration_seconds by phase, as the core decided them: prepare, commit, execute. */
  prepare: PromHistogram | undefined;
  commit: PromHistogram | undefined;
  execute: PromHistogram | undefined;
  /** pbft_storage_synced_write_duration_seconds. */
  write: PromHistogram | undefined;
}

/** PhaseHistograms of each replica (undefined when its /metrics does not answer). */
async function phaseHistograms(statusUrls: string[]): Promise<Array<PhaseHistograms | undefined>> {
  return (await metricsTexts(statusUrls)).map((text) => {
    if (text === undefined) return undefined;
    const phase = (p: string): PromHistogram | undefined => parseHistogram(text, 'pbft_phase_duration_seconds', { phase: p });
    return {
      request: parseHistogram(text, 'pbft_request_duration_seconds'),
      prepare: phase('prepare'),
      commit: phase('commit'),
      execute: phase('execute'),
      write: parseHistogram(text, 'pbft_storage_synced_write_duration_seconds'),
    };
  });
}

/** Waits until every replica answers /status with lastExecuted >= seq (all of `urls`). */
async function waitExecuted(urls: string[], seq: number, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const all = await Promise.all(urls.map((u) => getJson<NodeStatus>(u)));
    if (all.every((s) => s !== undefined && s.lastExecuted >= seq)) return;
    if (Date.now() > deadline) throw new Error(`${what}: replicas did not execute ${seq} within ${timeoutMs / 1000} s (${all.map((s) => s?.lastExecuted ?? '-').join(' ')})`);
    await sleep(50);
  }
}

async function runKeys(o: Options, report: Report): Promise<void> {
  const n = o.keys!;
  const identities = o.clients + 1 + KEY_LOADERS;
  // The empty store: a fresh cluster under the standard put workload (first, and again after the load).
  const measureEmpty = async (run: string): Promise<LoadResult> => {
    const server = await startCluster(o, run, o.replicas, identities);
    try {
      const result = await runLoad(o, server, run, o.clients, 0);
      report.loads.push(result);
      return result;
    } finally {
      await server.stop();
    }
  };
  const empty = await measureEmpty('keys-empty');
  const server = await startCluster(o, 'keys', o.replicas, identities);
  try {
    const loader = await connectLoader({
      cluster: server.cluster,
      keysDir: server.keysDir,
      clientIds: Array.from({ length: KEY_LOADERS }, (_, i) => o.clients + 1 + i),
      keys: n,
      timeoutMs: Math.max(o.timeoutMs, 120_000),
      retransmitMs: Math.max(o.retransmitMs, 5_000),
    });
    try {
      const label = `[keys: ${o.replicas} replicas, ${fmt(n)} keys]`;
      await loopStalls(server.statusUrls); // restarts the measurement
      progress(`${label} loading`, true);
      const cpu0 = server.procs.map((p) => processCpuSeconds(p.pid!) ?? NaN);
      const gc0 = await gcSeconds(server.statusUrls);
      const t0 = performance.now();
      await loader.load((loaded) => progress(`${label} loading ${fmt(loaded)}/${fmt(n)} keys, ${fmt((loaded * 1000) / (performance.now() - t0))} keys/s`));
      const loadSeconds = (performance.now() - t0) / 1000;
      progressDone(`${label} loaded ${fmt(n)} keys in ${fmt(loadSeconds, 1)} s (${fmt(n / loadSeconds)} keys/s)`);
      // Every replica executes the load (a backup may trail the quorum that answered).
      const head = (await getJson<NodeStatus>(server.statusUrls[0]!))?.lastExecuted ?? 0;
      await waitExecuted(server.statusUrls, head, 300_000, 'keys load');
      const executedSeconds = (performance.now() - t0) / 1000;
      // The load is in place once the checkpoint covering it is stable at every replica: the changes
      // of its last checkpoint interval are then merged, hashed and written, as every earlier
      // interval's were during the load. Single puts (one sequence number each, in an idle
      // cluster) take the cluster to that checkpoint.
      let settlePuts = 0;
      let stableSeqs: number[] = [];
      const settleDeadline = Date.now() + 600_000;
      for (;;) {
        const all = await Promise.all(server.statusUrls.map((u) => getJson<NodeStatus>(u)));
        stableSeqs = all.map((st) => st?.stableCheckpoint.seq ?? -1);
        if (stableSeqs.every((seq) => seq >= head)) break;
        if (Date.now() > settleDeadline) throw new Error(`keys: no stable checkpoint at or after seq ${head} within 600 s of the load`);
        await loader.put(`keys/settle-${settlePuts++}`, new Uint8Array(8));
        progress(`${label} taking the load to a stable checkpoint: ${settlePuts} puts`);
      }
      const checkpointedSeconds = (performance.now() - t0) / 1000;
      progressDone(`${label} every replica executed the load at ${fmt(executedSeconds, 1)} s; the checkpoint covering it was stable at ${fmt(checkpointedSeconds, 1)} s (${settlePuts} single puts after the load)`);
      const stallDuringLoad = await loopStalls(server.statusUrls);
      const cpuDuringLoad = server.procs.map((p, i) => (processCpuSeconds(p.pid!) ?? NaN) - cpu0[i]!);
      const gc1 = await gcSeconds(server.statusUrls);
      const gcDuringLoad = gc1.map((g, i) => ({ minor: (g.minor ?? NaN) - (gc0[i]!.minor ?? 0), major: (g.major ?? NaN) - (gc0[i]!.major ?? 0) }));
      const recordsFound = (await Promise.all(server.statusUrls.map((u) => getJson<NodeStatus>(u)))).map((st) => ({
        ahead: st?.counters.recordsFoundAhead ?? NaN,
        inTurn: st?.counters.recordsFoundInTurn ?? NaN,
        again: st?.counters.recordsFoundAgain ?? NaN,
        batches: st?.counters.batchesExecuted ?? NaN,
        checkpointsStable: st?.counters.checkpointsStable ?? NaN,
        checkpointsOverTurns: st?.counters.checkpointsOverTurns ?? NaN,
        rushedByNext: st?.counters.checkpointsRushedByNext ?? NaN,
        rushedByStable: st?.counters.checkpointsRushedByStable ?? NaN,
        partitionsRushed: st?.counters.checkpointPartitionsRushed ?? NaN,
        viewChanges: st?.counters.viewChanges ?? NaN,
        lateTurns: st?.loop.lateTurns ?? NaN,
        lateTicksDropped: st?.loop.lateTicksDropped ?? NaN,
      }));
      progressDone(`${label} replica CPU until then: ${cpuDuringLoad.map((x) => fmt(x, 1)).join(' ')} s (GC minor+major ${gcDuringLoad.map((g) => `${fmt(g.minor, 1)}+${fmt(g.major, 1)}`).join(' ')} s); partitions planned ahead/in the certificate's turn/again: ${recordsFound.map((r) => `${r.ahead}/${r.inTurn}/${r.again}`).join(' ')}; batches ${recordsFound.map((r) => r.batches).join(' ')}; stable checkpoints ${recordsFound.map((r) => r.checkpointsStable).join(' ')} (over turns ${recordsFound.map((r) => r.checkpointsOverTurns).join(' ')}; finished in one turn for the next / a stable certificate, partitions: ${recordsFound.map((r) => `${r.rushedByNext}/${r.rushedByStable}, ${r.partitionsRushed}`).join('; ')})`);
      const rssAfterLoad = server.procs.map((p) => processRssBytes(p.pid!) ?? 0);
      const memoryAfterLoad = (await Promise.all(server.statusUrls.map((u) => getJson<NodeStatus>(u)))).map((st) => ({
        heapUsed: st?.memory.heapUsed ?? NaN,
        arrayBuffers: st?.memory.arrayBuffers ?? NaN,
        ...(st?.memory.heapGrowingPercent !== undefined ? { heapGrowingPercent: st.memory.heapGrowingPercent } : {}),
      }));
      const dataBytes = server.dataDirs.map((d) => dirBytes(d));
      const lsmAfterLoad = (await Promise.all(server.statusUrls.map((u) => getJson<NodeStatus>(u)))).map((st) => st?.storage);
      progressDone(`${label} replica RSS after the load: ${rssAfterLoad.map((b) => fmt(b / MiB)).join(' ')} MiB; data ${dataBytes.map((b) => fmt(b / MiB)).join(' ')} MiB`);

      const threads0 = server.procs.map((p) => threadCpuSeconds(p.pid!));
      const loaded = await runLoad(o, server, `keys-${n}`, o.clients, 0);
      const threadCpuLoaded = server.procs.map((p, i) => threadDelta(threads0[i]!, threadCpuSeconds(p.pid!)));
      const lsmAfterLoadedRun = (await Promise.all(server.statusUrls.map((u) => getJson<NodeStatus>(u)))).map((st) => st?.storage);
      progressDone(`${label} replica CPU by thread in the throughput run (warm-up included): ${threadCpuLoaded.map(threadLine).join('; ')}`);
      report.loads.push(loaded);
      const stallAfterLoad = await loopStalls(server.statusUrls);
      progressDone(`${label} longest event-loop stall of each replica: ${stallDuringLoad.map((x) => fmt(x, 2)).join(' ')} s during the load, ${stallAfterLoad.map((x) => fmt(x, 2)).join(' ')} s in the throughput run after it`);

      // SIGKILL one backup (not the primary of view 0) and restart it on its own data directory.
      const k = server.procs.length - 1;
      const victim = server.procs[k]!;
      const pid = victim.pid!;
      const headAtKill = (await getJson<NodeStatus>(server.statusUrls[0]!))?.lastExecuted ?? 0;
      victim.kill('SIGKILL');
      await exited(victim);
      if (alive(pid)) throw new Error(`keys: replica ${k} (pid ${pid}) still exists after SIGKILL`);
      progressDone(`${label} replica ${k} (pid ${pid}) killed with SIGKILL at seq ${headAtKill}; restarting it`);
      const r0 = performance.now();
      const proc = server.respawn!(k);
      let statusSeconds = NaN;
      let caughtUpSeconds = NaN;
      const deadline = Date.now() + 600_000;
      for (;;) {
        if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`keys: restarted replica ${k} exited:\n${server.output[k]!.slice(-20).join('\n')}`);
        const st = await getJson<NodeStatus>(server.statusUrls[k]!);
        const now = (performance.now() - r0) / 1000;
        if (st !== undefined && Number.isNaN(statusSeconds)) statusSeconds = now;
        if (st !== undefined && st.lastExecuted >= headAtKill) {
          caughtUpSeconds = now;
          break;
        }
        if (Date.now() > deadline) throw new Error(`keys: restarted replica ${k} did not catch up within 600 s`);
        progress(`${label} restarting replica ${k}: ${fmt(now, 1)} s, ${st === undefined ? 'not answering' : `${st.status}, executed ${st.lastExecuted}/${headAtKill}`}`);
        await sleep(50);
      }
      // Executing again: a request sent now is executed by the restarted replica too.
      await loader.put('keys/after-restart', new Uint8Array(8));
      const after = (await getJson<NodeStatus>(server.statusUrls[0]!))?.lastExecuted ?? 0;
      await waitExecuted([server.statusUrls[k]!], after, 600_000, 'keys restart');
      const executingSeconds = (performance.now() - r0) / 1000;
      const rssAfterRestart = server.procs.map((p) => processRssBytes(p.pid!) ?? 0);
      progressDone(
        `${label} replica ${k} answered /status ${fmt(statusSeconds, 1)} s after its restart, caught up at ${fmt(caughtUpSeconds, 1)} s, executing at ${fmt(executingSeconds, 1)} s; RSS ${rssAfterRestart.map((b) => fmt(b / MiB)).join(' ')} MiB`,
      );
      const statusesAfterRestart = await Promise.all(server.statusUrls.map((u) => getJson<NodeStatus>(u)));
      const memoryAfterRestart = statusesAfterRestart.map((st) => ({ heapUsed: st?.memory.heapUsed ?? NaN, arrayBuffers: st?.memory.arrayBuffers ?? NaN }));
      const recovery = statusesAfterRestart[k]?.recovery;
      if (recovery !== undefined) progressDone(`${label} replica ${k} read ${fmt(recovery.records)} records in ${fmt(recovery.readSeconds, 2)} s and rebuilt itself from them in ${fmt(recovery.rebuildSeconds, 2)} s`);
      report.keys = { keys: n, loadSeconds, executedSeconds, checkpointedSeconds, settlePuts, loadHead: head, stableSeqs, empty, loaded, rssAfterLoad, rssAfterRestart, memoryAfterLoad, memoryAfterRestart, dataBytes, lsmAfterLoad, lsmAfterLoadedRun, stallDuringLoad, stallAfterLoad, cpuDuringLoad, gcDuringLoad, recordsFound, threadCpuLoaded, restart: { replica: k, statusSeconds, caughtUpSeconds, executingSeconds, ...(recovery !== undefined ? { recovery } : {}) } };
    } finally {
      await loader.close();
    }
  } finally {
    await server.stop();
  }
  // The empty store again, with the loaded cluster stopped.
  const emptyAfter = await measureEmpty('keys-empty-after');
  if (report.keys !== undefined) report.keys.emptyAfter = emptyAfter;
}

/** The empty store's throughput the loaded one is judged against: the mean of the runs before and after the load. */
function emptyReference(k: KeysResult): number {
  return k.emptyAfter === undefined ? k.empty.requestsPerSecond : (k.empty.requestsPerSecond + k.emptyAfter.requestsPerSecond) / 2;
}

/** CPU seconds per thread name between two threadCpuSeconds readings (names with at least 0.01 s). */
function threadDelta(before: Map<string, number>, after: Map<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, s] of after) {
    const d = s - (before.get(name) ?? 0);
    if (d >= 0.01) out[name] = d;
  }
  return out;
}

/** "main 5.1, rocksdb:low 2.0, ..." by CPU seconds, largest first. */
function threadLine(t: Record<string, number>): string {
  return Object.entries(t)
    .sort((a, b) => b[1] - a[1])
    .map(([name, s]) => `${name} ${fmt(s, 1)}`)
    .join(', ');
}

function rssBoundBytes(keys: number): number {
  return RSS_BASE_MIB * MiB + RSS_BYTES_PER_KEY * keys;
}

function evaluateKeys(report: Report): void {
  const k = report.keys;
  if (k === undefined) return;
  const reference = emptyReference(k);
  const ratio = k.loaded.requestsPerSecond / reference;
  report.ratios.keysLoadedToEmptyThroughput = ratio;
  report.ratios.keysLoadedToEmptyBeforeThroughput = k.loaded.requestsPerSecond / k.empty.requestsPerSecond;
  if (k.emptyAfter !== undefined) report.ratios.keysEmptyAfterToBeforeThroughput = k.emptyAfter.requestsPerSecond / k.empty.requestsPerSecond;
  report.targets.push({
    name: `${fmt(k.keys)} keys: throughput >= ${KEYS_THROUGHPUT_FRACTION * 100}% of the empty store`,
    met: ratio >= KEYS_THROUGHPUT_FRACTION,
    detail:
      k.emptyAfter === undefined
        ? `${fmt(k.loaded.requestsPerSecond)} vs ${fmt(reference)} req/s = ${pct(ratio)}`
        : `${fmt(k.loaded.requestsPerSecond)} vs ${fmt(reference)} req/s (the empty store ${fmt(k.empty.requestsPerSecond)} before the load, ${fmt(k.emptyAfter.requestsPerSecond)} after it) = ${pct(ratio)}`,
  });
  report.targets.push({
    name: `${fmt(k.keys)} keys: a replica restarts from its own disk and executes again in < ${RESTART_TARGET_S} s (the target is for 10M keys)`,
    met: k.restart.executingSeconds < RESTART_TARGET_S,
    detail: `${fmt(k.restart.executingSeconds, 1)} s (status ${fmt(k.restart.statusSeconds, 1)} s, caught up ${fmt(k.restart.caughtUpSeconds, 1)} s)`,
  });
  const peak = Math.max(...k.rssAfterLoad, ...k.rssAfterRestart, ...k.loaded.rssBytes.map((b) => b.max));
  report.targets.push({
    name: `${fmt(k.keys)} keys: replica RSS <= ${RSS_BASE_MIB} MiB + ${RSS_BYTES_PER_KEY} bytes/key (README)`,
    met: peak <= rssBoundBytes(k.keys),
    detail: `largest ${fmt(peak / MiB)} MiB of ${fmt(rssBoundBytes(k.keys) / MiB)} MiB`,
  });
}

function keysLines(report: Report): string[] {
  const k = report.keys;
  if (k === undefined) return [];
  const mib = (xs: number[]): string => xs.map((b) => fmt(b / MiB)).join(' ');
  return [
    '',
    `keys (scale with state size): ${fmt(k.keys)} keys of ${LOAD_VALUE_BYTES}-byte values loaded through the protocol (put-many)`,
    `  load time                         ${fmt(k.loadSeconds, 1)} s (${fmt(k.keys / k.loadSeconds)} keys/s); executed everywhere at ${fmt(k.executedSeconds, 1)} s, its checkpoint stable at ${fmt(k.checkpointedSeconds, 1)} s (${k.settlePuts} puts)`,
    k.emptyAfter === undefined
      ? `  throughput, ${k.loaded.clients} clients: empty -> loaded   ${fmt(k.empty.requestsPerSecond, 1)} -> ${fmt(k.loaded.requestsPerSecond, 1)} req/s (${pct(k.loaded.requestsPerSecond / k.empty.requestsPerSecond)})`
      : `  throughput, ${k.loaded.clients} clients: empty -> loaded -> empty again   ${fmt(k.empty.requestsPerSecond, 1)} -> ${fmt(k.loaded.requestsPerSecond, 1)} -> ${fmt(k.emptyAfter.requestsPerSecond, 1)} req/s (loaded ${pct(k.loaded.requestsPerSecond / emptyReference(k))} of the mean of both empty runs; ${pct(k.loaded.requestsPerSecond / k.empty.requestsPerSecond)} of the first alone)`,
    `  restart of replica ${k.restart.replica} (SIGKILL)      /status ${fmt(k.restart.statusSeconds, 1)} s, caught up ${fmt(k.restart.caughtUpSeconds, 1)} s, executing ${fmt(k.restart.executingSeconds, 1)} s` +
      (k.restart.recovery === undefined ? '' : `; of it reading ${fmt(k.restart.recovery.records)} records ${fmt(k.restart.recovery.readSeconds, 2)} s, rebuilding from them ${fmt(k.restart.recovery.rebuildSeconds, 2)} s`),
    `  replica RSS after load (MiB)      ${mib(k.rssAfterLoad)}  (${fmt(Math.max(...k.rssAfterLoad) / k.keys, 0)} bytes/key at the largest)`,
    `  replica RSS after restart (MiB)   ${mib(k.rssAfterRestart)}`,
    `  heap used + array buffers (MiB)   after load ${k.memoryAfterLoad.map((x) => `${fmt(x.heapUsed / MiB)}+${fmt(x.arrayBuffers / MiB)}`).join(' ')}; after restart ${k.memoryAfterRestart.map((x) => `${fmt(x.heapUsed / MiB)}+${fmt(x.arrayBuffers / MiB)}`).join(' ')}`,
    `  heap growing percent after load   ${k.memoryAfterLoad.map((x) => (x.heapGrowingPercent === undefined ? '-' : String(x.heapGrowingPercent))).join(' ')}  (the replicas' heap policy, src/node/heap.ts; 0: V8 decides)`,
    `  replica RSS during the load run   max ${mib(k.loaded.rssBytes.map((b) => b.max))} MiB`,
    `  data directory after load (MiB)   ${mib(k.dataBytes)}`,
    ...lsmLines(k),
    `  replica CPU during the load (s)   ${k.cpuDuringLoad.map((x) => fmt(x, 1)).join(' ')}  (until its checkpoint was stable everywhere; GC minor+major ${k.gcDuringLoad.map((g) => `${fmt(g.minor, 1)}+${fmt(g.major, 1)}`).join(' ')})`,
    `  replica CPU by thread, throughput run (s)   ${k.threadCpuLoaded.map(threadLine).join('; ')}`,
    `  stable writes planned ahead/in the certificate's turn/again   ${k.recordsFound.map((r) => `${fmt(r.ahead)}/${fmt(r.inTurn)}/${fmt(r.again)}`).join('  ')}`,
    `  view changes during the load      ${k.recordsFound.map((r) => fmt(r.viewChanges)).join(' ')}  (the cluster started with the load)`,
    `  late turns during the load        ${k.recordsFound.map((r) => `${fmt(r.lateTurns ?? NaN)} (${fmt((r.lateTicksDropped ?? NaN) / 100, 1)} s dropped)`).join('  ')}  (turns that came more than 100 ms late: the replica's own stalls, not counted by its timers)`,
    `  own checkpoints finished at once   ${k.recordsFound.map((r) => `${fmt(r.rushedByNext)}/${fmt(r.rushedByStable)} (${fmt(r.partitionsRushed)} partitions)`).join('  ')}  (the rest of a checkpoint computing over turns, in one turn: the next one was due / a stable certificate reached it)`,
    `  longest event-loop stall (s)      during the load ${k.stallDuringLoad.map((x) => fmt(x, 2)).join(' ')}; throughput run after it ${k.stallAfterLoad.map((x) => fmt(x, 2)).join(' ')}`,
  ];
}

/** The keys part's RocksDB lines: each replica's levels after the load, and what its flushes and compactions did over the load and the loaded run. */
function lsmLines(k: KeysResult): string[] {
  const after = k.lsmAfterLoad;
  const run = k.lsmAfterLoadedRun;
  if (after === undefined || after.every((x) => x === undefined)) return [];
  const gb = (b: number): string => fmt(b / 2 ** 30, 2);
  return [
    `  RocksDB after the load (MiB per level, from level 0)   ${after.map((x) => (x === undefined ? '-' : x.levelBytes.map((b) => fmt(b / MiB)).join('/'))).join('  ')}`,
    `  RocksDB flushes and compactions over the load   ${after.map((x) => (x === undefined ? '-' : `${gb(x.compactionWrittenBytes)} GB written (${gb(x.flushWrittenBytes)} of it flushed) in ${fmt(x.compactionSeconds, 1)} s, ${fmt(x.writeStalls)} write stalls`)).join('; ')}`,
    ...(run === undefined
      ? []
      : [
          `  RocksDB flushes and compactions in the throughput run (warm-up included)   ${run
            .map((x, i) => {
              const a = after[i];
              return x === undefined || a === undefined ? '-' : `${gb(x.compactionWrittenBytes - a.compactionWrittenBytes)} GB written (${gb(x.flushWrittenBytes - a.flushWrittenBytes)} of it flushed) in ${fmt(x.compactionSeconds - a.compactionSeconds, 1)} s`;
            })
            .join('; ')}`,
        ]),
  ];
}

// =================================================================================================
// Report

function fmt(x: number, digits = 0): string {
  if (!Number.isFinite(x)) return '-';
  return x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** A percentage with one decimal, so that a figure next to a threshold does not round onto it. */
function pct(x: number): string {
  return Number.isFinite(x) ? `${(x * 100).toFixed(1)}%` : '-';
}

const MiB = 2 ** 20;

interface Target {
  name: string;
  met: boolean | undefined;
  detail: string;
}

/**
 * One synced write as a replica makes it (src/node/disk.ts: RocksStorage.write(ops, { sync: true })),
 * measured in this run: the batch of a 1-client request's turn (a log slot record with its signed
 * votes, the batch of requests, a small record), written `count` times on a fresh RocksDB.
 */
interface SyncedWrite {
  count: number;
  opsPerBatch: number;
  bytesPerBatch: number;
  ms: { p50: number; p99: number; mean: number };
}

async function measureSyncedWrite(count = 200): Promise<SyncedWrite> {
  const dir = mkdtempSync(join(tmpdir(), 'pbft-bench-sync-'));
  tempDirs.add(dir);
  const storage = new RocksStorage({ path: join(dir, 'db') });
  await storage.open();
  const sizes = [1400, 400, 100];
  const times: number[] = [];
  try {
    for (let i = 0; i < count + 10; i++) {
      const key = String(i).padStart(16, '0');
      const ops = sizes.map((bytes, k) => ({ type: 'put' as const, key: `l/${key}/${k}`, value: new Uint8Array(bytes).fill(i & 0xff) }));
      const t0 = performance.now();
      await storage.write(ops, { sync: true });
      if (i >= 10) times.push(performance.now() - t0);
    }
  } finally {
    await storage.close();
    rmSync(dir, { recursive: true, force: true });
    tempDirs.delete(dir);
  }
  times.sort((a, b) => a - b);
  const at = (q: number): number => times[Math.min(times.length - 1, Math.floor(q * times.length))]!;
  return { count, opsPerBatch: sizes.length, bytesPerBatch: sizes.reduce((a, b) => a + b, 0), ms: { p50: at(0.5), p99: at(0.99), mean: times.reduce((a, b) => a + b, 0) / times.length } };
}

interface Report {
  floor?: CryptoFloor;
  /** With libsodium in use: node:crypto's floor too, the backend of the records before 2026-12-04. */
  floorNode?: CryptoFloor;
  syncedWrite?: SyncedWrite;
  /** CPU of one WebSocket frame over loopback (bench/frame-cost.ts), measured with the crypto floor. */
  frameCost?: FrameCost;
  /** CPU of a Node process's timer wake-up (bench/wakeup-cost.ts), measured with the crypto floor. */
  wakeupCost?: WakeupCost;
  loads: LoadResult[];
  attacks: AttackResult[];
  /**
   * The fault-free throughput the attack scenarios are compared with: the mean of the fault-free
   * runs before and after them (the machine's other load moves in between), and each run's figure.
   */
  faultFree?: { requestsPerSecond: number; runs: Array<{ run: string; requestsPerSecond: number }> };
  ratios: Record<string, number>;
  targets: Target[];
  /** The keys part (--keys N). */
  keys?: KeysResult;
  /** The cluster of the cluster / latency runs left without clients (--idle-seconds). */
  idle?: IdleResult;
}

/** What replicas with nothing to do cost: each one's CPU, and its loop's tick timer (/status loop.tickWakeups). */
interface IdleResult {
  run: string;
  seconds: number;
  /** Per replica: CPU seconds per second (share of one core). */
  cores: number[];
  /** Per replica: tick-timer wake-ups per second (undefined where /status did not say). */
  tickWakeupsPerSecond: Array<number | undefined>;
}

/**
 * Leaves the cluster without clients: IDLE_SETTLE_MS for the last replies, checkpoints and timers
 * to settle, then each replica's CPU (/proc) and tick-timer wake-ups (/status) over `seconds`.
 */
const IDLE_SETTLE_MS = 2_000;
async function measureIdle(server: Server, run: string, seconds: number): Promise<IdleResult | undefined> {
  await new Promise((r) => setTimeout(r, IDLE_SETTLE_MS));
  const pids = server.procs.map((p) => p.pid);
  const wakeups = async (): Promise<Array<number | undefined>> =>
    Promise.all(server.statusUrls.map(async (u) => (await getJson<{ loop?: { tickWakeups?: number } }>(u))?.loop?.tickWakeups));
  const cpu0 = pids.map((pid) => (pid === undefined ? undefined : processCpuSeconds(pid)));
  const w0 = await wakeups();
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const cpu1 = pids.map((pid) => (pid === undefined ? undefined : processCpuSeconds(pid)));
  const w1 = await wakeups();
  const elapsed = (performance.now() - t0) / 1000;
  const cores: number[] = [];
  for (let k = 0; k < pids.length; k++) {
    const a = cpu0[k];
    const b = cpu1[k];
    if (a === undefined || b === undefined) return undefined;
    cores.push((b - a) / elapsed);
  }
  const tickWakeupsPerSecond = w0.map((a, k) => (a === undefined || w1[k] === undefined ? undefined : (w1[k]! - a) / elapsed));
  return { run, seconds: elapsed, cores, tickWakeupsPerSecond };
}

/**
 * A run's CPU per request split into signatures, frames and the rest (printed under the work lines);
 * undefined without the crypto part (the prices) or the frame count.
 */
function cpuAccount(report: Report, l: LoadResult): { totalUs: number; signaturesUs: number; frames: number; frameUs: number; framesUs: number; restUs: number } | undefined {
  const floor = report.floor;
  const cost = report.frameCost;
  if (floor === undefined || cost === undefined || l.framesPerRequest === undefined || l.work === undefined || l.requests === 0) return undefined;
  if (!Number.isFinite(l.cpuSecondsPerRequest)) return undefined;
  const totalUs = l.cpuSecondsPerRequest * 1e6;
  // Priced by the floor (CPU time of one operation), not by the replicas' timers: those are wall
  // time on a loop that shares 2 cores with every other process, and under load a timed verify
  // often includes time the process was not running.
  const replicaUs = l.work.reduce((t, w) => t + (w.verifies + w.verifiesOffloaded) * floor.verifyRequestUs + w.signs * floor.signRequestUs, 0);
  const checks = l.clientSignatureChecks;
  const clientVerifies = checks !== undefined ? (checks.checks - checks.cacheHits) / l.requests : 0;
  const signaturesUs = replicaUs + floor.signRequestUs + clientVerifies * floor.verifyReplyUs;
  const frameUs = l.clients === 1 ? cost.oneInFlightUs : cost.manyInFlightUs;
  const framesUs = l.framesPerRequest * frameUs;
  return { totalUs, signaturesUs, frames: l.framesPerRequest, frameUs, framesUs, restUs: totalUs - signaturesUs - framesUs };
}

function find(report: Report, run: string): LoadResult | undefined {
  return report.loads.find((l) => l.run === run);
}

/** The client SDK target's bound: its CPU per request over its signature work. */
const SDK_CPU_TO_SIGNATURES_MAX = 1.5;

/**
 * The client SDK's CPU per request (the client worker processes' CPU over the cluster run's window /
 * requests completed in it) against its signature work (one request signed, f+1 replies verified,
 * priced by the crypto part of the same bench run). The workers' CPU counts everything they do: the
 * SDK (signing, verifying, encoding, the WebSocket transport and the kernel's socket work, GC) and
 * the closed loop driving it (pre-encoded operations, two clock reads and a histogram record per
 * request: 0.6% of the workers' busy samples when profiled), which is not separated out. The crypto
 * part runs on an idle machine, the cluster run on a loaded one.
 */
function sdkTarget(o: Options, report: Report, cluster: LoadResult | undefined): void {
  if (cluster === undefined || cluster.requests === 0) return;
  const name = `client SDK: CPU per request <= ${SDK_CPU_TO_SIGNATURES_MAX} x its signature work (1 sign + f+1 verifies)`;
  const f = report.floor;
  const sdkUs = (cluster.cpuSeconds.clients / cluster.requests) * 1e6;
  const split = cluster.clientCpuSplit;
  const measured = `${fmt(sdkUs, 1)} us per request (client workers: ${fmt(cluster.cpuSeconds.clients, 2)} CPU s` +
    (split !== undefined ? `, ${fmt(split.user, 2)} user + ${fmt(split.system, 2)} system` : '') + `, ${fmt(cluster.requests)} requests, ${cluster.clients} clients)`;
  if (f === undefined) {
    report.targets.push({ name, met: undefined, detail: `${measured}; not judged: the crypto part (sign, verify reply) is not in --only` });
    return;
  }
  const replies = faultsOf(o.replicas) + 1;
  const signatureUs = f.signRequestUs + replies * f.verifyReplyUs;
  const ratio = sdkUs / signatureUs;
  report.ratios.sdkCpuToSignatures = ratio;
  // The clients of one worker process share a cache of valid signatures (src/crypto/verify-cache.ts):
  // those answered by one REPLY-BATCH check its signature once between them. Say how many checks
  // ran, and what the CPU outside the signatures that did run comes to.
  const checks = cluster.clientSignatureChecks;
  let shared = '';
  if (checks !== undefined && checks.checks > 0) {
    const verified = (checks.checks - checks.cacheHits) / cluster.requests;
    const other = sdkUs - f.signRequestUs - verified * f.verifyReplyUs;
    shared =
      `; signature checks ${fmt(checks.checks / cluster.requests, 2)} per request, ${fmt((100 * checks.cacheHits) / checks.checks, 1)}% answered by the workers' shared cache` +
      ` (${cluster.clients} clients in ${Math.min(o.clientProcs, cluster.clients)} processes), so ${fmt(verified, 2)} verifies ran per request and the CPU outside the signatures that ran is ${fmt(other, 1)} us`;
  }
  report.targets.push({
    name,
    met: ratio <= SDK_CPU_TO_SIGNATURES_MAX,
    detail: `${measured} vs ${fmt(signatureUs, 1)} us (sign ${fmt(f.signRequestUs, 1)} + ${replies} x verify reply ${fmt(f.verifyReplyUs, 1)}) = ${fmt(ratio, 2)}x${shared}`,
  });
}

function evaluate(o: Options, report: Report): void {
  const cluster = find(report, 'cluster');
  const latency = find(report, 'latency');
  const baseline1 = find(report, 'baseline-1');
  const baselineN = find(report, 'baseline');
  const cluster7 = find(report, 'cluster7');
  const floor = report.floor?.byReplicas[o.replicas];
  const r = report.ratios;
  const t = report.targets;
  if (cluster !== undefined && floor !== undefined) {
    r.clusterToCryptoFloor = cluster.requestsPerSecond / floor.requestsPerSecond;
    const checking = report.floor?.byReplicasChecking?.[o.replicas];
    if (checking !== undefined) r.clusterToCheckingFloor = cluster.requestsPerSecond / checking.requestsPerSecond;
    const nodeFloor = report.floorNode?.byReplicas[o.replicas];
    if (nodeFloor !== undefined) r.clusterToNodeCryptoFloor = cluster.requestsPerSecond / nodeFloor.requestsPerSecond;
    t.push({
      name: `${o.replicas} replicas x ${cluster.clients} clients: throughput >= 60% of the crypto floor`,
      met: r.clusterToCryptoFloor >= 0.6,
      detail: `${fmt(cluster.requestsPerSecond)} of ${fmt(floor.requestsPerSecond)} req/s = ${pct(r.clusterToCryptoFloor)}`,
    });
  }
  sdkTarget(o, report, cluster);
  const pool = find(report, 'pool');
  if (cluster !== undefined && pool !== undefined) {
    r.poolToClusterThroughput = pool.requestsPerSecond / cluster.requestsPerSecond;
    r.poolToClusterCpuPerRequest = pool.cpuSecondsPerRequest / cluster.cpuSecondsPerRequest;
  }
  if (cluster !== undefined && baselineN !== undefined) r.clusterToBaselineThroughput = cluster.requestsPerSecond / baselineN.requestsPerSecond;
  if (latency !== undefined) {
    t.push({
      name: '1 client: p50 latency < 2 ms',
      met: latency.latencyMs.p50 < 2,
      detail: `p50 ${fmt(latency.latencyMs.p50, 2)} ms`,
    });
  }
  if (latency !== undefined && baseline1 !== undefined) r.latencyP50ToBaseline = latency.latencyMs.p50 / baseline1.latencyMs.p50;
  const sync = report.syncedWrite;
  if (latency !== undefined && baseline1 !== undefined && sync !== undefined) {
    // Issue 15: the replicated path may cost the unreplicated one plus one synced write, with 50% slack.
    const bound = 1.5 * (baseline1.latencyMs.p50 + sync.ms.p50);
    r.latencyP50ToTarget = latency.latencyMs.p50 / bound;
    t.push({
      name: '1 client: p50 latency <= 1.5 x (baseline p50 + one synced write)',
      met: latency.latencyMs.p50 <= bound,
      detail: `${fmt(latency.latencyMs.p50, 2)} ms vs 1.5 x (${fmt(baseline1.latencyMs.p50, 2)} + ${fmt(sync.ms.p50, 2)}) = ${fmt(bound, 2)} ms`,
    });
  }
  if (cluster !== undefined && cluster7 !== undefined) {
    r.cluster7ToCluster = cluster7.requestsPerSecond / cluster.requestsPerSecond;
    t.push({
      name: `7 replicas: throughput >= 50% of ${o.replicas} replicas`,
      met: r.cluster7ToCluster >= 0.5,
      detail: `${fmt(cluster7.requestsPerSecond)} vs ${fmt(cluster.requestsPerSecond)} req/s = ${pct(r.cluster7ToCluster)}`,
    });
  }
  const ordered = find(report, 'get-ordered');
  const readOnly = find(report, 'get-readonly');
  const ordered1 = find(report, 'get-ordered-1');
  const readOnly1 = find(report, 'get-readonly-1');
  if (ordered !== undefined && readOnly !== undefined) r.readOnlyToOrderedThroughput = readOnly.requestsPerSecond / ordered.requestsPerSecond;
  if (ordered1 !== undefined && readOnly1 !== undefined) r.readOnlyToOrderedP50 = readOnly1.latencyMs.p50 / ordered1.latencyMs.p50;
  const floor7 = report.floor?.byReplicas[7];
  if (cluster7 !== undefined && floor7 !== undefined) r.cluster7ToCryptoFloor = cluster7.requestsPerSecond / floor7.requestsPerSecond;
  for (const a of report.attacks) {
    const ff = report.faultFree;
    t.push({
      name: `attack ${a.scenario}: throughput >= ${ATTACK_TARGET_FRACTION * 100}% of fault-free`,
      met: a.met === true,
      detail:
        a.load === undefined
          ? `no measurement: ${a.failure ?? '?'}`
          : `${fmt(a.load.requestsPerSecond)} of ${fmt(ff?.requestsPerSecond ?? NaN)} req/s = ${pct(a.fraction ?? NaN)}`,
    });
  }
  if (o.rss && cluster !== undefined) {
    const growth = Math.max(...cluster.rssBytes.map((b) => b.end / b.start - 1));
    const peak = Math.max(...cluster.rssBytes.map((b) => b.max / b.start - 1));
    r.replicaRssGrowth = growth;
    // Beside the judged samples: the mean of the first minute against the mean of the last, which the
    // memtables' fill-and-flush cycle and the heap's collections (each moving RSS by 5-15 MiB) move less.
    const meanOf = (i: number, from: number, to: number): number => {
      const xs = cluster.rssSamples.filter((x) => x.t > from && x.t <= to).map((x) => x.bytes[i]!);
      return xs.length === 0 ? NaN : xs.reduce((a, b) => a + b, 0) / xs.length;
    };
    const minute = Math.min(60, cluster.seconds / 2);
    const means = cluster.rssBytes.map((_, i) => meanOf(i, 0, minute + 0.01) / 2 ** 20);
    const meansEnd = cluster.rssBytes.map((_, i) => meanOf(i, cluster.seconds - minute, cluster.seconds + 1) / 2 ** 20);
    t.push({
      name: `memory: replica RSS flat (within 10%) over ${fmt(cluster.seconds / 60, 1)} min`,
      met: growth <= 0.1 && peak <= 0.1,
      detail:
        `largest growth start->end ${pct(growth)}, start->peak ${pct(peak)}; ` +
        `mean RSS of the first ${fmt(minute)} s -> the last ${fmt(minute)} s (not judged): ${means.map((m, i) => `${fmt(m)} -> ${fmt(meansEnd[i]!)} MiB`).join(', ')}`,
    });
  }
}

function printReport(o: Options, report: Report, machine: Machine, command: string): void {
  const out: string[] = [];
  out.push('');
  out.push(`pbft-kv benchmark  ${new Date().toISOString()}`);
  out.push(`machine: ${machine.cores} cores (${machine.cpuModel}), ${fmt(machine.memoryBytes / 2 ** 30, 1)} GiB, node ${machine.node}, ${machine.platform}`);
  out.push(`command: ${command}`);
  const mc = machine.malloc;
  out.push(
    `malloc of every process started: ${mc.allocator === 'jemalloc' ? `jemalloc (${mc.path}, LD_PRELOAD)` : "the system's"}` +
      (mc.seen !== undefined ? `; a replica's memory map shows ${mc.seen === 'jemalloc' ? 'jemalloc' : mc.seen === 'system' ? 'no jemalloc' : 'nothing (not readable)'}` : ''),
  );
  out.push(`load average (1 min) of the machine: ${fmt(machine.loadAverage.start, 2)} at the start, ${fmt(machine.loadAverage.end ?? NaN, 2)} at the end (this run adds about its own process count)`);
  const tuning =
    [
      o.batchRequestsMax !== undefined ? `batchRequestsMax ${o.batchRequestsMax}` : '',
      o.batchBytesMax !== undefined ? `batchBytesMax ${o.batchBytesMax}` : '',
      o.inFlightBatchesMax !== undefined ? `inFlightBatchesMax ${o.inFlightBatchesMax}` : '',
      o.verifyWorkers !== undefined ? `verifyWorkers ${o.verifyWorkers}` : '',
      o.pipelineTurns ? '' : 'no turn pipelining',
      o.deferWrites ? '' : 'no deferred writes',
      o.serverNodeFlags.length > 0 ? `server node flags ${o.serverNodeFlags.join(' ')}` : '',
      o.clientNodeFlags.length > 0 ? `client node flags ${o.clientNodeFlags.join(' ')}` : '',
      o.replies === 'quorum' ? '' : `clients ask ${o.replies} replicas to reply`,
    ]
      .filter((s) => s !== '')
      .join(', ') || 'replica defaults';
  out.push(
    `workload: put, ${o.keyBytes}-byte keys, ${o.payload}-byte values, ${o.keysPerClient} keys per client, each put changing its key's value${o.thinkMs > 0 ? `; each client pauses ${o.thinkMs} ms after each answer` : ''}; ${o.warmup} s warm-up + ${o.duration} s measured per run; ${tuning}`,
  );
  const f = report.floor;
  if (f !== undefined) {
    out.push('');
    out.push(
      `crypto floor (${f.backend === 'sodium' ? 'libsodium' : 'node:crypto'} ed25519, the backend of every process of this run; one core): sign request ${fmt(f.signRequestUs, 1)} us, verify request ${fmt(f.verifyRequestUs, 1)} us, verify reply ${fmt(f.verifyReplyUs, 1)} us`,
    );
    for (const [n, v] of Object.entries(f.byReplicas)) {
      const fn = (Number(n) - 1) / 3;
      out.push(
        `  n=${n}: sign + ${n} verify + ${fn + 1} reply verify = ${fmt(v.cpuUsPerRequest, 1)} us CPU per request -> floor ${fmt(v.requestsPerSecond)} requests/s on ${f.cores} cores`,
      );
    }
    for (const [n, v] of Object.entries(f.byReplicasChecking ?? {})) {
      const fn = (Number(n) - 1) / 3;
      out.push(
        `  (the replicas' own minimum since 2026-12-05, only ${v.checkers} of ${n} verify a request: sign + ${v.checkers} verify + ${fn + 1} reply verify = ${fmt(v.cpuUsPerRequest, 1)} us -> ${fmt(v.requestsPerSecond)} requests/s)`,
      );
    }
  }
  const fnode = report.floorNode;
  if (fnode !== undefined) {
    const v = fnode.byReplicas[o.replicas]!;
    out.push(
      `  for comparison, node:crypto (the backend before libsodium): sign request ${fmt(fnode.signRequestUs, 1)} us, verify request ${fmt(fnode.verifyRequestUs, 1)} us, verify reply ${fmt(fnode.verifyReplyUs, 1)} us; n=${o.replicas}: ${fmt(v.cpuUsPerRequest, 1)} us -> ${fmt(v.requestsPerSecond)} requests/s`,
    );
  }
  const fc = report.frameCost;
  if (fc !== undefined) {
    out.push('');
    out.push(
      `frame cost (bench/frame-cost.ts: ${fc.payloadBytes}-byte binary WebSocket frames over loopback between two processes, the sender's and the receiver's CPU): ` +
        `${fmt(fc.oneInFlightUs, 1)} us per frame with one in flight, ${fmt(fc.manyInFlightUs, 1)} us with ${fc.connectionsMany} connections`,
    );
    out.push(
      `  the same over plain TCP streams (no WebSocket, a 4-byte length prefix per frame: what any transport on Node's streams pays): ` +
        `${fmt(fc.plain.oneInFlightUs, 1)} us and ${fmt(fc.plain.manyInFlightUs, 1)} us; WebSocket framing (ws) adds ${fmt(fc.oneInFlightUs - fc.plain.oneInFlightUs, 1)} and ${fmt(fc.manyInFlightUs - fc.plain.manyInFlightUs, 1)} us`,
    );
  }
  const wc = report.wakeupCost;
  if (wc !== undefined) {
    out.push('');
    out.push(
      `wake-up cost (bench/wakeup-cost.ts: the CPU a Node process is charged per timer wake-up that does nothing, ${wc.rounds} rounds each): ` +
        `${fmt(wc.after1msUs, 1)} us after 1 ms asleep, ${fmt(wc.after20msUs, 1)} us after 20 ms (a process serving one client sleeps and wakes several times per request)`,
    );
  }
  const sw = report.syncedWrite;
  if (sw !== undefined) {
    out.push('');
    out.push(
      `synced write (RocksDB write(ops, { sync: true }), as a replica's turn; ${sw.count} batches of ${sw.opsPerBatch} puts, ${fmt(sw.bytesPerBatch)} bytes): p50 ${fmt(sw.ms.p50, 3)} ms, p99 ${fmt(sw.ms.p99, 3)} ms, mean ${fmt(sw.ms.mean, 3)} ms`,
    );
  }
  if (report.loads.length > 0) {
    out.push('');
    const header = ['run', 'replicas', 'clients', 'requests', 'req/s', 'p50 ms', 'p99 ms', 'max ms', 'CPU s/req', 'server CPU', 'client CPU', 'req/batch', 'RSS MiB start->end'];
    const rows: string[][] = [header];
    for (const l of report.loads) {
      rows.push([
        l.run,
        l.replicas === 1 ? '1 (none)' : String(l.replicas),
        String(l.clients),
        fmt(l.requests),
        fmt(l.requestsPerSecond, 1),
        fmt(l.latencyMs.p50, 2),
        fmt(l.latencyMs.p99, 2),
        fmt(l.latencyMs.max, 2),
        Number.isFinite(l.cpuSecondsPerRequest) ? l.cpuSecondsPerRequest.toFixed(6) : '-',
        `${fmt(l.cpuSeconds.servers, 1)} s`,
        `${fmt(l.cpuSeconds.clients, 1)} s`,
        l.replica0 !== undefined ? fmt(l.replica0.requestsPerBatch, 1) : '-',
        l.rssBytes.map((b) => `${fmt(b.start / MiB)}->${fmt(b.end / MiB)}`).join(' '),
      ]);
    }
    const widths = header.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
    for (const r of rows) out.push(r.map((cell, c) => (c <= 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  '));
    const withWork = report.loads.filter((l) => l.work !== undefined && l.work.length > 0);
    if (withWork.length > 0) {
      out.push('');
      out.push('replica work per request (replica 0 = primary, replica 1 = a backup; from /status over the window)');
      for (const l of withWork) {
        for (const w of l.work!.filter((x) => x.replica <= 1)) {
          out.push(
            `  ${l.run.padEnd(9)} replica ${w.replica}: ${fmt(w.verifies, 2)} verifies on the loop (${fmt(w.verifyUs)} us)` +
              (w.verifiesOffloaded > 0 ? ` + ${fmt(w.verifiesOffloaded, 2)} in workers` : '') +
              `, ${fmt(w.signs, 2)} signs (${fmt(w.signUs)} us), ` +
              `${fmt(w.syncedWrites, 3)} synced writes (${fmt(w.writeWaitUs)} us each), ${fmt(w.horizonWrites, 3)} horizon records (${fmt(w.horizonWaitUs)} us each), ${fmt(w.turns, 2)} loop turns` +
              (w.framesOut !== undefined && w.framesIn !== undefined
                ? `, frames ${fmt(w.framesOut, 2)} out` + (w.clientFramesOut !== undefined ? ` (${fmt(w.clientFramesOut, 2)} to clients)` : '') +
                  ` / ${fmt(w.framesIn, 2)} in` + (w.clientFramesIn !== undefined ? ` (${fmt(w.clientFramesIn, 2)} from clients)` : '')
                : '') +
              (w.checkpoint !== undefined && w.checkpoint.share > 0
                ? `; own checkpoint pending ${fmt(100 * w.checkpoint.share, 1)}% of the window, ${fmt(w.checkpoint.batchesPerSecond, 1)} batches/s then, ${fmt(w.checkpoint.otherwisePerSecond, 1)} otherwise`
                : ''),
          );
        }
        const rt = l.clientRetransmits;
        if (rt !== undefined && l.requests > 0) {
          out.push(
            `  ${l.run.padEnd(9)} clients: ${fmt((100 * rt.requests) / l.requests, 2)}% of the requests retransmitted (${fmt(rt.requests)} of ${fmt(l.requests)}, --replies ${o.replies})` +
              (rt.leftOut.length > 0 ? `; replicas left out of the repliers at the end: ${rt.leftOut.join(', ')}` : ''),
          );
        }
      }
      const accounts = withWork.map((l) => ({ l, a: cpuAccount(report, l) })).filter((x) => x.a !== undefined);
      if (accounts.length > 0) {
        out.push('');
        out.push("where a request's CPU goes (CPU s/req of every process, split: signatures = the replicas' signs and verifies");
        out.push('  (counted by every replica) + the clients\' sign and the reply verifies their cache did not answer, each priced by the');
        out.push('  floor above; frames = every frame of the window once (what the replicas sent + what clients sent them) x the frame');
        out.push('  cost above (one in flight for a 1-client run); the rest: JavaScript, GC, storage calls, the runtime)');
        for (const { l, a } of accounts) {
          const pct = (us: number): string => `${fmt((100 * us) / a!.totalUs)}%`;
          out.push(
            `  ${l.run.padEnd(9)} ${fmt(a!.totalUs)} us = signatures ${fmt(a!.signaturesUs)} us (${pct(a!.signaturesUs)})` +
              ` + frames ${fmt(a!.frames, 2)} x ${fmt(a!.frameUs, 1)} us = ${fmt(a!.framesUs)} us (${pct(a!.framesUs)})` +
              ` + the rest ${fmt(a!.restUs)} us (${pct(a!.restUs)})`,
          );
        }
      }
    }
    const withWait = report.loads.filter((l) => l.runQueue !== undefined);
    if (withWait.length > 0) {
      out.push('');
      out.push('waiting for a core (runnable but not running, /proc/<pid>/task/*/schedstat), us per request: each server\'s main');
      out.push('  thread (replica 0 first), then all the servers\' threads and all the client workers\' threads');
      for (const l of withWait) {
        const q = l.runQueue!;
        const sum = (xs: number[]): number => xs.reduce((t, x) => t + x, 0);
        out.push(
          `  ${l.run.padEnd(9)} main threads ${q.serversMainUs.map((x) => fmt(x)).join(' + ')} = ${fmt(sum(q.serversMainUs))} us;` +
            ` all server threads ${fmt(sum(q.serversAllUs))} us; client workers ${fmt(q.clientsUs)} us` +
            ` (p50 ${fmt(l.latencyMs.p50 * 1000)} us, mean ${fmt(l.latencyMs.mean * 1000)} us)`,
        );
      }
    }
    const withPerf = report.loads.filter((l) => l.perf !== undefined);
    if (withPerf.length > 0) {
      out.push('');
      out.push('where the CPU goes by category (perf over every thread and the kernel, the measured window; each sample is put in one');
      out.push('  category by the function it was in: bench/perf-split.ts; recordings in --perf DIR/<run>/)');
      for (const l of withPerf) out.push(...formatSplit(l.perf!));
    }
    const withPhases = report.loads.filter((l) => l.phases !== undefined && l.phases.length > 0);
    if (withPhases.length > 0) {
      out.push('');
      out.push("where a request's time goes (means over the window, ms, from the replica's /metrics histograms; the clients' mean for comparison):");
      out.push('  request: from a client\'s request arriving at the replica to its answer leaving it, or to its execution there when it named');
      out.push('  other repliers (the primary: the requests sent to it, which it does not answer);');
      out.push('  prepare: its PRE-PREPARE or PREPARE made -> its COMMIT made (prepared); commit: -> committed here (with the COMMITs\' synced writes); execute: -> executed');
      for (const l of withPhases) {
        for (const p of l.phases!) {
          out.push(
            `  ${l.run.padEnd(9)} replica ${p.replica}: request ${fmt(p.requestMs, 2)}, prepare ${fmt(p.prepareMs, 2)}, commit ${fmt(p.commitMs, 2)}, ` +
              `execute ${fmt(p.executeMs, 2)}; synced write ${fmt(p.writeMs, 2)}` + (p.replica === 0 ? `; the clients' mean ${fmt(l.latencyMs.mean, 2)}` : ''),
          );
        }
      }
    }
    const errors = report.loads.filter((l) => l.errors > 0);
    for (const l of errors) out.push(`  ${l.run}: ${l.errors} requests failed, e.g. ${l.errorSamples[0] ?? '?'}`);
    out.push('  (CPU s/req: CPU seconds of every replica/server and client process in the window / requests completed in it)');
  }
  const idle = report.idle;
  if (idle !== undefined) {
    out.push('');
    out.push(
      `idle: the ${idle.run} run's replicas without clients (after ${IDLE_SETTLE_MS / 1000} s to settle, ${fmt(idle.seconds, 1)} s, /proc): ` +
        idle.cores.map((c, k) => `replica ${k} ${fmt(100 * c, 2)}%`).join(', ') +
        ' of a core; tick-timer wake-ups per second ' +
        idle.tickWakeupsPerSecond.map((w) => (w === undefined ? '-' : fmt(w, 1))).join(', '),
    );
  }
  const r = report.ratios;
  if (Object.keys(r).length > 0) {
    out.push('');
    out.push('ratios');
    if (r.clusterToCryptoFloor !== undefined) out.push(`  cluster (${o.replicas} replicas) / crypto floor n=${o.replicas}      ${fmt(r.clusterToCryptoFloor, 2)}`);
    if (r.clusterToCheckingFloor !== undefined) out.push(`  cluster (${o.replicas} replicas) / 2f+1-verify minimum n=${o.replicas}  ${fmt(r.clusterToCheckingFloor, 2)}   (information; the target is judged on the floor above)`);
    if (r.clusterToNodeCryptoFloor !== undefined) {
      out.push(`  cluster (${o.replicas} replicas) / node:crypto's floor n=${o.replicas}  ${fmt(r.clusterToNodeCryptoFloor, 2)}   (the floor of the records before libsodium)`);
    }
    if (r.clusterToBaselineThroughput !== undefined) out.push(`  cluster throughput / baseline throughput    ${fmt(r.clusterToBaselineThroughput, 2)}`);
    if (r.latencyP50ToBaseline !== undefined) out.push(`  1-client p50: cluster / baseline            ${fmt(r.latencyP50ToBaseline, 2)}`);
    if (r.latencyP50ToTarget !== undefined) out.push(`  1-client p50 / 1.5 x (baseline + sync)      ${fmt(r.latencyP50ToTarget, 2)}`);
    if (r.cluster7ToCluster !== undefined) out.push(`  cluster7 / cluster throughput               ${fmt(r.cluster7ToCluster, 2)}`);
    if (r.cluster7ToCryptoFloor !== undefined) out.push(`  cluster7 / crypto floor n=7                 ${fmt(r.cluster7ToCryptoFloor, 2)}`);
    if (r.poolToClusterThroughput !== undefined) {
      const helps = r.poolToClusterThroughput > 1.05 ? 'helps' : r.poolToClusterThroughput < 0.95 ? 'costs' : 'changes nothing (within 5%)';
      out.push(`  verify pool (${o.poolWorkers} worker${o.poolWorkers === 1 ? '' : 's'} per replica) / on the loop: throughput ${fmt(r.poolToClusterThroughput, 2)}, CPU per request ${fmt(r.poolToClusterCpuPerRequest!, 2)}: the pool ${helps} here`);
    }
    if (r.replicaRssGrowth !== undefined) out.push(`  replica RSS growth over the window          ${pct(r.replicaRssGrowth)}`);
    if (r.readOnlyToOrderedThroughput !== undefined) out.push(`  gets: read-only / ordered throughput        ${fmt(r.readOnlyToOrderedThroughput, 2)}`);
    if (r.readOnlyToOrderedP50 !== undefined) out.push(`  gets, 1 client: read-only / ordered p50     ${fmt(r.readOnlyToOrderedP50, 2)}`);
    if (r.keysLoadedToEmptyThroughput !== undefined) out.push(`  keys: loaded / empty store throughput       ${fmt(r.keysLoadedToEmptyThroughput, 2)}   (the empty store: the mean of its runs before and after the load)`);
    if (r.keysLoadedToEmptyBeforeThroughput !== undefined) out.push(`  keys: loaded / the empty run before it      ${fmt(r.keysLoadedToEmptyBeforeThroughput, 2)}`);
    if (r.keysEmptyAfterToBeforeThroughput !== undefined) out.push(`  keys: empty after / empty before the load   ${fmt(r.keysEmptyAfterToBeforeThroughput, 2)}   (the machine's drift over the load)`);
  }
  const modeRuns = (['cluster', 'crash', 'latency', 'crash-1'] as const).map((name) => find(report, name));
  if (modeRuns[1] !== undefined || modeRuns[3] !== undefined) {
    const [byz, crash, byz1, crash1] = modeRuns;
    out.push('');
    out.push(`fault models: byzantine (n = 3f+1, quorums 2f+1) vs crash (n = 2f+1, quorums f+1), f = ${faultsOf(o.replicas)}, same machine and clients`);
    out.push('  (BFT-SMaRt system.bft=false is the anchor; the crash cluster has fewer replicas, smaller quorums, and the same signatures)');
    const cell = (l: LoadResult | undefined, f: (l: LoadResult) => string): string => (l === undefined ? '-' : f(l));
    const ratio = (a: LoadResult | undefined, b: LoadResult | undefined, f: (l: LoadResult) => number): string => (a === undefined || b === undefined ? '-' : `${fmt(f(b) / f(a), 2)}x`);
    const rows = [
      ['', `byzantine (${byz?.replicas ?? byz1?.replicas ?? o.replicas})`, `crash (${crash?.replicas ?? crash1?.replicas ?? '-'})`, 'crash / byzantine'],
      [`${o.clients} clients: req/s`, cell(byz, (l) => fmt(l.requestsPerSecond, 1)), cell(crash, (l) => fmt(l.requestsPerSecond, 1)), ratio(byz, crash, (l) => l.requestsPerSecond)],
      [`${o.clients} clients: p50 ms`, cell(byz, (l) => fmt(l.latencyMs.p50, 2)), cell(crash, (l) => fmt(l.latencyMs.p50, 2)), ratio(byz, crash, (l) => l.latencyMs.p50)],
      ['1 client: p50 ms', cell(byz1, (l) => fmt(l.latencyMs.p50, 2)), cell(crash1, (l) => fmt(l.latencyMs.p50, 2)), ratio(byz1, crash1, (l) => l.latencyMs.p50)],
      ['CPU ms/req (N clients)', cell(byz, (l) => fmt(l.cpuSecondsPerRequest * 1000, 3)), cell(crash, (l) => fmt(l.cpuSecondsPerRequest * 1000, 3)), ratio(byz, crash, (l) => l.cpuSecondsPerRequest)],
    ];
    const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
    for (const r of rows) out.push('  ' + r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  '));
  }
  const readRuns = (['get-ordered', 'get-readonly', 'get-ordered-1', 'get-readonly-1'] as const).map((name) => find(report, name));
  if (readRuns.some((l) => l !== undefined)) {
    const [ordered, readOnly, ordered1, readOnly1] = readRuns;
    out.push('');
    out.push(`reads: gets of ${o.keyBytes}-byte keys holding ${o.payload}-byte values (${READ_KEYS_PER_CLIENT} per client, written before each run), ordered vs read-only`);
    out.push('  (PBFT, TOCS 2002 section 8: read-only 1.62 ms vs read-write 3.35 ms, one client, null operations)');
    const cell = (l: LoadResult | undefined, f: (l: LoadResult) => string): string => (l === undefined ? '-' : f(l));
    const ratio = (a: LoadResult | undefined, b: LoadResult | undefined, f: (l: LoadResult) => number): string => (a === undefined || b === undefined ? '-' : `${fmt(f(b) / f(a), 2)}x`);
    const rows = [
      ['', 'ordered', 'read-only', 'read-only / ordered'],
      [`${o.clients} clients: req/s`, cell(ordered, (l) => fmt(l.requestsPerSecond, 1)), cell(readOnly, (l) => fmt(l.requestsPerSecond, 1)), ratio(ordered, readOnly, (l) => l.requestsPerSecond)],
      [`${o.clients} clients: p50 ms`, cell(ordered, (l) => fmt(l.latencyMs.p50, 2)), cell(readOnly, (l) => fmt(l.latencyMs.p50, 2)), ratio(ordered, readOnly, (l) => l.latencyMs.p50)],
      ['1 client: p50 ms', cell(ordered1, (l) => fmt(l.latencyMs.p50, 2)), cell(readOnly1, (l) => fmt(l.latencyMs.p50, 2)), ratio(ordered1, readOnly1, (l) => l.latencyMs.p50)],
      ['1 client: p99 ms', cell(ordered1, (l) => fmt(l.latencyMs.p99, 2)), cell(readOnly1, (l) => fmt(l.latencyMs.p99, 2)), ratio(ordered1, readOnly1, (l) => l.latencyMs.p99)],
      ['CPU ms/req (N clients)', cell(ordered, (l) => fmt(l.cpuSecondsPerRequest * 1000, 3)), cell(readOnly, (l) => fmt(l.cpuSecondsPerRequest * 1000, 3)), ratio(ordered, readOnly, (l) => l.cpuSecondsPerRequest)],
    ];
    const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
    for (const r of rows) out.push('  ' + r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  '));
    for (const l of [readOnly, readOnly1]) {
      if (l?.reads === undefined) continue;
      const total = l.reads.unordered + l.reads.fellBack;
      out.push(`  ${l.run}: ${fmt(l.reads.unordered)} of ${fmt(total)} read-only gets answered unordered, ${fmt(l.reads.fellBack)} fell back to ordered`);
    }
  }
  if (report.targets.length > 0) {
    out.push('');
    out.push('targets');
    for (const t of report.targets) out.push(`  [${t.met === undefined ? 'not judged' : t.met ? 'MET' : 'MISSED'}] ${t.name}: ${t.detail}`);
  }
  out.push(...keysLines(report));
  if (report.attacks.length > 0) {
    const ff = report.faultFree;
    out.push('');
    out.push(
      `attacks (${o.replicas} replicas x ${o.clients} clients, a fresh cluster per scenario, ${o.warmup} s warm-up + ${o.attackDuration} s measured, ` +
        `the attacker running throughout)`,
    );
    out.push(
      `  fault-free: ${fmt(ff?.requestsPerSecond ?? NaN, 1)} req/s` +
        (ff !== undefined && ff.runs.length > 1 ? `, the mean of ${ff.runs.map((r) => `${fmt(r.requestsPerSecond, 1)} (${r.run})`).join(' and ')}` : ` (${ff?.runs[0]?.run ?? '?'} run)`) +
        `; target: >= ${ATTACK_TARGET_FRACTION * 100}% of it under each attack`,
    );
    const header = ['scenario', 'req/s', 'of fault-free', '', 'p99 ms', 'CPU ms/req', 'RSS MiB before->after (max)', 'data MiB before->after', 'log KiB', 'view changes', 'attacker'];
    const rows: string[][] = [header];
    const mib = (b: number): string => fmt(b / MiB, 0);
    for (const a of report.attacks) {
      const at = a.attacker;
      rows.push([
        a.scenario,
        a.load !== undefined ? fmt(a.load.requestsPerSecond, 1) : '-',
        a.fraction !== undefined ? pct(a.fraction) : '-',
        a.met === true ? '[MET]' : '[MISSED]',
        a.load !== undefined ? fmt(a.load.latencyMs.p99, 1) : '-',
        a.load !== undefined && Number.isFinite(a.load.cpuSecondsPerRequest) ? fmt(a.load.cpuSecondsPerRequest * 1000, 2) : '-',
        a.rss.map((r) => `${mib(r.before)}->${mib(r.after)} (${mib(r.max)})`).join(' '),
        a.disk.map((d) => `${fmt(d.before / MiB, 1)}->${fmt(d.after / MiB, 1)}`).join(' '),
        a.logBytes.map((l) => fmt(l.bytes / 1024, 0)).join(' '),
        String(a.viewChanges ?? '-'),
        at === undefined
          ? '-'
          : `${fmt(at.framesSent)} frames ${fmt(at.bytesSent / MiB, 1)} MiB, ${fmt(at.cpuSeconds, 1)} CPU s, closed ${fmt(at.closedByReplica)}` +
            (a.scenario === 'slowloris' ? `; ${fmt(at.opened)} opened, the oldest still open ${fmt(at.oldestOpenSeconds, 1)} s old` : ''),
      ]);
    }
    const widths = header.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
    for (const r of rows) out.push('  ' + r.map((cell, c) => (c === 0 || c >= 6 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  ').trimEnd());
    const ffCpu = report.loads.filter((l) => ff?.runs.some((r) => r.run === l.run)).map((l) => fmt(l.cpuSecondsPerRequest * 1000, 2));
    out.push(
      `  (CPU ms/req: CPU of the replicas and the client workers over the window per request completed, the attacker not included; fault-free ${ffCpu.join(' and ')}.` +
        ' RSS, data and log per running replica, in replica order; log: bytes written on stdout/stderr at --log-level warn from the attack\'s start to the end of the window)',
    );
    for (const a of report.attacks) if (a.failure !== undefined) out.push(`  ${a.scenario}: ${a.failure}`);
    for (const a of report.attacks) if (a.load !== undefined && a.load.errors > 0) out.push(`  ${a.scenario}: ${a.load.errors} requests failed, e.g. ${a.load.errorSamples[0] ?? '?'}`);
  }
  const rssLoad = o.rss ? find(report, 'cluster') : undefined;
  if (rssLoad !== undefined) {
    out.push('');
    out.push(
      `replica RSS (MiB) every ${o.rssInterval} s of the window, and (after /) heap used + array buffers from /status, and RocksDB's memory (memtables + table readers + block cache, its own accounting):`,
    );
    out.push(`  ${'t s'.padStart(6)}  ${rssLoad.rssBytes.map((_, i) => `replica ${i}`.padStart(24)).join('')}`);
    for (const s of rssLoad.rssSamples) {
      const cells = s.bytes.map((b, i) =>
        `${fmt(b / MiB, 1)}${s.heap !== undefined ? ` / ${fmt(s.heap[i]! / MiB, 1)}` : ''}${s.rocks !== undefined ? ` / ${fmt(s.rocks[i]! / MiB, 1)}` : ''}`.padStart(24),
      );
      out.push(`  ${fmt(s.t, 1).padStart(6)}  ${cells.join('')}`);
    }
  }
  process.stdout.write(out.join('\n') + '\n');
}

interface Machine {
  /** 1-minute load average when the run started and when it ended (other work on the machine). */
  loadAverage: { start: number; end?: number };
  cores: number;
  cpuModel: string;
  memoryBytes: number;
  node: string;
  platform: string;
  /**
   * The C allocator of the processes the run started (--malloc): what was asked, the library
   * preloaded, and what the memory map of the first replica started showed (malloc.ts mallocInUse).
   */
  malloc: { allocator: MallocEnv['allocator']; path?: string; seen?: MallocInUse };
}

function machine(): Machine {
  return {
    loadAverage: { start: loadavg()[0]! },
    cores: availableParallelism(),
    cpuModel: cpus()[0]?.model.trim() ?? 'unknown',
    memoryBytes: totalmem(),
    node: process.version,
    platform: `${platform()} ${arch()}`,
    malloc: { allocator: 'system' },
  };
}

// =================================================================================================
// Main

async function main(): Promise<void> {
  const o = parseOptions(process.argv);
  if (o.perf !== undefined) checkPerf();
  // Every process of the run (replicas, client workers, baseline server) inherits it.
  if (o.crypto !== undefined) process.env.PBFT_CRYPTO = o.crypto;
  // So does the allocator (LD_PRELOAD; this process keeps the one it started with).
  let alloc: MallocEnv;
  try {
    alloc = mallocEnv(process.env, o.malloc);
  } catch (err) {
    process.stderr.write(`npm run bench: ${(err as Error).message}\n`);
    process.exit(2);
  }
  if (alloc.env.LD_PRELOAD === undefined) delete process.env.LD_PRELOAD;
  else process.env.LD_PRELOAD = alloc.env.LD_PRELOAD;
  // As pbft start says in its ready lines: the figures recorded in the README ran on jemalloc.
  if (alloc.allocator === 'system' && o.malloc !== 'system') {
    process.stderr.write(
      `npm run bench: every process of this run uses the system's malloc: ${JEMALLOC_MISSING_HINT}, and the README's runs used it (--malloc system chooses the system's without this line)\n`,
    );
  }
  const command = ['npm run bench --', ...process.argv.slice(2)].join(' ');
  const m = machine();
  m.malloc = { allocator: alloc.allocator, ...(alloc.path !== undefined ? { path: alloc.path } : {}) };
  const parts = new Set(o.only);
  // The throughput clients, one for the latency run, and the byzantine clients of the attack scenarios.
  const clientIds = o.clients + 1 + (parts.has('attacks') ? ATTACK_CLIENTS : 0);
  /** The machine as of now: the load average at the end, the malloc the replicas reported. */
  const stampMachine = (): void => {
    m.loadAverage.end = loadavg()[0]!;
    if (mallocSeen !== undefined) m.malloc.seen = mallocSeen;
  };
  const reports: Report[] = [];
  for (let i = 0; i < o.repeat && !interrupted; i++) {
    if (o.repeat > 1) progressDone(`[repeat] repetition ${i + 1} of ${o.repeat}`);
    const report = await measure(o, parts, clientIds);
    evaluate(o, report);
    evaluateKeys(report);
    reports.push(report);
    stampMachine();
    if (o.repeat > 1) process.stdout.write(`\n=== repetition ${i + 1} of ${o.repeat} ===\n`);
    printReport(o, report, m, command);
  }
  if (reports.length === 0) return; // interrupted before the first measurement
  const repeated = o.repeat > 1 ? targetsOverRepetitions(reports.map((r) => r.targets)) : undefined;
  if (repeated !== undefined) process.stdout.write('\n' + repeatedTargetLines(repeated, reports.length).join('\n') + '\n');
  if (o.json) {
    const head = { date: new Date().toISOString(), command, machine: m, options: o };
    const record =
      repeated === undefined
        ? { ...head, ...recordOf(reports[0]!) }
        : { ...head, repeat: reports.length, targets: repeated, ratios: medianRatios(reports.map((r) => r.ratios)), repetitions: reports.map(recordOf) };
    let path = o.jsonFile;
    if (path === undefined) {
      mkdirSync(RESULTS_DIR, { recursive: true });
      path = join(RESULTS_DIR, `bench-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
    }
    writeFileSync(path, JSON.stringify(record, null, 2) + '\n');
    process.stdout.write(`\nrecord written to ${path}\n`);
  }
  if (o.profile !== undefined) {
    process.stdout.write(`CPU profiles in ${o.profile}/<run>/<process>/ (summarize the measured window: node --import tsx bench/profile-top.ts ${o.profile}/<run>/replica-1)\n`);
    if (o.keys !== undefined) {
      process.stdout.write(`  the loaded store's replicas are in ${o.profile}/keys/, its window in ${o.profile}/keys-${o.keys}/: profile-top.ts --window ${o.profile}/keys-${o.keys}/window.json ${o.profile}/keys/replica-1\n`);
    }
  }
}

/** A report's part of the JSON record (one repetition's, with --repeat). */
function recordOf(report: Report): Record<string, unknown> {
  return {
    cryptoFloor: report.floor,
    frameCost: report.frameCost,
    wakeupCost: report.wakeupCost,
    syncedWrite: report.syncedWrite,
    runs: report.loads,
    attacks: report.attacks,
    faultFree: report.faultFree,
    ratios: report.ratios,
    targets: report.targets,
    ...(report.idle !== undefined ? { idle: report.idle } : {}),
    ...(report.keys !== undefined
      ? { keys: { ...report.keys, empty: report.keys.empty.run, loaded: report.keys.loaded.run, ...(report.keys.emptyAfter !== undefined ? { emptyAfter: report.keys.emptyAfter.run } : {}) } }
      : {}),
  };
}

/** One measurement of the selected parts (what `npm run bench` runs once, or --repeat times). */
async function measure(o: Options, parts: ReadonlySet<Part>, clientIds: number): Promise<Report> {
  const report: Report = { loads: [], attacks: [], ratios: {}, targets: [] };
  if (parts.has('crypto')) {
    progress('[crypto floor] measuring sign / verify / verify reply', true);
    report.floor = measureCryptoFloor({ seconds: o.floorSeconds, replicaCounts: [...new Set([o.replicas, 7])].sort((a, b) => a - b), valueBytes: o.payload, keyBytes: o.keyBytes });
    if (report.floor.backend === 'sodium') {
      report.floorNode = measureCryptoFloor({ seconds: o.floorSeconds, replicaCounts: [o.replicas], valueBytes: o.payload, keyBytes: o.keyBytes, backend: 'node' });
    }
    const fl = report.floor.byReplicas[o.replicas]!;
    progressDone(`[crypto floor] n=${o.replicas}: ${fmt(fl.cpuUsPerRequest, 1)} us of signature work per request -> ${fmt(fl.requestsPerSecond)} requests/s`);
    progress('[frame cost] measuring WebSocket and plain TCP frames over loopback', true);
    const fc = (report.frameCost = await measureFrameCost({ seconds: 2 * o.floorSeconds }));
    progressDone(`[frame cost] ${fmt(fc.oneInFlightUs, 1)} us per frame with one in flight, ${fmt(fc.manyInFlightUs, 1)} us with ${fc.connectionsMany} (plain TCP streams: ${fmt(fc.plain.oneInFlightUs, 1)} and ${fmt(fc.plain.manyInFlightUs, 1)} us)`);
    progress('[wake-up cost] measuring timer wake-ups of an idle process', true);
    const wc = (report.wakeupCost = await measureWakeupCost({ rounds: Math.max(20, Math.round(200 * o.floorSeconds)) }));
    progressDone(`[wake-up cost] ${fmt(wc.after1msUs, 1)} us of CPU per wake-up after 1 ms asleep, ${fmt(wc.after20msUs, 1)} us after 20 ms`);
  }
  // With --profile every run gets servers of its own, so <dir>/<run>/ holds that run's profiles only
  // (the server processes write theirs when they stop); without it, runs share them as before.
  const separate = o.profile !== undefined;
  if (parts.has('baseline')) {
    let server = await startBaseline(o, clientIds, separate ? 'baseline-1' : 'baseline');
    try {
      report.loads.push(await runLoad(o, server, 'baseline-1', 1, o.clients));
      if (separate) {
        await server.stop();
        server = await startBaseline(o, clientIds, 'baseline');
      }
      report.loads.push(await runLoad(o, server, 'baseline', o.clients, 0));
    } finally {
      await server.stop();
    }
  }
  if (parts.has('latency')) {
    progress('[synced write] measuring RocksDB write(ops, { sync: true })', true);
    const w = (report.syncedWrite = await measureSyncedWrite());
    progressDone(`[synced write] ${w.count} batches of ${w.opsPerBatch} puts (${fmt(w.bytesPerBatch)} bytes): p50 ${fmt(w.ms.p50, 3)} ms, p99 ${fmt(w.ms.p99, 3)} ms`);
  }
  if (parts.has('cluster') || parts.has('latency')) {
    const run = `cluster${o.replicas}`;
    let server = await startCluster(o, separate ? (parts.has('cluster') ? 'cluster' : 'latency') : run, o.replicas, clientIds);
    try {
      if (parts.has('cluster')) report.loads.push(await runLoad(o, server, 'cluster', o.clients, 0));
      if (parts.has('latency')) {
        if (separate && parts.has('cluster')) {
          await server.stop();
          server = await startCluster(o, 'latency', o.replicas, clientIds);
        }
        if (separate || !parts.has('cluster')) {
          // A fresh cluster: one client's warm-up (a few hundred requests) leaves most of the code to
          // V8's compilers, whose work then counts as the replicas' CPU in the window (a third of it,
          // measured). Load it like the cluster run does first in the default suite (not recorded).
          await runLoad(o, server, 'latency-warmup', o.clients, 0, { duration: Math.max(1, o.warmup) });
        }
        report.loads.push(await runLoad(o, server, 'latency', 1, o.clients));
      }
      if (o.idleSeconds > 0) {
        const run = parts.has('latency') ? 'latency' : 'cluster';
        progress(`[idle] the ${run} cluster without clients for ${fmt(o.idleSeconds, 1)} s`, true);
        report.idle = await measureIdle(server, run, o.idleSeconds);
        progressDone(`[idle] ${report.idle === undefined ? 'a replica was gone' : `${fmt((100 * report.idle.cores.reduce((a, b) => a + b, 0)) / report.idle.cores.length, 2)}% of a core per replica`}`);
      }
    } finally {
      await server.stop();
    }
  }
  if (parts.has('pool')) {
    // The same cluster with signature checks in worker threads: does the pool help on this machine?
    const server = await startCluster({ ...o, verifyWorkers: o.poolWorkers }, 'pool', o.replicas, clientIds);
    try {
      report.loads.push(await runLoad(o, server, 'pool', o.clients, 0));
    } finally {
      await server.stop();
    }
  }
  if (parts.has('cluster7') && o.replicas !== 7) {
    const server = await startCluster(o, 'cluster7', 7, clientIds);
    try {
      report.loads.push(await runLoad(o, server, 'cluster7', o.clients, 0));
    } finally {
      await server.stop();
    }
  }
  if (parts.has('reads')) {
    // A fresh cluster: the keys are written by the clients before each run (READ_KEYS_PER_CLIENT).
    const server = await startCluster(o, 'reads', o.replicas, clientIds);
    const keysPerClient = Math.min(o.keysPerClient, READ_KEYS_PER_CLIENT);
    try {
      report.loads.push(await runLoad(o, server, 'get-ordered', o.clients, 0, { workload: 'get-ordered', keysPerClient }));
      report.loads.push(await runLoad(o, server, 'get-readonly', o.clients, 0, { workload: 'get-readonly', keysPerClient }));
      report.loads.push(await runLoad(o, server, 'get-ordered-1', 1, o.clients, { workload: 'get-ordered', keysPerClient }));
      report.loads.push(await runLoad(o, server, 'get-readonly-1', 1, o.clients, { workload: 'get-readonly', keysPerClient }));
    } finally {
      await server.stop();
    }
  }
  if (parts.has('crash')) {
    // The crash-fault mode with the main cluster's f: 2f+1 replicas (3 for 4), same clients.
    const n = replicasFor(faultsOf(o.replicas), 'crash');
    const server = await startCluster(o, 'crash', n, clientIds, { faultModel: 'crash' });
    try {
      report.loads.push(await runLoad(o, server, 'crash', o.clients, 0));
      report.loads.push(await runLoad(o, server, 'crash-1', 1, o.clients));
    } finally {
      await server.stop();
    }
  }
  if (parts.has('attacks')) {
    let reference = find(report, 'cluster');
    if (reference === undefined || reference.replicas !== o.replicas) {
      // No fault-free cluster in this run: measure one, like the scenarios (fresh cluster, same window).
      const server = await startCluster(o, 'attack-fault-free', o.replicas, clientIds);
      try {
        reference = await runLoad(o, server, 'fault-free', o.clients, 0, { duration: o.attackDuration });
        report.loads.push(reference);
      } finally {
        await server.stop();
      }
    }
    const runs = [{ run: reference.run, requestsPerSecond: reference.requestsPerSecond }];
    for (const name of o.attacks) {
      if (interrupted) break;
      const scenario = ATTACK_SCENARIOS.find((s) => s.name === name)!;
      report.attacks.push(await runScenario(o, scenario, reference.requestsPerSecond, o.clients + 1, clientIds));
    }
    if (o.attacks.length > 1 && !interrupted) {
      // Measured again after the scenarios: the machine's other load may have moved meanwhile.
      const server = await startCluster(o, 'attack-fault-free-end', o.replicas, clientIds);
      try {
        const end = await runLoad(o, server, 'fault-free-end', o.clients, 0, { duration: o.attackDuration });
        report.loads.push(end);
        runs.push({ run: end.run, requestsPerSecond: end.requestsPerSecond });
      } finally {
        await server.stop();
      }
    }
    const mean = runs.reduce((sum, r) => sum + r.requestsPerSecond, 0) / runs.length;
    report.faultFree = { requestsPerSecond: mean, runs };
    for (const a of report.attacks) judge(a, mean);
  }
  if (parts.has('keys') && !interrupted) await runKeys(o, report);
  return report;
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`\nbench: ${err instanceof Error ? err.message : String(err)}\n`);
    void Promise.all([...children].map((p) => stopProcess(p, 3_000))).finally(() => {
      removeTempDirs();
      process.exit(1);
    });
  },
);
