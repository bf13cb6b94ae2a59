/**
 * The bench's reading of a replica's Prometheus text (bench/lib/stats.ts): one series' value, and a
 * histogram's mean between two scrapes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { meanMsBetween, promValue } from '../../bench/lib/stats.ts';

const TEXT = [
  '# TYPE pbft_phase_duration_seconds histogram',
  'pbft_phase_duration_seconds_sum{phase="prepare"} 2.5',
  'pbft_phase_duration_seconds_count{phase="prepare"} 1000',
  'pbft_phase_duration_seconds_sum{phase="commit"} 4',
  'pbft_request_duration_seconds_sum 3.82',
  'pbft_request_duration_seconds_count 1000',
  'pbft_request_duration_seconds_count_extra 7',
].join('\n');

test('promValue reads the series named, with or without labels, and NaN when it is absent', () => {
  assert.equal(promValue(TEXT, 'pbft_phase_duration_seconds_sum', 'phase="prepare"'), 2.5);
  assert.equal(promValue(TEXT, 'pbft_phase_duration_seconds_sum', 'phase="commit"'), 4);
  assert.equal(promValue(TEXT, 'pbft_request_duration_seconds_count'), 1000);
  assert.ok(Number.isNaN(promValue(TEXT, 'pbft_phase_duration_seconds_count', 'phase="commit"')));
  assert.ok(Number.isNaN(promValue(TEXT, 'pbft_phase_duration_seconds_sum', 'phase="execute"')));
  assert.ok(Number.isNaN(promValue(TEXT, 'pbft_request_duration')), 'a prefix of a name is not the name');
});

test('meanMsBetween is the mean of the observations between two scrapes, in milliseconds', () => {
  assert.equal(meanMsBetween({ sum: 2.5, count: 1000 }, { sum: 3.5, count: 1500 }), 2);
  assert.ok(Number.isNaN(meanMsBetween({ sum: 1, count: 10 }, { sum: 1, count: 10 })), 'nothing observed');
});
