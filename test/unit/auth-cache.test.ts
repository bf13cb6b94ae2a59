/**
 * The replica's cache of verified signatures (src/core/auth.ts) is bounded in the memory its bodies
 * keep alive, not only in entries: a verified body is usually a view into the frame it arrived in,
 * and 16,384 remembered requests of a bulk load once kept their 3 MiB PRE-PREPARE frames alive.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encodeBody } from '../../src/codec/messages.ts';
import { Authenticator, COPIED_BODY_BYTES_MAX, concatBytes, domainTag } from '../../src/core/auth.ts';
import type { ClusterConfig } from '../../src/core/cluster.ts';
import type { RequestMsg, Signed } from '../../src/core/messages.ts';
import { createNodeSigner, NodeVerifier, sha256 } from '../../src/crypto/node.ts';
import { randomSecretKey } from '../../src/crypto/noble.ts';

const replica = createNodeSigner(randomSecretKey());
const client = createNodeSigner(randomSecretKey());
const cluster: ClusterConfig = {
  clusterId: 'auth-cache-test',
  f: 0,
  replicas: [{ id: 0, url: 'ws://127.0.0.1:7001', publicKey: replica.publicKey }],
  clients: [{ id: 0, publicKey: client.publicKey }],
};
const verifier = new NodeVerifier();

function auth(entriesMax: number, bytesMax: number): Authenticator {
  return new Authenticator(cluster, { sign: (d) => replica.sign(d), verify: (k, d, s) => verifier.verify(k, d, s), hash: sha256 }, entriesMax, bytesMax);
}

/** A signed request with an op of `opBytes`, its body placed at `offset` of a fresh buffer of `frameBytes` (a view, as decoded from a frame). */
function request(ts: number, opBytes: number, frameBytes: number, offset = 17): Signed<RequestMsg> {
  const msg: RequestMsg = { type: 'request', client: 0, timestamp: ts, op: new Uint8Array(opBytes).fill(ts & 255) };
  const encoded = encodeBody(msg);
  const frame = new Uint8Array(Math.max(frameBytes, offset + encoded.length));
  frame.set(encoded, offset);
  const body = frame.subarray(offset, offset + encoded.length);
  return { msg, body, sig: client.sign(concatBytes(domainTag(cluster.clusterId, 'request'), encoded)) };
}

test('a small body that is a view into a large frame is cached as a copy: the frame is not kept alive', () => {
  const a = auth(8_192, 32 * 1024 * 1024);
  const reqs = Array.from({ length: 200 }, (_, i) => request(i + 1, 100, 1024 * 1024));
  for (const r of reqs) assert.ok(a.verify(r));
  assert.equal(a.verifications, 200);
  assert.equal(a.cachedEntries, 200);
  const bodyBytes = reqs.reduce((n, r) => n + r.body.length, 0);
  // Counted (and kept) as the bodies' own bytes, not 200 MiB of frames.
  assert.equal(a.cachedBytes, bodyBytes);
  // Still a cache: the same bytes again are a hit, other bytes under the same signature are checked (and fail).
  for (const r of reqs) assert.ok(a.verify(r));
  assert.equal(a.verifications, 200);
  assert.equal(a.cacheHits, 200);
  const forged = { ...reqs[0]!, body: reqs[1]!.body };
  assert.equal(a.verify(forged), false);
  assert.equal(a.verifications, 201);
  // The copy is independent of the frame: changing the frame afterwards does not make its bytes a hit.
  const r = reqs[5]!;
  const original = r.body.slice();
  r.body[r.body.length - 1] = r.body[r.body.length - 1]! ^ 0xff;
  assert.equal(a.verify(r), false);
  r.body.set(original);
  assert.ok(a.verify(r));
  assert.equal(a.cacheHits, 201);
});

test('the cache holds at most two generations of cacheBytesMax (+ one body), whatever the entry limit', () => {
  const bytesMax = 256 * 1024;
  const a = auth(8_192, bytesMax);
  // Bodies larger than COPIED_BODY_BYTES_MAX are kept as they are and count as their whole buffer.
  const opBytes = COPIED_BODY_BYTES_MAX + 4096;
  const frame = 64 * 1024;
  let largest = 0;
  for (let i = 1; i <= 100; i++) {
    const r = request(i, opBytes, frame);
    largest = Math.max(largest, r.body.buffer.byteLength);
    assert.ok(a.verify(r));
    assert.ok(a.cachedBytes <= 2 * bytesMax + largest, `after ${i}: ${a.cachedBytes} bytes cached`);
  }
  // 4 frames of 64 KiB fit a generation: at most 8 entries remain of 100.
  assert.ok(a.cachedEntries <= 8, `${a.cachedEntries} entries`);
  assert.ok(a.cachedEntries >= 4, `${a.cachedEntries} entries`);
  // The most recent ones are still hits.
  const last = request(100, opBytes, frame);
  const before = a.verifications;
  assert.ok(a.verify(last));
  assert.equal(a.verifications, before);
  // A body larger than the whole budget still enters (alone in its generation) and bounds the rest.
  const huge = request(101, 300 * 1024, 300 * 1024, 0);
  assert.ok(a.verify(huge));
  assert.ok(a.cachedBytes <= 2 * bytesMax + huge.body.buffer.byteLength);
  assert.ok(a.verify(huge));
  assert.equal(a.verifications, before + 1);
});

test('the entry limit still rotates generations when bodies are small', () => {
  const a = auth(16, 32 * 1024 * 1024);
  for (let i = 1; i <= 100; i++) assert.ok(a.verify(request(i, 10, 0, 0)));
  assert.ok(a.cachedEntries <= 32, `${a.cachedEntries} entries`);
  assert.ok(a.cachedEntries > 16);
});
