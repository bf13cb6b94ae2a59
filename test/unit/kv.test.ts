import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import {
  KEY_BYTES_MAX,
  KV_ERROR_MESSAGES,
  VALUE_BYTES_MAX,
  decodeOp,
  decodeResult,
  encodeOp,
  encodeResult,
  valuesEqual,
  type KvOp,
  type KvResult,
  type Value,
} from '../../src/app/kv-ops.ts';
import { KvStore } from '../../src/app/kv.ts';
import { asReplicatedApp, type ExecuteContext } from '../../src/app/types.ts';
import { KvModel } from '../../src/sim/kv-model.ts';

// --- helpers ------------------------------------------------------------------------------------

/** xorshift32: small seeded PRNG for reproducible random tests. */
class Rng {
  private s: number;
  constructor(readonly seed: number) {
    this.s = seed >>> 0 || 0x9e3779b9;
  }
  next(): number {
    let x = this.s;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.s = x >>> 0;
    return this.s;
  }
  int(n: number): number {
    return this.next() % n;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.next() & 0xff;
    return out;
  }
}

const ctx: ExecuteContext = { seq: 1, client: 0, timestamp: 0, timeMs: 0 };
const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);
const bytes = (...b: number[]): Uint8Array => Uint8Array.from(b);
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

/** Independent partition computation for tests. */
function partitionOf(key: string, partitionCount: number): number {
  const h = createHash('sha256').update(Buffer.from(key, 'utf8')).digest();
  return h.readUInt32BE(0) % partitionCount;
}

function exec(store: KvStore, op: KvOp): KvResult {
  const r = decodeResult(store.execute(encodeOp(op), ctx));
  assert.ok(r.ok, 'store result decodes');
  return r.value;
}

/** Keys that land in `partition` (searching k0, k1, ...). */
function keysIn(partition: number, partitionCount: number, count: number, prefix = 'k'): string[] {
  const out: string[] = [];
  for (let i = 0; out.length < count; i++) {
    const key = `${prefix}${i}`;
    if (partitionOf(key, partitionCount) === partition) out.push(key);
  }
  return out;
}

interface RawEntry {
  key: Uint8Array;
  type: number;
  value: Uint8Array;
}

/** Writes partition bytes in the documented format, in the order given (for malformed cases). */
function rawPartition(entries: RawEntry[], count = entries.length): Uint8Array {
  const parts: Buffer[] = [Buffer.from([1, 0, 0, 0, 0])];
  parts[0]!.writeUInt32BE(count, 1);
  for (const e of entries) {
    const h = Buffer.alloc(2);
    h.writeUInt16BE(e.key.length);
    const v = Buffer.alloc(5);
    v[0] = e.type;
    v.writeUInt32BE(e.value.length, 1);
    parts.push(h, Buffer.from(e.key), v, Buffer.from(e.value));
  }
  return new Uint8Array(Buffer.concat(parts));
}

/** Test-side reader of the documented partition layout (no validation). */
function readRawPartition(bytes: Uint8Array): RawEntry[] {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  assert.equal(b[0], 1);
  const count = b.readUInt32BE(1);
  const out: RawEntry[] = [];
  let pos = 5;
  for (let i = 0; i < count; i++) {
    const kl = b.readUInt16BE(pos);
    const key = new Uint8Array(b.subarray(pos + 2, pos + 2 + kl));
    pos += 2 + kl;
    const type = b[pos]!;
    const vl = b.readUInt32BE(pos + 1);
    pos += 5;
    out.push({ key, type, value: new Uint8Array(b.subarray(pos, pos + vl)) });
    pos += vl;
  }
  assert.equal(pos, b.length);
  return out;
}

const SAMPLE_VALUES: Value[] = ['', 'v', 'w', 'ключ', new Uint8Array(0), bytes(0x76), bytes(1, 2, 3), bytes(0x77)];
const SAMPLE_KEYS = ['a', 'b', 'c', 'k1', 'k2', 'ключ', '日本', '\uFFFF', '\u{10000}', '\uFEFFbom', 'x'.repeat(40), '\u0000'];

function randomValue(rng: Rng): Value {
  if (rng.int(4) === 0) return rng.int(2) === 0 ? rng.bytes(rng.int(6)) : 'r' + rng.int(3);
  return rng.pick(SAMPLE_VALUES);
}

function randomOp(rng: Rng, model?: KvModel): KvOp {
  const key = rng.int(100) === 0 ? 'y'.repeat(KEY_BYTES_MAX + 1) : rng.pick(SAMPLE_KEYS);
  switch (rng.int(5)) {
    case 0:
    case 1:
      return { type: 'put', key, value: randomValue(rng) };
    case 2:
      return { type: 'get', key };
    case 3:
      return { type: 'del', key };
    default: {
      const current = model?.get(key) ?? null;
      const expected = rng.int(2) === 0 ? current : rng.int(3) === 0 ? null : randomValue(rng);
      const next = rng.int(4) === 0 ? null : randomValue(rng);
      return { type: 'cas', key, expected, next };
    }
  }
}

function allPartitions(store: KvStore): string[] {
  return Array.from({ length: store.partitionCount }, (_, i) => hex(store.readPartition(i)));
}

/** A store with some entries, for partition tests. */
function populated(partitionCount: number, seed: number, ops = 300): { store: KvStore; applied: KvOp[] } {
  const store = new KvStore({ partitionCount });
  const rng = new Rng(seed);
  const applied: KvOp[] = [];
  for (let i = 0; i < ops; i++) {
    const key = `key-${rng.int(60)}`;
    const op: KvOp = rng.int(5) === 0 ? { type: 'del', key } : { type: 'put', key, value: randomValue(rng) };
    applied.push(op);
    store.execute(encodeOp(op), ctx);
  }
  return { store, applied };
}

// --- operation and result encoding --------------------------------------------------------------

describe('kv-ops encoding', () => {
  const ops: KvOp[] = [
    { type: 'put', key: 'a', value: 'text' },
    { type: 'put', key: 'a', value: bytes(0x74, 0x65, 0x78, 0x74) },
    { type: 'put', key: 'a', value: '' },
    { type: 'put', key: 'a', value: new Uint8Array(0) },
    { type: 'put', key: 'ключ \u{1F600}', value: 'значение \u{1F600}' },
    { type: 'get', key: 'k' },
    { type: 'del', key: 'k' },
    { type: 'cas', key: 'k', expected: null, next: 'v' },
    { type: 'cas', key: 'k', expected: 'v', next: null },
    { type: 'cas', key: 'k', expected: bytes(1), next: bytes(2, 3) },
    { type: 'cas', key: 'k', expected: null, next: null },
    { type: 'cas', key: 'k', expected: '', next: new Uint8Array(0) },
  ];
  const results: KvResult[] = [
    { type: 'put' },
    { type: 'get', value: null },
    { type: 'get', value: 'text' },
    { type: 'get', value: bytes(0x74) },
    { type: 'get', value: '' },
    { type: 'get', value: new Uint8Array(0) },
    { type: 'del', existed: true },
    { type: 'del', existed: false },
    { type: 'cas', swapped: true, current: 'x' },
    { type: 'cas', swapped: false, current: bytes(9, 9) },
    { type: 'cas', swapped: true, current: null },
    { type: 'error', code: 'MALFORMED_OP', message: KV_ERROR_MESSAGES.MALFORMED_OP },
    { type: 'error', code: 'KEY_TOO_LONG', message: 'anything' },
    { type: 'error', code: 'VALUE_TOO_LARGE', message: '' },
    { type: 'error', code: 'KEY_EMPTY', message: 'x' },
  ];

  test('every op variant round-trips, keeping text and bytes apart', () => {
    for (const op of ops) {
      const enc = encodeOp(op);
      assert.equal(enc.constructor, Uint8Array);
      const dec = decodeOp(enc);
      assert.ok(dec.ok, `decodes ${JSON.stringify(op)}`);
      assert.deepEqual(dec.value, op);
      assert.deepEqual(encodeOp(dec.value), enc, 'encoding is stable');
    }
    assert.notDeepEqual(encodeOp(ops[0]!), encodeOp(ops[1]!), 'text and bytes encode differently');
    assert.notDeepEqual(encodeOp(ops[2]!), encodeOp(ops[3]!), 'empty text and empty bytes encode differently');
  });

  test('every result variant round-trips', () => {
    for (const r of results) {
      const enc = encodeResult(r);
      assert.equal(enc.constructor, Uint8Array);
      const dec = decodeResult(enc);
      assert.ok(dec.ok, `decodes ${JSON.stringify(r)}`);
      assert.deepEqual(dec.value, r);
    }
  });

  test('decoded byte values are plain copies, not views into the input', () => {
    const enc = Buffer.from(encodeOp({ type: 'put', key: 'k', value: bytes(1, 2, 3) }));
    const dec = decodeOp(enc);
    assert.ok(dec.ok && dec.value.type === 'put');
    const value = dec.value.value;
    assert.ok(value instanceof Uint8Array);
    assert.equal(value.constructor, Uint8Array, 'not a Buffer');
    enc.fill(0);
    assert.deepEqual(value, bytes(1, 2, 3));

    const res = Buffer.from(encodeResult({ type: 'get', value: bytes(7) }));
    const decRes = decodeResult(res);
    assert.ok(decRes.ok && decRes.value.type === 'get');
    res.fill(0);
    assert.deepEqual(decRes.value.value, bytes(7));

    // Decoding leaves the input array exactly as it was (no added properties).
    const input = encodeOp({ type: 'get', key: 'k' });
    const copy = Uint8Array.from(input);
    assert.ok(decodeOp(input).ok);
    assert.deepEqual(input, copy);
  });

  test('valuesEqual compares type and content', () => {
    assert.equal(valuesEqual('ab', 'ab'), true);
    assert.equal(valuesEqual(bytes(0x61, 0x62), bytes(0x61, 0x62)), true);
    assert.equal(valuesEqual('ab', bytes(0x61, 0x62)), false);
    assert.equal(valuesEqual(bytes(0x61, 0x62), 'ab'), false);
    assert.equal(valuesEqual('', new Uint8Array(0)), false);
    assert.equal(valuesEqual(null, null), true);
    assert.equal(valuesEqual(null, ''), false);
    assert.equal(valuesEqual(new Uint8Array(0), null), false);
    assert.equal(valuesEqual(bytes(1, 2), bytes(1, 3)), false);
    assert.equal(valuesEqual(bytes(1, 2), bytes(1, 2, 3)), false);
    const big = new Uint8Array(1000).fill(5);
    const big2 = new Uint8Array(1000).fill(5);
    assert.equal(valuesEqual(big, big2), true);
    big2[999] = 6;
    assert.equal(valuesEqual(big, big2), false);
  });

  test('decodeOp and decodeResult never throw on 10,000 random buffers', () => {
    const rng = new Rng(0xc0ffee);
    let opsOk = 0;
    for (let i = 0; i < 10_000; i++) {
      const buf = rng.bytes(rng.int(65));
      const a = decodeOp(buf);
      const b = decodeResult(buf);
      assert.equal(typeof a.ok, 'boolean', `seed ${rng.seed} buffer ${hex(buf)}`);
      assert.equal(typeof b.ok, 'boolean', `seed ${rng.seed} buffer ${hex(buf)}`);
      if (a.ok) {
        opsOk++;
        assert.deepEqual(encodeOp(a.value), buf, 'an accepted op is canonical');
      } else {
        assert.ok(a.reason.length > 0);
      }
      if (b.ok) assert.deepEqual(encodeResult(b.value), buf, 'an accepted result is canonical');
      else assert.ok(b.reason.length > 0);
    }
    assert.ok(opsOk < 10_000);
  });

  test('random buffers with a valid array header never throw', () => {
    const rng = new Rng(42);
    for (let i = 0; i < 2000; i++) {
      const buf = rng.bytes(1 + rng.int(40));
      buf[0] = rng.pick([0x81, 0x82, 0x83, 0x84]);
      buf[1] = rng.int(6);
      assert.doesNotThrow(() => decodeOp(buf), `seed ${rng.seed} buffer ${hex(buf)}`);
      assert.doesNotThrow(() => decodeResult(buf), `seed ${rng.seed} buffer ${hex(buf)}`);
    }
  });

  test('truncated and mutated valid encodings are refused without throwing', () => {
    const rng = new Rng(7);
    for (const enc of [...ops.map(encodeOp), ...results.map(encodeResult)]) {
      for (let n = 0; n < enc.length; n++) {
        const cut = enc.subarray(0, n);
        const a = decodeOp(cut);
        const b = decodeResult(cut);
        assert.equal(a.ok, false, `prefix ${n} of ${hex(enc)}`);
        assert.equal(b.ok, false, `prefix ${n} of ${hex(enc)}`);
      }
      assert.equal(decodeOp(Uint8Array.of(...enc, 0)).ok, false, 'trailing byte');
      for (let k = 0; k < 50; k++) {
        const m = Uint8Array.from(enc);
        const at = rng.int(m.length);
        m[at] = m[at]! ^ (1 << rng.int(8));
        assert.doesNotThrow(() => decodeOp(m));
        assert.doesNotThrow(() => decodeResult(m));
      }
    }
  });

  test('decodeOp refuses non-canonical and ill-formed encodings', () => {
    const cases: [string, string][] = [
      ['not an array', '01'],
      ['empty', ''],
      ['map', 'a1616b6176'],
      ['unknown tag', '820961 6b'.replace(' ', '')],
      ['get with 3 fields', '8301616b6176'],
      ['put with 2 fields', '8200616b'],
      ['key is bytes', '8201416b'],
      ['key is a number', '820101'],
      ['non-minimal tag', '8218 01616b'.replace(' ', '')],
      ['non-minimal key length', '8201 78 01 6b'.replace(/ /g, '')],
      ['invalid UTF-8 key', '820162ffff'],
      ['overlong UTF-8 key', '820162c0af'],
      ['surrogate (WTF-8) key', '820163eda080'],
      ['tagged Uint8Array value', '8300616bd840420102'],
      ['indefinite-length array', '9f01616bff'],
      ['put value is a number', '8300616b01'],
      ['cas expected is a boolean', '8403616bf5f6'],
      ['huge array length', '9bffffffffffffffff'],
      ['huge byte string length', '8300616b5bffffffffffffffff'],
    ];
    for (const [what, h] of cases) {
      const r = decodeOp(new Uint8Array(Buffer.from(h, 'hex')));
      assert.equal(r.ok, false, what);
    }
    assert.equal(decodeOp(undefined as unknown as Uint8Array).ok, false);
    assert.equal(decodeResult('x' as unknown as Uint8Array).ok, false);
  });

  test('decodeResult refuses unknown error codes and wrong field types', () => {
    const raw = (h: string): Uint8Array => new Uint8Array(Buffer.from(h, 'hex'));
    assert.equal(decodeResult(raw('8304' + '63585858' + '60')).ok, false, 'unknown code XXX');
    assert.equal(decodeResult(raw('820201')).ok, false, 'del existed as number');
    assert.equal(decodeResult(raw('8303f501')).ok, false, 'cas current as number');
    assert.equal(decodeResult(raw('8100')).ok, true, 'put');
  });

  test('encodeOp rejects strings with lone surrogates and wrong value types', () => {
    assert.throws(() => encodeOp({ type: 'get', key: '\uD800' }), TypeError);
    assert.throws(() => encodeOp({ type: 'put', key: 'k', value: 'a\uDC00' }), TypeError);
    assert.throws(() => encodeOp({ type: 'put', key: 'k', value: 5 as unknown as Value }), TypeError);
    assert.throws(() => encodeOp({ type: 'cas', key: 'k', expected: null, next: {} as unknown as Value }), TypeError);
  });
});

// --- semantics ------------------------------------------------------------------------------------

describe('KvStore semantics', () => {
  test('put, get and del', () => {
    const s = new KvStore({ partitionCount: 8 });
    assert.deepEqual(exec(s, { type: 'get', key: 'a' }), { type: 'get', value: null });
    assert.deepEqual(exec(s, { type: 'put', key: 'a', value: 'one' }), { type: 'put' });
    assert.deepEqual(exec(s, { type: 'get', key: 'a' }), { type: 'get', value: 'one' });
    assert.deepEqual(exec(s, { type: 'put', key: 'a', value: bytes(1) }), { type: 'put' });
    assert.deepEqual(exec(s, { type: 'get', key: 'a' }), { type: 'get', value: bytes(1) });
    assert.deepEqual(exec(s, { type: 'put', key: 'e', value: '' }), { type: 'put' });
    assert.deepEqual(exec(s, { type: 'get', key: 'e' }), { type: 'get', value: '' });
    assert.deepEqual(exec(s, { type: 'put', key: 'e', value: new Uint8Array(0) }), { type: 'put' });
    assert.deepEqual(exec(s, { type: 'get', key: 'e' }), { type: 'get', value: new Uint8Array(0) });
    assert.equal(s.size, 2);
    assert.deepEqual(exec(s, { type: 'del', key: 'a' }), { type: 'del', existed: true });
    assert.deepEqual(exec(s, { type: 'del', key: 'a' }), { type: 'del', existed: false });
    assert.equal(s.get('a'), null);
    assert.equal(s.size, 1);
  });

  test('cas: absent expected, type-sensitive equality, delete via next = null', () => {
    const s = new KvStore({ partitionCount: 4 });
    // expected null on an absent key: swaps.
    assert.deepEqual(exec(s, { type: 'cas', key: 'k', expected: null, next: 'ab' }), { type: 'cas', swapped: true, current: 'ab' });
    // expected null on a present key: fails, reports the current value.
    assert.deepEqual(exec(s, { type: 'cas', key: 'k', expected: null, next: 'zz' }), { type: 'cas', swapped: false, current: 'ab' });
    // same content as bytes is not equal to text.
    assert.deepEqual(exec(s, { type: 'cas', key: 'k', expected: bytes(0x61, 0x62), next: 'zz' }), { type: 'cas', swapped: false, current: 'ab' });
    assert.equal(s.get('k'), 'ab');
    // matching text swaps to bytes.
    assert.deepEqual(exec(s, { type: 'cas', key: 'k', expected: 'ab', next: bytes(0x61, 0x62) }), {
      type: 'cas',
      swapped: true,
      current: bytes(0x61, 0x62),
    });
    // now text 'ab' no longer matches.
    assert.deepEqual(exec(s, { type: 'cas', key: 'k', expected: 'ab', next: 'x' }), { type: 'cas', swapped: false, current: bytes(0x61, 0x62) });
    // empty bytes never equal an absent key or empty text.
    assert.deepEqual(exec(s, { type: 'cas', key: 'e', expected: new Uint8Array(0), next: 'x' }), { type: 'cas', swapped: false, current: null });
    exec(s, { type: 'put', key: 'e', value: '' });
    assert.deepEqual(exec(s, { type: 'cas', key: 'e', expected: new Uint8Array(0), next: 'x' }), { type: 'cas', swapped: false, current: '' });
    // delete via next = null.
    assert.deepEqual(exec(s, { type: 'cas', key: 'k', expected: bytes(0x61, 0x62), next: null }), { type: 'cas', swapped: true, current: null });
    assert.equal(s.get('k'), null);
    // null -> null on an absent key swaps and changes nothing.
    s.takeDirtyPartitions();
    assert.deepEqual(exec(s, { type: 'cas', key: 'k', expected: null, next: null }), { type: 'cas', swapped: true, current: null });
    assert.deepEqual(s.takeDirtyPartitions(), []);
    assert.equal(s.size, 1);
  });

  test('KvStore matches KvModel on 5,000 random ops (result bytes equal)', () => {
    const seed = 20240601;
    const rng = new Rng(seed);
    const store = new KvStore({ partitionCount: 16 });
    const model = new KvModel();
    for (let i = 0; i < 5000; i++) {
      const op = randomOp(rng, model);
      const got = store.execute(encodeOp(op), ctx);
      const want = encodeResult(model.apply(op));
      assert.deepEqual(got, want, `seed ${seed} op ${i}: ${JSON.stringify(op)}`);
    }
    assert.equal(store.size, model.size);
    for (const key of model.keys()) assert.deepEqual(store.get(key), model.get(key), `seed ${seed} key ${key}`);
    assert.ok(model.size > 0);
  });

  test('lookups after merges find every key (the merge hands the next lookup the entries\' new starts): 6,000 random ops, a merge every few', () => {
    const seed = 20261204;
    const rng = new Rng(seed);
    const store = new KvStore({ partitionCount: 2 });
    const model = new KvModel();
    for (let i = 0; i < 6000; i++) {
      // 200 keys over 2 partitions (about 100 entries each), a fifth of the ops deletes.
      const key = rng.int(50) === 0 ? rng.pick(SAMPLE_KEYS) : `key-${rng.int(200)}`;
      const op: KvOp = rng.int(5) === 0 ? { type: 'del', key } : { type: 'put', key, value: randomValue(rng) };
      const got = store.execute(encodeOp(op), ctx);
      assert.deepEqual(got, encodeResult(model.apply(op)), `seed ${seed} op ${i}: ${JSON.stringify(op)}`);
      if (rng.int(7) === 0) {
        // A checkpoint's read merges every changed partition; then every key is looked up again.
        for (const p of store.takeDirtyPartitions()) store.readPartition(p);
        for (const key of model.keys()) assert.deepEqual(store.get(key), model.get(key), `seed ${seed} after op ${i}: key ${key}`);
        assert.deepEqual(store.get('\u0000absent'), null);
      }
    }
    assert.ok(model.size > 100, `the partitions held many entries (${model.size})`);
  });

  test('the direct apply() agrees with execute() and does not alias caller arrays', () => {
    const s = new KvStore({ partitionCount: 2 });
    const v = bytes(1, 2, 3);
    assert.deepEqual(s.apply({ type: 'put', key: 'k', value: v }), { type: 'put' });
    v[0] = 99;
    const got = s.apply({ type: 'get', key: 'k' });
    assert.deepEqual(got, { type: 'get', value: bytes(1, 2, 3) });
    if (got.type === 'get' && got.value instanceof Uint8Array) got.value[0] = 42;
    assert.deepEqual(s.get('k'), bytes(1, 2, 3));
    assert.equal(s.apply({ type: 'get', key: '\uD800' }).type, 'error');
  });

  test('malformed op bytes give a MALFORMED_OP result with a fixed message and no state change', () => {
    const s = new KvStore({ partitionCount: 4 });
    exec(s, { type: 'put', key: 'a', value: 'b' });
    s.takeDirtyPartitions();
    const before = s.digest();
    for (const bad of [new Uint8Array(0), bytes(0xff), bytes(0x82, 0x01, 0x62, 0xff, 0xff), rngBytes(99, 30)]) {
      const r = decodeResult(s.execute(bad, ctx));
      assert.ok(r.ok);
      assert.deepEqual(r.value, { type: 'error', code: 'MALFORMED_OP', message: KV_ERROR_MESSAGES.MALFORMED_OP });
    }
    assert.deepEqual(s.digest(), before);
    assert.deepEqual(s.takeDirtyPartitions(), []);
  });

  test('oversize or empty key and oversize value give an error and change nothing', () => {
    const s = new KvStore({ partitionCount: 8 });
    exec(s, { type: 'put', key: 'a', value: 'b' });
    s.takeDirtyPartitions();
    const before = s.snapshot();
    const digest = s.digest();
    const big = new Uint8Array(VALUE_BYTES_MAX + 1);
    const cases: [KvOp, string][] = [
      [{ type: 'put', key: 'k'.repeat(KEY_BYTES_MAX + 1), value: 'v' }, 'KEY_TOO_LONG'],
      [{ type: 'put', key: '€'.repeat(342), value: 'v' }, 'KEY_TOO_LONG'], // 342 chars, 1026 bytes
      [{ type: 'get', key: 'k'.repeat(KEY_BYTES_MAX + 1) }, 'KEY_TOO_LONG'],
      [{ type: 'del', key: '\u{10000}'.repeat(257) }, 'KEY_TOO_LONG'], // 1028 bytes
      [{ type: 'put', key: '', value: 'v' }, 'KEY_EMPTY'],
      [{ type: 'put', key: 'a', value: big }, 'VALUE_TOO_LARGE'],
      [{ type: 'put', key: 'a', value: 'é'.repeat(VALUE_BYTES_MAX / 2 + 1) }, 'VALUE_TOO_LARGE'],
      [{ type: 'cas', key: 'a', expected: 'b', next: big }, 'VALUE_TOO_LARGE'],
      [{ type: 'cas', key: 'a', expected: big, next: null }, 'VALUE_TOO_LARGE'],
    ];
    const model = new KvModel();
    model.apply({ type: 'put', key: 'a', value: 'b' });
    for (const [op, code] of cases) {
      const r = exec(s, op);
      assert.equal(r.type, 'error');
      assert.equal(r.type === 'error' && r.code, code, JSON.stringify(op).slice(0, 80));
      assert.deepEqual(model.apply(op), r, 'model agrees');
    }
    assert.deepEqual(s.snapshot(), before);
    assert.deepEqual(s.digest(), digest);
    assert.deepEqual(s.takeDirtyPartitions(), []);
    assert.equal(s.get('a'), 'b');
    // The limits themselves are allowed.
    assert.deepEqual(exec(s, { type: 'put', key: 'k'.repeat(KEY_BYTES_MAX), value: new Uint8Array(VALUE_BYTES_MAX) }), { type: 'put' });
    assert.deepEqual(exec(s, { type: 'put', key: '€'.repeat(341), value: 'é'.repeat(VALUE_BYTES_MAX / 2) }), { type: 'put' });
    assert.equal(s.size, 3);
  });

  test('partitionCount must be a power of two in 1..65536', () => {
    for (const bad of [0, -1, 3, 6, 1000, 65537, 131072, 1.5, Number.NaN, Infinity]) {
      assert.throws(() => new KvStore({ partitionCount: bad }), RangeError, String(bad));
    }
    assert.equal(new KvStore().partitionCount, 4096);
    assert.equal(new KvStore({}).partitionCount, 4096);
    for (const ok of [1, 2, 64, 65536]) assert.equal(new KvStore({ partitionCount: ok }).partitionCount, ok);
  });
});

function rngBytes(seed: number, n: number): Uint8Array {
  return new Rng(seed).bytes(n);
}

// --- state: determinism, digests, snapshots, partitions ------------------------------------------

describe('KvStore state', () => {
  test('two stores fed the same ops have equal snapshots, partitions and digests', () => {
    const seed = 77;
    const rng = new Rng(seed);
    const a = new KvStore();
    const b = new KvStore();
    const model = new KvModel();
    const opsA: Uint8Array[] = [];
    for (let i = 0; i < 1000; i++) {
      const op = encodeOp(randomOp(rng, model));
      opsA.push(op);
      const ra = a.execute(op, ctx);
      const rb = b.execute(op, ctx);
      assert.deepEqual(ra, rb, `seed ${seed} op ${i}`);
      const d = decodeOp(op);
      if (d.ok) model.apply(d.value);
    }
    assert.deepEqual(a.snapshot(), b.snapshot());
    assert.deepEqual(allPartitions(a), allPartitions(b));
    assert.deepEqual(a.digest(), b.digest());
    assert.deepEqual(a.takeDirtyPartitions(), b.takeDirtyPartitions());

    // A different sequence: the last put reordered before an earlier put of the same key.
    const c = new KvStore();
    for (const op of opsA) c.execute(op, ctx);
    c.execute(encodeOp({ type: 'put', key: 'a', value: 'different' }), ctx);
    a.execute(encodeOp({ type: 'put', key: 'a', value: 'different' }), ctx);
    a.execute(encodeOp({ type: 'put', key: 'a', value: bytes(0x64) }), ctx);
    c.execute(encodeOp({ type: 'put', key: 'a', value: 'd' }), ctx); // text, not bytes
    assert.notDeepEqual(a.digest(), c.digest());
    assert.notDeepEqual(a.snapshot(), c.snapshot());
  });

  test('digest is sha256 over the sha256 of every partition, and tracks changes', () => {
    const { store } = populated(32, 5);
    const expected = (): Uint8Array => {
      const h = createHash('sha256');
      for (let i = 0; i < store.partitionCount; i++) h.update(createHash('sha256').update(store.readPartition(i)).digest());
      return new Uint8Array(h.digest());
    };
    assert.deepEqual(store.digest(), expected());
    exec(store, { type: 'put', key: 'new-key', value: 'x' });
    assert.deepEqual(store.digest(), expected());
    exec(store, { type: 'del', key: 'new-key' });
    assert.deepEqual(store.digest(), expected());
    const d = store.digest();
    d[0] = d[0]! ^ 1; // the returned digest is the caller's copy
    assert.deepEqual(store.digest(), expected());
  });

  test('digest differs for the same content stored as text vs bytes', () => {
    const a = new KvStore({ partitionCount: 4 });
    const b = new KvStore({ partitionCount: 4 });
    exec(a, { type: 'put', key: 'k', value: 'ab' });
    exec(b, { type: 'put', key: 'k', value: bytes(0x61, 0x62) });
    assert.notDeepEqual(a.digest(), b.digest());
  });

  test('empty partitions encode to one fixed short byte string', () => {
    const s = new KvStore({ partitionCount: 8 });
    for (let i = 0; i < 8; i++) assert.deepEqual(s.readPartition(i), bytes(1, 0, 0, 0, 0));
    const key = 'only';
    const p = partitionOf(key, 8);
    exec(s, { type: 'put', key, value: 'v' });
    assert.notDeepEqual(s.readPartition(p), bytes(1, 0, 0, 0, 0));
    exec(s, { type: 'del', key });
    assert.deepEqual(s.readPartition(p), bytes(1, 0, 0, 0, 0));
    assert.deepEqual(s.digest(), new KvStore({ partitionCount: 8 }).digest());
  });

  test('partition bytes follow the documented layout, sorted by UTF-8 bytes', () => {
    const s = new KvStore({ partitionCount: 1 });
    // JS string order puts U+10000 (a surrogate pair) before U+FFFF; UTF-8 byte order does not.
    exec(s, { type: 'put', key: '\uFFFF', value: 'é' });
    exec(s, { type: 'put', key: '\u{10000}', value: bytes(7) });
    exec(s, { type: 'put', key: 'a', value: '' });
    const want = rawPartition([
      { key: utf8('a'), type: 1, value: new Uint8Array(0) },
      { key: utf8('\uFFFF'), type: 1, value: utf8('é') },
      { key: utf8('\u{10000}'), type: 0, value: bytes(7) },
    ]);
    assert.deepEqual(s.readPartition(0), want);
  });

  test('random keys: partition bytes hold every entry, ascending by UTF-8 bytes', () => {
    const seed = 31337;
    const rng = new Rng(seed);
    const alphabet = ['a', 'b', 'z', '~', '\u00e9', '\u0800', '\uD7FF', '\uE000', '\uFFFD', '\uFFFF', '\u{10000}', '\u{1F600}', '\u{10FFFF}'];
    const s = new KvStore({ partitionCount: 2 });
    const model = new KvModel();
    for (let i = 0; i < 600; i++) {
      let key = '';
      for (let n = 1 + rng.int(4); n > 0; n--) key += rng.pick(alphabet);
      const op: KvOp = rng.int(6) === 0 ? { type: 'del', key } : { type: 'put', key, value: randomValue(rng) };
      s.execute(encodeOp(op), ctx);
      model.apply(op);
    }
    let total = 0;
    for (let p = 0; p < 2; p++) {
      const entries = readRawPartition(s.readPartition(p));
      assert.equal(entries.length, s.keyCount(p));
      total += entries.length;
      for (let i = 1; i < entries.length; i++) {
        assert.ok(Buffer.compare(entries[i - 1]!.key, entries[i]!.key) < 0, `seed ${seed} partition ${p} entry ${i}`);
      }
      for (const e of entries) {
        const key = Buffer.from(e.key).toString('utf8');
        assert.equal(partitionOf(key, 2), p);
        const want = model.get(key);
        assert.deepEqual(e.type === 1 ? Buffer.from(e.value).toString('utf8') : e.value, want, `seed ${seed} key ${key}`);
      }
    }
    assert.equal(total, model.size);
  });

  test('readPartition of an unchanged partition returns the cached bytes', () => {
    const s = new KvStore({ partitionCount: 4 });
    const key = 'cached';
    const p = partitionOf(key, 4);
    exec(s, { type: 'put', key, value: 'v1' });
    const first = s.readPartition(p);
    assert.equal(s.readPartition(p), first);
    exec(s, { type: 'get', key });
    assert.equal(s.readPartition(p), first);
    exec(s, { type: 'put', key, value: 'v2' });
    const second = s.readPartition(p);
    assert.notDeepEqual(second, first);
    assert.throws(() => s.readPartition(4), RangeError);
    assert.throws(() => s.readPartition(-1), RangeError);
  });

  test('snapshot/restore round trip', () => {
    const { store } = populated(64, 11);
    const snap = store.snapshot();
    const fresh = new KvStore({ partitionCount: 64 });
    fresh.takeDirtyPartitions();
    const r = fresh.restore(snap);
    assert.ok(r.ok);
    assert.deepEqual(fresh.snapshot(), snap);
    assert.deepEqual(fresh.digest(), store.digest());
    assert.deepEqual(allPartitions(fresh), allPartitions(store));
    assert.equal(fresh.size, store.size);
    for (let i = 0; i < 64; i++) assert.equal(fresh.keyCount(i), store.keyCount(i));
    assert.deepEqual(fresh.takeDirtyPartitions(), Array.from({ length: 64 }, (_, i) => i));
    // Restoring replaces existing contents.
    const other = new KvStore({ partitionCount: 64 });
    exec(other, { type: 'put', key: 'stale', value: 'x' });
    assert.ok(other.restore(snap).ok);
    assert.equal(other.get('stale'), null);
    assert.deepEqual(other.digest(), store.digest());
    // The restored store keeps working like the original.
    exec(store, { type: 'put', key: 'after', value: 'x' });
    exec(fresh, { type: 'put', key: 'after', value: 'x' });
    assert.deepEqual(fresh.digest(), store.digest());
    // An empty snapshot restores to empty.
    assert.ok(fresh.restore(new KvStore({ partitionCount: 64 }).snapshot()).ok);
    assert.equal(fresh.size, 0);
    assert.deepEqual(fresh.digest(), new KvStore({ partitionCount: 64 }).digest());
  });

  test('restore refuses bad snapshots and leaves the state unchanged', () => {
    const { store } = populated(16, 12);
    const snap = store.snapshot();
    const target = populated(16, 13).store;
    target.takeDirtyPartitions();
    const before = target.snapshot();
    const digest = target.digest();
    const bad: [string, Uint8Array][] = [
      ['empty', new Uint8Array(0)],
      ['truncated', snap.subarray(0, snap.length - 1)],
      ['trailing', Uint8Array.of(...snap, 0)],
      ['version', Uint8Array.of(2, ...snap.subarray(1))],
      ['other partition count', new KvStore({ partitionCount: 32 }).snapshot()],
      ['corrupt partition', (() => {
        const c = Uint8Array.from(snap);
        c[10] = c[10]! ^ 0x80; // the first partition's entry count
        return c;
      })()],
    ];
    for (let n = 0; n < snap.length; n += 97) bad.push([`prefix ${n}`, snap.subarray(0, n)]);
    for (const [what, bytes] of bad) {
      const r = target.restore(bytes);
      assert.equal(r.ok, false, what);
      assert.ok(!r.ok && r.reason.length > 0);
    }
    assert.deepEqual(target.snapshot(), before);
    assert.deepEqual(target.digest(), digest);
    assert.deepEqual(target.takeDirtyPartitions(), []);
  });

  test('copying every dirty partition from A to B makes the digests equal', () => {
    const seed = 99;
    const rng = new Rng(seed);
    const a = new KvStore({ partitionCount: 256 });
    const b = new KvStore({ partitionCount: 256 });
    const model = new KvModel();
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 400; i++) {
        const key = `k${rng.int(120)}`;
        const op: KvOp = rng.int(3) === 0 ? { type: 'del', key } : { type: 'put', key, value: randomValue(rng) };
        a.execute(encodeOp(op), ctx);
        model.apply(op);
      }
      const dirty = a.takeDirtyPartitions();
      assert.ok(dirty.length > 0);
      for (const i of dirty) {
        const r = b.writePartition(i, a.readPartition(i));
        assert.ok(r.ok, `seed ${seed} round ${round} partition ${i}`);
      }
      assert.deepEqual(b.takeDirtyPartitions(), dirty, 'B reports the partitions written');
      assert.deepEqual(b.digest(), a.digest(), `seed ${seed} round ${round}`);
      assert.deepEqual(b.snapshot(), a.snapshot());
      assert.equal(b.size, model.size);
      for (const key of model.keys()) assert.deepEqual(b.get(key), model.get(key));
    }
    // writePartition copies its input: later changes to the source buffer do not leak in.
    const i = partitionOf('k1', 256);
    const buf = Uint8Array.from(a.readPartition(i));
    const c = new KvStore({ partitionCount: 256 });
    assert.ok(c.writePartition(i, buf).ok);
    buf.fill(0);
    assert.deepEqual(c.readPartition(i), a.readPartition(i));
    // Writing an empty partition clears it.
    assert.ok(c.writePartition(i, bytes(1, 0, 0, 0, 0)).ok);
    assert.equal(c.keyCount(i), 0);
    assert.equal(c.size, 0);
    assert.deepEqual(c.digest(), new KvStore({ partitionCount: 256 }).digest());
  });

  test('malformed partitions are refused and leave the store unchanged', () => {
    // One partition: every key belongs to it, so each case fails for the reason it names.
    const b = new KvStore({ partitionCount: 1 });
    exec(b, { type: 'put', key: 'existing', value: 'kept' });
    b.takeDirtyPartitions();
    const digest = b.digest();
    const partition = b.readPartition(0);
    const ea: RawEntry = { key: utf8('a'), type: 1, value: utf8('x') };
    const eb: RawEntry = { key: utf8('b'), type: 0, value: bytes(1, 2) };
    const ec: RawEntry = { key: utf8('c'), type: 1, value: new Uint8Array(0) };
    const valid = rawPartition([ea, eb, ec]);
    const withTrailing = Uint8Array.of(...valid, 0);
    const longKey: RawEntry = { key: new Uint8Array(KEY_BYTES_MAX + 1).fill(0x61), type: 1, value: utf8('v') };
    const hugeValueHeader = (() => {
      const r = rawPartition([ea]);
      Buffer.from(r.buffer, r.byteOffset).writeUInt32BE(VALUE_BYTES_MAX + 1, 1 + 4 + 2 + 1 + 1);
      return r;
    })();
    const cases: [string, number, Uint8Array][] = [
      ['empty input', 0, new Uint8Array(0)],
      ['trailing bytes', 0, withTrailing],
      ['trailing byte after empty partition', 0, bytes(1, 0, 0, 0, 0, 0)],
      ['unsorted keys', 0, rawPartition([eb, ea, ec])],
      ['duplicate key', 0, rawPartition([ea, ea, eb])],
      ['unsorted by UTF-8 bytes (JS order)', 0, rawPartition([
        { key: utf8('\u{10000}'), type: 1, value: utf8('x') },
        { key: utf8('\uFFFF'), type: 1, value: utf8('y') },
      ])],
      ['invalid UTF-8 key', 0, rawPartition([{ key: bytes(0x61, 0xff), type: 1, value: utf8('x') }])],
      ['overlong UTF-8 key', 0, rawPartition([{ key: bytes(0xc0, 0xaf), type: 1, value: utf8('x') }])],
      ['surrogate in key', 0, rawPartition([{ key: bytes(0xed, 0xa0, 0x80), type: 1, value: utf8('x') }])],
      ['invalid UTF-8 text value', 0, rawPartition([{ key: utf8('a'), type: 1, value: bytes(0xe2, 0x82) }])],
      ['unknown value type', 0, rawPartition([{ key: utf8('a'), type: 2, value: utf8('x') }])],
      ['empty key', 0, rawPartition([{ key: new Uint8Array(0), type: 1, value: utf8('x') }])],
      ['key too long', 0, rawPartition([longKey])],
      ['value length over the limit', 0, hugeValueHeader],
      ['count larger than entries', 0, rawPartition([ea, eb], 3)],
      ['count smaller than entries', 0, rawPartition([ea, eb], 1)],
      ['huge count', 0, rawPartition([ea], 0xffffffff)],
      ['unknown version', 0, Uint8Array.of(2, ...valid.subarray(1))],
      ['index out of range', 1, valid],
      ['negative index', -1, valid],
      ['fractional index', 0.5, valid],
    ];
    for (let n = 0; n < valid.length; n++) cases.push([`truncated to ${n}`, 0, valid.subarray(0, n)]);
    for (const [what, index, bytes] of cases) {
      const r = b.writePartition(index, bytes);
      assert.equal(r.ok, false, what);
      assert.ok(!r.ok && r.reason.length > 0, what);
      assert.deepEqual(b.digest(), digest, what);
      assert.deepEqual(b.readPartition(0), partition, what);
      assert.equal(b.get('existing'), 'kept', what);
    }
    assert.deepEqual(b.takeDirtyPartitions(), []);
    // The valid one is accepted and replaces the contents.
    assert.ok(b.writePartition(0, valid).ok);
    assert.equal(b.get('existing'), null);
    assert.equal(b.get('a'), 'x');
    assert.deepEqual(b.get('b'), bytes(1, 2));
    assert.equal(b.get('c'), '');
    assert.deepEqual(b.readPartition(0), valid);
    assert.deepEqual(b.takeDirtyPartitions(), [0]);
  });

  test('a key carried in the wrong partition is refused', () => {
    const n = 4;
    const [k0] = keysIn(0, n, 1);
    const [k1] = keysIn(1, n, 1);
    const a = new KvStore({ partitionCount: n });
    exec(a, { type: 'put', key: k0!, value: 'zero' });
    exec(a, { type: 'put', key: k1!, value: 'one' });
    const b = new KvStore({ partitionCount: n });
    const digest = b.digest();
    const r = b.writePartition(1, a.readPartition(0));
    assert.equal(r.ok, false);
    assert.equal(b.writePartition(0, a.readPartition(1)).ok, false);
    assert.deepEqual(b.digest(), digest);
    assert.equal(b.size, 0);
    assert.deepEqual(b.takeDirtyPartitions(), []);
    // In the right place they are accepted.
    assert.ok(b.writePartition(0, a.readPartition(0)).ok);
    assert.ok(b.writePartition(1, a.readPartition(1)).ok);
    assert.deepEqual(b.digest(), a.digest());
  });

  test('a leading U+FEFF in keys and text values survives partition transfer', () => {
    const a = new KvStore({ partitionCount: 1 });
    exec(a, { type: 'put', key: '\uFEFFk', value: '\uFEFFv' });
    exec(a, { type: 'put', key: 'k', value: 'v' });
    const b = new KvStore({ partitionCount: 1 });
    assert.ok(b.writePartition(0, a.readPartition(0)).ok);
    assert.equal(b.get('\uFEFFk'), '\uFEFFv');
    assert.equal(b.get('k'), 'v');
    assert.deepEqual(b.digest(), a.digest());
  });

  test('takeDirtyPartitions reports exactly the partitions touched, ascending, once', () => {
    const n = 64;
    const s = new KvStore({ partitionCount: n });
    assert.deepEqual(s.takeDirtyPartitions(), []);
    const keys = ['alpha', 'beta', 'gamma', 'delta', 'epsilon', 'ζήτα', '\u{1F600}'];
    for (const key of keys) exec(s, { type: 'put', key, value: key });
    const touched = [...new Set(keys.map((k) => partitionOf(k, n)))].sort((x, y) => x - y);
    assert.deepEqual(s.takeDirtyPartitions(), touched);
    assert.deepEqual(s.takeDirtyPartitions(), []);
    for (const key of keys) assert.equal(s.keyCount(partitionOf(key, n)) > 0, true);
    assert.equal(s.partitionOf('alpha'), partitionOf('alpha', n));

    // Reads, failed cas, deleting an absent key and rewriting an equal value change nothing.
    exec(s, { type: 'get', key: 'alpha' });
    exec(s, { type: 'del', key: 'absent' });
    exec(s, { type: 'cas', key: 'beta', expected: 'wrong', next: 'x' });
    exec(s, { type: 'put', key: 'gamma', value: 'gamma' });
    exec(s, { type: 'cas', key: 'delta', expected: 'delta', next: 'delta' });
    assert.deepEqual(s.takeDirtyPartitions(), []);

    // Changing text to bytes with the same content is a change.
    exec(s, { type: 'put', key: 'gamma', value: utf8('gamma') });
    exec(s, { type: 'del', key: 'beta' });
    exec(s, { type: 'cas', key: 'delta', expected: 'delta', next: null });
    const want = [...new Set(['gamma', 'beta', 'delta'].map((k) => partitionOf(k, n)))].sort((x, y) => x - y);
    assert.deepEqual(s.takeDirtyPartitions(), want);
    assert.equal(s.size, keys.length - 2);
  });

  test('works through asReplicatedApp unchanged', () => {
    const s = new KvStore({ partitionCount: 2 });
    assert.equal(asReplicatedApp(s), s);
  });
});

describe('KvStore frozen partitions (a checkpoint computed while execution goes on)', () => {
  test('readFrozenPartition gives the bytes of the freeze while ops go on; lookups, live reads and later freezes see the newest (random ops, deletes emptying partitions, live reads and dropped freezes between)', () => {
    for (const seed of [1, 2, 3, 20261204]) {
      const rng = new Rng(seed);
      // A: frozen now and then; frozenAt: a store that stopped at A's last freeze; live: every op.
      const a = new KvStore({ partitionCount: 4 });
      const live = new KvStore({ partitionCount: 4 });
      let frozenAt = new KvStore({ partitionCount: 4 });
      let frozen: number[] = [];
      let taken = 0;
      let checked = 0;
      for (let i = 0; i < 3000; i++) {
        // 40 keys over 4 partitions: a partition empties and fills again.
        const key = `key-${rng.int(40)}`;
        const op: KvOp = rng.int(3) === 0 ? { type: 'del', key } : rng.int(8) === 0 ? { type: 'get', key } : { type: 'put', key, value: randomValue(rng) };
        const got = a.execute(encodeOp(op), ctx);
        assert.deepEqual(got, live.execute(encodeOp(op), ctx), `seed ${seed} op ${i}`);
        const r = rng.int(40);
        if (r === 0) {
          // A freeze: what it returns is what the stopped store reports as changed since the last one.
          frozen = a.freezePartitions();
          frozenAt = new KvStore({ partitionCount: 4 });
          assert.equal(frozenAt.restore(live.snapshot()).ok, true);
          taken = 0;
        } else if (r < 6 && taken < frozen.length) {
          const index = frozen[taken++]!;
          assert.deepEqual(a.readFrozenPartition(index), frozenAt.readPartition(index), `seed ${seed} op ${i}: frozen partition ${index}`);
          assert.throws(() => a.readFrozenPartition(index), /not frozen/);
          checked++;
        } else if (r === 6) {
          // A live read of a partition (frozen or not) keeps the frozen version for later.
          const index = rng.int(4);
          assert.deepEqual(a.readPartition(index), live.readPartition(index), `seed ${seed} op ${i}: live partition ${index}`);
        }
        if (i % 97 === 0) for (let k = 0; k < 40; k++) assert.deepEqual(a.get(`key-${k}`), live.get(`key-${k}`), `seed ${seed} op ${i}: key-${k}`);
      }
      assert.ok(checked > 20, `seed ${seed}: ${checked} frozen partitions compared`);
      for (let index = 0; index < 4; index++) assert.deepEqual(a.readPartition(index), live.readPartition(index));
      assert.deepEqual(a.digest(), live.digest());
      assert.equal(a.size, live.size);
    }
  });

  test('a freeze returns exactly the partitions changed since the last one (as takeDirtyPartitions does), and only those are frozen', () => {
    const a = new KvStore({ partitionCount: 16 });
    const keys = keysIn(3, 16, 2).concat(keysIn(9, 16, 1));
    for (const k of keys) exec(a, { type: 'put', key: k, value: 'v' });
    assert.deepEqual(a.freezePartitions(), [3, 9]);
    assert.throws(() => a.readFrozenPartition(4), /not frozen/);
    exec(a, { type: 'put', key: keysIn(4, 16, 1)[0]!, value: 'w' });
    exec(a, { type: 'del', key: keys[0]! });
    // Partition 3 as frozen holds both keys; the live one has lost one.
    assert.equal(readRawPartition(a.readFrozenPartition(3)).length, 2);
    assert.equal(readRawPartition(a.readPartition(3)).length, 1);
    // A second freeze drops what the first fixed and nobody took (9) and fixes what changed since.
    assert.deepEqual(a.freezePartitions(), [3, 4]);
    assert.throws(() => a.readFrozenPartition(9), /not frozen/);
    assert.equal(readRawPartition(a.readFrozenPartition(3)).length, 1);
    assert.equal(readRawPartition(a.readFrozenPartition(4)).length, 1);
    assert.deepEqual(a.freezePartitions(), []);
    // Replacing a partition (a state transfer) drops its freeze.
    exec(a, { type: 'put', key: keys[2]!, value: 'x' });
    assert.deepEqual(a.freezePartitions(), [9]);
    assert.equal(a.writePartition(9, new KvStore({ partitionCount: 16 }).readPartition(9)).ok, true);
    assert.throws(() => a.readFrozenPartition(9), /not frozen/);
  });
});

describe('KvStore partition records (what a replica stores)', () => {
  /** Records of a partition as a replica stores them: every record of `bytes`, by name. */
  const recordsOf = (s: KvStore, bytes: Uint8Array): Map<string, Uint8Array> => {
    const d = s.diffPartition(undefined, bytes);
    assert.deepEqual(d.del, []);
    return new Map(d.put);
  };
  /** Record names in storage order (ascending by UTF-8 bytes, as RocksDB and MemoryStorage scan). */
  const inStorageOrder = (m: Map<string, Uint8Array>): Array<[string, Uint8Array]> =>
    [...m].sort(([a], [b]) => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8')));

  test('a base with the records that differ from it (empty: deleted) joins to the partition bytes exactly, as a replica stores them (random ops, unicode keys, text and bytes)', () => {
    const seed = 4242;
    const rng = new Rng(seed);
    const alphabet = ['a', 'b', '~', '\u00e9', '\u0800', '\uE000', '\uFFFF', '\u{10000}', '\u{1F600}'];
    const n = 4;
    const s = new KvStore({ partitionCount: n });
    // What persistPartition (src/core/state.ts) stores: a base, and the records that differ from it,
    // or the whole bytes as a new base once more than `limit` differ.
    const limit = 6;
    const base: (Uint8Array | undefined)[] = Array.from({ length: n }, () => undefined);
    const records = Array.from({ length: n }, () => new Map<string, Uint8Array>());
    let rebased = 0;
    let withRecords = 0;
    let tombstones = 0;
    for (let round = 0; round < 60; round++) {
      for (let i = 0; i < 1 + rng.int(12); i++) {
        let key = '';
        for (let k = 1 + rng.int(3); k > 0; k--) key += rng.pick(alphabet);
        const op: KvOp = rng.int(4) === 0 ? { type: 'del', key } : { type: 'put', key, value: randomValue(rng) };
        exec(s, op);
      }
      for (const p of s.takeDirtyPartitions()) {
        const after = s.readPartition(p);
        const d = s.diffPartition(base[p], after);
        records[p]!.clear();
        if (d.put.length + d.del.length > limit) {
          base[p] = after;
          rebased++;
        } else {
          for (const [name, value] of d.put) records[p]!.set(name, value);
          for (const name of d.del) records[p]!.set(name, new Uint8Array(0));
          tombstones += d.del.length;
          if (records[p]!.size > 0) withRecords++;
        }
        const joined = s.joinPartition(p, base[p], inStorageOrder(records[p]!));
        assert.ok(joined.ok, joined.ok ? '' : joined.reason);
        assert.deepEqual(joined.value, after, `seed ${seed} round ${round} partition ${p}`);
      }
    }
    assert.ok(rebased > 5 && withRecords > 20 && tombstones > 5, `both forms and deletions occurred (${rebased} rebased, ${withRecords} with records, ${tombstones} deletions)`);
    // A fresh store loads what was stored and has the same state.
    const copy = new KvStore({ partitionCount: n });
    const allocated = (): number => copy.partitionBytes.uncountedTotal + copy.partitionBytes.countedTotal;
    const joinedAll: Uint8Array[] = [];
    for (let p = 0; p < n; p++) {
      const before = allocated();
      const joined = copy.joinPartition(p, base[p], inStorageOrder(records[p]!));
      assert.ok(joined.ok && copy.loadPartition(p, joined.value).ok);
      // A joined partition is allocated as merged ones are (PartitionBytes), and only when records changed the base.
      assert.equal(allocated() - before, records[p]!.size > 0 ? joined.value.length : 0, `partition ${p}`);
      joinedAll.push(joined.value);
    }
    assert.deepEqual(copy.digest(), s.digest());
    // Each join's bytes are its own (not the reused work area): all still equal the partitions.
    for (let p = 0; p < n; p++) assert.deepEqual(joinedAll[p], s.readPartition(p), `partition ${p} after later joins`);
    // Every record of a partition against no base joins to it too.
    for (let p = 0; p < n; p++) {
      const all = s.joinPartition(p, undefined, inStorageOrder(recordsOf(s, s.readPartition(p))));
      assert.ok(all.ok);
      assert.deepEqual(all.value, s.readPartition(p));
    }
  });

  test('a diff names exactly the keys whose entry changed: value, value type, added, deleted; none for an unchanged partition', () => {
    const s = new KvStore({ partitionCount: 1 });
    for (const k of ['a', 'b', 'c', 'd']) exec(s, { type: 'put', key: k, value: 'v' });
    const v1 = s.readPartition(0);
    assert.deepEqual(s.diffPartition(v1, v1), { put: [], del: [] });
    exec(s, { type: 'put', key: 'a', value: 'w' }); // same length, other value
    exec(s, { type: 'put', key: 'b', value: new TextEncoder().encode('v') }); // same bytes, now bytes not text
    exec(s, { type: 'del', key: 'c' });
    exec(s, { type: 'put', key: 'e', value: '' }); // added, empty value
    const v2 = s.readPartition(0);
    const d = s.diffPartition(v1, v2);
    assert.deepEqual(d.put.map(([name]) => name), ['a', 'b', 'e']);
    assert.deepEqual(d.del, ['c']);
    assert.deepEqual([...d.put[0]![1]], [1, 0x77], 'a record is the value type, then the value');
    assert.deepEqual([...d.put[1]![1]], [0, 0x76]);
    assert.deepEqual([...d.put[2]![1]], [1]);
    // Emptied: every record deleted; joining no records gives the empty partition.
    for (const k of ['a', 'b', 'd', 'e']) exec(s, { type: 'del', key: k });
    const v3 = s.readPartition(0);
    assert.deepEqual(s.diffPartition(v2, v3), { put: [], del: ['a', 'b', 'd', 'e'] });
    const empty = s.joinPartition(0, undefined, []);
    assert.ok(empty.ok);
    assert.deepEqual(empty.value, v3);
    // The base v2 with deletions of its keys: empty too.
    const deleted = s.joinPartition(0, v2, ['a', 'b', 'd', 'e'].map((k) => [k, new Uint8Array(0)] as [string, Uint8Array]));
    assert.ok(deleted.ok);
    assert.deepEqual(deleted.value, v3);
  });

  test('a diff of large partitions skips the runs both share and still names exactly what changed (random edits at the start, middle and end; repetitive values)', () => {
    /** Every entry of partition bytes as [key, record] (u16 key length | key | u8 type | u32 length | value). */
    const entriesOf = (bytes: Uint8Array): Map<string, string> => {
      const out = new Map<string, string>();
      const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      let pos = 5;
      while (pos < bytes.length) {
        const keyLength = view.getUint16(pos);
        const key = new TextDecoder().decode(bytes.subarray(pos + 2, pos + 2 + keyLength));
        pos += 2 + keyLength;
        const valueLength = view.getUint32(pos + 1);
        out.set(key, Buffer.from([bytes[pos]!, ...bytes.subarray(pos + 5, pos + 5 + valueLength)]).toString('hex'));
        pos += 5 + valueLength;
      }
      return out;
    };
    const seed = 777;
    const rng = new Rng(seed);
    const s = new KvStore({ partitionCount: 1 });
    // Values of one repeated byte make runs that match at shifted offsets too; 16-byte values are
    // replaced by values of the same length (the partition's length then stays the same).
    const value = (): Value => {
      const kind = rng.int(4);
      return kind === 0 ? new Uint8Array(rng.int(300)).fill(rng.int(2)) : kind === 1 ? 'v'.repeat(rng.int(40)) : kind === 2 ? rng.bytes(16) : rng.bytes(rng.int(200));
    };
    const keys: string[] = [];
    for (let k = 0; k < 300; k++) {
      keys.push(`key-${String(k).padStart(4, '0')}`);
      exec(s, { type: 'put', key: keys[k]!, value: value() });
    }
    let before = s.readPartition(0);
    let changed = 0;
    for (let round = 0; round < 300; round++) {
      for (let e = 1 + rng.int(3); e > 0; e--) {
        // Edits near either end as often as in the middle.
        const where = rng.int(3);
        const k = where === 0 ? rng.int(3) : where === 1 ? keys.length - 1 - rng.int(3) : rng.int(keys.length);
        const key = rng.int(5) === 0 ? `key-${String(k).padStart(4, '0')}x` : keys[Math.max(0, Math.min(keys.length - 1, k))]!;
        exec(s, rng.int(4) === 0 ? { type: 'del', key } : { type: 'put', key, value: value() });
      }
      const after = s.readPartition(0);
      const d = s.diffPartition(before, after);
      const a = entriesOf(before);
      const b = entriesOf(after);
      const expectPut = [...b].filter(([k, r]) => a.get(k) !== r).map(([k]) => k);
      const expectDel = [...a.keys()].filter((k) => !b.has(k));
      assert.deepEqual(d.put.map(([k]) => k), expectPut, `seed ${seed} round ${round}: put`);
      assert.deepEqual(d.del, expectDel, `seed ${seed} round ${round}: del`);
      for (const [k, record] of d.put) assert.equal(Buffer.from(record).toString('hex'), b.get(k), `seed ${seed} round ${round}: record of ${k}`);
      assert.deepEqual(s.diffPartition(after, after), { put: [], del: [] });
      changed += expectPut.length + expectDel.length;
      before = after;
    }
    assert.ok(changed > 300, `edits changed entries (${changed})`);
    assert.ok(before.length > 20_000, `the partition stayed large (${before.length} bytes)`);
  });

  test('bad records and bad bases are refused by joinPartition or by loadPartition after it, never thrown, and the store is unchanged', () => {
    const s = new KvStore({ partitionCount: 1 });
    exec(s, { type: 'put', key: 'keep', value: 'v' });
    const digest = s.digest();
    const text = (t: string): Uint8Array => Uint8Array.of(1, ...new TextEncoder().encode(t));
    const cases: Array<[string, Array<[string, Uint8Array]>]> = [
      ['an empty name', [['', text('v')]]],
      ['a name over the key limit', [['k'.repeat(1025), text('v')]]],
      ['names out of order', [['b', text('v')], ['a', text('v')]]],
      ['a name given twice', [['a', text('v')], ['a', text('w')]]],
      ['an unknown value type', [['a', Uint8Array.of(7, 1)]]],
      ['text that is not UTF-8', [['a', Uint8Array.of(1, 0xff)]]],
    ];
    // A base that is not partition bytes, with records to apply to it.
    for (const bad of [Uint8Array.of(9), Uint8Array.of(1, 0, 0, 0, 5), Uint8Array.of(1, 0, 0, 0, 1, 0, 1, 0x61, 1, 0, 0, 0, 9)]) {
      const joined = s.joinPartition(0, bad, [['a', text('v')]]);
      assert.equal(joined.ok, false, `base ${[...bad]}`);
    }
    // A well-framed base whose keys are out of order (c, a): joined without a throw, refused by loadPartition.
    const unordered = rawPartition([
      { key: new TextEncoder().encode('c'), type: 1, value: new TextEncoder().encode('x') },
      { key: new TextEncoder().encode('a'), type: 1, value: new TextEncoder().encode('y') },
    ]);
    for (const records of [[['a', text('z')]], [['b', text('z')]], [['a', new Uint8Array(0)], ['c', text('z')]], [['d', text('z')]]] as Array<Array<[string, Uint8Array]>>) {
      const joined = s.joinPartition(0, unordered, records);
      const res = joined.ok ? s.loadPartition(0, joined.value) : joined;
      assert.equal(res.ok, false, `unordered base with ${records.map(([n]) => n).join(', ')}`);
    }
    for (const [what, records] of cases) {
      const joined = s.joinPartition(0, undefined, records);
      const res = joined.ok ? s.loadPartition(0, joined.value) : joined;
      assert.equal(res.ok, false, what);
    }
    assert.deepEqual(s.digest(), digest);
    assert.equal(s.get('keep'), 'v');
  });
});

test('the portable UTF-8 length (used where Buffer does not exist, e.g. browsers) equals the real UTF-8 length', async () => {
  const { utf8Length } = await import('../../src/app/kv-ops.ts');
  const samples = ['', 'a', 'é', '€', '😀', 'a😀b€é', '\u07ff\u0800\uffff', 'x'.repeat(1000) + '😀'.repeat(50)];
  for (let cp = 0; cp < 0x11000; cp += 37) if (cp < 0xd800 || cp > 0xdfff) samples.push(String.fromCodePoint(cp));
  for (const s of samples) assert.equal(utf8Length(s), new TextEncoder().encode(s).length, JSON.stringify(s));
});
