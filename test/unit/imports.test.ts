/**
 * The import graph of src/: no cycles anywhere (type-only imports included), and the protocol core
 * reaches nothing with I/O (no node:*, ws or rocksdb; nothing from the shell, the transport, the
 * storage implementations, the simulator or the CLI).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const SRC = join(ROOT, 'src');

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...sources(path));
    else if (name.endsWith('.ts')) out.push(path);
  }
  return out;
}

/** Module specifiers of the static imports and re-exports of a file. */
function specifiers(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(/^(?:import|export)\b[^'"]*?from\s+'([^']+)'/gm)].map((m) => m[1]!);
}

const files = sources(SRC);
const graph = new Map<string, string[]>();
for (const f of files) {
  graph.set(
    f,
    specifiers(f)
      .filter((s) => s.startsWith('.'))
      .map((s) => resolve(dirname(f), s)),
  );
}

test('no import cycles in src/', () => {
  const state = new Map<string, 'open' | 'done'>();
  const cycles: string[] = [];
  const visit = (node: string, stack: string[]): void => {
    state.set(node, 'open');
    stack.push(node);
    for (const dep of graph.get(node) ?? []) {
      if (state.get(dep) === 'open') cycles.push([...stack.slice(stack.indexOf(dep)), dep].map((p) => relative(ROOT, p)).join(' -> '));
      else if (state.get(dep) === undefined && graph.has(dep)) visit(dep, stack);
    }
    stack.pop();
    state.set(node, 'done');
  };
  for (const f of files) if (state.get(f) === undefined) visit(f, []);
  assert.deepEqual(cycles, []);
  assert.ok(files.length > 50, 'the walk found the sources');
});

test('src/core imports nothing with I/O and nothing from the shell, transport, storage implementations, simulator or CLI', () => {
  const bad: string[] = [];
  for (const f of files.filter((p) => p.startsWith(join(SRC, 'core') + '/'))) {
    for (const s of specifiers(f)) {
      const target = s.startsWith('.') ? relative(SRC, resolve(dirname(f), s)) : s;
      const forbidden =
        s.startsWith('node:') ||
        ['ws', 'rocksdb', 'fs', 'net', 'http'].includes(s) ||
        /^(node|transport|sim|cli|client|crypto)\//.test(target) ||
        /^storage\/(?!types\.ts$)/.test(target);
      if (forbidden) bad.push(`${relative(ROOT, f)} imports ${s}`);
    }
  }
  assert.deepEqual(bad, []);
});

test('imports point inward: src/core imports only src/core and pure packages (no codec, app or storage module)', () => {
  const outward: string[] = [];
  const packages = new Set<string>();
  for (const f of files.filter((p) => p.startsWith(join(SRC, 'core') + '/'))) {
    for (const s of specifiers(f)) {
      if (!s.startsWith('.')) {
        packages.add(s);
        continue;
      }
      const target = relative(SRC, resolve(dirname(f), s));
      if (!target.startsWith('core/')) outward.push(`${relative(ROOT, f)} imports ${s}`);
    }
  }
  assert.deepEqual(outward, []);
  // The canonical encoding (cbor-x) and hashing are the only packages the protocol itself needs.
  assert.deepEqual([...packages].sort().filter((p) => !/^cbor-x(\/encode)?$/.test(p) && !p.startsWith('@noble/')), []);
});
