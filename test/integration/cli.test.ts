/**
 * The `pbft` command line, run as a user would (node bin/pbft.mjs in a temporary directory):
 * keygen, start (a real 4-replica cluster), client put/get, status, SIGTERM; and the failures
 * that must be one line on stderr with a non-zero exit status: bad flags, a missing or malformed
 * keyring, a port in use, a data directory that cannot be opened.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { alive, freeConsecutivePorts, LAUNCHER, track, waitFor } from './helpers.ts';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

let dir: string;
let basePort: number;
let cluster: ChildProcess | undefined;
const replicaPids: number[] = [];

/** Runs `pbft ...args` in the temporary directory. */
function pbft(args: string[], timeoutMs = 60_000): Promise<Run> {
  return new Promise((resolve, reject) => {
    const proc = track(spawn(process.execPath, [LAUNCHER, ...args], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] }));
    let stdout = '';
    let stderr = '';
    proc.stdout?.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
    proc.stderr?.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
    const guard = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`pbft ${args.join(' ')} did not finish within ${timeoutMs} ms; stderr: ${stderr}`));
    }, timeoutMs);
    proc.once('exit', (code) => {
      clearTimeout(guard);
      resolve({ code, stdout, stderr });
    });
  });
}

/** The failure contract: exit status non-zero, exactly one line on stderr, no stack trace. */
function assertOneLineError(run: Run, pattern: RegExp, what: string): void {
  assert.notEqual(run.code, 0, `${what}: exit status`);
  const lines = run.stderr.split('\n').filter((l) => l.trim() !== '');
  assert.equal(lines.length, 1, `${what}: one line on stderr, got:\n${run.stderr}`);
  assert.doesNotMatch(run.stderr, /^\s+at /m, `${what}: no stack trace`);
  assert.match(lines[0]!, pattern, what);
}

function listen(port: number): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(port, '127.0.0.1', () => resolve(s));
  });
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'pbft-cli-'));
  basePort = await freeConsecutivePorts(4);
});

after(async () => {
  if (cluster !== undefined && cluster.exitCode === null) {
    cluster.kill('SIGKILL');
  }
  for (const pid of replicaPids) {
    if (alive(pid)) process.kill(pid, 'SIGKILL');
  }
  rmSync(dir, { recursive: true, force: true });
});

test('pbft keygen writes a keyring', async () => {
  const run = await pbft(['keygen', '--out', 'keys', '--base-port', String(basePort)]);
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stdout, /wrote keyring to keys/);
  for (const file of ['cluster.json', 'replica-0.key', 'replica-3.key', 'client-0.key']) assert.ok(existsSync(join(dir, 'keys', file)), file);
});

test('pbft start runs a cluster that the client and status commands reach; SIGTERM stops everything', async () => {
  const proc = track(spawn(process.execPath, [LAUNCHER, 'start'], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] }));
  cluster = proc;
  let stdout = '';
  let stderr = '';
  proc.stdout?.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
  proc.stderr?.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  await waitFor(() => {
    if (proc.exitCode !== null) throw new Error(`pbft start exited with ${proc.exitCode}: ${stderr}`);
    return /is ready: 4 of 4 replicas running/.test(stdout);
  }, 'pbft start to print its ready line');
  assert.match(stdout, /npx pbft client put a 1/);
  assert.match(stderr, /^\[replica 0\] /m, 'replica log lines are prefixed');

  const put = await pbft(['client', 'put', 'a', '1']);
  assert.equal(put.code, 0, put.stderr);
  assert.equal(put.stdout.trim(), 'OK');
  const get = await pbft(['client', 'get', 'a']);
  assert.equal(get.code, 0, get.stderr);
  assert.equal(get.stdout.trim(), '1');
  const missing = await pbft(['client', '--client', '1', 'get', 'nothing-here']);
  assert.equal(missing.stdout.trim(), '(nil)');

  const status = await pbft(['status', '--json']);
  assert.equal(status.code, 0, status.stderr);
  const reports = JSON.parse(status.stdout) as Array<{ replica: number; reachable: boolean; pid?: number; lastExecuted?: number }>;
  assert.equal(reports.length, 4);
  for (const r of reports) {
    assert.equal(r.reachable, true, `replica ${r.replica} reachable`);
    assert.ok(typeof r.pid === 'number');
    replicaPids.push(r.pid!);
  }
  const table = await pbft(['status']);
  assert.equal(table.code, 0);
  assert.match(table.stdout, /4 of 4 replicas reachable/);

  proc.kill('SIGTERM');
  assert.equal(await exited, 0, `pbft start exit status; stderr:\n${stderr.slice(-2000)}`);
  for (const pid of replicaPids) assert.equal(alive(pid), false, `replica process ${pid} is gone`);

  // With the cluster down, status shows the replicas as unreachable and exits 2 (fewer than 2f+1).
  const down = await pbft(['status', '--json']);
  assert.equal(down.code, 2);
  assert.match(down.stderr, /0 of 4 replicas of cluster \S+ reachable, fewer than a quorum/);
  assert.ok((JSON.parse(down.stdout) as Array<{ reachable: boolean }>).every((r) => !r.reachable));
  // A client call that gets no answer: two of the four replicas run (the client connects to f+1 = 2,
  // but ordering needs 2f+1 = 3), so the deadline passes. One line, which also names a shared client
  // id as a possible cause.
  const two = [0, 1].map((id) => track(spawn(process.execPath, [LAUNCHER, 'replica', '--id', String(id)], { cwd: dir, stdio: ['ignore', 'ignore', 'ignore'] })));
  try {
    await waitFor(async () => /2 of 4 replicas/.test((await pbft(['status'])).stderr), 'replicas 0 and 1 to answer /status');
    assertOneLineError(
      await pbft(['client', '--client', '0', '--timeout', '1000', 'put', 'a', 'b']),
      /timed out after 1000 ms .*if another process runs as client 0 at the same time, give each its own --client/,
      'client timeout',
    );
  } finally {
    for (const p of two) p.kill('SIGTERM');
    await Promise.all(two.map((p) => (p.exitCode !== null ? Promise.resolve() : new Promise((resolve) => p.once('exit', resolve)))));
  }
  for (const p of two) assert.equal(alive(p.pid!), false, `replica process ${p.pid} is gone`);
});

test('bad flags and unknown commands: one line, non-zero exit', async () => {
  assertOneLineError(await pbft(['replica', '--id', '0', '--bogus']), /unknown option '--bogus'/, 'unknown option');
  assertOneLineError(await pbft(['replica', '--id', 'zero']), /--id.*invalid/, 'bad --id');
  assertOneLineError(await pbft(['start', '--replicas', 'four']), /--replicas.*invalid/, 'bad --replicas');
  assertOneLineError(await pbft(['client', 'put', 'only-a-key']), /missing required argument 'value'/, 'missing argument');
  assertOneLineError(await pbft(['status', '--keys', 'keys', 'extra']), /too many arguments|unknown command/, 'excess argument');
  assertOneLineError(await pbft(['frobnicate']), /unknown command 'frobnicate'/, 'unknown command');
  assertOneLineError(await pbft(['start', '--replicas', '7']), /has 4 replicas but --replicas 7/, 'replica count differs from the keyring');
});

test('a missing or malformed keyring: one line, non-zero exit', async () => {
  assertOneLineError(await pbft(['replica', '--id', '0', '--keys', 'nowhere']), /nowhere\/cluster\.json not found/, 'replica');
  assertOneLineError(await pbft(['client', '--keys', 'nowhere', 'get', 'a']), /nowhere\/cluster\.json not found/, 'client');
  assertOneLineError(await pbft(['status', '--keys', 'nowhere']), /nowhere\/cluster\.json not found/, 'status');
  mkdirSync(join(dir, 'broken'));
  writeFileSync(join(dir, 'broken', 'cluster.json'), '{ "version": 1, ');
  assertOneLineError(await pbft(['status', '--keys', 'broken']), /broken\/cluster\.json: invalid JSON/, 'malformed cluster.json');
  assertOneLineError(await pbft(['start', '--keys', 'broken']), /broken\/cluster\.json: invalid JSON/, 'start with a malformed cluster.json');
});

test('a port in use: one line, non-zero exit (replica and start)', async () => {
  const blocker = await listen(basePort);
  try {
    assertOneLineError(await pbft(['replica', '--id', '0', '--data', 'data-port-test']), new RegExp(`port ${basePort} on 127.0.0.1 is already in use`), 'replica');
    // start: a keyring is generated (stdout says so), then the port check fails before any replica starts.
    const other = await freeConsecutivePorts(4);
    const blocker2 = await listen(other + 2);
    try {
      const run = await pbft(['start', '--keys', 'keys-generated', '--data', 'data-generated', '--base-port', String(other)]);
      assertOneLineError(run, new RegExp(`port ${other + 2} on 127.0.0.1 \\(replica 2\\) is already in use`), 'start');
      assert.match(run.stdout, /generated a development keyring in keys-generated/);
      assert.ok(existsSync(join(dir, 'keys-generated', 'cluster.json')));
    } finally {
      blocker2.close();
    }
  } finally {
    blocker.close();
  }
});

test('a data directory that cannot be opened: one line, non-zero exit', async () => {
  writeFileSync(join(dir, 'not-a-directory'), 'a file where the database should be\n');
  assertOneLineError(await pbft(['replica', '--id', '1', '--data', 'not-a-directory']), /cannot open data directory not-a-directory/, 'data path is a file');
});
