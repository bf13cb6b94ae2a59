/**
 * A short nemesis run in `npm test`: 4 real replica processes (network namespaces where the test
 * can make them, else loopback addresses), 8 concurrent clients, kill -9 / pause / partition on a
 * seeded schedule; the history must be linearizable, the replicas' state digests must agree at a
 * common checkpoint, no replica may crash, and every namespace and process is gone afterwards.
 * Long runs: `npm run nemesis -- --time 600` (README, "Nemesis").
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { runNemesis } from '../../src/nemesis/main.ts';

test('nemesis: 45 s of kill, pause and partition against 4 replicas; linearizable, digests agree', async () => {
  const out = mkdtempSync(join(tmpdir(), 'pbft-nemesis-test-'));
  const lines: string[] = [];
  try {
    const report = await runNemesis(
      { replicas: 4, time: 45, seed: 7, nemesis: ['kill', 'pause', 'partition'], clients: 8, keys: 4, interval: 4, out, beyondF: false, loopback: false, quiet: true },
      (l) => lines.push(l),
    );
    const text = readFileSync(join(out, 'report.txt'), 'utf8');
    assert.equal(report.anomalies, 0, text);
    assert.ok(report.faults.length >= 3, `at least 3 faults injected:\n${text}`);
    assert.ok(report.outcomes.ok > 500, `the service answered through the faults:\n${text}`);
    assert.equal(new Set(report.digests.map((d) => `${d.seq}:${d.digest}`)).size, 1, `digests agree:\n${text}`);
    assert.ok(report.digests.every((d) => d.seq > 0));
    assert.deepEqual(report.crashed, [], text);
    const history = readFileSync(join(out, 'history.jsonl'), 'utf8').trim().split('\n');
    assert.equal(history.length, report.outcomes.ok + report.outcomes.fail + report.outcomes.unknown);
    process.stderr.write(text);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
  // Nothing left behind: no namespace of ours, no replica process of the run.
  const ns = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout ?? '';
  assert.ok(!/^pbft-[0-9a-f]{4}-\d/m.test(ns), `namespaces left: ${ns}`);
  const ps = spawnSync('pgrep', ['-f', 'pbft-nemesis-'], { encoding: 'utf8' }).stdout ?? '';
  assert.equal(ps.trim(), '', 'no replica process left');
});

test('nemesis with a lying replica: the SDK filters it (0 anomalies); the negative control first-reply is caught by the checker', async () => {
  const base = { replicas: 4, time: 12, seed: 3, nemesis: [] as [], clients: 6, keys: 3, interval: 5, beyondF: false, loopback: false, quiet: true };
  for (const negative of [undefined, 'first-reply'] as const) {
    const out = mkdtempSync(join(tmpdir(), 'pbft-nemesis-liar-'));
    try {
      const report = await runNemesis({ ...base, out, liar: true, ...(negative ? { negative } : {}) }, () => undefined);
      const text = readFileSync(join(out, 'report.txt'), 'utf8');
      assert.ok(report.outcomes.ok > 100, text);
      if (negative === undefined) {
        assert.equal(report.anomalies, 0, `f+1 matching replies filter the liar:\n${text}`);
      } else {
        assert.equal(report.anomalies, 1, `the checker must catch a client that takes the first reply:\n${text}`);
        assert.match(report.violation ?? '', /forged by replica 3/, 'the failing window shows the forged read');
      }
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  }
});
