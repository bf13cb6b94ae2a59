#!/usr/bin/env -S node --import tsx
/**
 * Generates a keyring: `npm run keygen -- --replicas 4 --clients 4 --out keys`.
 * See src/cli/keygen.ts for the flags.
 */
import { keygenMain } from '../src/cli/keygen.ts';

process.exitCode = keygenMain(process.argv);
