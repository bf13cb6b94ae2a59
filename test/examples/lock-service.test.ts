/**
 * The lock service example (examples/lock-service): its state machine (leases decided by the agreed
 * time in ExecuteContext, holders bound to the signing client, fencing tokens, canonical snapshots),
 * its client helper, and the mutual exclusion checker (test/examples/lock-checker.ts) that the
 * real-process test (test/integration/lock-service.test.ts) runs, with a negative control.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ExecuteContext } from '../../src/app/types.ts';
import { asReplicatedApp } from '../../src/app/types.ts';
import { LockService, LOCKS_MAX } from '../../examples/lock-service/lock-service.ts';
import { LockClient, LockServiceError } from '../../examples/lock-service/client.ts';
import { decodeLockResult, encodeLockOp, LEASE_MS_MAX, type LockOp, type LockResult } from '../../examples/lock-service/ops.ts';
import { checkLockHistory } from './lock-checker.ts';
import { Prng } from '../../src/sim/prng.ts';

const T = 1_700_000_000_000;
let seq = 0;
const ctx = (client: number, timeMs: number): ExecuteContext => ({ seq: ++seq, client, timestamp: seq, timeMs });
const run = (s: LockService, client: number, timeMs: number, op: LockOp): LockResult => decodeLockResult(s.execute(encodeLockOp(op), ctx(client, timeMs)));
const acquire = (name: string, owner: string, leaseMs: number): LockOp => ({ op: 'acquire', name, owner, leaseMs });
const renew = (name: string, owner: string, leaseMs: number): LockOp => ({ op: 'renew', name, owner, leaseMs });
const release = (name: string, owner: string): LockOp => ({ op: 'release', name, owner });
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

describe('lock service state machine', () => {
  test('acquire: free, held by another (refused with holder and expiry), expired by the agreed time, then another holder with a new token', () => {
    const s = new LockService();
    assert.deepEqual(run(s, 1, T, acquire('a', 'w1', 1_000)), { ok: true, op: 'acquire', name: 'a', holder: { client: 1, owner: 'w1' }, token: 1, expiresAtMs: T + 1_000, timeMs: T });
    assert.deepEqual(run(s, 2, T + 999, acquire('a', 'w2', 1_000)), {
      ok: false, op: 'acquire', code: 'HELD', name: 'a', holder: { client: 1, owner: 'w1' }, token: 1, expiresAtMs: T + 1_000, timeMs: T + 999,
    });
    // At the expiry (timeMs >= expiresAtMs) the lease is over: client 2 gets it, with token 2.
    const r = run(s, 2, T + 1_000, acquire('a', 'w2', 500));
    assert.ok(r.ok && r.op === 'acquire');
    assert.deepEqual([r.holder, r.token, r.expiresAtMs], [{ client: 2, owner: 'w2' }, 2, T + 1_500]);
  });

  test('acquire by the holder again extends its lease and keeps its token', () => {
    const s = new LockService();
    run(s, 1, T, acquire('a', 'w', 1_000));
    const again = run(s, 1, T + 500, acquire('a', 'w', 1_000));
    assert.ok(again.ok && again.op === 'acquire');
    assert.deepEqual([again.token, again.expiresAtMs], [1, T + 1_500]);
    // Another owner label of the same client is another holder.
    assert.equal(run(s, 1, T + 600, acquire('a', 'other', 1_000)).ok, false);
  });

  test('renew: by the holder before expiry; NOT_HOLDER for others; EXPIRED once its lease ran out', () => {
    const s = new LockService();
    run(s, 1, T, acquire('a', 'w', 1_000));
    const r = run(s, 1, T + 900, renew('a', 'w', 1_000));
    assert.ok(r.ok && r.op === 'renew');
    assert.deepEqual([r.token, r.expiresAtMs, r.timeMs], [1, T + 1_900, T + 900]);
    const other = run(s, 2, T + 1_000, renew('a', 'w', 1_000));
    assert.ok(!other.ok && other.code === 'NOT_HOLDER', 'the same owner label from another client is not the holder');
    assert.deepEqual(other.holder, { client: 1, owner: 'w' });
    const late = run(s, 1, T + 1_900, renew('a', 'w', 1_000));
    assert.ok(!late.ok && late.code === 'EXPIRED');
    // Once someone else took it, the old holder is NOT_HOLDER.
    run(s, 2, T + 2_000, acquire('a', 'x', 1_000));
    const lost = run(s, 1, T + 2_100, renew('a', 'w', 1_000));
    assert.ok(!lost.ok && lost.code === 'NOT_HOLDER' && lost.token === 2);
  });

  test('release: by the holder frees the lock at once; by another is refused; after expiry says EXPIRED and forgets the entry', () => {
    const s = new LockService();
    run(s, 1, T, acquire('a', 'w', 1_000));
    assert.ok(!run(s, 2, T + 1, release('a', 'w')).ok);
    assert.deepEqual(run(s, 1, T + 2, release('a', 'w')), { ok: true, op: 'release', name: 'a', timeMs: T + 2 });
    assert.ok(run(s, 2, T + 2, acquire('a', 'x', 10)).ok, 'free at the agreed time of the release');
    assert.equal(s.size, 1);
    const late = run(s, 2, T + 12, release('a', 'x'));
    assert.ok(!late.ok && late.code === 'EXPIRED');
    assert.equal(s.size, 0);
    const none = run(s, 2, T + 13, release('a', 'x'));
    assert.ok(!none.ok && none.code === 'NOT_HOLDER');
  });

  test('query shows the holder while held, nothing once expired', () => {
    const s = new LockService();
    run(s, 3, T, acquire('q', 'w', 100));
    assert.deepEqual(run(s, 0, T + 99, { op: 'query', name: 'q' }), { ok: true, op: 'query', name: 'q', holder: { client: 3, owner: 'w' }, token: 1, expiresAtMs: T + 100, timeMs: T + 99 });
    assert.deepEqual(run(s, 0, T + 100, { op: 'query', name: 'q' }), { ok: true, op: 'query', name: 'q', timeMs: T + 100 });
  });

  test('malformed operations get a MALFORMED result, never an exception', () => {
    const s = new LockService();
    const te = new TextEncoder();
    const bad: Uint8Array[] = [
      new Uint8Array([0xff, 0xfe]),
      te.encode('[]'),
      te.encode('null'),
      te.encode('{"op":"acquire","name":"a","owner":"w"}'),
      te.encode('{"op":"acquire","name":"a","owner":"w","leaseMs":0}'),
      te.encode(`{"op":"acquire","name":"a","owner":"w","leaseMs":${LEASE_MS_MAX + 1}}`),
      te.encode('{"op":"acquire","name":"a","owner":"w","leaseMs":1.5}'),
      te.encode('{"op":"acquire","name":"","owner":"w","leaseMs":5}'),
      te.encode(`{"op":"acquire","name":"${'n'.repeat(257)}","owner":"w","leaseMs":5}`),
      te.encode('{"op":"acquire","name":"a","owner":"w","leaseMs":5,"client":9}'),
      te.encode('{"op":"steal","name":"a"}'),
      te.encode('{"op":"release","name":"a"}'),
    ];
    const prng = new Prng(5);
    for (let i = 0; i < 200; i++) bad.push(prng.bytes(prng.int(40)));
    for (const b of bad) {
      const r = decodeLockResult(s.execute(b, ctx(0, T)));
      assert.ok(!r.ok && r.code === 'MALFORMED', new TextDecoder().decode(b));
    }
    assert.equal(s.size, 0);
  });

  test('deterministic: the same operations with the same agreed times give the same results, snapshots and digests', () => {
    const a = new LockService();
    const b = new LockService();
    const prng = new Prng(9);
    let time = T;
    for (let i = 0; i < 2_000; i++) {
      time += prng.int(50);
      const client = prng.int(4);
      const name = `l${prng.int(5)}`;
      const owner = `o${prng.int(2)}`;
      const op: LockOp = [acquire(name, owner, 1 + prng.int(300)), renew(name, owner, 1 + prng.int(300)), release(name, owner), { op: 'query', name } as LockOp][prng.int(4)]!;
      const c = ctx(client, time);
      assert.equal(hex(a.execute(encodeLockOp(op), c)), hex(b.execute(encodeLockOp(op), c)));
    }
    assert.equal(hex(a.snapshot()), hex(b.snapshot()));
    assert.equal(hex(a.digest()), hex(b.digest()));
    // Another agreed time for one operation: another state (time is part of the decision, not a clock).
    const c1 = new LockService();
    const c2 = new LockService();
    c1.execute(encodeLockOp(acquire('x', 'o', 10)), ctx(1, T));
    c2.execute(encodeLockOp(acquire('x', 'o', 10)), ctx(1, T + 1));
    assert.notEqual(hex(c1.digest()), hex(c2.digest()));
  });

  test('snapshot and restore round-trip; a malformed snapshot is refused and leaves the state as it was', () => {
    const s = new LockService();
    for (const [i, name] of ['b', 'a', 'é', 'c'].entries()) run(s, i, T + i, acquire(name, `o${i}`, 1_000));
    run(s, 0, T + 10, release('b', 'o0'));
    const snap = s.snapshot();
    const copy = new LockService();
    assert.deepEqual(copy.restore(snap), { ok: true, value: undefined });
    assert.equal(hex(copy.snapshot()), hex(snap));
    assert.equal(hex(copy.digest()), hex(s.digest()));
    // The restored service decides as the original does (tokens continue).
    assert.equal(hex(copy.execute(encodeLockOp(acquire('z', 'o', 5)), ctx(2, T + 20))), hex(s.execute(encodeLockOp(acquire('z', 'o', 5)), ctx(2, T + 20))));
    const te = new TextEncoder();
    const before = hex(copy.snapshot());
    for (const bad of [
      'nope',
      '{"v":2,"tokens":0,"locks":[]}',
      '{"v":1,"tokens":0,"locks":[],"x":1}',
      '{"v":1,"tokens":1,"locks":[["b",0,"o",5,1],["a",0,"o",5,1]]}',
      '{"v":1,"tokens":1,"locks":[["a",0,"o",5,2]]}',
      '{"v":1,"tokens":1,"locks":[["a",-1,"o",5,1]]}',
      '{"v":1,"tokens":1,"locks":[["a",0,"",5,1]]}',
    ]) {
      assert.equal(copy.restore(te.encode(bad)).ok, false, bad);
      assert.equal(hex(copy.snapshot()), before, `unchanged after ${bad}`);
    }
    // As a ReplicatedApp (what ReplicaNode runs): one partition, its snapshot.
    const app = asReplicatedApp(new LockService());
    assert.equal(app.partitionCount, 1);
    assert.deepEqual(app.writePartition(0, snap), { ok: true, value: undefined });
    assert.equal(hex(app.readPartition(0)), hex(snap));
  });

  test('at LOCKS_MAX a new lock sweeps the expired ones first, and is refused while all are held', () => {
    const s = new LockService();
    for (let i = 0; i < LOCKS_MAX; i++) run(s, 0, T, acquire(`l${i}`, 'o', i < 10 ? 100 : 10_000));
    assert.equal(s.size, LOCKS_MAX);
    const full = run(s, 1, T + 50, acquire('new', 'o', 10));
    assert.ok(!full.ok && full.code === 'TOO_MANY_LOCKS');
    assert.ok(run(s, 1, T + 100, acquire('new', 'o', 10)).ok, 'ten leases expired: swept');
    assert.equal(s.size, LOCKS_MAX - 9);
  });
});

describe('lock client helper', () => {
  function fake(clientId: number, service: LockService, time: { now: number }) {
    return { clientId, invoke: async (op: Uint8Array) => service.execute(op, ctx(clientId, time.now)) };
  }

  test('acquire, renew, release, query; validUntilMs leaves the batch-time bound and the clock skew before the expiry', async () => {
    const service = new LockService();
    const time = { now: T };
    let wall = T;
    const one = new LockClient(fake(1, service, time), { clockMs: () => wall });
    const two = new LockClient(fake(2, service, time), { owner: 'second', batchTimeAheadMsMax: 1_000, clockSkewMs: 0 });
    assert.equal(one.owner, 'client-1');
    const got = await one.acquire('a', 10_000);
    assert.ok(got.acquired);
    assert.deepEqual({ ...got.lease }, { name: 'a', holder: { client: 1, owner: 'client-1' }, token: 1, sinceMs: T, expiresAtMs: T + 10_000, validUntilMs: T + 10_000 - 2_500 });
    assert.ok(one.isValid(got.lease));
    wall = T + 7_500;
    assert.ok(!one.isValid(got.lease), 'not valid from validUntilMs on');
    const refused = await two.acquire('a', 1_000);
    assert.ok(!refused.acquired);
    assert.deepEqual([refused.holder, refused.expiresAtMs], [{ client: 1, owner: 'client-1' }, T + 10_000]);
    time.now = T + 5_000;
    const renewed = await one.renew(got.lease, 10_000);
    assert.deepEqual([renewed?.sinceMs, renewed?.expiresAtMs, renewed?.token], [T + 5_000, T + 15_000, 1]);
    let lost: LockResult | undefined;
    assert.equal(await two.renew('a', 10, (r) => (lost = r)), undefined);
    assert.ok(lost && !lost.ok && lost.code === 'NOT_HOLDER');
    const q = await two.query('a');
    assert.deepEqual(q.holder, { client: 1, owner: 'client-1' });
    assert.deepEqual((await one.release(renewed!)).released, true);
    assert.equal((await one.release('a')).released, false);
    const then = await two.acquire('a', 1_000);
    assert.ok(then.acquired && then.lease.token === 2 && then.lease.validUntilMs === T + 5_000 + 1_000 - 1_000);
    await assert.rejects(two.acquire('n'.repeat(300), 10), (err: unknown) => err instanceof LockServiceError && err.result.code === 'MALFORMED');
  });
});

describe('mutual exclusion checker', () => {
  /** Four clients contending for three locks on one LockService, with agreed times moving forward. */
  function history(seed: number, service = new LockService()): LockResult[][] {
    const prng = new Prng(seed);
    const perClient: LockResult[][] = [[], [], [], []];
    let time = T;
    for (let i = 0; i < 3_000; i++) {
      time += prng.int(40);
      const client = prng.int(4);
      const name = `l${prng.int(3)}`;
      const owner = `c${client}`;
      const op: LockOp = prng.chance(0.5) ? acquire(name, owner, 1 + prng.int(200)) : prng.chance(0.5) ? renew(name, owner, 1 + prng.int(200)) : release(name, owner);
      perClient[client]!.push(run(service, client, time, op));
    }
    return perClient;
  }

  test('random contention on the state machine: no two holders of one lock at once, by the agreed times', () => {
    for (const seed of [1, 2, 3, 4, 5]) {
      const h = history(seed);
      const { violations, tenures } = checkLockHistory(h, { complete: true });
      assert.deepEqual(violations, [], `seed ${seed}`);
      assert.ok(tenures.length > 100, `seed ${seed}: ${tenures.length} tenures`);
      assert.ok(tenures.some((t) => t.released !== undefined) && tenures.some((t) => t.released === undefined), 'both released and expired tenures');
    }
  });

  test('negative control: a service that decides expiry with a replica clock of its own (here one running 150 ms fast) is caught', () => {
    // The bug the agreed time prevents: each replica's own clock decides; this one's clock is ahead,
    // so it frees locks early. Results from it overlap leases the others granted.
    class OwnClock extends LockService {
      override execute(op: Uint8Array, c: ExecuteContext): Uint8Array {
        return super.execute(op, { ...c, timeMs: c.timeMs + 150 });
      }
    }
    const good = new LockService();
    const fast = new OwnClock();
    const prng = new Prng(7);
    const perClient: LockResult[][] = [[], [], [], []];
    let time = T;
    for (let i = 0; i < 2_000; i++) {
      time += prng.int(40);
      const client = prng.int(4);
      const name = `l${prng.int(2)}`;
      const op = prng.chance(0.7) ? acquire(name, `c${client}`, 100 + prng.int(200)) : release(name, `c${client}`);
      // Clients 0 and 1 talk to the good replica, 2 and 3 to the fast one (a split the replicas' own
      // clocks make possible). Both executed every operation, in the same order.
      const g = run(good, client, time, op);
      const f = run(fast, client, time, op);
      perClient[client]!.push(client < 2 ? g : { ...f, timeMs: time } as LockResult);
    }
    const { violations } = checkLockHistory(perClient);
    assert.ok(violations.some((v) => /held by client/.test(v)), violations.slice(0, 3).join('\n') || 'no violation');
  });

  test('the checker reports overlapping tenures, shrinking tokens and refusals that contradict them', () => {
    const h: LockResult[][] = [
      [{ ok: true, op: 'acquire', name: 'a', holder: { client: 0, owner: 'x' }, token: 2, expiresAtMs: T + 100, timeMs: T }],
      [
        { ok: true, op: 'acquire', name: 'a', holder: { client: 1, owner: 'y' }, token: 1, expiresAtMs: T + 200, timeMs: T + 50 },
        { ok: false, op: 'acquire', code: 'HELD', name: 'a', holder: { client: 0, owner: 'x' }, token: 2, expiresAtMs: T + 100, timeMs: T + 150 },
        { ok: true, op: 'query', name: 'a', timeMs: T + 10 },
      ],
    ];
    const { violations } = checkLockHistory(h);
    assert.ok(violations.some((v) => v.startsWith('lock a: held by client 0/x')), 'overlap');
    assert.ok(violations.some((v) => v.startsWith('token 1')), 'token order');
    assert.ok(violations.some((v) => v.includes('refused at')), 'refusal outside the tenure');
    assert.ok(violations.some((v) => v.includes('went back')), 'time going back');
  });
});
