/**
 * bench/profile-top.ts on a hand-made V8 CPU profile whose answer is known: self time, the measured
 * window, --under (inclusive time of a function and the functions its samples were in) and
 * --window FILE, and one-line errors for a bad --window or an empty --under.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { topSelf, under } from '../../bench/profile-top.ts';

const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
const frame = (functionName: string) => ({ functionName, url: '', lineNumber: 0, columnNumber: 0 });

/**
 * root -> checkpoint -> merge, root -> checkpoint -> hash, root -> verify, root -> (idle); samples 1 ms
 * apart from t = 1,000 us: merge x3, hash x1, verify x2, idle x2, then (after t = 9,000) merge x2.
 */
function writeProfile(dir: string): string {
  const nodes = [
    { id: 1, callFrame: frame('(root)'), children: [2, 5, 6] },
    { id: 2, callFrame: frame('checkpoint'), children: [3, 4] },
    { id: 3, callFrame: frame('merge') },
    { id: 4, callFrame: frame('hash') },
    { id: 5, callFrame: frame('verify') },
    { id: 6, callFrame: frame('(idle)') },
  ];
  const samples = [3, 3, 3, 4, 5, 5, 6, 6, 3, 3];
  const path = join(dir, 'CPU.test.cpuprofile');
  writeFileSync(path, JSON.stringify({ nodes, startTime: 0, endTime: 11_000, samples, timeDeltas: samples.map(() => 1_000) }));
  return path;
}

test('self time, --under and the window on a profile whose answer is known', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pbft-profile-top-'));
  try {
    const file = writeProfile(dir);
    const whole = topSelf([file]);
    assert.equal(whole.totalMs, 10);
    assert.deepEqual(whole.entries.map((e) => [e.name, e.selfMs]), [['merge', 5], ['verify', 2], ['(idle)', 2], ['hash', 1]]);

    const [cp, ver] = under([file], ['checkpoint', 'verify']);
    assert.equal(cp!.ms, 6, 'merge x5 and hash x1 have checkpoint on their stack');
    assert.equal(cp!.busyMs, 8, 'idle samples are not busy');
    assert.deepEqual(cp!.leaves.map((e) => [e.name, e.selfMs]), [['merge', 5], ['hash', 1]]);
    assert.equal(ver!.ms, 2);
    assert.deepEqual(under([file], ['absent'])[0]!.ms, 0);

    // The window [1,000, 8,000] us holds the first eight samples (t = 1,000 .. 8,000).
    const window = { run: 'test', startUs: 1_000, endUs: 8_000, requests: 4 };
    assert.equal(under([file], ['checkpoint'], window)[0]!.ms, 4);
    assert.equal(topSelf([file], { window }).totalMs, 8);

    // The CLI: --window from another directory, --under with per-request figures.
    const other = join(dir, 'run-b');
    mkdirSync(other);
    writeFileSync(join(other, 'window.json'), JSON.stringify(window));
    const cli = (args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'bench', 'profile-top.ts'), ...args], { cwd: REPO_ROOT, encoding: 'utf8' });
    const r = cli(['--window', join(other, 'window.json'), '--under', 'checkpoint', file]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /in the measured window of run test \(0\.0 s, 4 requests: 1\.500 ms not idle per request\)/);
    assert.match(r.stdout, /under checkpoint: 4 ms = 66\.7% of the busy samples, 1000 us per request; the functions they were in:\n +3 +75\.0 +merge\n +1 +25\.0 +hash\n/);

    const bad = cli(['--window', join(dir, 'nothing.json'), file]);
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /^profile-top: --window \S+nothing\.json is not a window\.json the bench wrote \(DIR\/<run>\/window\.json\)\n$/);
    const empty = cli(['--under', '', file]);
    assert.equal(empty.status, 1);
    assert.equal(empty.stderr, 'profile-top: --under takes one or more function names, comma-separated\n');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
