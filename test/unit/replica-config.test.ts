/**
 * `pbft replica` settings from flags, environment variables and a JSON config file (--config or
 * PBFT_CONFIG), with precedence flag > environment > file > default: parsed by the real program
 * with recording actions (test/deploy/cli-dry-run.ts); then one real replica process configured by
 * a file and the environment alone, which answers /status as that replica, is called healthy by the
 * container HEALTHCHECK script (deploy/healthcheck.mjs), and stops cleanly on SIGHUP.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ReplicaFlags } from '../../src/cli/replica.ts';
import { REPLICA_ENV, REPLICA_ENV_VARS } from '../../src/cli/replica.ts';
import { replicaEnv } from '../../src/cli/start.ts';
import { generateKeyring } from '../../src/crypto/keyring.ts';
import { freePorts } from '../../src/transport/free-ports.ts';
import { dryRun } from '../deploy/cli-dry-run.ts';
import { alive, LAUNCHER, REPO_ROOT, track, waitFor } from '../integration/helpers.ts';

let dir: string;

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'pbft-config-'));
});

after(() => {
  rmSync(dir, { recursive: true, force: true });
});

function writeConfig(name: string, value: unknown): string {
  const path = join(dir, name);
  writeFileSync(path, typeof value === 'string' ? value : JSON.stringify(value));
  return path;
}

/** Runs `fn` with these environment variables set (and every other PBFT_ setting unset). */
async function withEnv<T>(env: Record<string, string>, fn: () => Promise<T>): Promise<T> {
  const saved = new Map<string, string | undefined>();
  for (const k of REPLICA_ENV_VARS) {
    saved.set(k, process.env[k]);
    delete process.env[k];
  }
  for (const [k, v] of Object.entries(env)) process.env[k] = v;
  try {
    return await fn();
  } finally {
    for (const [k, v] of saved) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

async function replicaFlags(args: string[], env: Record<string, string> = {}): Promise<ReplicaFlags> {
  const run = await withEnv(env, () => dryRun(['replica', ...args]));
  assert.equal(run.command, 'replica');
  return run.flags as ReplicaFlags;
}

const FILE = {
  id: 2,
  keys: 'cluster-keys',
  data: '/var/lib/pbft',
  logLevel: 'warn',
  listen: '0.0.0.0:7005',
  batchRequestsMax: 64,
  verifyWorkers: 1,
  writeBufferMib: 16,
  heapGrowingPercent: 50,
  pipelineTurns: false,
};

test('a config file alone gives every setting; relative paths are relative to the file', async () => {
  const path = writeConfig('all.json', FILE);
  const f = await replicaFlags(['--config', path]);
  assert.equal(f.id, 2);
  assert.equal(f.keys, join(dir, 'cluster-keys'));
  assert.equal(f.data, '/var/lib/pbft');
  assert.equal(f.logLevel, 'warn');
  assert.equal(f.logFormat, 'json', 'not in the file: the default');
  assert.deepEqual(f.listen, { host: '0.0.0.0', port: 7005 });
  assert.equal(f.batchRequestsMax, 64);
  assert.equal(f.verifyWorkers, 1);
  assert.equal(f.writeBufferMib, 16);
  assert.equal(f.heapGrowingPercent, 50);
  assert.equal(f.pipelineTurns, false);
  assert.equal(f.deferWrites, true);
});

test('precedence: flag > environment > file > default', async () => {
  const path = writeConfig('precedence.json', FILE);
  // The environment beats the file (PBFT_CONFIG names the file).
  let f = await replicaFlags([], { [REPLICA_ENV.config]: path, PBFT_ID: '3', PBFT_LOG_LEVEL: 'debug', PBFT_KEYS: '/etc/keys', PBFT_BATCH_REQUESTS_MAX: '8' });
  assert.equal(f.id, 3);
  assert.equal(f.logLevel, 'debug');
  assert.equal(f.keys, '/etc/keys');
  assert.equal(f.batchRequestsMax, 8);
  assert.equal(f.data, '/var/lib/pbft', 'not in the environment: the file');
  // A flag beats both.
  f = await replicaFlags(['--config', path, '--id', '1', '--log-level', 'error', '--batch-requests-max', '16'], {
    PBFT_ID: '3',
    PBFT_LOG_LEVEL: 'debug',
  });
  assert.equal(f.id, 1);
  assert.equal(f.logLevel, 'error');
  assert.equal(f.batchRequestsMax, 16);
  assert.deepEqual(f.listen, { host: '0.0.0.0', port: 7005 }, 'only in the file');
  // Environment only, no file; defaults for the rest.
  f = await replicaFlags([], { PBFT_ID: '0', PBFT_LISTEN: '127.0.0.1:7100', PBFT_DATA: '/d' });
  assert.equal(f.id, 0);
  assert.deepEqual(f.listen, { host: '127.0.0.1', port: 7100 });
  assert.equal(f.data, '/d');
  assert.equal(f.keys, 'keys');
  assert.equal(f.logLevel, 'info');
  assert.equal(f.config, undefined);
});

test('errors: no id anywhere, an unknown key, a bad value, bad JSON, a missing file, a bad environment value', async () => {
  await assert.rejects(replicaFlags([]), /missing the replica id: give --id <n>, PBFT_ID, or "id" in a config file/);
  await assert.rejects(replicaFlags(['--config', writeConfig('typo.json', { id: 0, batchRequestMax: 3 })]), /unknown key "batchRequestMax"/);
  await assert.rejects(replicaFlags(['--config', writeConfig('bad.json', { id: -1 })]), /"id" must be a non-negative integer/);
  await assert.rejects(replicaFlags(['--config', writeConfig('level.json', { id: 0, logLevel: 'loud' })]), /"logLevel" must be one of debug, info, warn, error/);
  await assert.rejects(replicaFlags(['--config', writeConfig('bool.json', { id: 0, deferWrites: 'no' })]), /"deferWrites" must be true or false/);
  await assert.rejects(replicaFlags(['--config', writeConfig('array.json', [1])]), /must be a JSON object/);
  await assert.rejects(replicaFlags(['--config', writeConfig('broken.json', '{ "id": ')]), /invalid JSON/);
  await assert.rejects(replicaFlags(['--config', join(dir, 'nowhere.json')]), /nowhere\.json: not found/);
  await assert.rejects(replicaFlags([], { PBFT_ID: 'zero' }), /PBFT_ID/);
  await assert.rejects(replicaFlags(['--config', writeConfig('buffer.json', { id: 0, writeBufferMib: 0 })]), /"writeBufferMib" must be an integer from 1 to 1024/);
  await assert.rejects(replicaFlags(['--id', '0', '--write-buffer-mib', '2048']), /must be an integer from 1 to 1024/);
  await assert.rejects(replicaFlags([], { PBFT_ID: '0', PBFT_WRITE_BUFFER_MIB: 'lots' }), /PBFT_WRITE_BUFFER_MIB.*must be an integer from 1 to 1024/);
  await assert.rejects(replicaFlags(['--config', writeConfig('negative.json', { id: 0, writeBufferMib: -1 })]), /"writeBufferMib" must be an integer from 1 to 1024/);
  assert.equal((await replicaFlags(['--id', '0', '--write-buffer-mib', '8'])).writeBufferMib, 8);
  await assert.rejects(replicaFlags(['--id', '0', '--heap-growing-percent', '301']), /must be an integer from 0 to 300/);
  await assert.rejects(replicaFlags(['--id', '0', '--heap-growing-percent', '-5']), /must be an integer from 0 to 300/);
  await assert.rejects(replicaFlags([], { PBFT_ID: '0', PBFT_HEAP_GROWING_PERCENT: 'half' }), /PBFT_HEAP_GROWING_PERCENT.*must be an integer from 0 to 300/);
  await assert.rejects(replicaFlags(['--config', writeConfig('heap.json', { id: 0, heapGrowingPercent: 1.5 })]), /"heapGrowingPercent" must be an integer from 0 to 300/);
  assert.equal((await replicaFlags(['--id', '0', '--heap-growing-percent', '0'])).heapGrowingPercent, 0, "0: V8's own choice");
  assert.equal((await replicaFlags([], { PBFT_ID: '0', PBFT_HEAP_GROWING_PERCENT: '20' })).heapGrowingPercent, 20);
  assert.equal((await replicaFlags(['--id', '0'])).heapGrowingPercent, undefined, 'unset: the replica applies HEAP_GROWING_PERCENT_DEFAULT');
  // A count that must be positive says so whatever the bad value is (not "non-negative" for a word).
  for (const bad of ['0', 'abc', '-1', '2.5']) {
    await assert.rejects(replicaFlags(['--id', '0', '--batch-requests-max', bad]), /--batch-requests-max.*must be a positive integer/, `--batch-requests-max ${bad}`);
  }
  await assert.rejects(replicaFlags([], { PBFT_ID: '0', PBFT_IN_FLIGHT_BATCHES_MAX: 'many' }), /PBFT_IN_FLIGHT_BATCHES_MAX.*must be a positive integer/);
  await assert.rejects(replicaFlags(['--config', writeConfig('batch.json', { id: 0, batchBytesMax: 0 })]), /"batchBytesMax" must be a positive integer/);
  await assert.rejects(replicaFlags(['--id', '0', '--crypto', 'openssl']), /Allowed choices are auto, sodium, node/);
  await assert.rejects(replicaFlags([], { PBFT_ID: '0', PBFT_CRYPTO: 'fast' }), /Allowed choices are auto, sodium, node/);
  await assert.rejects(replicaFlags(['--config', writeConfig('crypto.json', { id: 0, crypto: 'libsodium' })]), /"crypto" must be one of auto, sodium, node/);
  assert.equal((await replicaFlags(['--id', '0'])).crypto, 'auto', 'default: the fastest backend that loads');
  assert.equal((await replicaFlags([], { PBFT_ID: '0', PBFT_CRYPTO: 'node' })).crypto, 'node');
  assert.equal((await replicaFlags(['--config', writeConfig('crypto-ok.json', { id: 0, crypto: 'sodium' })])).crypto, 'sodium');
});

test('pbft start does not pass the replica settings of its own environment to its replicas', () => {
  const env = replicaEnv({ PATH: '/bin', PBFT_ID: '1', PBFT_CONFIG: '/c.json', PBFT_LISTEN: '0.0.0.0', HOME: '/root' });
  assert.deepEqual(env, { PATH: '/bin', HOME: '/root' });
});

test('a real replica configured by a file and the environment only; SIGHUP stops it cleanly', async () => {
  const [port] = await freePorts(1);
  const urls = [port!, port! + 1, port! + 2, port! + 3].map((p) => `ws://127.0.0.1:${p}`);
  generateKeyring({ replicaUrls: urls, clients: 0, out: join(dir, 'real-keys') });
  const path = writeConfig('real.json', { keys: 'real-keys', data: 'real-data', logFormat: 'text' });
  const proc = track(
    spawn(process.execPath, [LAUNCHER, 'replica'], {
      cwd: tmpdir(),
      env: { ...process.env, PBFT_CONFIG: path, PBFT_ID: '0', PBFT_LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
  let stderr = '';
  proc.stderr?.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  const status = await waitFor(async () => {
    if (proc.exitCode !== null) throw new Error(`the replica exited with ${proc.exitCode}: ${stderr}`);
    try {
      const res = await fetch(`http://127.0.0.1:${port}/status`, { signal: AbortSignal.timeout(2_000) });
      return res.ok ? ((await res.json()) as { id: number; pid: number }) : undefined;
    } catch {
      return undefined;
    }
  }, 'the replica to answer /status');
  assert.equal(status.id, 0);
  assert.equal(status.pid, proc.pid);
  // The container HEALTHCHECK's script (Dockerfile) calls this real replica healthy, as replica 0.
  const health = spawnSync('node', [join(REPO_ROOT, 'deploy', 'healthcheck.mjs')], {
    env: { PATH: process.env.PATH ?? '', PBFT_LISTEN: `0.0.0.0:${port}`, PBFT_ID: '0' },
    encoding: 'utf8',
  });
  assert.equal(health.status, 0, health.stderr);
  assert.match(health.stdout, /^healthy: replica 0 of cluster /);
  proc.kill('SIGHUP');
  assert.equal(await exited, 0, stderr);
  assert.equal(alive(proc.pid!), false);
  assert.doesNotMatch(stderr, /"level":"info"|\binfo\b/, 'PBFT_LOG_LEVEL=warn from the environment applies');
});
