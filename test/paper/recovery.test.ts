/**
 * Recovery from stable storage: a replica rebuilt from what it persisted (every flush's writes and
 * clears, applied in order) is the same replica, and never signs a statement that conflicts with one
 * it signed before the crash (TOCS 2002 §2.3 on the log being kept in stable storage; DESIGN.md).
 * Its PRE-PREPAREs and PREPAREs may leave before their own writes (durability.ts, rule 1a), so a
 * restarted replica abstains: no PRE-PREPARE, PREPARE or COMMIT in a view up to its recorded horizon
 * view for a sequence number up to the recorded stable checkpoint + L.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  agree,
  cas,
  enterViewByNewView,
  frame,
  hex,
  linkFrame,
  ownCheckpoint,
  PAPER_TIME_MS,
  plannedNewView,
  put,
  result,
  sameBytes,
  Out,
  TestCluster,
  type Node,
} from './harness.ts';
import { encodeCleanToken } from '../../src/core/horizon.ts';
import { KEYS, recordNamedBy } from '../../src/core/persist.ts';
import { KvStore } from '../../src/app/kv.ts';
import { compareUtf8Names } from '../../src/core/recovery.ts';
import { resolveOptions } from '../../src/core/options.ts';
import { STORED_RECORDS_LIMIT } from '../../src/core/limits.ts';
import { encodePutMany, VALUE_BYTES_MAX } from '../../src/app/kv-ops.ts';
import type { WriteOp } from '../../src/core/ports.ts';

const k = new TestCluster({ f: 1 });

function snapshot(node: Node) {
  const s = node.replica.status();
  return {
    view: s.view,
    viewChanging: s.viewChanging,
    lastExecuted: s.lastExecuted,
    stable: s.stableCheckpoint,
    appDigest: hex(node.app.digest()),
  };
}

/** Agrees on `reqs` at sequence numbers 1, 2, ... in view 0; checkpoint 4 becomes stable (with replicas 0 and 1). */
function agreeWithStableCheckpointAt4(node: Node, reqs: ReturnType<typeof k.request>[]): void {
  for (let seq = 1; seq <= reqs.length; seq++) {
    const out = agree(node, 0, seq, [reqs[seq - 1]!]);
    if (seq === 4) {
      const d = ownCheckpoint(out)!.msg.digest;
      for (const r of [0, 1]) node.fromReplica(r, frame(k.checkpoint(r, 4, d)));
      node.flush();
    }
  }
}

/** The stored records keyed by checkpoint (persist.ts KEYS.record), ascending by key: key -> what it names. */
function recordsOnDisk(node: Node): Map<string, { seq: number; partition: number; name: string }> {
  const keys = [...node.disk.data.keys()].filter((key) => key.startsWith(KEYS.recordPrefix)).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  return new Map(keys.map((key) => [key, recordNamedBy(key, node.app.partitionCount)!]));
}

/**
 * Replica 2, restarted (it abstains from voting in view 0), executes `reqs` at `seq` on the votes of
 * the three others; at seq 8 their CHECKPOINTs make checkpoint 8 stable. Returns the last flush's writes.
 */
function executeOnOthersVotes(node: Node, seq: number, reqs: ReturnType<typeof k.request>[]): WriteOp[] {
  const digestOf = k.digest(reqs);
  node.fromReplica(0, frame(k.prePrepare(0, seq, digestOf, 0, 0), reqs));
  for (const r of [1, 3]) node.fromReplica(r, frame(k.prepare(r, 0, seq, digestOf)));
  node.flush();
  for (const r of [0, 1, 3]) node.fromReplica(r, frame(k.commit(r, 0, seq, digestOf)));
  const writes = node.flush().ready.writes;
  if (seq !== 8) return writes;
  assert.equal(node.replica.lastCheckpoint.seq, 8);
  const d = node.replica.lastCheckpoint.digest;
  for (const r of [0, 1, 3]) node.fromReplica(r, frame(k.checkpoint(r, 8, d)));
  return node.flush().ready.writes;
}

/** Restarts `node` from its disk: no damage reported, the same state digest. Returns the new node. */
function restartsClean(node: Node): Node {
  const digest = hex(node.app.digest());
  const { node: again, out } = node.restart();
  assert.deepEqual(out.eventsOf('stored-state-corrupt'), []);
  assert.equal(hex(again.app.digest()), digest);
  return again;
}

describe('recovery', () => {
  test('a replica rebuilt from its persisted writes has the same view, last executed sequence number, stable checkpoint and state digest', () => {
    const node = k.node(2);
    const reqs = [1, 2, 3, 4, 5, 6].map((seq) => k.request(seq % 4, seq, put(`key${seq % 3}`, `value${seq}`)));
    agreeWithStableCheckpointAt4(node, reqs);
    assert.equal(node.replica.h, 4);
    // Move to view 1 with a NEW-VIEW that carries the stable checkpoint and re-proposes 5 and 6.
    const cert = node.replica.stable;
    const prepared = [5, 6].map((seq) => k.preparedCert(0, seq, k.digest([reqs[seq - 1]!])));
    const vcs = [k.viewChange(1, 1, prepared, cert), k.viewChange(0, 1, [], cert), k.viewChange(3, 1, prepared, cert)];
    node.fromReplica(1, frame(plannedNewView(k, 1, vcs)));
    node.flush();
    assert.equal(node.replica.view, 1);
    const r7 = k.request(3, 7, put('seven', '7'));
    assert.deepEqual(agree(node, 1, 7, [r7]).eventsOf('executed').map((e) => e.seq), [7]);
    const before = snapshot(node);
    assert.deepEqual([before.view, before.lastExecuted, before.stable.seq], [1, 7, 4]);

    const { node: again, out } = node.restart();
    assert.deepEqual(snapshot(again), before);
    assert.deepEqual(
      out.eventsOf('executed').map((e) => e.seq),
      [5, 6, 7],
      'the committed log above the checkpoint is executed again into the application',
    );
    // It abstains in view 1 (it may have sent votes there that it no longer holds), and carries on:
    // seq 8 in view 1 executes on the others' certificate, without a vote of its own.
    assert.deepEqual(again.replica.status().abstaining, { view: 1, seq: 4 + again.replica.opts.windowSize });
    const r8 = k.request(0, 8, put('eight', '8'));
    const d8 = k.digest([r8]);
    again.fromReplica(1, frame(k.prePrepare(1, 8, d8, 1), [r8]));
    for (const r of [0, 3]) again.fromReplica(r, frame(k.prepare(r, 1, 8, d8)));
    const voted = again.flush();
    assert.equal(voted.of('prepare').length + voted.of('commit').length, 0, 'no vote while it abstains');
    for (const r of [0, 1, 3]) again.fromReplica(r, frame(k.commit(r, 1, 8, d8)));
    assert.deepEqual(again.flush().eventsOf('executed').map((e) => e.seq), [8]);
  });

  test('after sending PREPARE(v, n, d) and restarting, a PRE-PREPARE for (v, n) with another digest is rejected and no PREPARE for it is sent', () => {
    const node = k.node(1);
    const a = k.request(0, 1, put('a', '1'));
    const b = k.request(1, 1, put('b', '1'));
    const da = k.digest([a]);
    node.fromReplica(0, frame(k.prePrepare(0, 1, da), [a]));
    const sent = node.flush().distinct('prepare');
    assert.equal(sent.length, 1);

    const { node: again } = node.restart();
    again.fromReplica(0, frame(k.prePrepare(0, 1, k.digest([b])), [b]));
    const out = again.flush();
    assert.equal(out.of('prepare').length, 0);
    assert.equal(again.rejected('conflicting-preprepare'), 1);
    // Its own PREPARE still counts: one more matching PREPARE makes it prepared, with digest da; it
    // abstains in view 0 (no COMMIT) and executes da on the others' COMMITs.
    again.fromReplica(2, frame(k.prepare(2, 0, 1, da)));
    assert.equal(again.flush().of('commit').length, 0);
    for (const r of [0, 2, 3]) again.fromReplica(r, frame(k.commit(r, 0, 1, da)));
    assert.deepEqual(again.flush().eventsOf('executed').map((e) => [e.seq, hex(e.digest)]), [[1, hex(da)]]);
  });

  test('after a clean stop (the record names the token its database holds) it votes at once; with an older database it abstains', () => {
    const node = k.node(1);
    const a = k.request(0, 1, put('a', '1'));
    const da = k.digest([a]);
    node.fromReplica(0, frame(k.prePrepare(0, 1, da), [a]));
    assert.equal(node.flush().distinct('prepare').length, 1);
    // The stop drained (this harness writes every turn at once), then wrote its token and the record.
    const older = new Map(node.disk.data);
    const records = new Map(node.disk.data);
    records.set(KEYS.cleanStop, encodeCleanToken(41));
    const clean = { ...node.disk.horizon!, clean: 41 };

    const { node: again } = node.restart({ records, horizon: clean });
    assert.equal(again.replica.status().abstaining, undefined, 'no abstaining after a clean stop');
    // Its PREPARE for da is on disk: a conflicting PRE-PREPARE is still refused, and da commits with its vote.
    again.fromReplica(0, frame(k.prePrepare(0, 1, k.digest([k.request(1, 1, put('b', '1'))]))));
    assert.equal(again.flush().of('prepare').length, 0);
    assert.equal(again.rejected('conflicting-preprepare'), 1);
    again.fromReplica(2, frame(k.prepare(2, 0, 1, da)));
    assert.deepEqual(again.flush().distinct('commit').map((c) => hex(c.signed.msg.digest)), [hex(da)], 'it commits at once (it abstained before)');

    // The same record over a database without that token (an older image, a restored backup): abstains.
    for (const [db, what] of [
      [older, 'no token'],
      [new Map([...records, [KEYS.cleanStop, encodeCleanToken(40)]]), 'an older token'],
    ] as const) {
      const { node: restored } = node.restart({ records: db, horizon: clean });
      assert.deepEqual(restored.replica.status().abstaining, { view: 0, seq: restored.replica.opts.windowSize }, what);
    }
  });

  test('a primary restarted in its view never reuses a sequence number its NEW-VIEW assigned above its window', () => {
    // Replica 1, primary of view 1, at h = 0 (L = 8): the view changes carry a stable checkpoint at
    // 8 and prepared certificates at 9 and 10, so its NEW-VIEW re-proposes 9 and 10 above its window.
    const node = k.node(1);
    const stateDigest = new Uint8Array(32).fill(7);
    const cert = { epoch: 0, seq: 8, digest: stateDigest, proof: [0, 2, 3].map((r) => k.checkpoint(r, 8, stateDigest)) };
    const reqs = [9, 10].map((ts) => k.request(0, ts, put(`k${ts}`, 'v')));
    const prepared = [9, 10].map((seq, i) => k.preparedCert(0, seq, k.digest([reqs[i]!])));
    for (const r of [0, 2, 3]) node.fromReplica(r, frame(k.viewChange(r, 1, prepared, cert)));
    const nv = node.flush().distinct('newview');
    assert.equal(nv.length, 1, 'it sent its NEW-VIEW');
    assert.deepEqual(nv[0]!.signed.msg.prePrepares.map((pp) => pp.msg.seq), [9, 10]);
    assert.equal(node.replica.nextSeq, 11);

    const { node: again } = node.restart();
    assert.equal(again.replica.view, 1);
    assert.equal(again.replica.nextSeq, 11, 'its next proposal comes after the re-proposals it took back from disk');
  });

  test('after sending COMMIT(v, n, d) and restarting, the replica still commits d at n and executes it once', () => {
    const node = k.node(1);
    const a = k.request(0, 1, cas('lock', null, 'a'));
    const da = k.digest([a]);
    node.fromReplica(0, frame(k.prePrepare(0, 1, da), [a]));
    node.fromReplica(2, frame(k.prepare(2, 0, 1, da)));
    assert.equal(node.flush().distinct('commit').length, 1);
    const { node: again } = node.restart();
    for (const r of [0, 2]) again.fromReplica(r, frame(k.commit(r, 0, 1, da)));
    const out = again.flush();
    assert.deepEqual(out.eventsOf('executed').map((e) => e.seq), [1]);
    assert.deepEqual(result(out.replies[0]!.signed), { type: 'cas', swapped: true, current: 'a' });
  });

  test('a stored partition altered on disk, still well-formed, is caught by the checkpoint digest at recovery: the replica reports it and fetches the state', () => {
    // Recovery adopts stored partition bytes without re-hashing each key (KvStore.loadPartition): the
    // stored checkpoint digest, checked right after, is what must catch a changed partition.
    const node = k.node(2);
    const reqs = [1, 2, 3, 4].map((seq) => k.request(seq % 4, seq, put(`key${seq}`, `value${seq}`)));
    agreeWithStableCheckpointAt4(node, reqs);
    assert.equal(node.replica.h, 4);
    const records = new Map(node.disk.data);
    const stored = [...records.keys()].filter((key) => key.startsWith(KEYS.recordPrefix));
    // One record per key (persist.ts): b/<checkpoint>/<partition>/<key>.
    assert.equal(stored.length, 4, 'the checkpoint wrote one record per key');
    // Give one key's record another key's value: well-formed, but not what was certified.
    const [victim, donor] = [stored[0]!, stored[1]!];
    records.set(victim, records.get(donor)!);
    const intact = node.restart();
    assert.deepEqual(intact.out.eventsOf('stored-state-corrupt'), [], 'the intact disk recovers cleanly');
    const { node: again, out } = node.restart({ records });
    const reports = out.eventsOf('stored-state-corrupt');
    assert.equal(reports.length, 1, 'one report of the damage');
    assert.match(reports[0]!.reason, /does not match its checkpoint digest/);
    assert.equal(again.replica.status().transferring, true, 'it fetches the certified state instead of serving the damaged one');
  });

  test('a stable checkpoint stores one record per key, then writes only the records that changed; a restart rebuilds the state from them', () => {
    const node = k.node(2);
    const reqs = [1, 2, 3, 4].map((seq) => k.request(seq % 4, seq, put(`key${seq}`, `value${seq}`)));
    agreeWithStableCheckpointAt4(node, reqs);
    // No partition has more than storedRecordsMax keys: no base, one record per key, under checkpoint 4.
    assert.deepEqual([...node.disk.data.keys()].filter((key) => key.startsWith(KEYS.partitionPrefix)), []);
    const at4 = recordsOnDisk(node);
    assert.deepEqual([...at4.values()].map((r) => r.name).sort(), ['key1', 'key2', 'key3', 'key4']);
    for (const [key, r] of at4) assert.equal(key, KEYS.record(4, node.app.partitionOf(r.name), r.name));
    // Seqs 5-8 change key1, delete key2 and add key5 (key3 is written with its own value: no change).
    const more = [
      k.request(1, 5, put('key1', 'changed')),
      k.request(2, 6, { type: 'del', key: 'key2' }),
      k.request(3, 7, put('key3', 'value3')),
      k.request(0, 8, put('key5', 'value5')),
    ];
    let writesAt8: WriteOp[] = [];
    for (let seq = 5; seq <= 8; seq++) {
      const out = agree(node, 0, seq, [more[seq - 5]!]);
      if (seq === 8) {
        const d = ownCheckpoint(out)!.msg.digest;
        for (const r of [0, 1]) node.fromReplica(r, frame(k.checkpoint(r, 8, d)));
        writesAt8 = node.flush().ready.writes.filter((w) => w.key.startsWith(KEYS.partitionPrefix) || w.key.startsWith(KEYS.recordPrefix));
      }
    }
    assert.equal(node.replica.h, 8);
    // A deleted key's record is empty (persist.ts): it stays until its partition is next written whole.
    // A record written again replaces its key: the one under checkpoint 4 goes, one under 8 comes.
    const named = (w: WriteOp): string => {
      const r = recordNamedBy(w.key, node.app.partitionCount)!;
      return `${w.type === 'put' && w.value.length === 0 ? 'deleted' : w.type} ${r.name} at ${r.seq}`;
    };
    assert.deepEqual(writesAt8.map(named).sort(), ['del key1 at 4', 'del key2 at 4', 'deleted key2 at 8', 'put key1 at 8', 'put key5 at 8'], 'only the changed records are written');
    const at8 = recordsOnDisk(node);
    assert.deepEqual([...at8.values()].map((r) => `${r.name} at ${r.seq}`).sort(), ['key1 at 8', 'key2 at 8', 'key3 at 4', 'key4 at 4', 'key5 at 8']);
    const again = restartsClean(node);
    assert.equal(again.app.get('key1'), 'changed');
    assert.equal(again.app.get('key2'), null);
  });

  test('a partition is written whole again, its records deleted, once more than storedRecordsMax of its keys would have records', () => {
    const node = k.node(2);
    const DELTA_RECORDS_MAX = node.replica.opts.storedRecordsMax;
    assert.equal(DELTA_RECORDS_MAX, 16, 'the default');
    const n = node.app.partitionCount;
    // Keys of partition 0 only: 2 at first, then a few more per checkpoint until the records overflow.
    const keysOf0 = Array.from({ length: 400 }, (_, i) => `p0-${i}`).filter((key) => node.app.partitionOf(key) === 0);
    assert.ok(keysOf0.length > DELTA_RECORDS_MAX + 4, `${keysOf0.length} keys in partition 0 of ${n}`);
    const forms: string[] = [];
    let seq = 0;
    let written = 0;
    for (const batch of [2, 5, 5, 5, 5, 3]) {
      const keys = keysOf0.slice(written, written + batch);
      written += batch;
      const reqs = [k.request(0, 100 + seq, encodePutMany(keys.map((key) => [key, 'v']))), ...[1, 2, 3].map((c) => k.request(c, 100 + seq, { type: 'get', key: 'p0-0' }))];
      for (const r of reqs) {
        seq++;
        const out = agree(node, 0, seq, [r]);
        if (seq % 4 === 0) {
          const d = ownCheckpoint(out)!.msg.digest;
          for (const r2 of [0, 1]) node.fromReplica(r2, frame(k.checkpoint(r2, seq, d)));
          node.flush();
        }
      }
      assert.equal(node.replica.h, seq, 'each round ends at a stable checkpoint');
      const base = node.disk.data.get(KEYS.partition(0));
      // In storage order (ascending by UTF-8 bytes, as a scan returns them).
      // Partition 0's records, ascending by name (as joinPartition takes them).
      const records = [...recordsOnDisk(node)].filter(([, r]) => r.partition === 0).sort(([, a], [, b]) => Buffer.compare(Buffer.from(a.name), Buffer.from(b.name)));
      assert.equal([...node.disk.data.keys()].filter((key) => key.startsWith(`${KEYS.partition(0)}/`)).length, 0, 'no record in the older layout');
      assert.ok(records.length <= DELTA_RECORDS_MAX, `${records.length} records`);
      forms.push(base === undefined ? `records ${records.length}` : records.length === 0 ? 'base' : `base + ${records.length}`);
      // What is on disk is the partition: base and records joined.
      const joined = node.app.joinPartition(0, base, records.map(([key, r]) => [r.name, node.disk.data.get(key)!] as [string, Uint8Array]));
      assert.ok(joined.ok);
      assert.deepEqual(joined.value, node.app.readPartition(0));
    }
    assert.deepEqual(forms, ['records 2', 'records 7', 'records 12', 'base', 'base + 5', 'base + 8']);
    restartsClean(node);
  });

  test('storedRecordsMax is 1-1024; a restart reads up to 1,024 records per partition whatever it is set to now', () => {
    assert.throws(() => resolveOptions({ storedRecordsMax: 0 }), /storedRecordsMax must be a positive integer/);
    assert.throws(() => resolveOptions({ storedRecordsMax: STORED_RECORDS_LIMIT + 1 }), /storedRecordsMax must be an integer from 1 to 1024/);
    assert.equal(resolveOptions({ storedRecordsMax: 1 }).storedRecordsMax, 1);
    // 5 keys of partition 0 stored as 5 records with the default; restarted with storedRecordsMax 1.
    const node = k.node(2);
    const keysOf0 = Array.from({ length: 100 }, (_, i) => `p0-${i}`).filter((key) => node.app.partitionOf(key) === 0).slice(0, 5);
    const first = k.request(0, 1, encodePutMany(keysOf0.map((key) => [key, 'v'])));
    agreeWithStableCheckpointAt4(node, [first, ...[1, 2, 3].map((c) => k.request(c, 1, { type: 'get', key: 'p0-0' }))]);
    assert.equal([...recordsOnDisk(node).values()].filter((r) => r.partition === 0).length, 5);
    const digest = hex(node.app.digest());
    const { node: again, out } = node.restart({ options: { storedRecordsMax: 1 } });
    assert.equal(again.replica.opts.storedRecordsMax, 1);
    assert.deepEqual(out.eventsOf('stored-state-corrupt'), []);
    assert.equal(hex(again.app.digest()), digest);
  });

  test('partitions stored whole (as an earlier version did) serve as bases: a change adds a record beside the base, and a restart joins them', () => {
    const node = k.node(2);
    const reqs = [1, 2, 3, 4].map((seq) => k.request(seq % 4, seq, put(`key${seq}`, `value${seq}`)));
    agreeWithStableCheckpointAt4(node, reqs);
    // The disk as an earlier version wrote it: each partition as one record a/<index>.
    const old = new Map([...node.disk.data].filter(([key]) => !key.startsWith(KEYS.partitionPrefix) && !key.startsWith(KEYS.recordPrefix)));
    const indices = new Set([1, 2, 3, 4].map((i) => node.app.partitionOf(`key${i}`)));
    for (const i of indices) old.set(KEYS.partition(i), node.app.readPartition(i));
    const digest = hex(node.app.digest());
    const { node: again, out } = node.restart({ records: old });
    assert.deepEqual(out.eventsOf('stored-state-corrupt'), [], 'the earlier layout recovers cleanly');
    assert.equal(hex(again.app.digest()), digest);
    // key1 changes at seq 5; checkpoint 8 becomes stable: key1's partition is now stored as records.
    const changed = node.app.partitionOf('key1');
    const more = [5, 6, 7, 8].map((seq) => k.request(seq % 4, seq + 10, put(seq === 5 ? 'key1' : `other${seq}`, 'new')));
    for (let seq = 5; seq <= 8; seq++) executeOnOthersVotes(again, seq, [more[seq - 5]!]);
    assert.equal(again.replica.h, 8);
    assert.ok(again.disk.data.has(KEYS.partition(changed)), 'the base of the changed partition stays');
    assert.deepEqual(again.disk.data.get(KEYS.partition(changed)), node.app.readPartition(changed), 'unchanged');
    const records = [...recordsOnDisk(again)].filter(([, r]) => r.partition === changed).map(([key]) => key);
    assert.ok(records.includes(KEYS.record(8, changed, 'key1')), `the changed key is a record beside it (${records.join(', ')})`);
    const unchanged = [2, 3, 4].map((i) => `key${i}`).filter((key) => node.app.partitionOf(key) === changed);
    for (const key of unchanged) assert.ok(!records.some((r) => recordNamedBy(r, node.app.partitionCount)!.name === key), `no record of the unchanged ${key}`);
    restartsClean(again);
  });

  test('records stored under their partition (as the version before records by checkpoint did) are read; a record replacing one deletes its older key', () => {
    const node = k.node(2);
    const reqs = [1, 2, 3, 4].map((seq) => k.request(seq % 4, seq, put(`key${seq}`, `value${seq}`)));
    agreeWithStableCheckpointAt4(node, reqs);
    // The disk as that version wrote it: each record as a/<partition>/<name>.
    const old = new Map([...node.disk.data].filter(([key]) => !key.startsWith(KEYS.recordPrefix)));
    for (const [key, r] of recordsOnDisk(node)) old.set(KEYS.partitionRecord(r.partition, r.name), node.disk.data.get(key)!);
    const digest = hex(node.app.digest());
    const { node: again, out } = node.restart({ records: old });
    assert.deepEqual(out.eventsOf('stored-state-corrupt'), [], 'the older layout recovers cleanly');
    assert.equal(hex(again.app.digest()), digest);
    // key1 changes at seq 5; checkpoint 8 becomes stable.
    const p1 = node.app.partitionOf('key1');
    let writesAt8: WriteOp[] = [];
    for (let seq = 5; seq <= 8; seq++) writesAt8 = executeOnOthersVotes(again, seq, [k.request(seq % 4, seq + 10, put(seq === 5 ? 'key1' : `other${seq}`, 'new'))]);
    assert.equal(again.replica.h, 8);
    const ops = writesAt8.map((w) => `${w.type} ${w.key}`);
    assert.ok(ops.includes(`del ${KEYS.partitionRecord(p1, 'key1')}`), `the older key of key1 is deleted (${ops.join(', ')})`);
    assert.ok(ops.includes(`put ${KEYS.record(8, p1, 'key1')}`), 'and its record written under checkpoint 8');
    assert.equal(again.disk.data.has(KEYS.partitionRecord(p1, 'key1')), false);
    // Unchanged keys keep their older records, and both layouts are read together.
    const key3 = node.app.partitionOf('key3');
    if (key3 !== p1) assert.ok(again.disk.data.has(KEYS.partitionRecord(key3, 'key3')));
    const third = restartsClean(again);
    assert.equal(third.app.get('key1'), 'new');
    assert.equal(third.app.get('key3'), 'value3');
  });

  test('a record key that names no record of a partition, or a name stored twice, makes the stored state unusable: reported, and the state fetched', () => {
    const node = k.node(2);
    const reqs = [1, 2, 3, 4].map((seq) => k.request(seq % 4, seq, put(`key${seq}`, `value${seq}`)));
    agreeWithStableCheckpointAt4(node, reqs);
    const [key, r] = [...recordsOnDisk(node)][0]!;
    const cases: Array<[string, Map<string, Uint8Array>, RegExp, number]> = [
      ['a malformed key', new Map([...node.disk.data, ['b/zz-stray', Uint8Array.of(1, 0x41)]]), /stored record key "b\/zz-stray" is malformed/, 0],
      ['a name twice', new Map([...node.disk.data, [KEYS.partitionRecord(r.partition, r.name), node.disk.data.get(key)!]]), /is stored twice/, r.partition],
    ];
    for (const [what, records, reason, index] of cases) {
      for (const streamed of [false, true]) {
        const { node: again, out } = node.restart({ records, streamed });
        const reports = out.eventsOf('stored-state-corrupt');
        assert.equal(reports.length, 1, `${what}, streamed ${streamed}`);
        assert.match(reports[0]!.reason, reason);
        assert.ok((again.replica.dropOnPersist.get(index)?.length ?? 0) > 0, `${what}: the partition's keys are deleted when it is next written`);
        assert.equal(again.replica.status().transferring, true);
      }
    }
  });

  test('records whose values add up to more than one of the loader\'s 4 MiB chunks come back whole (streamed and not)', () => {
    const node = k.node(2);
    const big = (i: number): string => String.fromCharCode(0x61 + i).repeat(VALUE_BYTES_MAX);
    const outs = [0, 1, 2, 3].map((i) => agree(node, 0, i + 1, [k.request(i, 1, put(`big${i}`, big(i)))]));
    // A checkpoint over partitions this large is computed over several turns.
    for (let turns = 0; node.replica.checkpointPending && turns < 100; turns++) outs.push(node.flush());
    const d = ownCheckpoint(Out.merge(outs))!.msg.digest;
    for (const r of [0, 1]) node.fromReplica(r, frame(k.checkpoint(r, 4, d)));
    node.flush();
    assert.equal(node.replica.h, 4, 'checkpoint 4 is stable');
    const held = [...recordsOnDisk(node).keys()].reduce((n, key) => n + node.disk.data.get(key)!.length, 0);
    assert.ok(held > 4 * 1024 * 1024, `records of ${held} bytes on disk`);
    for (const streamed of [false, true]) {
      const { node: again, out } = node.restart({ streamed });
      assert.deepEqual(out.eventsOf('stored-state-corrupt'), [], `streamed ${streamed}`);
      for (const i of [0, 1, 2, 3]) assert.equal(again.app.get(`big${i}`), big(i), `streamed ${streamed}: big${i}`);
      assert.equal(hex(again.app.digest()), hex(node.app.digest()));
    }
  });

  test('a record key names its checkpoint, partition and record by position; any other key of the records range names none', () => {
    const count = 65536;
    assert.deepEqual(recordNamedBy(KEYS.record(12, 345, 'k/é/\u{1f600}'), count), { seq: 12, partition: 345, name: 'k/é/\u{1f600}' });
    assert.deepEqual(recordNamedBy(KEYS.record(Number.MAX_SAFE_INTEGER, count - 1, 'x'), count), { seq: Number.MAX_SAFE_INTEGER, partition: count - 1, name: 'x' });
    const good = KEYS.record(12, 345, 'k');
    const bad = [
      KEYS.record(12, 345, ''), // no name
      KEYS.record(12, count, 'k'), // no such partition
      `b/${'9'.repeat(16)}/000345/k`, // a seq above 2^53
      good.replace('/0000000000000012/', '/000000000000001x/'),
      good.replace('/0000000000000012/', '/-000000000000012/'),
      good.replace('/000345/', '/00 345/'),
      good.replace('/000345/', '/0003456/'),
      good.replace('/000345/', '-000345/'),
      good.replace('/000345/', '/000345-'),
      'b/0000000000000012/000345',
      'b/12/345/k',
      'b/',
      'c/0000000000000012/000345/k',
    ];
    for (const key of bad) assert.equal(recordNamedBy(key, count), undefined, JSON.stringify(key));
  });

  test('record names are ordered as their UTF-8 bytes, as storage keys are (ASCII, accents, the BMP above the surrogates, astral planes)', () => {
    const names = ['a', 'ab', 'b', 'z', '~', 'é', 'ü', '\u07ff', '\u0800', '\ud7ff', '\ue000', '\uffff', '\u{10000}', '\u{1f600}', 'a\u{1f600}', 'a\uffff', 'a\ue000b', 'a\u{10000}z'];
    for (const x of names) {
      for (const y of names) {
        const bytes = Math.sign(Buffer.compare(Buffer.from(x, 'utf8'), Buffer.from(y, 'utf8')));
        assert.equal(Math.sign(compareUtf8Names(x, y)), bytes, `${JSON.stringify(x)} vs ${JSON.stringify(y)}`);
      }
    }
  });

  test('an unreadable partition record is reported at restart, the state fetched, and the partition stored again in full at the next stable checkpoint', () => {
    const node = k.node(2);
    const reqs = [1, 2, 3, 4].map((seq) => k.request(seq % 4, seq, put(`key${seq}`, `value${seq}`)));
    agreeWithStableCheckpointAt4(node, reqs);
    const records = new Map(node.disk.data);
    const victim = [...records.keys()].find((key) => key.startsWith(KEYS.recordPrefix))!;
    const index = recordNamedBy(victim, node.app.partitionCount)!.partition;
    const stray = KEYS.record(4, index, 'zzz-stray');
    records.set(victim, Uint8Array.of(0xff, 0x13)); // an unknown value type
    records.set(stray, Uint8Array.of(1, 0x41));
    const { node: again, out } = node.restart({ records });
    const reports = out.eventsOf('stored-state-corrupt');
    assert.equal(reports.length, 1);
    assert.match(reports[0]!.reason, /stored partition \d+ is malformed/);
    assert.equal(again.replica.status().transferring, true, 'it fetches the certified state');
    // Its stored keys are deleted when it is next written (persistPartition), whatever the state then.
    assert.deepEqual(again.replica.dropOnPersist.get(index)?.slice().sort(), [victim, stray].sort());
    assert.equal(again.replica.persistedPartitions[index], undefined);
    assert.equal(again.replica.persistedRecords.has(index), false);
  });

  test('recovery in two steps, the partitions given one key at a time in key order (as the replica shell streams them), rebuilds the same replica', () => {
    const node = k.node(2);
    const reqs = [1, 2, 3, 4].map((seq) => k.request(seq % 4, seq, put(`key${seq}`, `value${seq}`)));
    agreeWithStableCheckpointAt4(node, reqs);
    // Records beside bases: key1 changed after the stable checkpoint at 4, then checkpoint 8 stable.
    for (let seq = 5; seq <= 8; seq++) {
      const out = agree(node, 0, seq, [k.request(seq % 4, seq, put('key1', `v${seq}`))]);
      if (seq === 8) {
        const d = ownCheckpoint(out)!.msg.digest;
        for (const r of [0, 1]) node.fromReplica(r, frame(k.checkpoint(r, 8, d)));
        node.flush();
      }
    }
    assert.ok(recordsOnDisk(node).size > 0, 'a partition record is stored');
    const { node: once, out: onceOut } = node.restart();
    const { node: streamed, out: streamedOut } = node.restart({ streamed: true });
    assert.deepEqual(streamedOut.eventsOf('stored-state-corrupt'), []);
    assert.deepEqual(snapshot(streamed), snapshot(once));
    assert.deepEqual(snapshot(streamed), snapshot(node));
    assert.deepEqual([...streamed.replica.persistedRecords.entries()].map(([i, names]) => [i, [...names].sort()]), [...once.replica.persistedRecords.entries()].map(([i, names]) => [i, [...names].sort()]));
    assert.deepEqual(onceOut.eventsOf('stored-state-corrupt'), []);
    assert.equal(streamed.app.get('key1'), 'v8');
  });

  test('streamed recovery: a stored key naming no partition counts against partition 0 wherever it arrives; a key after its partition\'s turn is refused', () => {
    const node = k.node(2);
    const reqs = [1, 2, 3, 4].map((seq) => k.request(seq % 4, seq, put(`key${seq}`, `value${seq}`)));
    agreeWithStableCheckpointAt4(node, reqs);
    // 'a/zz-stray' sorts after every partition's keys: partition 0 is loaded last, so it still counts.
    const records = new Map(node.disk.data);
    records.set('a/zz-stray', Uint8Array.of(1, 0x41));
    for (const streamed of [false, true]) {
      const { node: again, out } = node.restart({ records, streamed });
      const reports = out.eventsOf('stored-state-corrupt');
      assert.equal(reports.length, 1, `streamed ${streamed}`);
      assert.match(reports[0]!.reason, /stored partition key "a\/zz-stray" is malformed/);
      assert.ok(again.replica.dropOnPersist.get(0)?.includes('a/zz-stray'), `streamed ${streamed}: deleted with partition 0`);
      assert.equal(again.replica.status().transferring, true);
    }
    // Keys out of order: a storage that broke its contract. Refused with a throw (the shell refuses to start).
    const core = k.newCore(2, new KvStore({ partitionCount: node.app.partitionCount }));
    const step = core.beginRecovery([...node.disk.data].filter(([key]) => !key.startsWith(KEYS.partitionPrefix) && !key.startsWith(KEYS.recordPrefix)));
    assert.ok(step.partitions !== undefined, 'the stored checkpoint is usable');
    step.partitions.add(KEYS.partition(2), node.app.readPartition(2));
    assert.throws(() => step.partitions!.add(KEYS.partition(1), node.app.readPartition(1)), /arrived after partition 2's \(the storage must return keys in order\)/);
    // Records come first: one given after a partition key is refused (its partition may have loaded without it).
    assert.throws(() => step.partitions!.addRecord(KEYS.record(4, 1, 'k'), Uint8Array.of(1)), /arrived after partition keys \(give every record first\)/);
    assert.throws(() => step.partitions!.addRecord(KEYS.partition(3), Uint8Array.of(1)), /is not a record key/);
    // The first step takes neither a partition key nor a partition's record.
    const partitionKeys: Array<[string, Uint8Array]> = [[KEYS.partition(1), node.app.readPartition(1)]];
    const fresh = k.newCore(2, new KvStore({ partitionCount: node.app.partitionCount }));
    assert.throws(() => fresh.beginRecovery(partitionKeys), /is a partition key/);
    assert.throws(() => fresh.beginRecovery([[KEYS.record(4, 1, 'k'), Uint8Array.of(1)]]), /is a partition record key \(give it to the step's partitions loader: addRecord\)/);
  });

  test('a restarted primary does not reuse a sequence number it already assigned', () => {
    const node = k.node(0);
    const assigned: number[] = [];
    for (const c of [0, 1]) {
      node.fromClient(c, frame(k.request(c, 1, put(`k${c}`, 'v'))));
      assigned.push(...node.flush().distinct('preprepare').map((p) => p.signed.msg.seq));
    }
    assert.deepEqual(assigned, [1, 2]);
    const { node: again } = node.restart();
    again.fromClient(2, frame(k.request(2, 1, put('k2', 'v'))));
    // It abstains in view 0 (a PRE-PREPARE it sent may be lost): it proposes nothing there, and its
    // next sequence number is above what it assigned, for when it may propose again.
    assert.equal(again.flush().distinct('preprepare').length, 0);
    assert.equal(again.replica.nextSeq, 3);
  });

  test('a restarted primary that executed part of what it assigned still does not reuse a sequence number', () => {
    const node = k.node(0);
    const reqs = [0, 1, 2].map((c) => k.request(c, 1, put(`k${c}`, 'v')));
    for (const r of reqs) {
      node.fromClient(r.msg.client, frame(r));
      node.flush();
    }
    agree(node, 0, 1, [reqs[0]!]);
    assert.equal(node.replica.lastExecuted, 1);
    const { node: again } = node.restart();
    assert.equal(again.replica.lastExecuted, 1);
    again.fromClient(3, frame(k.request(3, 1, put('k3', 'v'))));
    assert.equal(again.flush().distinct('preprepare').length, 0, 'it abstains in view 0');
    assert.equal(again.replica.nextSeq, 4);
  });

  test('a replica that sent VIEW-CHANGE for v+1 and restarted stays in the view change and rejects messages of view v', () => {
    const node = k.node(2);
    node.fromClient(0, frame(k.request(0, 1, put('a', '1'))));
    node.flush();
    let sent = false;
    for (let i = 0; i < 100 && !sent; i++) sent = node.tickWithPeers().some((o) => o.distinct('viewchange').length > 0);
    assert.ok(sent, 'a VIEW-CHANGE was sent');
    const { node: again } = node.restart();
    assert.equal(again.replica.view, 1);
    assert.equal(again.replica.viewChanging, true);
    const req = k.request(1, 1, put('b', '1'));
    again.fromReplica(0, frame(k.prePrepare(0, 1, k.digest([req])), [req]));
    assert.equal(again.flush().of('prepare').length, 0);
    assert.equal(again.rejected('old-view'), 1);
    // Its own VIEW-CHANGE was restored: with two more for view 1 it has 2f+1, starts the new-view
    // timer, and (no NEW-VIEW coming) moves on to view 2.
    again.fromReplica(1, frame(k.viewChange(1, 1)));
    again.fromReplica(3, frame(k.viewChange(3, 1)));
    again.flush();
    let next: number | undefined;
    for (let i = 0; i < 1000 && next === undefined; i++) next = again.tick()[0]!.distinct('viewchange')[0]?.signed.msg.view;
    assert.equal(next, 2);
  });

  test('the reply cache survives a restart: a retransmitted request is answered, not executed again', () => {
    const node = k.node(1);
    const req = k.request(0, 1, cas('lock', null, 'owner'));
    const first = agree(node, 0, 1, [req]).replies[0]!;
    const { node: again } = node.restart();
    const digest = hex(again.app.digest());
    again.fromClient(0, frame(req));
    const out = again.flush();
    assert.equal(out.eventsOf('executed').length, 0);
    assert.equal(out.replies.length, 1);
    assert.deepEqual(result(out.replies[0]!.signed), { type: 'cas', swapped: true, current: 'owner' });
    assert.ok(sameBytes(out.replies[0]!.signed.msg.result, first.signed.msg.result));
    assert.equal(hex(again.app.digest()), digest);
  });
});

describe('recovery from lost durable state (a damaged or truncated log)', () => {
  /** Replica 2 executes seqs 1..upTo in view 0; returns the image of its records after seq `imageAt`. */
  function run(upTo: number, imageAt: number) {
    const node = k.node(2);
    let image = new Map<string, Uint8Array>();
    const reqs: ReturnType<typeof k.request>[] = [];
    for (let seq = 1; seq <= upTo; seq++) {
      const req = k.request(seq % 4, seq, put(`key${seq}`, `value${seq}`));
      reqs.push(req);
      agree(node, 0, seq, [req]);
      if (seq === imageAt) image = new Map(node.disk.data);
    }
    return { node, image, reqs };
  }

  test('a restart with records behind the horizon record reports the loss and signs nothing it may have signed before', () => {
    const { node, image } = run(3, 1);
    assert.deepEqual(node.disk.horizon, { view: 0, stable: 0, executed: 3 });
    const { node: again, out } = node.restart({ records: image });
    const lost = out.eventsOf('stored-state-lost');
    assert.equal(lost.length, 1);
    assert.deepEqual(lost[0]!.reasons, ['executed 1 < 3 recorded']);
    assert.deepEqual(lost[0]!.floor, { view: 0, seq: 8 }, 'no vote in view 0; no VIEW-CHANGE before stable checkpoint 0 + L');
    assert.deepEqual(again.replica.status().recovering, { view: 0, seq: 8 });
    // In view 0 it neither prepares nor commits (it may have, differently, before).
    const req = k.request(0, 40, put('x', 'y'));
    const d = k.digest([req]);
    again.fromReplica(0, frame(k.prePrepare(0, 2, d), [req]));
    for (const r of [1, 3]) again.fromReplica(r, frame(k.prepare(r, 0, 2, d)));
    const quiet = again.flush();
    assert.equal(quiet.of('prepare').length + quiet.of('commit').length, 0);
    // Its request timer fires, and f+1 others move on: it follows the view change but sends no VIEW-CHANGE.
    const outs = again.tick(200);
    for (const r of [0, 3]) again.fromReplica(r, frame(k.viewChange(r, 2)));
    outs.push(again.flush());
    assert.equal(outs.flatMap((o) => o.of('viewchange')).length, 0);
    assert.ok(again.replica.view >= 1 && again.replica.status().viewChanging);
    // The floor survives another restart (and the horizon record still says what it had).
    const { node: third, out: out3 } = again.restart();
    assert.deepEqual(third.replica.status().recovering, { view: 0, seq: 8 });
    assert.equal(out3.eventsOf('stored-state-lost').length, 1, 'still behind the record');
  });

  test('in a view above the floor it votes again; once its stable checkpoint passes the floor it signs everything again', () => {
    const { node, image, reqs } = run(3, 1);
    const { node: again } = node.restart({ records: image });
    const view = 1;
    const nvOut = (() => {
      const senders = [1, 0, 3];
      again.fromReplica(1, frame(k.newView(view, senders.map((r) => k.viewChange(r, view)), [])));
      return again.flush();
    })();
    assert.equal(again.replica.view, 1);
    assert.equal(nvOut.eventsOf('view-entered').length, 1);
    const req = k.request(1, 50, put('in-view-1', 'y'));
    again.fromReplica(1, frame(k.prePrepare(view, 2, k.digest([req])), [req]));
    assert.equal(again.flush().of('prepare').length, 3, 'view 1 is above the floor: it prepares');
    // Catch up to seq 8 on the others' certificates (the history of view 0, then view 1), and the
    // checkpoint at 8 becomes stable: the floor is passed.
    const ref = k.node(3);
    const history = [...reqs.slice(0, 1)];
    for (let seq = 2; seq <= 8; seq++) history.push(seq === 2 ? req : k.request(seq % 4, 100 + seq, put(`later${seq}`, '1')));
    agree(ref, 0, 1, [history[0]!]);
    enterViewByNewView(ref, view);
    let digest8: Uint8Array | undefined;
    for (let seq = 2; seq <= 8; seq++) {
      const out = agree(ref, view, seq, [history[seq - 1]!]);
      if (seq === 8) digest8 = ownCheckpoint(out)!.msg.digest;
    }
    const entries = [];
    for (let seq = 2; seq <= 8; seq++) {
      const batch = [history[seq - 1]!];
      const d = k.digest(batch);
      entries.push({ seq, batch, commits: [0, 1, 3].map((r) => k.commit(r, view, seq, d)), time: PAPER_TIME_MS });
    }
    again.fromReplica(3, linkFrame({ type: 'fetched', entries, stable: k.genesis, proofs: [] }));
    again.flush();
    assert.equal(again.replica.lastExecuted, 8);
    for (const r of [0, 1, 3]) again.fromReplica(r, frame(k.checkpoint(r, 8, digest8!)));
    const resumed = again.flush();
    assert.equal(again.replica.h, 8);
    assert.deepEqual(resumed.eventsOf('signing-resumed').map((e) => [e.view, e.stable]), [[1, 8]]);
    assert.equal(again.replica.status().recovering, undefined);
    // VIEW-CHANGE again: f+1 others move to view 2, and it joins with its own.
    for (const r of [0, 3]) again.fromReplica(r, frame(k.viewChange(r, 2, [], again.replica.stable)));
    assert.deepEqual(again.flush().distinct('viewchange').map((v) => [v.signed.msg.replica, v.signed.msg.view]), [[2, 2]]);
  });

  test('a damaged log with no horizon record to bound what it signed: the replica refuses to start', () => {
    const { node } = run(2, 1);
    assert.throws(() => node.restart({ horizon: null, damage: 'write-ahead log 000004.log damaged at byte 400 (checksum mismatch), with valid records after it' }), /no horizon record bounds what this replica signed before/);
    // With the record, the same damage makes it a recovering replica.
    const { out } = node.restart({ damage: 'write-ahead log 000004.log damaged at byte 400 (checksum mismatch), with valid records after it' });
    assert.equal(out.eventsOf('stored-state-lost')[0]?.reasons[0], 'write-ahead log 000004.log damaged at byte 400 (checksum mismatch), with valid records after it');
  });

  test('an ordinary crash and restart finds nothing lost', () => {
    const { node } = run(5, 1);
    const { node: again, out } = node.restart();
    assert.equal(out.eventsOf('stored-state-lost').length, 0);
    assert.equal(again.replica.status().recovering, undefined);
    assert.equal(again.replica.lastExecuted, 5);
  });
});
