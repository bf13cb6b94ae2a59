/**
 * Parses a `pbft` command line with the real program (src/cli/main.ts) and recording actions: the
 * command it would run and the flags it would run with, or the CLI's own error. Deployment tests
 * run every command a container would run through it, so a flag the CLI does not accept, or a bad
 * value, fails there. (keygen has no recordable action: never dry-run it, it would write a keyring.)
 */
import assert from 'node:assert/strict';
import { CommanderError } from 'commander';
import { createProgram, type CliActions } from '../../src/cli/main.ts';

export interface DryRun {
  command: 'replica' | 'start' | 'client' | 'status' | 'dashboard' | 'member';
  /** The flags object the action receives (for `client`: [op, flags]). */
  flags: unknown;
}

export async function dryRun(args: readonly string[]): Promise<DryRun> {
  assert.notEqual(args[0], 'keygen', 'keygen cannot be dry-run: it writes a keyring');
  let seen: DryRun | undefined;
  const record = (command: DryRun['command']) => async (...a: unknown[]): Promise<number> => {
    seen = { command, flags: a.length === 1 ? a[0] : a };
    return 0;
  };
  const actions: CliActions = { replica: record('replica'), start: record('start'), client: record('client'), status: record('status'), dashboard: record('dashboard'), member: record('member') };
  const errors: string[] = [];
  const program = createProgram({ out: () => undefined, err: (line) => errors.push(line) }, actions, () => undefined);
  try {
    await program.parseAsync([...args], { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) throw new Error(`pbft ${args.join(' ')}: ${errors.join(' ') || err.message}`);
    throw err;
  }
  assert.ok(seen !== undefined, `pbft ${args.join(' ')} ran no command`);
  return seen;
}
