/**
 * The horizon record's file (src/storage/horizon-file.ts): two slots written in turn in place, the
 * first write of each open atomically. What a reader finds after a write that tore, after both
 * slots were damaged, with a file of the earlier format, and after a writer process was killed
 * while writing.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { HORIZON_FILE, HORIZON_RECORD_MAX, HorizonFile, SLOT_BYTES, encodeHorizonSlot, horizonRecordOf } from '../../src/storage/horizon-file.ts';
import { RocksStorage } from '../../src/storage/rocksdb.ts';
import { StorageError } from '../../src/storage/types.ts';

const dirs: string[] = [];
after(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});
async function freshDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'pbft-horizon-'));
  dirs.push(d);
  return d;
}
const rec = (n: number): Uint8Array => new TextEncoder().encode(`record-${n}`);
const text = (b: Uint8Array | undefined): string | undefined => (b === undefined ? undefined : new TextDecoder().decode(b));

async function recordIn(dir: string): Promise<string | undefined> {
  const found = horizonRecordOf(new Uint8Array(await readFile(join(dir, HORIZON_FILE))));
  assert.ok('record' in found, 'an intact record');
  return text(found.record);
}

test('writes alternate between the two slots of a fixed 1 KiB file; the newest complete record is read', async () => {
  const dir = await freshDir();
  const f = new HorizonFile(dir);
  for (let i = 1; i <= 7; i++) {
    await f.write(rec(i));
    assert.equal(await recordIn(dir), `record-${i}`);
    assert.equal((await stat(join(dir, HORIZON_FILE))).size, 2 * SLOT_BYTES);
  }
  // Record 7 (generation 7) is in slot 0, record 6 in slot 1.
  const file = new Uint8Array(await readFile(join(dir, HORIZON_FILE)));
  assert.deepEqual(file.subarray(0, SLOT_BYTES), encodeHorizonSlot(7, rec(7)));
  assert.deepEqual(file.subarray(SLOT_BYTES), encodeHorizonSlot(6, rec(6)));
  await f.close();
});

test('a write that tore (any byte of the newest slot wrong) leaves the record before it', async () => {
  const dir = await freshDir();
  const f = new HorizonFile(dir);
  for (let i = 1; i <= 4; i++) await f.write(rec(i));
  await f.close();
  const path = join(dir, HORIZON_FILE);
  const good = new Uint8Array(await readFile(path));
  // Record 4 is in slot 1 (generations 1, 3 in slot 0; 2, 4 in slot 1). Damage each byte it covers.
  const covered = 22 + rec(4).length;
  for (let at = 0; at < covered; at++) {
    const torn = good.slice();
    torn[SLOT_BYTES + at]! ^= 0x40;
    const found = horizonRecordOf(torn);
    assert.ok('record' in found, `byte ${at}`);
    assert.equal(text(found.record), 'record-3', `byte ${at} of the newest slot damaged`);
  }
  // A slot that is zeros (a write that reached none of its bytes) likewise.
  const zeroed = good.slice();
  zeroed.fill(0, SLOT_BYTES);
  const found = horizonRecordOf(zeroed);
  assert.ok('record' in found);
  assert.equal(text(found.record), 'record-3');
});

test('both slots damaged: RocksStorage refuses to read it, naming the file', async () => {
  const dir = await freshDir();
  const store = new RocksStorage({ path: dir });
  await store.open();
  await store.writeHorizon(rec(1));
  await store.writeHorizon(rec(2));
  await store.close();
  const path = join(dir, HORIZON_FILE);
  const file = new Uint8Array(await readFile(path));
  file[25]! ^= 1; // inside each record
  file[SLOT_BYTES + 25]! ^= 1;
  await writeFile(path, file);
  await store.open();
  await assert.rejects(store.readHorizon(), (err: unknown) => err instanceof StorageError && err.code === 'READ_FAILED' && /PBFT-HORIZON .* is damaged: neither copy of the record is intact, so nothing bounds what this replica signed before \(move the data directory aside/.test(err.message));
  await store.close();
});

test('a file of the earlier format (the record alone) is read as it is, and the first write converts it', async () => {
  const dir = await freshDir();
  const store = new RocksStorage({ path: dir });
  await store.open();
  const path = join(dir, HORIZON_FILE);
  await writeFile(path, rec(41));
  assert.equal(text(await store.readHorizon()), 'record-41');
  await store.writeHorizon(rec(42));
  assert.equal((await stat(path)).size, 2 * SLOT_BYTES);
  assert.equal(text(await store.readHorizon()), 'record-42');
  await store.writeHorizon(rec(43));
  await store.close();
  await store.open();
  assert.equal(text(await store.readHorizon()), 'record-43', 'read back after close and open');
  // The first write after an open replaces the file again: generation 1 in slot 0, slot 1 empty.
  await store.writeHorizon(rec(44));
  const file = new Uint8Array(await readFile(path));
  assert.deepEqual(file.subarray(0, SLOT_BYTES), encodeHorizonSlot(1, rec(44)));
  assert.ok(file.subarray(SLOT_BYTES).every((b) => b === 0));
  await store.close();
});

test('a record longer than a slot holds is refused with a clear error; the record before stays', async () => {
  const dir = await freshDir();
  const store = new RocksStorage({ path: dir });
  await store.open();
  await store.writeHorizon(rec(1));
  await assert.rejects(store.writeHorizon(new Uint8Array(HORIZON_RECORD_MAX + 1)), (err: unknown) => err instanceof StorageError && err.code === 'WRITE_FAILED' && /at most 490 bytes, got 491/.test(err.message));
  assert.equal(text(await store.readHorizon()), 'record-1');
  await store.writeHorizon(new Uint8Array(HORIZON_RECORD_MAX).fill(7));
  assert.deepEqual(await store.readHorizon(), new Uint8Array(HORIZON_RECORD_MAX).fill(7));
  await store.close();
});

// A writer process that writes records 1, 2, 3, ... and prints each number once its write resolved.
const WRITER = `
import { HorizonFile } from ${JSON.stringify(fileURLToPath(new URL('../../src/storage/horizon-file.ts', import.meta.url)))};
const f = new HorizonFile(process.argv[1]);
for (let i = 1; ; i++) {
  await f.write(new TextEncoder().encode('record-' + i));
  process.stdout.write(i + '\\n');
}
`;

test('a writer killed (SIGKILL) while writing: the file holds the last record it completed or the one after', async () => {
  for (let round = 0; round < 5; round++) {
    const dir = await freshDir();
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', WRITER, dir], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const target = 20 + round * 37;
    await new Promise<void>((resolve, reject) => {
      const check = (): void => {
        if (out.split('\n').length > target) resolve();
      };
      child.stdout.on('data', check);
      child.on('exit', (code) => reject(new Error(`the writer exited (${code}) before ${target} writes`)));
    });
    // 'close', not 'exit': the numbers the writer printed before the kill may still be in the pipe
    // when it exits, and a count read too early would make the last completed write look older.
    const exited = new Promise((resolve) => child.on('close', (_code, signal) => resolve(signal)));
    child.kill('SIGKILL');
    assert.equal(await exited, 'SIGKILL');
    assert.throws(() => process.kill(child.pid!, 0), /ESRCH/, 'the writer is gone');
    const done = out.split('\n').filter((l) => l !== '').map(Number);
    const last = done[done.length - 1]!;
    const found = await recordIn(dir);
    assert.ok(found === `record-${last}` || found === `record-${last + 1}`, `round ${round}: found ${found}, the last completed write was ${last}`);
  }
});
