#!/usr/bin/env node
// Runs the test files (*.test.ts) with node:test through tsx, one process per file, and reports
// every file: a failing file never stops or hides the others.
//
// Usage: node scripts/run-tests.mjs [--long] [--jobs N] [substring ...]
//   (no --long)  every test/**/*.test.ts outside test/long/ (what `npm test` runs)
//   --long       only test/long/**/*.test.ts: the long seed ranges (`npm run test:long`)
//   substring    only files whose path contains one of them
//   --jobs N     files run at once (default 2: this project's CI machine has 2 cores)
//
// Scheduling: files run N at a time, but at most one file of test/integration/ at a time (they start
// replica processes, and several clusters at once would only compete for the same cores); the
// integration files are started first, one after the other, while the other slots take the
// simulator and unit files, longest first by the hint list below. Each file's output is printed in
// one piece when it ends, with its result and time; a summary of every file ends the run. A file is
// killed (its whole process group: the replicas it started too) after PER_FILE_TIMEOUT_MS.
import { readdirSync, statSync, mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { tmpdir } from 'node:os';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = join(fileURLToPath(new URL('.', import.meta.url)), '..');
const PER_FILE_TIMEOUT_MS = 15 * 60_000;
/** Files that take longest (seconds on the CI machine), started first so no slot idles at the end. */
const LONG_FIRST = ['swarm', 'network-faults', 'negative-controls', 'membership', 'durability', 'recovery', 'bench'];

const args = process.argv.slice(2);
let long = false;
let jobs = 2;
const filters = [];
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  if (a === '--long') long = true;
  else if (a === '--jobs') {
    jobs = Number(args[++i]);
    if (!Number.isInteger(jobs) || jobs < 1) {
      console.error(`--jobs takes a positive integer, not ${args[i]}`);
      process.exit(2);
    }
  } else if (a === '--help' || a === '-h') {
    console.log('usage: node scripts/run-tests.mjs [--long] [--jobs N] [substring ...]');
    process.exit(0);
  } else if (a.startsWith('--')) {
    console.error(`unknown option ${a}; try --help`);
    process.exit(2);
  } else filters.push(a);
}

function walk(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...walk(path));
    else if (name.endsWith('.test.ts')) out.push(relative(root, path));
  }
  return out;
}

const longDir = join('test', 'long') + sep;
const all = walk(join(root, 'test'))
  .filter((f) => f.startsWith(longDir) === long)
  .filter((f) => filters.length === 0 || filters.some((s) => f.includes(s)));
if (all.length === 0) {
  console.error(`no test files match ${filters.join(' ') || '(all)'}${long ? ' under test/long' : ''}`);
  process.exit(1);
}
const isIntegration = (f) => f.startsWith(join('test', 'integration') + sep);
const rank = (f) => {
  const i = LONG_FIRST.findIndex((s) => f.includes(s));
  return i < 0 ? LONG_FIRST.length : i;
};
const integration = all.filter(isIntegration);
const other = all.filter((f) => !isIntegration(f)).sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));

const reports = mkdtempSync(join(tmpdir(), 'pbft-tests-'));
const reporter = join(root, 'scripts', 'test-summary-reporter.mjs');
const running = new Map(); // file -> child
const results = [];
const started = Date.now();

function runFile(file, index) {
  return new Promise((resolve) => {
    const summaryPath = join(reports, `${index}.jsonl`);
    const t0 = Date.now();
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', '--test-reporter=spec', '--test-reporter-destination=stdout', `--test-reporter=${reporter}`, `--test-reporter-destination=${summaryPath}`, file],
      { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], detached: true, env: { ...process.env, FORCE_COLOR: '0' } },
    );
    running.set(file, child);
    const out = [];
    child.stdout.on('data', (d) => out.push(d));
    child.stderr.on('data', (d) => out.push(d));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child);
    }, PER_FILE_TIMEOUT_MS);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      running.delete(file);
      // Whatever the file left running in its process group (replicas it started) goes with it.
      killGroup(child);
      const seconds = (Date.now() - t0) / 1000;
      let counts = { passed: 0, failed: 0, skipped: 0, todo: 0, failures: [] };
      if (existsSync(summaryPath)) {
        for (const line of readFileSync(summaryPath, 'utf8').split('\n')) {
          if (!line) continue;
          const s = JSON.parse(line);
          for (const k of ['passed', 'failed', 'skipped', 'todo']) counts[k] += s[k];
          counts.failures.push(...s.failures);
        }
      }
      const problems = [];
      if (timedOut) problems.push(`killed after ${PER_FILE_TIMEOUT_MS / 60_000} min`);
      else if (signal) problems.push(`killed by ${signal}`);
      else if (code !== 0 && counts.failed === 0) problems.push(`exit code ${code} (did not load or crashed: see its output)`);
      if (code === 0 && counts.passed === 0 && !signal) problems.push('no test ran');
      const ok = code === 0 && problems.length === 0 && counts.failed === 0;
      const r = { file, ok, seconds, ...counts, problems };
      results.push(r);
      const head = `${ok ? 'PASS' : 'FAIL'} ${file}: ${counts.passed} passed${counts.failed ? `, ${counts.failed} failed` : ''}${counts.skipped ? `, ${counts.skipped} skipped` : ''}${problems.length ? `, ${problems.join(', ')}` : ''} (${seconds.toFixed(1)} s)`;
      process.stdout.write(`\n=== ${head}\n${Buffer.concat(out).toString()}`);
      resolve(r);
    });
  });
}

function killGroup(child) {
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    for (const child of running.values()) killGroup(child);
    rmSync(reports, { recursive: true, force: true });
    console.error(`\ntests interrupted by ${sig}`);
    process.exit(130);
  });
}

let next = 0;
let integrationRunning = false;
await new Promise((done) => {
  const fill = () => {
    while (running.size < jobs) {
      let file;
      if (!integrationRunning && integration.length > 0) {
        file = integration.shift();
        integrationRunning = true;
      } else if (other.length > 0) file = other.shift();
      else break;
      const integ = isIntegration(file);
      runFile(file, next++).then(() => {
        if (integ) integrationRunning = false;
        fill();
      });
    }
    if (running.size === 0 && integration.length === 0 && other.length === 0) done();
  };
  fill();
});
rmSync(reports, { recursive: true, force: true });

results.sort((a, b) => a.file.localeCompare(b.file));
const failed = results.filter((r) => !r.ok);
const tests = results.reduce((s, r) => s + r.passed + r.failed, 0);
const wall = (Date.now() - started) / 1000;
console.log('\n=== every file (seconds, tests passed/failed)');
for (const r of results) console.log(`${r.ok ? 'PASS' : 'FAIL'} ${r.seconds.toFixed(1).padStart(6)} s  ${String(r.passed).padStart(4)}/${r.failed}  ${r.file}`);
if (failed.length > 0) {
  console.log(`\n=== ${failed.length} file(s) FAILED`);
  for (const r of failed) console.log(`${r.file}: ${[...r.failures.map((n) => `failed: ${n}`), ...r.problems].join('; ')}`);
}
console.error(`\ntests: ${results.length} files, ${tests} tests, ${wall.toFixed(1)} s wall, ${failed.length === 0 ? 'passed' : `FAILED (${failed.length} file(s))`}`);
process.exit(failed.length === 0 ? 0 : 1);
