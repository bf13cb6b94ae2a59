/**
 * `pbft start`: a local development cluster. Generates a keyring when there is none, runs every
 * replica as a child process (`pbft replica --id i`), prefixes their log lines with `[replica i]`,
 * waits until each one answers GET /status, says how to reach them, and stops them all on Ctrl-C,
 * SIGTERM or SIGHUP (SIGTERM to each child, SIGKILL after 5 s), exiting 0.
 *
 * Run by npm (`npm start`, `npx pbft start`: npm_lifecycle_event is set), it also stops them all
 * when the npm process that started it is gone: npm forwards SIGTERM to the shell it runs the
 * script with, and that shell dies without passing it on, which left this process and every
 * replica running; and npm dies on SIGHUP without forwarding it, leaving the shell waiting. So the
 * parent is watched, and, when the parent is that `sh -c` shell, its parent (npm) too (Linux /proc). A replica that stops on its own is reported: cleanly (exit status 0, e.g. someone sent
 * it SIGTERM) or unexpectedly (any other status or a signal); the others keep running.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Option, type Command } from 'commander';
import type { ClusterConfig, FaultModel } from '../core/cluster.ts';
import { CLUSTER_FILE, generateKeyring, KeyringError, loadCluster, loadIdentity } from '../crypto/keyring.ts';
import type { LogLevel } from '../util/log.ts';
import { EXIT_WITH_PARENT_ENV, REPLICA_ENV_VARS } from './replica.ts';
import { JEMALLOC_MISSING_HINT, MALLOC_CHOICES, mallocEnv, type MallocChoice, type MallocEnv } from '../node/malloc.ts';
import { CliError, hostPortOf, httpBaseOf, parseNonNegativeInt, parsePort, parsePositiveInt, type CliIo } from './common.ts';

export interface StartFlags {
  /** Default: the existing keyring's count, or 4 (crash: 3) for a generated one. */
  replicas?: number;
  /** Fault model of a generated keyring (default byzantine); with an existing keyring it must match it. */
  faultModel?: FaultModel;
  /** Clients in a generated keyring (default CLIENTS_DEFAULT); given with an existing keyring, it must match it. */
  clients?: number;
  keys: string;
  data: string;
  /** Port of replica 0 in a generated keyring (default BASE_PORT_DEFAULT); given with an existing keyring, it must match it. */
  basePort?: number;
  logLevel: LogLevel;
  logFormat: 'json' | 'text';
  /** The replicas' C allocator (src/node/malloc.ts); default auto: jemalloc where it is installed. */
  malloc?: MallocChoice;
}

/** How long `start` waits for every replica to answer /status. */
const READY_TIMEOUT_MS = 60_000;
/** After SIGTERM, children still running after this long are killed. */
const STOP_GRACE_MS = 5_000;
export const BASE_PORT_DEFAULT = 7001;
export const CLIENTS_DEFAULT = 4;
/** How often a `pbft start` run by npm checks that the process that started it is still there. */
const PARENT_CHECK_MS = 500;
/** The signals that stop the cluster. */
const STOP_SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

export function addStartCommand(program: Command, action: (flags: StartFlags) => Promise<number>, done: (code: number) => void): Command {
  return program
    .command('start')
    .description(
      'run a local cluster: one child process per replica (generates a development keyring if there is none); ' +
        'Ctrl-C, SIGTERM or SIGHUP stops every replica (so does the end of the npm process that ran it)',
    )
    .option('--replicas <n>', 'number of replicas, 3f+1 (crash: 2f+1) (default: the keyring\'s; for a generated keyring 4, crash 3)', parsePositiveInt)
    .addOption(
      new Option('--fault-model <model>', 'fault model of a generated keyring (default: byzantine; crash: n = 2f+1, tolerates crashes but no lying replica, see pbft keygen --help); with an existing keyring it must match it').choices([
        'byzantine',
        'crash',
      ]),
    )
    .option('--clients <n>', `clients in a generated keyring (default: ${CLIENTS_DEFAULT}; with an existing keyring it must match it)`, parseNonNegativeInt)
    .option('--keys <dir>', 'keyring directory', 'keys')
    .option('--data <dir>', 'data directory: replica i stores in <dir>/replica-<i>', 'data')
    .option(
      '--base-port <port>',
      `replica i listens at base-port + i in a generated keyring (default: ${BASE_PORT_DEFAULT}); with an existing keyring it must match the keyring's ports`,
      parsePort,
    )
    .addOption(new Option('--log-level <level>', 'least severe level the replicas log').choices(['debug', 'info', 'warn', 'error']).default('info'))
    .addOption(new Option('--log-format <format>', 'replica log lines as text or JSON').choices(['json', 'text']).default('text'))
    .addOption(
      new Option(
        '--malloc <allocator>',
        'C allocator of the replica processes: auto preloads jemalloc where it is installed (Debian/Ubuntu: apt-get install libjemalloc2; about 7% more throughput), jemalloc requires it, system keeps the C library\'s',
      )
        .choices([...MALLOC_CHOICES])
        .default('auto'),
    )
    .action(async (flags: StartFlags) => {
      done(await action(flags));
    });
}

/**
 * The environment of a replica child: start's own, without the variables `pbft replica` reads its
 * settings from (PBFT_ID, PBFT_CONFIG, ...): start gives each child its settings as flags, and one
 * PBFT_LISTEN or config file meant for a single replica must not reach all of them.
 */
export function replicaEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(env)) if (!REPLICA_ENV_VARS.has(k)) out[k] = v;
  return out;
}

/** The parent pid of a process (Linux /proc), or undefined where it cannot be read. */
function parentOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so read after the last ')'.
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    return Number.isSafeInteger(ppid) ? ppid : undefined;
  } catch {
    return undefined;
  }
}

/** True when the process is a shell running one command line (`sh -c ...`, as npm runs scripts). */
function isShellC(pid: number): boolean {
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    return /(^|\/)(sh|dash|bash)$/.test(argv[0] ?? '') && argv[1] === '-c';
  } catch {
    return false;
  }
}

/** Path of the `pbft` launcher, to start the replicas with. */
export function launcherPath(): string {
  return fileURLToPath(new URL('../../bin/pbft.mjs', import.meta.url));
}

function keyringError(err: unknown): never {
  if (err instanceof KeyringError) throw new CliError(err.message);
  throw err;
}

/** Loads the keyring, or generates a development one when `<keys>/cluster.json` is missing. */
function prepareKeyring(flags: StartFlags, io: CliIo): ClusterConfig {
  const clusterPath = join(flags.keys, CLUSTER_FILE);
  let cluster: ClusterConfig;
  if (!existsSync(clusterPath)) {
    try {
      cluster = generateKeyring({
        replicas: flags.replicas ?? (flags.faultModel === 'crash' ? 3 : 4),
        ...(flags.faultModel !== undefined ? { faultModel: flags.faultModel } : {}),
        clients: flags.clients ?? CLIENTS_DEFAULT,
        out: flags.keys,
        basePort: flags.basePort ?? BASE_PORT_DEFAULT,
      }).cluster;
    } catch (err) {
      keyringError(err);
    }
    const first = cluster.replicas[0]!.url;
    const last = cluster.replicas[cluster.replicas.length - 1]!.url;
    io.out(
      `pbft start: generated a development keyring in ${flags.keys}/ (cluster ${cluster.clusterId}, ${cluster.replicas.length} replicas ${first} .. ${last}, ${cluster.clients.length} clients${cluster.faultModel === 'crash' ? ', crash faults only' : ''})`,
    );
  } else {
    try {
      cluster = loadCluster(clusterPath);
    } catch (err) {
      keyringError(err);
    }
    if (flags.replicas !== undefined && cluster.replicas.length !== flags.replicas) {
      throw new CliError(
        `${clusterPath} has ${cluster.replicas.length} replicas but --replicas ${flags.replicas} was given; pass --replicas ${cluster.replicas.length} or use another --keys directory`,
      );
    }
    const model = cluster.faultModel ?? 'byzantine';
    if (flags.faultModel !== undefined && flags.faultModel !== model) {
      throw new CliError(`${clusterPath} is a ${model}-fault keyring but --fault-model ${flags.faultModel} was given; drop --fault-model or use another --keys directory`);
    }
    // --base-port and --clients shape a generated keyring only: given with an existing one that
    // differs, they would be ignored, so they are refused instead.
    if (flags.basePort !== undefined) {
      const ports = cluster.replicas.map((r) => hostPortOf(r.url).port);
      const wanted = ports.map((_, i) => flags.basePort! + i);
      if (ports.some((p, i) => p !== wanted[i])) {
        throw new CliError(
          `${clusterPath} exists and puts the replicas at ports ${ports.join(', ')}: --base-port ${flags.basePort} applies only to a generated keyring; ` +
            `drop --base-port, use another --keys directory, or regenerate this one (pbft keygen --out ${flags.keys} --force --base-port ${flags.basePort})`,
        );
      }
    }
    if (flags.clients !== undefined && flags.clients !== cluster.clients.length) {
      throw new CliError(
        `${clusterPath} exists and has ${cluster.clients.length} clients: --clients ${flags.clients} applies only to a generated keyring; drop --clients or use another --keys directory`,
      );
    }
  }
  // Every replica key must load: report a bad one here, once, rather than in a child.
  for (const r of cluster.replicas) {
    try {
      loadIdentity(flags.keys, 'replica', r.id);
    } catch (err) {
      keyringError(err);
    }
  }
  return cluster;
}

/** Fails with one line when a replica's port cannot be listened on. */
async function checkPorts(cluster: ClusterConfig): Promise<void> {
  for (const r of cluster.replicas) {
    const { host, port } = hostPortOf(r.url);
    await new Promise<void>((resolve, reject) => {
      const server = net.createServer();
      server.once('error', (err: NodeJS.ErrnoException) => {
        if (err.code === 'EADDRINUSE') {
          reject(new CliError(`port ${port} on ${host} (replica ${r.id}) is already in use; stop what uses it, or use a keyring with other ports`));
        } else if (err.code === 'EADDRNOTAVAIL') {
          reject(
            new CliError(
              `cannot listen on ${host}:${port} (replica ${r.id}): no such address on this machine; ` +
                `this keyring puts replicas on other hosts: run \`pbft replica --id <n>\` on each host instead of \`pbft start\``,
            ),
          );
        } else {
          reject(new CliError(`cannot listen on ${host}:${port} (replica ${r.id}): ${err.message}`));
        }
      });
      server.listen({ host, port, exclusive: true }, () => server.close(() => resolve()));
    });
  }
}

interface Child {
  id: number;
  url: string;
  dataDir: string;
  proc: ChildProcess;
  exited: boolean;
  ready: boolean;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function answersStatus(url: string): Promise<boolean> {
  try {
    const res = await fetch(`${httpBaseOf(url)}/status`, { signal: AbortSignal.timeout(1_000) });
    await res.arrayBuffer();
    return res.ok;
  } catch {
    return false;
  }
}

/** How a replica that `start` did not stop ended. */
function exitReport(id: number, code: number | null, signal: NodeJS.Signals | null): string {
  if (signal === null && code === 0) return `pbft start: replica ${id} stopped cleanly (exit status 0, e.g. after a SIGTERM sent to it); the other replicas keep running`;
  const how = signal !== null ? `killed by signal ${signal}` : `exit status ${code}`;
  return `pbft start: replica ${id} exited unexpectedly (${how}); the other replicas keep running`;
}

export async function runStartCommand(flags: StartFlags, io: CliIo): Promise<number> {
  let malloc: MallocEnv;
  try {
    malloc = mallocEnv(replicaEnv(process.env), flags.malloc ?? 'auto');
  } catch (err) {
    throw new CliError((err as Error).message);
  }
  const cluster = prepareKeyring(flags, io);
  await checkPorts(cluster);

  let stopping = false;
  let resolveDone: (code: number) => void = () => undefined;
  const done = new Promise<number>((resolve) => {
    resolveDone = resolve;
  });

  const children: Child[] = cluster.replicas.map((r) => {
    const dataDir = join(flags.data, `replica-${r.id}`);
    const args = [
      launcherPath(),
      'replica',
      '--id',
      String(r.id),
      '--keys',
      flags.keys,
      '--data',
      dataDir,
      '--log-level',
      flags.logLevel,
      '--log-format',
      flags.logFormat,
    ];
    const proc = spawn(process.execPath, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...malloc.env, [EXIT_WITH_PARENT_ENV]: '1' },
    });
    const child: Child = {
      id: r.id,
      url: r.url,
      dataDir,
      proc,
      exited: false,
      ready: false,
      exit: new Promise((resolve) => {
        proc.once('exit', (code, signal) => resolve({ code, signal }));
        proc.once('error', () => resolve({ code: 1, signal: null }));
      }),
    };
    for (const stream of [proc.stdout, proc.stderr]) {
      if (stream === null) continue;
      createInterface({ input: stream, crlfDelay: Infinity }).on('line', (line) => io.err(`[replica ${r.id}] ${line}`));
    }
    proc.once('error', (err) => io.err(`pbft start: cannot start replica ${r.id}: ${err.message}`));
    void child.exit.then(({ code, signal }) => {
      child.exited = true;
      if (stopping) return;
      if (child.ready) io.err(exitReport(r.id, code, signal));
      if (children.every((c) => c.exited) && children.some((c) => c.ready)) {
        io.err('pbft start: every replica has exited');
        resolveDone(1);
      }
    });
    return child;
  });

  const stopAll = async (): Promise<void> => {
    stopping = true;
    for (const c of children) if (!c.exited) c.proc.kill('SIGTERM');
    const killer = setTimeout(() => {
      for (const c of children) {
        if (!c.exited) {
          io.err(`pbft start: replica ${c.id} did not stop within ${STOP_GRACE_MS / 1000} s; killing it`);
          c.proc.kill('SIGKILL');
        }
      }
    }, STOP_GRACE_MS);
    await Promise.all(children.map((c) => c.exit));
    clearTimeout(killer);
  };

  let signalled = false;
  const stopFor = (why: string): void => {
    if (signalled) return;
    signalled = true;
    io.err(`pbft start: ${why}; stopping ${children.filter((c) => !c.exited).length} replicas`);
    void stopAll().then(() => {
      io.err('pbft start: stopped');
      resolveDone(0);
    });
  };
  const onSignal = (signal: NodeJS.Signals): void => stopFor(`${signal} received`);
  for (const signal of STOP_SIGNALS) process.on(signal, onSignal);
  if (process.env.npm_lifecycle_event !== undefined) {
    const parent = process.ppid;
    // npm runs scripts with `sh -c`: then npm is the shell's parent (dash forks rather than execs).
    const npm = isShellC(parent) ? parentOf(parent) : undefined;
    const watch = setInterval(() => {
      const gone = process.ppid !== parent ? parent : npm !== undefined && npm > 1 && parentOf(parent) !== npm ? npm : undefined;
      if (gone !== undefined) {
        clearInterval(watch);
        stopFor(`the npm process that started it (pid ${gone}) is gone`);
      }
    }, PARENT_CHECK_MS);
    watch.unref();
    void done.then(() => clearInterval(watch));
  }

  // Wait until every replica answers /status (or has exited).
  const deadline = Date.now() + READY_TIMEOUT_MS;
  await Promise.all(
    children.map(async (c) => {
      while (!c.exited && !signalled && Date.now() < deadline) {
        if (await answersStatus(c.url)) {
          c.ready = true;
          return;
        }
        await sleep(100);
      }
    }),
  );
  if (signalled) return done;
  const ready = children.filter((c) => c.ready);
  if (ready.length === 0) {
    await stopAll();
    throw new CliError('no replica could start (see the [replica i] lines above)');
  }
  for (const c of children) {
    if (!c.ready && !c.exited) io.err(`pbft start: replica ${c.id} did not answer /status within ${READY_TIMEOUT_MS / 1000} s; it keeps running`);
    else if (c.exited && !c.ready) io.err(`pbft start: replica ${c.id} could not start; the others keep running`);
  }
  const keysFlag = flags.keys === 'keys' ? '' : ` --keys ${flags.keys}`;
  const lines = [
    `pbft start: cluster ${cluster.clusterId} is ready: ${ready.length} of ${children.length} replicas running (${cluster.faultModel ?? 'byzantine'} faults, f = ${cluster.f})`,
    ...children.map(
      (c) => `  replica ${c.id}  ${c.url}  ${c.ready ? `status ${httpBaseOf(c.url)}/status  pid ${c.proc.pid}` : 'NOT RUNNING'}  data ${c.dataDir}`,
    ),
    malloc.allocator === 'jemalloc'
      ? `  malloc: jemalloc (${malloc.path}, preloaded)`
      : `  malloc: the system's${flags.malloc === 'system' ? '' : ` (${JEMALLOC_MISSING_HINT})`}`,
    'Try:',
    `  npx pbft client${keysFlag} put a 1`,
    `  npx pbft client${keysFlag} get a`,
    `  npx pbft status${keysFlag}`,
    `  curl ${httpBaseOf(children[0]!.url)}/metrics`,
    `Press Ctrl-C to stop the cluster (or send SIGTERM to pbft start, pid ${process.pid}).`,
  ];
  io.out(lines.join('\n'));
  return done;
}
