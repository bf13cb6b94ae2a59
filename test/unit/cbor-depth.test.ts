/** CBOR nesting is checked without recursion before the decoder sees a frame (src/core/encoding.ts). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CBOR_DEPTH_MAX, cborDepth, decodeCbor, encodeCbor } from '../../src/core/encoding.ts';
import { decodeFrame, encodeSignedFrame } from '../../src/codec/messages.ts';
import { Prng } from '../../src/sim/prng.ts';

function nested(depth: number, leaf: unknown = 1): unknown {
  let v = leaf;
  for (let d = 0; d < depth; d++) v = [v];
  return v;
}

function depthOf(v: unknown): number {
  if (Array.isArray(v)) return 1 + Math.max(0, ...v.map(depthOf));
  if (v !== null && typeof v === 'object' && !(v instanceof Uint8Array)) return 1 + Math.max(0, ...Object.values(v).map(depthOf));
  return 0;
}

function randomValue(p: Prng, depth: number): unknown {
  const kind = depth <= 0 ? p.int(4) : p.int(7);
  switch (kind) {
    case 0:
      return p.int(1 << 30) * (p.chance(0.5) ? 1 : -1);
    case 1:
      return p.bytes(p.int(300));
    case 2:
      return 'x'.repeat(p.int(40));
    case 3:
      return p.chance(0.5) ? null : p.chance(0.5);
    case 4:
    case 5:
      return Array.from({ length: p.int(5) }, () => randomValue(p, depth - 1));
    default: {
      const o: Record<string, unknown> = {};
      for (let k = 0; k < p.int(4); k++) o[`k${k}`] = randomValue(p, depth - 1);
      return o;
    }
  }
}

test('cborDepth equals the nesting of what the encoder wrote, for random values', () => {
  const p = new Prng(42);
  for (let n = 0; n < 2_000; n++) {
    const v = randomValue(p, p.int(8));
    const bytes = encodeCbor(v);
    assert.equal(cborDepth(bytes, 100), depthOf(v), JSON.stringify(v, (_, x) => (x instanceof Uint8Array ? `bytes(${x.length})` : x)));
  }
});

test('deep nesting, truncation and bad headers are refused before decoding; real frames pass', () => {
  assert.equal(cborDepth(encodeCbor(nested(CBOR_DEPTH_MAX))), CBOR_DEPTH_MAX);
  assert.equal(cborDepth(encodeCbor(nested(CBOR_DEPTH_MAX + 1))), Infinity);
  // 20,000 nested one-element arrays (0x81 ...) followed by 0: cheap to refuse, no stack overflow.
  const deep = new Uint8Array(20_001).fill(0x81);
  deep[20_000] = 0;
  const started = process.hrtime.bigint();
  const r = decodeCbor(deep);
  assert.equal(r.ok, false);
  assert.match(r.ok ? '' : r.reason, /nested deeper/);
  const sig = { msg: { type: 'checkpoint', seq: 1, digest: new Uint8Array(32), replica: 1, epoch: 0 }, body: encodeCbor([6, 1, new Uint8Array(32), 1, 0]), sig: new Uint8Array(64) } as const;
  assert.equal(decodeFrame(encodeSignedFrame(sig as never)).ok, true);
  assert.equal(decodeFrame(deep).ok, false);
  void started;
  // Indefinite-length arrays and maps (0x9f ... 0xff), truncated input, reserved headers.
  assert.equal(cborDepth(Uint8Array.from([0x9f, 0x9f, 0x01, 0xff, 0xff])), 2);
  assert.equal(cborDepth(Uint8Array.from([0x9f, 0x01])), Infinity, 'no break');
  assert.equal(cborDepth(Uint8Array.from([0x83, 0x01, 0x02])), Infinity, 'an item missing');
  assert.equal(cborDepth(Uint8Array.from([0x5a, 0xff, 0xff, 0xff, 0xff])), Infinity, 'a string longer than the input');
  assert.equal(cborDepth(Uint8Array.from([0x1c])), Infinity, 'reserved additional info');
  assert.equal(cborDepth(Uint8Array.from([0xff])), Infinity, 'a break outside a container');
  assert.equal(cborDepth(Uint8Array.from([0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])), Infinity, 'a count larger than the input');
});
