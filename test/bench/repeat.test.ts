/** `npm run bench -- --repeat N` (bench/lib/repeat.ts): one verdict per target over the repetitions. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { medianRatios, repeatedTargetLines, targetsOverRepetitions, type JudgedTarget } from '../../bench/lib/repeat.ts';

const t = (name: string, met: boolean | undefined, detail = `${name} ${String(met)}`): JudgedTarget => ({ name, met, detail });

test('a target is met over the repetitions when met in more than half of those that judged it', () => {
  const out = targetsOverRepetitions([
    [t('floor', false), t('sdk', true), t('p50', false)],
    [t('floor', false), t('sdk', false), t('p50', false)],
    [t('floor', true), t('sdk', true), t('p50', false)],
  ]);
  assert.deepEqual(
    out.map((r) => [r.name, r.met, r.metIn, r.judged]),
    [
      ['floor', false, 1, 3],
      ['sdk', true, 2, 3],
      ['p50', false, 0, 3],
    ],
  );
  assert.deepEqual(out[1]!.details, ['sdk true', 'sdk false', 'sdk true'], 'every repetition\'s detail, in order');
});

test('a tie is not met; repetitions that did not judge a target are left out of its count', () => {
  const [tie] = targetsOverRepetitions([[t('x', true)], [t('x', false)]]);
  assert.equal(tie!.met, false, 'met in 1 of 2 is not more than half');
  const [partly] = targetsOverRepetitions([[t('y', undefined)], [t('y', true)], []]);
  assert.deepEqual([partly!.met, partly!.metIn, partly!.judged], [true, 1, 1]);
  assert.equal(partly!.details[2], undefined, 'the repetition without the target has no detail');
  const [never] = targetsOverRepetitions([[t('z', undefined)], [t('z', undefined)]]);
  assert.equal(never!.met, undefined, 'judged in none: not judged');
});

test('targets keep the order in which their names first appear', () => {
  const out = targetsOverRepetitions([[t('b', true)], [t('a', true), t('b', true)], [t('c', false)]]);
  assert.deepEqual(out.map((r) => r.name), ['b', 'a', 'c']);
});

test('the median of each ratio over the repetitions that have it', () => {
  assert.deepEqual(medianRatios([{ a: 0.3, b: 2 }, { a: 0.1, b: 4 }, { a: 0.2 }]), { a: 0.2, b: 3 });
  assert.deepEqual(medianRatios([{ a: Number.NaN }, { a: 5 }]), { a: 5 }, 'a NaN is not a figure');
  assert.deepEqual(medianRatios([]), {});
});

test('the printed verdicts name the count and every repetition\'s detail', () => {
  const lines = repeatedTargetLines(targetsOverRepetitions([[t('sdk', true, 'one')], [t('sdk', false, 'two')], [t('sdk', true, 'three')]]), 3);
  assert.match(lines[0]!, /^targets over 3 repetitions/);
  assert.equal(lines[1], '  [MET] sdk: met in 2 of 3');
  assert.deepEqual(lines.slice(2), ['      1: one', '      2: two', '      3: three']);
});
