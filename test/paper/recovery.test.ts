/**
 * Recovery from stable storage: a replica rebuilt from what it persisted (every flush's writes and
 * clears, applied in order) is the same replica, and never signs a statement that conflicts with one
 * it signed before the crash (TOCS 2002 §2.3 on the log being kept in stable storage; DESIGN.md).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  agree,
  cas,
  frame,
  hex,
  ownCheckpoint,
  plannedNewView,
  put,
  result,
  sameBytes,
  TestCluster,
  type Node,
} from './harness.ts';

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

describe('recovery', () => {
  test('a replica rebuilt from its persisted writes has the same view, last executed sequence number, stable checkpoint and state digest', () => {
    const node = k.node(2);
    const reqs = [1, 2, 3, 4, 5, 6].map((seq) => k.request(seq % 4, seq, put(`key${seq % 3}`, `value${seq}`)));
    for (let seq = 1; seq <= 6; seq++) {
      const out = agree(node, 0, seq, [reqs[seq - 1]!]);
      if (seq === 4) {
        const d = ownCheckpoint(out)!.msg.digest;
        for (const r of [0, 1]) node.fromReplica(r, frame(k.checkpoint(r, 4, d)));
        node.flush();
      }
    }
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
    // And it carries on: seq 8 in view 1 commits and executes.
    assert.deepEqual(agree(again, 1, 8, [k.request(0, 8, put('eight', '8'))]).eventsOf('executed').map((e) => e.seq), [8]);
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
    // Its own PREPARE still counts: one more matching PREPARE makes it prepared, with digest da.
    again.fromReplica(2, frame(k.prepare(2, 0, 1, da)));
    const commits = again.flush().distinct('commit');
    assert.deepEqual(commits.map((c) => [c.signed.msg.seq, hex(c.signed.msg.digest)]), [[1, hex(da)]]);
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
    const pps = again.flush().distinct('preprepare');
    assert.deepEqual(pps.map((p) => [p.signed.msg.view, p.signed.msg.seq]), [[0, 3]]);
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
    assert.deepEqual(again.flush().distinct('preprepare').map((p) => p.signed.msg.seq), [4]);
  });

  test('a replica that sent VIEW-CHANGE for v+1 and restarted stays in the view change and rejects messages of view v', () => {
    const node = k.node(2);
    node.fromClient(0, frame(k.request(0, 1, put('a', '1'))));
    node.flush();
    let sent = false;
    for (let i = 0; i < 100 && !sent; i++) sent = node.tick()[0]!.distinct('viewchange').length > 0;
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
