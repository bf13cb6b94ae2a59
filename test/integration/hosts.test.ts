/**
 * Replicas on separate addresses, as on separate hosts: the keyring gives each replica its own
 * URL (`pbft keygen --replica-urls`), each replica runs the real `pbft replica` command with a keys
 * directory holding only cluster.json and its own private key, listens on the address its keyring
 * gives it, and a client reaches all of them from outside.
 *
 * 1. Network namespaces: one namespace per replica, each with its own IP on a veth pair attached to
 *    a bridge this test creates (needs root: skipped with a message where namespaces cannot be
 *    made). Every replica uses the same port, so only the address tells them apart.
 * 2. Loopback addresses 127.0.0.2 .. 127.0.0.5 with one port: runs everywhere.
 * Both kill -9 one replica (the process doing the work, checked gone) and keep serving.
 * Every namespace, link and process made here is removed, also when the test fails.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PbftClient } from '../../src/client/client.ts';
import { loadCluster } from '../../src/crypto/keyring.ts';
import type { NodeStatus } from '../../src/node/replica-node.ts';
import { freePorts } from '../../src/transport/free-ports.ts';
import { Namespaces, probeNamespaces } from '../../src/nemesis/netns.ts';
import { alive, LAUNCHER, REPO_ROOT, track, waitFor, type ReplicaProc } from './helpers.ts';

const N = 4;

interface Deployment {
  urls: string[];
  /** Command prefix that puts replica i on its host (e.g. ip netns exec ns-i). */
  prefix(i: number): string[];
}

async function status(url: string): Promise<NodeStatus | undefined> {
  try {
    const res = await fetch(url.replace(/^ws:/, 'http:') + '/status', { signal: AbortSignal.timeout(2_000) });
    return res.ok ? ((await res.json()) as NodeStatus) : undefined;
  } catch {
    return undefined;
  }
}

async function exercise(name: string, deployment: Deployment): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), `pbft-hosts-${name}-`));
  const procs: (ReplicaProc | undefined)[] = [];
  let client: PbftClient | undefined;
  try {
    // The operator's machine: keygen with one address per replica.
    const keys = join(dir, 'keys');
    const kg = spawnSync(process.execPath, [LAUNCHER, 'keygen', '--out', keys, '--clients', '1', '--cluster-id', `hosts-${name}`, '--replica-urls', deployment.urls.join(',')], {
      cwd: REPO_ROOT,
      encoding: 'utf8',
    });
    assert.equal(kg.status, 0, kg.stderr);
    const cluster = loadCluster(join(keys, 'cluster.json'));
    assert.deepEqual(cluster.replicas.map((r) => r.url), deployment.urls);

    // Each "host" gets cluster.json and its own key, nothing else.
    for (let i = 0; i < N; i++) {
      const hostKeys = join(dir, `host-${i}`, 'keys');
      mkdirSync(hostKeys, { recursive: true, mode: 0o700 });
      for (const f of ['cluster.json', `replica-${i}.key`]) copyFileSync(join(keys, f), join(hostKeys, f));
      const argv = [...deployment.prefix(i), process.execPath, LAUNCHER, 'replica', '--id', String(i), '--keys', hostKeys, '--data', join(dir, `host-${i}`, 'data'), '--log-format', 'text'];
      const proc = track(spawn(argv[0]!, argv.slice(1), { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] }));
      const output: string[] = [];
      const collect = (chunk: Buffer): void => {
        output.push(...chunk.toString('utf8').split('\n').filter((l) => l !== ''));
        if (output.length > 300) output.splice(0, output.length - 300);
      };
      proc.stdout?.on('data', collect);
      proc.stderr?.on('data', collect);
      const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
      procs[i] = { proc, output, exit };
    }
    const outputs = (): string => procs.map((p, i) => `--- replica ${i}\n${p?.output.slice(-20).join('\n')}`).join('\n');
    await waitFor(async () => {
      const all = await Promise.all(deployment.urls.map(status));
      return all.every((s) => s !== undefined && s.transport.replicasConnected.length === N - 1);
    }, `every replica to listen on its own address and reach the others\n${outputs()}`);
    for (let i = 0; i < N; i++) {
      const s = await waitFor(() => status(deployment.urls[i]!), `replica ${i}'s /status`);
      assert.equal(s.id, i);
      assert.equal(s.listen, new URL(deployment.urls[i]!).host, 'listens on the address its keyring gives it');
    }

    // A client from outside every replica's host.
    client = await PbftClient.connect({ cluster: join(keys, 'cluster.json'), key: join(keys, 'client-0.key') });
    for (let k = 0; k < 10; k++) await client.put(`k${k}`, `v${k}`);
    // kill -9 one replica: the process doing the work (spawned directly or exec'd by ip netns exec).
    const victim = procs[3]!;
    const pid = victim.proc.pid!;
    victim.proc.kill('SIGKILL');
    await victim.exit;
    assert.equal(alive(pid), false, 'the killed replica is gone');
    procs[3] = undefined;
    for (let k = 10; k < 20; k++) await client.put(`k${k}`, `v${k}`);
    for (const k of [0, 9, 19]) {
      const got = await client.get(`k${k}`);
      assert.equal(got === null ? null : Buffer.from(got).toString(), `v${k}`);
    }
    await waitFor(async () => {
      const live = await Promise.all(deployment.urls.slice(0, 3).map(status));
      return live.every((s) => s !== undefined && s.lastExecuted === live[0]!.lastExecuted && s.lastExecuted > 0);
    }, 'the three live replicas to agree on what they executed');
  } finally {
    await client?.close().catch(() => undefined);
    await Promise.all(
      procs.map(async (p) => {
        if (!p) return;
        p.proc.kill('SIGKILL');
        await p.exit;
      }),
    );
    rmSync(dir, { recursive: true, force: true });
  }
}

test('replicas in separate network namespaces, one address each, the same port', async (t) => {
  const why = probeNamespaces();
  if (why !== undefined) {
    t.skip(`network namespaces unavailable (${why}); the loopback-address test covers separate addresses`);
    return;
  }
  const spaces = new Namespaces(N);
  try {
    spaces.create();
    const urls = Array.from({ length: N }, (_, i) => `ws://${spaces.address(i)}:7001`);
    await exercise('netns', { urls, prefix: (i) => ['ip', 'netns', 'exec', spaces.names[i]!] });
  } finally {
    const left = spaces.destroy();
    assert.deepEqual(left, [], 'every namespace and link this test made is gone');
  }
});

test('replicas on distinct loopback addresses (127.0.0.2 .. 127.0.0.5), the same port', async () => {
  const [port] = await freePorts(1);
  const urls = Array.from({ length: N }, (_, i) => `ws://127.0.0.${2 + i}:${port}`);
  await exercise('loopback', { urls, prefix: () => [] });
});
