/**
 * The bench's put workload changes the state with every put (bench/lib/workload.ts): the store
 * skips a write of the value a key already holds, so a cycle of one value would time no-ops after
 * its first pass. Executed on a KvStore over three passes, every put must leave a changed partition.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KvStore } from '../../src/app/kv.ts';
import type { ExecuteContext } from '../../src/app/types.ts';
import { decodeOp } from '../../src/app/kv-ops.ts';
import { benchKey, putCycle } from '../../bench/lib/workload.ts';

const ctx: ExecuteContext = { seq: 1, client: 3, timestamp: 0, timeMs: 0 };

test('every put of the bench cycle changes the state, pass after pass', () => {
  const keys = 8;
  const cycle = putCycle(3, keys, 16, 16);
  assert.equal(cycle.length, 2 * keys);
  const store = new KvStore({ partitionCount: 64 });
  for (let i = 0; i < 3 * cycle.length; i++) {
    const op = cycle[i % cycle.length]!;
    const decoded = decodeOp(op);
    assert.ok(decoded.ok && decoded.value.type === 'put');
    assert.equal(decoded.value.key, benchKey(3, i % keys, 16));
    store.execute(op, ctx);
    assert.equal(store.takeDirtyPartitions().length, 1, `put ${i} changed nothing`);
  }
});

test('benchKey: exactly the requested bytes, distinct per client and index; too short is a RangeError', () => {
  assert.equal(benchKey(3, 7, 16).length, 16);
  assert.notEqual(benchKey(3, 17, 16), benchKey(31, 7, 16));
  assert.throws(() => benchKey(100, 100, 4), RangeError);
});
