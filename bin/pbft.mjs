#!/usr/bin/env node
// The `pbft` command: registers tsx (TypeScript sources run as they are) and runs src/cli/main.ts.
// Works from any working directory: every path here is relative to this file.
import { register } from 'tsx/esm/api';

register();
const { main } = await import(new URL('../src/cli/main.ts', import.meta.url).href);
const code = await main(process.argv);
process.exitCode = code;
// Short commands are done here; do not let a lingering socket or timer keep the process alive.
setTimeout(() => process.exit(code), 1_000).unref();
