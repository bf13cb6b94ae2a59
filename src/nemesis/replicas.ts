/**
 * The replica processes of a nemesis run: real `pbft replica` processes (bin/pbft.mjs), each in its
 * own network namespace (or on its own loopback address), each with a keys directory that holds
 * only cluster.json and its own private key, and its own RocksDB data directory.
 *
 * kill (SIGKILL, and the process is checked gone), restart, pause (SIGSTOP) / resume (SIGCONT),
 * wipe (kill, delete the data directory, restart). The process spawned is the replica itself:
 * `ip netns exec` execs it, node runs bin/pbft.mjs in-process (no wrapper left running).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, createWriteStream, mkdirSync, rmSync, writeFileSync, type WriteStream } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ClusterConfig } from '../core/cluster.ts';
import { generateKeyring, keyFileName, CLUSTER_FILE } from '../crypto/keyring.ts';
import type { NodeStatus } from '../node/replica-node.ts';

export const LAUNCHER = fileURLToPath(new URL('../../bin/pbft.mjs', import.meta.url));
/**
 * The integration tests' replica fixture (runReplicaProcess plus test-only faults): used only for
 * the lying replica of `--liar` / `--negative first-reply`; the production CLI cannot lie.
 */
export const FIXTURE = fileURLToPath(new URL('../../test/integration/fixtures/replica.ts', import.meta.url));

export type ReplicaState = 'running' | 'killed' | 'paused';

interface Proc {
  child: ChildProcess;
  exit: Promise<void>;
  log: WriteStream;
}

export class ReplicaSet {
  readonly cluster: ClusterConfig;
  readonly keysDir: string;
  private readonly procs: (Proc | undefined)[] = [];
  readonly state: ReplicaState[];

  constructor(
    readonly dir: string,
    readonly urls: string[],
    readonly clients: number,
    /** Command prefix that puts replica i on its host (e.g. `ip netns exec ns-i`); [] for none. */
    private readonly prefix: (i: number) => string[],
    /** A replica that signs a forged result in every reply (a byzantine replica with its real key). */
    readonly liar?: number,
  ) {
    this.keysDir = join(dir, 'keys');
    this.cluster = generateKeyring({ out: this.keysDir, clients, replicaUrls: urls, clusterId: `nemesis-${Date.now().toString(36)}` }).cluster;
    for (let i = 0; i < urls.length; i++) {
      const own = join(dir, `replica-${i}`, 'keys');
      mkdirSync(own, { recursive: true, mode: 0o700 });
      for (const f of [CLUSTER_FILE, keyFileName('replica', i)]) copyFileSync(join(this.keysDir, f), join(own, f));
    }
    this.state = urls.map(() => 'killed' as ReplicaState);
  }

  get n(): number {
    return this.urls.length;
  }

  dataDir(i: number): string {
    return join(this.dir, `replica-${i}`, 'data');
  }

  logPath(i: number): string {
    return join(this.dir, `replica-${i}`, 'replica.log');
  }

  start(i: number): void {
    if (this.procs[i]) return;
    const keys = join(this.dir, `replica-${i}`, 'keys');
    let argv = [...this.prefix(i), process.execPath, LAUNCHER, 'replica', '--id', String(i), '--keys', keys, '--data', this.dataDir(i), '--log-format', 'json', '--log-level', 'info'];
    let env = process.env;
    if (i === this.liar) {
      const faultFile = join(this.dir, `replica-${i}`, 'fault.json');
      writeFileSync(faultFile, JSON.stringify({ mode: 'wrong-result', tag: 'nemesis liar' }));
      argv = [...this.prefix(i), process.execPath, '--import', 'tsx', FIXTURE, '--keys', keys, '--id', String(i), '--data', this.dataDir(i)];
      env = { ...process.env, PBFT_TEST_NODE: JSON.stringify({ faultFile, logLevel: 'info' }) };
    }
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], env, cwd: fileURLToPath(new URL('../..', import.meta.url)) });
    const log = createWriteStream(this.logPath(i), { flags: 'a' });
    child.stdout?.pipe(log, { end: false });
    child.stderr?.pipe(log, { end: false });
    const exit = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    this.procs[i] = { child, exit, log };
    this.state[i] = 'running';
  }

  /** SIGKILL, and wait until the process is gone (checked with signal 0). */
  async kill(i: number): Promise<void> {
    const p = this.procs[i];
    if (!p) return;
    if (this.state[i] === 'paused') p.child.kill('SIGCONT');
    p.child.kill('SIGKILL');
    await p.exit;
    const pid = p.child.pid!;
    try {
      process.kill(pid, 0);
      throw new Error(`replica ${i} (pid ${pid}) is still running after SIGKILL`);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
    }
    p.log.end();
    this.procs[i] = undefined;
    this.state[i] = 'killed';
  }

  pause(i: number): void {
    const p = this.procs[i];
    if (!p || this.state[i] !== 'running') return;
    p.child.kill('SIGSTOP');
    this.state[i] = 'paused';
  }

  resume(i: number): void {
    const p = this.procs[i];
    if (!p || this.state[i] !== 'paused') return;
    p.child.kill('SIGCONT');
    this.state[i] = 'running';
  }

  /** Kills it and deletes its data directory (it restarts empty, and catches up by state transfer). */
  async wipe(i: number): Promise<void> {
    await this.kill(i);
    rmSync(this.dataDir(i), { recursive: true, force: true });
  }

  /** Exited on its own (not by our kill): a crash of the replica. */
  exitedOnItsOwn(i: number): boolean {
    const p = this.procs[i];
    return p !== undefined && p.child.exitCode !== null && p.child.signalCode === null;
  }

  async status(i: number, timeoutMs = 1_000): Promise<NodeStatus | undefined> {
    if (this.state[i] !== 'running') return undefined;
    try {
      const res = await fetch(this.urls[i]!.replace(/^ws:/, 'http:') + '/status', { signal: AbortSignal.timeout(timeoutMs) });
      return res.ok ? ((await res.json()) as NodeStatus) : undefined;
    } catch {
      return undefined;
    }
  }

  async statuses(timeoutMs = 1_000): Promise<(NodeStatus | undefined)[]> {
    return Promise.all(this.urls.map((_, i) => this.status(i, timeoutMs)));
  }

  /** Kills every process (resuming paused ones first). */
  async destroy(): Promise<void> {
    await Promise.all(this.urls.map((_, i) => this.kill(i).catch(() => undefined)));
  }

  /** Synchronous last resort (process exit handlers): SIGKILL whatever still runs. */
  killAllNow(): void {
    for (const p of this.procs) {
      try {
        p?.child.kill('SIGCONT');
        p?.child.kill('SIGKILL');
      } catch {
        // gone
      }
    }
  }
}
