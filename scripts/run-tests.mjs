#!/usr/bin/env node
// Runs every test file under test/ (*.test.ts) with node:test through tsx.
// Usage: node scripts/run-tests.mjs [substring ...]   (only files whose path contains one of them)
// Unit, paper and simulator tests run in parallel; integration tests (real processes, ports) run after, one file at a time.
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = join(fileURLToPath(new URL('.', import.meta.url)), '..');
const filters = process.argv.slice(2);

function walk(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...walk(path));
    else if (name.endsWith('.test.ts')) out.push(relative(root, path));
  }
  return out;
}

const all = walk(join(root, 'test')).filter((f) => filters.length === 0 || filters.some((s) => f.includes(s)));
if (all.length === 0) {
  console.error(`no test files match ${filters.join(' ') || '(all)'}`);
  process.exit(1);
}
const integration = all.filter((f) => f.startsWith(join('test', 'integration')));
const fast = all.filter((f) => !integration.includes(f));

function run(files, concurrency) {
  if (files.length === 0) return 0;
  const args = ['--import', 'tsx', '--test', `--test-concurrency=${concurrency}`, ...files];
  const res = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit' });
  return res.status ?? 1;
}

const started = Date.now();
let status = run(fast, 2);
if (status === 0) status = run(integration, 1);
console.error(`\ntests: ${all.length} files, ${((Date.now() - started) / 1000).toFixed(1)} s, ${status === 0 ? 'passed' : 'FAILED'}`);
process.exit(status);
