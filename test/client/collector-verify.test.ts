/**
 * How many reply signatures the client checks, and what a reply whose signature does not check does:
 * f+1 verifications per request when the replicas agree (replies that arrive after acceptance and
 * agree with it are never checked); a forged reply (bad signature, on the link of a correct replica)
 * counts for nothing: it neither completes a result nor makes one impossible (no FAIL), and the
 * correct replica's own reply, arriving after it, still counts. Collector level and through the SDK
 * (PbftClient over an in-memory transport). Real ed25519.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { concatBytes, domainTag } from '../../src/core/auth.ts';
import { decodeFrame, encodeBody, encodeSignedFrame } from '../../src/codec/messages.ts';
import type { AnyReply, RefusalMsg, ReplyMsg, RequestMsg, Signed } from '../../src/core/messages.ts';
import { RequestTooLargeError } from '../../src/client/errors.ts';
import { ReplyCollector } from '../../src/client/collector.ts';
import { RequestSigner } from '../../src/client/request.ts';
import { PbftClient } from '../../src/client/client.ts';
import { createNodeSigner, NodeVerifier, sha256 } from '../../src/crypto/node.ts';
import type { ClientTransport } from '../../src/transport/client-transport.ts';
import { TestKeyring } from './epoch-proofs.ts';
import { countVerifies } from './count-verifies.ts';

const k = new TestKeyring('collector-verify');
const cid = k.cluster.clusterId;
const replyTag = domainTag(cid, 'reply');

function reply(replica: number, result: string, options: { timestamp?: number; client?: number; forged?: boolean } = {}): Signed<ReplyMsg> {
  const msg: ReplyMsg = { type: 'reply', view: 0, client: options.client ?? 0, timestamp: options.timestamp ?? 7, replica, result: new TextEncoder().encode(result) };
  const body = encodeBody(msg);
  // A forged reply: signed by another replica's key (what a faulty link can do at best).
  const signer = k.replicaSigners.get(options.forged === true ? (replica + 1) % 4 : replica)!;
  return { msg, body, sig: signer.sign(concatBytes(replyTag, body)) };
}

/** A collector for n = 4, f = 1 whose verifier counts its calls. */
function counted(): { c: ReplyCollector; calls: () => number } {
  const s = new RequestSigner(k.cluster, 0, createNodeSigner(k.clientSecrets.get(0)!), new NodeVerifier(), sha256);
  let calls = 0;
  const c = new ReplyCollector(4, 1, 0, 7, (r: AnyReply) => {
    calls++;
    return s.verifyReply(r);
  });
  return { c, calls: () => calls };
}

test('agreeing replicas: f+1 signature checks, none for replies after acceptance', () => {
  const { c, calls } = counted();
  assert.equal(c.add(reply(2, 'a'), 2).kind, 'pending');
  const out = c.add(reply(0, 'a'), 0);
  assert.equal(out.kind, 'accepted');
  assert.equal(calls(), 2);
  // The SDK hands later replies to conflictOf, then noteLate: agreeing ones cost no check.
  for (const id of [3, 1]) {
    assert.equal(c.conflictOf(reply(id, 'a'), id), undefined);
    c.noteLate(reply(id, 'a'), id);
  }
  assert.equal(calls(), 2);
  // A later, different reply of a replica that had agreed is checked (it is evidence only if signed).
  assert.ok(c.conflictOf(reply(3, 'b'), 3) !== undefined);
  assert.equal(calls(), 4, 'the new reply and the unchecked first one');
});

test('a forged reply in the winning group is dropped; the request accepts on correct replies', () => {
  const { c } = counted();
  assert.equal(c.add(reply(0, 'a'), 0).kind, 'pending');
  assert.deepEqual(c.add(reply(1, 'a', { forged: true }), 1), { kind: 'ignored', reason: 'bad signature' });
  assert.deepEqual([...c.replies.keys()], [0], 'the forged reply is not kept');
  // Replica 1's own reply, after the forged one on its link, still counts.
  const out = c.add(reply(1, 'a'), 1);
  assert.equal(out.kind, 'accepted');
  assert.deepEqual(out.kind === 'accepted' ? out.replicas : [], [0, 1]);
});

test('forged replies never make a request fail, nor accept it', () => {
  const { c } = counted();
  assert.equal(c.add(reply(0, 'a'), 0).kind, 'pending');
  // Three different forged results: were they counted, no result could reach f+1 (a FAIL).
  for (const [id, result] of [[1, 'b'], [2, 'c'], [3, 'd']] as const) {
    assert.deepEqual(c.add(reply(id, result, { forged: true }), id), { kind: 'ignored', reason: 'bad signature' });
  }
  assert.equal(c.impossible(), false);
  assert.equal(c.settled, false);
  // Two forged replies that agree are not f+1 either.
  const { c: d } = counted();
  assert.equal(d.add(reply(1, 'x', { forged: true }), 1).kind, 'ignored');
  assert.equal(d.add(reply(2, 'x', { forged: true }), 2).kind, 'ignored');
  assert.equal(d.settled, false);
  // The correct replicas' replies then decide.
  assert.equal(c.add(reply(3, 'a'), 3).kind, 'accepted');
  assert.equal(d.add(reply(3, 'y'), 3).kind, 'pending');
  assert.equal(d.add(reply(2, 'y'), 2).kind, 'accepted');
});

/**
 * A PbftClient whose transport is four in-memory replicas that answer every request with signed
 * replies (result `result(replica)`, or a forged signature where `forge(replica)`), in replica order.
 */
async function sdk(options: { forge?: (replica: number) => boolean } = {}): Promise<PbftClient> {
  return sdkAnswering((req, deliver) => {
    for (const id of [0, 1, 2, 3]) deliver(id, encodeSignedFrame(reply(id, 'ok', { client: req.msg.client, timestamp: req.msg.timestamp, forged: options.forge?.(id) === true })));
  });
}

/**
 * A PbftClient (client 0) whose transport is four in-memory replicas: `answer` gets each request
 * sent (to the primary, or to everyone on a retransmission), on a later turn, and delivers frames
 * as from any replica.
 */
async function sdkAnswering(answer: (request: Signed<RequestMsg>, deliver: (replica: number, frame: Uint8Array) => void) => void): Promise<PbftClient> {
  let deliver: (replica: number, frame: Uint8Array) => void = () => undefined;
  const onRequest = (frame: Uint8Array): void => {
    const d = decodeFrame(frame);
    if (!d.ok || d.value.kind !== 'signed' || d.value.signed.msg.type !== 'request') return;
    const request = d.value.signed as Signed<RequestMsg>;
    setImmediate(() => answer(request, deliver));
  };
  const transport: ClientTransport = {
    send: (replica, frame) => {
      if (replica === 0) onRequest(frame);
      return true;
    },
    broadcast: (frame) => {
      onRequest(frame);
      return 4;
    },
    onFrame: (h) => void (deliver = h),
    onConnected: () => undefined,
    connectedReplicas: () => [0, 1, 2, 3],
    setReplicas: () => undefined,
    waitConnected: async () => undefined,
    close: async () => undefined,
  };
  return PbftClient.connect({ cluster: k.cluster, key: { id: 0, secretKey: k.clientSecrets.get(0)! }, crypto: 'node', createTransport: () => transport });
}

test('the SDK checks f+1 reply signatures per request when the replicas agree (4 replies each)', async () => {
  const c = await sdk();
  try {
    await c.invoke(Uint8Array.of(1)); // the connection's own checks happen before this
    const requests = 20;
    const calls = await countVerifies(async () => {
      for (let i = 0; i < requests; i++) assert.deepEqual(await c.invoke(Uint8Array.of(i)), new TextEncoder().encode('ok'));
      await new Promise((r) => setImmediate(r));
    });
    assert.equal(calls, 2 * requests);
  } finally {
    await c.close();
  }
});

test('the SDK drops a forged reply and accepts on the correct replicas that follow', async () => {
  const c = await sdk({ forge: (id) => id === 0 || id === 2 });
  try {
    let calls = 0;
    calls = await countVerifies(async () => {
      assert.deepEqual(await c.invoke(Uint8Array.of(1)), new TextEncoder().encode('ok'));
    });
    // 0 forged (checked, dropped), 1 good, 2 forged (checked, dropped), 3 good: accepted on {1, 3}.
    assert.equal(calls, 4);
  } finally {
    await c.close();
  }
});

test('f+1 signed refusals of an ordered request reject it with RequestTooLargeError naming them; a forged one counts for nothing', async () => {
  const refusalTag = domainTag(cid, 'refusal');
  const c = await sdkAnswering((req, deliver) => {
    // Replica 1's refusal is signed with replica 2's key (forged); 3 and 0 refuse correctly.
    for (const [id, key] of [[1, 2], [3, 3], [0, 0]] as const) {
      const msg: RefusalMsg = { type: 'refusal', replica: id, client: req.msg.client, timestamp: req.msg.timestamp, digest: sha256(req.body), reason: 'op-too-large', limit: 10 };
      const body = encodeBody(msg);
      deliver(id, encodeSignedFrame({ msg, body, sig: k.replicaSigners.get(key)!.sign(concatBytes(refusalTag, body)) }));
    }
  });
  try {
    const err = await c.invoke(Uint8Array.of(1, 2, 3)).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(err instanceof RequestTooLargeError, String(err));
    assert.equal(err.limit, 10);
    assert.deepEqual(err.refusedBy, [0, 3], 'the two correct refusals; the forged one is not counted');
  } finally {
    await c.close();
  }
});
