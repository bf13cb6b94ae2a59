/**
 * Size limits (src/core/limits.ts): one set of limits on every replica, whatever its tuning, so that
 * correct replicas agree on which requests and batches are acceptable. Before these rules an
 * operation larger than a batch could hold was proposed by the primary, refused by every backup
 * ('batch-too-large'), and stayed waiting forever: endless view changes.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { RefusalCollector } from '../../src/client/collector.ts';
import { RequestSigner } from '../../src/client/request.ts';
import { BATCH_BYTES_LIMIT, OP_BYTES_MAX } from '../../src/core/limits.ts';
import { agree, frame, linkFrame, sha256, TestCluster } from './harness.ts';

const k = new TestCluster({ f: 1 });

describe('size limits', () => {
  test('a request whose operation exceeds OP_BYTES_MAX is refused on arrival: signed REFUSAL, never forwarded, no view-change timer', () => {
    const backup = k.node(2);
    const big = k.request(0, 1, new Uint8Array(OP_BYTES_MAX + 1));
    backup.fromClient(0, frame(big));
    const out = backup.flush();
    assert.equal(out.of('request').length, 0, 'not forwarded to the primary');
    assert.equal(out.refusals.length, 1);
    const r = out.refusals[0]!;
    assert.equal(r.client, 0);
    assert.deepEqual(
      { replica: r.signed.msg.replica, client: r.signed.msg.client, timestamp: r.signed.msg.timestamp, reason: r.signed.msg.reason, limit: r.signed.msg.limit },
      { replica: 2, client: 0, timestamp: 1, reason: 'op-too-large', limit: OP_BYTES_MAX },
    );
    assert.deepEqual(r.signed.msg.digest, sha256(big.body), 'the refusal names the request by its digest');
    assert.ok(k.verifySigned(r.signed), 'signed by the replica');
    assert.equal(backup.rejected('request-too-large'), 1);
    // No timer: ticking well past the view-change timeout starts no view change.
    const outs = backup.tick(50);
    assert.equal(outs.flatMap((o) => o.of('viewchange')).length, 0);
    assert.equal(backup.replica.status().waitingRequests, 0);

    // At the primary: no pre-prepare. Forwarded by a replica (no client to answer): dropped without a refusal.
    const primary = k.node(0);
    primary.fromClient(0, frame(big));
    const p = primary.flush();
    assert.equal(p.of('preprepare').length, 0);
    assert.equal(p.refusals.length, 1);
    primary.fromReplica(1, frame(big));
    assert.equal(primary.flush().refusals.length, 0);
  });

  test('an operation of exactly OP_BYTES_MAX is ordered', () => {
    const primary = k.node(0);
    primary.fromClient(0, frame(k.request(0, 1, new Uint8Array(OP_BYTES_MAX))));
    assert.equal(primary.flush().of('preprepare').length, 3);
  });

  test('a backup rejects a pre-prepare carrying a request above the limit, and accepts batches up to the protocol limit whatever its own batchBytesMax', () => {
    const tiny = k.node(1, { batchBytesMax: 1024 });
    const big = k.request(0, 1, new Uint8Array(OP_BYTES_MAX + 1));
    tiny.fromReplica(0, frame(k.prePrepare(0, 1, k.digest([big])), [big]));
    let out = tiny.flush();
    assert.equal(out.of('prepare').length, 0);
    assert.equal(tiny.rejected('batch-with-oversized-request'), 1);
    assert.deepEqual(out.eventsOf('peer-misbehaved').map((e) => e.peer), [0]);

    // Three requests of 1 MiB (3 MiB < BATCH_BYTES_LIMIT): a primary tuned for large batches proposed them.
    const reqs = [0, 1, 2].map((c) => k.request(c, 1, new Uint8Array(1024 * 1024)));
    assert.ok(reqs.reduce((s, r) => s + r.body.length + r.sig.length, 0) < BATCH_BYTES_LIMIT);
    tiny.fromReplica(0, frame(k.prePrepare(0, 2, k.digest(reqs)), reqs));
    out = tiny.flush();
    assert.equal(out.of('prepare').length, 3, 'the backup prepares although its own batches would be smaller');
    assert.equal(tiny.rejected('batch-too-large'), 0);
  });

  test('batchBytesMax and batchRequestsMax above the protocol limits are refused at start', () => {
    assert.throws(() => k.node(0, { batchBytesMax: BATCH_BYTES_LIMIT + 1 }), /batchBytesMax .* must be at most/);
    assert.throws(() => k.node(0, { batchRequestsMax: 1_000_000 }), /batchRequestsMax .* must be at most/);
  });

  test('a fetch reply holds committed batches of at most a quarter of the frame limit (at least one), so that it fits a frame', () => {
    const frameBytesMax = 4 * 1024 * 1024;
    const node = k.node(1, { frameBytesMax });
    for (let seq = 1; seq <= 3; seq++) agree(node, 0, seq, [k.request(seq, 1, new Uint8Array(700 * 1024))]);
    assert.equal(node.replica.lastExecuted, 3);
    node.fromReplica(2, linkFrame({ type: 'fetch', from: 1, to: 3, epoch: 0 }));
    const fetched = node.flush().links('fetched');
    assert.equal(fetched.length, 1);
    assert.deepEqual(fetched[0]!.msg.entries.map((e) => e.seq), [1], 'two 700 KiB batches would exceed 1 MiB');
  });
});

describe('the client and refusals', () => {
  test('a client gives up once f+1 replicas sent valid refusals of exactly its request', () => {
    const big = k.request(0, 7, new Uint8Array(OP_BYTES_MAX + 1));
    const verifier = new RequestSigner(k.cluster, 0, k.clientSigners[0]!, k.verifier, sha256);
    const refusalsFrom = (id: number) => {
      const node = k.node(id);
      node.fromClient(0, frame(big));
      return node.flush().refusals[0]!.signed;
    };
    const [r0, r1, r2] = [0, 1, 2].map(refusalsFrom);
    const collector = new RefusalCollector(k.f, 0, 7, (r) => verifier.verifyRefusal(r, big));
    assert.equal(collector.add(r0!, 1), false, 'a refusal must come from its signer');
    assert.equal(collector.add(r0!, 0), false, 'one refusal is not enough: it may come from a faulty replica');
    assert.equal(collector.add(r0!, 0), false, 'the same replica counts once');
    // A refusal of another request (same client and timestamp, other bytes) does not count.
    const other = k.request(0, 7, new Uint8Array(OP_BYTES_MAX + 2));
    const otherNode = k.node(2);
    otherNode.fromClient(0, frame(other));
    assert.equal(collector.add(otherNode.flush().refusals[0]!.signed, 2), false);
    // A forged signature does not count.
    const forged = { ...r1!, sig: new Uint8Array(r1!.sig).map((b, i) => (i === 0 ? b ^ 1 : b)) };
    assert.equal(collector.add(forged, 1), false);
    assert.equal(collector.add(r2!, 2), true, 'f+1 = 2 replicas refused');
    assert.deepEqual([...collector.refusedBy].sort(), [0, 2]);
  });
});
