/**
 * A command-line client of the lock service: one operation, its result as JSON on stdout.
 *
 *   node --import tsx examples/lock-service/cli.ts [--keys keys] [--client 0] [--owner name] acquire <lock> <leaseMs>
 *   node --import tsx examples/lock-service/cli.ts ... renew <lock> <leaseMs>
 *   node --import tsx examples/lock-service/cli.ts ... release <lock>
 *   node --import tsx examples/lock-service/cli.ts ... query <lock>
 *
 * Exit status 0 when the operation succeeded (acquired, renewed, released, queried), 2 when the
 * service refused it (held by someone else, not yours, expired), 1 for an error.
 */
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { PbftClient } from '../../src/client/index.ts';
import { LockClient } from './client.ts';
import type { LockOp } from './ops.ts';

function usage(message: string): never {
  process.stderr.write(`lock-service: ${message}\nusage: cli.ts [--keys keys] [--client 0] [--owner name] acquire|renew <lock> <leaseMs> | release|query <lock>\n`);
  process.exit(1);
}

const { values, positionals } = parseArgs({
  options: { keys: { type: 'string' }, client: { type: 'string' }, owner: { type: 'string' } },
  allowPositionals: true,
  strict: true,
});
const [command, name, lease] = positionals;
if (name === undefined) usage('which lock?');
const clientId = Number(values.client ?? '0');
const keys = values.keys ?? 'keys';
const pbft = await PbftClient.connect({ cluster: join(keys, 'cluster.json'), key: join(keys, `client-${clientId}.key`) });
try {
  const locks = new LockClient(pbft, values.owner !== undefined ? { owner: values.owner } : {});
  let op: LockOp;
  switch (command) {
    case 'acquire':
    case 'renew':
      if (lease === undefined || !/^\d+$/.test(lease)) usage(`${command} needs a lease in milliseconds`);
      op = { op: command, name, owner: locks.owner, leaseMs: Number(lease) };
      break;
    case 'release':
      op = { op: command, name, owner: locks.owner };
      break;
    case 'query':
      op = { op: command, name };
      break;
    default:
      usage(`unknown command ${String(command)}`);
  }
  const result = await locks.call(op);
  process.stdout.write(JSON.stringify(result) + '\n');
  process.exitCode = result.ok ? 0 : 2;
} catch (err) {
  process.stderr.write(`lock-service: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
} finally {
  await pbft.close();
}
