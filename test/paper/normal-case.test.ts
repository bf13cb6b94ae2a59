/**
 * PBFT normal-case operation (Castro & Liskov, OSDI 1999 §4.2; TOCS 2002 §2.3), one test per rule,
 * driving a real Replica one message at a time.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeResult } from '../../src/app/kv-ops.ts';
import { concatBytes, domainTag } from '../../src/core/auth.ts';
import { primaryOf } from '../../src/core/newview.ts';
import { NobleVerifier } from '../../src/crypto/noble.ts';
import {
  agree,
  cas,
  enterViewByNewView,
  frame,
  get,
  hex,
  linkFrame,
  othersThan,
  ownCheckpoint,
  put,
  result,
  sameBytes,
  TestCluster,
  type Node,
} from './harness.ts';

const k1 = new TestCluster({ f: 1 });

/** The primary of view 0 (replica 0) after a client request: its PRE-PREPARE output. */
function proposeAtPrimary(k: TestCluster, node: Node, client: number, ts: number, key = `k${client}`) {
  const req = k.request(client, ts, put(key, `v${ts}`));
  node.fromClient(client, frame(req));
  return { req, out: node.flush() };
}

describe('normal case: the primary', () => {
  test('the primary of view v is replica v mod n (the members take turns in id order)', () => {
    for (const n of [4, 7, 10]) {
      const members = Array.from({ length: n }, (_, i) => i);
      for (let v = 0; v < 25; v++) assert.equal(primaryOf(v, members), v % n);
    }
    // After a reconfiguration the ids need not be dense: the rotation goes over the members.
    assert.deepEqual([0, 1, 2, 3, 4, 5].map((v) => primaryOf(v, [0, 2, 5, 9])), [0, 2, 5, 9, 0, 2]);

    // A backup in view 0 forwards to replica 0; after a NEW-VIEW for view 5 (n = 4), to replica 1.
    const node = k1.node(2);
    assert.equal(node.replica.primary, 0);
    node.fromClient(0, frame(k1.request(0, 1, put('a', '1'))));
    assert.deepEqual(node.flush().of('request').map((m) => m.to), [0]);

    const entered = enterViewByNewView(node, 5);
    assert.equal(entered.eventsOf('view-entered')[0]?.primary, 1);
    assert.equal(node.replica.view, 5);
    assert.equal(node.replica.primary, 1);
    node.fromClient(1, frame(k1.request(1, 1, put('b', '1'))));
    assert.deepEqual(node.flush().of('request').map((m) => m.to), [1]);

    // Replica 1 itself, once in view 5, orders requests: it is the primary.
    const p = k1.node(1);
    const vcs = [2, 3].map((r) => k1.viewChange(r, 5));
    for (const vc of vcs) p.fromReplica(vc.msg.replica, frame(vc));
    const joined = p.flush();
    assert.equal(joined.distinct('newview').length, 1, 'replica 1 is the primary of view 5 and sends NEW-VIEW');
    p.fromClient(0, frame(k1.request(0, 1, put('c', '1'))));
    const pp = p.flush().distinct('preprepare');
    assert.equal(pp.length, 1);
    assert.equal(pp[0]!.signed.msg.view, 5);
    assert.equal(pp[0]!.signed.msg.replica, 1);
  });

  test('a client request at the primary yields a PRE-PREPARE to all backups with the next sequence number and the batch digest', () => {
    const node = k1.node(0);
    const { req, out } = proposeAtPrimary(k1, node, 0, 1);
    const pps = out.distinct('preprepare');
    assert.equal(pps.length, 1);
    const pp = pps[0]!;
    assert.deepEqual(pp.to, [1, 2, 3]);
    assert.equal(pp.signed.msg.view, 0);
    assert.equal(pp.signed.msg.seq, 1);
    assert.equal(pp.signed.msg.replica, 0);
    assert.ok(k1.verifySigned(pp.signed), 'PRE-PREPARE signed by the primary');
    assert.equal(pp.batch?.length, 1);
    assert.ok(sameBytes(pp.batch![0]!.body, req.body));
    assert.ok(sameBytes(pp.signed.msg.digest, k1.digest([req])), 'digest is the batch digest');

    // The next request gets the next sequence number.
    const second = proposeAtPrimary(k1, node, 1, 1);
    const pp2 = second.out.distinct('preprepare');
    assert.equal(pp2.length, 1);
    assert.equal(pp2[0]!.signed.msg.seq, 2);
    assert.ok(sameBytes(pp2[0]!.signed.msg.digest, k1.digest([second.req])));
  });

  test('a backup forwards a client request to the primary (and only to it)', () => {
    const node = k1.node(3);
    const req = k1.request(2, 1, put('x', 'y'));
    node.fromClient(2, frame(req));
    const out = node.flush();
    const fwd = out.of('request');
    assert.deepEqual(fwd.map((m) => m.to), [0]);
    assert.ok(sameBytes(fwd[0]!.signed.body, req.body) && sameBytes(fwd[0]!.signed.sig, req.sig), 'the original signed request');
    assert.equal(out.of('preprepare').length, 0, 'a backup does not propose');
  });
});

describe('normal case: a backup accepts a PRE-PREPARE only', () => {
  test('for its current view: a PRE-PREPARE of a later view is ignored', () => {
    const node = k1.node(2);
    const req = k1.request(0, 1, put('a', '1'));
    node.fromReplica(1, frame(k1.prePrepare(1, 1, k1.digest([req])), [req]));
    assert.equal(node.flush().of('prepare').length, 0);
    assert.equal(node.rejected('future-view'), 1);
  });

  test('for its current view: a PRE-PREPARE of an earlier view is ignored', () => {
    const node = k1.node(2);
    enterViewByNewView(node, 1);
    const req = k1.request(0, 1, put('a', '1'));
    node.fromReplica(0, frame(k1.prePrepare(0, 1, k1.digest([req])), [req]));
    assert.equal(node.flush().of('prepare').length, 0);
    assert.equal(node.rejected('old-view'), 1);
    // The same request from the primary of view 1 is accepted.
    node.fromReplica(1, frame(k1.prePrepare(1, 1, k1.digest([req])), [req]));
    assert.equal(node.flush().distinct('prepare').length, 1);
  });

  test('inside the window (h, h+L]: sequence numbers outside are ignored', () => {
    const node = k1.node(1); // L = 8, h = 0
    const reqs = [0, 1, 2].map((c) => k1.request(c, 1, put(`k${c}`, 'v')));
    node.fromReplica(0, frame(k1.prePrepare(0, 9, k1.digest([reqs[0]!])), [reqs[0]!]));
    node.fromReplica(0, frame(k1.prePrepare(0, 0, k1.digest([reqs[1]!])), [reqs[1]!]));
    assert.equal(node.flush().of('prepare').length, 0);
    assert.equal(node.rejected('out-of-window'), 2);
    node.fromReplica(0, frame(k1.prePrepare(0, 8, k1.digest([reqs[2]!])), [reqs[2]!]));
    const prepares = node.flush().distinct('prepare');
    assert.equal(prepares.length, 1);
    assert.equal(prepares[0]!.signed.msg.seq, 8, 'h+L is inside the window');
  });

  test('once per (view, sequence number): a second PRE-PREPARE with another digest is ignored', () => {
    const node = k1.node(1);
    const a = k1.request(0, 1, put('a', '1'));
    const b = k1.request(1, 1, put('b', '1'));
    node.fromReplica(0, frame(k1.prePrepare(0, 1, k1.digest([a])), [a]));
    const first = node.flush().distinct('prepare');
    assert.equal(first.length, 1);
    node.fromReplica(0, frame(k1.prePrepare(0, 1, k1.digest([b])), [b]));
    const second = node.flush();
    assert.equal(second.of('prepare').length, 0, 'no second PREPARE for (0, 1)');
    assert.equal(node.rejected('conflicting-preprepare'), 1);
  });

  test('whose digest matches the batch it carries', () => {
    const node = k1.node(1);
    const a = k1.request(0, 1, put('a', '1'));
    const b = k1.request(1, 1, put('b', '1'));
    node.fromReplica(0, frame(k1.prePrepare(0, 1, k1.digest([a])), [b]));
    const out = node.flush();
    assert.equal(out.of('prepare').length, 0);
    assert.equal(node.rejected('batch-digest-mismatch'), 1);
    assert.deepEqual(out.eventsOf('peer-misbehaved').map((e) => e.peer), [0]);
    // A PRE-PREPARE without its batch is not accepted either.
    node.fromReplica(0, frame(k1.prePrepare(0, 2, k1.digest([a]))));
    assert.equal(node.flush().of('prepare').length, 0);
    assert.equal(node.rejected('preprepare-without-batch'), 1);
  });

  test('from the primary of its view only', () => {
    const node = k1.node(1);
    const a = k1.request(0, 1, put('a', '1'));
    // Replica 2 signs a pre-prepare for view 0 (whose primary is 0) and sends it on its own link.
    node.fromReplica(2, frame(k1.prePrepare(0, 1, k1.digest([a]), 2), [a]));
    // A pre-prepare naming the primary but signed by replica 2 (a forgery) is not accepted either.
    node.fromReplica(0, frame(k1.prePrepare(0, 1, k1.digest([a]), 2, 0), [a]));
    assert.equal(node.flush().of('prepare').length, 0);
    assert.equal(node.rejected('preprepare-not-from-primary'), 1);
    assert.equal(node.rejected('bad-signature'), 1);
  });

  test('if every request in its batch is validly signed by a client of the keyring', () => {
    const node = k1.node(1);
    const good = k1.request(0, 1, put('a', '1'));
    const forged = k1.forgedRequest(1, 2, 1, put('b', '1')); // claims client 1, signed by client 2
    node.fromReplica(0, frame(k1.prePrepare(0, 1, k1.digest([good, forged])), [good, forged]));
    assert.equal(node.flush().of('prepare').length, 0);
    assert.equal(node.rejected('batch-with-bad-request'), 1);

    const unknown = new TestCluster({ f: 1, clients: 6 }).request(5, 1, put('c', '1')); // client 5 is not in k1's keyring
    node.fromReplica(0, frame(k1.prePrepare(0, 2, k1.digest([unknown])), [unknown]));
    assert.equal(node.flush().of('prepare').length, 0);
    assert.equal(node.rejected('batch-with-bad-request'), 2);
  });

  test('except at the backups that skip client signatures (quorum.ts): one per batch for n = 4, rotating with seq; the others refuse', () => {
    // View 0, seq 1: the backups 1, 2, 3 in order from the primary, the rotation at seq % 3 = 1 -> replica 2 skips.
    const good = k1.request(0, 1, put('a', '1'));
    const forged = k1.forgedRequest(1, 2, 1, put('b', '1'));
    const pp = frame(k1.prePrepare(0, 1, k1.digest([good, forged])), [good, forged]);
    const skipper = k1.node(2);
    skipper.fromReplica(0, pp);
    assert.equal(skipper.flush().distinct('prepare').length, 1, 'the skipper prepares without checking');
    assert.equal(skipper.rejected('batch-with-bad-request'), 0);
    assert.equal(skipper.replica.counters.clientSignaturesUnchecked, 2);
    assert.equal(skipper.replica.waiting.size, 0, 'unchecked requests start no timers');
    for (const id of [1, 3]) {
      const checker = k1.node(id);
      checker.fromReplica(0, pp);
      assert.equal(checker.flush().of('prepare').length, 0, `replica ${id} checks and refuses`);
      assert.equal(checker.rejected('batch-with-bad-request'), 1);
    }
    // A request the skipper checked itself (it came from its client) is waited for as before.
    const other = k1.node(2);
    other.fromClient(0, frame(good));
    other.flush();
    assert.notEqual(other.replica.waiting.get(0)?.unorderedSince, undefined, 'waiting for the primary to order it');
    other.fromReplica(0, frame(k1.prePrepare(0, 1, k1.digest([good])), [good]));
    assert.equal(other.flush().distinct('prepare').length, 1);
    assert.equal(other.replica.counters.clientSignaturesUnchecked, 0);
    assert.equal(other.replica.waiting.get(0)?.unorderedSince, undefined, 'ordered: the pre-prepare counts for it');
    // At seq 2 the rotation moves on (replica 3 skips): replica 2 checks and refuses.
    const next = k1.node(2);
    next.fromReplica(0, frame(k1.prePrepare(0, 2, k1.digest([forged])), [forged]));
    assert.equal(next.flush().of('prepare').length, 0);
    assert.equal(next.rejected('batch-with-bad-request'), 1);
  });

  test('a skipping backup serves a batch to a peer only once its client signatures check out (the digest covers bodies, not signatures)', () => {
    // The primary sends replica 2 (the skipper of seq 1) the genuine body with another key's signature.
    const good = k1.request(0, 1, put('a', '1'));
    const resigned = k1.forgedRequest(0, 2, 1, put('a', '1'));
    assert.ok(sameBytes(resigned.body, good.body) && !sameBytes(resigned.sig, good.sig));
    const digest = k1.digest([good]);
    assert.equal(hex(k1.digest([resigned])), hex(digest), 'same digest');
    const asked = (node: Node): number => {
      node.fromReplica(3, linkFrame({ type: 'batchreq', seq: 1, digest }));
      return node.flush().links('batch').length;
    };
    const bad = k1.node(2);
    bad.fromReplica(0, frame(k1.prePrepare(0, 1, digest), [resigned]));
    assert.equal(bad.flush().distinct('prepare').length, 1, 'prepared without checking');
    assert.equal(asked(bad), 0, 'not served: replica 3 would report us for its signature');
    assert.equal(asked(bad), 0, 'nor later');
    // The genuine batch, also unchecked at first, is served once it verifies.
    const ok = k1.node(2);
    ok.fromReplica(0, frame(k1.prePrepare(0, 1, digest), [good]));
    ok.flush();
    assert.equal(ok.replica.counters.clientSignaturesUnchecked, 1);
    assert.equal(asked(ok), 1);
    assert.equal(asked(ok), 1);

    // Restored from disk, a batch counts as unchecked again: the re-signed one is still not served,
    // the genuine one is, once it verifies.
    assert.equal(asked(bad.restart().node), 0, 'restored: still not served');
    assert.equal(asked(ok.restart().node), 1);

    // Retransmitting its own PRE-PREPARE (as the primary of a later view whose NEW-VIEW carried this
    // digest), a replica attaches the batch only if its client signatures check out.
    const retransmitted = (node: Node): number => {
      const slot = node.replica.slots.get(1)!;
      (slot as { prePrepare?: unknown }).prePrepare = k1.prePrepare(2, 1, digest, 2, 2);
      const pps = node.tick(k1.options.retransmitTicks! + 1).flatMap((o) => o.of('preprepare'));
      assert.ok(pps.length > 0, 'the PRE-PREPARE was retransmitted');
      return pps.filter((p) => p.batch !== undefined).length;
    };
    const bad2 = k1.node(2);
    bad2.fromReplica(0, frame(k1.prePrepare(0, 1, digest), [resigned]));
    bad2.flush();
    assert.equal(retransmitted(bad2), 0, 'sent without the re-signed batch');
    const ok2 = k1.node(2);
    ok2.fromReplica(0, frame(k1.prePrepare(0, 1, digest), [good]));
    ok2.flush();
    assert.ok(retransmitted(ok2) > 0, 'sent with the genuine batch');
  });

  test('a request with a bad client signature never enters a batch at the primary', () => {
    const node = k1.node(0);
    const forged = k1.forgedRequest(1, 2, 1, put('b', '1'));
    node.fromClient(1, frame(forged));
    const out = node.flush();
    assert.equal(out.of('preprepare').length, 0);
    assert.equal(node.rejected('bad-request-signature'), 1);
    // A valid request afterwards is proposed alone.
    const good = k1.request(0, 1, put('a', '1'));
    node.fromClient(0, frame(good));
    const pp = node.flush().distinct('preprepare');
    assert.equal(pp.length, 1);
    assert.deepEqual(pp[0]!.batch?.map((r) => r.msg.client), [0]);
  });

  test('on accepting a PRE-PREPARE a backup multicasts PREPARE(v, n, d) to every other replica', () => {
    const node = k1.node(2);
    const a = k1.request(0, 1, put('a', '1'));
    const d = k1.digest([a]);
    node.fromReplica(0, frame(k1.prePrepare(0, 3, d), [a]));
    const prepares = node.flush().distinct('prepare');
    assert.equal(prepares.length, 1);
    const p = prepares[0]!;
    assert.deepEqual(p.to, [0, 1, 3]);
    assert.equal(p.signed.msg.view, 0);
    assert.equal(p.signed.msg.seq, 3);
    assert.ok(sameBytes(p.signed.msg.digest, d));
    assert.equal(p.signed.msg.replica, 2);
    assert.ok(k1.verifySigned(p.signed), 'signed by the backup');
  });
});

for (const f of [1, 2]) {
  const k = new TestCluster({ f });
  const n = 3 * f + 1;

  describe(`normal case: quorums with f=${f} (n=${n})`, () => {
    test(`prepared needs the pre-prepare plus 2f matching PREPAREs from distinct backups: 2f-1 send no COMMIT, 2f do (f=${f})`, () => {
      const node = k.node(0);
      const { req } = proposeAtPrimary(k, node, 0, 1);
      const d = k.digest([req]);
      const backups = k.backups(0);
      for (const b of backups.slice(0, 2 * f - 1)) node.fromReplica(b, frame(k.prepare(b, 0, 1, d)));
      assert.equal(node.flush().of('commit').length, 0, '2f-1 prepares are not enough');
      const last = backups[2 * f - 1]!;
      node.fromReplica(last, frame(k.prepare(last, 0, 1, d)));
      const commits = node.flush().distinct('commit');
      assert.equal(commits.length, 1);
      assert.deepEqual(commits[0]!.to, othersThan(n, 0));
      assert.equal(commits[0]!.signed.msg.seq, 1);
      assert.ok(sameBytes(commits[0]!.signed.msg.digest, d));
    });

    test(`a second PREPARE from the same replica counts once (f=${f})`, () => {
      const node = k.node(0);
      const { req } = proposeAtPrimary(k, node, 0, 1);
      const d = k.digest([req]);
      const backups = k.backups(0);
      for (const b of backups.slice(0, 2 * f - 1)) node.fromReplica(b, frame(k.prepare(b, 0, 1, d)));
      // The same backup again (a retransmission, re-signed) does not make 2f.
      const again = backups[0]!;
      node.fromReplica(again, frame(k.prepare(again, 0, 1, d)));
      node.fromReplica(again, frame(k.prepare(again, 0, 1, d)));
      assert.equal(node.flush().of('commit').length, 0);
      const last = backups[2 * f - 1]!;
      node.fromReplica(last, frame(k.prepare(last, 0, 1, d)));
      assert.equal(node.flush().distinct('commit').length, 1);
    });

    test(`a PREPARE from the primary does not count (f=${f})`, () => {
      const node = k.node(1);
      const req = k.request(0, 1, put('a', '1'));
      const d = k.digest([req]);
      node.fromReplica(0, frame(k.prePrepare(0, 1, d), [req]));
      const others = k.backups(0).filter((b) => b !== 1);
      // own prepare + 2f-2 other backups + the primary's prepare: 2f messages, 2f-1 of them from backups.
      for (const b of others.slice(0, 2 * f - 2)) node.fromReplica(b, frame(k.prepare(b, 0, 1, d)));
      node.fromReplica(0, frame(k.prepare(0, 0, 1, d)));
      assert.equal(node.flush().of('commit').length, 0);
      assert.equal(node.rejected('prepare-from-primary'), 1);
      const last = others[2 * f - 2]!;
      node.fromReplica(last, frame(k.prepare(last, 0, 1, d)));
      assert.equal(node.flush().distinct('commit').length, 1);
    });

    test(`a PREPARE with another digest does not count (f=${f})`, () => {
      const node = k.node(0);
      const { req } = proposeAtPrimary(k, node, 0, 1);
      const d = k.digest([req]);
      const other = k.digest([k.request(1, 1, put('zz', 'zz'))]);
      const backups = k.backups(0);
      for (const b of backups.slice(0, 2 * f - 1)) node.fromReplica(b, frame(k.prepare(b, 0, 1, d)));
      const wrong = backups[2 * f - 1]!;
      node.fromReplica(wrong, frame(k.prepare(wrong, 0, 1, other)));
      assert.equal(node.flush().of('commit').length, 0);
      const last = backups[2 * f]!;
      node.fromReplica(last, frame(k.prepare(last, 0, 1, d)));
      assert.equal(node.flush().distinct('commit').length, 1);
    });

    test(`committed-local needs prepared plus 2f+1 matching COMMITs from distinct replicas: 2f execute nothing, 2f+1 execute and REPLY (f=${f})`, () => {
      const node = k.node(1);
      const req = k.request(2, 1, put('key', 'value'));
      const d = k.digest([req]);
      node.fromReplica(0, frame(k.prePrepare(0, 1, d), [req]));
      const others = k.backups(0).filter((b) => b !== 1);
      for (const b of others.slice(0, 2 * f - 1)) node.fromReplica(b, frame(k.prepare(b, 0, 1, d)));
      const prepared = node.flush();
      assert.equal(prepared.distinct('commit').length, 1, 'the backup prepared and sent its COMMIT');
      // Own commit + 2f-1 others = 2f; one of them duplicated, one with another digest: still 2f.
      const senders = othersThan(n, 1);
      for (const r of senders.slice(0, 2 * f - 1)) node.fromReplica(r, frame(k.commit(r, 0, 1, d)));
      node.fromReplica(senders[0]!, frame(k.commit(senders[0]!, 0, 1, d)));
      const wrong = senders[2 * f - 1]!;
      node.fromReplica(wrong, frame(k.commit(wrong, 0, 1, k.nullDigest)));
      const before = node.flush();
      assert.equal(before.eventsOf('executed').length, 0);
      assert.equal(before.replies.length, 0);
      assert.equal(node.replica.lastExecuted, 0);
      const last = senders[2 * f]!;
      node.fromReplica(last, frame(k.commit(last, 0, 1, d)));
      const after = node.flush();
      assert.deepEqual(after.eventsOf('executed').map((e) => e.seq), [1]);
      assert.equal(node.replica.lastExecuted, 1);
      assert.equal(after.replies.length, 1);
      const reply = after.replies[0]!;
      assert.equal(reply.client, 2);
      assert.equal(reply.signed.msg.client, 2);
      assert.equal(reply.signed.msg.timestamp, 1);
      assert.equal(reply.signed.msg.replica, 1);
      assert.equal(reply.signed.msg.view, 0);
      assert.ok(k.verifyReply(reply.signed), 'REPLY signed by the replica');
      assert.deepEqual(result(reply.signed), { type: 'put' });
    });

    test(`COMMITs without the node having prepared execute nothing (f=${f})`, () => {
      const node = k.node(1);
      const req = k.request(2, 1, put('key', 'value'));
      const d = k.digest([req]);
      node.fromReplica(0, frame(k.prePrepare(0, 1, d), [req]));
      // 2f+1 commits from other replicas, but no prepares: not prepared, so not committed-local.
      for (const r of othersThan(n, 1).slice(0, 2 * f + 1)) node.fromReplica(r, frame(k.commit(r, 0, 1, d)));
      const out = node.flush();
      assert.equal(out.eventsOf('executed').length, 0);
      assert.equal(out.replies.length, 0);
      // Once prepared, the commits already received count.
      for (const b of k.backups(0).filter((b) => b !== 1).slice(0, 2 * f - 1)) node.fromReplica(b, frame(k.prepare(b, 0, 1, d)));
      const done = node.flush();
      assert.deepEqual(done.eventsOf('executed').map((e) => e.seq), [1]);
      assert.equal(done.replies.length, 1);
    });
  });
}

describe('normal case: execution', () => {
  test('execution waits for every lower sequence number, then runs in order', () => {
    const node = k1.node(1);
    const r1 = k1.request(0, 1, put('a', 'first'));
    const r2 = k1.request(1, 1, put('a', 'second'));
    const two = agree(node, 0, 2, [r2]);
    assert.equal(two.eventsOf('executed').length, 0, 'seq 2 committed but seq 1 is not');
    assert.equal(two.replies.length, 0);
    assert.equal(node.replica.lastExecuted, 0);
    const one = agree(node, 0, 1, [r1]);
    assert.deepEqual(one.eventsOf('executed').map((e) => e.seq), [1, 2]);
    assert.deepEqual(one.replies.map((r) => r.client), [0, 1]);
    assert.equal(node.replica.lastExecuted, 2);
    // The state reflects the order 1 then 2.
    const read = agree(node, 0, 3, [k1.request(2, 1, get('a'))]);
    assert.deepEqual(result(read.replies[0]!.signed), { type: 'get', value: 'second' });
  });

  test('exactly one signed REPLY per request', () => {
    const node = k1.node(2);
    const req = k1.request(3, 1, put('a', '1'));
    const d = k1.digest([req]);
    const out = agree(node, 0, 1, [req]);
    assert.equal(out.replies.length, 1);
    assert.ok(k1.verifyReply(out.replies[0]!.signed));
    // The fourth COMMIT and retransmitted PREPAREs change nothing.
    node.fromReplica(3, frame(k1.commit(3, 0, 1, d)));
    node.fromReplica(3, frame(k1.prepare(3, 0, 1, d)));
    const later = node.flush();
    assert.equal(later.replies.length, 0);
    assert.equal(later.eventsOf('executed').length, 0);
  });

  test('a retransmitted request whose reply is cached gets the same reply again without re-executing', () => {
    const node = k1.node(1);
    const req = k1.request(0, 1, cas('lock', null, 'owner-0'));
    const first = agree(node, 0, 1, [req]);
    assert.equal(first.replies.length, 1);
    const firstReply = first.replies[0]!;
    assert.deepEqual(result(firstReply.signed), { type: 'cas', swapped: true, current: 'owner-0' });
    const digestBefore = hex(node.app.digest());
    const executedBefore = node.replica.counters.requestsExecuted;

    node.fromClient(0, frame(req));
    const again = node.flush();
    assert.equal(again.replies.length, 1);
    assert.equal(again.replies[0]!.client, 0);
    assert.ok(sameBytes(again.replies[0]!.bytes, firstReply.bytes), 'the same signed REPLY');
    // Re-executing the cas would have answered swapped: false.
    assert.deepEqual(result(again.replies[0]!.signed), { type: 'cas', swapped: true, current: 'owner-0' });
    assert.equal(again.eventsOf('executed').length, 0);
    assert.equal(again.of('request').length, 0, 'not forwarded to the primary again');
    assert.equal(node.replica.counters.requestsExecuted, executedBefore);
    assert.equal(hex(node.app.digest()), digestBefore);
  });

  test('a request ordered again (by a faulty primary) is not executed twice', () => {
    const node = k1.node(1);
    const req = k1.request(0, 1, cas('lock', null, 'owner-0'));
    agree(node, 0, 1, [req]);
    const digestBefore = hex(node.app.digest());
    const out = agree(node, 0, 2, [req]);
    const executed = out.eventsOf('executed');
    assert.deepEqual(executed.map((e) => e.seq), [2]);
    assert.equal(executed[0]!.requests.length, 0, 'seq 2 executes nothing');
    assert.equal(out.replies.length, 0);
    assert.equal(hex(node.app.digest()), digestBefore);
  });

  test("a request with a timestamp older than the client's last executed one is dropped as stale", () => {
    const node = k1.node(1);
    agree(node, 0, 1, [k1.request(0, 5, put('a', '5'))]);
    node.fromClient(0, frame(k1.request(0, 4, put('a', '4'))));
    const out = node.flush();
    assert.equal(node.rejected('stale-request'), 1);
    assert.equal(out.replies.length, 0);
    assert.equal(out.sent.length, 0, 'not forwarded');
    // Also at the primary: no PRE-PREPARE.
    const primary = k1.node(0);
    primary.fromClient(0, frame(k1.request(0, 5, put('a', '5'))));
    primary.flush();
    agree(primary, 0, 1, [k1.request(0, 5, put('a', '5'))]);
    primary.fromClient(0, frame(k1.request(0, 3, put('a', '3'))));
    assert.equal(primary.flush().of('preprepare').length, 0);
    assert.equal(primary.rejected('stale-request'), 1);
  });
});

describe('normal case: batching', () => {
  test('requests arriving in one turn while the pipeline is full go into one batch', () => {
    const node = k1.node(0, { inFlightBatchesMax: 1 });
    const { req: first, out } = proposeAtPrimary(k1, node, 0, 1);
    assert.equal(out.distinct('preprepare').length, 1);
    const waiting = [1, 2, 3].map((c) => k1.request(c, 1, put(`k${c}`, 'v')));
    for (const r of waiting) node.fromClient(r.msg.client, frame(r));
    assert.equal(node.flush().of('preprepare').length, 0, 'the pipeline is full');
    const done = agree(node, 0, 1, [first]);
    assert.deepEqual(done.eventsOf('executed').map((e) => e.seq), [1]);
    const pp = done.distinct('preprepare');
    assert.equal(pp.length, 1, 'one batch for the three waiting requests');
    assert.equal(pp[0]!.signed.msg.seq, 2);
    assert.deepEqual(pp[0]!.batch?.map((r) => r.msg.client), [1, 2, 3]);
    assert.ok(sameBytes(pp[0]!.signed.msg.digest, k1.digest(waiting)));
  });

  test('a batch holds at most batchRequestsMax requests and several batches are in flight up to inFlightBatchesMax', () => {
    const k = new TestCluster({ f: 1, clients: 8 });
    const node = k.node(0, { inFlightBatchesMax: 2, batchRequestsMax: 2 });
    const reqs = [0, 1, 2, 3, 4].map((c) => k.request(c, 1, put(`k${c}`, 'v')));
    for (const r of reqs) node.fromClient(r.msg.client, frame(r));
    const pps = node.flush().distinct('preprepare');
    assert.deepEqual(
      pps.map((p) => [p.signed.msg.seq, p.batch?.map((r) => r.msg.client)]),
      [
        [1, [0, 1]],
        [2, [2, 3]],
      ],
    );
    // Adaptive batching: with seq 2 still in flight, the lone waiting request does not fill a batch
    // as large as the last one (2), so it waits...
    const after = agree(node, 0, 1, reqs.slice(0, 2));
    assert.deepEqual(after.distinct('preprepare'), []);
    // ...and goes out as soon as nothing is in flight.
    const next = agree(node, 0, 2, reqs.slice(2, 4)).distinct('preprepare');
    assert.deepEqual(
      next.map((p) => [p.signed.msg.seq, p.batch?.map((r) => r.msg.client)]),
      [[3, [4]]],
    );
  });

  test('adaptive batching: with batches in flight, a new one goes out once the queue fills one as large as the last', () => {
    const k = new TestCluster({ f: 1, clients: 8 });
    const node = k.node(0, { inFlightBatchesMax: 4, batchRequestsMax: 8 });
    // Low load: a request arriving with nothing in flight goes out at once, alone.
    node.fromClient(0, frame(k.request(0, 1, put('a', '1'))));
    assert.deepEqual(node.flush().distinct('preprepare').map((p) => p.batch?.length), [1]);
    // Under load: requests arriving while a batch is in flight go out as soon as they fill a batch as
    // large as the last one; here the last one held 1, so each turn proposes what it has.
    for (const c of [1, 2, 3]) node.fromClient(c, frame(k.request(c, 1, put(`k${c}`, 'v'))));
    assert.deepEqual(node.flush().distinct('preprepare').map((p) => p.batch?.length), [3]);
    // The last batch held 3: two requests are not enough while batches are in flight...
    for (const c of [4, 5]) node.fromClient(c, frame(k.request(c, 1, put(`k${c}`, 'v'))));
    assert.deepEqual(node.flush().distinct('preprepare'), []);
    // ...a third fills it.
    node.fromClient(6, frame(k.request(6, 1, put('k6', 'v'))));
    assert.deepEqual(node.flush().distinct('preprepare').map((p) => p.batch?.length), [3]);
  });
});

describe('normal case: cheap checks before signatures', () => {
  test('a PREPARE for another view is rejected without a signature verification', () => {
    const node = k1.node(1);
    const d = k1.digest([k1.request(0, 1, put('a', '1'))]);
    const before = node.replica.auth.verifications;
    node.fromReplica(2, frame(k1.prepare(2, 1, 1, d)));
    node.fromReplica(2, frame(k1.prepare(2, 7, 1, d)));
    assert.equal(node.replica.auth.verifications, before);
    assert.equal(node.rejected('future-view'), 2);
  });

  test('a PREPARE outside the window is rejected without a signature verification', () => {
    const node = k1.node(1);
    const d = k1.digest([k1.request(0, 1, put('a', '1'))]);
    const before = node.replica.auth.verifications;
    node.fromReplica(2, frame(k1.prepare(2, 0, 9, d)));
    node.fromReplica(2, frame(k1.prepare(2, 0, 1000, d)));
    assert.equal(node.replica.auth.verifications, before);
    assert.equal(node.rejected('out-of-window'), 2);
  });

  test('a PREPARE in the view and the window is verified: a forged one is rejected', () => {
    const node = k1.node(1);
    const d = k1.digest([k1.request(0, 1, put('a', '1'))]);
    const before = node.replica.auth.verifications;
    // Claims replica 2, signed by replica 3, delivered on replica 2's link.
    node.fromReplica(2, frame(k1.signAs(3, { type: 'prepare', view: 0, seq: 1, digest: d, replica: 2 })));
    assert.equal(node.replica.auth.verifications, before + 1);
    assert.equal(node.rejected('bad-signature'), 1);
  });

  test('a PRE-PREPARE for another view or outside the window is rejected without a signature verification', () => {
    const node = k1.node(1);
    const req = k1.request(0, 1, put('a', '1'));
    const before = node.replica.auth.verifications;
    node.fromReplica(2, frame(k1.prePrepare(2, 1, k1.digest([req])), [req]));
    node.fromReplica(0, frame(k1.prePrepare(0, 20, k1.digest([req])), [req]));
    assert.equal(node.replica.auth.verifications, before);
    assert.equal(node.flush().of('prepare').length, 0);
  });
});

describe('normal case: real ed25519 keys', () => {
  test('the normal case runs with real ed25519 (node:crypto) signatures', () => {
    const k = new TestCluster({ f: 1, real: true });
    const node = k.node(1);
    const req = k.request(0, 1, put('real', 'keys'));
    const out = agree(node, 0, 1, [req]);
    assert.equal(out.distinct('prepare').length, 1);
    assert.equal(out.distinct('commit').length, 1);
    assert.equal(out.replies.length, 1);
    const reply = out.replies[0]!.signed;
    assert.ok(k.verifyReply(reply));
    // One request executed: a reply signed on its own. Byte-identical ed25519: the portable verifier accepts it too.
    assert.ok('sig' in reply);
    const key = k.cluster.replicas[1]!.publicKey;
    assert.ok(new NobleVerifier().verify(key, concatBytes(domainTag(k.cluster.clusterId, 'reply'), reply.body), reply.sig));
    assert.deepEqual(reply.msg.result, encodeResult({ type: 'put' }));
    // A request whose ed25519 signature is over another client's key is rejected.
    const forged = k.forgedRequest(2, 3, 1, put('x', 'y'));
    node.fromClient(2, frame(forged));
    assert.equal(node.flush().of('request').length, 0);
    assert.equal(node.rejected('bad-request-signature'), 1);
  });
});

describe('normal case: replies', () => {
  test('the replies of a batch share one signature: one REPLY-BATCH root, a verifiable path per client', () => {
    const k = new TestCluster({ f: 1, clients: 4 });
    const node = k.node(1);
    const reqs = [0, 1, 2].map((c) => k.request(c, 1, put(`k${c}`, `v${c}`)));
    const signsBefore = node.replica.counters.replyBatchesSigned;
    const out = agree(node, 0, 1, reqs);
    assert.deepEqual(out.replies.map((r) => r.client).sort(), [0, 1, 2]);
    assert.equal(node.replica.counters.replyBatchesSigned - signsBefore, 1, 'one signature for the three replies');
    for (const r of out.replies) {
      assert.ok('batch' in r.signed, 'a batched reply');
      assert.ok(k.verifyReply(r.signed), `client ${r.client} can verify its reply`);
      assert.deepEqual(result(r.signed), { type: 'put' });
    }
    // A reply carried to another client does not verify as that client's.
    const moved = { ...out.replies[0]!.signed, msg: { ...out.replies[0]!.signed.msg, client: 3 } };
    assert.equal(k.verifyReply(moved), false);
  });

  test('a request that names its repliers gets a reply at execution from those only; every replica keeps one for a retransmission', () => {
    const k = new TestCluster({ f: 1, clients: 4 });
    // Client 0 names replicas 2 and 3, client 1 names 1 and 2, client 2 names nobody in particular.
    const reqs = [k.request(0, 1, put('a', '1'), [2, 3]), k.request(1, 1, put('b', '1'), [1, 2]), k.request(2, 1, put('c', '1'))];
    for (const id of [1, 2, 3]) {
      const node = k.node(id);
      const out = agree(node, 0, 1, reqs);
      const expected = [0, 1, 2].filter((c) => c === 2 || reqs[c]!.msg.repliers!.includes(id));
      assert.deepEqual(out.replies.map((r) => r.client).sort(), expected, `replica ${id} replies to the clients that named it, and to the one that named nobody`);
      assert.equal(node.replica.counters.repliesLeftToOthers, 3 - expected.length);
      for (const r of out.replies) assert.ok(k.verifyReply(r.signed));
      // The client retransmits to every replica: each resends its reply, named or not.
      node.fromClient(0, frame(reqs[0]!));
      const again = node.flush();
      assert.deepEqual(again.replies.map((r) => r.client), [0], `replica ${id} resends client 0's reply`);
      assert.ok(k.verifyReply(again.replies[0]!.signed));
      assert.deepEqual(result(again.replies[0]!.signed), { type: 'put' });
    }
  });

  test('a reply not sent at execution is made when a retransmission asks for it, byte for byte as if made then', () => {
    const k = new TestCluster({ f: 1, clients: 4, real: true });
    const ops = [put('a', '1'), put('b', '2'), put('c', '3')];
    // Replica 1 is named by none of the three: no tree, no REPLY-BATCH signature, nothing encoded.
    const lazy = k.node(1);
    const unnamed = ops.map((op, c) => k.request(c, 1, op, [2, 3]));
    const out = agree(lazy, 0, 1, unnamed);
    assert.equal(out.replies.length, 0);
    assert.equal(lazy.replica.counters.replyBatchesSigned, 0, 'no REPLY-BATCH signed while nobody asked for a reply');
    assert.equal(lazy.replica.counters.repliesLeftToOthers, 3);
    // Client 0 retransmits: the batch's REPLY-BATCH is made and signed now, once for the batch.
    lazy.fromClient(0, frame(unnamed[0]!));
    const first = lazy.flush().replies;
    lazy.fromClient(2, frame(unnamed[2]!));
    const second = lazy.flush().replies;
    assert.deepEqual([...first, ...second].map((r) => r.client), [0, 2]);
    assert.equal(lazy.replica.counters.replyBatchesSigned, 1, 'one signature for the batch, made on the first reply asked for');
    // A replica named by all three makes them at execution: the frames are the same bytes.
    const eager = k.node(1);
    const eagerOut = agree(eager, 0, 1, ops.map((op, c) => k.request(c, 1, op, [1, 2])));
    const eagerBytes = new Map(eagerOut.replies.map((r) => [r.client, r.bytes]));
    for (const r of [...first, ...second]) {
      assert.ok(k.verifyReply(r.signed));
      assert.ok(sameBytes(r.bytes, eagerBytes.get(r.client)!), `client ${r.client}: the reply made late is the one made at execution`);
    }
    // A batch of one request: its REPLY is signed when first asked for, with the same bytes too.
    const single = k.node(2);
    const crypto = (single.replica.auth as unknown as { crypto: { sign(data: Uint8Array): Uint8Array } }).crypto;
    const sign = crypto.sign.bind(crypto);
    const signed: string[] = [];
    crypto.sign = (data) => {
      signed.push(Buffer.from(data).toString('latin1'));
      return sign(data);
    };
    const replyTag = Buffer.from(domainTag(k.cluster.clusterId, 'reply')).toString('latin1');
    const alone = k.request(3, 1, put('d', '4'), [1, 3]);
    assert.equal(agree(single, 0, 1, [alone]).replies.length, 0);
    assert.equal(signed.filter((d) => d.startsWith(replyTag)).length, 0, 'no REPLY signed at execution');
    single.fromClient(3, frame(alone));
    const late = single.flush().replies;
    assert.equal(late.length, 1);
    assert.equal(signed.filter((d) => d.startsWith(replyTag)).length, 1, 'the REPLY is signed when asked for');
    const eagerSingle = agree(k.node(2), 0, 1, [k.request(3, 1, put('d', '4'), [2, 3])]).replies;
    assert.ok(sameBytes(late[0]!.bytes, eagerSingle[0]!.bytes));
  });

  test('a batch whose replies were partly sent keeps its values, not its tree: a retransmission makes the same bytes again', () => {
    const k = new TestCluster({ f: 1, clients: 4, real: true });
    const ops = [put('a', '1'), put('b', '2'), put('c', '3')];
    // Replica 1 is named by clients 0 and 1, not by client 2: two replies go at execution.
    const node = k.node(1);
    const out = agree(node, 0, 1, ops.map((op, c) => k.request(c, 1, op, c === 2 ? [2, 3] : [1, 2])));
    assert.deepEqual(out.replies.map((r) => r.client).sort(), [0, 1]);
    assert.equal(node.replica.counters.replyBatchesSigned, 1);
    const kept = node.replica.unsentReplyBatches;
    assert.equal(kept.length, 1, 'the batch waits for client 2 asking');
    assert.equal(kept[0]!.made, undefined, 'its tree and REPLY-BATCH were let go after the sends');
    assert.equal(kept[0]!.replies.length, 3, 'its values stay');
    // Client 2 retransmits: the REPLY-BATCH is made again, and its frame is the one an eager replica made.
    node.fromClient(2, frame(k.request(2, 1, ops[2]!, [2, 3])));
    const late = node.flush().replies;
    assert.deepEqual(late.map((r) => r.client), [2]);
    assert.equal(node.replica.counters.replyBatchesSigned, 2, 'signed again: the same signature');
    const eager = agree(k.node(1), 0, 1, ops.map((op, c) => k.request(c, 1, op, [1, 2]))).replies;
    const eagerBytes = new Map(eager.map((r) => [r.client, r.bytes]));
    assert.ok(k.verifyReply(late[0]!.signed));
    assert.ok(sameBytes(late[0]!.bytes, eagerBytes.get(2)!), 'the reply made again is the one made at execution');
    // The replies sent at execution are the eager ones too (one tree, one signature for the batch).
    for (const r of out.replies) assert.ok(sameBytes(r.bytes, eagerBytes.get(r.client)!), `client ${r.client}`);
  });

  test('unsent replies are kept for the last windowSize batches; an older one asked for is signed on its own', () => {
    const k = new TestCluster({ f: 1, clients: 4 });
    const node = k.node(1);
    // Batch 1: clients 0 and 1; batches 2..9: clients 2 and 3. Nobody names replica 1.
    const batches = Array.from({ length: 9 }, (_, i) => {
      const seq = i + 1;
      const clients = seq === 1 ? [0, 1] : [2, 3];
      return clients.map((c) => k.request(c, seq, put(`k${c}`, `v${seq}`), [2, 3]));
    });
    for (let seq = 1; seq <= 9; seq++) {
      const out = agree(node, 0, seq, batches[seq - 1]!);
      assert.equal(out.replies.length, 0);
      const own = ownCheckpoint(out);
      if (own !== undefined) for (const r of [2, 3]) node.fromReplica(r, frame(k.checkpoint(r, own.msg.seq, own.msg.digest)));
      node.flush();
    }
    assert.equal(node.replica.h, 8, 'checkpoint 8 is stable');
    // The window is 8: batch 1's unsent replies were let go, batches 2..9 are kept.
    assert.equal(node.replica.unsentReplyBatches.length, 8);
    assert.deepEqual(
      node.replica.unsentReplyBatches.map((b) => b.seq),
      [2, 3, 4, 5, 6, 7, 8, 9],
    );
    // Client 0 asks again for its reply of batch 1: a REPLY signed on its own, still its result.
    node.fromClient(0, frame(batches[0]![0]!));
    const old = node.flush().replies;
    assert.equal(old.length, 1);
    assert.ok(!('batch' in old[0]!.signed), 'a single REPLY');
    assert.ok(k.verifyReply(old[0]!.signed));
    assert.deepEqual(result(old[0]!.signed), { type: 'put' });
    // Client 2's reply of batch 9 is still made from its batch.
    node.fromClient(2, frame(batches[8]![0]!));
    const recent = node.flush().replies;
    assert.equal(recent.length, 1);
    assert.ok('batch' in recent[0]!.signed, 'a reply of its REPLY-BATCH');
    assert.ok(k.verifyReply(recent[0]!.signed));
  });

  test('a replica the client sent its request to itself (a retransmission) replies when it executes it, named or not', () => {
    const k = new TestCluster({ f: 1, clients: 2 });
    // A backup that has the request from the client before the PRE-PREPARE: the client retransmitted.
    const backup = k.node(1);
    const req = k.request(0, 1, put('a', '1'), [2, 3]);
    backup.fromClient(0, frame(req));
    backup.flush();
    assert.deepEqual(agree(backup, 0, 1, [req]).replies.map((r) => r.client), [0]);
    // The primary replies when it has the request from the client a second time, not the first.
    const primaryFirst = k.node(0);
    const first = k.request(0, 1, put('a', '1'), [2, 3]);
    primaryFirst.fromClient(0, frame(first));
    assert.equal(agree(primaryFirst, 0, 1, [first], { sendPrePrepare: false }).replies.length, 0);
    const primaryAgain = k.node(0);
    primaryAgain.fromClient(0, frame(first));
    primaryAgain.flush();
    primaryAgain.fromClient(0, frame(first));
    assert.deepEqual(agree(primaryAgain, 0, 1, [first], { sendPrePrepare: false }).replies.map((r) => r.client), [0]);
    // A request relayed by a backup does not count: only the client's own sending asks.
    const relayed = k.node(2);
    const other = k.request(1, 1, put('b', '1'), [1, 3]);
    relayed.fromReplica(1, frame(other));
    relayed.flush();
    assert.equal(agree(relayed, 0, 1, [other]).replies.length, 0);
  });
});
