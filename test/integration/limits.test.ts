/**
 * The request size limit against real replica processes (default limits): an operation one byte
 * over OP_BYTES_MAX is refused by the SDK before it is signed, and, sent anyway by a client that
 * skips the check, refused by the replicas on arrival with signed REFUSALs (it is never proposed, so
 * it cannot stall the cluster). The cluster keeps serving other clients, without a view change.
 * One byte under the limit is ordered and executed.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { PbftClient } from '../../src/client/client.ts';
import { RequestTooLargeError } from '../../src/client/errors.ts';
import { RequestSigner, refusalOf } from '../../src/client/request.ts';
import { decodeFrame, encodeSignedFrame } from '../../src/codec/messages.ts';
import { OP_BYTES_MAX } from '../../src/core/limits.ts';
import type { RefusalMsg, Signed } from '../../src/core/messages.ts';
import { keyFileName, loadPrivateKey } from '../../src/crypto/keyring.ts';
import { createNodeSigner, NodeVerifier, sha256 } from '../../src/crypto/node.ts';
import { createClientTransport, type ClientTransport } from '../../src/transport/client-transport.ts';
import { TestCluster, waitFor } from './helpers.ts';

let tc: TestCluster;
let client: PbftClient;
let raw: ClientTransport;
let rawRequests: RequestSigner;
const refusals: Array<{ from: number; refusal: Signed<RefusalMsg> }> = [];

before(async () => {
  tc = await TestCluster.create({ name: 'limits' });
  await tc.startAll();
  client = await tc.client(0);
  const signer = createNodeSigner(loadPrivateKey(join(tc.keysDir, keyFileName('client', 3))).secretKey);
  rawRequests = new RequestSigner(tc.cluster, 3, signer, new NodeVerifier(), sha256);
  raw = createClientTransport({ cluster: tc.cluster, clientId: 3, signer, verifier: new NodeVerifier() });
  raw.onFrame((from, frame) => {
    const d = decodeFrame(frame);
    const refusal = d.ok ? refusalOf(d.value) : undefined;
    if (refusal) refusals.push({ from, refusal });
  });
  await raw.waitConnected(4, 30_000);
});

after(async () => {
  await raw?.close();
  await client?.close();
  await tc?.destroy();
});

test('the SDK refuses an operation one byte over the limit before signing it', async () => {
  const op = new Uint8Array(OP_BYTES_MAX + 1);
  const err = await client.invoke(op).then(
    () => undefined,
    (e: unknown) => e,
  );
  assert.ok(err instanceof RequestTooLargeError, String(err));
  assert.equal(err.code, 'REQUEST_TOO_LARGE');
  assert.equal(err.bytes, OP_BYTES_MAX + 1);
  assert.equal(err.limit, OP_BYTES_MAX);
  assert.match(err.message, /exceeds the limit of \d+ bytes; it was not executed/);
});

test('sent anyway, the replicas refuse it on arrival with signed refusals, and the cluster keeps serving without a view change', async () => {
  const request = rawRequests.sign(Date.now() * 1000, new Uint8Array(OP_BYTES_MAX + 1).fill(7));
  raw.broadcast(encodeSignedFrame(request));
  await waitFor(() => new Set(refusals.map((r) => r.from)).size === 4 || undefined, 'a refusal from every replica', 30_000);
  for (const { from, refusal } of refusals) {
    assert.equal(refusal.msg.replica, from);
    assert.equal(refusal.msg.reason, 'op-too-large');
    assert.equal(refusal.msg.limit, OP_BYTES_MAX);
    assert.ok(rawRequests.verifyRefusal(refusal, request), `replica ${from}: the refusal is signed and names the request`);
  }
  // The same request under another timestamp is not what these refusals name.
  const other = rawRequests.sign(request.msg.timestamp + 1, request.msg.op);
  assert.equal(rawRequests.verifyRefusal(refusals[0]!.refusal, other), false);

  for (let i = 0; i < 20; i++) await client.put(`after-${i}`, `${i}`);
  assert.equal(await client.get('after-19'), '19');
  // One byte under the limit is ordered and executed (an opaque operation: the store answers MALFORMED_OP).
  const fits = await client.invoke(new Uint8Array(OP_BYTES_MAX)).then(
    (r) => r,
    (e: unknown) => e,
  );
  assert.ok(fits instanceof Uint8Array, `an operation of exactly ${OP_BYTES_MAX} bytes was ordered: ${String(fits)}`);
  for (const id of [0, 1, 2, 3]) {
    const s = await tc.status(id);
    assert.equal(s.view, 0, `replica ${id} stayed in view 0`);
    assert.equal(s.counters.viewChanges, 0, `replica ${id} started no view change`);
    assert.ok((s.rejected['request-too-large'] ?? 0) >= 1, `replica ${id} counted the refusal`);
    assert.equal(s.rejected['batch-too-large'] ?? 0, 0);
  }
});
