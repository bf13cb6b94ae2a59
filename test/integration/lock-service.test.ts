/**
 * The lock service example (examples/lock-service) on four real replica processes, each running
 * examples/lock-service/replica.ts (RocksDB, WebSockets, the LockService state machine).
 *
 * Client 0 acquires lock A with a 10-minute lease while clients 1-3 contend for locks B and C with
 * short leases (acquire, sometimes renew, release or let expire) and keep trying A. The primary (of
 * view 0, unless the load already changed views) is SIGKILLed (and checked gone) in the middle of
 * client 0's lease; the other three change view.
 * Client 0 then renews A (its lease survived the view change: the replicas decide by the agreed
 * batch times, which the new primary carries on), contention goes on, client 0 releases A and
 * another client takes it. The checker (test/examples/lock-checker.ts) goes over every result every
 * client received, using only the agreed times in them: no two clients ever held one lock at once,
 * fencing tokens only grew, every refusal named the holder of the time, and no client saw the
 * agreed time go back (also across the view change).
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { LockClient } from '../../examples/lock-service/client.ts';
import { decodeLockResult, type LockResult } from '../../examples/lock-service/ops.ts';
import { checkLockHistory } from '../examples/lock-checker.ts';
import { alive, prng, sleep, TestCluster, waitFor } from './helpers.ts';
import { statuses, summary, testLogLevel, testSeed, withEvidence } from './workload.ts';

const LOCK_REPLICA = fileURLToPath(new URL('../../examples/lock-service/replica.ts', import.meta.url));
const CLIENTS = 4;
/** A guard only: operations that wait for the view change must not give up early on a busy machine. */
const CLIENT_TIMEOUT_MS = 30_000;
/**
 * Client 0's lease: far longer than the test's bounded waits, so that the primary's death falls in the
 * middle of it however slow the machine (a renewal after expiry is refused, and that is not what this
 * test is about). Nothing here waits for it to expire: client 0 releases A itself.
 */
const HOLDER_LEASE_MS = 600_000;

let tc: TestCluster | undefined;
after(async () => {
  await tc?.destroy();
});

test('lock service on real processes: the primary is SIGKILLed mid-lease, the view changes, and no two clients ever hold one lock at once', async () => {
  const seed = testSeed();
  await withEvidence(() => tc, seed, async () => {
    tc = await TestCluster.create({ name: 'lock-service', entry: { script: LOCK_REPLICA, args: ['--log-level', testLogLevel()] } });
    await tc.startAll();
    const results: LockResult[][] = Array.from({ length: CLIENTS }, () => []);
    const locks = await Promise.all(
      Array.from({ length: CLIENTS }, async (_, c) => {
        const pbft = await tc!.client(c, { timeoutMs: CLIENT_TIMEOUT_MS });
        // Every result the client accepted, in its order, for the checker.
        const recording = {
          clientId: pbft.clientId,
          invoke: async (op: Uint8Array) => {
            const bytes = await pbft.invoke(op);
            results[c]!.push(decodeLockResult(bytes));
            return bytes;
          },
        };
        return new LockClient(recording, { owner: `worker-${c}` });
      }),
    );

    const holder = locks[0]!;
    const got = await holder.acquire('A', HOLDER_LEASE_MS);
    assert.ok(got.acquired, 'client 0 holds A');

    // Clients 1-3 contend until told to stop.
    let stop = false;
    let opsDone = 0;
    const contend = async (c: number): Promise<void> => {
      const next = prng(seed ^ (c * 0x9e3779b1));
      const me = locks[c]!;
      while (!stop) {
        const name = next() < 0.2 ? 'A' : next() < 0.5 ? 'B' : 'C';
        const outcome = await me.acquire(name, 200 + Math.floor(next() * 600));
        opsDone++;
        if (!outcome.acquired) {
          await sleep(10 + next() * 60);
          continue;
        }
        await sleep(20 + next() * 100);
        let lease = outcome.lease;
        if (next() < 0.5) {
          const renewed = await me.renew(lease, 200 + Math.floor(next() * 400));
          opsDone++;
          if (renewed === undefined) continue;
          lease = renewed;
          await sleep(20 + next() * 100);
        }
        if (next() < 0.7) {
          await me.release(lease);
          opsDone++;
        }
      }
    };
    const contenders = [1, 2, 3].map((c) => contend(c));

    // Some contention, then the primary dies in the middle of client 0's lease. (Usually replica 0 of
    // view 0; a loaded machine may already have made the replicas change views, so ask.)
    await waitFor(() => opsDone >= 100, '100 contended operations before the kill');
    const before = await tc.status(0);
    const victim = before.primary;
    const survivors = [0, 1, 2, 3].filter((id) => id !== victim);
    const pid = tc.procs[victim]!.proc.pid!;
    const killed = await tc.stop(victim, 'SIGKILL');
    assert.equal(killed.signal, 'SIGKILL');
    assert.equal(alive(pid), false, `the primary's process ${pid} is gone`);
    const killedAt = Date.now();
    const opsAtKill = opsDone;

    const others = await waitFor(async () => {
      const s = await statuses(tc!, survivors);
      if (s.some((x) => x === undefined || x.viewChanging)) return undefined;
      const v = s.map((x) => x!.view);
      return v.every((x) => x === v[0] && x > before.view) ? s.map((x) => x!) : undefined;
    }, `replicas ${survivors.join(', ')} to agree on a view above ${before.view}`);
    const viewChangeMs = Date.now() - killedAt;
    for (const s of others) assert.notEqual(s.primary, victim, `${summary(s)}: the dead replica is not the primary`);

    // Mid-lease: the holder renews A in the new view (its lease is still running by the agreed time).
    const renewed = await holder.renew(got.lease, HOLDER_LEASE_MS);
    assert.ok(renewed !== undefined, `client 0 still held A after the view change (${viewChangeMs} ms after the kill)`);
    assert.equal(renewed.token, got.lease.token, 'the same tenure');
    await waitFor(() => opsDone >= opsAtKill + 100, '100 contended operations after the view change');
    const released = await holder.release(renewed);
    assert.equal(released.released, true, 'client 0 released A itself');
    // Another client takes A once it is free.
    const taker = locks[1]!;
    const took = await waitFor(async () => {
      const o = await taker.acquire('A', 500);
      return o.acquired ? o : undefined;
    }, 'client 1 to acquire A after the release');
    assert.ok(took.lease.token > got.lease.token, 'a new holder gets a larger fencing token');
    stop = true;
    await Promise.all(contenders);

    const { violations, tenures } = checkLockHistory(results, { complete: true });
    assert.deepEqual(violations, [], 'mutual exclusion by the agreed times');
    // The run did what it is meant to: contention on every lock, before and after the view change.
    const refusedA = results.slice(1).flat().filter((r) => !r.ok && r.code === 'HELD' && r.name === 'A' && r.holder?.client === 0);
    assert.ok(refusedA.some((r) => r.timeMs > renewed.sinceMs - 1), 'others were refused A while client 0 held it after the view change');
    for (const name of ['B', 'C']) {
      const held = tenures.filter((t) => t.name === name);
      assert.ok(new Set(held.map((t) => t.holder.client)).size >= 2, `lock ${name} changed hands: ${held.length} tenures`);
    }
    const times = results.flat().map((r) => r.timeMs);
    process.stderr.write(
      `lock service: ${results.flat().length} operations, ${tenures.length} tenures, view ${others[0]!.view} ` +
        `${viewChangeMs} ms after the kill, agreed times over ${Math.max(...times) - Math.min(...times)} ms\n`,
    );
  });
});
