/**
 * The replica's state made explicit: the status it reports, its named timers (timeout.ts, PBFT's
 * timer T with doubling), and misbehaviour reported with a code from a closed set.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { MISBEHAVIOURS } from '../../src/core/rejections.ts';
import { Timeout } from '../../src/core/timeout.ts';
import { frame, TestCluster } from './harness.ts';
import { encodeOp } from '../../src/app/kv-ops.ts';

const k = new TestCluster({ f: 1 });
const T = 10; // viewChangeTimeoutTicks in SMALL_OPTIONS
const put = (key: string, value: string) => encodeOp({ type: 'put', key, value: new TextEncoder().encode(value) });

describe('Timeout', () => {
  test('fires `after` ticks after it was armed, not before, and not while stopped', () => {
    const t = new Timeout('retransmit', 5);
    assert.equal(t.fired(100), false, 'stopped');
    assert.equal(t.ready(100), true, 'a stopped rate limit may act');
    t.start(10);
    assert.equal(t.fired(14), false);
    assert.equal(t.ready(14), false);
    assert.equal(t.fired(15), true);
    assert.equal(t.elapsed(15), 5);
    t.stop();
    assert.equal(t.fired(1_000), false);
    assert.equal(t.elapsed(1_000), Infinity);
  });

  test('exponential backoff doubles per attempt up to the maximum, and reset returns to the base', () => {
    const t = new Timeout('view-change', 10, 'exponential', 50);
    assert.deepEqual([0, 1, 2, 3].map(() => { const a = t.after; t.backOff(); return a; }), [10, 20, 40, 50]);
    t.reset();
    assert.equal(t.after, 10);
  });

  test('a deadline keeps the length it was armed with; startIfStopped does not push it back', () => {
    const t = new Timeout('view-change', 10, 'exponential', 100);
    t.start(0);
    t.backOff();
    assert.equal(t.fired(10), true, 'armed for 10 ticks, even though after is now 20');
    t.start(20);
    t.startIfStopped(25);
    assert.equal(t.fired(39), false);
    assert.equal(t.fired(40), true);
    assert.deepEqual(t.describe(30), { name: 'view-change', after: 20, attempts: 1, remaining: 10 });
  });

  test('rejects a nonsensical length', () => {
    assert.throws(() => new Timeout('probe', 0), /positive integer/);
    assert.throws(() => new Timeout('probe', 10, 'exponential', 5), /ticksMax/);
  });
});

describe('status and timers', () => {
  test('status says normal, then view-change when the request timer fires at f+1 replicas; the timer doubles', () => {
    const node = k.node(2);
    assert.equal(node.replica.status().status, 'normal');
    const vcTimer = () => node.replica.status().timers.find((t) => t.name === 'view-change')!;
    assert.deepEqual(vcTimer(), { name: 'view-change', after: T, attempts: 0 });
    assert.deepEqual(node.replica.status().timers.map((t) => t.name).sort(), ['catch-up', 'fetch', 'probe', 'retransmit', 'view-change']);
    node.fromClient(0, frame(k.request(0, 1, put('a', '1'))));
    node.flush();
    node.tick(T);
    assert.equal(node.replica.status().status, 'normal', 'one suspicion alone does not leave the view');
    assert.deepEqual(node.replica.status().suspicions, [2]);
    node.fromReplica(3, frame(k.suspect(3, 0)));
    node.flush();
    const s = node.replica.status();
    assert.equal(s.status, 'view-change');
    assert.equal(s.viewChanging, true);
    assert.equal(vcTimer().attempts, 1);
    assert.equal(vcTimer().after, 2 * T);
  });
});

describe('misbehaviour codes', () => {
  test('a batch that does not match its digest is reported with code batch-digest-mismatch', () => {
    const node = k.node(1);
    const a = k.request(0, 1, put('a', '1'));
    const b = k.request(1, 1, put('b', '1'));
    node.fromReplica(0, frame(k.prePrepare(0, 1, k.digest([a])), [b]));
    const events = node.flush().eventsOf('peer-misbehaved');
    assert.deepEqual(events.map((e) => [e.peer, e.code]), [[0, 'batch-digest-mismatch']]);
    assert.ok(MISBEHAVIOURS.includes(events[0]!.code));
  });
});
