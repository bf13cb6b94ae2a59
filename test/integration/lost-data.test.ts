/**
 * Lost durable state, with real replica processes and real RocksDB: 400 bytes of a stopped replica's
 * write-ahead log overwritten. RocksDB alone recovers silently up to the damage (the replica used to
 * start with lastExecuted=0 after executing 8, ready to vote again on what it had signed). Now the
 * replica finds the damage and that it is behind its horizon record, says so in one line, rejoins as a
 * recovering replica and catches up; without a horizon record to bound what it signed it refuses to
 * start, with one line.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { PbftClient } from '../../src/client/client.ts';
import { decodeHorizon } from '../../src/core/horizon.ts';
import { HORIZON_FILE } from '../../src/storage/rocksdb.ts';
import { horizonRecordOf } from '../../src/storage/horizon-file.ts';
import { TestCluster, waitFor } from './helpers.ts';

let tc: TestCluster;
let client: PbftClient;
const clusters: TestCluster[] = [];

/** A fresh cluster per test: a recovering replica counts as faulty for a while, like a crashed one. */
async function freshCluster(name: string): Promise<void> {
  tc = await TestCluster.create({ name });
  clusters.push(tc);
  await tc.startAll();
  client = await tc.client(0);
}

after(async () => {
  await Promise.all(clusters.map((c) => c.destroy()));
});

/** Executes `count` puts, waits until replica `id` executed them and its horizon record says so. */
async function runAndRecord(id: number, from: number, count: number): Promise<number> {
  for (let i = from; i < from + count; i++) await client.put(`k${i}`, `v${i}`);
  // Each put completed on f+1 replies: f+1 replicas executed it, at least one of them other than
  // `id`, but not necessarily replica 0 (on a busy machine any one replica may lag behind the
  // others), so the bound is the highest the others report.
  const others = [0, 1, 2, 3].filter((r) => r !== id);
  const executed = Math.max(...(await Promise.all(others.map((r) => tc.status(r)))).map((s) => s.lastExecuted));
  await waitFor(async () => (await tc.status(id)).lastExecuted >= executed, `replica ${id} to execute ${executed}`);
  await waitFor(() => {
    const found = horizonRecordOf(new Uint8Array(readFileSync(join(tc.dataDir(id), HORIZON_FILE))));
    if (!('record' in found)) return false;
    const h = decodeHorizon(found.record);
    return h.ok && h.value.executed >= executed;
  }, `replica ${id}'s horizon record to say it executed ${executed}`);
  return executed;
}

/** SIGKILLs replica `id` (the process that does the work) and overwrites 400 bytes of its write-ahead log. */
async function killAndDamage(id: number): Promise<void> {
  const pid = tc.procs[id]!.proc.pid!;
  const exit = await tc.stop(id, 'SIGKILL');
  assert.equal(exit.signal, 'SIGKILL');
  assert.throws(() => process.kill(pid, 0), /ESRCH/, 'the replica process is gone');
  const dir = tc.dataDir(id);
  const log = readdirSync(dir).find((n) => /^\d+\.log$/.test(n));
  assert.ok(log, 'a write-ahead log');
  const path = join(dir, log);
  const wal = readFileSync(path);
  assert.ok(wal.length > 1200, `the log holds the writes (${wal.length} bytes)`);
  wal.fill(0x5a, 300, 700);
  writeFileSync(path, wal);
}

test('a replica whose write-ahead log was damaged notices, says so in one line, rejoins without voting on what it may have signed, and catches up', async () => {
  await freshCluster('lost-data');
  const executed = await runAndRecord(3, 0, 8);
  assert.ok(executed >= 8);
  await killAndDamage(3);
  await tc.start(3);
  const s = await tc.status(3);
  assert.equal(s.storedStateLosses, 1);
  assert.ok(s.recovering, 'recovering: it signs nothing it may have signed before');
  assert.equal(s.recovering.view, 0);
  const lines = tc.output(3).split('\n').filter((l) => l.includes('durable state is missing or damaged'));
  assert.equal(lines.length, 1, tc.output(3));
  assert.match(lines[0]!, /write-ahead log \d+\.log damaged at byte \d+ \(checksum mismatch\)/);
  assert.match(lines[0]!, /executed \d+ < \d+ recorded/);
  // The cluster keeps serving; the replica catches up on the others' certificates.
  const later = await runAndRecord(3, 100, 8);
  assert.ok((await tc.status(3)).lastExecuted >= later);
  assert.match(await tc.metrics(3), /^pbft_stored_state_losses_total 1$/m);
});

test('the same damage without a horizon record: the replica refuses to start, with one line', async () => {
  await freshCluster('lost-data-unbounded');
  await runAndRecord(2, 200, 8);
  await killAndDamage(2);
  rmSync(join(tc.dataDir(2), HORIZON_FILE));
  assert.equal(existsSync(join(tc.dataDir(2), HORIZON_FILE)), false);
  const err = await tc.start(2).then(
    () => undefined,
    (e: unknown) => e as Error,
  );
  assert.ok(err, 'the replica started');
  const errors = tc.output(2).split('\n').filter((l) => l.startsWith('pbft replica:'));
  assert.equal(errors.length, 1, tc.output(2));
  assert.match(errors[0]!, /damaged at byte \d+ .* no horizon record bounds what this replica signed before/);
  // The other three keep serving.
  await client.put('still', 'serving');
  assert.equal(await client.get('still'), 'serving');
});
