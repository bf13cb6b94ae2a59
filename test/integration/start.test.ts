/**
 * `pbft start` as an operator meets it, on real processes (127.0.0.1):
 *   - SIGTERM to `npm start` (npm forwards it to the shell that runs the script, which dies without
 *     passing it on) and SIGHUP to it (npm dies, the shell stays) stop pbft start and every
 *     replica: each pid is gone
 *   - a replica stopped cleanly by someone else (SIGTERM, exit 0) is reported as stopped cleanly, one
 *     killed with SIGKILL as exited unexpectedly; SIGHUP to pbft start stops the rest
 *   - --base-port or --clients that an existing keyring contradicts: one line, exit 1, nothing started
 *   - --malloc: by default the replicas run on jemalloc where it is installed (their memory maps
 *     show it), on the system's malloc under --malloc system; an unknown allocator is refused
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { alive, freeConsecutivePorts, LAUNCHER, REPO_ROOT, track, waitFor } from './helpers.ts';
import { findJemalloc, mallocInUse } from '../../src/node/malloc.ts';

let dir: string;
const pids: number[] = [];

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'pbft-start-'));
});

after(() => {
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

interface Started {
  proc: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  startPid: number;
  replicaPids: number[];
}

/** Spawns `command args` in `cwd` and waits for pbft start's ready lines. */
async function startCluster(command: string, args: string[], cwd: string): Promise<Started> {
  const proc = track(spawn(command, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] }));
  let stdout = '';
  let stderr = '';
  proc.stdout?.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
  proc.stderr?.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
  await waitFor(() => {
    if (proc.exitCode !== null) throw new Error(`${command} exited with ${proc.exitCode}: ${stderr}`);
    return /send SIGTERM to pbft start, pid \d+/.test(stdout);
  }, 'pbft start to print its ready lines');
  assert.match(stdout, /is ready: 4 of 4 replicas running/);
  const startPid = Number(/pbft start, pid (\d+)/.exec(stdout)![1]);
  const replicaPids = [...stdout.matchAll(/^ {2}replica \d+ .* pid (\d+) /gm)].map((m) => Number(m[1]));
  assert.equal(replicaPids.length, 4, stdout);
  pids.push(startPid, ...replicaPids);
  return { proc, stdout: () => stdout, stderr: () => stderr, startPid, replicaPids };
}

for (const signal of ['SIGTERM', 'SIGHUP'] as const) {
  test(`${signal} to \`npm start\` stops pbft start and every replica`, async () => {
    const base = await freeConsecutivePorts(4);
    const keys = join(dir, `npm-keys-${signal}`);
    // `npm start` exactly as in package.json, with the keyring and data in the temporary directory.
    const args = ['start', '--', '--keys', keys, '--data', join(dir, `npm-data-${signal}`), '--base-port', String(base)];
    const c = await startCluster('npm', args, REPO_ROOT);
    assert.ok(existsSync(join(keys, 'cluster.json')));
    // --malloc auto (the default): jemalloc where it is installed, and the replicas really run on it.
    const lib = findJemalloc();
    assert.match(c.stdout(), lib !== undefined ? new RegExp(`^ {2}malloc: jemalloc \\(${lib.replace(/\./g, '\\.')}, preloaded\\)$`, 'm') : /^ {2}malloc: the system's \(jemalloc is not installed/m);
    for (const pid of c.replicaPids) assert.equal(mallocInUse(pid), lib !== undefined ? 'jemalloc' : 'system', `replica process ${pid}`);
    const npmExited = new Promise<number | null>((resolve) => c.proc.once('exit', (code) => resolve(code)));
    c.proc.kill(signal);
    await npmExited;
    for (const pid of [c.startPid, ...c.replicaPids]) {
      await waitFor(() => !running(pid), `process ${pid} (pbft start or a replica) to be gone; stderr:\n${c.stderr().slice(-3000)}`, 30_000);
    }
    // Its last lines may still be in the pipe when the processes are gone: wait for them to be read.
    await waitFor(() => /pbft start: stopped/.test(c.stderr()), 'pbft start to print "pbft start: stopped" on its stderr', 10_000);
  });
}

test('a replica stopped by someone else is reported as such; SIGHUP stops pbft start and the rest', async () => {
  const base = await freeConsecutivePorts(4);
  const c = await startCluster(process.execPath, [LAUNCHER, 'start', '--keys', 'hup-keys', '--data', 'hup-data', '--base-port', String(base), '--malloc', 'system'], dir);
  assert.match(c.stdout(), /^ {2}malloc: the system's$/m);
  for (const pid of c.replicaPids) assert.equal(mallocInUse(pid), 'system', `replica process ${pid} under --malloc system`);
  const [r0, r1, r2, r3] = c.replicaPids as [number, number, number, number];
  process.kill(r1, 'SIGTERM');
  await waitFor(() => /replica 1 stopped cleanly \(exit status 0/.test(c.stderr()), 'the clean stop of replica 1 to be reported');
  assert.doesNotMatch(c.stderr(), /replica 1 exited unexpectedly/);
  process.kill(r2, 'SIGKILL');
  await waitFor(() => /replica 2 exited unexpectedly \(killed by signal SIGKILL\)/.test(c.stderr()), 'the crash of replica 2 to be reported');
  assert.ok(running(r0) && running(r3), 'the other replicas keep running');

  const exited = new Promise<number | null>((resolve) => c.proc.once('exit', (code) => resolve(code)));
  process.kill(c.startPid, 'SIGHUP');
  assert.equal(await exited, 0, c.stderr().slice(-2000));
  assert.match(c.stderr(), /SIGHUP received; stopping 2 replicas/);
  for (const pid of c.replicaPids) await waitFor(() => !running(pid), `replica process ${pid} to be gone`, 30_000);
});

test('--base-port or --clients contradicting an existing keyring, or an unknown --malloc: exit 1, nothing started', async () => {
  const run = (args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> =>
    new Promise((resolve) => {
      const proc = track(spawn(process.execPath, [LAUNCHER, 'start', '--keys', 'hup-keys', '--data', 'hup-data', ...args], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] }));
      let stdout = '';
      let stderr = '';
      proc.stdout?.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
      proc.stderr?.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
      proc.once('exit', (code) => resolve({ code, stdout, stderr }));
    });
  // hup-keys was generated by the previous test; its ports are taken by nothing now.
  const cluster = JSON.parse(readFileSync(join(dir, 'hup-keys', 'cluster.json'), 'utf8')) as { replicas: Array<{ url: string }> };
  const port0 = Number(new URL(cluster.replicas[0]!.url).port);
  const other = port0 === 65000 ? 64000 : 65000;
  let r = await run(['--base-port', String(other)]);
  assert.equal(r.code, 1);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.match(r.stderr, new RegExp(`^pbft start: hup-keys/cluster.json exists and puts the replicas at ports ${port0}, .*--base-port ${other} applies only to a generated keyring`));
  assert.equal(r.stdout, '');
  r = await run(['--clients', '9']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^pbft start: hup-keys\/cluster.json exists and has 4 clients: --clients 9 applies only to a generated keyring/);
  r = await run(['--malloc', 'tcmalloc']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /option '--malloc <allocator>' argument 'tcmalloc' is invalid\. Allowed choices are auto, jemalloc, system/);
});
