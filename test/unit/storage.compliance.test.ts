/**
 * One compliance suite, run against every Storage implementation (RocksStorage and MemoryStorage),
 * followed by the tests specific to each.
 *
 * `makeStorage(dir)` returns "the store that lives in dir": RocksStorage makes a new instance on the
 * same path each time, MemoryStorage returns the same instance for the same dir (its "disk" is the
 * instance), so "close, then makeStorage(dir) again and open" is a restart for both.
 */
import { after, afterEach, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cp, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { compareUtf8, MemoryStorage } from '../../src/storage/memory.ts';
import { RocksStorage, parseCompactionStats, parseLevelStats } from '../../src/storage/rocksdb.ts';
import { StorageError } from '../../src/storage/types.ts';
import type { Storage, WriteOp } from '../../src/storage/types.ts';

const projectRoot = fileURLToPath(new URL('../../', import.meta.url));

// ----- helpers -----

async function freshDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'pbft-storage-'));
}

function bytes(...values: number[]): Uint8Array {
  return new Uint8Array(values);
}

function text(value: string): Uint8Array {
  return new TextEncoder().encode(value);
}

function put(key: string, value: Uint8Array | string): WriteOp {
  return { type: 'put', key, value: typeof value === 'string' ? text(value) : value };
}

function del(key: string): WriteOp {
  return { type: 'del', key };
}

function keysOf(entries: Array<[string, Uint8Array]>): string[] {
  return entries.map(([key]) => key);
}

/** The oracle for key order: compare the UTF-8 encodings. */
function byUtf8Bytes(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/** Deterministic PRNG (mulberry32) so that shuffles and random strings are the same on every run. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function shuffled<T>(items: readonly T[], seed: number): T[] {
  const out = items.slice();
  const random = prng(seed);
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

async function rejectsWithCode(promise: Promise<unknown>, code: StorageError['code']): Promise<StorageError> {
  let caught: unknown;
  await assert.rejects(promise, (err: unknown) => {
    caught = err;
    return true;
  });
  assert.ok(caught instanceof StorageError, `expected a StorageError, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  return caught;
}

/** Keys whose UTF-8 byte order differs from JS string order, with multi-byte characters and prefixes. */
const ORDERED_KEYS = [
  'a', // prefix of the next ones
  'a\u0000', // NUL sorts first among continuations
  'aa',
  'ab',
  'abc',
  'a\u007f', // DEL (0x7F) sorts after the letters
  'a\u00e9', // é: 2 bytes, C3 A9
  'a\u0800', // 3 bytes, E0 A0 80
  'a\ud7ff', // last code point before the surrogate range: ED 9F BF
  'a\ue000', // private use: EE 80 80 (JS: '\ue000' > '\ud83d', UTF-8: smaller)
  'a\uffff', // EF BF BF
  'a\u{1f600}', // 😀 4 bytes, F0 9F 98 80 (JS string order puts it before 'a\ue000')
  'a\u{10ffff}',
  'b',
  '\u00e9', // é alone sorts after all ASCII
  '\u00e9t\u00e9',
  '\u4e2d', // 中
  '\uffff',
  '\u{1f600}',
  '\u{1f600}\u{1f600}',
];

// ----- the compliance suite -----

function describeStorageCompliance(name: string, makeStorage: (dir: string) => Storage): void {
  describe(`Storage compliance: ${name}`, () => {
    let dir: string;
    let store: Storage;

    beforeEach(async () => {
      dir = await freshDir();
      store = makeStorage(dir);
      await store.open();
    });

    afterEach(async () => {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    });

    it('puts, gets and deletes a key; a missing key is undefined', async () => {
      assert.equal(await store.get('k'), undefined);
      await store.write([put('k', bytes(1, 2, 3))], { sync: true });
      assert.deepEqual(await store.get('k'), bytes(1, 2, 3));
      await store.write([put('k', bytes(4))], { sync: false });
      assert.deepEqual(await store.get('k'), bytes(4));
      await store.write([del('k')], { sync: true });
      assert.equal(await store.get('k'), undefined);
      await store.write([del('never-written')], { sync: false });
      assert.equal(await store.get('never-written'), undefined);
    });

    it('returns values typed as Uint8Array', async () => {
      await store.write([put('k', bytes(7))], { sync: false });
      const value = await store.get('k');
      assert.ok(value instanceof Uint8Array);
      const [[, scanned] = ['', new Uint8Array()]] = await store.scan({});
      assert.ok(scanned instanceof Uint8Array);
    });

    it('applies the ops of a batch in order', async () => {
      await store.write([put('x', 'one'), del('x')], { sync: true });
      assert.equal(await store.get('x'), undefined);
      await store.write([del('y'), put('y', 'two')], { sync: true });
      assert.deepEqual(await store.get('y'), text('two'));
      await store.write([put('z', 'first'), put('z', 'second')], { sync: true });
      assert.deepEqual(await store.get('z'), text('second'));
      assert.deepEqual(keysOf(await store.scan({})), ['y', 'z']);
    });

    it('a large batch (more ops and bytes than RocksStorage hands over at once) is applied whole, in order', async () => {
      await store.write([put('big/00000', 'old'), put('gone', 'x')], { sync: true });
      const ops: WriteOp[] = [];
      for (let i = 0; i < 5000; i++) ops.push(put(`big/${String(i).padStart(5, '0')}`, new Uint8Array(1200).fill(i & 0xff)));
      ops.push(del('gone'), put('big/00001', 'last wins'));
      await store.write(ops, { sync: true });
      assert.equal(await store.count({ gte: 'big/', lt: 'big0' }), 5000);
      assert.deepEqual(await store.get('big/00000'), new Uint8Array(1200).fill(0));
      assert.deepEqual(await store.get('big/04999'), new Uint8Array(1200).fill(4999 & 0xff));
      assert.deepEqual(await store.get('big/00001'), text('last wins'));
      assert.equal(await store.get('gone'), undefined);
    });

    it('resolves an empty write and changes nothing', async () => {
      await store.write([put('k', 'v')], { sync: true });
      await store.write([], { sync: true });
      await store.write([], { sync: false });
      assert.deepEqual(await store.scan({}), [['k', text('v')]]);
    });

    it('scans with an inclusive gte and an exclusive lt', async () => {
      await store.write(['a', 'b', 'c', 'd', 'e'].map((k) => put(k, k)), { sync: true });
      assert.deepEqual(keysOf(await store.scan({})), ['a', 'b', 'c', 'd', 'e']);
      assert.deepEqual(keysOf(await store.scan({ gte: 'b', lt: 'd' })), ['b', 'c']);
      assert.deepEqual(keysOf(await store.scan({ gte: 'c' })), ['c', 'd', 'e']);
      assert.deepEqual(keysOf(await store.scan({ lt: 'c' })), ['a', 'b']);
      assert.deepEqual(keysOf(await store.scan({ gte: 'bb', lt: 'dd' })), ['c', 'd']);
      assert.deepEqual(keysOf(await store.scan({ gte: 'c', lt: 'c' })), []);
      assert.deepEqual(keysOf(await store.scan({ gte: 'd', lt: 'b' })), []);
      assert.deepEqual(keysOf(await store.scan({ gte: 'f' })), []);
      // The empty string is the smallest key: gte '' is no bound, lt '' is the empty range.
      assert.deepEqual(keysOf(await store.scan({ gte: '' })), ['a', 'b', 'c', 'd', 'e']);
      assert.deepEqual(keysOf(await store.scan({ lt: '' })), []);
      assert.deepEqual(await store.scan({ gte: 'b', lt: 'c' }), [['b', text('b')]]);
    });

    it('scans every value whole and in order across read-ahead boundaries (values from 1 byte to 5 MiB, 1,000 small ones)', async () => {
      // RocksStorage reads SCAN_READ_AHEAD_BYTES (4 MiB) or 1,000 entries per call into the binding:
      // values below, around and above it, and more entries than one call takes.
      const sizes = [1, 16 * 1024, 16 * 1024 + 1, 1 << 20, 4 * 1024 * 1024 - 1, 4 * 1024 * 1024, 4 * 1024 * 1024 + 1, 5 << 20, 7];
      const random = prng(7);
      const big = sizes.map((size) => Uint8Array.from({ length: size }, () => Math.floor(random() * 256)));
      const ops = big.map((value, i) => put(`big/${String(i).padStart(2, '0')}`, value));
      for (let i = 0; i < 1000; i++) ops.push(put(`small/${String(i).padStart(4, '0')}`, bytes(i & 0xff, i >> 8)));
      await store.write(ops, { sync: true });
      const entries = await store.scan({});
      assert.equal(entries.length, big.length + 1000);
      for (let i = 0; i < big.length; i++) {
        const [key, value] = entries[i]!;
        assert.equal(key, `big/${String(i).padStart(2, '0')}`);
        assert.equal(value.length, big[i]!.length, key);
        assert.ok(Buffer.from(value).equals(Buffer.from(big[i]!)), `${key}: bytes differ`);
      }
      for (let i = 0; i < 1000; i++) assert.deepEqual(entries[big.length + i], [`small/${String(i).padStart(4, '0')}`, bytes(i & 0xff, i >> 8)]);
      // Each value is its own bytes: changing one changes no other, nor what a second scan reads.
      entries[1]![1].fill(0);
      const again = await store.scan({ lt: 'c' });
      assert.ok(Buffer.from(again[1]![1]).equals(Buffer.from(big[1]!)));
      assert.ok(Buffer.from(entries[2]![1]).equals(Buffer.from(big[2]!)));
    });

    it('forEach gives what scan returns, one entry at a time, in order; a throw from the callback stops it and rejects with that error', async () => {
      await store.write(shuffled(ORDERED_KEYS, 2).map((k) => put(k, k)), { sync: true });
      assert.ok(store.forEach !== undefined, 'both storages stream');
      for (const range of [{}, { gte: 'b', lt: '\uffff' }, { gte: 'c', lt: 'c' }, { gte: 'a\ue000' }]) {
        const seen: Array<[string, Uint8Array]> = [];
        await store.forEach(range, (key, value) => seen.push([key, value]));
        assert.deepEqual(seen, await store.scan(range), JSON.stringify(range));
      }
      const stop = new Error('enough');
      let calls = 0;
      await assert.rejects(
        store.forEach({}, () => {
          if (++calls === 3) throw stop;
        }),
        (err) => err === stop,
      );
      assert.equal(calls, 3, 'no entry after the throw');
      // The store is still usable.
      assert.equal((await store.scan({})).length, ORDERED_KEYS.length);
    });

    it('orders keys by their UTF-8 bytes, multi-byte characters and prefixes included', async () => {
      // The expected order is written by hand; check it against the byte oracle too.
      assert.deepEqual(ORDERED_KEYS.slice().sort(byUtf8Bytes), ORDERED_KEYS);
      assert.notDeepEqual(ORDERED_KEYS.slice().sort(), ORDERED_KEYS, 'JS string order differs here');
      await store.write(shuffled(ORDERED_KEYS, 1).map((k) => put(k, k)), { sync: true });
      const entries = await store.scan({});
      assert.deepEqual(keysOf(entries), ORDERED_KEYS);
      for (const [key, value] of entries) assert.deepEqual(value, text(key));
      // Bounds with multi-byte characters.
      assert.deepEqual(keysOf(await store.scan({ gte: 'a\ue000', lt: 'b' })), [
        'a\ue000',
        'a\uffff',
        'a\u{1f600}',
        'a\u{10ffff}',
      ]);
      assert.deepEqual(keysOf(await store.scan({ gte: '\uffff' })), ['\uffff', '\u{1f600}', '\u{1f600}\u{1f600}']);
      assert.deepEqual(keysOf(await store.scan({ gte: 'a', lt: 'aa' })), ['a', 'a\u0000']);
      assert.equal(await store.count({ gte: '\u00e9' }), 6);
    });

    it('clears exactly the range', async () => {
      const keys = ['a', 'ab', 'b', 'ba', 'c', 'd'];
      await store.write(keys.map((k) => put(k, k)), { sync: true });
      await store.clear({ gte: 'ab', lt: 'c' });
      assert.deepEqual(keysOf(await store.scan({})), ['a', 'c', 'd']);
      await store.clear({ lt: '' });
      assert.deepEqual(keysOf(await store.scan({})), ['a', 'c', 'd']);
      await store.clear({ gte: 'x' });
      assert.deepEqual(keysOf(await store.scan({})), ['a', 'c', 'd']);
      await store.clear({ gte: 'c' });
      assert.deepEqual(keysOf(await store.scan({})), ['a']);
      await store.write([put('b', 'again')], { sync: false });
      await store.clear({});
      assert.deepEqual(await store.scan({}), []);
      assert.equal(await store.get('a'), undefined);
    });

    it('counts the keys in a range', async () => {
      assert.equal(await store.count({}), 0);
      await store.write(['a', 'b', 'c', 'd'].map((k) => put(k, k)), { sync: true });
      assert.equal(await store.count({}), 4);
      assert.equal(await store.count({ gte: 'b' }), 3);
      assert.equal(await store.count({ lt: 'b' }), 1);
      assert.equal(await store.count({ gte: 'b', lt: 'd' }), 2);
      assert.equal(await store.count({ gte: 'd', lt: 'a' }), 0);
      assert.equal(await store.count({ lt: '' }), 0);
    });

    it('keeps values byte-exact: empty, all 256 byte values, 1 MiB, and views with an offset', async () => {
      const all = new Uint8Array(256).map((_, i) => i);
      const big = new Uint8Array(1024 * 1024);
      const random = prng(42);
      for (let i = 0; i < big.length; i++) big[i] = Math.floor(random() * 256);
      const backing = bytes(9, 9, 1, 2, 3, 9, 9);
      const view = backing.subarray(2, 5);
      await store.write(
        [put('empty', new Uint8Array(0)), put('all', all), put('big', big), put('view', view), put('buffer', Buffer.from([0, 255]))],
        { sync: true },
      );
      assert.deepEqual(await store.get('empty'), new Uint8Array(0));
      assert.deepEqual(await store.get('all'), all);
      const gotBig = await store.get('big');
      assert.ok(gotBig !== undefined && Buffer.compare(gotBig, big) === 0, '1 MiB value differs');
      assert.deepEqual(await store.get('view'), bytes(1, 2, 3));
      assert.deepEqual(new Uint8Array((await store.get('buffer'))!), bytes(0, 255));
      const scanned = new Map(await store.scan({}));
      assert.equal(scanned.get('empty')?.length, 0);
      assert.deepEqual(new Uint8Array(scanned.get('all')!), all);
      assert.equal(Buffer.compare(scanned.get('big')!, big), 0);
    });

    it('keeps values on a SharedArrayBuffer byte-exact (the key-value store merges partitions there)', async () => {
      const shared = new Uint8Array(new SharedArrayBuffer(20_000));
      const random = prng(7);
      for (let i = 0; i < shared.length; i++) shared[i] = Math.floor(random() * 256);
      const copy = new Uint8Array(shared);
      await store.write([put('shared', shared), put('shared-view', shared.subarray(100, 103))], { sync: true });
      const got = await store.get('shared');
      assert.ok(got !== undefined && Buffer.compare(got, copy) === 0, 'value on a SharedArrayBuffer differs');
      assert.deepEqual(await store.get('shared-view'), copy.subarray(100, 103));
      // Stored, not aliased: a later change of the shared memory does not reach the stored value.
      shared[0] = shared[0]! ^ 0xff;
      assert.equal((await store.get('shared'))![0], copy[0]);
    });

    it('copies values: neither the written array nor a returned one aliases the stored bytes', async () => {
      const value = bytes(1, 2, 3);
      await store.write([put('k', value)], { sync: true });
      value[0] = 99;
      const got = (await store.get('k'))!;
      assert.deepEqual(got, bytes(1, 2, 3));
      got[1] = 99;
      const [[, scanned] = ['', new Uint8Array()]] = await store.scan({});
      assert.deepEqual(scanned, bytes(1, 2, 3));
      scanned[2] = 99;
      assert.deepEqual(await store.get('k'), bytes(1, 2, 3));
    });

    it('keeps synced and clean-shutdown data across close and reopen', async () => {
      await store.write([put('synced', 'a'), put('gone', 'x')], { sync: true });
      await store.write([put('unsynced', 'b'), del('gone')], { sync: false });
      await store.close();
      store = makeStorage(dir);
      await store.open();
      assert.deepEqual(await store.scan({}), [
        ['synced', text('a')],
        ['unsynced', text('b')],
      ]);
      await store.write([put('after', 'c')], { sync: true });
      assert.deepEqual(await store.get('after'), text('c'));
    });

    it('rejects every operation after close with StorageError CLOSED, and before open with NOT_OPEN', async () => {
      await store.write([put('k', 'v')], { sync: true });
      await store.close();
      await rejectsWithCode(store.write([put('k', 'w')], { sync: true }), 'CLOSED');
      await rejectsWithCode(store.write([], { sync: true }), 'CLOSED');
      await rejectsWithCode(store.get('k'), 'CLOSED');
      await rejectsWithCode(store.scan({}), 'CLOSED');
      await rejectsWithCode(store.clear({}), 'CLOSED');
      await rejectsWithCode(store.count({}), 'CLOSED');
      await store.close(); // closing twice is fine

      const unopened = makeStorage(join(dir, 'other'));
      await rejectsWithCode(unopened.write([put('k', 'v')], { sync: true }), 'NOT_OPEN');
      await rejectsWithCode(unopened.get('k'), 'NOT_OPEN');
      await unopened.close();
    });

    it('tolerates open() on an open store', async () => {
      await store.write([put('k', 'v')], { sync: true });
      await store.open();
      assert.deepEqual(await store.get('k'), text('v'));
    });

    it('applies a batch of 1,000 ops as a whole, or not at all when one op is invalid', async () => {
      const ops = Array.from({ length: 1000 }, (_, i) => put(`batch/${String(i).padStart(4, '0')}`, bytes(i & 0xff, i >> 8)));
      const bad = [...ops.map((op) => ({ ...op, key: `bad/${op.key}` })), put('', 'empty key')];
      const error = await rejectsWithCode(store.write(bad, { sync: true }), 'WRITE_FAILED');
      assert.match(error.message, /empty/);
      assert.equal(await store.count({}), 0);
      await store.write(ops, { sync: true });
      assert.equal(await store.count({}), 1000);
      assert.equal(await store.count({ gte: 'bad/', lt: 'bad0' }), 0);
      const entries = await store.scan({ gte: 'batch/' });
      assert.deepEqual(
        keysOf(entries),
        ops.map((op) => op.key),
      );
      assert.deepEqual(entries[999]?.[1], bytes(999 & 0xff, 999 >> 8));
    });

    it('rejects keys that have no UTF-8 form or are empty, and range bounds with lone surrogates', async () => {
      await rejectsWithCode(store.write([put('', 'v')], { sync: true }), 'WRITE_FAILED');
      await rejectsWithCode(store.write([put('a\ud800', 'v')], { sync: true }), 'WRITE_FAILED');
      await rejectsWithCode(store.write([del('\udc00b')], { sync: true }), 'WRITE_FAILED');
      await rejectsWithCode(store.get(''), 'READ_FAILED');
      await rejectsWithCode(store.get('\ud83d'), 'READ_FAILED');
      await rejectsWithCode(store.scan({ gte: '\ud83d' }), 'READ_FAILED');
      await rejectsWithCode(store.count({ lt: 'x\udfff' }), 'READ_FAILED');
      await rejectsWithCode(store.clear({ lt: 'x\udfff' }), 'WRITE_FAILED');
      const notBytes = { type: 'put', key: 'k', value: [1, 2, 3] } as unknown as WriteOp;
      await rejectsWithCode(store.write([notBytes], { sync: true }), 'WRITE_FAILED');
      assert.equal(await store.count({}), 0);
    });

    it('scans 10,000 keys in byte order', async () => {
      const random = prng(7);
      const alphabet = ['a', 'b', 'z', '0', '\u00e9', '\u4e2d', '\uffff', '\u{1f600}', '/'];
      const keySet = new Set<string>();
      while (keySet.size < 10_000) {
        let key = '';
        const length = 1 + Math.floor(random() * 6);
        for (let i = 0; i < length; i++) key += alphabet[Math.floor(random() * alphabet.length)];
        keySet.add(key);
      }
      const keys = [...keySet];
      for (let i = 0; i < keys.length; i += 1000) {
        await store.write(
          keys.slice(i, i + 1000).map((k) => put(k, k)),
          { sync: false },
        );
      }
      const expected = keys.slice().sort(byUtf8Bytes);
      const entries = await store.scan({});
      assert.equal(entries.length, 10_000);
      assert.deepEqual(keysOf(entries), expected);
      assert.ok(entries.every(([key, value]) => Buffer.compare(value, text(key)) === 0));
      assert.equal(await store.count({}), 10_000);
      const gte = expected[2500]!;
      const lt = expected[7500]!;
      assert.deepEqual(keysOf(await store.scan({ gte, lt })), expected.slice(2500, 7500));
    });

    it('keeps a horizon record apart from the keys: read back after close and open, replaced atomically', async () => {
      assert.equal(await store.readHorizon(), undefined);
      await store.writeHorizon(bytes(1, 2, 3));
      await store.write([put('k', 'v')], { sync: true });
      assert.deepEqual(await store.readHorizon(), bytes(1, 2, 3));
      await store.writeHorizon(bytes(4));
      await store.close();
      store = makeStorage(dir);
      await store.open();
      assert.deepEqual(await store.readHorizon(), bytes(4));
      assert.deepEqual(keysOf(await store.scan({})), ['k'], 'the record is not a key');
      await store.clear({});
      assert.deepEqual(await store.readHorizon(), bytes(4), 'clearing every key leaves the record');
      assert.equal(store.damage, undefined);
    });

    it('lets operations in flight finish before close resolves', async () => {
      await store.write([put('a', '1'), put('b', '2')], { sync: true });
      const scanning = store.scan({});
      const writing = store.write([put('c', '3')], { sync: true });
      const closing = store.close();
      await writing;
      assert.deepEqual(keysOf(await scanning), ['a', 'b']);
      await closing;
      store = makeStorage(dir);
      await store.open();
      assert.deepEqual(keysOf(await store.scan({})), ['a', 'b', 'c']);
    });
  });
}

// ----- run it against both implementations -----

describeStorageCompliance('RocksStorage', (dir) => new RocksStorage({ path: join(dir, 'db') }));

const memoryStores = new Map<string, MemoryStorage>();
after(() => memoryStores.clear());
describeStorageCompliance('MemoryStorage', (dir) => {
  let store = memoryStores.get(dir);
  if (store === undefined) {
    store = new MemoryStorage();
    memoryStores.set(dir, store);
  }
  return store;
});

// ----- RocksDB only -----

describe('RocksStorage', () => {
  let dir: string;

  beforeEach(async () => {
    dir = await freshDir();
  });

  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('opens RocksDB with the write buffer it was given (default 16 MiB), and refuses one out of bounds before opening anything', async () => {
    /** write_buffer_size in the OPTIONS file RocksDB writes at every open (the newest one). */
    const writeBufferOf = async (path: string): Promise<number> => {
      const files = (await readdir(path)).filter((f) => f.startsWith('OPTIONS-')).sort();
      const text = await readFile(join(path, files[files.length - 1]!), 'utf8');
      const m = /^\s*write_buffer_size=(\d+)$/m.exec(text);
      assert.ok(m, 'OPTIONS names write_buffer_size');
      return Number(m[1]);
    };
    const byDefault = new RocksStorage({ path: join(dir, 'default') });
    await byDefault.open();
    await byDefault.write([put('k', 'v')], { sync: true });
    await byDefault.close();
    assert.equal(await writeBufferOf(join(dir, 'default')), 16 * 1024 * 1024);
    const small = new RocksStorage({ path: join(dir, 'small'), writeBufferBytes: 8 * 1024 * 1024 });
    await small.open();
    await small.close();
    assert.equal(await writeBufferOf(join(dir, 'small')), 8 * 1024 * 1024);
    for (const bad of [0, 1024 * 1024 - 1, 1024 * 1024 * 1024 + 1, 1024 * 1024 + 0.5, Number.NaN]) {
      assert.throws(() => new RocksStorage({ path: join(dir, 'bad'), writeBufferBytes: bad }), /writeBufferBytes must be an integer in 1048576\.\.1073741824/);
    }
    assert.deepEqual((await readdir(dir)).sort(), ['default', 'small'], 'nothing was created for a refused option');
  });

  it("reports RocksDB's memory by its own accounting: the write buffer fills with writes, a flushed file shows on disk, nothing once closed", async () => {
    const path = join(dir, 'db');
    let store = new RocksStorage({ path });
    assert.equal(store.memoryUsage(), undefined, 'not open yet');
    await store.open();
    const empty = store.memoryUsage()!;
    assert.equal(empty.sstBytes, 0);
    const value = new Uint8Array(1000).fill(7);
    await store.write(Array.from({ length: 2000 }, (_, i) => put(`k/${String(i).padStart(5, '0')}`, value)), { sync: true });
    const written = store.memoryUsage()!;
    assert.ok(written.memtables >= empty.memtables + 2000 * 1000, `the memtables hold the 2 MB written (${empty.memtables} -> ${written.memtables})`);
    for (const n of Object.values(written)) assert.ok(Number.isSafeInteger(n) && n >= 0);
    await store.close();
    assert.equal(store.memoryUsage(), undefined, 'closed');
    // Reopened: RocksDB recovered the write-ahead log into an SST file.
    store = new RocksStorage({ path });
    await store.open();
    const reopened = store.memoryUsage()!;
    assert.ok(reopened.sstBytes > 0, `the writes are in an SST file now (${reopened.sstBytes} bytes)`);
    await store.close();
  });

  it("reports RocksDB's tree of files and its compactions: level 0 files merged into level 1, what the merging wrote, nothing once closed", async () => {
    const path = join(dir, 'db');
    // The smallest write buffer: each 1 MiB of writes becomes a level-0 file, and 4 of them are merged into level 1.
    const store = new RocksStorage({ path, writeBufferBytes: 1024 * 1024 });
    assert.equal(store.lsm(), undefined, 'not open yet');
    await store.open();
    const empty = store.lsm()!;
    assert.deepEqual(empty.levelBytes.slice(0, 2), [0, 0]);
    assert.equal(empty.compactionWrittenBytes, 0);
    // Random (incompressible) values, the same 4,000 keys again in each round: 4 MB per round, 48 MB in
    // all, so that the merging writes more than RocksDB's statistics resolve (0.01 GB).
    for (let round = 0; round < 12; round++) {
      for (let from = 0; from < 4000; from += 500) {
        await store.write(Array.from({ length: 500 }, (_, j) => put(`k/${String(from + j).padStart(5, '0')}`, new Uint8Array(randomBytes(1000)))), { sync: false });
      }
    }
    const GB = 2 ** 30;
    const deadline = Date.now() + 20_000;
    let lsm = store.lsm()!;
    while ((lsm.compactionReadBytes < 0.02 * GB || lsm.runningCompactions > 0 || lsm.level0Files >= 4) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
      lsm = store.lsm()!;
    }
    // The 48 MB left memory in flushes (the last memtable, up to 1 MiB, may not have yet).
    assert.ok(lsm.flushWrittenBytes >= 40e6 && lsm.flushWrittenBytes <= 60e6, `flushes wrote the 48 MB to level 0 (${lsm.flushWrittenBytes} bytes)`);
    assert.ok(lsm.compactionReadBytes >= 0.02 * GB, `compactions read the level-0 and level-1 files they merged (${lsm.compactionReadBytes} bytes)`);
    // RocksDB's write figure counts the flushes too; the merging's own output is the rest, and a merge
    // writes no more than it reads (overwritten keys are dropped). Both figures are rounded to 0.01 GB.
    assert.ok(lsm.compactionWrittenBytes >= lsm.flushWrittenBytes - 0.005 * GB, `the write figure includes the flushes (${lsm.compactionWrittenBytes} bytes)`);
    assert.ok(
      lsm.compactionWrittenBytes - lsm.flushWrittenBytes <= lsm.compactionReadBytes + 0.01 * GB,
      `the merging wrote no more than it read (${lsm.compactionWrittenBytes} - ${lsm.flushWrittenBytes} written, ${lsm.compactionReadBytes} read)`,
    );
    assert.ok(lsm.levelBytes[1]! >= 3 * 2 ** 20, `level 1 holds the 4 MB of distinct keys, in whole MiB (${lsm.levelBytes[1]})`);
    assert.ok(lsm.level0Files < 4, `level 0 was merged down (${lsm.level0Files} files left)`);
    assert.equal(lsm.writeStopped, false);
    for (const n of [lsm.pendingCompactionBytes, lsm.runningCompactions, lsm.compactionSeconds, lsm.writeStalls]) assert.ok(Number.isFinite(n) && n >= 0);
    await store.close();
    assert.equal(store.lsm(), undefined, 'closed');
  });

  it("reads RocksDB's level and compaction statistics from its property texts, and nothing from text it does not recognise", () => {
    const levels = 'Level Files Size(MB)\n--------------------\n  0       10        6\n  1        2       84\n  2        0        0\n';
    assert.deepEqual(parseLevelStats(levels), [6 * 2 ** 20, 84 * 2 ** 20, 0]);
    assert.equal(parseLevelStats(''), undefined);
    assert.equal(parseLevelStats('Level Files Size(MB)\n  1  2  84\n'), undefined, 'levels must start at 0 and follow in order');
    const cf =
      'Uptime(secs): 60.0 total, 0.0 interval\n' +
      'Flush(GB): cumulative 0.045, interval 0.045\n' +
      'Cumulative compaction: 1.50 GB write, 25.60 MB/s write, 2.25 GB read, 38.40 MB/s read, 12.5 seconds\n' +
      'Interval compaction: 0.00 GB write, 0.00 MB/s write, 0.00 GB read, 0.00 MB/s read, 0.0 seconds\n' +
      'Stalls(count): 2 level0_slowdown, 1 level0_slowdown_with_compaction, 0 level0_numfiles, 0 level0_numfiles_with_compaction, 3 stop for pending_compaction_bytes, 0 slowdown for pending_compaction_bytes, 0 memtable_compaction, 4 memtable_slowdown, interval 0 total count\n';
    assert.deepEqual(parseCompactionStats(cf), { compactionWrittenBytes: 1.5 * 2 ** 30, flushWrittenBytes: Math.round(0.045 * 2 ** 30), compactionReadBytes: 2.25 * 2 ** 30, compactionSeconds: 12.5, writeStalls: 10 });
    assert.deepEqual(parseCompactionStats('nothing here'), { compactionWrittenBytes: 0, flushWrittenBytes: 0, compactionReadBytes: 0, compactionSeconds: 0, writeStalls: 0 });
  });

  it('hands a large batch to RocksDB in slices, letting the event loop run between them, and a restart finds it whole', async () => {
    const path = join(dir, 'db');
    let store = new RocksStorage({ path });
    await store.open();
    await store.write([put('small', 'v')], { sync: true });
    assert.equal(store.slicedWrites, 0);
    const ops: WriteOp[] = [];
    for (let i = 0; i < 3000; i++) ops.push(put(`p/${String(i).padStart(5, '0')}`, new Uint8Array(3000).fill(i & 0xff)));
    let turns = 0;
    let done = false;
    const tick = (): void => {
      if (done) return;
      turns++;
      setImmediate(tick);
    };
    setImmediate(tick);
    const writing = store.write(ops, { sync: true });
    // Between the slices, readers see the state before the batch: it is one atomic write.
    await new Promise<void>((r) => setImmediate(r));
    assert.equal(await store.get('p/00000'), undefined);
    assert.deepEqual(await store.get('small'), text('v'));
    await writing;
    done = true;
    assert.equal(store.slicedWrites, 1);
    // 9 MB in slices of at most 4 MiB: at least two turns of the loop ran while it was built.
    assert.ok(turns >= 2, `the loop ran ${turns} turns during the write`);
    await store.close();
    store = new RocksStorage({ path });
    await store.open();
    assert.equal(await store.count({ gte: 'p/', lt: 'p0' }), 3000);
    assert.deepEqual(await store.get('p/02999'), new Uint8Array(3000).fill(2999 & 0xff));
    await store.close();
  });

  it('a large batch with a malformed op after several slices applies nothing (each op is encoded in its slice)', async () => {
    const path = join(dir, 'db');
    const store = new RocksStorage({ path });
    await store.open();
    // 10,000 ops: five slices of 2,048 are handed over before the lone surrogate's.
    const ops: WriteOp[] = [];
    for (let i = 0; i < 10_000; i++) ops.push(put(`r/${String(i).padStart(5, '0')}`, 'v'));
    ops[9_999] = put('r/\ud800', 'v');
    const error = await rejectsWithCode(store.write(ops, { sync: true }), 'WRITE_FAILED');
    assert.match(error.message, /lone surrogate/);
    assert.equal(store.slicedWrites, 1);
    assert.equal(await store.count({}), 0);
    ops[9_999] = put('r/09999', 'v');
    await store.write(ops, { sync: true });
    assert.equal(await store.count({}), 10_000);
    await store.close();
  });

  it('reports a write-ahead log damaged in the middle (acknowledged writes lost) when it opens, but not a clean one', async () => {
    const path = join(dir, 'db');
    let store = new RocksStorage({ path });
    await store.open();
    for (let i = 0; i < 8; i++) await store.write([put(`k${i}`, bytes(...new Array(300).fill(i)))], { sync: true });
    // Crash: the process dies without closing (the log is not flushed into a table).
    const log = (await readdir(path)).find((n) => /^\d+\.log$/.test(n))!;
    const clean = join(dir, 'clean');
    const damaged = join(dir, 'damaged');
    await cp(path, clean, { recursive: true });
    await cp(path, damaged, { recursive: true });
    await store.close();
    store = new RocksStorage({ path: clean });
    await store.open();
    assert.equal(store.damage, undefined, 'a clean log');
    assert.equal(await store.count({}), 8);
    await store.close();
    const file = join(damaged, log);
    const wal = await readFile(file);
    wal.fill(0x5a, 400, 800);
    await writeFile(file, wal);
    store = new RocksStorage({ path: damaged });
    await store.open();
    assert.match(store.damage ?? '', /write-ahead log \d+\.log damaged at byte \d+ \(checksum mismatch\), with valid records after it/);
    // RocksDB itself dropped everything from the damage on, silently.
    assert.ok((await store.count({})) < 8);
    await store.close();
  });

  it('creates missing parent directories', async () => {
    const store = new RocksStorage({ path: join(dir, 'a', 'b', 'db') });
    await store.open();
    await store.write([put('k', 'v')], { sync: true });
    assert.deepEqual(await store.get('k'), text('v'));
    await store.close();
  });

  it('fails with OPEN_FAILED on a missing database when createIfMissing is false', async () => {
    const path = join(dir, 'missing');
    const store = new RocksStorage({ path, createIfMissing: false });
    const error = await rejectsWithCode(store.open(), 'OPEN_FAILED');
    assert.ok(error.message.includes(path), error.message);
    await rejectsWithCode(store.get('k'), 'NOT_OPEN');
  });

  it('fails with OPEN_FAILED and a one-line message when the path is a regular file', async () => {
    const path = join(dir, 'file');
    await writeFile(path, 'not a database');
    const error = await rejectsWithCode(new RocksStorage({ path }).open(), 'OPEN_FAILED');
    assert.ok(error.message.includes(path), error.message);
    assert.doesNotMatch(error.message, /[\r\n]/);
  });

  it('fails with OPEN_FAILED when the parent of the path is a regular file', async () => {
    const file = join(dir, 'file');
    await writeFile(file, 'not a directory');
    const path = join(file, 'db');
    const error = await rejectsWithCode(new RocksStorage({ path }).open(), 'OPEN_FAILED');
    assert.ok(error.message.includes(path), error.message);
    assert.doesNotMatch(error.message, /[\r\n]/);
  });

  it('fails with OPEN_FAILED when another handle holds the LOCK, and opens once it is released', async () => {
    const path = join(dir, 'db');
    const first = new RocksStorage({ path });
    await first.open();
    await first.write([put('k', 'v')], { sync: true });
    const second = new RocksStorage({ path });
    const error = await rejectsWithCode(second.open(), 'OPEN_FAILED');
    assert.ok(error.message.includes(path), error.message);
    assert.doesNotMatch(error.message, /[\r\n]/);
    await rejectsWithCode(second.write([put('k', 'w')], { sync: true }), 'NOT_OPEN');
    await first.close();
    await second.open();
    assert.deepEqual(await second.get('k'), text('v'));
    await second.close();
  });

  it('reopens the same instance after close', async () => {
    const store = new RocksStorage({ path: join(dir, 'db') });
    await store.open();
    await store.write([put('k', 'v')], { sync: true });
    await store.close();
    await store.open();
    assert.deepEqual(await store.get('k'), text('v'));
    await store.close();
  });

  it('keeps a synced batch when the writing process is killed with SIGKILL right after the write', { timeout: 120_000 }, async () => {
    const path = join(dir, 'db');
    // .mts: outside the project there is no package.json with "type": "module", and top-level await needs ESM.
    const script = join(dir, 'writer.mts');
    const moduleUrl = pathToFileURL(join(projectRoot, 'src', 'storage', 'rocksdb.ts')).href;
    await writeFile(
      script,
      [
        `import { RocksStorage } from ${JSON.stringify(moduleUrl)};`,
        `const store = new RocksStorage({ path: process.argv[2] });`,
        `await store.open();`,
        `const ops = [];`,
        `for (let i = 0; i < 100; i++) ops.push({ type: 'put', key: 'k' + String(i).padStart(3, '0'), value: new Uint8Array([i, 255 - i]) });`,
        `await store.write(ops, { sync: true });`,
        `process.stdout.write('written\\n');`,
        `setInterval(() => {}, 1 << 30);`,
        '',
      ].join('\n'),
    );
    // cwd is the project root so that `--import tsx` resolves.
    const child = spawn(process.execPath, ['--import', 'tsx', script, path], {
      cwd: projectRoot,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const exit = await new Promise<{ code: number | null; signal: NodeJS.Signals | null; sawWritten: boolean }>(
      (resolvePromise, reject) => {
        let sawWritten = false;
        child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
          stdout += chunk;
          if (!sawWritten && stdout.includes('written')) {
            sawWritten = true;
            child.kill('SIGKILL');
          }
        });
        child.on('error', reject);
        child.on('exit', (code, signal) => resolvePromise({ code, signal, sawWritten }));
      },
    );
    assert.ok(exit.sawWritten, `child exited (code ${exit.code}) without writing: ${stderr}`);
    assert.equal(exit.signal, 'SIGKILL');

    const store = new RocksStorage({ path });
    await store.open();
    const entries = await store.scan({});
    assert.equal(entries.length, 100);
    entries.forEach(([key, value], i) => {
      assert.equal(key, 'k' + String(i).padStart(3, '0'));
      assert.deepEqual(new Uint8Array(value), bytes(i, 255 - i));
    });
    await store.close();
  });
});

// ----- MemoryStorage only: the crash model -----

describe('MemoryStorage crash model', () => {
  async function opened(): Promise<MemoryStorage> {
    const store = new MemoryStorage();
    await store.open();
    return store;
  }

  it('keeps synced writes and drops unsynced ones on crash, and is closed until reopened', async () => {
    const store = await opened();
    await store.write([put('synced', '1')], { sync: true });
    await store.write([put('unsynced', '2'), del('synced')], { sync: false });
    assert.deepEqual(keysOf(await store.scan({})), ['unsynced']);
    store.crash();
    await rejectsWithCode(store.get('synced'), 'CLOSED');
    await store.open();
    assert.deepEqual(await store.scan({}), [['synced', text('1')]]);
    assert.equal(store.pendingChanges, 0);
  });

  it('makes earlier unsynced writes durable at a later synced write', async () => {
    const store = await opened();
    await store.write([put('a', '1')], { sync: false });
    await store.write([put('b', '2')], { sync: false });
    await store.write([put('c', '3')], { sync: true });
    await store.write([put('d', '4')], { sync: false });
    store.crash();
    await store.open();
    assert.deepEqual(keysOf(await store.scan({})), ['a', 'b', 'c']);
  });

  it('makes unsynced writes durable at flush()', async () => {
    const store = await opened();
    await store.write([put('a', '1'), put('b', '2')], { sync: false });
    await store.write([del('a')], { sync: false });
    assert.equal(store.pendingChanges, 3);
    store.flush();
    assert.equal(store.pendingChanges, 0);
    await store.write([put('c', '3')], { sync: false });
    store.crash();
    await store.open();
    assert.deepEqual(keysOf(await store.scan({})), ['b']);
  });

  it('treats clear() as unsynced, like RocksDB', async () => {
    const store = await opened();
    await store.write(['a', 'b', 'c'].map((k) => put(k, k)), { sync: true });
    await store.clear({ gte: 'b' });
    assert.deepEqual(keysOf(await store.scan({})), ['a']);
    store.crash();
    await store.open();
    assert.deepEqual(keysOf(await store.scan({})), ['a', 'b', 'c']);
    await store.clear({ gte: 'b' });
    await store.write([put('d', 'd')], { sync: true });
    store.crash();
    await store.open();
    assert.deepEqual(keysOf(await store.scan({})), ['a', 'd']);
  });

  it('does not treat an empty synced write as a barrier (RocksStorage does no I/O for it)', async () => {
    const store = await opened();
    await store.write([put('a', '1')], { sync: false });
    await store.write([], { sync: true });
    store.crash();
    await store.open();
    assert.equal(await store.get('a'), undefined);
  });

  it('keeps non-durable writes across a clean close, but a later crash still drops them', async () => {
    const store = await opened();
    await store.write([put('a', '1')], { sync: true });
    await store.write([put('b', '2')], { sync: false });
    await store.close();
    await store.open();
    assert.deepEqual(keysOf(await store.scan({})), ['a', 'b']);
    await store.close();
    store.crash();
    await store.open();
    assert.deepEqual(keysOf(await store.scan({})), ['a']);
  });

  it('snapshotDurable() copies only the durable contents into an independent, unopened store', async () => {
    const store = await opened();
    await store.write([put('a', '1')], { sync: true });
    await store.write([put('b', '2')], { sync: false });
    const copy = store.snapshotDurable();
    await rejectsWithCode(copy.get('a'), 'NOT_OPEN');
    await copy.open();
    assert.deepEqual(await copy.scan({}), [['a', text('1')]]);
    await copy.write([put('c', '3')], { sync: true });
    await store.write([put('d', '4')], { sync: true });
    assert.deepEqual(keysOf(await copy.scan({})), ['a', 'c']);
    assert.deepEqual(keysOf(await store.scan({})), ['a', 'b', 'd']);
    copy.crash();
    await copy.open();
    assert.deepEqual(keysOf(await copy.scan({})), ['a', 'c']);
  });

  it('compareUtf8 agrees with comparing UTF-8 bytes on random strings', () => {
    const random = prng(2024);
    const pick = (): string => {
      const r = random();
      if (r < 0.3) return String.fromCharCode(Math.floor(random() * 0x80));
      if (r < 0.5) return String.fromCharCode(0x80 + Math.floor(random() * 0x780));
      if (r < 0.7) return String.fromCharCode(0x800 + Math.floor(random() * (0xd800 - 0x800)));
      if (r < 0.85) return String.fromCharCode(0xe000 + Math.floor(random() * 0x2000));
      return String.fromCodePoint(0x10000 + Math.floor(random() * 0x100000));
    };
    const strings: string[] = [];
    for (let i = 0; i < 2000; i++) {
      let s = '';
      const length = Math.floor(random() * 4);
      for (let j = 0; j < length; j++) s += pick();
      strings.push(s);
    }
    for (let i = 0; i + 1 < strings.length; i++) {
      const a = strings[i]!;
      const b = strings[i + 1]!;
      assert.equal(Math.sign(compareUtf8(a, b)), Math.sign(byUtf8Bytes(a, b)), `${JSON.stringify(a)} vs ${JSON.stringify(b)}`);
    }
    assert.deepEqual(strings.slice().sort(compareUtf8), strings.slice().sort(byUtf8Bytes));
  });
});
