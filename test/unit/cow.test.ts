/**
 * CowArray (src/core/cow.ts): the partition bytes and leaf digests a replica shares with its
 * checkpoint snapshots. A snapshot must never see a later write of the live array, nor the live
 * array a write of the snapshot, whatever the order of writes and snapshots.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { COW_CHUNK, CowArray } from '../../src/core/cow.ts';

test('holds what it was built from, across chunk boundaries and a short last chunk', () => {
  for (const n of [0, 1, COW_CHUNK - 1, COW_CHUNK, COW_CHUNK + 1, 3 * COW_CHUNK + 5]) {
    const items = Array.from({ length: n }, (_, i) => `v${i}`);
    const a = new CowArray(items);
    assert.equal(a.length, n);
    assert.deepEqual(a.toArray(), items);
    for (let i = 0; i < n; i++) assert.equal(a.get(i), items[i]);
    assert.deepEqual(a.slice(2, n + 10), items.slice(2));
    assert.deepEqual(a.slice(COW_CHUNK - 2, COW_CHUNK + 2), items.slice(COW_CHUNK - 2, COW_CHUNK + 2));
  }
});

test('a write after share() changes the writer only, in both directions', () => {
  const items = Array.from({ length: 2 * COW_CHUNK + 3 }, (_, i) => i);
  const live = new CowArray(items);
  const snap = live.share();
  live.set(5, -5);
  live.set(COW_CHUNK + 1, -1);
  assert.equal(live.get(5), -5);
  assert.equal(snap.get(5), 5, 'the snapshot keeps the value it was taken with');
  assert.equal(snap.get(COW_CHUNK + 1), COW_CHUNK + 1);
  snap.set(6, -6);
  assert.equal(live.get(6), 6, 'the live array does not see the snapshot\'s write');
  // A second write to a chunk already copied stays with its writer too.
  live.set(7, -7);
  assert.equal(snap.get(7), 7);
  assert.deepEqual(snap.toArray(), items.map((v, i) => (i === 6 ? -6 : v)));
});

test('the input array is copied: changing it later changes nothing', () => {
  const items = [1, 2, 3];
  const a = new CowArray(items);
  items[0] = 99;
  assert.equal(a.get(0), 1);
});

test('out of range: get and set throw, at() answers undefined (a peer may name any index)', () => {
  const a = new CowArray([10, 20, 30]);
  for (const bad of [-1, 3, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
    assert.equal(a.at(bad), undefined, `at(${bad})`);
    assert.throws(() => a.set(bad, 0), RangeError, `set(${bad})`);
  }
  assert.throws(() => a.get(-1), RangeError);
  assert.throws(() => a.get(3), RangeError);
  assert.equal(a.at(2), 30);
});

test('against a model of full copies: random writes and shares over several generations', () => {
  // A deterministic generator (no Math.random in tests that must repeat).
  let state = 0x2545f491;
  const next = (bound: number): number => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) % bound;
  };
  const n = 5 * COW_CHUNK + 7;
  const versions: Array<{ cow: CowArray<number>; model: number[] }> = [{ cow: new CowArray(Array.from({ length: n }, (_, i) => i)), model: Array.from({ length: n }, (_, i) => i) }];
  for (let step = 0; step < 5000; step++) {
    const v = versions[next(versions.length)]!;
    if (next(20) === 0 && versions.length < 40) {
      versions.push({ cow: v.cow.share(), model: v.model.slice() });
    } else {
      const i = next(n);
      const value = step * 1000 + i;
      v.cow.set(i, value);
      v.model[i] = value;
    }
  }
  assert.ok(versions.length > 10, 'shares happened');
  for (const [k, v] of versions.entries()) assert.deepEqual(v.cow.toArray(), v.model, `version ${k}`);
});

test('sharesChunk: true exactly for the chunks neither side wrote since the share', () => {
  const items = Array.from({ length: 3 * COW_CHUNK }, (_, i) => i);
  const live = new CowArray(items);
  assert.equal(live.chunkCount, 3);
  const snap = live.share();
  assert.deepEqual([0, 1, 2].map((c) => snap.sharesChunk(live, c)), [true, true, true]);
  live.set(COW_CHUNK + 3, -1); // chunk 1, by the live side
  snap.set(2 * COW_CHUNK, -2); // chunk 2, by the snapshot
  assert.deepEqual([0, 1, 2].map((c) => snap.sharesChunk(live, c)), [true, false, false]);
  // Equal contents are not the same chunk: an array built apart shares nothing.
  const apart = new CowArray(items);
  assert.deepEqual([0, 1, 2].map((c) => apart.sharesChunk(new CowArray(items), c)), [false, false, false]);
  assert.equal(live.sharesChunk(snap, 3), false, 'no chunk 3');
  // A share of a share still shares what nobody wrote.
  const third = snap.share();
  assert.deepEqual([0, 1, 2].map((c) => third.sharesChunk(live, c)), [true, false, false]);
});
