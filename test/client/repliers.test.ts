/**
 * The client's choice of repliers (src/client/repliers.ts): how many, which, and how a replica that
 * does not answer when named is left out for a while (and one that was only slow is not).
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

test('only reachable replicas are named (the SDK: an open connection); the rotation is over those', () => {
  const c = new ReplierChoice('quorum');
  const reachable = (id: number): boolean => id !== 2;
  // Backups 1 and 3 are the only ones usable: both, every time.
  assert.deepEqual(Array.from({ length: 3 }, () => c.choose(FOUR, 0, 2, reachable)), [[1, 3], [1, 3], [1, 3]]);
  // Seven replicas with two unreachable: three of the four reachable backups, rotating, ascending.
  const seven = new ReplierChoice('quorum');
  const up = (id: number): boolean => id !== 3 && id !== 5;
  assert.deepEqual(Array.from({ length: 4 }, () => seven.choose([0, 1, 2, 3, 4, 5, 6], 0, 3, up)), [[1, 2, 4], [2, 4, 6], [1, 4, 6], [1, 2, 6]]);
  // Too few reachable backups: the primary too; too few replicas at all: everyone is asked.
  assert.deepEqual(new ReplierChoice('quorum').choose(FOUR, 0, 2, (id) => id === 0 || id === 3), [0, 3]);
  assert.equal(new ReplierChoice('quorum').choose(FOUR, 0, 2, (id) => id === 3), undefined);
});

test('clients of one process start their rotation apart', () => {
  assert.notDeepEqual(new ReplierChoice('quorum', 0).choose(FOUR, 0, 2), new ReplierChoice('quorum', 1).choose(FOUR, 0, 2));
});

test("every replica replies when the mode is 'all', when every member is needed, or for a single replica", () => {
  assert.equal(new ReplierChoice('all').choose(FOUR, 0, 2), undefined);
  assert.equal(new ReplierChoice('quorum').choose([0, 1], 0, 2), undefined);
  assert.equal(new ReplierChoice('quorum').choose([0], 0, 1), undefined);
  // More repliers than a request may name (over 768 replicas): every replica.
  const many = Array.from({ length: 1_000 }, (_, i) => i);
  assert.equal(new ReplierChoice('quorum').choose(many, 0, 334), undefined);
  assert.equal(new ReplierChoice('quorum').choose(many, 0, 256)!.length, 256);
  assert.throws(() => new ReplierChoice('some' as never), /replies must be one of quorum, all/);
});

test('a named replica that did not answer is left out of the next 32 requests, twice as many after each further miss, up to 4,096', () => {
  // Two backups, two repliers: the rotation always names both, so only a miss leaves one out (the
  // primary takes its place).
  const THREE = [0, 1, 2];
  const c = new ReplierChoice('quorum');
  let ts = 1;
  /**
   * Requests (each answered by its named repliers) until one names replica 2 again; that one is
   * left to the caller to settle.
   */
  const leftOut = (): number => {
    let n = 0;
    for (;;) {
      const named = c.choose(THREE, 0, 2)!;
      if (named.includes(2)) return n;
      assert.deepEqual(named, [0, 1]);
      c.settled(named, new Set(named), ts++);
      n++;
    }
  };
  assert.deepEqual(c.choose(THREE, 0, 2), [1, 2]);
  // Replica 2 does not answer: the result came from 1 and, after the retransmission, from 0.
  c.settled([1, 2], new Set([0, 1]), ts++);
  assert.deepEqual(c.suspected(), [2]);
  assert.equal(leftOut(), SUSPECT_REQUESTS_MIN, 'the request that judges the miss, then 31 more');
  // Named again, it misses again: 64 requests this time; and so on, up to the maximum.
  let span = SUSPECT_REQUESTS_MIN;
  for (let miss = 2; miss <= 10; miss++) {
    span = Math.min(span * 2, SUSPECT_REQUESTS_MAX);
    c.settled([1, 2], new Set([1]), ts++);
    assert.equal(leftOut(), span, `after miss ${miss}`);
  }
  assert.equal(span, SUSPECT_REQUESTS_MAX);
  // Named again, it answers: the count starts over.
  c.settled([1, 2], new Set([1, 2]), ts++);
  c.settled([1, 2], new Set([1]), ts++);
  assert.equal(leftOut(), SUSPECT_REQUESTS_MIN);
});

test('a named replica whose reply to the missed request arrives before the next request settles was slow, not silent: no strike', () => {
  const c = new ReplierChoice('quorum');
  c.settled([1, 2], new Set([1]), 7);
  assert.deepEqual(c.suspected(), [2], 'not named while its miss is judged');
  assert.deepEqual(c.choose(FOUR, 0, 2), [1, 3]);
  c.answeredLate(2, 6); // a reply to an older request takes nothing back
  assert.deepEqual(c.suspected(), [2]);
  c.answeredLate(2, 7);
  assert.deepEqual(c.suspected(), []);
  c.settled([1, 3], new Set([1, 3]), 8);
  assert.deepEqual(c.suspected(), [], 'no strike');
  // A whole cluster that stalls: every named replica misses, and every one replies late.
  c.settled([2, 3], new Set(), 9);
  c.answeredLate(2, 9);
  c.answeredLate(3, 9);
  c.settled([1, 2], new Set([1, 2]), 10);
  assert.deepEqual(c.suspected(), []);
  // Too late: the next request settled first.
  c.settled([1, 3], new Set([1]), 11);
  c.settled([1, 2], new Set([1, 2]), 12);
  c.answeredLate(3, 11);
  assert.deepEqual(c.suspected(), [3]);
});

test('with too few backups left the primary is named, and with too few replicas left every replica is asked', () => {
  const c = new ReplierChoice('quorum');
  c.settled([1, 2], new Set(), 1);
  assert.deepEqual(c.choose(FOUR, 0, 2), [0, 3], 'one backup left: the primary and that backup');
  c.settled([3], new Set(), 2);
  assert.equal(c.choose(FOUR, 0, 2), undefined, 'only the primary left: every replica replies');
  // A request without named repliers (every replica asked) suspects nobody.
  const d = new ReplierChoice('quorum');
  d.settled(undefined, new Set(), 1);
  d.settled(undefined, new Set(), 2);
  assert.deepEqual(d.suspected(), []);
});
