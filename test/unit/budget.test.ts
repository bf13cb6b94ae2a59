/**
 * The per-peer budget of loop time for link requests (src/node/budget.ts): which frames are charged,
 * the token bucket, and the loop dropping a flooding peer's requests while its signed messages and
 * the other peers' requests still reach the core.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeLinkFrame, encodeSignedFrame } from '../../src/codec/messages.ts';
import { isLinkRequest, isSignedFrame, LINK_BUDGET_MS_MAX, LINK_BUDGET_MS_PER_S, PeerBudgets } from '../../src/node/budget.ts';
import { TurnLoop } from '../../src/node/loop.ts';
import { encodeCbor } from '../../src/core/encoding.ts';
import type { LinkMessage } from '../../src/core/messages.ts';
import type { Ready, Replica, Source } from '../../src/core/replica.ts';

const digest = new Uint8Array(32);
const cert = { epoch: 0, seq: 0, digest, proof: [] };

test('link requests are told from signed messages and replies to link requests; other encodings count as requests', () => {
  const requests: LinkMessage[] = [
    { type: 'fetch', from: 1, to: 100, epoch: 0 },
    { type: 'batchreq', seq: 3, digest },
    { type: 'statereq', seq: 128, part: { kind: 'meta' } },
    { type: 'statereq', seq: 128, part: { kind: 'partitions', indices: [1, 2, 3] } },
    { type: 'newviewreq', view: 3 },
  ];
  const replies: LinkMessage[] = [
    { type: 'fetched', entries: [], stable: cert, proofs: [] },
    { type: 'batch', seq: 3, digest, batch: [], time: 0 },
    { type: 'state', seq: 128, reply: { kind: 'unavailable', stable: cert } },
  ];
  for (const m of requests) assert.equal(isLinkRequest(encodeLinkFrame(m)), true, m.type);
  for (const m of [...requests, ...replies]) assert.equal(isSignedFrame(encodeLinkFrame(m)), false, m.type);
  for (const m of replies) assert.equal(isLinkRequest(encodeLinkFrame(m)), false, m.type);
  const signed = { msg: { type: 'suspect', view: 0, replica: 1 } as const, body: new Uint8Array(3), sig: new Uint8Array(64) };
  for (const frame of [encodeSignedFrame(signed), encodeSignedFrame(signed, [])]) {
    assert.equal(isSignedFrame(frame), true);
    assert.equal(isLinkRequest(frame), false);
  }
  // The same request in another encoding (an indefinite-length array), garbage, an empty frame: charged.
  const fetch = encodeLinkFrame({ type: 'fetch', from: 1, to: 100, epoch: 0 });
  const indefinite = Uint8Array.of(0x9f, ...fetch.subarray(1), 0xff);
  assert.equal(isLinkRequest(indefinite), true);
  assert.equal(isLinkRequest(encodeCbor([1, [21]]).subarray(0, 3)), true, 'a truncated reply header');
  assert.equal(isLinkRequest(new Uint8Array(0)), true);
});

test('the bucket: a burst of LINK_BUDGET_MS_MAX, then LINK_BUDGET_MS_PER_S a second, per peer', () => {
  const b = new PeerBudgets();
  assert.equal(b.allows(1, 0), true);
  b.charge(1, LINK_BUDGET_MS_MAX + 100, 0);
  assert.equal(b.allows(1, 0), false);
  assert.equal(b.allows(2, 0), true, 'per peer');
  // 100 ms of debt is repaid after 100 / LINK_BUDGET_MS_PER_S seconds.
  const repaid = (100 / LINK_BUDGET_MS_PER_S) * 1000;
  assert.equal(b.allows(1, repaid - 1), false);
  assert.equal(b.allows(1, repaid + 10), true);
  assert.equal(b.dropped, 2);
  // Saving up stops at the maximum.
  b.charge(1, LINK_BUDGET_MS_MAX, 1e9);
  assert.equal(b.allows(1, 1e9), false);
});

test("the loop drops a flooding peer's link requests over budget; its signed frames and other peers pass", async () => {
  let clock = 0;
  const received: Array<{ from: Source; kind: string }> = [];
  let index = 0;
  const replica = {
    rejected: new Map(),
    misbehaviours: new Map(),
    receive: (from: Source, frame: Uint8Array) => {
      // Serving a request takes 10 ms of loop time.
      if (isLinkRequest(frame)) clock += 10;
      received.push({ from, kind: isLinkRequest(frame) ? 'request' : 'other' });
    },
    tick: () => undefined,
    setClockMs: () => undefined,
    flush: (): Ready => ({ index: ++index, writes: [], clears: [], messages: [], replies: [], events: [], horizon: { view: 0, stable: 0, executed: 0 } }),
  } as unknown as Replica;
  const loop = new TurnLoop(
    { write: (_ops, _clears, _horizon, done) => setImmediate(() => done()) },
    { running: () => true, perform: () => undefined, fatal: (err) => assert.fail(String(err)) },
    { tickMs: 1_000_000, now: () => clock, wallClockMs: () => 0, pipelineTurns: true, deferWrites: true },
  );
  loop.attach(replica, undefined);
  const request = encodeLinkFrame({ type: 'statereq', seq: 0, part: { kind: 'meta' } });
  const signed = encodeSignedFrame({ msg: { type: 'suspect', view: 0, replica: 3 }, body: new Uint8Array(3), sig: new Uint8Array(64) });
  for (let i = 0; i < 200; i++) loop.enqueue({ kind: 'replica', id: 3 }, request);
  for (let i = 0; i < 5; i++) loop.enqueue({ kind: 'replica', id: 3 }, signed);
  for (let i = 0; i < 5; i++) loop.enqueue({ kind: 'replica', id: 2 }, request);
  await loop.runFirstTurn();
  const served = (id: number, kind: string): number => received.filter((r) => r.from.id === id && r.kind === kind).length;
  // The flooder's budget covers LINK_BUDGET_MS_MAX / 10 ms requests (the last one overdraws it), and
  // a few more for what the bucket refills while the others are served (the clock moves 10 ms each).
  const flooder = served(3, 'request');
  const refill = Math.ceil(((clock / 1000) * LINK_BUDGET_MS_PER_S) / 10);
  assert.ok(flooder >= LINK_BUDGET_MS_MAX / 10 && flooder <= LINK_BUDGET_MS_MAX / 10 + refill, `${flooder} served`);
  assert.equal(served(3, 'other'), 5, 'its signed frames all reach the core');
  assert.equal(served(2, 'request'), 5, 'another peer is served');
  assert.equal(loop.linkBudgets.dropped, 200 - flooder);
});

test('replies the core refuses are charged; replies it accepts are not', async () => {
  let clock = 0;
  let index = 0;
  const rejected = new Map<string, number>();
  let accepted = 0;
  const replica = {
    rejected,
    misbehaviours: new Map(),
    receive: (_from: Source, frame: Uint8Array) => {
      clock += 10; // every reply costs 10 ms to decode and check
      // Frames with seq 1 are replies we asked for; any other is refused as unexpected.
      if (frame[4] === 1) accepted++;
      else rejected.set('unexpected-batch', (rejected.get('unexpected-batch') ?? 0) + 1);
    },
    tick: () => undefined,
    setClockMs: () => undefined,
    flush: (): Ready => ({ index: ++index, writes: [], clears: [], messages: [], replies: [], events: [], horizon: { view: 0, stable: 0, executed: 0 } }),
  } as unknown as Replica;
  const loop = new TurnLoop(
    { write: (_ops, _clears, _horizon, done) => setImmediate(() => done()) },
    { running: () => true, perform: () => undefined, fatal: (err) => assert.fail(String(err)) },
    { tickMs: 1_000_000, now: () => clock, wallClockMs: () => 0, pipelineTurns: true, deferWrites: true },
  );
  loop.attach(replica, undefined);
  const wanted = encodeLinkFrame({ type: 'batch', seq: 1, digest, batch: [], time: 0 });
  const unwanted = encodeLinkFrame({ type: 'batch', seq: 2, digest, batch: [], time: 0 });
  assert.equal(wanted[4], 1, "[1, [23, seq, ...]]: seq is the fifth byte");
  // A peer sending only replies we asked for is never charged, however many.
  for (let i = 0; i < 200; i++) loop.enqueue({ kind: 'replica', id: 1 }, wanted);
  // A peer sending unrequested ones runs out of budget.
  for (let i = 0; i < 200; i++) loop.enqueue({ kind: 'replica', id: 2 }, unwanted);
  await loop.runFirstTurn();
  assert.equal(accepted, 200);
  const refused = rejected.get('unexpected-batch') ?? 0;
  assert.ok(refused >= LINK_BUDGET_MS_MAX / 10 && refused < 100, `${refused} unrequested replies processed`);
  assert.equal(loop.linkBudgets.dropped, 200 - refused);
});
