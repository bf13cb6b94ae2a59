/**
 * The scenario runner itself (test/scenarios/runner.ts, datadriven.ts): a golden output that no
 * longer matches fails with a readable unified diff, and the rewrite mode fixes the file.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { parseArgs, parseFile, unifiedDiff } from './datadriven.ts';
import { runGoldenFile, runScript } from './runner.ts';

const GOOD = `# A request reaches the primary, which proposes it.
cluster
----
4 replicas (f=1), 4 clients; checkpoint every 4, window 8, view-change timeout 10 ticks

request c0 put a 1
----
c0->0 request c0:1 put a 1

deliver
----
c0->0 request c0:1 put a 1
  0->1,2,3 preprepare v=0 s=1 <c0:1> [put a 1]

status r=0
----
0: view=0 primary=0 executed=0 stable=0 checkpoint=0 log=1 waiting=1
`;

/** The same script with a deliberately wrong expectation: sequence number 2 instead of 1. */
const WRONG = GOOD.replace('  0->1,2,3 preprepare v=0 s=1 <c0:1> [put a 1]', '  0->1,2,3 preprepare v=0 s=2 <c0:1> [put a 1]');

describe('datadriven format', () => {
  test('arguments: bare words, key=value, key=a,b and key=(a,b)', () => {
    assert.deepEqual(parseArgs('c0 put a 1 to=1,2 type=(prepare,commit) s=3'), [
      { key: 'c0', vals: [] },
      { key: 'put', vals: [] },
      { key: 'a', vals: [] },
      { key: '1', vals: [] },
      { key: 'to', vals: ['1', '2'] },
      { key: 'type', vals: ['prepare', 'commit'] },
      { key: 's', vals: ['3'] },
    ]);
  });

  test('a file is directives with their expected output; comments and blank lines between them', () => {
    const f = parseFile(GOOD);
    assert.deepEqual(
      f.items.map((i) => [i.directive.line, i.directive.cmd, i.directive.expected.length]),
      [
        [2, 'cluster', 1],
        [6, 'request', 1],
        [10, 'deliver', 2],
        [15, 'status', 1],
      ],
    );
    assert.deepEqual(f.items[0]!.before, ['# A request reaches the primary, which proposes it.']);
  });

  test('a missing separator is reported with the line', () => {
    assert.throws(() => parseFile('cluster\nstatus\n', 'x.txt'), /x\.txt:1: expected '----' after 'cluster'/);
  });
});

describe('the runner', () => {
  test('a script whose output matches passes', () => {
    const o = runScript(GOOD, 'good.txt');
    assert.equal(o.ok, true, o.message);
    assert.equal(o.actual, GOOD);
  });

  test('a changed golden output fails with a unified diff: expected against actual, with context', () => {
    const o = runScript(WRONG, 'wrong.txt');
    assert.equal(o.ok, false);
    // Where: the file, the line and the step whose output differs.
    assert.match(o.message, /^wrong\.txt:10: output of 'deliver' differs from the golden file/);
    assert.match(o.message, /UPDATE_GOLDEN=1/);
    // What: a unified diff, the hunk naming the step, the wrong line removed and the actual one added,
    // with unchanged lines around them.
    assert.ok(o.message.includes('--- wrong.txt (expected)\n+++ wrong.txt (actual)\n'), o.message);
    assert.ok(o.message.includes('@@ -10,7 +10,7 @@ deliver\n'), o.message);
    assert.ok(o.message.includes('\n-  0->1,2,3 preprepare v=0 s=2 <c0:1> [put a 1]\n+  0->1,2,3 preprepare v=0 s=1 <c0:1> [put a 1]\n'), o.message);
    assert.ok(o.message.includes('\n c0->0 request c0:1 put a 1\n'), 'context lines start with a space');
    assert.ok(o.message.includes('\n status r=0\n'), 'context after the change');
    // As the scenario test reports it: an assertion error carrying the diff.
    assert.throws(
      () => {
        if (!o.ok) assert.fail(o.message);
      },
      (err: Error) => err.message.includes('+  0->1,2,3 preprepare v=0 s=1') && err.message.includes('-  0->1,2,3 preprepare v=0 s=2'),
    );
  });

  test('missing and extra output lines show as removed and added lines', () => {
    const extra = GOOD.replace('0: view=0 primary=0 executed=0 stable=0 checkpoint=0 log=1 waiting=1\n', '0: view=0 primary=0 executed=0 stable=0 checkpoint=0 log=1 waiting=1\n1: an extra line\n');
    const o = runScript(extra, 'extra.txt');
    assert.equal(o.ok, false);
    assert.ok(o.diff.includes('\n-1: an extra line'), o.diff);
    const missing = GOOD.replace('  0->1,2,3 preprepare v=0 s=1 <c0:1> [put a 1]\n', '');
    const m = runScript(missing, 'missing.txt');
    assert.ok(m.diff.includes('\n+  0->1,2,3 preprepare v=0 s=1 <c0:1> [put a 1]'), m.diff);
  });

  test('an unknown step or a bad argument is output (error: ...), so a script can show it', () => {
    const o = runScript('cluster\n----\n\nfrobnicate\n----\n\ndeliver to=9\n----\n', 'errors.txt');
    assert.equal(o.ok, false);
    assert.ok(o.actual.includes("frobnicate\n----\nerror: unknown command 'frobnicate'\n"), o.actual);
    assert.ok(o.actual.includes("deliver to=9\n----\nerror: to: no replica '9'\n"), o.actual);
  });

  test('rewrite mode (UPDATE_GOLDEN=1 or --rewrite) replaces the expected output in the file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'pbft-scenario-'));
    try {
      const path = join(dir, 'x.txt');
      writeFileSync(path, WRONG);
      assert.equal(runGoldenFile(path, false).ok, false);
      assert.equal(readFileSync(path, 'utf8'), WRONG, 'without rewrite the file is left alone');
      assert.equal(runGoldenFile(path, true).ok, true);
      assert.equal(readFileSync(path, 'utf8'), GOOD, 'comments kept, outputs replaced');
      assert.equal(runGoldenFile(path, false).ok, true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('unifiedDiff: identical texts give nothing; distant changes give separate hunks', () => {
    assert.equal(unifiedDiff('a\nb', 'a\nb'), '');
    const a = Array.from({ length: 20 }, (_, i) => `line ${i}`);
    const b = a.slice();
    b[2] = 'changed 2';
    b[15] = 'changed 15';
    const d = unifiedDiff(a.join('\n'), b.join('\n'));
    assert.equal(d.split('\n').filter((l) => l.startsWith('@@')).length, 2, d);
    assert.ok(d.includes('@@ -1,6 +1,6 @@'), d);
  });
});
