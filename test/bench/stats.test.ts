/**
 * The bench's phase means (bench/lib/stats.ts meanMsBetween): the mean of a replica's histogram
 * between two scrapes of its /metrics, as parsed by the dashboard's parseHistogram.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { meanMsBetween, processCpuSeconds, threadCpuSeconds } from '../../bench/lib/stats.ts';
import { parseHistogram } from '../../src/dashboard/model.ts';

function scrape(sum: number, count: number): string {
  return [
    '# TYPE pbft_phase_duration_seconds histogram',
    `pbft_phase_duration_seconds_bucket{le="0.01",phase="prepare"} ${count}`,
    `pbft_phase_duration_seconds_bucket{le="+Inf",phase="prepare"} ${count}`,
    `pbft_phase_duration_seconds_sum{phase="prepare"} ${sum}`,
    `pbft_phase_duration_seconds_count{phase="prepare"} ${count}`,
  ].join('\n');
}

const prepare = (text: string) => parseHistogram(text, 'pbft_phase_duration_seconds', { phase: 'prepare' });

test('the mean between two scrapes counts only what was observed in between, in milliseconds', () => {
  assert.equal(meanMsBetween(prepare(scrape(2.5, 1000)), prepare(scrape(3.5, 1500))), 2);
});

test('NaN when nothing was observed, a scrape lacks the series, or the counts went back', () => {
  assert.ok(Number.isNaN(meanMsBetween(prepare(scrape(1, 10)), prepare(scrape(1, 10)))), 'nothing observed');
  assert.ok(Number.isNaN(meanMsBetween(undefined, prepare(scrape(1, 10)))), 'a missing scrape');
  assert.ok(Number.isNaN(meanMsBetween(prepare(scrape(1, 10)), parseHistogram(scrape(1, 10), 'pbft_phase_duration_seconds', { phase: 'commit' }))), 'another phase is not this one');
  assert.ok(Number.isNaN(meanMsBetween(prepare(scrape(5, 100)), prepare(scrape(1, 10)))), 'a restarted replica');
});

test('CPU by thread: the main thread named main, the sum no more than the process; nothing for a process that is gone', () => {
  const end = performance.now() + 200;
  let x = 0;
  while (performance.now() < end) x += Math.sqrt(x + 1);
  assert.ok(x > 0);
  const threads = threadCpuSeconds(process.pid);
  const all = processCpuSeconds(process.pid)!;
  assert.ok((threads.get('main') ?? 0) >= 0.1, `main thread ${threads.get('main')} s after 0.2 s of work`);
  let sum = 0;
  for (const s of threads.values()) sum += s;
  // Threads that ended are in the process's figure and not in the sum; a tick of rounding per thread.
  assert.ok(sum <= all + 0.01 * threads.size, `threads ${sum} s, process ${all} s`);
  assert.equal(threadCpuSeconds(2 ** 22 + 12345).size, 0);
});
