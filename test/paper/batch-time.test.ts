/**
 * The agreed batch time (not in the paper: what a lease needs, issue 14 item 4). The primary
 * proposes a time with each PRE-PREPARE (signed, and inside the batch digest, so that replicas that
 * prepare one digest agree on one time); a backup prepares a fresh pre-prepare only if its time is
 * not below the times before it, not above the times after it, at most batchTimeAheadMsMax ahead of
 * its own clock and at most batchTimeBehindMsMax behind it. The application executes every request
 * of a batch with the batch's agreed time (ExecuteContext.timeMs), which never goes back: it is
 * replicated state, restored with a checkpoint, and a batch a NEW-VIEW re-proposes keeps its time.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { KvStore } from '../../src/app/kv.ts';
import type { ExecuteContext } from '../../src/app/types.ts';
import { ClientTable } from '../../src/core/clienttable.ts';
import { DEFAULT_REPLICA_OPTIONS } from '../../src/core/options.ts';
import {
  agree,
  Disk,
  frame,
  hex,
  linkFrame,
  Node,
  PAPER_TIME_MS,
  put,
  TestCluster,
} from './harness.ts';

const k = new TestCluster({ f: 1 });
const T = PAPER_TIME_MS;
const AHEAD = DEFAULT_REPLICA_OPTIONS.batchTimeAheadMsMax;
const BEHIND = DEFAULT_REPLICA_OPTIONS.batchTimeBehindMsMax;

/** A KvStore that records the context of every execution. */
class RecordingKv extends KvStore {
  readonly contexts: ExecuteContext[] = [];
  override execute(op: Uint8Array, ctx: ExecuteContext): Uint8Array {
    this.contexts.push({ ...ctx });
    return super.execute(op, ctx);
  }
}

function recordingNode(id: number): { node: Node; app: RecordingKv } {
  const app = new RecordingKv({ partitionCount: k.partitionCount });
  const core = k.newCore(id, app);
  core.setClockMs(T);
  return { node: new Node(k, id, core, app, new Disk(), k.options), app };
}

/** A backup (replica 2) receives PRE-PREPARE(0, seq) with a one-request batch proposed at `time`. */
function offer(node: Node, seq: number, time: number, client = seq % 4, ts = seq) {
  const req = k.request(client, ts, put(`k${seq}`, `v${seq}`));
  const digest = k.digest([req], time);
  node.fromReplica(0, frame(k.prePrepare(0, seq, digest, 0, 0, time), [req]));
  return { req, digest, out: node.flush() };
}

describe('batch time: the primary proposes', () => {
  test('its clock, signed in the PRE-PREPARE and covered by the batch digest', () => {
    const p = k.node(0).clock(T + 1234);
    const req = k.request(0, 1, put('a', '1'));
    p.fromClient(0, frame(req));
    const pp = p.flush().distinct('preprepare')[0]!;
    assert.equal(pp.signed.msg.time, T + 1234);
    assert.equal(hex(pp.signed.msg.digest), hex(k.digest([req], T + 1234)), 'the digest covers the time');
    assert.notEqual(hex(pp.signed.msg.digest), hex(k.digest([req], T + 1235)), 'another time, another digest');
    assert.ok(k.verifySigned(pp.signed));
  });

  test('never a time below the ones before, when its clock steps back (or an earlier primary ran ahead)', () => {
    const p = k.node(0).clock(T + 5_000);
    p.fromClient(0, frame(k.request(0, 1, put('a', '1'))));
    assert.equal(p.flush().distinct('preprepare')[0]!.signed.msg.time, T + 5_000);
    p.clock(T); // the wall clock was set back by 5 s
    p.fromClient(1, frame(k.request(1, 1, put('b', '1'))));
    p.fromClient(2, frame(k.request(2, 1, put('c', '1'))));
    const times = p.flush().distinct('preprepare').map((e) => [e.signed.msg.seq, e.signed.msg.time]);
    assert.deepEqual(times, [[2, T + 5_000]], 'seq 2 goes with the time of seq 1 (seq 1 in flight: seq 2 waits for a full batch)');
  });

  test('after a view change, not below the agreed time of what it executed', () => {
    // Replica 1 executed seq 1 at T + 1500 in view 0 (its clock is behind), then becomes primary of view 1.
    const p = k.node(1).clock(T);
    agree(p, 0, 1, [k.request(0, 1, put('a', '1'))], { time: T + 1_500 });
    assert.equal(p.replica.clients.timeMs, T + 1_500);
    for (const r of [2, 3]) p.fromReplica(r, frame(k.viewChange(r, 1)));
    assert.equal(p.flush().distinct('newview').length, 1);
    p.fromClient(1, frame(k.request(1, 1, put('b', '1'))));
    const pp = p.flush().distinct('preprepare')[0]!;
    assert.deepEqual([pp.signed.msg.view, pp.signed.msg.seq, pp.signed.msg.time], [1, 2, T + 1_500]);
  });
});

describe('batch time: a backup checks a fresh PRE-PREPARE', () => {
  test('a time within bounds of its clock is prepared (at the bounds too)', () => {
    for (const time of [T, T + AHEAD, T - BEHIND, T + 1, T - 1]) {
      const node = k.node(2);
      const { out, digest } = offer(node, 1, time);
      assert.deepEqual(out.distinct('prepare').map((p) => hex(p.signed.msg.digest)), [hex(digest)], `time T${time - T >= 0 ? '+' : ''}${time - T}`);
      assert.equal(out.eventsOf('peer-misbehaved').length, 0);
    }
  });

  test('a time more than batchTimeAheadMsMax ahead of its clock is refused and counted against the primary', () => {
    const node = k.node(2);
    const { out } = offer(node, 1, T + AHEAD + 1);
    assert.equal(out.of('prepare').length, 0, 'no PREPARE');
    assert.equal(node.rejected('batch-time-ahead'), 1);
    assert.deepEqual(out.eventsOf('peer-misbehaved').map((e) => [e.peer, e.code]), [[0, 'bad-batch-time']]);
    assert.equal(node.replica.slots.get(1)?.prePrepare, undefined, 'not accepted: a correct pre-prepare for seq 1 may still come');
  });

  test('a time more than batchTimeBehindMsMax behind its clock (a primary that froze time) is refused', () => {
    const node = k.node(2);
    const { out } = offer(node, 1, T - BEHIND - 1);
    assert.equal(out.of('prepare').length, 0);
    assert.equal(node.rejected('batch-time-behind'), 1);
    // Not misbehaviour by itself: a pre-prepare long on its way looks the same.
    assert.equal(out.eventsOf('peer-misbehaved').length, 0);
  });

  test('a time below an earlier batch\'s (its pre-prepare, or what was executed) is refused', () => {
    const node = k.node(2);
    assert.equal(offer(node, 1, T + 500).out.distinct('prepare').length, 1);
    const { out } = offer(node, 2, T + 499);
    assert.equal(out.of('prepare').length, 0);
    assert.equal(node.rejected('batch-time-backwards'), 1);
    assert.deepEqual(out.eventsOf('peer-misbehaved').map((e) => e.code), ['bad-batch-time']);
    assert.equal(offer(node, 2, T + 500).out.distinct('prepare').length, 1, 'the same time is not backwards');

    // Executed: the agreed time of seq 1 bounds seq 2 also once the pre-prepare of seq 1 is gone.
    const exec = k.node(3);
    agree(exec, 0, 1, [k.request(0, 1, put('a', '1'))], { time: T + 800 });
    assert.equal(exec.replica.lastExecuted, 1);
    exec.replica.slots.delete(1);
    offer(exec, 2, T + 700);
    assert.equal(exec.rejected('batch-time-backwards'), 1);
  });

  test('a time above a later batch\'s is refused (a correct primary\'s times never decrease with the sequence number)', () => {
    const node = k.node(2);
    assert.equal(offer(node, 2, T + 100).out.distinct('prepare').length, 1, 'seq 2 arrives first');
    offer(node, 1, T + 101);
    assert.equal(node.rejected('batch-time-backwards'), 1);
    assert.equal(offer(node, 1, T + 100).out.distinct('prepare').length, 1);
  });

  test('the requests of a refused batch are waited for: their timer suspects the primary', () => {
    const node = k.node(2);
    offer(node, 1, T + AHEAD + 10_000);
    assert.equal(node.replica.waiting.size, 1);
    const suspects = node.tick(k.options.viewChangeTimeoutTicks!).flatMap((o) => o.distinct('suspect'));
    assert.deepEqual(suspects.map((s) => s.signed.msg.view), [0], 'SUSPECT for view 0 once the request timed out');
  });

  test('a pre-prepare whose header time is not the time its digest covers is refused', () => {
    const node = k.node(2);
    const req = k.request(1, 1, put('a', '1'));
    const digest = k.digest([req], T);
    node.fromReplica(0, frame(k.prePrepare(0, 1, digest, 0, 0, T + 1), [req]));
    const out = node.flush();
    assert.equal(out.of('prepare').length, 0);
    assert.equal(node.rejected('batch-digest-mismatch'), 1);
    // A second pre-prepare for the slot with the accepted digest and another time is a conflict.
    node.fromReplica(0, frame(k.prePrepare(0, 1, digest, 0, 0, T), [req]));
    assert.equal(node.flush().distinct('prepare').length, 1);
    node.fromReplica(0, frame(k.prePrepare(0, 1, digest, 0, 0, T + 1), [req]));
    node.flush();
    assert.equal(node.rejected('conflicting-preprepare'), 1);
  });

  test('without a clock from the shell, only monotonicity is checked', () => {
    const core = k.newCore(2, new KvStore({ partitionCount: k.partitionCount }));
    const node = new Node(k, 2, core, new KvStore({ partitionCount: k.partitionCount }), new Disk(), k.options);
    assert.equal(offer(node, 1, T + 10 * AHEAD).out.distinct('prepare').length, 1);
    offer(node, 2, T);
    assert.equal(node.rejected('batch-time-backwards'), 1);
  });
});

describe('batch time: execution', () => {
  test('every request of a batch executes with the batch\'s agreed time (ExecuteContext.timeMs, the executed event)', () => {
    const { node, app } = recordingNode(2);
    const reqs = [k.request(0, 1, put('a', '1')), k.request(1, 1, put('b', '1'))];
    const out = agree(node, 0, 1, reqs, { time: T + 42 });
    assert.deepEqual(app.contexts.map((c) => [c.seq, c.client, c.timeMs]), [[1, 0, T + 42], [1, 1, T + 42]]);
    assert.deepEqual(out.eventsOf('executed').map((e) => [e.seq, e.timeMs]), [[1, T + 42]]);
  });

  test('the agreed time never goes back: a committed batch with an earlier time executes with the later one', () => {
    // Fetched committed entries are checked by their commit certificates only (no clock bounds).
    const { node, app } = recordingNode(1);
    const entries = [
      { seq: 1, time: T + 900, client: 0 },
      { seq: 2, time: T + 300, client: 2 },
      { seq: 3, time: T + 1_000, client: 3 },
    ].map((e) => {
      const batch = [k.request(e.client, 1, put(`k${e.seq}`, 'v'))];
      const d = k.digest(batch, e.time);
      return { seq: e.seq, batch, time: e.time, commits: [0, 2, 3].map((r) => k.commit(r, 0, e.seq, d)) };
    });
    node.fromReplica(3, linkFrame({ type: 'fetched', entries, stable: k.genesis, proofs: [] }));
    const out = node.flush();
    assert.deepEqual(out.eventsOf('executed').map((e) => [e.seq, e.timeMs - T]), [[1, 900], [2, 900], [3, 1_000]]);
    assert.deepEqual(app.contexts.map((c) => c.timeMs - T), [900, 900, 1_000]);
    // A fetched entry whose time is not the one its certified digest covers is refused.
    const other = k.node(1);
    const bad = entries.map((e) => ({ ...e, time: e.time + 1 }));
    other.fromReplica(3, linkFrame({ type: 'fetched', entries: bad, stable: k.genesis, proofs: [] }));
    const refused = other.flush();
    assert.equal(other.replica.lastExecuted, 0);
    assert.deepEqual(refused.eventsOf('peer-misbehaved').map((e) => e.code), ['batch-digest-mismatch']);
  });

  test('the agreed time is replicated state: in the checkpoint digest, and back after a restart from the checkpoint', () => {
    const K = k.options.checkpointInterval!;
    const run = (time: number) => {
      const node = k.node(2);
      let out;
      for (let seq = 1; seq <= K; seq++) out = agree(node, 0, seq, [k.request(seq % 4, seq, put('a', `${seq}`))], { time: time + seq });
      return { node, cp: out!.distinct('checkpoint')[0]!.signed };
    };
    const a = run(T);
    const b = run(T + 1);
    assert.notEqual(hex(a.cp.msg.digest), hex(b.cp.msg.digest), 'same requests, other times: another state digest');
    // Checkpoint K stable, then a restart: the agreed time comes back from the stored checkpoint.
    for (const r of [0, 1, 3]) a.node.fromReplica(r, frame(k.checkpoint(r, K, a.cp.msg.digest)));
    assert.deepEqual(a.node.flush().eventsOf('checkpoint-stable').map((e) => e.seq), [K]);
    const { node } = a.node.restart();
    assert.equal(node.replica.lastExecuted, K);
    assert.equal(node.replica.clients.timeMs, T + K);
    offer(node, K + 1, T + K - 1);
    assert.equal(node.rejected('batch-time-backwards'), 1, 'a time below the restored agreed time');
    // The restored time itself is accepted (the restarted replica abstains in view 0, durability.ts
    // rule 1a, so it holds the pre-prepare without a PREPARE of its own).
    const { digest } = offer(node, K + 1, T + K);
    assert.equal(node.rejected('batch-time-backwards'), 1);
    assert.equal(hex(node.replica.slots.get(K + 1)!.prePrepare!.msg.digest), hex(digest));
  });

  test('the client table encodes the agreed time (canonically)', () => {
    const t = new ClientTable();
    t.timeMs = T + 7;
    t.set(3, { timestamp: 9, result: new Uint8Array([1, 2]) });
    const back = ClientTable.decode(t.encode(), () => true)!;
    assert.equal(back.timeMs, T + 7);
    assert.deepEqual(back.get(3), { timestamp: 9, result: new Uint8Array([1, 2]) });
    assert.equal(hex(back.encode()), hex(t.encode()));
    const bytes = t.encode();
    bytes[0] = 0xff; // above Number.MAX_SAFE_INTEGER
    assert.equal(ClientTable.decode(bytes, () => true), undefined);
  });
});

describe('batch time: view changes', () => {
  test('a NEW-VIEW re-proposes a prepared batch with the time it prepared with, far behind the clocks or not', () => {
    const old = T - 10 * BEHIND;
    const req = k.request(0, 1, put('a', '1'));
    const d = k.digest([req], old);
    const cert = k.preparedCert(0, 1, d, [1, 2], old);
    const vcs = [1, 2, 3].map((r) => k.viewChange(r, 1, r === 1 ? [cert] : []));
    const nv = k.newView(1, vcs, [{ seq: 1, digest: d, time: old }]);
    const backup = k.node(2);
    backup.fromReplica(1, frame(nv));
    const out = backup.flush();
    assert.equal(backup.replica.view, 1);
    assert.deepEqual(out.distinct('prepare').map((e) => [e.signed.msg.seq, hex(e.signed.msg.digest)]), [[1, hex(d)]], 'prepared, no clock bound applies');
    assert.equal(backup.rejected('batch-time-behind'), 0);
    // The same NEW-VIEW with the batch's time changed (the digest kept) is refused.
    const liar = k.node(3);
    liar.fromReplica(1, frame(k.newView(1, vcs, [{ seq: 1, digest: d, time: T }])));
    const refused = liar.flush();
    assert.equal(liar.replica.view, 0);
    assert.deepEqual(refused.eventsOf('peer-misbehaved').map((e) => e.code), ['new-view-mismatch']);
  });

  test('the primary of the new view puts the prepared batch\'s time in its NEW-VIEW, and null requests get time 0', () => {
    const old = T - 60_000;
    const r1 = k.request(0, 1, put('a', '1'));
    const d1 = k.digest([r1], old);
    const cert = k.preparedCert(0, 2, d1, [2, 3], old);
    const p = k.node(1);
    for (const r of [2, 3]) p.fromReplica(r, frame(k.viewChange(r, 1, r === 2 ? [cert] : [])));
    const nvs = p.flush().distinct('newview');
    assert.equal(nvs.length, 1);
    const pps = nvs[0]!.signed.msg.prePrepares.map((pp) => [pp.msg.seq, pp.msg.time, hex(pp.msg.digest)]);
    assert.deepEqual(pps, [
      [1, 0, hex(k.nullDigest)],
      [2, old, hex(d1)],
    ]);
    // Its next batch is not below the re-proposed one's time (its clock is later anyway).
    p.fromClient(1, frame(k.request(1, 1, put('b', '1'))));
    const next = p.flush().distinct('preprepare')[0]!.signed.msg;
    assert.deepEqual([next.seq, next.time], [3, T]);
  });

  test('a null request (time 0) executes with the previous agreed time', () => {
    const { node, app } = recordingNode(2);
    agree(node, 0, 1, [k.request(0, 1, put('a', '1'))], { time: T + 50 });
    const nullCommits = [0, 1, 3].map((r) => k.commit(r, 0, 2, k.nullDigest));
    const r3 = [k.request(3, 1, put('c', '1'))];
    const d3 = k.digest(r3, T + 60);
    node.fromReplica(3, linkFrame({
      type: 'fetched',
      entries: [
        { seq: 2, batch: [], time: 0, commits: nullCommits },
        { seq: 3, batch: r3, time: T + 60, commits: [0, 1, 3].map((r) => k.commit(r, 0, 3, d3)) },
      ],
      stable: k.genesis,
      proofs: [],
    }));
    const out = node.flush();
    assert.deepEqual(out.eventsOf('executed').map((e) => [e.seq, e.timeMs - T]), [[2, 50], [3, 60]]);
    assert.deepEqual(app.contexts.map((c) => c.timeMs - T), [50, 60]);
  });
});
