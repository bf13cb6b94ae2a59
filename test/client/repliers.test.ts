/**
 * The client's choice of repliers (src/client/repliers.ts): how many, which, and how a replica that
 * does not answer when named is left out for a while.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ReplierChoice, SUSPECT_REQUESTS_MAX, SUSPECT_REQUESTS_MIN } from '../../src/client/repliers.ts';

const FOUR = [0, 1, 2, 3];

test('a request names f+1 backups, rotating over them; the primary is left out while enough backups are usable', () => {
  const c = new ReplierChoice('quorum');
  const chosen = Array.from({ length: 6 }, () => c.choose(FOUR, 0, 2));
  assert.deepEqual(chosen, [[1, 2], [2, 3], [1, 3], [1, 2], [2, 3], [1, 3]]);
  // Each backup is named equally often: the replies of many clients spread evenly.
  const counts = new Map<number, number>();
  for (const ids of chosen) for (const id of ids!) counts.set(id, (counts.get(id) ?? 0) + 1);
  assert.deepEqual([...counts.entries()].sort(), [[1, 4], [2, 4], [3, 4]]);
  // Another primary (after a view change) is left out in its turn; ids need not be dense.
  assert.deepEqual(new ReplierChoice('quorum').choose([2, 5, 9, 11], 5, 2), [2, 9]);
  // Seven replicas, f = 2: three repliers.
  assert.equal(new ReplierChoice('quorum').choose([0, 1, 2, 3, 4, 5, 6], 0, 3)!.length, 3);
  // The crash-fault mode accepts one reply: one replier.
  assert.deepEqual(new ReplierChoice('quorum').choose([0, 1, 2], 0, 1), [1]);
});

test('clients of one process start their rotation apart', () => {
  assert.notDeepEqual(new ReplierChoice('quorum', 0).choose(FOUR, 0, 2), new ReplierChoice('quorum', 1).choose(FOUR, 0, 2));
});

test("every replica replies when the mode is 'all', when every member is needed, or for a single replica", () => {
  assert.equal(new ReplierChoice('all').choose(FOUR, 0, 2), undefined);
  assert.equal(new ReplierChoice('quorum').choose([0, 1], 0, 2), undefined);
  assert.equal(new ReplierChoice('quorum').choose([0], 0, 1), undefined);
  assert.throws(() => new ReplierChoice('some' as never), /replies must be one of quorum, all/);
});

test('a named replica that did not answer is left out for 32 requests, twice as long after each further miss, up to 4,096', () => {
  const c = new ReplierChoice('quorum');
  const named = c.choose(FOUR, 0, 2)!;
  assert.deepEqual(named, [1, 2]);
  // Replica 2 did not answer: the result came from 1 and, after the retransmission, from 3.
  c.settled(named, new Set([1, 3]));
  assert.deepEqual(c.suspected(), [2]);
  // Meanwhile the requests name the two other backups.
  for (let i = 1; i < SUSPECT_REQUESTS_MIN; i++) assert.deepEqual(c.choose(FOUR, 0, 2), [1, 3], `request ${i}`);
  assert.deepEqual(c.suspected(), [2]);
  c.choose(FOUR, 0, 2);
  assert.deepEqual(c.suspected(), [], 'named again after 32 requests');
  // It misses again: 64 requests this time; and so on, up to the maximum.
  let span = SUSPECT_REQUESTS_MIN;
  for (let miss = 2; miss <= 10; miss++) {
    span = Math.min(span * 2, SUSPECT_REQUESTS_MAX);
    c.settled([1, 2], new Set([1]));
    let left = 0;
    while (c.suspected().length > 0) {
      c.choose(FOUR, 0, 2);
      left++;
    }
    assert.equal(left, span, `after miss ${miss}`);
  }
  assert.equal(span, SUSPECT_REQUESTS_MAX);
  // It answers when named: the count starts over.
  c.settled([1, 2], new Set([1, 2]));
  c.settled([1, 2], new Set([1]));
  let left = 0;
  while (c.suspected().length > 0) {
    c.choose(FOUR, 0, 2);
    left++;
  }
  assert.equal(left, SUSPECT_REQUESTS_MIN);
});

test('with too few backups left the primary is named, and with too few replicas left every replica is asked', () => {
  const c = new ReplierChoice('quorum');
  c.settled([1, 2], new Set());
  assert.deepEqual(c.choose(FOUR, 0, 2), [0, 3], 'one backup left: the primary and that backup');
  c.settled([3], new Set());
  assert.equal(c.choose(FOUR, 0, 2), undefined, 'only the primary left: every replica replies');
  // A request without named repliers (every replica asked) suspects nobody.
  const d = new ReplierChoice('quorum');
  d.settled(undefined, new Set());
  assert.deepEqual(d.suspected(), []);
});
