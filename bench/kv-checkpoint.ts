/**
 * What one checkpoint of a bulk load costs the built-in store, without a cluster: a KvStore of
 * 65,536 partitions (a replica's; --partitions sets another power of two) is fed put-many operations of `--pairs` pairs (100-byte values,
 * keys as `npm run bench -- --keys` makes them) and, every `--every` keys, every partition that
 * changed is merged (readPartition) and its leaf digest computed, as a checkpoint's syncTree does.
 * Prints the last three checkpoints' merge and leaf times (CPU on one thread; no RocksDB write).
 *
 * With --steady P, P single puts follow the load, as the throughput run of `npm run bench -- --keys`
 * makes them (64 clients cycling through 256 keys each, 16-byte keys), with a checkpoint every
 * --steady-every puts (default 3,200: 128 sequence numbers of 25-request batches); prints what
 * executing, merging, hashing (leaves and the digest tree) and finding the records to store
 * (diffPartition against the partition as last stored) cost per put there, and how many bytes of
 * records a replica stores per put against the whole partitions it stored before records. A
 * changed partition is still merged and hashed whole: that is the cost the loaded state adds.
 *
 *   node --import tsx bench/kv-checkpoint.ts [--keys 1000000] [--every 262144] [--pairs 512]
 *                                             [--steady 0] [--steady-every 3200] [--partitions 65536]
 *                                             [--uncounted-mib M]   (see PartitionBytes; 0: V8 counts all)
 */
import { KvStore, PARTITION_COUNT_MAX } from '../src/app/kv.ts';
import { StateTree, leafDigest } from '../src/core/statetree.ts';
import { sha256 } from '../src/crypto/node.ts';
import { NODE_PARTITION_COUNT } from '../src/node/replica-node.ts';
import { benchKey } from './lib/workload.ts';
import { intArg } from './lib/args.ts';
import { processMalloc } from '../src/node/malloc.ts';
import { constants, PerformanceObserver, type PerformanceEntry } from 'node:perf_hooks';

const args = process.argv.slice(2);
const arg = (name: string, fallback: number, min = 1): number => intArg('kv-checkpoint', args, name, fallback, min);
const keys = arg('--keys', 1_000_000, 0);
const every = arg('--every', 262_144);
const pairs = Math.min(arg('--pairs', 512), 4096);
const steady = arg('--steady', 0, 0);
const steadyEvery = arg('--steady-every', 3_200);
const partitionCount = arg('--partitions', NODE_PARTITION_COUNT);
if (partitionCount > PARTITION_COUNT_MAX || (partitionCount & (partitionCount - 1)) !== 0) {
  process.stderr.write(`kv-checkpoint: --partitions takes a power of two in 1..${PARTITION_COUNT_MAX}, got ${partitionCount}\n`);
  process.exit(2);
}

// --uncounted-mib M: the store's budget of merged partitions V8 does not count (PartitionBytes in
// src/app/kv.ts); -1 (default) the store's default, 0 counts them all (V8's own behaviour).
const uncountedMib = intArg('kv-checkpoint', args, '--uncounted-mib', -1, -1);
const store = new KvStore({ partitionCount, ...(uncountedMib >= 0 ? { uncountedBytes: () => uncountedMib * 2 ** 20 } : {}) });
process.stdout.write(`malloc: ${processMalloc()}; merged partitions on shared memory: ${uncountedMib >= 0 ? `up to ${uncountedMib} MiB per cycle (--uncounted-mib)` : "the store's default budget"}\n`);
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

if (steady > 0) {
  // The bench's throughput run: clients c0..c63, 256 keys each, 16-byte keys and values.
  // Two values, alternating from one pass over the keys to the next (as the bench's clients do), so
  // that every put changes the state: the store skips a write of the value a key already holds.
  const steadyValues = [new Uint8Array(16).fill(9), new Uint8Array(16).fill(10)];
  const ops = Array.from({ length: 64 * 256 }, (_, i) => benchKey(i % 64, Math.floor(i / 64), 16));
  let execute = 0;
  let merge = 0;
  let leaves = 0;
  let treeMs = 0;
  let merged = 0;
  let diffMs = 0;
  let records = 0;
  let recordBytes = 0;
  /** The partition bytes a replica last stored (it writes the records that differ from them). */
  const stored = new Map<number, Uint8Array>();
  const tree = StateTree.fromPartitions(sha256, Array.from({ length: partitionCount }, (_, i) => store.readPartition(i)));
  let mergedBytes = 0;
  const takeCheckpoint = (): void => {
    const t1 = performance.now();
    const dirty = store.takeDirtyPartitions();
    const parts = dirty.map((i) => store.readPartition(i));
    const t2 = performance.now();
    const digests = parts.map((p) => leafDigest(sha256, p));
    const t3 = performance.now();
    for (let k = 0; k < dirty.length; k++) tree.setLeaf(dirty[k]!, digests[k]!);
    tree.commit();
    merge += t2 - t1;
    leaves += t3 - t2;
    const t4 = performance.now();
    treeMs += t4 - t3;
    for (let k = 0; k < dirty.length; k++) {
      const d = store.diffPartition(stored.get(dirty[k]!), parts[k]!);
      records += d.put.length + d.del.length;
      for (const [name, value] of d.put) recordBytes += name.length + value.length;
      stored.set(dirty[k]!, parts[k]!);
    }
    diffMs += performance.now() - t4;
    merged += dirty.length;
    mergedBytes += parts.reduce((n, p) => n + p.length, 0);
  };
  takeCheckpoint();
  // What a replica has stored after the load: every partition as it is now.
  for (let i = 0; i < partitionCount; i++) stored.set(i, store.readPartition(i));
  execute = merge = leaves = treeMs = merged = mergedBytes = diffMs = records = recordBytes = 0;
  // Garbage collections and the CPU of every thread of the process (V8's helper threads mark and
  // sweep concurrently: their time is not in the per-step figures, which are the main thread's).
  const gcs = { minor: 0, major: 0, minorMs: 0, majorMs: 0 };
  const observer = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const kind = (e as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind;
      if (kind === constants.NODE_PERFORMANCE_GC_MAJOR) {
        gcs.major++;
        gcs.majorMs += e.duration;
      } else if (kind === constants.NODE_PERFORMANCE_GC_MINOR) {
        gcs.minor++;
        gcs.minorMs += e.duration;
      }
    }
  });
  observer.observe({ entryTypes: ['gc'] });
  const cpu0 = process.cpuUsage();
  const faults0 = process.resourceUsage().minorPageFault;
  const wall0 = performance.now();
  for (let i = 0; i < steady; i++) {
    const t0 = performance.now();
    store.putMany([[ops[i % ops.length]!, steadyValues[Math.floor(i / ops.length) % 2]!]]);
    execute += performance.now() - t0;
    if ((i + 1) % steadyEvery === 0) takeCheckpoint();
  }
  const cpu = process.cpuUsage(cpu0);
  const faults = process.resourceUsage().minorPageFault - faults0;
  const wallMs = performance.now() - wall0;
  await new Promise((r) => setTimeout(r, 200));
  observer.disconnect();
  const checkpoints = Math.floor(steady / steadyEvery);
  const per = (ms: number): string => `${((ms * 1000) / steady).toFixed(1)} us`;
  process.stdout.write(
    `then ${steady.toLocaleString('en-US')} single puts, a checkpoint every ${steadyEvery.toLocaleString('en-US')}: per put execute ${per(execute)}, merge ${per(merge)}, leaf digests ${per(leaves)}, digest tree ${per(treeMs)}` +
      ` (${Math.round(merged / Math.max(1, checkpoints)).toLocaleString('en-US')} partitions of ${(mergedBytes / Math.max(1, merged) / 1024).toFixed(1)} KiB on average per checkpoint);` +
      ` records to store ${per(diffMs)}: ${(records / steady).toFixed(2)} records of ${Math.round(recordBytes / Math.max(1, records))} bytes per put, where whole partitions would be ${Math.round(mergedBytes / steady).toLocaleString('en-US')} bytes\n`,
  );
  process.stdout.write(
    `  the steady phase: ${per(wallMs)} of wall time per put, ${per((cpu.user + cpu.system) / 1000)} of CPU per put over every thread of the process, ${(faults / steady).toFixed(1)} minor page faults per put;` +
      ` garbage collections ${gcs.minor} minor (${gcs.minorMs.toFixed(0)} ms), ${gcs.major} major (${gcs.majorMs.toFixed(0)} ms);` +
      ` merged partitions allocated uncounted by V8 ${(store.partitionBytes.uncountedTotal / 2 ** 20).toFixed(0)} MiB, counted ${(store.partitionBytes.countedTotal / 2 ** 20).toFixed(0)} MiB` +
      ` (since the start); RSS now ${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} MiB, at most ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MiB\n`,
  );
}
