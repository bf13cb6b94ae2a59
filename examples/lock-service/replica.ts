/**
 * One replica of the lock service: the PBFT replica of `pbft replica` (RocksDB, WebSockets, the
 * same keyring) with the LockService state machine in place of the key-value store. Every replica
 * of a cluster must run the same state machine.
 *
 *   node --import tsx examples/lock-service/replica.ts --id 0 [--keys keys] [--data data/lock-0] [--log-level info]
 *
 * Outside this repository the imports are `pbft-kv/server` (this file uses the sources directly).
 * Stops cleanly on SIGTERM, SIGINT or SIGHUP (runReplicaProcess).
 */
import { parseArgs } from 'node:util';
import { createLogger, loadIdentity, runReplicaProcess, type LogLevel } from '../../src/server.ts';
import { LockService } from './lock-service.ts';

const LOG_LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error'];

function fail(message: string): never {
  process.stderr.write(`lock-service replica: ${message}\n`);
  process.exit(1);
}

let values: { id?: string; keys?: string; data?: string; 'log-level'?: string };
try {
  ({ values } = parseArgs({
    options: { id: { type: 'string' }, keys: { type: 'string' }, data: { type: 'string' }, 'log-level': { type: 'string' } },
    strict: true,
  }));
} catch (err) {
  fail(err instanceof Error ? err.message : String(err));
}
const id = Number(values.id);
if (values.id === undefined || !Number.isSafeInteger(id) || id < 0) fail('--id <replica id> is required');
const level = (values['log-level'] ?? process.env.PBFT_LOG_LEVEL ?? 'info') as LogLevel;
if (!LOG_LEVELS.includes(level)) fail(`--log-level must be one of ${LOG_LEVELS.join(', ')}`);
let identity: ReturnType<typeof loadIdentity>;
try {
  identity = loadIdentity(values.keys ?? 'keys', 'replica', id);
} catch (err) {
  fail(err instanceof Error ? err.message : String(err));
}

await runReplicaProcess({
  cluster: identity.cluster,
  id,
  secretKey: identity.key.secretKey,
  dataDir: values.data ?? `data/lock-${id}`,
  log: createLogger({ level, format: 'text' }),
  app: new LockService(),
});
