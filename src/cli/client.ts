/**
 * `pbft client [--keys keys] [--client 0] [--timeout ms] put|get|del|cas ...`: one key-value
 * operation through the client SDK. Prints the result; a FAIL (QuorumFailure), a timeout or an
 * unreachable cluster is one line on stderr and exit status 1.
 */
import { join } from 'node:path';
import type { Command } from 'commander';
import type { Value } from '../app/kv-ops.ts';
import { PbftClient } from '../client/client.ts';
import { PbftClientError, TimeoutError } from '../client/errors.ts';
import { CLUSTER_FILE, KeyringError, keyFileName } from '../crypto/keyring.ts';
import { CliError, parseNonNegativeInt, parsePositiveInt, type CliIo } from './common.ts';

export type ClientOp =
  | { type: 'put'; key: string; value: string }
  | { type: 'get'; key: string }
  | { type: 'del'; key: string }
  | { type: 'cas'; key: string; expected: string | null; next: string | null };

export interface ClientFlags {
  keys: string;
  client: number;
  timeout: number;
}

/** '-' on the command line stands for "absent" in cas. */
const ABSENT = '-';

export function addClientCommand(
  program: Command,
  action: (op: ClientOp, flags: ClientFlags) => Promise<number>,
  done: (code: number) => void,
): Command {
  const client = program
    .command('client')
    .description('run one key-value operation on the cluster: put, get, del or cas')
    .option('--keys <dir>', 'keyring directory: cluster.json and client-<id>.key', 'keys')
    .option('--client <id>', 'client id (uses client-<id>.key)', parseNonNegativeInt, 0)
    .option('--timeout <ms>', 'give up after this many milliseconds without f+1 matching replies', parsePositiveInt, 10_000);
  const run = async (op: ClientOp, cmd: Command): Promise<void> => {
    done(await action(op, cmd.optsWithGlobals<ClientFlags>()));
  };
  client
    .command('put <key> <value>')
    .description('set key to value (prints OK)')
    .action((key: string, value: string, _opts: unknown, cmd: Command) => run({ type: 'put', key, value }, cmd));
  client
    .command('get <key>')
    .description('print the value of key, or (nil)')
    .action((key: string, _opts: unknown, cmd: Command) => run({ type: 'get', key }, cmd));
  client
    .command('del <key>')
    .description('delete key (prints 1 if it existed, else 0)')
    .action((key: string, _opts: unknown, cmd: Command) => run({ type: 'del', key }, cmd));
  client
    .command('cas <key> <expected> <next>')
    .description(`set key to next if its value is expected ("${ABSENT}" = absent; next "${ABSENT}" deletes)`)
    .action((key: string, expected: string, next: string, _opts: unknown, cmd: Command) =>
      run({ type: 'cas', key, expected: expected === ABSENT ? null : expected, next: next === ABSENT ? null : next }, cmd),
    );
  return client;
}

/**
 * Said with a timeout: every `pbft client` process signs as client 0 unless told otherwise, and a
 * replica orders one request per client at a time (by timestamp), so two calls that run at once with
 * the same id can lose each other's answers.
 */
function sharedIdHint(client: number): string {
  return `if another process runs as client ${client} at the same time, give each its own --client (a replica answers one request per client at a time)`;
}

function show(value: Value | null): string {
  if (value === null) return '(nil)';
  if (typeof value === 'string') return value;
  return '0x' + Array.from(value, (b) => b.toString(16).padStart(2, '0')).join('');
}

export async function runClientCommand(op: ClientOp, flags: ClientFlags, io: CliIo): Promise<number> {
  let client: PbftClient;
  try {
    client = await PbftClient.connect({
      cluster: join(flags.keys, CLUSTER_FILE),
      key: join(flags.keys, keyFileName('client', flags.client)),
      timeoutMs: flags.timeout,
    });
  } catch (err) {
    if (err instanceof KeyringError || err instanceof PbftClientError) throw new CliError(err.message);
    throw err;
  }
  try {
    switch (op.type) {
      case 'put':
        await client.put(op.key, op.value);
        io.out('OK');
        break;
      case 'get':
        io.out(show(await client.get(op.key)));
        break;
      case 'del':
        io.out((await client.del(op.key)) ? '1' : '0');
        break;
      case 'cas': {
        const r = await client.cas(op.key, op.expected, op.next);
        io.out(r.swapped ? `swapped; value: ${show(r.current)}` : `not swapped; current value: ${show(r.current)}`);
        break;
      }
    }
    return 0;
  } catch (err) {
    if (err instanceof TimeoutError) throw new CliError(`${err.message}; ${sharedIdHint(flags.client)}`);
    if (err instanceof PbftClientError) throw new CliError(err.message);
    throw err;
  } finally {
    await client.close();
  }
}
