/**
 * The turn pipeline (src/node/pipeline.ts), with a disk the test completes by hand: effects leave
 * only once the writes they depend on are durable, batches merge turns, range clears end a batch,
 * deferred writes wait for a deadline or an urgent turn, a failed write stops everything.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { CoreEvent, Ready } from '../../src/core/replica.ts';
import { decodeHorizon, type Horizon } from '../../src/core/horizon.ts';
import { MERGE_LOOKUP_OPS_MAX, mergeWrites, TurnPipeline, type PipelineOptions } from '../../src/node/pipeline.ts';
import { Prng } from '../../src/sim/prng.ts';
import type { KeyRange, WriteOp } from '../../src/storage/types.ts';

interface Harness {
  pipeline: TurnPipeline;
  writes: Array<{ ops: WriteOp[]; clears: KeyRange[]; horizon: Uint8Array | undefined; done: (err?: unknown) => void }>;
  out: string[];
  fatal: unknown[];
  clock: { now: number };
}

function harness(options: Partial<PipelineOptions> = {}): Harness {
  const h: Harness = { writes: [], out: [], fatal: [], clock: { now: 0 }, pipeline: undefined as unknown as TurnPipeline };
  h.pipeline = new TurnPipeline(
    { write: (ops, clears, horizon, done) => h.writes.push({ ops, clears, horizon, done }) },
    {
      release: (messages, replies, events) => {
        for (const m of messages) h.out.push(`m:${new TextDecoder().decode(m.frame)}`);
        for (const r of replies) h.out.push(`r:${new TextDecoder().decode(r.frame)}`);
        for (const e of events) h.out.push(`e:${e.type}`);
      },
      fatal: (err) => h.fatal.push(err),
    },
    { pipelineTurns: true, deferWrites: true, deferredWritesMsMax: 50, pendingTurnsMax: 8, now: () => h.clock.now, horizonOnDisk: { view: 0, stable: 0, executed: 0 }, ...options },
  );
  return h;
}

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);
const put = (key: string): WriteOp => ({ type: 'put', key, value: bytes(key) });

function ready(
  index: number,
  spec: { writes?: string[]; clears?: KeyRange[]; messages?: Array<[string, number]>; replies?: Array<[string, number]>; events?: number; horizon?: Horizon } = {},
): Ready {
  return {
    index,
    writes: (spec.writes ?? []).map(put),
    clears: spec.clears ?? [],
    messages: (spec.messages ?? []).map(([f, after]) => ({ to: 1, frame: bytes(f), after })),
    replies: (spec.replies ?? []).map(([f, after]) => ({ client: 0, frame: bytes(f), after, seq: 1 })),
    events: Array.from({ length: spec.events ?? 0 }, () => ({ type: 'checkpoint-stable', seq: 0, digest: new Uint8Array(32) }) as CoreEvent),
    horizon: spec.horizon ?? { view: 0, stable: 0, executed: 0 },
  };
}

test('a message leaves only after the write of its turn is durable', () => {
  const h = harness();
  h.pipeline.submit(ready(1, { writes: ['a'], messages: [['prepare', 1]], events: 1 }));
  assert.deepEqual(h.out, [], 'nothing leaves before the write');
  assert.equal(h.writes.length, 1, 'the waiting message makes the write start at once');
  assert.deepEqual(h.writes[0]!.ops.map((o) => o.key), ['a']);
  h.writes[0]!.done();
  assert.deepEqual(h.out, ['m:prepare', 'e:checkpoint-stable']);
  assert.equal(h.pipeline.durable, 1);
});

test('a reply whose dependency is durable leaves at once, even while a later write is in flight', () => {
  const h = harness();
  h.pipeline.submit(ready(1, { writes: ['commit-1'], messages: [['commit', 1]] }));
  h.writes[0]!.done();
  h.pipeline.submit(ready(2, { writes: ['slot-2'], messages: [['prepare', 2]] }));
  assert.equal(h.writes.length, 2, 'turn 2 is being written');
  h.pipeline.submit(ready(3, { writes: ['executed'], replies: [['reply-seq1', 1], ['reply-seq2', 3]] }));
  assert.deepEqual(h.out, ['m:commit', 'r:reply-seq1'], 'the reply that depends on turn 1 left; the one that depends on turn 3 waits');
  h.writes[1]!.done();
  assert.deepEqual(h.out.slice(2), ['m:prepare'], 'turn 2 is durable, turn 3 not yet');
  assert.equal(h.writes.length, 3, 'turn 3 is written next');
  h.writes[2]!.done();
  assert.deepEqual(h.out.slice(3), ['r:reply-seq2']);
});

test('turns computed while a write is in flight go to disk together in one batch; a later op on a key wins', () => {
  const h = harness();
  h.pipeline.submit(ready(1, { writes: ['a'], messages: [['x', 1]] }));
  h.pipeline.submit(ready(2, { writes: ['b'], messages: [['y', 2]] }));
  h.pipeline.submit({ ...ready(3, { messages: [['z', 3]] }), writes: [{ type: 'del', key: 'a' }, put('c')] });
  assert.equal(h.writes.length, 1);
  h.writes[0]!.done();
  assert.deepEqual(h.out, ['m:x']);
  assert.equal(h.writes.length, 2);
  assert.deepEqual(
    h.writes[1]!.ops.map((o) => `${o.type}:${o.key}`),
    ['put:b', 'del:a', 'put:c'],
  );
  h.writes[1]!.done();
  assert.deepEqual(h.out, ['m:x', 'm:y', 'm:z']);
});

test('a batch ends with the first turn that has range clears', () => {
  const h = harness();
  h.pipeline.submit(ready(1, { writes: ['a'], messages: [['x', 1]] }));
  h.pipeline.submit(ready(2, { writes: ['b'], clears: [{ gte: 'l/', lt: 'l/5' }], messages: [['y', 2]] }));
  h.pipeline.submit(ready(3, { writes: ['c'], messages: [['z', 3]] }));
  h.writes[0]!.done();
  assert.deepEqual(h.writes[1]!.ops.map((o) => o.key), ['b']);
  assert.deepEqual(h.writes[1]!.clears, [{ gte: 'l/', lt: 'l/5' }]);
  h.writes[1]!.done();
  assert.deepEqual(h.writes[2]!.ops.map((o) => o.key), ['c'], 'writes after the clears go in the next batch');
});

test('a turn that sends nothing defers its writes until one that does, or until the deadline', () => {
  const h = harness();
  h.pipeline.submit(ready(1, { writes: ['a'] }));
  assert.equal(h.writes.length, 0, 'deferred');
  h.clock.now = 49;
  h.pipeline.kick();
  assert.equal(h.writes.length, 0, 'still within the deadline');
  h.pipeline.submit(ready(2, { writes: ['b'], messages: [['x', 2]] }));
  assert.equal(h.writes.length, 1, 'an urgent turn takes the deferred writes along');
  assert.deepEqual(h.writes[0]!.ops.map((o) => o.key), ['a', 'b']);
  h.writes[0]!.done();
  h.pipeline.submit(ready(3, { writes: ['c'] }));
  h.clock.now = 100;
  h.pipeline.kick();
  assert.equal(h.writes.length, 2, 'the deadline passed');
  // With deferring off every turn with writes is written at once.
  const eager = harness({ deferWrites: false });
  eager.pipeline.submit(ready(1, { writes: ['a'] }));
  assert.equal(eager.writes.length, 1);
});

test('turns without writes are durable as soon as every earlier turn is', () => {
  const h = harness();
  h.pipeline.submit(ready(1, { messages: [['ping', 1]] }));
  assert.deepEqual(h.out, ['m:ping']);
  assert.equal(h.writes.length, 0);
  h.pipeline.submit(ready(2, { writes: ['a'], messages: [['x', 2]] }));
  h.pipeline.submit(ready(3, { messages: [['y', 3]] }));
  assert.deepEqual(h.out, ['m:ping'], 'turn 3 waits for turn 2');
  h.writes[0]!.done();
  assert.deepEqual(h.out, ['m:ping', 'm:x', 'm:y']);
});

test('backpressure: no room for a turn while a write is in flight and too many wait (or without pipelining)', () => {
  const h = harness({ pendingTurnsMax: 2 });
  h.pipeline.submit(ready(1, { writes: ['a'], messages: [['x', 1]] }));
  assert.equal(h.pipeline.canCompute, true);
  h.pipeline.submit(ready(2, { writes: ['b'] }));
  h.pipeline.submit(ready(3, { writes: ['c'] }));
  assert.equal(h.pipeline.canCompute, false);
  h.writes[0]!.done();
  assert.equal(h.pipeline.canCompute, true);
  const serial = harness({ pipelineTurns: false });
  serial.pipeline.submit(ready(1, { writes: ['a'], messages: [['x', 1]] }));
  assert.equal(serial.pipeline.canCompute, false);
});

test('a failed write is fatal: nothing leaves after it, later turns are ignored', () => {
  const h = harness();
  h.pipeline.submit(ready(1, { writes: ['a'], messages: [['x', 1]] }));
  h.pipeline.submit(ready(2, { writes: ['b'], messages: [['y', 2]], replies: [['r', 0]] }));
  assert.deepEqual(h.out, ['r:r'], 'a reply that depends on nothing left at once');
  h.writes[0]!.done(new Error('disk full'));
  assert.equal(h.fatal.length, 1);
  assert.equal(h.pipeline.stopped, true);
  h.pipeline.submit(ready(3, { messages: [['z', 0]] }));
  assert.deepEqual(h.out, ['r:r']);
  assert.equal(h.writes.length, 1);
});

test('drain writes deferred turns and calls back once nothing is left', () => {
  const h = harness();
  h.pipeline.submit(ready(1, { writes: ['a'], events: 1 }));
  let drained = false;
  h.pipeline.drain(() => (drained = true));
  assert.equal(h.writes.length, 1);
  assert.equal(drained, false);
  h.writes[0]!.done();
  assert.equal(drained, true);
  assert.deepEqual(h.out, ['e:checkpoint-stable']);
  let again = false;
  h.pipeline.drain(() => (again = true));
  assert.equal(again, true, 'an idle pipeline drains at once');
});

test('turns must be submitted in order', () => {
  const h = harness();
  h.pipeline.submit(ready(1));
  assert.throws(() => h.pipeline.submit(ready(3)), /turn 3 submitted after turn 1/);
});

test('the horizon record is rewritten with the batch, before the effects, when the view or the stable checkpoint moved', () => {
  const h = harness();
  h.pipeline.submit(ready(1, { writes: ['a'], messages: [['prepare', 1]], horizon: { view: 0, stable: 0, executed: 0 } }));
  assert.equal(h.writes[0]!.horizon, undefined, 'nothing moved that bounds what was signed');
  h.writes[0]!.done();
  h.pipeline.submit(ready(2, { writes: ['m/view'], messages: [['viewchange', 2]], horizon: { view: 1, stable: 0, executed: 1 } }));
  const w = h.writes[1]!;
  assert.ok(w.horizon, 'a view change rewrites the record');
  const written = decodeHorizon(w.horizon);
  assert.ok(written.ok);
  assert.deepEqual(written.value, { view: 1, stable: 0, executed: 1 });
  assert.deepEqual(h.out, ['m:prepare'], 'the VIEW-CHANGE waits for the record too');
  w.done();
  assert.deepEqual(h.out, ['m:prepare', 'm:viewchange']);
  assert.deepEqual(h.pipeline.horizon, { view: 1, stable: 0, executed: 1 });
  // A stable checkpoint that moved, too; a turn without writes whose bound moved still waits for the record.
  h.pipeline.submit(ready(3, { messages: [['commit', 3]], horizon: { view: 1, stable: 8, executed: 9 } }));
  assert.equal(h.writes.length, 3);
  assert.deepEqual(h.writes[2]!.ops, []);
  assert.ok(h.writes[2]!.horizon);
  assert.deepEqual(h.out.slice(2), []);
  h.writes[2]!.done();
  assert.deepEqual(h.out.slice(2), ['m:commit']);
});

test('the executed sequence number in the horizon is refreshed lazily, also when nothing else is written', () => {
  const h = harness();
  h.pipeline.submit(ready(1, { writes: ['a'], messages: [['x', 1]], horizon: { view: 0, stable: 0, executed: 1 } }));
  assert.ok(h.writes[0]!.horizon, 'the first refresh is due at once');
  h.writes[0]!.done();
  h.clock.now = 100;
  h.pipeline.submit(ready(2, { writes: ['b'], messages: [['y', 2]], horizon: { view: 0, stable: 0, executed: 2 } }));
  assert.equal(h.writes[1]!.horizon, undefined, 'within HORIZON_LAZY_MS of the last one');
  h.writes[1]!.done();
  h.pipeline.kick();
  assert.equal(h.writes.length, 2);
  h.clock.now = 300;
  h.pipeline.kick();
  assert.equal(h.writes.length, 3, 'idle: the record is refreshed on its own');
  assert.deepEqual(h.writes[2]!.ops, []);
  const r = decodeHorizon(h.writes[2]!.horizon!);
  assert.ok(r.ok && r.value.executed === 2);
  h.writes[2]!.done();
  h.clock.now = 1000;
  h.pipeline.kick();
  assert.equal(h.writes.length, 3, 'nothing new to record');
});

test('a clean stop: markClean only after everything is durable, writes the token then the record naming it, and takes nothing after', () => {
  const h = harness();
  // A PREPARE left before its own (deferred) write: rule 1a.
  h.pipeline.submit(ready(1, { writes: ['vote'], messages: [['prepare', 0]], horizon: { view: 0, stable: 0, executed: 3 } }));
  assert.deepEqual(h.out, ['m:prepare']);
  let result: unknown = 'pending';
  h.pipeline.markClean(7, (err) => (result = err));
  assert.match(String(result), /drain first/, 'refused while the vote is not on disk');
  assert.equal(h.writes.length, 0);
  let drained = false;
  h.pipeline.drain(() => (drained = true));
  h.writes.shift()!.done();
  assert.ok(drained);
  result = 'pending';
  h.pipeline.markClean(7, (err) => (result = err));
  assert.equal(h.writes.length, 1, 'one write: the token, with the record after it');
  const w = h.writes.shift()!;
  assert.deepEqual(w.ops.map((o) => o.key), ['m/clean-stop']);
  const record = decodeHorizon(w.horizon!);
  assert.ok(record.ok);
  assert.deepEqual(record.value, { view: 0, stable: 0, executed: 3, clean: 7 });
  assert.equal(result, 'pending', 'done waits for the write');
  w.done();
  assert.equal(result, undefined);
  assert.equal(h.pipeline.horizon?.clean, 7);
  // Nothing after it: a turn is ignored, nothing is written or sent.
  assert.equal(h.pipeline.canCompute, false);
  h.pipeline.submit(ready(2, { writes: ['late'], messages: [['commit', 2]] }));
  assert.equal(h.writes.length, 0);
  assert.deepEqual(h.out, ['m:prepare']);
});

test('after a clean stop, the first turn rewrites the record without the token before any effect leaves, even with nothing else to write', () => {
  const h = harness({ horizonOnDisk: { view: 2, stable: 128, executed: 140, clean: 7 } });
  // A turn without writes whose PREPARE depends on nothing older: it still waits for the record.
  h.pipeline.submit(ready(1, { messages: [['prepare', 1]], horizon: { view: 2, stable: 128, executed: 140 } }));
  assert.deepEqual(h.out, [], 'nothing leaves while the record on disk says clean');
  assert.equal(h.writes.length, 1);
  const record = decodeHorizon(h.writes[0]!.horizon!);
  assert.ok(record.ok);
  assert.deepEqual(record.value, { view: 2, stable: 128, executed: 140 }, 'the record loses its token');
  h.writes.shift()!.done();
  assert.deepEqual(h.out, ['m:prepare']);
  assert.equal(h.pipeline.horizon?.clean, undefined);
});

test('markClean: a failed pipeline or a bad token writes nothing', () => {
  const bad = harness();
  let result: unknown;
  bad.pipeline.markClean(0, (err) => (result = err));
  assert.match(String(result), /token 0/);
  bad.pipeline.submit(ready(1, { writes: ['a'], messages: [['m', 1]] }));
  bad.writes.shift()!.done(new Error('disk full'));
  bad.pipeline.markClean(3, (err) => (result = err));
  assert.match(String(result), /failed/);
  assert.equal(bad.writes.length, 0);
});

/** What a batch leaves: its ops applied in order to a map (Storage.write's contract). */
function applyInOrder(ops: readonly WriteOp[], into = new Map<string, string>()): Map<string, string> {
  for (const op of ops) {
    if (op.type === 'put') into.set(op.key, new TextDecoder().decode(op.value));
    else into.delete(op.key);
  }
  return into;
}

test('merging turns into one batch leaves what writing them one by one would; a large turn passes without lookups', () => {
  // The simulator's deterministic PRNG, so that a failure names a case that repeats.
  const prng = new Prng(0x9e3779b9);
  const next = (n: number): number => prng.int(n);
  let value = 0;
  const op = (keys: number): WriteOp => {
    const key = `k${next(keys)}`;
    return next(4) === 0 ? { type: 'del', key } : { type: 'put', key, value: bytes(`v${value++}`) };
  };
  for (let c = 0; c < 300; c++) {
    const keys = 1 + next(40);
    const turns = Array.from({ length: 2 + next(5) }, () => {
      // Some turns are larger than the lookup bound (a stable checkpoint's records after a bulk load).
      const size = next(6) === 0 ? MERGE_LOOKUP_OPS_MAX + 1 + next(50) : next(12);
      return { writes: Array.from({ length: size }, () => op(keys)) };
    });
    const merged = mergeWrites(turns);
    const oneByOne = new Map<string, string>();
    for (const t of turns) applyInOrder(t.writes, oneByOne);
    assert.deepEqual(applyInOrder(merged), oneByOne, `case ${c}: the merged batch leaves another state`);
    const large = turns.filter((t) => t.writes.length > MERGE_LOOKUP_OPS_MAX);
    const smallKeys = new Set(turns.filter((t) => t.writes.length <= MERGE_LOOKUP_OPS_MAX).flatMap((t) => t.writes.map((o) => o.key)));
    // Every op of a large turn is there, in its order (duplicates of a key in it too); of the small
    // turns' ops, one per key.
    const largeOps = new Set(large.flatMap((t) => t.writes));
    assert.deepEqual(merged.filter((o) => largeOps.has(o)), large.flatMap((t) => t.writes), `case ${c}: a large turn's ops`);
    assert.equal(merged.length, largeOps.size + smallKeys.size, `case ${c}: one op per key of the small turns`);
  }
});

test('a group with a large turn goes to disk in one batch that leaves the same state', () => {
  const h = harness();
  h.pipeline.submit(ready(1, { writes: ['a'], messages: [['x', 1]] }));
  const large = Array.from({ length: MERGE_LOOKUP_OPS_MAX + 10 }, (_, i) => put(`r${i % (MERGE_LOOKUP_OPS_MAX + 5)}`));
  h.pipeline.submit(ready(2, { writes: ['s'], messages: [['y', 2]] }));
  h.pipeline.submit({ ...ready(3, { messages: [['z', 3]] }), writes: large });
  h.pipeline.submit({ ...ready(4, { messages: [['w', 4]] }), writes: [{ type: 'del', key: 'r3' }, { type: 'put', key: 's', value: bytes('s2') }] });
  h.writes[0]!.done();
  assert.equal(h.writes.length, 2, 'turns 2, 3 and 4 in one batch');
  const ops = h.writes[1]!.ops;
  assert.equal(ops.length, large.length + 2, "the large turn's ops all pass (its repeated keys too); of turn 2's and 4's, the later s");
  const state = applyInOrder(ops);
  assert.equal(state.get('s'), 's2');
  assert.equal(state.has('r3'), false, 'the later delete applies after the large turn');
  assert.equal(state.get('r4'), 'r4');
  h.writes[1]!.done();
  assert.deepEqual(h.out, ['m:x', 'm:y', 'm:z', 'm:w']);
});
