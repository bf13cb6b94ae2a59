/**
 * The linearizability checker (src/check/linearizability.ts): hand-made linearizable and
 * non-linearizable histories, the recorder and the SDK error mapping, generated histories (accepted)
 * and their mutations (rejected, with the mutated read in the window), and a cross-check against a
 * brute-force search over every order on thousands of small random histories.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import {
  CheckBudgetExceeded,
  checkLinearizable,
  formatViolation,
  History,
  outcomeOfError,
  type CheckResult,
  type KvHistoryOp,
  type KvHistoryResult,
  type Op,
  type Outcome,
  type Violation,
} from '../../src/check/linearizability.ts';
import { generateHistory, mutateFutureRead, mutateStaleRead } from '../../src/check/generate.ts';
import { ClientClosedError, KvError, QuorumFailure, RequestTooLargeError, TimeoutError, UnexpectedResultError } from '../../src/client/errors.ts';
import { KvModel } from '../../src/sim/kv-model.ts';
import { Prng } from '../../src/sim/prng.ts';

// --- building histories ---------------------------------------------------------------------------

/** A history on one key (or several), written as a list of rows. */
class H {
  readonly ops: Op[] = [];

  private add(client: number, op: KvHistoryOp, invoke: number, complete: number | undefined, outcome: Outcome, result?: KvHistoryResult, key = 'k'): number {
    const id = this.ops.length;
    const o: Op = { id, client, key, op, invoke, outcome };
    if (complete !== undefined) o.complete = complete;
    if (outcome === 'ok' && op.type !== 'put') o.result = result;
    this.ops.push(o);
    return id;
  }

  put(client: number, value: string, t0: number, t1: number, outcome: Outcome = 'ok', key?: string): number {
    return this.add(client, { type: 'put', value }, t0, t1, outcome, undefined, key);
  }
  get(client: number, result: string | null, t0: number, t1: number, key?: string): number {
    return this.add(client, { type: 'get' }, t0, t1, 'ok', result, key);
  }
  del(client: number, existed: boolean, t0: number, t1: number): number {
    return this.add(client, { type: 'del' }, t0, t1, 'ok', existed);
  }
  cas(client: number, expected: string | null, next: string | null, swapped: boolean, current: string | null, t0: number, t1: number): number {
    return this.add(client, { type: 'cas', expected, next }, t0, t1, 'ok', { swapped, current });
  }
  /** A write (put, del or cas) whose outcome is unknown or failed. */
  maybe(client: number, op: KvHistoryOp, t0: number, outcome: 'unknown' | 'fail', t1?: number): number {
    return this.add(client, op, t0, t1, outcome);
  }
}

function violation(r: CheckResult): Violation {
  assert.equal(r.ok, false, 'expected a violation');
  return r as Violation;
}

function assertLinearizable(h: H): void {
  const r = checkLinearizable(h.ops);
  assert.ok(r.ok, r.ok ? '' : formatViolation(r));
}

/** Not linearizable; the window holds `offending` (ids) and itself fails; the table names them. */
function assertViolation(h: H, offending: number[]): Violation {
  const v = violation(checkLinearizable(h.ops));
  const ids = v.window.map((o) => o.id);
  for (const id of offending) assert.ok(ids.includes(id), `window ${ids.join(',')} lacks #${id}\n${formatViolation(v)}`);
  assert.equal(checkLinearizable(v.window).ok, false, 'the window alone is not linearizable');
  const text = formatViolation(v);
  for (const id of offending) assert.match(text, new RegExp(`#${id}\\b`));
  assert.match(text, /not linearizable/);
  return v;
}

// --- hand-made histories ----------------------------------------------------------------------------

describe('linearizable histories are accepted', () => {
  test('empty and sequential histories', () => {
    assert.deepEqual(checkLinearizable([]), { ok: true });
    const h = new H();
    h.get(1, null, 0, 1);
    h.put(1, 'a', 2, 3);
    h.get(1, 'a', 4, 5);
    h.put(2, 'b', 6, 7);
    h.get(1, 'b', 8, 9);
    h.del(2, true, 10, 11);
    h.get(1, null, 12, 13);
    h.del(2, false, 14, 15);
    h.cas(1, null, 'c', true, 'c', 16, 17);
    h.cas(2, 'x', 'd', false, 'c', 18, 19);
    h.get(1, 'c', 20, 21);
    h.cas(2, 'c', null, true, null, 22, 23);
    h.get(1, null, 24, 25);
    assertLinearizable(h);
  });

  test('concurrent overlapping writes, reads seeing either', () => {
    for (const [first, second] of [
      ['a', 'b'],
      ['b', 'a'],
    ]) {
      const h = new H();
      h.put(1, 'a', 0, 10);
      h.put(2, 'b', 0, 10);
      h.get(3, first!, 1, 9); // during both writes
      h.get(3, second!, 11, 12); // after both: the one linearized last
      h.get(4, second!, 13, 14);
      assertLinearizable(h);
    }
  });

  test('a read concurrent with a write sees the old or the new value', () => {
    for (const seen of ['a', 'b']) {
      const h = new H();
      h.put(1, 'a', 0, 1);
      h.put(1, 'b', 2, 10);
      h.get(2, seen, 3, 4);
      h.get(2, 'b', 11, 12);
      assertLinearizable(h);
    }
  });

  test('touching intervals count as concurrent', () => {
    const h = new H();
    h.put(1, 'a', 0, 5);
    h.get(2, null, 5, 6); // invoked exactly when the put completed
    assertLinearizable(h);
  });

  test('cas chains, and concurrent cas with one winner', () => {
    const h = new H();
    h.put(1, '0', 0, 1);
    h.cas(1, '0', '1', true, '1', 2, 3);
    h.cas(2, '1', '2', true, '2', 4, 5);
    h.cas(3, '1', '3', false, '2', 6, 7); // current is the value after: unchanged '2'
    h.get(1, '2', 8, 9);
    // Two concurrent cas from '2': exactly one swaps, the other sees the winner's value.
    h.cas(1, '2', 'x', true, 'x', 10, 20);
    h.cas(2, '2', 'y', false, 'x', 10, 20);
    h.get(3, 'x', 21, 22);
    assertLinearizable(h);
  });

  test('an unknown-outcome write that later becomes visible', () => {
    const h = new H();
    h.put(1, 'a', 0, 1);
    h.maybe(2, { type: 'put', value: 'b' }, 2, 'unknown', 3); // the client gave up at 3
    h.get(1, 'a', 4, 5); // not yet
    h.get(1, 'b', 100, 101); // took effect long after the client gave up
    h.get(3, 'b', 102, 103);
    assertLinearizable(h);
  });

  test('an unknown-outcome write that is never visible', () => {
    const h = new H();
    h.put(1, 'a', 0, 1);
    h.maybe(2, { type: 'put', value: 'b' }, 2, 'unknown', 3);
    h.get(1, 'a', 4, 5);
    h.get(1, 'a', 100, 101);
    assertLinearizable(h);
  });

  test('unknown-outcome del and cas: either way', () => {
    for (const later of ['a', null]) {
      const h = new H();
      h.put(1, 'a', 0, 1);
      h.maybe(2, { type: 'del' }, 2, 'unknown');
      h.get(1, later, 10, 11);
      assertLinearizable(h);
    }
    for (const later of ['a', 'z']) {
      const h = new H();
      h.put(1, 'a', 0, 1);
      h.maybe(2, { type: 'cas', expected: 'a', next: 'z' }, 2, 'unknown');
      h.get(1, later, 10, 11);
      assertLinearizable(h);
    }
  });

  test('an unread unknown write can be what a del found', () => {
    const h = new H();
    h.maybe(2, { type: 'put', value: 'ghost' }, 0, 'unknown');
    h.del(1, true, 5, 6); // the key existed: only the unknown put can explain it
    h.get(1, null, 7, 8);
    assertLinearizable(h);
  });

  test('del and get of an absent key report null / false', () => {
    const h = new H();
    h.get(1, null, 0, 1);
    h.del(1, false, 2, 3);
    h.put(2, 'a', 4, 5);
    h.del(1, true, 6, 7);
    h.del(2, false, 8, 9);
    h.get(1, null, 10, 11);
    assertLinearizable(h);
  });

  test('failed operations and unknown reads are ignored', () => {
    const h = new H();
    h.put(1, 'a', 0, 1);
    h.maybe(2, { type: 'put', value: 'x' }, 2, 'fail', 3);
    h.maybe(2, { type: 'del' }, 4, 'fail', 5);
    h.ops.push({ id: h.ops.length, client: 3, key: 'k', op: { type: 'get' }, invoke: 4, outcome: 'unknown' });
    h.get(1, 'a', 6, 7);
    assertLinearizable(h);
  });

  test('keys are independent', () => {
    const h = new H();
    h.put(1, 'a', 0, 1, 'ok', 'k1');
    h.put(1, 'b', 2, 3, 'ok', 'k2');
    h.get(2, 'a', 4, 5, 'k1');
    h.get(2, 'b', 4, 5, 'k2');
    assertLinearizable(h);
  });
});

describe('non-linearizable histories are rejected, with the offending operations in the window', () => {
  test('stale read: an older value read after a newer write completed', () => {
    const h = new H();
    const a = h.put(1, 'a', 0, 1);
    const b = h.put(1, 'b', 2, 3);
    const r = h.get(2, 'a', 4, 5);
    const v = assertViolation(h, [b, r]);
    assert.match(v.explanation, /returned "a" but the key is "b"/);
    assert.match(v.explanation, new RegExp(`#${a} put "a"`), 'the explanation says who wrote the stale value');
  });

  test('lost write: an acknowledged put that a later cas proves never happened', () => {
    const h = new H();
    h.put(1, 'a', 0, 1);
    const b = h.put(1, 'b', 2, 3);
    const c = h.cas(2, 'a', 'c', true, 'c', 4, 5);
    h.get(2, 'c', 6, 7);
    assertViolation(h, [b, c]);
  });

  test('lost write: a later read still sees nothing', () => {
    const h = new H();
    const p = h.put(1, 'a', 0, 1);
    h.get(3, null, 0, 0.5);
    const r = h.get(2, null, 2, 3);
    assertViolation(h, [p, r]);
  });

  test('a read of a value never written', () => {
    const h = new H();
    h.put(1, 'a', 0, 1);
    const r = h.get(2, 'nobody', 2, 3);
    const v = assertViolation(h, [r]);
    assert.match(v.explanation, /"nobody", which no operation that may have taken effect ever wrote/);
  });

  test('a cas that succeeded twice with the same expected value', () => {
    const h = new H();
    h.put(1, 'a', 0, 1);
    const c1 = h.cas(1, 'a', 'b', true, 'b', 2, 5);
    const c2 = h.cas(2, 'a', 'c', true, 'c', 2, 5);
    assertViolation(h, [c1, c2]);
  });

  test('a get returning null after an acknowledged put and no delete', () => {
    const h = new H();
    h.put(1, 'a', 0, 1);
    const p = h.put(2, 'b', 2, 3);
    const r = h.get(3, null, 4, 5);
    const v = assertViolation(h, [p, r]);
    assert.match(v.explanation, /returned null but the key is "b"/);
  });

  test('a del reporting existed=false while the key surely exists', () => {
    const h = new H();
    const p = h.put(1, 'a', 0, 1);
    const d = h.del(2, false, 2, 3);
    const v = assertViolation(h, [p, d]);
    assert.match(v.explanation, /existed=false but the key holds "a"/);
  });

  test('reads going back in time: a, then b, then a', () => {
    const h = new H();
    h.put(1, 'a', 0, 1);
    h.put(1, 'b', 2, 20); // concurrent with all three reads
    h.get(2, 'a', 3, 4);
    const r2 = h.get(2, 'b', 5, 6);
    const r3 = h.get(2, 'a', 7, 8);
    const v = assertViolation(h, [r2, r3]);
    assert.match(v.explanation, /returned "a" but the key is "b"/);
  });

  test("a failed operation's value seen by a read", () => {
    const h = new H();
    h.put(1, 'a', 0, 1);
    const f = h.maybe(2, { type: 'put', value: 'x' }, 2, 'fail', 3);
    const r = h.get(3, 'x', 4, 5);
    const v = assertViolation(h, [r]);
    assert.ok(v.window.some((o) => o.id === f), 'the failed write is shown for context');
    assert.match(formatViolation(v), /fail/);
  });

  test('a failed cas that claims to have swapped, and a swapped cas misreporting current', () => {
    const h = new H();
    h.put(1, 'a', 0, 1);
    const c = h.cas(2, 'zzz', 'b', true, 'b', 2, 3);
    assertViolation(h, [c]);
    const h2 = new H();
    h2.put(1, 'a', 0, 1);
    const c2 = h2.cas(2, 'a', 'b', true, 'a', 2, 3); // current must be the value after, 'b'
    assertViolation(h2, [c2]);
  });

  test('an unknown write seen, then overwritten, then seen again', () => {
    const h = new H();
    h.maybe(1, { type: 'put', value: 'u' }, 0, 'unknown');
    h.get(2, 'u', 1, 2);
    h.put(3, 'v', 3, 4);
    const r = h.get(2, 'u', 5, 6);
    assertViolation(h, [r]);
  });

  test('the first failing key is reported; the window stays on that key', () => {
    const h = new H();
    h.put(1, 'a', 0, 1, 'ok', 'good');
    h.get(2, 'a', 2, 3, 'good');
    h.put(1, 'a', 0, 1, 'ok', 'bad');
    h.get(2, 'b', 2, 3, 'bad');
    const v = violation(checkLinearizable(h.ops));
    assert.equal(v.key, 'bad');
    assert.ok(v.window.every((o) => o.key === 'bad'));
  });

  test('formatViolation: a table of the window and the explanation', () => {
    const h = new H();
    h.put(7, 'a', 0, 1);
    h.put(8, 'b', 2, 3);
    h.get(9, 'a', 4, 5);
    const text = formatViolation(checkLinearizable(h.ops));
    const lines = text.split('\n');
    assert.match(lines[0]!, /key "k" is not linearizable/);
    assert.match(lines[1]!, /op\s+client\s+invoke\.\.complete\s+operation\s+result/);
    assert.match(text, /#1\s+8\s+2\.\.3\s+put "b"\s+ok/);
    assert.match(text, /#2\s+9\s+4\.\.5\s+get\s+"a"/);
    assert.match(text, /longest consistent order/);
    assert.equal(formatViolation({ ok: true }), 'linearizable');
  });

  test('minimize: false reports the whole key history', () => {
    const h = new H();
    h.put(1, 'a', 0, 1);
    h.put(1, 'b', 2, 3);
    h.get(2, 'a', 4, 5);
    h.get(2, 'b', 0, 0.5, 'other');
    const v = violation(checkLinearizable(h.ops, { minimize: false }));
    assert.deepEqual(
      v.window.map((o) => o.id),
      [0, 1, 2],
    );
  });
});

// --- validation, budget, recorder -------------------------------------------------------------------

describe('input and recording', () => {
  test('malformed histories are refused with the op named', () => {
    const ok = (o: Partial<Op>): Op[] => [{ id: 5, client: 1, key: 'k', op: { type: 'get' }, invoke: 0, complete: 1, outcome: 'ok', result: null, ...o }];
    assert.throws(() => checkLinearizable(ok({ complete: undefined })), /history op 5: an ok operation needs a finite completion time/);
    assert.throws(() => checkLinearizable(ok({ complete: -1 })), /completes before it is invoked/);
    assert.throws(() => checkLinearizable(ok({ result: 3 as unknown as string })), /needs a result/);
    assert.throws(() => checkLinearizable(ok({ op: { type: 'del' }, result: null })), /boolean/);
    assert.throws(() => checkLinearizable([...ok({}), ...ok({})]), /duplicate id/);
    assert.throws(() => checkLinearizable(ok({ outcome: 'maybe' as Outcome })), /outcome/);
    // fail/unknown ops need no result or completion
    assert.ok(checkLinearizable(ok({ outcome: 'unknown', complete: undefined, result: undefined })).ok);
  });

  test('src/check imports nothing with I/O (the runner and the tests share it)', () => {
    const dir = new URL('../../src/check/', import.meta.url);
    const files = readdirSync(dir).filter((f) => f.endsWith('.ts'));
    assert.ok(files.includes('linearizability.ts') && files.includes('kv-model.ts'));
    const allowed = new Set(['./kv-model.ts', './linearizability.ts', '../sim/prng.ts']);
    for (const f of files) {
      const text = readFileSync(new URL(f, dir), 'utf8');
      for (const m of text.matchAll(/^(import|export)( type)?\b[^'"]*?from\s+'([^']+)'/gm)) {
        const [, , typeOnly, spec] = m;
        // Type-only imports vanish at run time; the SDK's error codes are one.
        if (typeOnly !== undefined && spec === '../client/errors.ts') continue;
        assert.ok(allowed.has(spec!), `${f} imports ${spec}`);
      }
    }
    // The one module outside src/check it loads at run time imports nothing at all.
    assert.doesNotMatch(readFileSync(new URL('../sim/prng.ts', dir), 'utf8'), /^import /m);
  });

  test('maxConfigurations bounds a search', () => {
    const h = generateHistory({ seed: 3, ops: 400, keys: 1 });
    assert.throws(() => checkLinearizable(h, { maxConfigurations: 10 }), CheckBudgetExceeded);
  });

  test('History records with the caller clock; pending operations read as unknown', () => {
    let now = 0;
    const history = new History(() => now);
    const p = history.invoke(1, 'k', { type: 'put', value: 'a' });
    now = 2;
    p.ok();
    const g = history.invoke(2, 'k', { type: 'get' });
    now = 3;
    g.ok('a');
    const c = history.invoke(3, 'k', { type: 'cas', expected: 'a', next: 'b' });
    now = 4;
    c.ok({ swapped: true, current: 'b' });
    const d = history.invoke(1, 'k', { type: 'del' });
    now = 5;
    d.fail();
    const u = history.invoke(2, 'k', { type: 'put', value: 'c' });
    now = 6;
    u.unknown();
    history.invoke(3, 'k', { type: 'get' }); // never ends
    assert.throws(() => p.ok(), /already ended/);
    const ops = history.ops();
    assert.equal(history.length, 6);
    assert.deepEqual(
      ops.map((o) => [o.id, o.client, o.op.type, o.invoke, o.complete, o.outcome, o.result]),
      [
        [0, 1, 'put', 0, 2, 'ok', undefined],
        [1, 2, 'get', 2, 3, 'ok', 'a'],
        [2, 3, 'cas', 3, 4, 'ok', { swapped: true, current: 'b' }],
        [3, 1, 'del', 4, 5, 'fail', undefined],
        [4, 2, 'put', 5, 6, 'unknown', undefined],
        [5, 3, 'get', 6, undefined, 'unknown', undefined],
      ],
    );
    assert.ok(checkLinearizable(ops).ok);
    // Snapshots are copies.
    (ops[1]!.result as unknown) = 'zzz';
    assert.equal(history.ops()[1]!.result, 'a');
  });

  test('SDK errors: fail only when the operation certainly had no effect', () => {
    assert.equal(outcomeOfError(new KvError('VALUE_TOO_LARGE', 'too large')), 'fail');
    assert.equal(outcomeOfError(new KvError('KEY_EMPTY', 'empty')), 'fail');
    assert.equal(outcomeOfError(new RequestTooLargeError(10, 5)), 'fail');
    assert.equal(outcomeOfError(new TimeoutError(1000, [], 1)), 'unknown');
    assert.equal(outcomeOfError(new QuorumFailure([], 1, 2)), 'unknown');
    assert.equal(outcomeOfError(new ClientClosedError()), 'unknown');
    assert.equal(outcomeOfError(new UnexpectedResultError('odd', new Uint8Array())), 'unknown');
    assert.equal(outcomeOfError(new Error('boom')), 'unknown');
    assert.equal(outcomeOfError(Object.assign(new Error('x'), { code: 'KEY_EMPTY' })), 'unknown', 'only SDK errors');
    assert.equal(outcomeOfError('nope'), 'unknown');
    let now = 0;
    const history = new History(() => now++);
    assert.equal(history.invoke(1, 'k', { type: 'del' }).error(new TimeoutError(1, [], 1)), 'unknown');
    assert.equal(history.invoke(1, 'k', { type: 'del' }).error(new KvError('KEY_EMPTY', 'e')), 'fail');
    assert.deepEqual(
      history.ops().map((o) => o.outcome),
      ['unknown', 'fail'],
    );
  });
});

// --- generated histories ------------------------------------------------------------------------------

describe('generated histories', () => {
  test('random linearizable histories are accepted (many seeds and shapes)', () => {
    const shapes = [
      { ops: 300, keys: 5, clients: 16 },
      { ops: 300, keys: 1, clients: 8 },
      { ops: 200, keys: 2, clients: 16, unknownRate: 0.2, failRate: 0.05 },
      { ops: 200, keys: 1, clients: 4, unknownRate: 0.3, lateEffect: 1 },
      { ops: 200, keys: 3, clients: 6, mix: { put: 1, get: 2, del: 2, cas: 3 } },
    ];
    for (const shape of shapes) {
      for (let seed = 1; seed <= 40; seed++) {
        const h = generateHistory({ seed, ...shape });
        const r = checkLinearizable(h);
        assert.ok(r.ok, `seed ${seed} ${JSON.stringify(shape)}\n${r.ok ? '' : formatViolation(r)}`);
      }
    }
  });

  test('a read changed to a value written strictly later is rejected; the window holds that read', () => {
    let tried = 0;
    for (let seed = 1; seed <= 60; seed++) {
      const m = mutateFutureRead(generateHistory({ seed, ops: 300, keys: seed % 3 === 0 ? 1 : 4 }), seed);
      if (m === undefined) continue;
      tried++;
      const v = violation(checkLinearizable(m.history));
      assert.equal(v.key, m.read.key);
      assert.ok(v.window.some((o) => o.id === m.read.id), `seed ${seed}: window lacks the mutated read #${m.read.id}\n${formatViolation(v)}`);
      assert.equal(checkLinearizable(v.window).ok, false);
      assert.match(formatViolation(v), new RegExp(`#${m.read.id}\\b`));
    }
    assert.ok(tried >= 50);
  });

  test('a read changed to a value overwritten before it started is rejected; the window holds that read', () => {
    let tried = 0;
    for (let seed = 1; seed <= 60; seed++) {
      const m = mutateStaleRead(generateHistory({ seed, ops: 300, keys: seed % 3 === 0 ? 1 : 4 }), seed);
      if (m === undefined) continue;
      tried++;
      const v = violation(checkLinearizable(m.history));
      assert.ok(v.window.some((o) => o.id === m.read.id), `seed ${seed}: window lacks the mutated read #${m.read.id}\n${formatViolation(v)}`);
      assert.equal(checkLinearizable(v.window).ok, false);
      assert.ok(v.window.length <= 40, `seed ${seed}: a window of ${v.window.length} operations`);
    }
    assert.ok(tried >= 50);
  });

  test('a 2,000-operation history with unknown outcomes is checked (hang guard only)', { timeout: 60_000 }, () => {
    const h = generateHistory({ seed: 42, ops: 2000, keys: 5, clients: 16, unknownRate: 0.05 });
    assert.ok(h.filter((o) => o.outcome === 'unknown').length > 50);
    assert.ok(checkLinearizable(h).ok);
    const m = mutateStaleRead(h, 42)!;
    assert.equal(checkLinearizable(m.history).ok, false);
  });
});

// --- cross-check against brute force ------------------------------------------------------------------

/** State after `op` from `state`, and its result, by the simulator's simple store model. */
function apply(state: string | null, op: KvHistoryOp): { state: string | null; result: KvHistoryResult } {
  const model = new KvModel();
  if (state !== null) model.apply({ type: 'put', key: 'k', value: state });
  const r = model.apply({ ...op, key: 'k' });
  const after = model.get('k') as string | null;
  switch (r.type) {
    case 'put':
      return { state: after, result: undefined };
    case 'get':
      return { state: after, result: r.value as string | null };
    case 'del':
      return { state: after, result: r.existed };
    case 'cas':
      return { state: after, result: { swapped: r.swapped, current: r.current as string | null } };
    default:
      throw new Error(`model error ${r.code}`);
  }
}

function sameResult(a: KvHistoryResult, b: KvHistoryResult): boolean {
  if (typeof a === 'object' && a !== null && typeof b === 'object' && b !== null) return a.swapped === b.swapped && a.current === b.current;
  return a === b;
}

/** Every order of every subset of the unknown-outcome operations (one key, starting absent). */
function bruteForce(history: readonly Op[]): boolean {
  const ops = history.filter((o) => o.outcome === 'ok' || (o.outcome === 'unknown' && o.op.type !== 'get'));
  const unknown = ops.filter((o) => o.outcome === 'unknown');
  const definite = ops.filter((o) => o.outcome === 'ok');
  const precedes = (p: Op, o: Op): boolean => p.outcome === 'ok' && p.complete! < o.invoke;
  const orders = (left: Op[], state: string | null): boolean => {
    if (left.length === 0) return true;
    for (const o of left) {
      if (left.some((p) => p !== o && precedes(p, o))) continue;
      const { state: next, result } = apply(state, o.op);
      if (o.outcome === 'ok' && !sameResult(result, o.result)) continue;
      if (orders(
        left.filter((x) => x !== o),
        next,
      ))
        return true;
    }
    return false;
  };
  for (let mask = 0; mask < 1 << unknown.length; mask++) {
    if (orders([...definite, ...unknown.filter((_, i) => (mask & (1 << i)) !== 0)], null)) return true;
  }
  return false;
}

/** A small random history on one key: often simulated (then maybe perturbed), sometimes arbitrary. */
function smallHistory(rng: Prng): Op[] {
  const n = rng.range(1, 7);
  const values = rng.chance(0.5) ? ['a', 'b', 'c'] : ['a', 'b'];
  const pick = (): string => rng.pick(values);
  const pickOrNull = (): string | null => (rng.chance(0.3) ? null : pick());
  const ops: Op[] = [];
  for (let id = 0; id < n; id++) {
    const invoke = rng.int(10);
    const complete = invoke + rng.int(6);
    const type = rng.pick(['put', 'get', 'del', 'cas'] as const);
    const op: KvHistoryOp =
      type === 'put' ? { type, value: pick() } : type === 'cas' ? { type, expected: pickOrNull(), next: pickOrNull() } : { type };
    const roll = rng.float();
    const outcome: Outcome = roll < 0.65 ? 'ok' : roll < 0.9 ? 'unknown' : 'fail';
    const o: Op = { id, client: id % 3, key: 'k', op, invoke, outcome };
    if (outcome !== 'unknown' || rng.chance(0.5)) o.complete = complete;
    ops.push(o);
  }
  if (rng.chance(0.6)) {
    // Simulate: effects at instants inside the intervals (unknown ones: maybe, any time after).
    const at = new Map<Op, number>();
    for (const o of ops) {
      if (o.outcome === 'ok') at.set(o, o.invoke + rng.float() * (o.complete! - o.invoke));
      else if (o.outcome === 'unknown' && rng.chance(0.5)) at.set(o, o.invoke + rng.float() * 20);
    }
    let state: string | null = null;
    for (const [o] of [...at].sort((x, y) => x[1] - y[1])) {
      const r = apply(state, o.op);
      state = r.state;
      if (o.outcome === 'ok') o.result = r.result;
    }
    if (rng.chance(0.3)) {
      const victim = rng.pick(ops);
      if (victim.outcome === 'ok') victim.result = randomResult(rng, victim.op, pickOrNull);
    }
  } else {
    for (const o of ops) if (o.outcome === 'ok') o.result = randomResult(rng, o.op, pickOrNull);
  }
  return ops;
}

function randomResult(rng: Prng, op: KvHistoryOp, pickOrNull: () => string | null): KvHistoryResult {
  switch (op.type) {
    case 'put':
      return undefined;
    case 'get':
      return pickOrNull();
    case 'del':
      return rng.chance(0.5);
    case 'cas':
      return { swapped: rng.chance(0.5), current: pickOrNull() };
  }
}

describe('agrees with a brute-force search over all orders', () => {
  test('5,000 small random histories (repeated values, ties, unknown and failed operations)', () => {
    const rng = new Prng(20240601);
    let yes = 0;
    let no = 0;
    for (let i = 0; i < 5000; i++) {
      const h = smallHistory(rng);
      const expected = bruteForce(h);
      const r = checkLinearizable(h);
      assert.equal(r.ok, expected, `history ${i}: checker says ${r.ok}, brute force ${expected}\n${JSON.stringify(h)}`);
      if (r.ok) yes++;
      else {
        no++;
        // The window is a sub-history that fails on its own.
        const ids = new Set(h.map((o) => o.id));
        assert.ok(r.window.every((o) => ids.has(o.id)));
        assert.equal(bruteForce(r.window), false, `history ${i}: the window is linearizable\n${JSON.stringify(h)}\n${formatViolation(r)}`);
      }
    }
    assert.ok(yes > 1000 && no > 1000, `both kinds are exercised (${yes} linearizable, ${no} not)`);
  });

  test('the same with all values unique per write (the runner writes unique values)', () => {
    const rng = new Prng(7);
    let yes = 0;
    let no = 0;
    for (let i = 0; i < 3000; i++) {
      const h = smallHistory(rng);
      let fresh = 0;
      const rename = new Map<string, string>();
      // Give each write its own value; reads of a value point at one of its writers.
      for (const o of h) {
        if (o.op.type === 'put') {
          const v = `${o.op.value}${fresh++}`;
          if (!rename.has(o.op.value)) rename.set(o.op.value, v);
          o.op.value = v;
        }
      }
      const map = (v: string | null): string | null => (v === null ? null : (rename.get(v) ?? v));
      for (const o of h) {
        if (o.op.type === 'cas') {
          o.op.expected = map(o.op.expected);
          o.op.next = o.op.next === null ? null : `${o.op.next}${fresh++}`;
        }
        if (o.outcome === 'ok' && o.op.type === 'get') o.result = map(o.result as string | null);
        if (o.outcome === 'ok' && o.op.type === 'cas') {
          const r = o.result as { swapped: boolean; current: string | null };
          o.result = { swapped: r.swapped, current: r.swapped ? o.op.next : map(r.current) };
        }
      }
      const expected = bruteForce(h);
      const r = checkLinearizable(h);
      assert.equal(r.ok, expected, `history ${i}: checker says ${r.ok}, brute force ${expected}\n${JSON.stringify(h)}`);
      if (r.ok) yes++;
      else {
        no++;
        assert.equal(bruteForce(r.window), false, `history ${i}: the window is linearizable\n${formatViolation(r)}`);
      }
    }
    assert.ok(yes > 300 && no > 300, `both kinds are exercised (${yes} linearizable, ${no} not)`);
  });
});

describe('agrees with the textbook search (no reductions) on larger histories', () => {
  test('400 generated histories of 10-40 operations, a third with perturbed results', () => {
    let yes = 0;
    let no = 0;
    for (let seed = 1; seed <= 400; seed++) {
      const rng = new Prng(seed);
      const h = generateHistory({
        seed,
        ops: rng.range(10, 40),
        keys: rng.range(1, 2),
        clients: rng.range(2, 5),
        unknownRate: rng.pick([0.1, 0.3, 0.5]),
        failRate: 0.05,
        lateEffect: rng.pick([0.3, 0.7, 1]),
        mix: { put: rng.range(1, 3), get: rng.range(1, 4), del: rng.range(0, 2), cas: rng.range(0, 3) },
      });
      const written = h.flatMap((o) => (o.op.type === 'put' ? [o.op.value] : o.op.type === 'cas' && o.op.next !== null ? [o.op.next] : []));
      const value = (): string | null => (rng.chance(0.3) || written.length === 0 ? null : rng.pick(written));
      if (rng.chance(0.35)) {
        const o = rng.pick(h.filter((x) => x.outcome === 'ok' && x.op.type !== 'put'));
        if (o?.op.type === 'get') o.result = value();
        else if (o?.op.type === 'del') o.result = !o.result;
        else if (o?.op.type === 'cas') o.result = { swapped: rng.chance(0.5), current: value() };
      }
      const plain = checkLinearizable(h, { reductions: false, minimize: false }).ok;
      const r = checkLinearizable(h);
      assert.equal(r.ok, plain, `seed ${seed}: with reductions ${r.ok}, without ${plain}\n${JSON.stringify(h)}`);
      if (r.ok) yes++;
      else {
        no++;
        assert.equal(checkLinearizable(r.window, { reductions: false }).ok, false, `seed ${seed}: the window is linearizable\n${formatViolation(r)}`);
      }
    }
    assert.ok(yes > 100 && no > 50, `both kinds are exercised (${yes} linearizable, ${no} not)`);
  });
});
