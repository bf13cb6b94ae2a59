/**
 * What one merged partition's new bytes cost to allocate and fill, by kind of allocation, under the
 * C allocator this process runs on: a table of 65,536 partitions (a replica's) of `--size` bytes,
 * each step replacing a random one with new bytes filled with a copy (as a checkpoint's merge does),
 * so that the replaced ones die and the collector frees them while new ones are made.
 *
 * Kinds: `shared` (a SharedArrayBuffer: what PartitionBytes takes within its budget; always zeroed),
 * `zeroed` (new Uint8Array(size): calloc), `uninitialized` (the store's own `uninitialized`,
 * Buffer.allocUnsafeSlow: malloc; what PartitionBytes takes outside its budget). Prints per allocation: minor page faults, CPU and wall
 * time, and RSS at the end. No assertion on time: a measurement (docs/performance.md, "Scale with state size").
 *
 *   node --import tsx bench/alloc-cost.ts [--size 18650] [--steps 400000] [--kinds shared,zeroed,uninitialized]
 *   LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2 node --import tsx bench/alloc-cost.ts
 */
import { intArg } from './lib/args.ts';
import { processMalloc } from '../src/node/malloc.ts';
import { uninitialized } from '../src/app/kv.ts';

const args = process.argv.slice(2);
const size = intArg('alloc-cost', args, '--size', 18_650);
const steps = intArg('alloc-cost', args, '--steps', 400_000);
const kindsAt = args.indexOf('--kinds');
const KINDS = ['shared', 'zeroed', 'uninitialized'] as const;
type Kind = (typeof KINDS)[number];
const kinds = (kindsAt >= 0 ? (args[kindsAt + 1] ?? '') : KINDS.join(',')).split(',');
for (const k of kinds) {
  if (!(KINDS as readonly string[]).includes(k)) {
    process.stderr.write(`alloc-cost: --kinds takes a comma-separated list of ${KINDS.join(', ')}; got "${k}"\n`);
    process.exit(2);
  }
}

const PARTITIONS = 65_536;
const make: Record<Kind, (n: number) => Uint8Array> = {
  shared: (n) => new Uint8Array(new SharedArrayBuffer(n)),
  zeroed: (n) => new Uint8Array(n),
  uninitialized,
};

process.stdout.write(`malloc: ${processMalloc()}; ${PARTITIONS.toLocaleString('en-US')} partitions of ${size.toLocaleString('en-US')} bytes, ${steps.toLocaleString('en-US')} replacements per kind (after a quarter as many to warm up)\n`);
const source = new Uint8Array(size).fill(7);
for (const kind of kinds as Kind[]) {
  const alloc = make[kind];
  const table: Uint8Array[] = Array.from({ length: PARTITIONS }, () => alloc(size));
  let x = 12_345;
  const replace = (n: number): void => {
    for (let i = 0; i < n; i++) {
      x = (x * 1_103_515_245 + 12_345) & 0x7fffffff;
      const bytes = alloc(size);
      bytes.set(source);
      table[x % PARTITIONS] = bytes;
    }
  };
  replace(steps >> 2);
  const faults0 = process.resourceUsage().minorPageFault;
  const cpu0 = process.cpuUsage();
  const wall0 = performance.now();
  replace(steps);
  const wallMs = performance.now() - wall0;
  const cpu = process.cpuUsage(cpu0);
  const faults = process.resourceUsage().minorPageFault - faults0;
  process.stdout.write(
    `  ${kind.padEnd(13)} ${(faults / steps).toFixed(2)} minor page faults, ${((cpu.user + cpu.system) / steps).toFixed(1)} us CPU (every thread), ${((wallMs * 1000) / steps).toFixed(1)} us wall per partition; RSS ${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} MiB\n`,
  );
  table.length = 0;
  (globalThis as { gc?: () => void }).gc?.();
}
