/**
 * The crash-fault mode as an operator meets it, on real processes (127.0.0.1): `pbft keygen
 * --fault-model crash --replicas 3` through the real CLI, `pbft start` with that keyring (as `npm
 * start` runs it: no --replicas, the count comes from the keyring), put and get through the SDK,
 * then the primary is killed with SIGKILL (the process is checked gone) and the two replicas left,
 * a majority, elect a new primary and keep answering; `pbft status` shows the model and f and still
 * counts a quorum. (The swarm, test/sim/swarm-crash.test.ts, covers the protocol under many more
 * crashes and partitions.)
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PbftClient } from '../../src/client/client.ts';
import { alive, freeConsecutivePorts, LAUNCHER, REPO_ROOT, track, waitFor, WAIT_MS } from './helpers.ts';

let dir: string;
const pids: number[] = [];
const clients: PbftClient[] = [];

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'pbft-crashmode-'));
});

after(async () => {
  await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
  for (const pid of pids) if (running(pid)) process.kill(pid, 'SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

/** True while the process exists and has not exited (a zombie waiting to be reaped has exited). */
function running(pid: number): boolean {
  if (!alive(pid)) return false;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return alive(pid);
  }
}

function pbft(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [LAUNCHER, ...args], { cwd: REPO_ROOT, encoding: 'utf8', timeout: WAIT_MS });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('keygen --fault-model crash refuses counts that are not 2f+1, with one line', () => {
  for (const [replicas, why] of [
    ['2', /--replicas must be 2f\+1 .*got 2 \(fewer than 3 replicas cannot survive one crash\)/],
    ['4', /--replicas must be 2f\+1 .*got 4 \(4 replicas tolerate no more crashes than 3 and need one more vote\)/],
  ] as const) {
    const r = pbft(['keygen', '--fault-model', 'crash', '--replicas', replicas, '--out', join(dir, `bad-${replicas}`)]);
    assert.equal(r.code, 1);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, why);
  }
  const r = pbft(['keygen', '--fault-model', 'paxos', '--out', join(dir, 'bad-model')]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^keygen: --fault-model must be "byzantine" \(n = 3f\+1\) or "crash" \(n = 2f\+1\); got "paxos"/);
});

test('a 3-replica crash-mode cluster started with pbft start keeps answering after its primary is SIGKILLed', async () => {
  const base = await freeConsecutivePorts(3);
  const keys = join(dir, 'keys');
  const gen = pbft(['keygen', '--fault-model', 'crash', '--replicas', '3', '--clients', '2', '--out', keys, '--base-port', String(base)]);
  assert.equal(gen.code, 0, gen.stderr);
  assert.match(gen.stdout, /crash faults: f = 1 \(n = 2f\+1, quorum f\+1 = 2\), 3 replicas/);
  const clusterJson = JSON.parse(readFileSync(join(keys, 'cluster.json'), 'utf8')) as { f: number; faultModel?: string; replicas: unknown[] };
  assert.deepEqual([clusterJson.f, clusterJson.faultModel, clusterJson.replicas.length], [1, 'crash', 3]);

  // pbft start as `npm start` runs it (package.json: no --replicas), with this keyring.
  const proc: ChildProcess = track(spawn(process.execPath, [LAUNCHER, 'start', '--keys', keys, '--data', join(dir, 'data')], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] }));
  let stdout = '';
  let stderr = '';
  proc.stdout?.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
  proc.stderr?.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
  await waitFor(() => {
    if (proc.exitCode !== null) throw new Error(`pbft start exited with ${proc.exitCode}: ${stderr}`);
    return /send SIGTERM to pbft start, pid \d+/.test(stdout);
  }, 'pbft start to print its ready lines');
  assert.match(stdout, /is ready: 3 of 3 replicas running \(crash faults, f = 1\)/);
  const startPid = Number(/pbft start, pid (\d+)/.exec(stdout)![1]);
  const replicaPids = new Map([...stdout.matchAll(/^ {2}replica (\d+) .* pid (\d+) /gm)].map((m) => [Number(m[1]), Number(m[2])]));
  assert.equal(replicaPids.size, 3, stdout);
  pids.push(startPid, ...replicaPids.values());

  const client = await PbftClient.connect({ cluster: join(keys, 'cluster.json'), key: join(keys, 'client-0.key'), timeoutMs: WAIT_MS });
  clients.push(client);
  await client.put('a', '1');
  assert.equal(await client.get('a'), '1');

  const status = pbft(['status', '--keys', keys]);
  assert.equal(status.code, 0, status.stderr);
  assert.match(status.stdout, /3 of 3 replicas reachable \(crash faults, f = 1, quorum 2\)/);

  // Kill the primary of the current view: the other two are a majority and must elect a new one.
  const statuses = (JSON.parse(pbft(['status', '--keys', keys, '--json']).stdout) as Array<{ replica: number; view?: number; primary?: number; pid?: number }>);
  const primary = statuses[0]!.primary!;
  assert.ok(statuses.every((s) => s.primary === primary), JSON.stringify(statuses));
  const victim = replicaPids.get(primary)!;
  assert.equal(statuses.find((s) => s.replica === primary)?.pid, victim);
  process.kill(victim, 'SIGKILL');
  await waitFor(() => !running(victim), `replica ${primary} (pid ${victim}) to be gone`);
  await waitFor(() => new RegExp(`replica ${primary} exited unexpectedly \\(killed by signal SIGKILL\\)`).test(stderr), 'pbft start to report the kill');

  for (let i = 0; i < 5; i++) await client.put(`k${i}`, `v${i}`);
  assert.equal(await client.get('a'), '1');
  assert.equal(await client.get('k4'), 'v4');
  assert.ok(!running(victim), 'the killed replica stayed dead');

  const after = pbft(['status', '--keys', keys, '--json']);
  assert.equal(after.code, 0, `2 of 3 is a crash-mode quorum: ${after.stderr}`);
  const left = (JSON.parse(after.stdout) as Array<{ replica: number; reachable: boolean; view?: number; primary?: number; lastExecuted?: number }>).filter((s) => s.reachable);
  assert.deepEqual(left.map((s) => s.replica).sort(), [0, 1, 2].filter((r) => r !== primary));
  for (const s of left) {
    assert.ok((s.view ?? 0) > 0 && s.primary !== primary, `replica ${s.replica} moved to a view with a live primary: ${JSON.stringify(s)}`);
    assert.ok((s.lastExecuted ?? 0) >= 6, `replica ${s.replica} executed the puts: ${JSON.stringify(s)}`);
  }

  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  process.kill(startPid, 'SIGTERM');
  assert.equal(await exited, 0, stderr.slice(-2000));
  for (const pid of replicaPids.values()) await waitFor(() => !running(pid), `replica process ${pid} to be gone`, 30_000);

  // pbft start refuses flags that contradict the keyring: one line, exit 1, nothing started.
  const wrongModel = pbft(['start', '--keys', keys, '--data', join(dir, 'data'), '--fault-model', 'byzantine']);
  assert.equal(wrongModel.code, 1);
  assert.match(wrongModel.stderr, /^pbft start: \S+cluster\.json is a crash-fault keyring but --fault-model byzantine was given/);
  const wrongCount = pbft(['start', '--keys', keys, '--data', join(dir, 'data'), '--replicas', '4']);
  assert.equal(wrongCount.code, 1);
  assert.match(wrongCount.stderr, /has 3 replicas but --replicas 4 was given/);
});
