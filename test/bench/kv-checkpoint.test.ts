/**
 * Smoke run of bench/kv-checkpoint.ts (one KvStore: a bulk load, then single puts with checkpoints),
 * with few keys: it completes and prints every figure, and `--uncounted-mib` chooses where merged
 * partitions go (PartitionBytes in src/app/kv.ts): with 0 none is allocated uncounted. No timing
 * assertions.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import test from 'node:test';
import { findJemalloc, mallocEnv } from '../../src/node/malloc.ts';

const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));

function run(extra: string[], env: NodeJS.ProcessEnv = process.env): string {
  return execFileSync(
    process.execPath,
    ['--import', 'tsx', join(REPO_ROOT, 'bench', 'kv-checkpoint.ts'), '--keys', '20000', '--every', '8192', '--steady', '2000', '--steady-every', '200', '--partitions', '64', ...extra],
    { cwd: REPO_ROOT, encoding: 'utf8', timeout: 60_000, env },
  );
}

const uncounted = (out: string): number => Number(/allocated uncounted by V8 (\d+) MiB/.exec(out)?.[1] ?? NaN);

test('kv-checkpoint prints the load, the steady phase, its collections and where merged partitions went', () => {
  const out = run(['--uncounted-mib', '4']);
  assert.match(out, /^20,000 keys in put-many of 512, a checkpoint every 8,192 keys/m);
  assert.match(out, /at 20,000 keys: \d+ partitions changed/);
  assert.match(out, /then 2,000 single puts, a checkpoint every 200: per put execute [\d.]+ us, merge [\d.]+ us, leaf digests [\d.]+ us/);
  assert.match(out, /the steady phase: [\d.]+ us of wall time per put, [\d.]+ us of CPU per put over every thread of the process, [\d.]+ minor page faults per put; garbage collections \d+ minor \(\d+ ms\), \d+ major \(\d+ ms\)/);
  assert.match(out, /counted \d+ MiB \(since the start\); RSS now \d+ MiB, at most \d+ MiB/);
  assert.ok(uncounted(out) >= 1, out);
  assert.equal(uncounted(run(['--uncounted-mib', '0'])), 0);
});

test('kv-checkpoint names the malloc it runs on', () => {
  assert.match(run(['--uncounted-mib', '2'], mallocEnv(process.env, 'system').env), /^malloc: system; merged partitions on shared memory: up to 2 MiB per cycle \(--uncounted-mib\)$/m);
  if (findJemalloc() === undefined) return; // not installed here: .ci/run installs it
  assert.match(run([], mallocEnv(process.env, 'jemalloc').env), /^malloc: jemalloc; merged partitions on shared memory: the store's default budget$/m);
});

test('kv-checkpoint refuses a bad option value with one line', () => {
  assert.throws(
    () => execFileSync(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'bench', 'kv-checkpoint.ts'), '--uncounted-mib', 'lots'], { cwd: REPO_ROOT, encoding: 'utf8', stdio: 'pipe' }),
    (e: { status?: number; stderr?: string }) => e.status !== 0 && /uncounted-mib/.test(e.stderr ?? ''),
  );
});
