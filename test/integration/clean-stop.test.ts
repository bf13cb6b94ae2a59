/**
 * Clean stops with real replica processes, WebSockets and RocksDB (src/core/horizon.ts, `clean`):
 * after SIGTERM a replica drains its writes and records a clean stop, so the next start votes at
 * once (no abstaining, so a whole-cluster restart needs no view change). A SIGKILL after that start
 * finds the record without its clean mark (the first turn rewrote it): that restart abstains. An
 * abstaining replica that is stopped with SIGTERM does not record a clean stop (its record still
 * bounds votes an earlier incarnation may have lost): it abstains again at its next start.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { PbftClient } from '../../src/client/client.ts';
import { TestCluster, waitFor } from './helpers.ts';

let tc: TestCluster;
let client: PbftClient;

before(async () => {
  tc = await TestCluster.create({ name: 'clean-stop', node: { logLevel: 'info' } });
  await tc.startAll();
  client = await tc.client(0);
});

after(async () => {
  await tc?.destroy();
});

const REPLICAS = [0, 1, 2, 3];

test('SIGTERM of the whole cluster, then a start: no replica abstains and the view does not change', async () => {
  for (let i = 0; i < 5; i++) await client.put(`k${i}`, `v${i}`);
  // Every replica has executed the puts (a put completes on f+1 replies).
  const target = (await tc.status(0)).lastExecuted;
  await waitFor(async () => (await Promise.all(REPLICAS.map((id) => tc.status(id)))).every((s) => s.lastExecuted >= target), 'every replica to execute the puts');
  const viewBefore = (await tc.status(0)).view;
  const firstStart = await Promise.all(REPLICAS.map((id) => tc.status(id)));
  await client.close();

  for (const id of REPLICAS) {
    const exit = await tc.stop(id, 'SIGTERM');
    assert.equal(exit.code, 0, `replica ${id} exits 0 after SIGTERM:\n${tc.allOutput(id)}`);
    assert.match(tc.allOutput(id), /stopped cleanly/, `replica ${id} recorded a clean stop`);
  }
  await tc.startAll();
  for (const id of REPLICAS) {
    const s = await tc.status(id);
    assert.equal(s.abstaining, undefined, `replica ${id} does not abstain after a clean stop`);
    assert.match(tc.output(id), /the last stop was clean/);
    // /status recovery: what the start read from the data directory, and how long reading and rebuilding took.
    const r = s.recovery;
    assert.ok(r.records > firstStart[id]!.recovery.records, `replica ${id} read more records (${r.records}) than at its first start on an empty directory (${firstStart[id]!.recovery.records})`);
    assert.ok(r.readSeconds >= 0 && r.rebuildSeconds >= 0 && r.readSeconds + r.rebuildSeconds < 60, `replica ${id}: ${JSON.stringify(r)}`);
    // The same in the start's log line, as values (not a nested object).
    assert.match(tc.output(id), new RegExp(`replica started .*recoveredRecords=${r.records} recoveryReadSeconds=[0-9.]+ recoveryRebuildSeconds=[0-9.]+`));
  }
  client = await tc.client(0);
  await client.put('after', 'restart');
  assert.equal(await client.get('k4'), 'v4', 'the data survived');
  assert.equal(await client.get('after'), 'restart');
  for (const id of REPLICAS) assert.equal((await tc.status(id)).view, viewBefore, `replica ${id}: no view change was needed`);
});

test('a SIGKILL after a clean start abstains (the clean mark was gone before anything left); stopped cleanly while abstaining, it abstains again', async () => {
  const primary = (await tc.status(0)).primary;
  const victim = primary === 3 ? 2 : 3;
  await client.put('before-kill', '1');
  const killed = await tc.stop(victim, 'SIGKILL');
  assert.equal(killed.signal, 'SIGKILL');
  await tc.start(victim);
  const s = await tc.status(victim);
  assert.ok(s.abstaining !== undefined, `replica ${victim} abstains after a SIGKILL: ${JSON.stringify(s.abstaining)}`);

  const stopped = await tc.stop(victim, 'SIGTERM');
  assert.equal(stopped.code, 0);
  assert.doesNotMatch(tc.output(victim), /stopped cleanly/, 'no clean stop while abstaining');
  await tc.start(victim);
  assert.ok((await tc.status(victim)).abstaining !== undefined, `replica ${victim} abstains again`);
  // The others (2f+1 with the primary) keep ordering meanwhile.
  await client.put('while-abstaining', '1');
  assert.equal(await client.get('while-abstaining'), '1');
});
