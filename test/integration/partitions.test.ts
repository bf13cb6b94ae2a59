/**
 * A cluster whose keyring names its own partition count (`pbft keygen --partitions`), on real
 * processes (`pbft replica`, real WebSockets, RocksDB): the replicas build their state in that many
 * partitions and agree on its checkpoints, a replica killed with SIGKILL (the process is checked
 * gone) recovers its partitions from its own disk and executes again, and the same data directory
 * under a keyring that names another count is refused with one line instead of failing later on
 * digests that cannot match.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PbftClient } from '../../src/client/client.ts';
import type { NodeStatus } from '../../src/node/http.ts';
import { alive, freeConsecutivePorts, LAUNCHER, REPO_ROOT, track, waitFor, WAIT_MS } from './helpers.ts';

let dir: string;
const procs = new Map<number, ChildProcess>();
const clients: PbftClient[] = [];

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'pbft-partitions-'));
});

after(async () => {
  await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
  for (const p of procs.values()) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

function pbft(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [LAUNCHER, ...args], { cwd: REPO_ROOT, encoding: 'utf8', timeout: WAIT_MS });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

async function status(port: number): Promise<NodeStatus | undefined> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/status`, { signal: AbortSignal.timeout(2_000) });
    return res.ok ? ((await res.json()) as NodeStatus) : undefined;
  } catch {
    return undefined;
  }
}

/** `pbft replica` itself (the launcher runs the CLI in its own process: no wrapper to outlive it). */
function startReplica(id: number, keys: string): { proc: ChildProcess; output: () => string; exit: Promise<number | null> } {
  const proc = track(spawn(process.execPath, [LAUNCHER, 'replica', '--id', String(id), '--keys', keys, '--data', join(dir, `data-${id}`), '--log-level', 'warn'], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] }));
  procs.set(id, proc);
  let text = '';
  proc.stdout?.on('data', (d: Buffer) => (text += d.toString('utf8')));
  proc.stderr?.on('data', (d: Buffer) => (text += d.toString('utf8')));
  const exit = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  return { proc, output: () => text, exit };
}

test('keygen --partitions refuses a count that is not a power of two up to 262144, with one line', () => {
  for (const bad of ['1000', '524288', '0']) {
    const r = pbft(['keygen', '--partitions', bad, '--out', join(dir, `bad-${bad}`)]);
    assert.equal(r.code, 1);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`^keygen: --partitions must be a power of two from 1 to 262144; got ${bad}$`, 'm'));
  }
});

test('a cluster of 1,024 partitions agrees on its checkpoints, recovers a SIGKILLed replica from its disk, and refuses its data under another count', async () => {
  const base = await freeConsecutivePorts(4);
  const ports = [0, 1, 2, 3].map((i) => base + i);
  const keys = join(dir, 'keys');
  const gen = pbft(['keygen', '--partitions', '1024', '--clients', '1', '--out', keys, '--base-port', String(base)]);
  assert.equal(gen.code, 0, gen.stderr);
  assert.match(gen.stdout, /the built-in store's state in 1024 partitions \(default 65536\)/);
  assert.equal((JSON.parse(readFileSync(join(keys, 'cluster.json'), 'utf8')) as { partitions?: number }).partitions, 1024);

  const running = [0, 1, 2, 3].map((id) => startReplica(id, keys));
  await waitFor(async () => {
    for (const r of running) if (r.proc.exitCode !== null) throw new Error(`a replica exited: ${r.output()}`);
    const all = await Promise.all(ports.map(status));
    return all.every((s) => s !== undefined && s.transport.replicasConnected.length === 3);
  }, 'every replica to answer and connect');
  for (const port of ports) assert.equal((await status(port))!.partitions, 1024);

  const client = await PbftClient.connect({ cluster: join(keys, 'cluster.json'), key: join(keys, 'client-0.key'), timeoutMs: WAIT_MS });
  clients.push(client);
  // Past the first checkpoint (every 128 sequence numbers), keys spread over many partitions.
  for (let i = 0; i < 140; i++) await client.put(`key-${i}`, `value-${i}`);
  const stable = await waitFor(async () => {
    const all = await Promise.all(ports.map(status));
    if (!all.every((s) => s !== undefined && s.stableCheckpoint.seq >= 128)) return undefined;
    return all.map((s) => s!.stableCheckpoint);
  }, 'a stable checkpoint at every replica');
  const at128 = await Promise.all(ports.map(status));
  assert.ok(stable.every((c) => c.seq >= 128));
  // Every replica computed the same state digest for checkpoint 128 (a certificate needs 2f+1; all four agree).
  const digests = new Set(at128.filter((s) => s!.stableCheckpoint.seq === stable[0]!.seq).map((s) => s!.stableCheckpoint.digest));
  assert.equal(digests.size, 1, JSON.stringify(at128.map((s) => s!.stableCheckpoint)));

  // SIGKILL replica 3 (a backup: replica 0 is the primary of view 0) and check the process is gone.
  const victim = running[3]!;
  const pid = (await status(ports[3]!))!.pid;
  assert.equal(pid, victim.proc.pid, 'the status names the process that was started');
  process.kill(pid, 'SIGKILL');
  await victim.exit;
  assert.equal(alive(pid), false, `replica 3 (pid ${pid}) is gone`);

  for (let i = 140; i < 150; i++) await client.put(`key-${i}`, `value-${i}`);
  const target = (await status(ports[0]!))!.lastExecuted;

  const again = startReplica(3, keys);
  const recovered = await waitFor(async () => {
    if (again.proc.exitCode !== null) throw new Error(`replica 3 exited on restart: ${again.output()}`);
    const s = await status(ports[3]!);
    return s !== undefined && s.lastExecuted >= target ? s : undefined;
  }, 'the restarted replica 3 to execute what the others had');
  assert.equal(recovered.partitions, 1024);
  assert.ok(recovered.recovery !== undefined && recovered.recovery.records > 0, `recovered from its own disk: ${JSON.stringify(recovered.recovery)}`);
  // It executes new requests too, and the answers are the cluster's.
  await client.put('after-restart', 'yes');
  const after = (await status(ports[0]!))!.lastExecuted;
  await waitFor(async () => ((await status(ports[3]!))?.lastExecuted ?? 0) >= after, 'replica 3 to execute a put sent after its restart');
  assert.equal(await client.get('key-7'), 'value-7');
  assert.equal(await client.get('key-145'), 'value-145');

  // Stopped cleanly, its data directory is refused under a keyring that names another count
  // (here: none, so the default), with one line and no write to the directory.
  again.proc.kill('SIGTERM');
  assert.equal(await again.exit, 0, again.output());
  const otherKeys = join(dir, 'keys-default');
  cpSync(keys, otherKeys, { recursive: true });
  const json = JSON.parse(readFileSync(join(otherKeys, 'cluster.json'), 'utf8')) as Record<string, unknown>;
  delete json.partitions;
  writeFileSync(join(otherKeys, 'cluster.json'), JSON.stringify(json, null, 2) + '\n');
  const refused = startReplica(3, otherKeys);
  const code = await refused.exit;
  assert.notEqual(code, 0);
  assert.match(refused.output(), /holds key-value state in 1024 partitions \("kv\/partitions=1024\/records"\), the cluster's keyring \(cluster\.json\) says 65536: every replica of a cluster must use the same cluster\.json/);
  assert.doesNotMatch(refused.output(), /\n\s+at /, 'no stack trace');

  // With its own keyring it starts again and catches up.
  const third = startReplica(3, keys);
  await waitFor(async () => {
    if (third.proc.exitCode !== null) throw new Error(`replica 3 exited: ${third.output()}`);
    return ((await status(ports[3]!))?.lastExecuted ?? 0) >= after;
  }, 'replica 3 to start again with its own keyring');
});
