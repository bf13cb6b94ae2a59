/**
 * Replicas that lie: the fixture re-signs each reply with a wrong result (a valid signature over a
 * wrong statement) while the replica still takes part in ordering correctly.
 * - One liar (f = 1): every operation returns the correct result, and the client reports the
 *   liar's signed reply as 'faulty-reply' evidence.
 * - Beyond f: three liars with three different results make every result miss f+1, so the client
 *   fails with QuorumFailure carrying all four replies; two liars with the other two replicas
 *   stopped end in QuorumFailure or TimeoutError. Never a wrong value.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { PbftClient, FaultyReplyEvidence } from '../../src/client/client.ts';
import { QuorumFailure, TimeoutError } from '../../src/client/errors.ts';
import { RequestSigner } from '../../src/client/request.ts';
import { createNodeSigner, NodeVerifier } from '../../src/crypto/node.ts';
import { randomSecretKey } from '../../src/crypto/noble.ts';
import { KvModel } from '../../src/sim/kv-model.ts';
import { forgedResult } from './fixtures/faults.ts';
import { hex, TestCluster, waitFor } from './helpers.ts';

let tc: TestCluster;
let client: PbftClient;
const evidence: FaultyReplyEvidence[] = [];

before(async () => {
  tc = await TestCluster.create({ name: 'byzantine', faults: true });
  await tc.startAll();
  client = await tc.client(0, { timeoutMs: 5_000 });
  client.on('faulty-reply', (e) => evidence.push(e));
});

after(async () => {
  await tc?.destroy();
});

test('one replica signing wrong results: every result is correct and its signed reply is reported as evidence', async () => {
  tc.setFault(3, { mode: 'wrong-result', tag: 'lie' });
  const model = new KvModel();
  for (let i = 0; i < 12; i++) {
    const key = `k${i % 3}`;
    await client.put(key, `v${i}`);
    model.apply({ type: 'put', key, value: `v${i}` });
    assert.equal(await client.get(key), model.get(key));
    if (i % 4 === 0) {
      const r = await client.cas(key, `v${i}`, `w${i}`);
      const m = model.apply({ type: 'cas', key, expected: `v${i}`, next: `w${i}` });
      assert.deepEqual(r, { swapped: (m as { swapped: boolean }).swapped, current: (m as { current: unknown }).current });
    }
  }
  assert.equal(await client.del('k0'), true);
  assert.equal(await client.get('k0'), null);

  await waitFor(() => evidence.length > 0, 'faulty-reply evidence');
  const verifier = new RequestSigner(tc.cluster, 0, createNodeSigner(randomSecretKey()), new NodeVerifier());
  for (const e of evidence) {
    assert.equal(e.replica, 3, 'only replica 3 lies');
    assert.equal(e.reply.msg.replica, 3);
    assert.equal(e.reply.msg.client, 0);
    assert.ok(verifier.verifyReply(e.reply), "the evidence carries replica 3's valid signature");
    assert.equal(hex(e.reply.msg.result), hex(forgedResult(3, 'lie')));
    assert.notEqual(hex(e.reply.msg.result), hex(e.accepted));
  }
  tc.setFault(3, { mode: 'none' });
});

test('three replicas signing three different wrong results (beyond f): QuorumFailure with every reply, never a value', async () => {
  for (const id of [1, 2, 3]) tc.setFault(id, { mode: 'wrong-result', tag: `liar-${id}` });
  for (const op of [() => client.get('k1'), () => client.put('k1', 'x'), () => client.del('k2')]) {
    await assert.rejects(op(), (err: unknown) => {
      assert.ok(err instanceof QuorumFailure, `expected QuorumFailure, got ${String(err)}`);
      assert.equal(err.code, 'QUORUM_FAILURE');
      assert.equal(err.replies.length, 4, 'it carries every reply');
      assert.deepEqual(err.replies.map((r) => r.msg.replica).sort(), [0, 1, 2, 3]);
      assert.equal(new Set(err.replies.map((r) => hex(r.msg.result))).size, 4, 'four different results');
      return true;
    });
  }
  for (const id of [1, 2, 3]) tc.setFault(id, { mode: 'none' });
  assert.equal(await client.get('k1'), 'x', 'with the liars honest again the cluster answers (the put above was executed)');
});

test('two replicas signing two different wrong results, the other two stopped: QuorumFailure or TimeoutError, never a value', async () => {
  tc.setFault(2, { mode: 'wrong-result', tag: 'a' });
  tc.setFault(3, { mode: 'wrong-result', tag: 'b' });
  await Promise.all([tc.stop(0), tc.stop(1)]);
  const short = await tc.client(1, { timeoutMs: 2_000 });
  for (const op of [() => short.get('k1'), () => short.put('k1', 'y')]) {
    await assert.rejects(op(), (err: unknown) => {
      assert.ok(err instanceof QuorumFailure || err instanceof TimeoutError, `expected QuorumFailure or TimeoutError, got ${String(err)}`);
      return true;
    });
  }
});
