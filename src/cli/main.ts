/**
 * The `pbft` command line (bin/pbft.mjs runs `main`):
 *
 *   pbft keygen    generate a keyring
 *   pbft replica   run one replica
 *   pbft start     run a local cluster (one process per replica)
 *   pbft client    one key-value operation: put, get, del, cas
 *   pbft status    status of every replica
 *   pbft dashboard a live web page of the cluster
 *   pbft evidence  equivocation evidence: list, export, verify
 *   pbft sim       the deterministic simulator
 *
 * Every error, including a bad flag, is ONE line on stderr and a non-zero exit status; never a
 * stack trace. `createProgram` takes the command actions as a parameter so that tests can parse
 * command lines (e.g. the ones in docker-compose.yml) without running anything.
 */
import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { addKeygenCommand } from './keygen.ts';
import { addSimCommand } from './sim.ts';
import { addClientCommand, runClientCommand, type ClientFlags, type ClientOp } from './client.ts';
import { CliError, errorMessage, guardClosedPipes, oneLine, processIo, type CliIo } from './common.ts';
import { addReplicaCommand, runReplicaCommand, type ReplicaFlags } from './replica.ts';
import { addStartCommand, runStartCommand, type StartFlags } from './start.ts';
import { addStatusCommand, runStatusCommand, type StatusFlags } from './status.ts';
import { addDashboardCommand, runDashboardCommand, type DashboardFlags } from './dashboard.ts';
import { addMemberCommands, runMemberCommand, type MemberAction, type MemberFlags } from './member.ts';
import { addEvidenceCommand } from './evidence.ts';

export interface CliActions {
  replica(flags: ReplicaFlags): Promise<number>;
  start(flags: StartFlags): Promise<number>;
  client(op: ClientOp, flags: ClientFlags): Promise<number>;
  status(flags: StatusFlags): Promise<number>;
  dashboard(flags: DashboardFlags): Promise<number>;
  member(action: MemberAction, flags: MemberFlags): Promise<number>;
}

export function defaultActions(io: CliIo): CliActions {
  return {
    replica: (flags) => runReplicaCommand(flags),
    start: (flags) => runStartCommand(flags, io),
    client: (op, flags) => runClientCommand(op, flags, io),
    status: (flags) => runStatusCommand(flags, io),
    dashboard: (flags) => runDashboardCommand(flags, io),
    member: (action, flags) => runMemberCommand(action, flags, io),
  };
}

function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version : '0.0.0';
  } catch {
    return '0.0.0';
  }
}

/**
 * The program with every command. `done` receives the exit status of the command that ran.
 * Parse errors throw CommanderError (exitOverride) after printing their one line.
 */
export function createProgram(io: CliIo, actions: CliActions, done: (code: number) => void): Command {
  const program = new Command('pbft')
    .description('Byzantine-fault-tolerant replicated key-value store (PBFT)')
    .version(packageVersion(), '-V, --version')
    .exitOverride()
    .configureOutput({
      writeOut: (str) => io.out(str.replace(/\n$/, '')),
      writeErr: (str) => io.err(str.replace(/\n$/, '')),
      outputError: (str, write) => write(`pbft: ${oneLine(str.replace(/^error:\s*/, ''))}\n`),
    });
  addKeygenCommand(program, { out: (line) => io.out(line), err: (line) => io.err(line) });
  addReplicaCommand(program, actions.replica, done);
  addStartCommand(program, actions.start, done);
  addClientCommand(program, actions.client, done);
  addStatusCommand(program, actions.status, done);
  addDashboardCommand(program, actions.dashboard, done);
  addMemberCommands(program, actions.member, done);
  addEvidenceCommand(program, io, done);
  addSimCommand(program);
  return program;
}

const HELP_CODES = new Set(['commander.helpDisplayed', 'commander.help', 'commander.version']);

/** Runs the CLI; resolves with the exit status (long-running commands resolve when they stop). */
export async function main(argv: readonly string[] = process.argv, io: CliIo = processIo): Promise<number> {
  if (io === processIo) guardClosedPipes();
  if (argv.length <= 2) {
    io.err('pbft: missing command (keygen, replica, start, client, status, dashboard, member, client-key, evidence, sim); see pbft --help');
    return 1;
  }
  let code = 0;
  const program = createProgram(io, defaultActions(io), (c) => {
    code = c;
  });
  // The command name in error lines: `pbft client: ...`.
  const command = argv.slice(2).find((a) => !a.startsWith('-')) ?? '';
  try {
    await program.parseAsync([...argv], { from: 'node' });
  } catch (err) {
    if (err instanceof CommanderError) {
      if (HELP_CODES.has(err.code) && err.exitCode === 0) return 0;
      return err.exitCode === 0 ? 1 : err.exitCode; // its line was printed by outputError
    }
    const prefix = program.commands.some((c) => c.name() === command) ? `pbft ${command}` : 'pbft';
    io.err(`${prefix}: ${errorMessage(err)}`);
    return err instanceof CliError ? err.exitCode : 1;
  }
  // `pbft sim` (a stub for now) reports through process.exitCode.
  if (code === 0 && typeof process.exitCode === 'number' && process.exitCode !== 0) return process.exitCode;
  return code;
}
