/**
 * What a faulty peer can make a correct replica store. Before these rules an unrequested `batch`
 * link message was accepted for any slot and written to disk (l/<seq>/b/<digest>) until the next
 * stable checkpoint: a byzantine replica could fill a correct replica's disk.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { frame, linkFrame, PAPER_TIME_MS, put, TestCluster } from './harness.ts';

const k = new TestCluster({ f: 1, clients: 4 });

/** Keys of stored batch bodies on the node's disk. */
const batchKeys = (data: Map<string, Uint8Array>): string[] => [...data.keys()].filter((key) => /^l\/\d+\/b\//.test(key));

describe('bounds on what a peer can make a replica store', () => {
  test('batch bodies nobody asked for are ignored, for every slot and digest', () => {
    const node = k.node(1);
    const req = k.request(0, 1, put('a', '1'));
    node.fromReplica(0, frame(k.prePrepare(0, 1, k.digest([req])), [req]));
    node.flush();
    assert.equal(batchKeys(node.disk.data).length, 1, 'the pre-prepared batch');
    // A byzantine replica sends validly signed requests in ever new combinations, for slot 1 and others.
    const pool = [0, 1, 2, 3].flatMap((c) => [1, 2, 3].map((ts) => k.request(c, ts, put(`k${c}`, `${ts}`))));
    let sent = 0;
    for (let i = 1; i < pool.length; i++) {
      for (const seq of [1, 2, 5]) {
        const batch = pool.slice(0, i);
        node.fromReplica(3, linkFrame({ type: 'batch', seq, digest: k.digest(batch), batch, time: PAPER_TIME_MS }));
        sent++;
      }
    }
    const out = node.flush();
    assert.equal(batchKeys(node.disk.data).length, 1, 'nothing stored');
    assert.equal(out.ready.writes.length, 0, 'nothing written at all');
    assert.equal(node.rejected('unexpected-batch'), sent);
  });

  test('a batch a slot names and lacks is accepted (a NEW-VIEW re-proposed it), once', () => {
    const node = k.node(2);
    const req = k.request(1, 1, put('b', '2'));
    const digest = k.digest([req]);
    // View 1 re-proposes (seq 1, digest) prepared in view 0; this replica never saw the batch.
    const cert = k.preparedCert(0, 1, digest, [1, 3]);
    const vcs = [1, 3, 0].map((r) => k.viewChange(r, 1, [cert]));
    node.fromReplica(1, frame(k.newView(1, vcs, [{ seq: 1, digest }])));
    node.flush();
    assert.equal(batchKeys(node.disk.data).length, 0);
    // Another batch for the slot is not the one it names.
    const other = [k.request(1, 1, put('b', 'other'))];
    node.fromReplica(3, linkFrame({ type: 'batch', seq: 1, digest: k.digest(other), batch: other, time: PAPER_TIME_MS }));
    node.flush();
    assert.equal(batchKeys(node.disk.data).length, 0);
    node.fromReplica(3, linkFrame({ type: 'batch', seq: 1, digest, batch: [req], time: PAPER_TIME_MS }));
    node.flush();
    assert.deepEqual(batchKeys(node.disk.data).length, 1, 'the named batch is stored');
    node.fromReplica(0, linkFrame({ type: 'batch', seq: 1, digest, batch: [req], time: PAPER_TIME_MS }));
    assert.equal(node.flush().ready.writes.length, 0, 'and not again');
  });

  test('a primary offering a new batch for one slot in every view leaves at most a few on disk', () => {
    const node = k.node(3);
    const reqs = [0, 1, 2, 3].flatMap((c) => [1, 2, 3].map((ts) => k.request(c, ts, put(`x${c}`, `${ts}`))));
    for (let view = 0; view < 8; view++) {
      if (view > 0 && view % 4 === 3) continue; // replica 3 is the primary of views 3 and 7
      if (view > 0) {
        const senders = [0, 1, 2, 3].filter((r) => r !== view % 4).slice(0, 3);
        node.fromReplica(view % 4, frame(k.newView(view, senders.map((r) => k.viewChange(r, view)), [])));
        node.flush();
      }
      const batch = [reqs[view]!];
      node.fromReplica(view % 4, frame(k.prePrepare(view, 1, k.digest(batch)), batch));
      node.flush();
    }
    const onDisk = batchKeys(node.disk.data).filter((key) => key.startsWith('l/0000000000000001/'));
    assert.ok(onDisk.length <= 4, `${onDisk.length} batches of slot 1 on disk`);
  });
});
