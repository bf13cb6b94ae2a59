/**
 * View change with real replica processes (checkpoint every 16 batches, log window 32, so that
 * checkpoints, log truncation and catching up happen during the runs).
 *
 * 1. The primary of view 0 is SIGKILLed while four clients run: the other three move to the same
 *    view above 0 and every operation completes; the agreed order (the executed-batches logs of all
 *    replicas, identical wherever they overlap) replayed through the sequential model reproduces
 *    every result. The old primary restarts from its data directory, enters the new view, catches up,
 *    and its state digest equals the others' at a checkpoint after it rejoined.
 * 2. The primary drops every protocol message to one backup (test-only hook dropOutgoing, fault
 *    mode silent-to): the cluster keeps serving (results equal the model), and the isolated backup
 *    stays consistent: it catches up by fetching committed entries or by state transfer, and its
 *    checkpoint digest equals the others'.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import type { PbftClient } from '../../src/client/client.ts';
import { prng, TestCluster, waitFor } from './helpers.ts';
import { assertAlive, checkAgainstModel, converge, statuses, summary, testLogLevel, testSeed, withEvidence, Workload } from './workload.ts';

const CLIENTS = 4;
const K = 16;
const REPLICA_OPTIONS = { checkpointInterval: K, windowSize: 2 * K };
/** A guard only: operations that wait for a view change must not give up early on a busy machine. */
const CLIENT_TIMEOUT_MS = 30_000;

const clusters: TestCluster[] = [];
after(async () => {
  await Promise.all(clusters.map((tc) => tc.destroy()));
});

async function cluster(name: string, faults: boolean): Promise<{ tc: TestCluster; clients: PbftClient[] }> {
  const tc = await TestCluster.create({ name, executedLog: true, faults, node: { replica: REPLICA_OPTIONS, logLevel: testLogLevel() } });
  clusters.push(tc);
  await tc.startAll();
  const clients = await Promise.all(Array.from({ length: CLIENTS }, (_, c) => tc.client(c, { timeoutMs: CLIENT_TIMEOUT_MS })));
  return { tc, clients };
}

test('the primary is SIGKILLed under load: a new view serves every operation correctly; the old primary restarts, rejoins and converges', async (t) => {
  const seed = testSeed();
  let tc: TestCluster | undefined;
  await withEvidence(() => tc, seed, async () => {
    const c = await cluster('vc-primary', false);
    tc = c.tc;
    const workload = new Workload(c.clients, seed);
    const before = await tc.status(0);
    assert.equal(before.view, 0);
    assert.equal(before.primary, 0, 'replica 0 is the primary of view 0');

    const OPS_PER_CLIENT = 150;
    // The moment of the kill: after a seeded number of operations, between 60 and 300 of the 600.
    const killAfterOps = 60 + Math.floor(prng(seed ^ 0x7f4a7c15)() * 240);
    const running = workload.run(OPS_PER_CLIENT);
    running.catch(() => undefined);
    await Promise.race([workload.waitForOps(killAfterOps, 'before the primary is killed'), running]);
    const killed = await tc.stop(0, 'SIGKILL');
    assert.equal(killed.signal, 'SIGKILL', 'the primary was running until killed');
    const completedAtKill = workload.completed;
    await running;
    assert.equal(workload.completed, CLIENTS * OPS_PER_CLIENT, 'every operation completed');
    assert.ok(completedAtKill < workload.completed, 'operations were still running when the primary died');

    // The other three agree on a view above 0, with a primary other than the dead one.
    const others = await waitFor(async () => {
      const s = await statuses(tc!, [1, 2, 3]);
      if (s.some((x) => x === undefined || x.viewChanging)) return undefined;
      const v = s.map((x) => x!.view);
      return v.every((x) => x === v[0]) ? s.map((x) => x!) : undefined;
    }, 'replicas 1-3 to agree on a view');
    const view = others[0]!.view;
    assert.ok(view > 0, `the cluster left view 0: ${others.map((s) => summary(s)).join('; ')}`);
    for (const s of others) {
      assert.notEqual(s.primary, 0, 'the dead replica is not the primary');
      assert.ok(s.counters.viewChanges >= 1, `replica ${s.id} took part in a view change`);
    }
    const rejoinAt = Math.max(...others.map((s) => s.lastExecuted));
    assert.ok(rejoinAt >= 2 * K, `the run crossed checkpoints (lastExecuted ${rejoinAt})`);

    // The old primary restarts from its data directory: it enters the current view and catches up.
    await tc.start(0);
    const recovered = await tc.status(0);
    assert.ok(recovered.lastExecuted > 0, `replica 0 recovered its executed prefix from disk (lastExecuted ${recovered.lastExecuted})`);
    let rr = 0;
    const drive = (): Promise<void> => workload.step(rr++ % CLIENTS);
    const converged = await converge(tc, drive, { checkpointInterval: K, aboveSeq: rejoinAt, what: 'replica 0 to rejoin and all four digests to agree at a checkpoint' });
    t.diagnostic(`seed ${seed}; primary killed after ${completedAtKill} operations; replicas 1-3 reached view ${view}; replica 0 restarted at ${recovered.lastExecuted}, the others at ${rejoinAt}`);
    for (const s of converged) t.diagnostic(summary(s));
    assertAlive(tc);
    const mine = converged[0]!;
    assert.ok(mine.view >= view, `replica 0 entered the new view (${mine.view} >= ${view})`);
    for (const s of converged) {
      assert.equal(s.view, mine.view, `replica ${s.id} view`);
      assert.equal(s.viewChanging, false, `replica ${s.id} is in normal operation`);
      assert.deepEqual(s.lastCheckpoint, mine.lastCheckpoint, `replica ${s.id} last checkpoint (seq and state digest)`);
      assert.equal(s.divergences, 0, `replica ${s.id} divergences`);
    }
    assert.ok(mine.lastCheckpoint.seq > rejoinAt, 'the digests agree at a checkpoint taken after replica 0 rejoined');

    // Every operation, before and after the view change, against the agreed order on the model. Every
    // sequence number was executed by the three live replicas at least.
    await checkAgainstModel(tc, workload, { minLogsPerSeq: 3 });
  });
});

test('a primary silent towards one backup: the cluster keeps serving correctly and the isolated backup catches up to the same state', async (t) => {
  const seed = testSeed();
  let tc: TestCluster | undefined;
  await withEvidence(() => tc, seed, async () => {
    const c = await cluster('vc-silent', true);
    tc = c.tc;
    const ISOLATED = 3;
    assert.equal((await tc.status(0)).primary, 0);
    tc.setFault(0, { mode: 'silent-to', replica: ISOLATED });
    const workload = new Workload(c.clients, seed);
    await workload.run(100);

    let rr = 0;
    const drive = (): Promise<void> => workload.step(rr++ % CLIENTS);
    const converged = await converge(tc, drive, { checkpointInterval: K, aboveSeq: 2 * K, what: `replica ${ISOLATED} to catch up and every digest to agree` });
    const isolated = converged[ISOLATED]!;
    t.diagnostic(`seed ${seed}`);
    for (const s of converged) t.diagnostic(summary(s));
    // Without the primary's messages it cannot commit in the normal case: it caught up on its own.
    assert.ok(
      isolated.counters.entriesFetched + isolated.counters.stateTransfers > 0,
      `replica ${ISOLATED} fetched committed entries or transferred state: ${JSON.stringify(isolated.counters)}`,
    );
    for (const s of converged) {
      assert.equal(s.lastExecuted, converged[0]!.lastExecuted, `replica ${s.id} lastExecuted`);
      assert.deepEqual(s.lastCheckpoint, converged[0]!.lastCheckpoint, `replica ${s.id} last checkpoint (seq and state digest)`);
      assert.equal(s.divergences, 0, `replica ${s.id} divergences`);
    }
    // The primary still drops its frames to the isolated backup (the fault is in force to the end).
    await checkAgainstModel(tc, workload, { minLogsPerSeq: 3 });
    assertAlive(tc);
  });
});
