/**
 * Smoke run of bench/alloc-cost.ts (one partition's allocation by kind): it completes with small
 * figures and prints a line per kind, and refuses an unknown kind with one line. No timing assertions.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import test from 'node:test';

const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
const script = join(REPO_ROOT, 'bench', 'alloc-cost.ts');

test('alloc-cost prints faults, CPU, wall time and RSS for each kind', () => {
  const out = execFileSync(process.execPath, ['--import', 'tsx', script, '--size', '64', '--steps', '2000'], { cwd: REPO_ROOT, encoding: 'utf8', timeout: 60_000 });
  assert.match(out, /^malloc: (system|jemalloc|unknown); 65,536 partitions of 64 bytes, 2,000 replacements per kind/m);
  for (const kind of ['shared', 'zeroed', 'uninitialized']) {
    assert.match(out, new RegExp(`^  ${kind} +[\\d.]+ minor page faults, [\\d.]+ us CPU \\(every thread\\), [\\d.]+ us wall per partition; RSS \\d+ MiB$`, 'm'));
  }
});

test('alloc-cost refuses an unknown kind with one line', () => {
  assert.throws(
    () => execFileSync(process.execPath, ['--import', 'tsx', script, '--kinds', 'shared,heap'], { cwd: REPO_ROOT, encoding: 'utf8', stdio: 'pipe' }),
    (e: { status?: number; stderr?: string }) => e.status === 2 && /--kinds takes a comma-separated list of shared, zeroed, uninitialized; got "heap"/.test(e.stderr ?? ''),
  );
});
