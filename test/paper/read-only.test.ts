/**
 * Read-only requests (Castro & Liskov, TOCS 2002 §5.1.3; src/core/reads.ts), one test per rule,
 * driving a real Replica one message at a time: a replica answers a READ on its committed state,
 * unordered, but never before it has executed every sequence number it had prepared when the READ
 * arrived; it refuses an operation that is not read-only; a READ never touches the replicated
 * client table; repeated and older READs cost no signature work.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeResult, encodeOp } from '../../src/app/kv-ops.ts';
import { concatBytes, domainTag } from '../../src/core/auth.ts';
import { NobleVerifier } from '../../src/crypto/noble.ts';
import { frame, get, put, sha256, TestCluster, type Node, type Out } from './harness.ts';

const k = new TestCluster({ f: 1, real: true });

function valueOf(out: Out, i = 0): unknown {
  const r = out.readReplies[i];
  assert.ok(r, 'a READ-REPLY left');
  const d = decodeResult(r.signed.msg.result);
  assert.ok(d.ok);
  assert.equal(d.value.type, 'get');
  return d.value.type === 'get' ? d.value.value : undefined;
}

/** Executes put(key, value) at seq `seq` of view 0 on backup `node` (pre-prepare, prepares, commits). */
function order(node: Node, seq: number, client: number, ts: number, key: string, value: string): void {
  const req = k.request(client, ts, put(key, value));
  const digest = k.digest([req]);
  node.fromReplica(0, frame(k.prePrepare(0, seq, digest), [req]));
  node.fromReplica(2, frame(k.prepare(2, 0, seq, digest)));
  node.flush();
  node.fromReplica(0, frame(k.commit(0, 0, seq, digest)));
  node.fromReplica(2, frame(k.commit(2, 0, seq, digest)));
  const out = node.flush();
  assert.equal(out.eventsOf('executed').length, 1, `seq ${seq} executed`);
}

describe('read-only requests: a replica answers on its committed state', () => {
  test('an idle replica answers at once, with a signed READ-REPLY naming the epoch of its state; nothing is ordered', () => {
    const node = k.node(1);
    order(node, 1, 0, 1, 'a', '1');
    const digestBefore = node.app.digest();
    node.fromClient(1, frame(k.read(1, 5, get('a'))));
    const out = node.flush();
    assert.equal(valueOf(out), '1');
    const r = out.readReplies[0]!;
    assert.equal(r.client, 1);
    assert.deepEqual({ ...r.signed.msg, result: undefined }, { type: 'readreply', client: 1, timestamp: 5, replica: 1, epoch: 0, result: undefined });
    assert.equal(r.seq, 1, 'computed on the state after seq 1');
    // Signed by the replica under the READ-REPLY domain tag: it does not verify as an ordered REPLY.
    const key = k.cluster.replicas[1]!.publicKey;
    const verifier = new NobleVerifier();
    assert.ok(verifier.verify(key, concatBytes(domainTag(k.cluster.clusterId, 'readreply'), r.signed.body), r.signed.sig));
    assert.ok(!verifier.verify(key, concatBytes(domainTag(k.cluster.clusterId, 'reply'), r.signed.body), r.signed.sig));
    // No protocol message, no ordered reply, the state unchanged, the client table untouched.
    assert.equal(out.sent.length, 0);
    assert.equal(out.replies.length, 0);
    assert.deepEqual(node.app.digest(), digestBefore);
    assert.equal(node.replica.clients.get(1), undefined);
    assert.equal(node.replica.lastExecuted, 1);
    assert.equal(node.replica.counters.readsAnswered, 1);
  });

  test('a replica that PREPARED a write it has not executed holds the read until it executes it', () => {
    const node = k.node(1);
    order(node, 1, 0, 1, 'a', 'old');
    const req = k.request(0, 2, put('a', 'new'));
    const digest = k.digest([req]);
    node.fromReplica(0, frame(k.prePrepare(0, 2, digest), [req]));
    node.fromReplica(2, frame(k.prepare(2, 0, 2, digest)));
    const prepared = node.flush();
    assert.equal(prepared.distinct('commit').length, 1, 'prepared: its COMMIT left');

    node.fromClient(1, frame(k.read(1, 10, get('a'))));
    assert.equal(node.flush().readReplies.length, 0, 'held: "old" is not an answer it may give');
    assert.equal(node.replica.heldReads.size, 1);
    node.tick(5);
    assert.equal(node.replica.heldReads.size, 1);

    node.fromReplica(0, frame(k.commit(0, 0, 2, digest)));
    node.fromReplica(2, frame(k.commit(2, 0, 2, digest)));
    const out = node.flush();
    assert.equal(out.eventsOf('executed')[0]?.seq, 2);
    assert.equal(valueOf(out), 'new', 'answered in the turn that executed seq 2, from the new state');
    assert.equal(out.readReplies[0]!.seq, 2);
    assert.equal(node.replica.heldReads.size, 0);
  });

  test('the hold covers every prepared sequence number, also one after a gap', () => {
    const node = k.node(1);
    const r1 = k.request(0, 1, put('a', '1'));
    const r2 = k.request(2, 1, put('a', '2'));
    const d1 = k.digest([r1]);
    const d2 = k.digest([r2]);
    // Seq 2 prepares first; seq 1 only pre-prepared.
    node.fromReplica(0, frame(k.prePrepare(0, 2, d2), [r2]));
    node.fromReplica(2, frame(k.prepare(2, 0, 2, d2)));
    node.fromReplica(0, frame(k.prePrepare(0, 1, d1), [r1]));
    node.flush();
    node.fromClient(1, frame(k.read(1, 10, get('a'))));
    assert.equal(node.flush().readReplies.length, 0);
    // Seq 1 prepares and commits: executed, but seq 2 is still only prepared.
    node.fromReplica(2, frame(k.prepare(2, 0, 1, d1)));
    node.flush();
    node.fromReplica(0, frame(k.commit(0, 0, 1, d1)));
    node.fromReplica(2, frame(k.commit(2, 0, 1, d1)));
    const after1 = node.flush();
    assert.equal(node.replica.lastExecuted, 1);
    assert.equal(after1.readReplies.length, 0);
    node.fromReplica(0, frame(k.commit(0, 0, 2, d2)));
    node.fromReplica(2, frame(k.commit(2, 0, 2, d2)));
    assert.equal(valueOf(node.flush()), '2');
  });

  test('what the replica only saw pre-prepared does not hold a read (it never promised it)', () => {
    const node = k.node(1);
    order(node, 1, 0, 1, 'a', 'old');
    const req = k.request(0, 2, put('a', 'new'));
    node.fromReplica(0, frame(k.prePrepare(0, 2, k.digest([req])), [req]));
    node.flush();
    node.fromClient(1, frame(k.read(1, 10, get('a'))));
    assert.equal(valueOf(node.flush()), 'old');
  });

  test('a held read is dropped after readHoldTicksMax, unanswered', () => {
    const node = k.node(1, { readHoldTicksMax: 20 });
    const req = k.request(0, 1, put('a', 'x'));
    const digest = k.digest([req]);
    node.fromReplica(0, frame(k.prePrepare(0, 1, digest), [req]));
    node.fromReplica(2, frame(k.prepare(2, 0, 1, digest)));
    node.flush();
    node.fromClient(1, frame(k.read(1, 10, get('a'))));
    node.flush();
    const outs = node.tick(20);
    assert.ok(outs.every((o) => o.readReplies.length === 0));
    assert.equal(node.replica.heldReads.size, 0);
    assert.equal(node.replica.counters.readsExpired, 1);
    // Executing later answers nothing: the client has fallen back to an ordered request.
    node.fromReplica(0, frame(k.commit(0, 0, 1, digest)));
    node.fromReplica(2, frame(k.commit(2, 0, 1, digest)));
    assert.equal(node.flush().readReplies.length, 0);
  });

  test('a newer read of the same client replaces the one held', () => {
    const node = k.node(1);
    const req = k.request(0, 1, put('a', 'x'));
    const digest = k.digest([req]);
    node.fromReplica(0, frame(k.prePrepare(0, 1, digest), [req]));
    node.fromReplica(2, frame(k.prepare(2, 0, 1, digest)));
    node.flush();
    node.fromClient(1, frame(k.read(1, 10, get('a'))));
    node.flush();
    node.fromClient(1, frame(k.read(1, 11, get('a'))));
    node.flush();
    assert.equal(node.replica.heldReads.size, 1);
    node.fromReplica(0, frame(k.commit(0, 0, 1, digest)));
    node.fromReplica(2, frame(k.commit(2, 0, 1, digest)));
    const out = node.flush();
    assert.deepEqual(out.readReplies.map((r) => r.signed.msg.timestamp), [11]);
  });
});

describe('read-only requests: what a replica refuses', () => {
  test('an operation that is not read-only is refused with a signed REFUSAL (not-read-only) and not executed', () => {
    const node = k.node(1);
    const read = k.read(1, 10, put('a', 'sneaky'));
    node.fromClient(1, frame(read));
    const out = node.flush();
    assert.equal(out.readReplies.length, 0);
    assert.equal(out.refusals.length, 1);
    const refusal = out.refusals[0]!.signed.msg;
    assert.equal(refusal.reason, 'not-read-only');
    assert.equal(refusal.timestamp, 10);
    assert.deepEqual(Buffer.from(refusal.digest), Buffer.from(sha256(read.body)));
    assert.equal(node.rejected('unordered-not-read-only'), 1);
    assert.equal(node.app.get('a'), null, 'never executed');
    assert.equal(out.sent.length, 0, 'never forwarded to the primary');
    // Malformed bytes are not a read-only operation either.
    node.fromClient(1, frame(k.read(1, 11, new Uint8Array([0xff, 0x00]))));
    assert.equal(node.flush().refusals[0]?.signed.msg.reason, 'not-read-only');
  });

  test('repeated, older and forged reads are dropped before any answer; a read from another link is refused', () => {
    const node = k.node(1);
    const read = k.read(1, 10, get('a'));
    node.fromClient(1, frame(read));
    assert.equal(node.flush().readReplies.length, 1);
    const verificationsBefore = node.replica.auth.verifications;
    node.fromClient(1, frame(read));
    node.fromClient(1, frame(k.read(1, 9, get('a'))));
    assert.equal(node.flush().readReplies.length, 0);
    assert.equal(node.rejected('duplicate'), 1);
    assert.equal(node.rejected('stale-request'), 1);
    assert.equal(node.replica.auth.verifications, verificationsBefore, 'no signature checked for a replay');
    // Signed by client 2, claiming client 1.
    const forged = k.read(2, 20, get('a'));
    const claimed = { ...forged, msg: { ...forged.msg, client: 1 } };
    node.fromClient(1, frame({ ...claimed, body: k.read(1, 20, get('a')).body }));
    node.fromClient(2, frame(k.read(1, 21, get('a'))));
    assert.equal(node.flush().readReplies.length, 0);
    assert.equal(node.rejected('bad-request-signature'), 1);
    assert.equal(node.rejected('request-client-mismatch'), 1);
  });

  test('a client\'s second read in one turn is a flood: dropped before its signature is checked', () => {
    const node = k.node(1);
    node.fromClient(1, frame(k.read(1, 10, get('a'))));
    const verifications = node.replica.auth.verifications;
    for (let ts = 11; ts < 20; ts++) node.fromClient(1, frame(k.read(1, ts, get('a'))));
    node.fromClient(2, frame(k.read(2, 10, get('a'))));
    assert.deepEqual(node.flush().readReplies.map((r) => [r.client, r.signed.msg.timestamp]), [[1, 10], [2, 10]]);
    assert.equal(node.rejected('reads-per-turn'), 9);
    assert.equal(node.replica.auth.verifications, verifications + 1, "only client 2's read was verified");
    // The next turn takes the client's next read again.
    node.fromClient(1, frame(k.read(1, 20, get('a'))));
    assert.equal(node.flush().readReplies.length, 1);
  });

  test('a read at or below the client\'s last ordered timestamp is stale', () => {
    const node = k.node(1);
    order(node, 1, 1, 7, 'a', '1');
    node.fromClient(1, frame(k.read(1, 7, get('a'))));
    assert.equal(node.flush().readReplies.length, 0);
    assert.equal(node.rejected('stale-request'), 1);
  });
});

describe('read-only requests: the replicated state never records one', () => {
  test('after a read at timestamp 10, an ordered request of the same client at timestamp 3 still executes', () => {
    const node = k.node(1);
    node.fromClient(1, frame(k.read(1, 10, get('a'))));
    assert.equal(node.flush().readReplies.length, 1);
    // Replicas see different reads: only ordered requests may move the at-most-once record.
    assert.equal(node.replica.clients.get(1), undefined);
    order(node, 1, 1, 3, 'a', 'v');
    assert.equal(node.replica.clients.get(1)?.timestamp, 3);
  });

  test('the same operation signed as a READ and as a REQUEST are different statements', () => {
    const op = encodeOp(get('a'));
    const read = k.read(1, 10, op);
    const request = k.request(1, 10, op);
    assert.notDeepEqual(Buffer.from(read.body), Buffer.from(request.body));
    const key = k.cluster.clients[1]!.publicKey;
    const verifier = new NobleVerifier();
    assert.ok(!verifier.verify(key, concatBytes(domainTag(k.cluster.clusterId, 'request'), read.body), read.sig));
  });
});


