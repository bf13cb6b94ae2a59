/**
 * The SDK's read-only requests (get, invokeReadOnly) against four in-process replicas (real
 * transport and signatures): answered unordered on 2f+1 matching READ-REPLYs, and otherwise sent
 * ordered with a fresh timestamp, for each reason a read falls back (disagreeing answers, a refusal,
 * too few answers in time, a newer epoch), with the 'read-fallback' event and readStats.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeResult, encodeOp, encodeResult } from '../../src/app/kv-ops.ts';
import { PbftClient, type ReadFallback } from '../../src/client/client.ts';
import { concatBytes, domainTag } from '../../src/core/auth.ts';
import { decodeFrame, encodeBody, encodeSignedFrame } from '../../src/codec/messages.ts';
import type { ReadReplyMsg } from '../../src/core/messages.ts';
import { createNodeSigner } from '../../src/crypto/node.ts';
import { InProcessCluster } from '../node/inprocess-cluster.ts';

let ipc: InProcessCluster;
const clients: PbftClient[] = [];

async function connect(id: number, options: Partial<Parameters<typeof PbftClient.connect>[0]> = {}): Promise<PbftClient> {
  const c = await PbftClient.connect({ cluster: ipc.cluster, key: ipc.clientKey(id), timeoutMs: 30_000, ...options });
  // Every replica connected: a read goes to all four.
  const deadline = Date.now() + 10_000;
  while (c.connectedReplicas().length < 4 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  clients.push(c);
  return c;
}

/**
 * Makes replica `id` rewrite its READ-REPLYs (ordered replies untouched): `change` returns the
 * fields to sign instead (a validly signed lie), or null to drop the answer. Undefined: honest again.
 */
function onReads(id: number, change?: (m: ReadReplyMsg) => Partial<ReadReplyMsg> | null): void {
  const hooks = ipc.replicas[id]!.hooks;
  if (change === undefined) {
    delete hooks.mutateReply;
    return;
  }
  const signer = createNodeSigner(ipc.replicaSecrets[id]!);
  hooks.mutateReply = (_client, frame) => {
    const d = decodeFrame(frame);
    if (!d.ok || d.value.kind !== 'signed' || d.value.signed.msg.type !== 'readreply') return frame;
    const fields = change(d.value.signed.msg);
    if (fields === null) return new Uint8Array([0]);
    const msg: ReadReplyMsg = { ...d.value.signed.msg, ...fields };
    const body = encodeBody(msg);
    return encodeSignedFrame({ msg, body, sig: signer.sign(concatBytes(domainTag(ipc.cluster.clusterId, 'readreply'), body)) });
  };
}

const lie = (value: string) => (): Partial<ReadReplyMsg> => ({ result: encodeResult({ type: 'get', value }) });

async function executed(): Promise<number[]> {
  return ipc.replicas.map((r) => r.node.status().counters.requestsExecuted);
}

function fallbacks(c: PbftClient): ReadFallback[] {
  const seen: ReadFallback[] = [];
  c.on('read-fallback', (f) => seen.push(f));
  return seen;
}

before(async () => {
  ipc = await InProcessCluster.create({ clients: 5 });
});

after(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await ipc?.stop();
});

test('get is answered unordered by 2f+1 matching READ-REPLYs: nothing is executed, the result is the latest write', async () => {
  const c = await connect(0);
  await c.put('a', '1');
  await c.put('a', '2');
  // (The put completed on f+1 replies: let the others execute it too before counting.)
  const deadline = Date.now() + 10_000;
  while ((await executed()).some((n) => n < 2) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  const before = await executed();
  const answeredBefore = ipc.replicas.map((r) => r.node.status().counters.readsAnswered);
  assert.equal(await c.get('a'), '2');
  assert.equal(await c.get('missing'), null);
  assert.deepEqual(c.readStats, { unordered: 2, fellBack: 0 });
  assert.deepEqual(await executed(), before, 'no replica executed anything for the reads');
  const answered = ipc.replicas.map((r, i) => r.node.status().counters.readsAnswered - answeredBefore[i]!);
  assert.ok(answered.filter((n) => n >= 1).length >= 3, `at least 2f+1 replicas answered: ${answered.join(',')}`);
});

test('answers that disagree: the SDK falls back to an ordered read at once (reason disagreement)', async () => {
  const c = await connect(1, { readTimeoutMs: 60_000 });
  const seen = fallbacks(c);
  const faulty: number[] = [];
  c.on('faulty-reply', (e) => faulty.push(e.replica));
  await c.put('b', 'truth');
  onReads(2, lie('stale-2'));
  onReads(3, lie('stale-3'));
  try {
    const started = Date.now();
    assert.equal(await c.get('b'), 'truth');
    assert.ok(Date.now() - started < 30_000, 'no read timeout was waited for');
    assert.equal(seen.length, 1);
    assert.equal(seen[0]!.reason, 'disagreement');
    // It falls back as soon as no answer can reach 2f+1: once both lies and one truth are in (which
    // honest replica answered by then, and whether the other did, depends on arrival order).
    const answered = seen[0]!.answered;
    assert.ok(answered.includes(2) && answered.includes(3) && answered.length >= 3, `answered: ${answered.join(',')}`);
    assert.deepEqual(c.readStats, { unordered: 0, fellBack: 1 });
    // Differing read answers are not evidence: correct replicas may answer from different states.
    assert.deepEqual(faulty, []);
  } finally {
    onReads(2);
    onReads(3);
  }
  // One replica answering differently does not prevent the quorum of the other three.
  onReads(3, lie('stale-3'));
  try {
    assert.equal(await c.get('b'), 'truth');
    assert.deepEqual(c.readStats, { unordered: 1, fellBack: 1 });
  } finally {
    onReads(3);
  }
});

test('too few answers within readTimeoutMs: falls back after it (reason timeout)', async () => {
  const c = await connect(2, { readTimeoutMs: 200 });
  const seen = fallbacks(c);
  await c.put('c', 'v');
  onReads(2, () => null);
  onReads(3, () => null);
  try {
    assert.equal(await c.get('c'), 'v');
    assert.deepEqual(seen.map((f) => f.reason), ['timeout']);
    assert.ok(seen[0]!.answered.length <= 2);
  } finally {
    onReads(2);
    onReads(3);
  }
});

test('an operation the state machine does not declare read-only is refused and then ordered (reason refused)', async () => {
  const c = await connect(3);
  const seen = fallbacks(c);
  const result = decodeResult(await c.invokeReadOnly(encodeOp({ type: 'put', key: 'd', value: 'ordered' })));
  assert.ok(result.ok && result.value.type === 'put');
  assert.deepEqual(seen.map((f) => f.reason), ['refused']);
  assert.ok(seen[0]!.refused.length >= 2, `refusals: ${seen[0]!.refused.join(',')}`);
  assert.equal(await c.get('d'), 'ordered');
  const refused = ipc.replicas.map((r) => r.node.status().rejected['unordered-not-read-only'] ?? 0);
  assert.ok(refused.filter((n) => n > 0).length >= 2, `replicas counted the typed rejection: ${refused.join(',')}`);
});

test('answers naming a newer membership epoch do not count: falls back (reason epoch)', async () => {
  const c = await connect(4);
  const seen = fallbacks(c);
  await c.put('e', '1');
  onReads(1, () => ({ epoch: 1 }));
  onReads(2, () => ({ epoch: 1 }));
  try {
    assert.equal(await c.get('e'), '1');
    assert.deepEqual(seen.map((f) => f.reason), ['epoch']);
    assert.equal(c.epoch, 0, 'a claimed epoch is not believed without its proof');
  } finally {
    onReads(1);
    onReads(2);
  }
});
