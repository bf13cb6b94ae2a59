/**
 * The SDK (the package's main entry, src/client/index.ts) must load where there is no Node:
 * no module in its STATIC import graph may import a `node:*` module or a Node built-in.
 * Dynamic `import()` (node:crypto on Node, the keyring loader for file paths, `ws`) is allowed.
 * The browser entry (src/client/browser.ts) is stricter: no node-only module through import() either.
 *
 * The graph is read with the TypeScript parser: `import ... from`, `export ... from` and bare
 * `import '...'` statements are edges, except `import type` / `export type` (erased). Under
 * verbatimModuleSyntax an `import { type X } from` statement is kept (as `import {} from`), so it
 * is an edge too.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const BUILTINS = new Set(builtinModules);

/** Module specifiers imported by one source file: statically, or also through import() with `dynamic`. */
function staticImports(file: string, dynamic = false): string[] {
  const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.ES2022, false, ts.ScriptKind.TS);
  const out: string[] = [];
  for (const stmt of source.statements) {
    if (ts.isImportDeclaration(stmt)) {
      if (stmt.importClause?.isTypeOnly === true) continue;
      if (ts.isStringLiteral(stmt.moduleSpecifier)) out.push(stmt.moduleSpecifier.text);
    } else if (ts.isExportDeclaration(stmt)) {
      if (stmt.isTypeOnly || stmt.moduleSpecifier === undefined) continue;
      if (ts.isStringLiteral(stmt.moduleSpecifier)) out.push(stmt.moduleSpecifier.text);
    } else if (ts.isImportEqualsDeclaration(stmt) && !stmt.isTypeOnly && ts.isExternalModuleReference(stmt.moduleReference)) {
      const expr = stmt.moduleReference.expression;
      if (ts.isStringLiteral(expr)) out.push(expr.text);
    }
  }
  if (dynamic) {
    const visit = (node: ts.Node): void => {
      if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
        const arg = node.arguments[0];
        out.push(arg !== undefined && ts.isStringLiteralLike(arg) ? arg.text : '(computed specifier)');
      }
      ts.forEachChild(node, visit);
    };
    visit(source);
  }
  return out;
}

function isNodeOnly(specifier: string): boolean {
  return specifier.startsWith('node:') || BUILTINS.has(specifier) || BUILTINS.has(specifier.split('/')[0]!);
}

interface Finding {
  module: string;
  imports: string;
  via: string[];
}

/** Walks the static graph from `entry` through project files; reports node-only imports with their path. */
function nodeOnlyImports(entry: string, dynamic = false): { findings: Finding[]; visited: string[] } {
  const findings: Finding[] = [];
  const seen = new Map<string, string[]>([[entry, []]]);
  const queue = [entry];
  while (queue.length > 0) {
    const file = queue.shift()!;
    const path = seen.get(file)!;
    for (const spec of staticImports(file, dynamic)) {
      if (isNodeOnly(spec) || spec === '(computed specifier)') {
        findings.push({ module: relative(ROOT, file), imports: spec, via: path });
        continue;
      }
      if (!spec.startsWith('.')) continue; // a package (cbor-x, @noble/*): not part of this check
      const target = resolve(dirname(file), spec);
      if (!seen.has(target)) {
        seen.set(target, [...path, relative(ROOT, file)]);
        queue.push(target);
      }
    }
  }
  return { findings, visited: [...seen.keys()].map((f) => relative(ROOT, f)) };
}

test('the static import graph of src/client/index.ts imports no node:* module', () => {
  const { findings, visited } = nodeOnlyImports(resolve(ROOT, 'src/client/index.ts'));
  assert.ok(visited.includes('src/client/client.ts') && visited.includes('src/transport/client-transport.ts'), 'the walk reaches the SDK modules');
  assert.deepEqual(
    findings.map((f) => `${f.module} imports ${f.imports} (via ${f.via.join(' -> ') || 'entry'})`),
    [],
  );
});

test('the browser entry src/client/browser.ts reaches no node:* module, not even through import()', () => {
  // A bundler follows import() too: esbuild --bundle --platform=browser fails on a node:* import anywhere in the graph.
  const { findings, visited } = nodeOnlyImports(resolve(ROOT, 'src/client/browser.ts'), true);
  assert.ok(visited.includes('src/client/pbft-client.ts') && visited.includes('src/client/config.ts'), 'the walk reaches the SDK modules');
  assert.ok(!visited.includes('src/client/client.ts'), 'the Node flavour of the SDK is not part of it');
  assert.deepEqual(
    findings.map((f) => `${f.module} imports ${f.imports} (via ${f.via.join(' -> ') || 'entry'})`),
    [],
  );
});

test('the checker itself finds node-only imports (it would catch a regression)', () => {
  // The replica shell imports node:zlib directly and node:crypto through src/crypto/node.ts.
  const { findings } = nodeOnlyImports(resolve(ROOT, 'src/node/replica-node.ts'));
  const imported = new Set(findings.map((f) => f.imports));
  assert.ok(imported.has('node:zlib'), 'direct node: import found');
  assert.ok(imported.has('node:crypto'), 'transitive node: import found');
  // A dynamic import() is an edge only for the browser check: client.ts (the Node entry's flavour) reaches keyring.ts (node:fs) only dynamically.
  assert.ok(!staticImports(resolve(ROOT, 'src/client/client.ts')).some((s) => s.includes('keyring')));
  assert.match(readFileSync(resolve(ROOT, 'src/client/client.ts'), 'utf8'), /await import\('\.\.\/crypto\/keyring\.ts'\)/);
  const withDynamic = nodeOnlyImports(resolve(ROOT, 'src/client/index.ts'), true).findings.map((f) => f.imports);
  assert.ok(withDynamic.includes('node:fs') && withDynamic.includes('node:crypto'), 'the dynamic walk finds what the Node entry loads lazily');
});
