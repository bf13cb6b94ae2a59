/**
 * Membership with real replica processes, real WebSockets and RocksDB (issue 13's check): start 4
 * replicas, run a workload, JOIN a fifth, sixth and seventh replica (n = 7, f = 2) with `pbft member
 * add`, QUIT one of the original four, then kill -9 two replicas at once. Every operation goes into
 * a history checked for linearizability; the clients were started before the first JOIN and keep
 * working throughout; the remaining replicas end with the same state digest.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLUSTER_FILE, generateKeyring, serializeCluster, writeFileAtomic } from '../../src/crypto/keyring.ts';
import { freePorts } from '../../src/transport/free-ports.ts';
import { runMemberCommand, type MemberAction } from '../../src/cli/member.ts';
import { Workload } from '../../src/nemesis/workload.ts';
import { Prng } from '../../src/sim/prng.ts';
import { checkLinearizable, formatViolation } from '../../src/check/linearizability.ts';
import { LAUNCHER, REPO_ROOT, alive, sleep, track, waitFor } from './helpers.ts';

interface Status {
  clusterId: string;
  id: number;
  epoch: number;
  member: boolean;
  members: number[];
  lastExecuted: number;
  view: number;
  viewChanging: boolean;
  stableCheckpoint: { seq: number; digest: string };
  lastCheckpoint: { seq: number; digest: string };
}

test('4 -> 7 replicas by JOIN (the last one joining by itself with an admission), QUIT one of the first four, kill two at once: linearizable, a client from before the first JOIN keeps working, digests agree', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pbft-membership-'));
  const keys = join(dir, 'keys');
  const ports = await freePorts(7);
  const url = (id: number): string => `ws://127.0.0.1:${ports[id]}`;
  const { cluster } = generateKeyring({ replicas: 4, clients: 4, out: keys, clusterId: 'test-membership' });
  writeFileAtomic(join(keys, CLUSTER_FILE), serializeCluster({ ...cluster, replicas: cluster.replicas.map((r) => ({ ...r, url: url(r.id) })) }), 0o644);
  const procs = new Map<number, { proc: ChildProcess; output: string[] }>();
  const start = (id: number, joining: false | 'added' | 'admitted'): void => {
    const args = [LAUNCHER, 'replica', '--id', String(id), '--keys', keys, '--data', join(dir, `data-${id}`), '--log-level', 'warn'];
    if (joining === 'added') args.push('--listen', `127.0.0.1:${ports[id]}`);
    // (It joins by itself: its JOIN, signed with its key, carries the operator's admission.)
    if (joining === 'admitted') args.push('--join', join(keys, `admission-${id}.json`));
    const proc = track(spawn(process.execPath, args, { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] }));
    const output: string[] = [];
    const keep = (b: Buffer): void => {
      output.push(...b.toString('utf8').split('\n').filter((l) => l !== ''));
      if (output.length > 300) output.splice(0, output.length - 300);
    };
    proc.stdout?.on('data', keep);
    proc.stderr?.on('data', keep);
    procs.set(id, { proc, output });
  };
  const status = async (id: number): Promise<Status | undefined> => {
    try {
      const res = await fetch(`http://127.0.0.1:${ports[id]}/status`, { signal: AbortSignal.timeout(2_000) });
      return res.ok ? ((await res.json()) as Status) : undefined;
    } catch {
      return undefined;
    }
  };
  const lines: string[] = [];
  const io = { out: (l: string) => lines.push(l), err: (l: string) => lines.push(`ERR ${l}`) };
  const member = async (action: MemberAction): Promise<void> => {
    const code = await runMemberCommand(action, { keys, timeout: 15_000, wait: true, waitTimeout: 90_000 }, io);
    assert.equal(code, 0, lines.join('\n'));
  };
  const kill9 = async (id: number): Promise<void> => {
    const p = procs.get(id)!;
    const pid = p.proc.pid!;
    const exited = new Promise((resolve) => p.proc.once('exit', resolve));
    p.proc.kill('SIGKILL');
    await exited;
    assert.equal(alive(pid), false, `replica ${id} (pid ${pid}) is gone`);
    procs.delete(id);
  };
  let workload: Workload | undefined;
  try {
    for (const id of [0, 1, 2, 3]) start(id, false);
    await waitFor(async () => (await Promise.all([0, 1, 2, 3].map(status))).every((s) => s !== undefined), 'the four replicas to answer');
    // What the replicas refuse, with the reason the command prints (in the agreed order, signed by
    // the operator): fewer than four replicas, an unknown id, a member's id again.
    const refused = async (action: MemberAction, reason: RegExp): Promise<void> => {
      await assert.rejects(runMemberCommand(action, { keys, timeout: 15_000, wait: false, waitTimeout: 1_000 }, io), (err: Error) => {
        assert.match(err.message, /refused by the replicas/);
        assert.match(err.message, reason);
        return true;
      });
    };
    await refused({ kind: 'remove-replica', id: 3 }, /would leave 3 replicas; at least 4 are needed/);
    await refused({ kind: 'remove-replica', id: 9 }, /replica 9 is not a member/);
    await refused({ kind: 'add-replica', id: 2, url: url(2) }, /replica 2 is already a member/);
    // Without the operator's key nothing is even sent.
    const noOperator = join(dir, 'keys-without-operator');
    mkdirSync(noOperator);
    copyFileSync(join(keys, CLUSTER_FILE), join(noOperator, CLUSTER_FILE));
    await assert.rejects(runMemberCommand({ kind: 'remove-replica', id: 1 }, { keys: noOperator, timeout: 5_000, wait: false, waitTimeout: 1_000 }, io), /operator\.key is missing/);
    const t0 = Date.now();
    workload = new Workload(keys, { clients: 4, keys: 4, opTimeoutMs: 10_000 }, new Prng(13), () => Date.now() - t0);
    await workload.start();
    await sleep(1_500);
    // JOIN: 5, 6, 7 replicas (n = 7, f = 2). Each joins while the workload runs: 4 and 5 added by
    // the operator, 6 admitted by the operator and joining by itself.
    for (const id of [4, 5, 6]) {
      if (id === 6) {
        await member({ kind: 'admit', id, url: url(id) });
        start(id, 'admitted');
      } else {
        await member({ kind: 'add-replica', id, url: url(id) });
        start(id, 'added');
      }
      await waitFor(async () => {
        const s = await status(id);
        return s !== undefined && s.member && s.epoch === id - 3 && s.lastExecuted >= s.stableCheckpoint.seq && s.stableCheckpoint.seq > 0;
      }, `replica ${id} to catch up and vote in epoch ${id - 3}`, 90_000);
    }
    // One /status call may time out on a loaded machine (seven replicas and the clients on two cores): ask until answered.
    const seven = await waitFor(() => status(0), "replica 0's /status", 30_000);
    assert.deepEqual(seven.members, [0, 1, 2, 3, 4, 5, 6]);
    // QUIT one of the original four: n = 6 (f = 1, quorums of 4).
    await member({ kind: 'remove-replica', id: 3 });
    await waitFor(async () => (await status(3))?.member === false, 'replica 3 to see it was removed', 90_000);
    await kill9(3);
    // Two replicas at once (the primary among them when it is one of the first four): four of six
    // remain, a quorum.
    const before = workload.outcomes.ok;
    const s1 = await waitFor(() => status(1), "replica 1's /status", 30_000);
    const primary = s1.members[s1.view % s1.members.length]!;
    // Two of the keyring's replicas: with 3 removed, only one of the four the clients started with
    // is left, so they go on only because they followed the membership to the joined replicas.
    const victims = [primary, ...[0, 1, 2].filter((r) => r !== primary)].slice(0, 2);
    if (!victims.every((v) => v <= 2)) victims.splice(0, 2, 0, 1);
    const killedAt = Date.now() - t0;
    for (const v of victims) await kill9(v);
    await waitFor(() => workload!.completions.filter((t) => t > killedAt + 500).length >= 50 || undefined, 'the workload to go on with two of six replicas down', 60_000);
    await workload.stop();
    const ops = workload.history.ops();
    const result = checkLinearizable(ops);
    assert.ok(result.ok, formatViolation(result));
    assert.ok(workload.outcomes.ok > before + 50, `operations completed after the kills: ${JSON.stringify(workload.outcomes)}`);
    // The remaining members agree on the state.
    const rest = [0, 1, 2, 4, 5, 6].filter((r) => !victims.includes(r));
    const final = await waitFor(async () => {
      const all = await Promise.all(rest.map(status));
      if (all.some((s) => s === undefined)) return undefined;
      const last = new Set(all.map((s) => `${s!.lastCheckpoint.seq}:${s!.lastCheckpoint.digest}`));
      return last.size === 1 ? all : undefined;
    }, 'the remaining replicas to agree on their latest checkpoint', 60_000);
    assert.ok(final.every((s) => s!.epoch === 4 && s!.member));
    // (The clients' answers after the kills came from at least one joined replica: of the keyring's
    // four, only one was left.)
    process.stderr.write(`membership: ${JSON.stringify(workload.outcomes)} ops; killed ${victims.join(', ')} after removing 3; final checkpoint ${final[0]!.lastCheckpoint.seq}\n`);
  } catch (err) {
    for (const id of procs.keys()) process.stderr.write(`--- status ${id}: ${JSON.stringify(await status(id))}\n`);
    for (const [id, p] of procs) process.stderr.write(`--- replica ${id}\n${p.output.slice(-40).join('\n')}\n`);
    process.stderr.write(`--- member commands\n${lines.join('\n')}\n`);
    throw err;
  } finally {
    await workload?.stop().catch(() => undefined);
    for (const p of procs.values()) {
      p.proc.kill('SIGKILL');
    }
    await sleep(200);
    rmSync(dir, { recursive: true, force: true });
  }
});
