/**
 * `keygen`: generates a keyring (cluster.json and one private key file per replica and client).
 *
 *   npm run keygen -- --replicas 4 --clients 4 --out keys
 *   pbft keygen --replicas 7 --host 10.0.0.5 --base-port 9000 --force
 *   pbft keygen --replica-urls ws://10.0.0.11:7001,ws://10.0.0.12:7001,ws://10.0.0.13:7001,ws://10.0.0.14:7001
 *   pbft keygen --hosts-file hosts.config        (lines "<id> <host> <port>" or "<id> ws://host:port")
 *   pbft keygen --fault-model crash --replicas 3   (crash faults only: n = 2f+1, see README)
 *
 * Every failure, including a bad flag, prints exactly one line `keygen: <message>` on stderr and
 * exits with status 1.
 */
import { Command, CommanderError } from 'commander';
import { readFileSync } from 'node:fs';
import { generateKeyring, KeyringError, parseHostsFile } from '../crypto/keyring.ts';

export interface KeygenIo {
  /** Receives one line of the success summary (without newline). */
  out(line: string): void;
  /** Receives the single error line (without newline). */
  err(line: string): void;
}

const processIo: KeygenIo = {
  out: (line) => process.stdout.write(line + '\n'),
  err: (line) => process.stderr.write(line + '\n'),
};

interface KeygenFlags {
  replicas?: string;
  clients: string;
  out: string;
  host?: string;
  basePort?: string;
  replicaUrls?: string;
  hostsFile?: string;
  clusterId?: string;
  faultModel: string;
  force?: boolean;
}

/** Raised for a flag that does not parse; reported like any other keygen error. */
class FlagError extends Error {}

function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}

/** Parses a non-negative integer flag; ranges (3f+1, ports) are checked by generateKeyring. */
function parseCount(flag: string, value: string): number {
  if (!/^[0-9]+$/.test(value) || !Number.isSafeInteger(Number(value))) {
    const shown = value.length > 40 ? value.slice(0, 40) + '...' : value;
    throw new FlagError(`${flag} must be a non-negative integer; got "${shown}"`);
  }
  return Number(value);
}

function errorMessage(err: unknown): string {
  if (err instanceof KeyringError || err instanceof FlagError) return err.message;
  if (err instanceof Error) return err.message.split('\n')[0] ?? err.name;
  return String(err);
}

/** Runs keygen with parsed flags and prints the summary; throws on any failure. */
function runKeygen(flags: KeygenFlags, io: KeygenIo): void {
  const clients = parseCount('--clients', flags.clients);
  const model = flags.faultModel;
  if (model !== 'byzantine' && model !== 'crash') {
    throw new FlagError(`--fault-model must be "byzantine" (n = 3f+1) or "crash" (n = 2f+1); got "${model.length > 40 ? model.slice(0, 40) + '...' : model}"`);
  }
  if (flags.replicaUrls !== undefined && flags.hostsFile !== undefined) throw new FlagError('give --replica-urls or --hosts-file, not both');
  let replicaUrls: string[] | undefined;
  if (flags.replicaUrls !== undefined) replicaUrls = flags.replicaUrls.split(',').map((u) => u.trim()).filter((u) => u !== '');
  if (flags.hostsFile !== undefined) {
    let text: string;
    try {
      text = readFileSync(flags.hostsFile, 'utf8');
    } catch (err) {
      throw new FlagError(`cannot read --hosts-file ${flags.hostsFile}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    }
    replicaUrls = parseHostsFile(text, flags.hostsFile);
  }
  const result = generateKeyring({
    ...(flags.replicas !== undefined ? { replicas: parseCount('--replicas', flags.replicas) } : replicaUrls === undefined ? { replicas: model === 'crash' ? 3 : 4 } : {}),
    faultModel: model,
    clients,
    out: flags.out,
    ...(flags.host !== undefined ? { host: flags.host } : {}),
    ...(flags.basePort !== undefined ? { basePort: parseCount('--base-port', flags.basePort) } : {}),
    ...(replicaUrls !== undefined ? { replicaUrls } : {}),
    ...(flags.clusterId !== undefined ? { clusterId: flags.clusterId } : {}),
    force: flags.force === true,
  });
  const { cluster } = result;
  io.out(`keygen: wrote keyring to ${flags.out} (cluster ${cluster.clusterId})`);
  io.out(
    model === 'crash'
      ? `  crash faults: f = ${cluster.f} (n = 2f+1, quorum f+1 = ${cluster.f + 1}), ${cluster.replicas.length} replicas; a replica that lies is not tolerated:`
      : `  byzantine faults: f = ${cluster.f} (n = 3f+1, quorum 2f+1 = ${2 * cluster.f + 1}), ${cluster.replicas.length} replicas:`,
  );
  for (const r of cluster.replicas) io.out(`    replica ${r.id}  ${r.url}`);
  io.out(`  ${cluster.clients.length} client${cluster.clients.length === 1 ? '' : 's'}`);
  io.out('  operator.key: signs membership changes (pbft member, pbft client-key); keep it on the operator\'s machine only');
  if (result.removed.length > 0) io.out(`  removed ${result.removed.length} stale file(s)`);
}

/**
 * Adds the keygen flags and action to `command`. Errors go through `command.error`, so they print
 * one `keygen: ...` line and exit 1 (or throw a CommanderError when exitOverride is set).
 */
function configureKeygenCommand(command: Command, io: KeygenIo): Command {
  return command
    .description('generate a keyring: cluster.json (public), one private key file per replica and client, and the operator key (operator.key) that signs membership changes')
    .option('--replicas <n>', 'number of replicas, 3f+1 with f >= 1; with --fault-model crash 2f+1 (default: 4, crash 3, or the number of URLs given)')
    .option(
      '--fault-model <model>',
      'byzantine: n = 3f+1 replicas, up to f may lie or crash. crash: n = 2f+1 replicas (3, 5, 7, ...) and majority quorums, up to f may crash or be cut off, but a single replica that lies (a bug, a compromised machine) can break safety',
      'byzantine',
    )
    .option('--clients <n>', 'number of clients', '4')
    .option('--out <dir>', 'directory to write the keyring to', 'keys')
    .option('--host <host>', 'one machine: host in every replica URL (default: 127.0.0.1)')
    .option('--base-port <port>', 'one machine: replica i listens at base-port + i (default: 7001)')
    .option('--replica-urls <urls>', 'many hosts: one ws://host:port per replica, comma-separated, in id order')
    .option('--hosts-file <path>', 'many hosts: a file with one replica per line, "<id> <host> <port>" or "<id> ws://host:port"')
    .option('--cluster-id <id>', 'cluster id (default: 16 random bytes, hex)')
    .option('--force', 'overwrite an existing keyring and remove stale key files')
    .allowExcessArguments(false)
    .configureOutput({
      writeOut: (str) => io.out(str.replace(/\n$/, '')),
      writeErr: (str) => io.err(str.replace(/\n$/, '')),
      outputError: (str, write) => write(`keygen: ${oneLine(str.replace(/^error:\s*/, ''))}\n`),
    })
    .action(function (this: Command) {
      try {
        runKeygen(this.opts<KeygenFlags>(), io);
      } catch (err) {
        this.error(errorMessage(err), { exitCode: 1, code: 'keygen.failed' });
      }
    });
}

/** Registers `keygen` as a subcommand of a commander program (used by the `pbft` CLI). */
export function addKeygenCommand(program: Command, io: KeygenIo = processIo): Command {
  return configureKeygenCommand(program.command('keygen'), io);
}

/**
 * Entry point of scripts/keygen.ts. `argv` is process.argv style (node, script, ...flags).
 * Returns the exit status: 0 on success or --help, 1 on any error.
 */
export function keygenMain(argv: readonly string[] = process.argv, io: KeygenIo = processIo): number {
  const command = configureKeygenCommand(new Command('keygen'), io).exitOverride();
  try {
    command.parse(argv, { from: 'node' });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.help' || err.code === 'commander.version') {
        return 0;
      }
      return 1; // already reported through outputError
    }
    io.err(`keygen: ${oneLine(errorMessage(err))}`);
    return 1;
  }
}
