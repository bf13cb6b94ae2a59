/**
 * A backup killed with SIGKILL (no clean shutdown): the other three keep serving every operation;
 * restarted on the same RocksDB directory it recovers, catches up with the others (by fetching
 * entries or by state transfer) and takes part in ordering again: with another backup stopped
 * afterwards, progress needs it (2f+1 = 3 of the 4).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { PbftClient } from '../../src/client/client.ts';
import { KvModel } from '../../src/sim/kv-model.ts';
import { TestCluster, waitFor } from './helpers.ts';

let tc: TestCluster;
let client: PbftClient;
const model = new KvModel();
let counter = 0;

before(async () => {
  tc = await TestCluster.create({ name: 'crash', node: { replica: { checkpointInterval: 16, windowSize: 64 } } });
  await tc.startAll();
  client = await tc.client(0);
});

after(async () => {
  await tc?.destroy();
});

/** A put and a get through the SDK, both checked against the sequential model (one client). */
async function step(): Promise<void> {
  const key = `key-${counter % 7}`;
  const value = `value-${counter++}`;
  await client.put(key, value);
  model.apply({ type: 'put', key, value });
  assert.equal(await client.get(key), model.get(key), `get ${key}`);
}

test('a SIGKILLed backup does not stop the cluster; restarted on its data directory it catches up and takes part again', async () => {
  for (let i = 0; i < 10; i++) await step();
  const primary = (await tc.status(0)).primary;
  const victim = primary === 2 ? 1 : 2;
  const other = [1, 2, 3].find((r) => r !== victim && r !== primary)!;
  // A put completes on f+1 replies, and gets are answered unordered: wait until the victim has
  // executed what the primary has (the ten puts), so there is a known prefix for it to recover.
  let executedBeforeKill = 0;
  await waitFor(async () => {
    const [mine, theirs] = await Promise.all([tc.status(victim), tc.status(primary)]);
    executedBeforeKill = mine.lastExecuted;
    return mine.lastExecuted === theirs.lastExecuted;
  }, `replica ${victim} to execute the first puts`);

  const killed = await tc.stop(victim, 'SIGKILL');
  assert.equal(killed.signal, 'SIGKILL');
  // Far enough (more than the 64-entry log window) that catching up may need a state transfer.
  for (let i = 0; i < 60; i++) await step();
  const before = await tc.status(primary);

  await tc.start(victim);
  const recovered = await tc.status(victim);
  // The kill may come before the synced write of the turn that executed the last put has landed (a
  // reply waits for it; the in-memory lastExecuted does not), so one batch may be executed again.
  assert.ok(executedBeforeKill >= 10, `replica ${victim} executed the ten puts (lastExecuted ${executedBeforeKill})`);
  assert.ok(recovered.lastExecuted >= executedBeforeKill - 1, `replica ${victim} recovered its executed prefix from disk (lastExecuted ${recovered.lastExecuted}, ${executedBeforeKill} before the kill)`);

  // Keep the cluster busy until the restarted replica has caught up with the primary.
  await waitFor(async () => {
    await step();
    const [mine, theirs] = await Promise.all([tc.status(victim), tc.status(primary)]);
    return !mine.transferring && mine.lastExecuted === theirs.lastExecuted && mine.lastExecuted > before.lastExecuted;
  }, `replica ${victim} to catch up`);
  const [mine, theirs] = await Promise.all([tc.status(victim), tc.status(primary)]);
  if (mine.lastCheckpoint.seq === theirs.lastCheckpoint.seq) {
    assert.equal(mine.lastCheckpoint.digest, theirs.lastCheckpoint.digest, 'same state at the same checkpoint');
  }
  assert.equal(mine.divergences, 0);
  assert.ok(mine.counters.stateTransfers + mine.counters.entriesFetched > 0, `replica ${victim} fetched entries or transferred state: ${JSON.stringify(mine.counters)}`);

  // Now stop another backup: only the primary, the restarted replica and one more remain (2f+1),
  // so every further operation needs the restarted replica's prepares and commits.
  await tc.stop(other, 'SIGTERM');
  const executedBefore = (await tc.status(victim)).counters.requestsExecuted;
  for (let i = 0; i < 10; i++) await step();
  const after = await tc.status(victim);
  assert.ok(after.counters.requestsExecuted >= executedBefore + 10, 'the restarted replica executes the ten new puts (gets are answered unordered)');
  // The two are read one after the other, so the primary may be a step ahead: wait for equality.
  await waitFor(async () => {
    const [mine, theirs] = await Promise.all([tc.status(victim), tc.status(primary)]);
    return mine.lastExecuted === theirs.lastExecuted;
  }, `replica ${victim} to have executed what the primary has`);
});
