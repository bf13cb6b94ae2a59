#!/usr/bin/env node
// The `pbft` command. Works from any working directory: every path here is relative to this file.
//
// Installed from npm (no src/ in the package): runs the built JavaScript, dist/cli/main.js.
// In a checkout of the repository with its dev dependencies (src/ is there and tsx resolves): runs
// the TypeScript sources through tsx, so `npm start`, the tests and every edit take effect without
// a build step, and a stale dist/ is never run by mistake. `npm run build` makes dist/; the package
// test (test/package/pack.test.ts) runs this launcher from an installed tarball, i.e. on dist/.
import { existsSync } from 'node:fs';

const source = new URL('../src/cli/main.ts', import.meta.url);
const built = new URL('../dist/cli/main.js', import.meta.url);

async function tsxRegister() {
  if (!existsSync(source)) return undefined;
  try {
    return (await import('tsx/esm/api')).register;
  } catch {
    return undefined; // a checkout installed without dev dependencies: use dist/ if built
  }
}

let entry;
const register = await tsxRegister();
if (register !== undefined) {
  register();
  entry = source;
} else if (existsSync(built)) {
  entry = built;
} else {
  console.error('pbft: dist/cli/main.js is missing: run `npm run build` (or `npm ci` for the dev dependencies, to run from src/)');
  process.exit(1);
}
const { main } = await import(entry.href);
const code = await main(process.argv);
process.exitCode = code;
// Short commands are done here; do not let a lingering socket or timer keep the process alive.
setTimeout(() => process.exit(code), 1_000).unref();
