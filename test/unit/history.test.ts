/**
 * The replica shell's bounded histories for /status (src/node/history.ts): view changes with their
 * reasons and times from the core's events, and misbehaviour coalesced per peer and code.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventHistory, HISTORY_REASON_CHARS_MAX, MISBEHAVIOUR_HISTORY_MAX, VIEW_CHANGE_HISTORY_MAX } from '../../src/node/history.ts';

function clock(start: number): { now: () => number; advance: (ms: number) => void } {
  let t = start;
  return { now: () => t, advance: (ms) => void (t += ms) };
}

test('a view change: why this replica suspected the primary, why it started, when it entered the new view', () => {
  const c = clock(1_000);
  const h = new EventHistory(c.now);
  h.observe({ type: 'primary-suspected', view: 0, reason: 'request timeout' });
  c.advance(50);
  h.observe({ type: 'view-change-started', view: 1, reason: '2 replicas suspect the primary' });
  c.advance(120);
  h.observe({ type: 'view-entered', view: 1, primary: 1 });
  assert.deepEqual(h.viewChangeHistory(), [
    { view: 1, from: 0, reason: '2 replicas suspect the primary', suspected: 'request timeout', startedAtMs: 1_050, enteredAtMs: 1_170, primary: 1 },
  ]);
  // One that never completes, then the next view: both are kept; the first without enteredAtMs.
  h.observe({ type: 'view-change-started', view: 2, reason: 'f+1 suspect' });
  c.advance(10);
  h.observe({ type: 'view-change-started', view: 3, reason: 'view-change timer expired' });
  c.advance(10);
  h.observe({ type: 'view-entered', view: 3, primary: 3 });
  const all = h.viewChangeHistory();
  assert.deepEqual(all.map((r) => [r.view, r.from, r.enteredAtMs !== undefined, r.suspected]), [[1, 0, true, 'request timeout'], [2, 1, false, undefined], [3, 2, true, undefined]]);
});

test('a view entered without starting the change (it followed a NEW-VIEW) is recorded as such; the recovered view is not', () => {
  const c = clock(5);
  const h = new EventHistory(c.now, 4);
  h.observe({ type: 'view-entered', view: 4, primary: 0 });
  assert.deepEqual(h.viewChangeHistory(), [], 'the view it recovered in is no change');
  h.observe({ type: 'view-entered', view: 6, primary: 2 });
  assert.deepEqual(h.viewChangeHistory(), [{ view: 6, from: 4, reason: 'entered on a NEW-VIEW', startedAtMs: 5, enteredAtMs: 5, primary: 2 }]);
  // A suspicion in an older view does not stick to a later change.
  h.observe({ type: 'primary-suspected', view: 5, reason: 'stale' });
  h.observe({ type: 'view-change-started', view: 7, reason: 'x' });
  assert.equal(h.viewChangeHistory()[1]!.suspected, undefined);
});

test('bounded: the last VIEW_CHANGE_HISTORY_MAX view changes; reasons cut to HISTORY_REASON_CHARS_MAX', () => {
  const h = new EventHistory(() => 0);
  for (let v = 1; v <= VIEW_CHANGE_HISTORY_MAX + 5; v++) h.observe({ type: 'view-change-started', view: v, reason: 'r'.repeat(1_000) });
  const all = h.viewChangeHistory();
  assert.equal(all.length, VIEW_CHANGE_HISTORY_MAX);
  assert.equal(all[0]!.view, 6);
  assert.equal(all[0]!.reason.length, HISTORY_REASON_CHARS_MAX);
  // Copies: changing the answer does not change the history.
  all[0]!.view = 99;
  assert.equal(h.viewChangeHistory()[0]!.view, 6);
});

test('misbehaviour is coalesced per peer and code (count, first and last time, last reason); the least recently seen pairs are forgotten', () => {
  const c = clock(100);
  const h = new EventHistory(c.now);
  h.observe({ type: 'peer-misbehaved', peer: 3, code: 'invalid-view-change', reason: 'first' });
  c.advance(10);
  h.observe({ type: 'peer-misbehaved', peer: 2, code: 'invalid-new-view', reason: 'other' });
  c.advance(10);
  h.observe({ type: 'peer-misbehaved', peer: 3, code: 'invalid-view-change', reason: 'second' });
  assert.deepEqual(h.misbehaviourHistory(), [
    { peer: 2, code: 'invalid-new-view', reason: 'other', count: 1, firstAtMs: 110, lastAtMs: 110 },
    { peer: 3, code: 'invalid-view-change', reason: 'second', count: 2, firstAtMs: 100, lastAtMs: 120 },
  ]);
  for (let p = 10; p < 10 + MISBEHAVIOUR_HISTORY_MAX; p++) h.observe({ type: 'peer-misbehaved', peer: p, code: 'bad-state-transfer', reason: 'x' });
  const all = h.misbehaviourHistory();
  assert.equal(all.length, MISBEHAVIOUR_HISTORY_MAX);
  assert.ok(!all.some((r) => r.peer === 2 || r.peer === 3), 'the oldest pairs went first');
});
