/**
 * setHeapGrowingPercent (src/node/heap.ts): a replica process sets V8's --heap-growing-percent. The
 * check runs in child processes (the flag is process-wide): a heap that keeps about 40 MiB live while
 * objects reach the old generation and die peaks far lower with the default than with V8's choice.
 * Bad values are refused before anything is set. The policy sets the percent while what is live after
 * a major collection is small and gives the choice back to V8 above HEAP_POLICY_LARGE_BYTES, until it
 * is below HEAP_POLICY_SMALL_BYTES again.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  HEAP_GROWING_PERCENT_DEFAULT,
  HEAP_GROWING_PERCENT_MAX,
  HEAP_POLICY_LARGE_BYTES,
  HEAP_POLICY_SMALL_BYTES,
  heapPolicyPercent,
  setHeapGrowingPercent,
  startHeapPolicy,
} from '../../src/node/heap.ts';

const HEAP = fileURLToPath(new URL('../../src/node/heap.ts', import.meta.url));

/**
 * A child process that sets the percent through startHeapPolicy, keeps about 40 MiB live and then
 * allocates objects that live long enough to reach the old generation before they die: the largest
 * heap in use it saw, MiB.
 */
function peakHeapMib(percent: number): number {
  const dir = mkdtempSync(join(tmpdir(), 'pbft-heap-'));
  try {
    const script = join(dir, 'child.mjs');
    writeFileSync(
      script,
      `import { startHeapPolicy } from ${JSON.stringify(HEAP)};
      startHeapPolicy(${percent}).stop();
      const live = [];
      for (let i = 0; i < 300_000; i++) live.push({ a: i, b: 'x' + i, c: [i, i] });
      const ring = [];
      let peak = 0;
      for (let round = 0; round < 1500; round++) {
        const batch = new Array(2000);
        for (let i = 0; i < 2000; i++) batch[i] = { a: round, b: [i, round, i], c: 'y' + i };
        ring.push(batch);
        if (ring.length > 40) ring.shift();
        const used = process.memoryUsage().heapUsed;
        if (used > peak) peak = used;
      }
      console.log(JSON.stringify({ peakMib: peak / 2 ** 20, live: live.length }));
      `,
    );
    const r = spawnSync(process.execPath, ['--import', 'tsx', script], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, r.stderr);
    return (JSON.parse(r.stdout.trim().split('\n').pop()!) as { peakMib: number }).peakMib;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('bad values are refused before anything is set', () => {
  for (const bad of [-1, 1.5, HEAP_GROWING_PERCENT_MAX + 1, Number.NaN]) {
    assert.throws(() => setHeapGrowingPercent(bad), /heap growing percent must be an integer from 0 to 300/);
  }
  assert.equal(HEAP_GROWING_PERCENT_DEFAULT, 100);
});

test('the setting bounds the heap between major collections (child processes: the default 100 against V8 deciding)', () => {
  const bounded = peakHeapMib(HEAP_GROWING_PERCENT_DEFAULT);
  const free = peakHeapMib(0);
  // Measured: 112 against 184-208 MiB; with 20, 73-76 MiB.
  assert.ok(bounded < 0.8 * free, `with ${HEAP_GROWING_PERCENT_DEFAULT} the heap peaked at ${bounded.toFixed(0)} MiB, with V8 deciding at ${free.toFixed(0)} MiB`);
});

test('the policy: the percent while little is live after a major collection, V8 above the large mark, back below the small mark', () => {
  const MiB = 2 ** 20;
  assert.equal(HEAP_POLICY_LARGE_BYTES, 128 * MiB);
  assert.equal(HEAP_POLICY_SMALL_BYTES, 96 * MiB);
  // The rule itself.
  assert.equal(heapPolicyPercent(100, 60 * MiB, 100), 100);
  assert.equal(heapPolicyPercent(100, 110 * MiB, 100), 100, 'between the marks: stays');
  assert.equal(heapPolicyPercent(100, 200 * MiB, 100), 0, 'above the large mark: V8 decides');
  assert.equal(heapPolicyPercent(100, 110 * MiB, 0), 0, 'between the marks: stays with V8');
  assert.equal(heapPolicyPercent(100, 80 * MiB, 0), 100, 'below the small mark: the percent again');
  assert.equal(heapPolicyPercent(0, 10 * MiB, 0), 0, '0: V8 always');

  // The running policy, with the collections, the heap and the flag given.
  let used = 50 * MiB;
  const set: number[] = [];
  let gc: (() => void) | undefined;
  let stopped = false;
  const watch = {
    afterMajorGc: (cb: () => void) => {
      gc = cb;
      return () => {
        stopped = true;
      };
    },
    usedBytes: () => used,
    set: (x: number) => set.push(x),
  };
  const p = startHeapPolicy(100, watch);
  assert.deepEqual(set, [100], 'applied at the start');
  gc!();
  assert.deepEqual(set, [100], 'nothing changed: not set again');
  used = 300 * MiB;
  gc!();
  assert.equal(p.current(), 0);
  used = 110 * MiB;
  gc!();
  assert.equal(p.current(), 0);
  used = 90 * MiB;
  gc!();
  assert.equal(p.current(), 100);
  assert.deepEqual(set, [100, 0, 100]);
  p.stop();
  assert.ok(stopped, 'stop() stops watching');
  // 0: V8 decides, and nothing is watched.
  const none: number[] = [];
  let watched = false;
  startHeapPolicy(0, { ...watch, afterMajorGc: () => ((watched = true), () => {}), set: (x) => none.push(x) }).stop();
  assert.deepEqual(none, [0]);
  assert.equal(watched, false);
  assert.throws(() => startHeapPolicy(301), /from 0 to 300/);
});

test('the process watch calls back after a major collection, and the percent in force is reported (global.gc in a child process)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pbft-heap-'));
  try {
    const script = join(dir, 'child.mjs');
    writeFileSync(
      script,
      `import { PROCESS_HEAP, heapGrowingPercentInForce, startHeapPolicy } from ${JSON.stringify(HEAP)};
      const before = heapGrowingPercentInForce() ?? null;
      const policy = startHeapPolicy(100);
      const inForce = heapGrowingPercentInForce();
      let calls = 0;
      const stop = PROCESS_HEAP.afterMajorGc(() => calls++);
      globalThis.gc();
      // The collection's entry reaches the watch a few event-loop phases later: wait for it (up to
      // 10 s on a loaded machine), then report; a watch that never fires reports 0 calls.
      const started = Date.now();
      const report = () => {
        if (calls === 0 && Date.now() - started < 10_000) return void setTimeout(report, 10);
        stop(); policy.stop(); console.log(JSON.stringify({ calls, used: PROCESS_HEAP.usedBytes(), before, inForce }));
      };
      setTimeout(report, 10);
      `,
    );
    const r = spawnSync(process.execPath, ['--expose-gc', '--import', 'tsx', script], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as { calls: number; used: number; before: number | null; inForce: number };
    assert.ok(out.calls >= 1, `called ${out.calls} times`);
    assert.ok(out.used > 0);
    assert.equal(out.before, null, 'no policy: nothing reported');
    assert.equal(out.inForce, 100, 'the percent in force, for /status');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
