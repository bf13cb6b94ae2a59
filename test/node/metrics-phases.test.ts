/**
 * The phase histograms (pbft_phase_duration_seconds) time the core's decisions, not the moment the
 * pipeline performs them: a turn whose writes are deferred (deferWrites) has its events performed
 * with a later turn, and timed there a commit looked as long as the wait for that turn (with one
 * client, the next request's whole round).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeCbor } from '../../src/core/encoding.ts';
import type { CoreEvent } from '../../src/core/types.ts';
import { BODY_TAG } from '../../src/node/frame-peek.ts';
import { NodeMetrics } from '../../src/node/metrics.ts';

/** A signed vote frame as metrics peek it: [0, body, sig], body = [tag, view, seq, ...]. */
function vote(tag: number, view: number, seq: number): { frame: Uint8Array } {
  return { frame: encodeCbor([0, encodeCbor([tag, view, seq, new Uint8Array(32)]), new Uint8Array(64)]) };
}

async function phaseSums(m: NodeMetrics): Promise<Record<string, { sum: number; count: number }>> {
  const out: Record<string, { sum: number; count: number }> = {};
  const metric = m.registry.getSingleMetric('pbft_phase_duration_seconds');
  assert.ok(metric !== undefined);
  for (const v of (await metric.get()).values) {
    const phase = String(v.labels.phase);
    out[phase] ??= { sum: 0, count: 0 };
    const name = (v as { metricName?: string }).metricName;
    if (name === 'pbft_phase_duration_seconds_sum') out[phase].sum = v.value;
    if (name === 'pbft_phase_duration_seconds_count') out[phase].count = v.value;
  }
  return out;
}

test('the phases are timed when the core decides them; performing the events later changes nothing', async () => {
  let now = 1_000;
  const m = new NodeMetrics(() => now);
  const digest = new Uint8Array(32);
  const committed: CoreEvent = { type: 'committed', seq: 7, digest };
  const executed: CoreEvent = { type: 'executed', seq: 7, view: 0, digest, requests: [{ client: 1, timestamp: 1, op: new Uint8Array(4) } as never], timeMs: 0 };

  m.computed([vote(BODY_TAG.prePrepare, 0, 7), vote(BODY_TAG.prePrepare, 0, 7)], []); // t = 1,000: the PRE-PREPARE
  now += 2; // 1,002: prepared, its COMMIT made
  m.computed([vote(BODY_TAG.commit, 0, 7)], []);
  now += 3; // 1,005: committed and executed in one turn
  m.computed([], [committed, executed]);
  now += 40; // the turn's writes deferred: its reply and events performed 40 ms later
  m.released([]);

  const s = await phaseSums(m);
  assert.equal(s.prepare?.count, 1);
  assert.equal(s.commit?.count, 1);
  assert.equal(s.execute?.count, 1);
  assert.ok(Math.abs(s.prepare!.sum - 0.002) < 1e-9, `prepare ${s.prepare!.sum}`);
  assert.ok(Math.abs(s.commit!.sum - 0.003) < 1e-9, `commit ${s.commit!.sum} s, not the 43 ms to the performing turn`);
  assert.equal(s.execute!.sum, 0);
});

test('a sequence number executed is forgotten: a late vote for it starts no phase', async () => {
  let now = 0;
  const m = new NodeMetrics(() => now);
  const digest = new Uint8Array(32);
  m.computed([vote(BODY_TAG.prepare, 0, 3)], []);
  now += 1;
  m.computed([vote(BODY_TAG.commit, 0, 3)], [{ type: 'committed', seq: 3, digest }, { type: 'executed', seq: 3, view: 0, digest, requests: [], timeMs: 0 }]);
  now += 1;
  m.computed([vote(BODY_TAG.commit, 1, 3)], []); // e.g. the same seq again in a later view's messages
  const s = await phaseSums(m);
  assert.equal(s.prepare?.count, 1);
  assert.equal(s.commit?.count, 1);
});

test('a request timed from its arrival: to its reply leaving, or, when it named other repliers, to the turn that executed it', async () => {
  let now = 0;
  const m = new NodeMetrics(() => now);
  const request = (client: number, timestamp: number): Uint8Array => encodeCbor([0, encodeCbor([BODY_TAG.request, client, timestamp, new Uint8Array(3)]), new Uint8Array(64)]);
  const reply = (client: number, timestamp: number): Uint8Array => encodeCbor([0, encodeCbor([BODY_TAG.reply, 0, client, timestamp, 1, new Uint8Array(1)]), new Uint8Array(64)]);
  const digest = new Uint8Array(32);
  m.requestArrived(request(1, 10));
  m.requestArrived(request(2, 20));
  now += 3;
  // One turn executes both; it answers client 1, while client 2's request named other repliers.
  const executed: CoreEvent = {
    type: 'executed',
    seq: 1,
    view: 0,
    digest,
    requests: [{ client: 1, timestamp: 10, op: new Uint8Array(1) }, { client: 2, timestamp: 20, op: new Uint8Array(1) }] as never,
    timeMs: 0,
  };
  m.computed([], [executed], [{ frame: reply(1, 10) }]);
  // Client 1's reply leaves once the turn's write is durable, 4 ms later.
  now += 4;
  m.released([{ client: 1, frame: reply(1, 10) } as never]);
  // Nothing left to time: each request is counted once, however late its execution is released.
  now += 100;
  m.released([{ client: 1, frame: reply(1, 10) } as never]);
  m.computed([], [executed], []);
  const metric = m.registry.getSingleMetric('pbft_request_duration_seconds');
  assert.ok(metric !== undefined);
  const values = (await metric.get()).values as Array<{ metricName?: string; value: number }>;
  assert.equal(values.find((v) => v.metricName === 'pbft_request_duration_seconds_count')?.value, 2);
  // Client 2: 3 ms (arrival to the executing turn); client 1: 7 ms (to its reply leaving).
  assert.ok(Math.abs(values.find((v) => v.metricName === 'pbft_request_duration_seconds_sum')!.value - 0.010) < 1e-9);
});
