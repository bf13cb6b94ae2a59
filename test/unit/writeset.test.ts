/**
 * The core's WriteSet (src/core/persist.ts): one op per key in its first lane, the last write of a
 * key winning; partition records in a second lane, appended in order and applied after every op
 * of the first. What a batch leaves on a Storage (which applies ops in order) is checked, not the
 * order of the list alone.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { WriteSet } from '../../src/core/persist.ts';
import { MemoryStorage } from '../../src/storage/memory.ts';

const v = (n: number): Uint8Array => Uint8Array.of(n);

async function applied(ws: WriteSet): Promise<Map<string, number>> {
  const storage = new MemoryStorage();
  await storage.open();
  await storage.write([{ type: 'put', key: 'a/000001/old', value: v(9) }, { type: 'put', key: 'm/x', value: v(9) }], { sync: true });
  await storage.write(ws.take(), { sync: true });
  const out = new Map<string, number>();
  for (const [key, value] of await storage.scan({})) out.set(key, value[0]!);
  return out;
}

test('first lane: the last write of a key wins, one op per key', async () => {
  const ws = new WriteSet();
  ws.put('m/x', v(1));
  ws.put('m/y', v(2));
  ws.del('m/x');
  ws.put('m/y', v(3));
  ws.put('m/x', v(4));
  assert.equal(ws.size, 2);
  assert.deepEqual(await applied(ws), new Map([['a/000001/old', 9], ['m/x', 4], ['m/y', 3]]));
  assert.equal(ws.size, 0, 'take() empties both lanes');
});

test('records apply after the first lane (a delete there, then a record of the same key) and in their own order', async () => {
  const ws = new WriteSet();
  // dropOnPersist's delete of what was stored, then the record written again: the record stays.
  ws.del('a/000001/old');
  ws.record({ type: 'put', key: 'a/000001/old', value: v(5) });
  // Two stable checkpoints in one turn: a record written, then deleted when the partition is written whole.
  ws.record({ type: 'put', key: 'a/000002/k', value: v(6) });
  ws.put('a/000002', v(7));
  ws.record({ type: 'del', key: 'a/000002/k' });
  // A record written twice: the second value.
  ws.record({ type: 'put', key: 'a/000003/k', value: v(1) });
  ws.record({ type: 'put', key: 'a/000003/k', value: v(2) });
  assert.equal(ws.size, 7);
  assert.deepEqual(await applied(ws), new Map([['a/000001/old', 5], ['a/000002', 7], ['a/000003/k', 2], ['m/x', 9]]));
});
