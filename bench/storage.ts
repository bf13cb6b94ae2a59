/**
 * RocksStorage write throughput: synced single-op writes vs synced batches of 100 ops.
 * Run: node --import tsx bench/storage.ts [seconds per measurement, default 3] [value bytes, default 256]
 * Prints numbers only; the database lives in a fresh temp directory that is removed at the end.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { RocksStorage } from '../src/storage/rocksdb.ts';
import type { WriteOp } from '../src/storage/types.ts';

const secondsPerRun = Number(process.argv[2] ?? 3);
const VALUE_BYTES = Number(process.argv[3] ?? 256);
const BATCH_OPS = 100;

const value = new Uint8Array(VALUE_BYTES).map((_, i) => i & 0xff);
let nextKey = 0;
function op(): WriteOp {
  return { type: 'put', key: `bench/${String(nextKey++).padStart(10, '0')}`, value };
}

interface Result {
  writes: number;
  ops: number;
  seconds: number;
}

/** Calls `writeOnce` back to back for about `secondsPerRun`, after a short warm-up. */
async function measure(writeOnce: () => Promise<number>): Promise<Result> {
  const warmupEnd = performance.now() + 200;
  while (performance.now() < warmupEnd) await writeOnce();
  let writes = 0;
  let ops = 0;
  const start = performance.now();
  const end = start + secondsPerRun * 1000;
  while (performance.now() < end) {
    ops += await writeOnce();
    writes++;
  }
  return { writes, ops, seconds: (performance.now() - start) / 1000 };
}

function report(name: string, r: Result): void {
  const usPerWrite = (r.seconds * 1e6) / r.writes;
  console.log(
    `${name.padEnd(42)} ${(r.writes / r.seconds).toFixed(0).padStart(8)} writes/s ` +
      `${(r.ops / r.seconds).toFixed(0).padStart(9)} ops/s ${usPerWrite.toFixed(1).padStart(9)} us/write`,
  );
}

const dir = await mkdtemp(join(tmpdir(), 'pbft-bench-storage-'));
const store = new RocksStorage({ path: join(dir, 'db') });
try {
  await store.open();
  console.log(`RocksStorage at ${dir} (${VALUE_BYTES}-byte values, ${secondsPerRun}s per measurement, node ${process.version})`);

  const single = await measure(async () => {
    await store.write([op()], { sync: true });
    return 1;
  });
  report('synced single-op writes', single);

  const batched = await measure(async () => {
    const ops = new Array<WriteOp>(BATCH_OPS);
    for (let i = 0; i < BATCH_OPS; i++) ops[i] = op();
    await store.write(ops, { sync: true });
    return BATCH_OPS;
  });
  report(`synced batches of ${BATCH_OPS} ops`, batched);

  const unsynced = await measure(async () => {
    await store.write([op()], { sync: false });
    return 1;
  });
  report('unsynced single-op writes (reference)', unsynced);

  const unsyncedBatched = await measure(async () => {
    const ops = new Array<WriteOp>(BATCH_OPS);
    for (let i = 0; i < BATCH_OPS; i++) ops[i] = op();
    await store.write(ops, { sync: false });
    return BATCH_OPS;
  });
  report(`unsynced batches of ${BATCH_OPS} ops (reference)`, unsyncedBatched);

  const speedup = batched.ops / batched.seconds / (single.ops / single.seconds);
  console.log(`batching speedup in ops/s: ${speedup.toFixed(1)}x`);
} finally {
  await store.close();
  await rm(dir, { recursive: true, force: true });
}
