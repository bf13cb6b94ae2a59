/**
 * Runs every scenario script in test/scenarios/testdata/ (except the swarm seeds, see seeds.test.ts)
 * against its golden output. UPDATE_GOLDEN=1 rewrites the golden files instead (see runner.ts).
 */
import assert from 'node:assert/strict';
import { basename } from 'node:path';
import { test } from 'node:test';
import { goldenFiles, runGoldenFile } from './runner.ts';

const files = goldenFiles().filter((f) => !basename(f).startsWith('seed-'));

test('there are scenario scripts', () => {
  assert.ok(files.length >= 10, `only ${files.length} scripts in test/scenarios/testdata`);
});

for (const file of files) {
  test(basename(file, '.txt'), () => {
    const outcome = runGoldenFile(file);
    if (!outcome.ok) assert.fail(outcome.message);
  });
}
