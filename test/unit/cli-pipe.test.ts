/**
 * `pbft ... | head -1`: a reader that stops reading ends the output quietly, as with any Unix tool,
 * instead of an EPIPE stack trace on stderr.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const LAUNCHER = fileURLToPath(new URL('../../bin/pbft.mjs', import.meta.url));

test('output into a pipe whose reader is gone ends quietly, without a stack trace', () => {
  const r = spawnSync('sh', ['-c', `"${process.execPath}" "${LAUNCHER}" sim --seeds 3 | head -1`], { encoding: 'utf8', timeout: 60_000 });
  assert.match(r.stdout, /^seeds: 3/);
  assert.equal(r.stderr, '', 'nothing on stderr (no EPIPE stack trace)');
});
