/**
 * The key-value store at scale: the put-many operation (bulk load) and the store's compact state
 * (each partition's canonical bytes plus the changes since they were last read, merged at a read).
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import {
  PUT_MANY_ENTRIES_MAX,
  VALUE_BYTES_MAX,
  decodePutMany,
  decodeResult,
  encodeOp,
  encodePutMany,
  isPutMany,
  type Value,
} from '../../src/app/kv-ops.ts';
import { KvStore, PartitionBytes } from '../../src/app/kv.ts';
import { leafDigest } from '../../src/core/statetree.ts';
import { sha256 as nodeSha256 } from '../../src/crypto/node.ts';
import { sha256 as simSha256 } from '../../src/sim/crypto.ts';
import { encodeCbor } from '../../src/core/encoding.ts';
import type { ExecuteContext } from '../../src/app/types.ts';

const CTX: ExecuteContext = { seq: 1, client: 0, timestamp: 1, timeMs: 0 };

function result(store: KvStore, op: Uint8Array): unknown {
  const r = decodeResult(store.execute(op, CTX));
  assert.ok(r.ok);
  return r.value;
}

/** xorshift32. */
function rng(seed: number): (n: number) => number {
  let s = seed >>> 0 || 1;
  return (n) => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s % n;
  };
}

describe('put-many', () => {
  test('round-trips canonically and is recognised by its head', () => {
    const op = encodePutMany([
      ['a', 'text'],
      ['b', Uint8Array.of(1, 2, 3)],
    ]);
    assert.ok(isPutMany(op));
    assert.ok(!isPutMany(encodeOp({ type: 'put', key: 'a', value: 'x' })));
    const d = decodePutMany(op);
    assert.ok(d.ok);
    assert.deepEqual(d.value.entries, [
      ['a', 'text'],
      ['b', Uint8Array.of(1, 2, 3)],
    ]);
  });

  test('carries 1..PUT_MANY_ENTRIES_MAX pairs', () => {
    assert.throws(() => encodePutMany([]), TypeError);
    const many = Array.from({ length: PUT_MANY_ENTRIES_MAX + 1 }, (_, i): [string, Value] => [`k${i}`, 'v']);
    assert.throws(() => encodePutMany(many), TypeError);
    assert.ok(decodePutMany(encodePutMany(many.slice(0, PUT_MANY_ENTRIES_MAX))).ok);
    const store = new KvStore({ partitionCount: 4 });
    // An over-long list built by hand (the encoder refuses it) is a malformed op that changes nothing.
    const over = new Uint8Array(encodeCbor([4, many]));
    assert.equal(decodePutMany(over).ok, false);
    assert.deepEqual(result(store, over), { type: 'error', code: 'MALFORMED_OP', message: 'operation is not a valid encoded key-value operation' });
    assert.deepEqual(result(store, Uint8Array.of(0x82, 0x04, 0x80)), { type: 'error', code: 'MALFORMED_OP', message: 'operation is not a valid encoded key-value operation' });
    assert.equal(store.size, 0);
  });

  test('applies every pair in order, answers the put result, and is not read-only', () => {
    const store = new KvStore({ partitionCount: 4 });
    const op = encodePutMany([
      ['a', '1'],
      ['b', Uint8Array.of(2)],
      ['a', '3'],
    ]);
    assert.equal(store.isReadOnly(op), false);
    assert.deepEqual(result(store, op), { type: 'put' });
    assert.equal(store.size, 2);
    assert.equal(store.get('a'), '3');
    assert.deepEqual(store.get('b'), Uint8Array.of(2));
  });

  test('a pair over a limit fails the whole operation and changes nothing', () => {
    const store = new KvStore({ partitionCount: 4 });
    store.apply({ type: 'put', key: 'x', value: 'old' });
    const before = store.digest();
    const big = new Uint8Array(VALUE_BYTES_MAX + 1);
    assert.deepEqual((result(store, encodePutMany([['x', 'new'], ['y', big]])) as { code: string }).code, 'VALUE_TOO_LARGE');
    assert.deepEqual((result(store, encodePutMany([['x', 'new'], ['', 'v']])) as { code: string }).code, 'KEY_EMPTY');
    assert.equal(store.get('x'), 'old');
    assert.equal(store.size, 1);
    assert.deepEqual(store.digest(), before);
  });

  test('equals the same puts one by one (same partitions and digest)', () => {
    const a = new KvStore({ partitionCount: 16 });
    const b = new KvStore({ partitionCount: 16 });
    const pairs = Array.from({ length: 500 }, (_, i): [string, Value] => [`key-${(i * 7919) % 1000}`, i % 3 === 0 ? `t${i}` : Uint8Array.of(i & 0xff, i >> 8)]);
    result(a, encodePutMany(pairs));
    for (const [key, value] of pairs) result(b, encodeOp({ type: 'put', key, value }));
    assert.deepEqual(a.digest(), b.digest());
    for (let i = 0; i < 16; i++) assert.deepEqual(a.readPartition(i), b.readPartition(i));
  });
});

describe('compact state: changes merged when a partition is read', () => {
  const KEYS = Array.from({ length: 300 }, (_, i) => (i % 10 === 0 ? `wide-\u{1F600}-${i}` : i % 7 === 0 ? `\uFB01-${i}` : `k${i}`));
  const value = (r: (n: number) => number): Value => (r(2) === 0 ? `v${r(1000)}` : Uint8Array.from({ length: r(5) }, () => r(256)));

  for (const seed of [1, 2, 3, 4, 5]) {
    test(`seed ${seed}: reads at random moments change nothing; state equals a fresh store's and a restored one's`, () => {
      const r = rng(seed);
      const a = new KvStore({ partitionCount: 4 });
      const b = new KvStore({ partitionCount: 4 });
      const model = new Map<string, Value>();
      for (let step = 0; step < 4000; step++) {
        const key = KEYS[r(KEYS.length)]!;
        let op: Uint8Array;
        switch (r(5)) {
          case 0:
          case 1: {
            const v = value(r);
            op = encodeOp({ type: 'put', key, value: v });
            model.set(key, v);
            break;
          }
          case 2:
            op = encodeOp({ type: 'del', key });
            model.delete(key);
            break;
          case 3: {
            const expected = model.get(key) ?? null;
            const next = r(3) === 0 ? null : value(r);
            op = encodeOp({ type: 'cas', key, expected, next });
            if (next === null) model.delete(key);
            else model.set(key, next);
            break;
          }
          default: {
            const pairs = Array.from({ length: 1 + r(20) }, (): [string, Value] => [KEYS[r(KEYS.length)]!, value(r)]);
            op = encodePutMany(pairs);
            for (const [k, v] of pairs) model.set(k, v);
          }
        }
        assert.deepEqual(a.execute(op, CTX), b.execute(op, CTX));
        // Store a is read at random moments (checkpoints); b only at the end.
        if (r(20) === 0) a.readPartition(r(4));
        if (r(200) === 0) a.digest();
        if (r(50) === 0) assert.equal(a.size, model.size);
      }
      assert.equal(a.size, model.size);
      assert.equal(b.size, model.size);
      for (const [k, v] of model) assert.deepEqual(a.get(k), v);
      assert.deepEqual(a.digest(), b.digest());
      for (let i = 0; i < 4; i++) assert.deepEqual(a.readPartition(i), b.readPartition(i));
      // A fresh store holding the same keys, written in another order, has the same bytes.
      const c = new KvStore({ partitionCount: 4 });
      for (const [k, v] of [...model].reverse()) c.apply({ type: 'put', key: k, value: v });
      assert.deepEqual(c.snapshot(), a.snapshot());
      const d = new KvStore({ partitionCount: 4 });
      assert.ok(d.restore(a.snapshot()).ok);
      assert.deepEqual(d.digest(), a.digest());
      for (const [k, v] of model) assert.deepEqual(d.get(k), v);
      let keys = 0;
      for (let i = 0; i < 4; i++) keys += d.keyCount(i);
      assert.equal(keys, model.size);
    });
  }

  test('bytes returned by readPartition stay as they were after later changes', () => {
    const s = new KvStore({ partitionCount: 1 });
    s.apply({ type: 'put', key: 'a', value: 'x' });
    const before = s.readPartition(0);
    const copy = before.slice();
    s.apply({ type: 'put', key: 'a', value: 'y' });
    s.apply({ type: 'put', key: 'b', value: 'z' });
    assert.notDeepEqual(s.readPartition(0), copy);
    assert.deepEqual(before, copy);
  });

  test('the store keeps copies: changing the op bytes or the caller\'s arrays afterwards changes nothing', () => {
    // execute() decodes without copies and the store copies what it keeps (small arrays into shared
    // chunks, large ones on their own): sizes around the chunking limits, keys around the scratch size.
    const sizes = [0, 1, 100, 4095, 4096, 4097, 65536, 70000];
    const longKey = '\u20ac'.repeat(341); // 1,023 UTF-8 bytes
    const s = new KvStore({ partitionCount: 8 });
    const model = new Map<string, Value>();
    const ops: Uint8Array[] = [];
    for (let round = 0; round < 3; round++) {
      for (const size of sizes) {
        const key = `${round}-${size}`;
        const value = Uint8Array.from({ length: size }, (_, i) => (i * 31 + size + round) & 0xff);
        const op = encodeOp({ type: 'put', key, value });
        result(s, op);
        ops.push(op);
        model.set(key, value.slice());
      }
      // Enough values to fill several 64 KiB chunks, through put-many (views into one request).
      const pairs = Array.from({ length: 2000 }, (_, i): [string, Value] => [`many-${round}-${i}`, Uint8Array.from({ length: 100 }, (_, j) => (i + j + round) & 0xff)]);
      const many = encodePutMany(pairs);
      result(s, many);
      ops.push(many);
      for (const [k, v] of pairs) model.set(k, (v as Uint8Array).slice());
      const direct = Uint8Array.of(1, 2, 3);
      s.apply({ type: 'put', key: longKey, value: direct });
      direct[0] = 99;
      model.set(longKey, Uint8Array.of(1, 2, 3));
      // Scribble over every request the store has executed.
      for (const op of ops) op.fill(0xee);
      if (round === 1) for (let i = 0; i < 8; i++) s.readPartition(i); // merge half-way
    }
    for (const [k, v] of model) assert.deepEqual(s.get(k), v, k);
    assert.equal(s.size, model.size);
    const fresh = new KvStore({ partitionCount: 8 });
    for (const [k, v] of model) fresh.apply({ type: 'put', key: k, value: v });
    assert.deepEqual(s.digest(), fresh.digest());
    // A lookup key longer than the encoding scratch is simply absent.
    assert.equal(s.get('x'.repeat(5000)), null);
  });

  test('byte values handed out by get() are copies', () => {
    const s = new KvStore({ partitionCount: 1 });
    s.apply({ type: 'put', key: 'a', value: Uint8Array.of(1, 2) });
    s.readPartition(0);
    const v = s.get('a') as Uint8Array;
    v[0] = 9;
    assert.deepEqual(s.get('a'), Uint8Array.of(1, 2));
  });
});

describe('loadPartition (recovery from the replica\'s own disk)', () => {
  test('loads what readPartition produced, with the same digest, without copying', () => {
    const a = new KvStore({ partitionCount: 8 });
    for (let i = 0; i < 200; i++) a.apply({ type: 'put', key: `k${i}`, value: i % 2 === 0 ? `t${i}` : Uint8Array.of(i) });
    const b = new KvStore({ partitionCount: 8 });
    for (let i = 0; i < 8; i++) assert.ok(b.loadPartition(i, a.readPartition(i).slice()).ok);
    assert.deepEqual(b.digest(), a.digest());
    assert.equal(b.size, 200);
    assert.equal(b.get('k10'), 't10');
    assert.deepEqual(b.takeDirtyPartitions(), [0, 1, 2, 3, 4, 5, 6, 7]);
  });

  test('refuses bytes that execute could trip on: truncation, disorder, bad text', () => {
    const s = new KvStore({ partitionCount: 1 });
    s.apply({ type: 'put', key: 'a', value: 'x' });
    s.apply({ type: 'put', key: 'b', value: 'y' });
    const good = s.readPartition(0);
    const b = new KvStore({ partitionCount: 1 });
    assert.equal(b.loadPartition(0, good.subarray(0, good.length - 1)).ok, false);
    const badText = good.slice();
    badText[good.length - 1] = 0xff; // the last text value is no longer UTF-8
    assert.equal(b.loadPartition(0, badText).ok, false);
    const swapped = good.slice();
    swapped[7] = 'c'.charCodeAt(0); // first key 'a' -> 'c', after 'b'
    assert.equal(b.loadPartition(0, swapped).ok, false);
    assert.equal(b.size, 0);
    // A key in the wrong partition is not checked here (the digest is): it is only never found.
    const eight = new KvStore({ partitionCount: 8 });
    const p = eight.partitionOf('a');
    assert.ok(eight.loadPartition((p + 1) % 8, good).ok);
    assert.equal(eight.get('a'), null);
    assert.equal(eight.writePartition((p + 1) % 8, good).ok, false);
  });
});

describe('merged partitions allocated where V8 does not count them (PartitionBytes)', () => {
  const shared = (b: Uint8Array): boolean => b.buffer instanceof SharedArrayBuffer;

  test('the budget uncounted, then a stretch counted, then the budget again', () => {
    const p = new PartitionBytes(100);
    const kinds = [40, 40, 40, 30, 40, 40, 10, 40].map((size) => {
      const b = p.allocate(size, 90);
      assert.equal(b.length, size);
      // Its own memory: the whole of its ArrayBuffer (never a view into a pool another allocation shares).
      assert.equal(b.byteOffset, 0);
      assert.equal(b.buffer.byteLength, size);
      assert.equal(Object.getPrototypeOf(b), Uint8Array.prototype, 'a plain Uint8Array: slice() copies');
      return shared(b) ? 'u' : 'c';
    });
    // 40 + 40 uncounted (80 <= 90); 40 more would pass 90: counted 40, 70, 110 >= 100 ends the
    // stretch; then uncounted again from 0: 40, 80, 90.
    assert.deepEqual(kinds.join(''), 'uucccuuu');
    assert.equal(p.uncountedTotal, 40 + 40 + 40 + 40 + 10);
    assert.equal(p.countedTotal, 40 + 30 + 40);
    // A budget of 0 counts everything (V8's own behaviour).
    const q = new PartitionBytes(100);
    assert.ok([1, 50, 100, 1].every((size) => !shared(q.allocate(size, 0))));
  });

  test('a leaf digest of bytes on shared memory (hashed in place) equals the digest of the same bytes copied', () => {
    const sizes = [0, 1, 4095, 18_000, (1 << 20) + 5];
    for (const hash of [nodeSha256, simSha256]) {
      assert.ok(hash.parts !== undefined);
      for (const size of sizes) {
        const plain = Uint8Array.from({ length: size }, (_, i) => (i * 13 + size) & 0xff);
        const onShared = new Uint8Array(new SharedArrayBuffer(size + 3)).subarray(3);
        onShared.set(plain);
        const expected = nodeSha256(Uint8Array.of(0, ...plain.subarray(0, Math.min(size, 100_000))));
        const got = leafDigest(hash, onShared);
        assert.deepEqual(got, leafDigest(hash, plain), `size ${size}`);
        assert.deepEqual(leafDigest((d) => nodeSha256(d), onShared), got, 'without parts: copied, same digest');
        if (size <= 100_000) assert.deepEqual(got, expected, 'H(0x00 || bytes)');
      }
    }
  });

  test('the default budget: 32 bytes per key, at most 512 MiB', () => {
    assert.equal(PartitionBytes.defaultBudget(0), 0);
    assert.equal(PartitionBytes.defaultBudget(1_000_000), 32_000_000);
    assert.equal(PartitionBytes.defaultBudget(100_000_000), 512 * 2 ** 20);
  });

  test('counted bytes are not zeroed, and the store writes every byte of them: the same partitions and digests from memory full of garbage', () => {
    const allocUnsafeSlow = Buffer.allocUnsafeSlow;
    let handedOut = 0;
    // Every counted allocation comes back full of 0xa5, as reused memory may.
    Buffer.allocUnsafeSlow = (size: number): Buffer<ArrayBuffer> => {
      handedOut++;
      return allocUnsafeSlow(size).fill(0xa5);
    };
    try {
      const r = rng(21);
      const zeroed = new KvStore({ partitionCount: 8 }); // shared memory (zeroed) up to its budget
      const dirty = new KvStore({ partitionCount: 8, uncountedBytes: () => 0 });
      const stored = new KvStore({ partitionCount: 8, uncountedBytes: () => 0 });
      for (let step = 0; step < 2000; step++) {
        const op =
          r(5) === 0
            ? encodeOp({ type: 'del', key: `k${r(300)}` })
            : encodePutMany(Array.from({ length: 1 + r(4) }, (): [string, Value] => [`k${r(300)}`, r(2) === 0 ? `t${r(99)}é` : Uint8Array.from({ length: r(40) }, () => r(256))]));
        assert.deepEqual(dirty.execute(op, CTX), zeroed.execute(op, CTX));
        if (r(20) === 0) {
          const i = r(8);
          const bytes = dirty.readPartition(i);
          assert.equal(Buffer.compare(bytes, zeroed.readPartition(i)), 0, `partition ${i} at step ${step}`);
          // A join from a base and the records that differ from it (recovery) writes every byte too.
          const base = stored.readPartition(i);
          const diff = dirty.diffPartition(base, bytes);
          assert.ok(stored.loadPartition(i, base).ok);
          const records = [...diff.put, ...diff.del.map((k): [string, Uint8Array] => [k, new Uint8Array(0)])].sort((x, y) => Buffer.compare(Buffer.from(x[0]), Buffer.from(y[0])));
          const joined = stored.joinPartition(i, base, records);
          assert.ok(joined.ok, joined.ok ? '' : joined.reason);
          assert.equal(Buffer.compare(joined.value, bytes), 0, `joined partition ${i} at step ${step}`);
          assert.ok(stored.loadPartition(i, bytes).ok);
        }
      }
      assert.ok(handedOut > 0 && dirty.partitionBytes.countedTotal > 0);
      assert.deepEqual(dirty.digest(), zeroed.digest());
      assert.equal(Buffer.compare(dirty.snapshot(), zeroed.snapshot()), 0);
    } finally {
      Buffer.allocUnsafeSlow = allocUnsafeSlow;
    }
  });

  for (const seed of [11, 12, 13]) {
    test(`seed ${seed}: either kind of bytes, the same partitions, digests, snapshots and reads`, () => {
      const r = rng(seed);
      // a: every merge counted (V8's behaviour); b: a small budget, so its merges mix both kinds.
      const a = new KvStore({ partitionCount: 8, uncountedBytes: () => 0 });
      const b = new KvStore({ partitionCount: 8, uncountedBytes: (keys) => keys * 4 });
      const kinds = new Set<boolean>();
      for (let step = 0; step < 3000; step++) {
        const key = `k${r(400)}`;
        const op =
          r(6) === 0
            ? encodeOp({ type: 'del', key })
            : encodePutMany(Array.from({ length: 1 + r(4) }, (): [string, Value] => [`k${r(400)}`, r(2) === 0 ? `t${r(99)}` : Uint8Array.from({ length: r(40) }, () => r(256))]));
        assert.deepEqual(a.execute(op, CTX), b.execute(op, CTX));
        if (r(15) === 0) {
          const i = r(8);
          const pa = a.readPartition(i);
          const pb = b.readPartition(i);
          assert.equal(shared(pa), false);
          if (pb.length > 5) kinds.add(shared(pb));
          assert.equal(Buffer.compare(pa, pb), 0);
          // What a replica stores and what recovery joins back are the same for either kind.
          assert.ok(b.loadPartition(i, pb).ok);
        }
        if (r(100) === 0) assert.deepEqual(a.digest(), b.digest());
      }
      assert.deepEqual([...kinds].sort(), [false, true], 'both kinds were allocated');
      assert.ok(b.partitionBytes.uncountedTotal > 0 && b.partitionBytes.countedTotal > 0);
      assert.equal(a.partitionBytes.uncountedTotal, 0);
      assert.deepEqual(a.digest(), b.digest());
      assert.equal(Buffer.compare(a.snapshot(), b.snapshot()), 0);
      for (let k = 0; k < 400; k++) assert.deepEqual(a.get(`k${k}`), b.get(`k${k}`));
      const c = new KvStore({ partitionCount: 8 });
      assert.ok(c.restore(b.snapshot()).ok);
      assert.deepEqual(c.digest(), a.digest());
    });
  }
});
