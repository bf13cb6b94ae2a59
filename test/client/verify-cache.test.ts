/**
 * The signature cache the SDK's clients of one process share (src/crypto/verify-cache.ts): it
 * answers exactly what the verifier it wraps would (only the very same key, message and signature
 * bytes hit; invalid signatures are never remembered; the caller's buffers may change afterwards),
 * stays within its bounds, and through the SDK lets the clients answered by one REPLY-BATCH check
 * its signature once between them, while a forged batch is still refused by every one of them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { concatBytes, domainTag } from '../../src/core/auth.ts';
import { decodeFrame, encodeBatchedReplyFrame, encodeBody } from '../../src/codec/messages.ts';
import type { BatchedReply, ReplyBatchMsg, RequestMsg, Signed } from '../../src/core/messages.ts';
import { buildReplyTree, replyLeaf } from '../../src/core/replytree.ts';
import { PbftClient, verifyCacheStats } from '../../src/client/client.ts';
import { createNodeSigner, NodeVerifier, sha256 } from '../../src/crypto/node.ts';
import { CachingVerifier } from '../../src/crypto/verify-cache.ts';
import type { Verifier } from '../../src/crypto/types.ts';
import type { ClientTransport } from '../../src/transport/client-transport.ts';
import { TestKeyring } from './epoch-proofs.ts';
import { countVerifies } from './count-verifies.ts';

/** A NodeVerifier that counts the checks it runs. */
function counting(): { verifier: Verifier; calls: () => number } {
  const inner = new NodeVerifier();
  let calls = 0;
  return {
    verifier: { verify: (key, data, sig) => (calls++, inner.verify(key, data, sig)) },
    calls: () => calls,
  };
}

const signerA = createNodeSigner(new Uint8Array(32).fill(1));
const signerB = createNodeSigner(new Uint8Array(32).fill(2));
const message = (i: number): Uint8Array => new TextEncoder().encode(`message ${i}`);

test('a valid signature is checked once; the same bytes again are answered from the cache', () => {
  const { verifier, calls } = counting();
  const cache = new CachingVerifier(verifier);
  const sig = signerA.sign(message(1));
  assert.equal(cache.verify(signerA.publicKey, message(1), sig), true);
  // Fresh arrays with the same bytes: a hit.
  assert.equal(cache.verify(signerA.publicKey.slice(), message(1), sig.slice()), true);
  assert.equal(cache.verify(signerA.publicKey, message(1), sig), true);
  assert.equal(calls(), 1);
  assert.deepEqual(cache.stats(), { checks: 3, hits: 2, entries: 1 });
});

test('the same signature with another message or another key is checked, and fails', () => {
  const { verifier, calls } = counting();
  const cache = new CachingVerifier(verifier);
  const sig = signerA.sign(message(1));
  assert.equal(cache.verify(signerA.publicKey, message(1), sig), true);
  assert.equal(cache.verify(signerA.publicKey, message(2), sig), false);
  assert.equal(cache.verify(signerB.publicKey, message(1), sig), false);
  // A message that extends the remembered one, or is a prefix of it.
  assert.equal(cache.verify(signerA.publicKey, concatBytes(message(1), Uint8Array.of(0)), sig), false);
  assert.equal(cache.verify(signerA.publicKey, message(1).subarray(1), sig), false);
  assert.equal(calls(), 5);
  // The valid entry is still there.
  assert.equal(cache.verify(signerA.publicKey, message(1), sig), true);
  assert.equal(calls(), 5);
});

test('an invalid signature is never remembered: each time it is checked again', () => {
  const { verifier, calls } = counting();
  const cache = new CachingVerifier(verifier);
  const bad = signerB.sign(message(1)); // B's signature presented as A's
  for (let i = 0; i < 3; i++) assert.equal(cache.verify(signerA.publicKey, message(1), bad), false);
  assert.equal(calls(), 3);
  assert.equal(cache.stats().entries, 0);
  // Malformed lengths go to the wrapped verifier, which refuses them.
  assert.equal(cache.verify(signerA.publicKey, message(1), bad.subarray(0, 63)), false);
  assert.equal(cache.verify(signerA.publicKey.subarray(0, 31), message(1), signerA.sign(message(1))), false);
});

test('the cache keeps its own copies: the caller changing its buffers afterwards changes nothing', () => {
  const { verifier } = counting();
  const cache = new CachingVerifier(verifier);
  const data = message(1);
  const key = signerA.publicKey.slice();
  const sig = signerA.sign(data);
  assert.equal(cache.verify(key, data, sig), true);
  data[0]! ^= 1;
  // The changed message under the same signature is checked (and fails), not matched against itself.
  assert.equal(cache.verify(key, data, sig), false);
  data[0]! ^= 1;
  key[0]! ^= 1;
  assert.equal(cache.verify(key, data, sig), false);
  key[0]! ^= 1;
  assert.equal(cache.verify(key, data, sig), true);
  assert.equal(cache.stats().hits, 1);
});

test('bounded: the least recently used entry goes first; long messages are checked, not kept', () => {
  const { verifier, calls } = counting();
  const cache = new CachingVerifier(verifier, 2, 16);
  const sigs = [0, 1, 2].map((i) => signerA.sign(message(i)));
  assert.equal(cache.verify(signerA.publicKey, message(0), sigs[0]!), true);
  assert.equal(cache.verify(signerA.publicKey, message(1), sigs[1]!), true);
  assert.equal(cache.verify(signerA.publicKey, message(0), sigs[0]!), true); // hit: 0 is now the most recent
  assert.equal(cache.verify(signerA.publicKey, message(2), sigs[2]!), true); // evicts 1
  assert.equal(cache.stats().entries, 2);
  assert.equal(calls(), 3);
  assert.equal(cache.verify(signerA.publicKey, message(0), sigs[0]!), true);
  assert.equal(calls(), 3, '0 stayed');
  assert.equal(cache.verify(signerA.publicKey, message(1), sigs[1]!), true);
  assert.equal(calls(), 4, '1 was evicted and is checked again');
  const long = new Uint8Array(17).fill(9);
  const longSig = signerA.sign(long);
  assert.equal(cache.verify(signerA.publicKey, long, longSig), true);
  assert.equal(cache.verify(signerA.publicKey, long, longSig), true);
  assert.equal(calls(), 6);
  assert.throws(() => new CachingVerifier(verifier, 0), RangeError);
  assert.throws(() => new CachingVerifier(verifier, 1.5), RangeError);
  assert.throws(() => new CachingVerifier(verifier, 4, -1), RangeError);
});

// -------------------------------------------------------------------------------------------------
// Through the SDK: two clients of one process, four in-memory replicas answering both requests
// with one signed REPLY-BATCH each (as real replicas do when the requests share a batch).

const k = new TestKeyring('verify-cache', 2);
const batchTag = domainTag(k.cluster.clusterId, 'replybatch');
const RESULT = Uint8Array.of(0x82, 0x01, 0xf6);

/** Fake replicas: once `expect` requests are in, each replica answers them all in one batch. */
function batchingReplicas(expect: number, forge: (replica: number) => boolean): { transport: (client: number) => ClientTransport } {
  const handlers = new Map<number, (replica: number, frame: Uint8Array) => void>();
  let pending: RequestMsg[] = [];
  let seq = 0;
  const receive = (frame: Uint8Array): void => {
    const d = decodeFrame(frame);
    if (!d.ok || d.value.kind !== 'signed' || d.value.signed.msg.type !== 'request') return;
    const m = d.value.signed.msg as RequestMsg;
    if (pending.some((p) => p.client === m.client && p.timestamp === m.timestamp)) return;
    pending.push(m);
    if (pending.length < expect) return;
    const requests = pending;
    pending = [];
    seq++;
    const tree = buildReplyTree(sha256, requests.map((r) => replyLeaf(sha256, r.client, r.timestamp, RESULT)));
    setImmediate(() => {
      for (const replica of [0, 1, 2, 3]) {
        const msg: ReplyBatchMsg = { type: 'replybatch', view: 0, replica, seq, count: requests.length, root: tree.root };
        const body = encodeBody(msg);
        // A forged batch: signed with another replica's key.
        const signer = k.replicaSigners.get(forge(replica) ? (replica + 1) % 4 : replica)!;
        const batch: Signed<ReplyBatchMsg> = { msg, body, sig: signer.sign(concatBytes(batchTag, body)) };
        requests.forEach((r, index) => {
          const reply: BatchedReply = { msg: { type: 'reply', view: 0, replica, client: r.client, timestamp: r.timestamp, result: RESULT }, batch, index, path: tree.paths[index]! };
          handlers.get(r.client)?.(replica, encodeBatchedReplyFrame(reply));
        });
      }
    });
  };
  return {
    transport: (client) => ({
      send: (replica, frame) => {
        if (replica === 0) receive(frame);
        return true;
      },
      broadcast: (frame) => {
        receive(frame);
        return 4;
      },
      onFrame: (h) => void handlers.set(client, h),
      onConnected: () => undefined,
      connectedReplicas: () => [0, 1, 2, 3],
      setReplicas: () => undefined,
      waitConnected: async () => undefined,
      close: async () => undefined,
    }),
  };
}

async function twoClients(forge: (replica: number) => boolean): Promise<PbftClient[]> {
  const replicas = batchingReplicas(2, forge);
  return Promise.all(
    [0, 1].map((id) => PbftClient.connect({ cluster: k.cluster, key: { id, secretKey: k.clientSecrets.get(id)! }, crypto: 'node', createTransport: () => replicas.transport(id) })),
  );
}

test('SDK: two clients answered by one REPLY-BATCH per replica check its signatures once between them', async () => {
  const clients = await twoClients(() => false);
  try {
    const rounds = 10;
    const before = verifyCacheStats();
    const calls = await countVerifies(async () => {
      for (let i = 0; i < rounds; i++) {
        const results = await Promise.all(clients.map((c) => c.invoke(Uint8Array.of(i))));
        for (const r of results) assert.deepEqual(r, RESULT);
      }
    });
    const after = verifyCacheStats();
    // Each client needs f+1 = 2 replicas' batch signatures: 4 asked for per round, 2 run.
    assert.equal(calls, 2 * rounds);
    assert.equal(after.checks - before.checks, 4 * rounds);
    assert.equal(after.hits - before.hits, 2 * rounds);
  } finally {
    await Promise.all(clients.map((c) => c.close()));
  }
});

test('SDK: a forged REPLY-BATCH is refused by every client that gets it; they accept on the correct replicas', async () => {
  // Replicas 0 and 2 forge (replies arrive in replica order): each client must drop both and
  // accept on 1 and 3. Nothing forged is remembered, so the second client checks them again.
  const clients = await twoClients((replica) => replica === 0 || replica === 2);
  try {
    const calls = await countVerifies(async () => {
      const results = await Promise.all(clients.map((c) => c.invoke(Uint8Array.of(1))));
      for (const r of results) assert.deepEqual(r, RESULT);
    });
    // Client 0: 0 (forged), 1, 2 (forged), 3 = 4 checks; client 1: 0 and 2 again, 1 and 3 from the cache.
    assert.equal(calls, 6);
  } finally {
    await Promise.all(clients.map((c) => c.close()));
  }
});
