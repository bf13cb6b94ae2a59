/** The nemesis report's arithmetic: availability per second, the longest gap, the sparkline. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { availability, formatReport, sparkline, type Report } from '../../src/nemesis/report.ts';

test('availability counts completions per second and finds the longest gap between them', () => {
  const a = availability([100, 200, 1_500, 1_600, 4_700, 4_900], 5);
  assert.deepEqual(a.perSecond, [2, 2, 0, 0, 2]);
  assert.equal(a.longestGapMs, 3_100);
  assert.equal(a.longestGapAt, 1_600);
  assert.equal(sparkline([0, 1, 8, 4]), '·▁█▄');
});

test('the text report names anomalies, faults with their recovery, digests and the replay command', () => {
  const r: Report = {
    seed: 9,
    replicas: 4,
    seconds: 3,
    network: 'loopback',
    nemeses: ['kill'],
    notes: ['a note'],
    outcomes: { ok: 3, fail: 0, unknown: 1 },
    completions: [100, 900, 2_500],
    faults: [{ kind: 'kill', targets: [2], description: 'kill -9 2', start: 1_000, end: 2_000, recoveryMs: 500, outOfViewMs: 250 }],
    anomalies: 0,
    digests: [
      { id: 0, seq: 128, digest: 'ab'.repeat(32), lastExecuted: 130 },
      { id: 1, seq: 128, digest: 'ab'.repeat(32), lastExecuted: 130 },
    ],
    crashed: [],
    command: 'npm run nemesis -- --seed 9',
  };
  const text = formatReport(r);
  assert.match(text, /operations: 4 \(ok 3, fail 0, unknown outcome 1\)/);
  assert.match(text, /anomalies: 0 \(the history is linearizable\)/);
  assert.match(text, /kill -9 2: ops again after 0\.50 s, longest out of the others' view 0\.25 s/);
  assert.match(text, /state digests at a common checkpoint: agree/);
  assert.match(text, /note: a note/);
  assert.match(text, /replay: npm run nemesis -- --seed 9/);
  assert.match(formatReport({ ...r, digests: [...r.digests, { id: 2, seq: 128, digest: 'cd'.repeat(32), lastExecuted: 130 }] }), /DIFFER/);
});
