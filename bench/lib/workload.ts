/** The bench clients' operations (bench/client-worker.ts), apart from the process that runs them. */
import { encodeOp } from '../../src/app/kv-ops.ts';

/** A key of exactly `bytes` ASCII bytes, distinct per (client, index). */
export function benchKey(client: number, index: number, bytes: number): string {
  const base = `c${client}k${index}`;
  if (base.length > bytes) throw new RangeError(`key bytes ${bytes} too small for ${base}`);
  return `c${client}k${'0'.repeat(bytes - base.length)}${index}`;
}

/**
 * One client's put cycle, pre-encoded: its `keys` keys with value A, then the same keys with value
 * B; the client loops over it. Every put changes the state, as a user's put does: with one value,
 * every pass after the first wrote what the key already held, the store changed nothing (no
 * partition to merge, hash or write at the next checkpoint), and a measured window after the first
 * pass timed those no-ops.
 */
export function putCycle(client: number, keys: number, keyBytes: number, valueBytes: number): Uint8Array[] {
  const values = [0, 1].map((variant) => {
    const value = new Uint8Array(valueBytes);
    for (let i = 0; i < value.length; i++) value[i] = (i * 31 + 7 + variant) & 0xff;
    return value;
  });
  return Array.from({ length: 2 * keys }, (_, i) => encodeOp({ type: 'put', key: benchKey(client, i % keys, keyBytes), value: values[Math.floor(i / keys)]! }));
}
