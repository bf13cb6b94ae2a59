/**
 * What one checkpoint of a bulk load costs the built-in store, without a cluster: a KvStore of
 * 65,536 partitions (a replica's) is fed put-many operations of `--pairs` pairs (100-byte values,
 * keys as `npm run bench -- --keys` makes them) and, every `--every` keys, every partition that
 * changed is merged (readPartition) and its leaf digest computed, as a checkpoint's syncTree does.
 * Prints the last three checkpoints' merge and leaf times (CPU on one thread; no RocksDB write).
 *
 *   node --import tsx bench/kv-checkpoint.ts [--keys 1000000] [--every 262144] [--pairs 512]
 */
import { KvStore } from '../src/app/kv.ts';
import { leafDigest } from '../src/core/statetree.ts';
import { sha256 } from '../src/crypto/node.ts';
import { NODE_PARTITION_COUNT } from '../src/node/replica-node.ts';

const args = process.argv.slice(2);
function arg(name: string, fallback: number): number {
  const i = args.indexOf(name);
  if (i < 0) return fallback;
  const n = Number(args[i + 1]);
  if (!Number.isSafeInteger(n) || n < 1) {
    process.stderr.write(`kv-checkpoint: ${name} takes a positive integer, got ${args[i + 1] ?? 'nothing'}\n`);
    process.exit(2);
  }
  return n;
}
const keys = arg('--keys', 1_000_000);
const every = arg('--every', 262_144);
const pairs = Math.min(arg('--pairs', 512), 4096);

const store = new KvStore({ partitionCount: NODE_PARTITION_COUNT });
const value = new Uint8Array(100).fill(7);
const lines: string[] = [];
let sinceCheckpoint = 0;
let executeMs = 0;
for (let from = 0; from < keys; from += pairs) {
  const entries: Array<[string, Uint8Array]> = [];
  for (let i = from; i < Math.min(keys, from + pairs); i++) entries.push([`load/${String(i).padStart(10, '0')}`, value]);
  const t0 = performance.now();
  store.putMany(entries);
  executeMs += performance.now() - t0;
  sinceCheckpoint += entries.length;
  if (sinceCheckpoint < every && from + pairs < keys) continue;
  sinceCheckpoint = 0;
  const t1 = performance.now();
  const dirty = store.takeDirtyPartitions();
  const parts = dirty.map((i) => store.readPartition(i));
  const t2 = performance.now();
  for (const p of parts) leafDigest(sha256, p);
  const t3 = performance.now();
  const bytes = parts.reduce((n, p) => n + p.length, 0);
  lines.push(`at ${Math.min(keys, from + pairs).toLocaleString('en-US')} keys: ${dirty.length.toLocaleString('en-US')} partitions changed (${(bytes / 2 ** 20).toFixed(0)} MiB): merge ${(t2 - t1).toFixed(0)} ms, leaf digests ${(t3 - t2).toFixed(0)} ms`);
}
process.stdout.write(`${keys.toLocaleString('en-US')} keys in put-many of ${pairs}, a checkpoint every ${every.toLocaleString('en-US')} keys; executing the puts took ${(executeMs / 1000).toFixed(1)} s in all\n`);
for (const l of lines.slice(-3)) process.stdout.write(`  ${l}\n`);
