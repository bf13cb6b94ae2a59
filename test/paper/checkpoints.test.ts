/**
 * PBFT checkpoints and garbage collection (OSDI 1999 §4.3; TOCS 2002 §2.3.4): one test per rule.
 * Options: a checkpoint every K = 4 sequence numbers, a window of L = 8.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { KEYS } from '../../src/core/persist.ts';
import { agree, frame, hex, linkFrame, PAPER_TIME_MS, othersThan, ownCheckpoint, put, sameBytes, sha256, TestCluster, type Node, type Out } from './harness.ts';

const k = new TestCluster({ f: 1 });
const K = 4;

/** Commits and executes seq 1..upTo at `node` (view 0), one put per sequence number. */
function executeUpTo(node: Node, upTo: number, from = 1): Out[] {
  const outs: Out[] = [];
  for (let seq = from; seq <= upTo; seq++) outs.push(agree(node, 0, seq, [node.keys.request(seq % 4, seq, put(`key${seq}`, `value${seq}`))]));
  return outs;
}

describe('checkpoints', () => {
  test('after executing sequence number K a replica multicasts CHECKPOINT(K, digest of its state)', () => {
    const node = k.node(1);
    const outs = executeUpTo(node, K);
    for (const out of outs.slice(0, K - 1)) assert.equal(out.of('checkpoint').length, 0, 'no checkpoint before K');
    const cps = outs[K - 1]!.distinct('checkpoint');
    assert.equal(cps.length, 1);
    const cp = cps[0]!;
    assert.deepEqual(cp.to, [0, 2, 3]);
    assert.equal(cp.signed.msg.seq, K);
    assert.equal(cp.signed.msg.replica, 1);
    assert.ok(k.verifySigned(cp.signed));
    assert.equal(hex(cp.signed.msg.digest), node.replica.status().lastCheckpoint.digest);
    // Another replica executing the same requests computes the same digest; a different history does not.
    const twin = k.node(2);
    const twinCp = ownCheckpoint(executeUpTo(twin, K)[K - 1]!);
    assert.ok(twinCp && sameBytes(twinCp.msg.digest, cp.signed.msg.digest));
    const other = k.node(3);
    for (let seq = 1; seq <= K; seq++) agree(other, 0, seq, [k.request(seq % 4, seq, put(`key${seq}`, 'something else'))]);
    assert.notEqual(other.replica.status().lastCheckpoint.digest, hex(cp.signed.msg.digest));
  });

  for (const f of [1, 2]) {
    test(`a checkpoint becomes stable only with 2f+1 matching CHECKPOINT messages: 2f are not enough (f=${f})`, () => {
      const kk = f === 1 ? k : new TestCluster({ f });
      const node = kk.node(1);
      const cp = ownCheckpoint(executeUpTo(node, K)[K - 1]!)!;
      const d = cp.msg.digest;
      const others = othersThan(kk.n, 1);
      for (const r of others.slice(0, 2 * f - 1)) node.fromReplica(r, frame(kk.checkpoint(r, K, d))); // own + 2f-1 = 2f
      const out = node.flush();
      assert.equal(out.eventsOf('checkpoint-stable').length, 0);
      assert.equal(node.replica.h, 0);
      const last = others[2 * f - 1]!;
      node.fromReplica(last, frame(kk.checkpoint(last, K, d))); // 2f+1
      const stable = node.flush();
      assert.deepEqual(stable.eventsOf('checkpoint-stable').map((e) => e.seq), [K]);
      assert.equal(node.replica.h, K);
      assert.equal(node.replica.stable.proof.length, 2 * f + 1);
      assert.deepEqual(
        node.replica.stable.proof.map((p) => p.msg.replica).sort((a, b) => a - b),
        [1, ...others.slice(0, 2 * f)].sort((a, b) => a - b),
      );
    });
  }

  test('2f+1 CHECKPOINT messages of which one carries another digest are not enough', () => {
    const node = k.node(1);
    const d = ownCheckpoint(executeUpTo(node, K)[K - 1]!)!.msg.digest;
    node.fromReplica(2, frame(k.checkpoint(2, K, d)));
    node.fromReplica(3, frame(k.checkpoint(3, K, sha256(new TextEncoder().encode('another state')))));
    assert.equal(node.flush().eventsOf('checkpoint-stable').length, 0);
    assert.equal(node.replica.h, 0);
    // A second CHECKPOINT from replica 3 (now matching) does not replace its first vote.
    node.fromReplica(3, frame(k.checkpoint(3, K, d)));
    assert.equal(node.flush().eventsOf('checkpoint-stable').length, 0);
    node.fromReplica(0, frame(k.checkpoint(0, K, d)));
    assert.deepEqual(node.flush().eventsOf('checkpoint-stable').map((e) => e.seq), [K]);
    assert.ok(node.replica.stable.proof.every((p) => sameBytes(p.msg.digest, d)));
  });

  test('when a checkpoint becomes stable the low watermark moves: a PRE-PREPARE beyond the old window but inside the new one is accepted', () => {
    const node = k.node(1);
    const d = ownCheckpoint(executeUpTo(node, K)[K - 1]!)!.msg.digest;
    const req9 = k.request(0, 9, put('late', '9'));
    const pp9 = frame(k.prePrepare(0, 9, k.digest([req9])), [req9]);
    node.fromReplica(0, pp9);
    assert.equal(node.flush().of('prepare').length, 0, 'seq 9 is outside (0, 8]');
    assert.equal(node.rejected('out-of-window'), 1);
    node.fromReplica(2, frame(k.checkpoint(2, K, d)));
    node.fromReplica(3, frame(k.checkpoint(3, K, d)));
    node.flush();
    assert.equal(node.replica.h, K);
    node.fromReplica(0, pp9);
    const prepares = node.flush().distinct('prepare');
    assert.deepEqual(prepares.map((p) => p.signed.msg.seq), [9], 'seq 9 is inside (4, 12]');
    const req12 = k.request(1, 12, put('late', '12'));
    const req13 = k.request(2, 13, put('late', '13'));
    node.fromReplica(0, frame(k.prePrepare(0, 12, k.digest([req12])), [req12]));
    node.fromReplica(0, frame(k.prePrepare(0, 13, k.digest([req13])), [req13]));
    assert.deepEqual(node.flush().distinct('prepare').map((p) => p.signed.msg.seq), [12]);
    assert.equal(node.rejected('out-of-window'), 2);
  });

  test('when a checkpoint becomes stable the log at or below it is discarded (memory and storage)', () => {
    const node = k.node(1);
    const d = ownCheckpoint(executeUpTo(node, K)[K - 1]!)!.msg.digest;
    // One entry above the checkpoint that must survive.
    const req5 = k.request(0, 5, put('five', '5'));
    node.fromReplica(0, frame(k.prePrepare(0, 5, k.digest([req5])), [req5]));
    node.flush();
    assert.equal(node.replica.logSize, K + 1);
    const below = [...node.disk.data.keys()].filter((key) => key.startsWith(KEYS.logPrefix) && key < KEYS.logBelow(K + 1));
    assert.ok(below.length >= K, 'the log of 1..K was persisted');
    node.fromReplica(2, frame(k.checkpoint(2, K, d)));
    node.fromReplica(3, frame(k.checkpoint(3, K, d)));
    const out = node.flush();
    assert.equal(node.replica.logSize, 1, 'only seq 5 remains');
    assert.ok(
      out.ready.clears.some((r) => r.gte === KEYS.logPrefix && r.lt === KEYS.logBelow(K + 1)),
      `clears ${JSON.stringify(out.ready.clears)} contain the log range up to ${K}`,
    );
    const left = [...node.disk.data.keys()].filter((key) => key.startsWith(KEYS.logPrefix));
    assert.ok(left.length > 0 && left.every((key) => key >= KEYS.logBelow(K + 1)), `log keys left: ${left.join(', ')}`);
    // The stable certificate itself is persisted.
    assert.ok(node.disk.data.has(KEYS.stable));
  });

  test('the next stable checkpoint clears the storage from where the one before ended, and leaves nothing at or below it', () => {
    const node = k.node(1);
    const stabilize = (seq: number, digest: Uint8Array): Out => {
      node.fromReplica(2, frame(k.checkpoint(2, seq, digest)));
      node.fromReplica(3, frame(k.checkpoint(3, seq, digest)));
      const out = node.flush();
      assert.equal(node.replica.h, seq);
      return out;
    };
    const first = stabilize(K, ownCheckpoint(executeUpTo(node, K)[K - 1]!)!.msg.digest);
    // The first clear of an incarnation starts at the prefixes (an earlier one's clears were not synced).
    assert.deepEqual(first.ready.clears, [
      { gte: KEYS.logPrefix, lt: KEYS.logBelow(K + 1) },
      { gte: KEYS.checkpointVotePrefix, lt: KEYS.checkpointVotesBelow(K + 1) },
    ]);
    const second = stabilize(2 * K, ownCheckpoint(executeUpTo(node, 2 * K, K + 1)[K - 1]!)!.msg.digest);
    // The next from where it ended: a range from the prefix would walk every key deleted before.
    assert.deepEqual(second.ready.clears, [
      { gte: KEYS.logBelow(K + 1), lt: KEYS.logBelow(2 * K + 1) },
      { gte: KEYS.checkpointVotesBelow(K + 1), lt: KEYS.checkpointVotesBelow(2 * K + 1) },
    ]);
    const stale = [...node.disk.data.keys()].filter(
      (key) => (key.startsWith(KEYS.logPrefix) && key < KEYS.logBelow(2 * K + 1)) || (key.startsWith(KEYS.checkpointVotePrefix) && key < KEYS.checkpointVotesBelow(2 * K + 1)),
    );
    assert.deepEqual(stale, [], 'no log entry or checkpoint vote at or below the second stable checkpoint is left');
    executeUpTo(node, 2 * K + 1, 2 * K + 1);
    assert.ok([...node.disk.data.keys()].some((key) => key.startsWith(KEYS.logBelow(2 * K + 1))), 'the log above it is kept');
  });

  test('CHECKPOINT votes that arrive before the replica reaches K count once it executes K', () => {
    const node = k.node(1);
    // Learn the digest from a twin that executes the same history.
    const d = ownCheckpoint(executeUpTo(k.node(2), K)[K - 1]!)!.msg.digest;
    for (const r of [0, 2]) node.fromReplica(r, frame(k.checkpoint(r, K, d)));
    assert.equal(node.flush().eventsOf('checkpoint-stable').length, 0, 'not executed yet: not stable here');
    const outs = executeUpTo(node, K);
    assert.deepEqual(outs[K - 1]!.eventsOf('checkpoint-stable').map((e) => e.seq), [K]);
    assert.equal(node.replica.h, K);
  });

  test("a replica whose own checkpoint digest differs from a stable 2f+1 certificate reports 'state-diverged' and starts a state transfer", () => {
    const node = k.node(1);
    const own = ownCheckpoint(executeUpTo(node, K)[K - 1]!)!.msg.digest;
    const agreed = sha256(new TextEncoder().encode('what everyone else computed'));
    for (const r of othersThan(k.n, 1)) node.fromReplica(r, frame(k.checkpoint(r, K, agreed)));
    const out = node.flush();
    const diverged = out.eventsOf('state-diverged');
    assert.equal(diverged.length, 1);
    assert.equal(diverged[0]!.seq, K);
    assert.ok(sameBytes(diverged[0]!.own, own));
    assert.ok(sameBytes(diverged[0]!.agreed, agreed));
    const started = out.eventsOf('state-transfer-started');
    assert.deepEqual(started.map((e) => e.seq), [K]);
    const asks = out.links('statereq');
    assert.equal(asks.length, 1);
    assert.equal(asks[0]!.msg.seq, K);
    assert.ok([0, 2, 3].includes(asks[0]!.to), 'asks a replica of the certificate');
    assert.equal(node.replica.counters.divergences, 1);
    assert.equal(node.replica.status().transferring, true);
  });
});

describe('stable certificates learned ahead of execution', () => {
  /** The stable certificate of checkpoint `seq` for the history executeUpTo produces, signed by `signers`. */
  function certFor(seq: number, signers = [0, 2, 3]) {
    const ref = k.node(3);
    const outs = executeUpTo(ref, seq);
    const digest = ownCheckpoint(outs[seq - 1]!)!.msg.digest;
    return { epoch: 0, seq, digest, proof: signers.map((r) => k.checkpoint(r, seq, digest)) };
  }

  test('a stable certificate above execution is applied once execution reaches it (the window moves, the log is truncated)', () => {
    // Learned from a VIEW-CHANGE while replica 1 had executed nothing: it waits for execution.
    const cert = certFor(K);
    const node = k.node(1);
    node.fromReplica(2, frame(k.viewChange(2, 1, [], cert)));
    node.flush();
    assert.equal(node.replica.h, 0);
    // Replica 1 executes up to K on its own; the others' CHECKPOINT messages went by long ago.
    const outs = executeUpTo(node, K);
    assert.deepEqual(outs[K - 1]!.eventsOf('checkpoint-stable').map((e) => e.seq), [K], 'the pending certificate became stable');
    assert.equal(node.replica.h, K);
    assert.equal(node.replica.logSize, 0, 'the log at and below K is gone');
    // The consequence: the window is (K, K+L], so a pre-prepare beyond the old window is accepted.
    const req = k.request(0, 100, put('later', '1'));
    node.fromReplica(0, frame(k.prePrepare(0, K + 8, k.digest([req])), [req]));
    assert.equal(node.flush().of('prepare').length, 3);
  });

  test('pre-prepares of a NEW-VIEW above the window are kept, and prepared once the window reaches them', () => {
    const L = 8;
    const cert = certFor(L);
    // In view 0 seqs L+1, L+2 prepared at replicas 0, 2, 3; replica 1 was behind (nothing executed).
    const reqs = [L + 1, L + 2].map((seq) => k.request(0, 100 + seq, put(`p${seq}`, '1')));
    const certs = [L + 1, L + 2].map((seq, i) => k.preparedCert(0, seq, k.digest([reqs[i]!]), [2, 3]));
    const vcs = [0, 2, 3].map((r) => k.viewChange(r, 2, certs, cert));
    const node = k.node(1);
    node.fromReplica(2, frame(k.newView(2, vcs, certs.map((c) => ({ seq: c.prePrepare.msg.seq, digest: c.prePrepare.msg.digest })))));
    const entered = node.flush();
    assert.deepEqual(entered.eventsOf('view-entered').map((e) => e.view), [2]);
    assert.equal(entered.of('prepare').length, 0, 'seqs L+1 and L+2 are beyond the window (0, L] for now');
    // Replica 1 catches up: committed entries 1..L with their commit certificates.
    const entries = [];
    for (let seq = 1; seq <= L; seq++) {
      const batch = [k.request(seq % 4, seq, put(`key${seq}`, `value${seq}`))];
      const digest = k.digest(batch);
      entries.push({ seq, batch, commits: [0, 2, 3].map((r) => k.commit(r, 0, seq, digest)), time: PAPER_TIME_MS });
    }
    node.fromReplica(3, linkFrame({ type: 'fetched', entries, stable: k.genesis, proofs: [] }));
    const caught = node.flush();
    assert.equal(node.replica.lastExecuted, L);
    assert.equal(node.replica.h, L);
    const prepares = caught.distinct('prepare').map((p) => [p.signed.msg.view, p.signed.msg.seq]);
    assert.deepEqual(prepares, [
      [2, L + 1],
      [2, L + 2],
    ], 'the NEW-VIEW pre-prepares are prepared now');
  });
});
