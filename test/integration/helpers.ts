/**
 * Integration test helpers: a keyring in a fresh temporary directory with free ports on 127.0.0.1,
 * real replica processes (test/integration/fixtures/replica.ts, i.e. runReplicaProcess), their
 * /status, and clients. Every process started here is killed by `destroy()` and, as a last
 * resort, when the test process exits.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PbftClient, type PbftClientOptions } from '../../src/client/client.ts';
import type { ClusterConfig } from '../../src/core/cluster.ts';
import { generateKeyring, serializeCluster, writeFileAtomic, CLUSTER_FILE, keyFileName } from '../../src/crypto/keyring.ts';
import type { NodeStatus } from '../../src/node/replica-node.ts';
import type { FaultMode, FixtureConfig } from './fixtures/faults.ts';
import { freeConsecutivePorts, freePorts } from '../../src/transport/free-ports.ts';

export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const FIXTURE = fileURLToPath(new URL('./fixtures/replica.ts', import.meta.url));
export const LAUNCHER = join(REPO_ROOT, 'bin', 'pbft.mjs');

/** Guard for anything asynchronous (never a timing assertion): the 2-core machine may be busy. */
export const WAIT_MS = 60_000;

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** True while a process with this pid exists (signal 0 checks without sending anything). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export async function waitFor<T>(probe: () => Promise<T | undefined | false> | T | undefined | false, what: string, timeoutMs = WAIT_MS): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
}

/** A base port p such that p..p+count-1 are claimed for this test process (src/transport/free-ports.ts). */
export { freeConsecutivePorts };

const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const p of live) {
    try {
      p.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
});

/** Tracks a child process so that it is killed when the test process exits. */
export function track(proc: ChildProcess): ChildProcess {
  live.add(proc);
  proc.once('exit', () => live.delete(proc));
  return proc;
}

export interface ReplicaProc {
  proc: ChildProcess;
  output: string[];
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export interface TestClusterOptions {
  name: string;
  /** Fixture configuration of each replica (executedLog and faultFile paths are filled in). */
  node?: Omit<FixtureConfig, 'executedLog' | 'faultFile'>;
  executedLog?: boolean;
  faults?: boolean;
  clients?: number;
  /**
   * The replica program (default: the fixture, FIXTURE): run as `node --import tsx <script> --keys
   * DIR --id N --data DIR ...args`, e.g. an example's replica with its own state machine.
   */
  entry?: { script: string; args?: string[] };
}

export class TestCluster {
  readonly procs: (ReplicaProc | undefined)[] = [];
  /** Output of every run of each replica (restarts included), the last 2,000 lines. */
  private readonly history: string[][] = [];
  private readonly clients: PbftClient[] = [];

  private constructor(
    readonly dir: string,
    readonly keysDir: string,
    readonly cluster: ClusterConfig,
    readonly ports: number[],
    private readonly options: TestClusterOptions,
  ) {}

  /** Generates a keyring for 4 replicas in a temporary directory, with free ports. */
  static async create(options: TestClusterOptions): Promise<TestCluster> {
    const dir = mkdtempSync(join(tmpdir(), `pbft-${options.name}-`));
    const keysDir = join(dir, 'keys');
    const ports = await freePorts(4);
    const { cluster } = generateKeyring({ replicas: 4, clients: options.clients ?? 4, out: keysDir, clusterId: `test-${options.name}` });
    const withPorts: ClusterConfig = { ...cluster, replicas: cluster.replicas.map((r, i) => ({ ...r, url: `ws://127.0.0.1:${ports[i]}` })) };
    writeFileAtomic(join(keysDir, CLUSTER_FILE), serializeCluster(withPorts), 0o644);
    return new TestCluster(dir, keysDir, withPorts, ports, options);
  }

  dataDir(id: number): string {
    return join(this.dir, `data-${id}`);
  }

  executedLogPath(id: number): string {
    return join(this.dir, `executed-${id}.jsonl`);
  }

  faultPath(id: number): string {
    return join(this.dir, `fault-${id}.json`);
  }

  /** Atomically (write, then rename): a replica polling the file never reads half of it. */
  setFault(id: number, fault: FaultMode): void {
    writeFileAtomic(this.faultPath(id), JSON.stringify(fault), 0o644);
  }

  /** Spawns replica `id` (same data directory across restarts) and waits until /status answers. */
  async start(id: number): Promise<void> {
    const config: FixtureConfig = {
      ...this.options.node,
      ...(this.options.executedLog === true ? { executedLog: this.executedLogPath(id) } : {}),
      ...(this.options.faults === true ? { faultFile: this.faultPath(id) } : {}),
    };
    const proc = track(
      spawn(process.execPath, ['--import', 'tsx', this.options.entry?.script ?? FIXTURE, '--keys', this.keysDir, '--id', String(id), '--data', this.dataDir(id), ...(this.options.entry?.args ?? [])], {
        cwd: REPO_ROOT,
        env: { ...process.env, PBFT_TEST_NODE: JSON.stringify(config) },
        stdio: ['ignore', 'pipe', 'pipe'],
      }),
    );
    const output: string[] = [];
    const history = (this.history[id] ??= []);
    history.push(`--- started (pid ${proc.pid}) ---`);
    const collect = (chunk: Buffer): void => {
      const lines = chunk.toString('utf8').split('\n').filter((l) => l !== '');
      output.push(...lines);
      if (output.length > 500) output.splice(0, output.length - 500);
      history.push(...lines);
      if (history.length > 2_000) history.splice(0, history.length - 2_000);
    };
    proc.stdout?.on('data', collect);
    proc.stderr?.on('data', collect);
    const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
      proc.once('exit', (code, signal) => resolve({ code, signal }));
    });
    const rp: ReplicaProc = { proc, output, exit };
    this.procs[id] = rp;
    let exited = false;
    void exit.then(() => {
      exited = true;
    });
    try {
      await waitFor(async () => {
        if (exited) throw new Error(`replica ${id} exited during startup:\n${output.join('\n')}`);
        return (await this.tryStatus(id)) !== undefined;
      }, `replica ${id} to answer /status`);
    } catch (err) {
      if (exited) throw err;
      // Still running but not answering: what it printed says how far its start got.
      throw new Error(`${(err as Error).message} (pid ${proc.pid} still running); its output:\n${output.slice(-40).join('\n') || '(none)'}`, { cause: err });
    }
  }

  /** Starts every replica and waits until each has connections to all the others. */
  async startAll(): Promise<void> {
    await Promise.all(this.cluster.replicas.map((r) => this.start(r.id)));
    await waitFor(async () => {
      const all = await Promise.all(this.cluster.replicas.map((r) => this.tryStatus(r.id)));
      return all.every((s) => s !== undefined && s.transport.replicasConnected.length === 3);
    }, 'every replica to connect to every other');
  }

  async tryStatus(id: number): Promise<NodeStatus | undefined> {
    try {
      const res = await fetch(`http://127.0.0.1:${this.ports[id]}/status`, { signal: AbortSignal.timeout(2_000) });
      if (!res.ok) return undefined;
      return (await res.json()) as NodeStatus;
    } catch {
      return undefined;
    }
  }

  async status(id: number): Promise<NodeStatus> {
    return waitFor(() => this.tryStatus(id), `status of replica ${id}`);
  }

  async metrics(id: number): Promise<string> {
    const res = await fetch(`http://127.0.0.1:${this.ports[id]}/metrics`, { signal: AbortSignal.timeout(5_000) });
    return res.text();
  }

  /** Sends a signal and waits for the process to exit. */
  async stop(id: number, signal: NodeJS.Signals = 'SIGTERM'): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    const rp = this.procs[id];
    if (rp === undefined) throw new Error(`replica ${id} was not started`);
    rp.proc.kill(signal);
    const result = await rp.exit;
    this.procs[id] = undefined;
    return result;
  }

  async client(clientId: number, options: Partial<PbftClientOptions> = {}): Promise<PbftClient> {
    const c = await PbftClient.connect({
      cluster: join(this.keysDir, CLUSTER_FILE),
      key: join(this.keysDir, keyFileName('client', clientId)),
      ...options,
    });
    this.clients.push(c);
    return c;
  }

  /** Output of replica `id` (for failure messages). */
  output(id: number): string {
    return this.procs[id]?.output.join('\n') ?? '(not running)';
  }

  /** Output of every run of replica `id`, restarts included (the last 2,000 lines). */
  allOutput(id: number): string {
    return (this.history[id] ?? []).join('\n');
  }

  readExecutedLog(id: number): ExecutedRecord[] {
    let text = '';
    try {
      text = readFileSync(this.executedLogPath(id), 'utf8');
    } catch {
      return [];
    }
    return text
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as ExecutedRecord);
  }

  /** Closes the clients, kills every replica, removes the directory. */
  async destroy(): Promise<void> {
    await Promise.all(this.clients.map((c) => c.close().catch(() => undefined)));
    await Promise.all(
      this.procs.map(async (rp) => {
        if (rp === undefined) return;
        rp.proc.kill('SIGKILL');
        await rp.exit;
      }),
    );
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export interface ExecutedRecord {
  seq: number;
  view: number;
  requests: Array<{ client: number; timestamp: number; op: string; result: string }>;
}

export const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

/** A small seeded PRNG (mulberry32) so that a failing run can be repeated. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
