/**
 * The primary monitor's bookkeeping (src/core/monitor.ts), and the checks of its options
 * (src/core/options.ts). The rule as a replica applies it is in test/paper/view-change.test.ts.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { COMMIT_TICKS_KEPT, PrimaryMonitor, SAMPLE_LIFETIME_REQUESTS } from '../../src/core/monitor.ts';
import { DEFAULT_REPLICA_OPTIONS, resolveOptions } from '../../src/core/options.ts';

const monitor = (samples = 4): PrimaryMonitor => new PrimaryMonitor({ floorTicks: 20, factor: 4, samples });

test('the bound is the floor until factor x the median PRE-PREPARE-to-execution time is larger', () => {
  const m = monitor();
  assert.equal(m.boundTicks(), 20, 'no history: the floor');
  for (const t of [1, 2, 3]) m.executed(t);
  assert.equal(m.boundTicks(), 20, '4 x 2 is below the floor');
  for (const t of [10, 10, 10, 100]) m.executed(t);
  assert.equal(m.boundTicks(), 40, 'median 10 of [1,2,3,10,10,10,100]: 4 x 10');
});

test('the median is over the last COMMIT_TICKS_KEPT batches only (a burst of slow ones ages out)', () => {
  const m = monitor();
  for (let i = 0; i < COMMIT_TICKS_KEPT; i++) m.executed(50);
  assert.equal(m.boundTicks(), 200);
  for (let i = 0; i < COMMIT_TICKS_KEPT; i++) m.executed(2);
  assert.equal(m.boundTicks(), 20);
});

test('slow when at least half of the last `samples` timed PRE-PREPAREs were late; the window slides by count', () => {
  const m = monitor(4);
  m.timed(21, 0);
  assert.equal(m.slow, false, 'one late of four: not slow');
  m.timed(20, 0);
  assert.equal(m.slow, false, 'a wait equal to the bound is on time');
  m.timed(25, 0);
  assert.equal(m.slow, true, 'two late of four');
  assert.deepEqual(m.status(), { boundTicks: 20, timed: 3, late: 2 });
  m.timed(1, 0);
  assert.equal(m.slow, true, '[21, 20, 25, 1]: two late of four');
  m.timed(1, 0);
  assert.equal(m.slow, false, 'the oldest slid out, [20, 25, 1, 1]: one late of four');
  assert.deepEqual(m.status(), { boundTicks: 20, timed: 4, late: 1 });
});

test('a sample expires once SAMPLE_LIFETIME_REQUESTS requests executed after it (rare stalls far apart do not add up)', () => {
  const m = monitor(4);
  m.timed(50, 0);
  m.timed(50, 100);
  assert.equal(m.slow, true);
  m.expire(SAMPLE_LIFETIME_REQUESTS - 1);
  assert.deepEqual(m.status(), { boundTicks: 20, timed: 2, late: 2 });
  m.expire(SAMPLE_LIFETIME_REQUESTS);
  assert.deepEqual(m.status(), { boundTicks: 20, timed: 1, late: 1 }, 'the first one expired');
  assert.equal(m.slow, false);
  m.expire(SAMPLE_LIFETIME_REQUESTS + 100);
  assert.deepEqual(m.status(), { boundTicks: 20, timed: 0, late: 0 });
});

test('lateness is judged against the bound at the time of the sample', () => {
  const m = monitor(2);
  m.timed(30, 0);
  assert.equal(m.status().late, 1);
  for (let i = 0; i < 8; i++) m.executed(10);
  m.timed(30, 0);
  assert.deepEqual(m.status(), { boundTicks: 40, timed: 2, late: 1 });
});

test('a new view clears the window (the new primary starts clean) and keeps the execution times (they are the backups\')', () => {
  const m = monitor(2);
  for (let i = 0; i < 8; i++) m.executed(10);
  m.timed(100, 0);
  m.timed(100, 0);
  assert.equal(m.slow, true);
  m.newView();
  assert.equal(m.slow, false);
  assert.deepEqual(m.status(), { boundTicks: 40, timed: 0, late: 0 });
});

test('options: on by default; each tunable is checked with an error that names it and its range', () => {
  assert.equal(DEFAULT_REPLICA_OPTIONS.slowPrimaryCheck, true);
  assert.equal(resolveOptions({ slowPrimaryCheck: false }).slowPrimaryCheck, false);
  assert.throws(() => resolveOptions({ slowPrimaryCheck: 'yes' as unknown as boolean }), /slowPrimaryCheck must be true or false/);
  assert.throws(() => resolveOptions({ slowPrimaryDelayFloorPercent: 0 }), /slowPrimaryDelayFloorPercent must be a positive integer, got 0/);
  assert.throws(() => resolveOptions({ slowPrimaryDelayFloorPercent: 101 }), /slowPrimaryDelayFloorPercent must be an integer from 1 to 100 \(a percent of viewChangeTimeoutTicks\), got 101/);
  assert.throws(() => resolveOptions({ slowPrimaryDelayFactor: 1.5 }), /slowPrimaryDelayFactor must be a positive integer, got 1.5/);
  assert.throws(() => resolveOptions({ slowPrimaryDelayFactor: 1001 }), /slowPrimaryDelayFactor must be an integer from 1 to 1000/);
  assert.throws(() => resolveOptions({ slowPrimarySamples: 2000 }), /slowPrimarySamples must be an integer from 1 to 1024/);
  assert.equal(resolveOptions({ slowPrimaryDelayFloorPercent: 100, slowPrimaryDelayFactor: 1000, slowPrimarySamples: 1 }).slowPrimarySamples, 1);
});
