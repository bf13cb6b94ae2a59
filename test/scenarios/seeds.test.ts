/**
 * The regression seeds of test/sim/regression-seeds.test.ts as readable scripts: each
 * testdata/seed-<N>.txt runs the swarm seed with a recorder (src/sim/trace.ts) and holds its timeline
 * (faults, view changes, checkpoints, state transfers) and end state (every replica's view, executed
 * sequence number, stable checkpoint, and the checkers' verdict). UPDATE_GOLDEN=1 rewrites them.
 */
import assert from 'node:assert/strict';
import { basename } from 'node:path';
import { test } from 'node:test';
import { goldenFiles, runGoldenFile } from './runner.ts';

const SEEDS = [54, 57, 71, 90, 103, 110, 147, 279, 6341];

test('every regression seed has a script', () => {
  const have = goldenFiles('seed-').map((f) => basename(f));
  for (const s of SEEDS) assert.ok(have.includes(`seed-${s}.txt`), `test/scenarios/testdata/seed-${s}.txt is missing`);
});

for (const file of goldenFiles('seed-')) {
  test(basename(file, '.txt'), () => {
    const outcome = runGoldenFile(file);
    if (!outcome.ok) assert.fail(outcome.message);
  });
}
