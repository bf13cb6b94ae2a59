/**
 * ed25519 inputs at the edges where implementations differ (test/unit/crypto-rules.test.ts and the
 * mixed-backend cluster test): a key holder's signature with the identity as R, and little-endian
 * helpers. Computed with @noble's hash and plain bigint arithmetic.
 */
import { verify as opensslVerify, createPublicKey } from 'node:crypto';
import * as ed from '@noble/ed25519';
import { sha512 } from '@noble/hashes/sha2.js';

ed.hashes.sha512 = sha512;

export const L = 2n ** 252n + 27742317777372353535851937790883648493n;
export const P = 2n ** 255n - 19n;

export function le(n: bigint, bytes = 32): Uint8Array {
  const out = new Uint8Array(bytes);
  for (let i = 0; i < bytes; i++) {
    out[i] = Number(n & 0xffn);
    n >>= 8n;
  }
  return out;
}

export function fromLe(b: Uint8Array): bigint {
  let n = 0n;
  for (let i = b.length - 1; i >= 0; i--) n = (n << 8n) | BigInt(b[i]!);
  return n;
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export const IDENTITY = le(1n);
const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

/** OpenSSL's verdict alone (no rules): the negative control that shows each crafted edge is real. */
export function rawOpenssl(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  try {
    const key = createPublicKey({ key: Buffer.concat([SPKI_PREFIX, publicKey]), format: 'der', type: 'spki' });
    return opensslVerify(null, message, key, signature);
  } catch {
    return false;
  }
}

/**
 * A signature whose R is the identity, made by the holder of `seed`: S = k * a (mod L) with
 * k = H(R || A || M), so that [S]B - [k]A = identity = R and the bare equation holds.
 */
export function identityRSignature(seed: Uint8Array, message: Uint8Array): { publicKey: Uint8Array; signature: Uint8Array } {
  const h = sha512(seed);
  const scalar = h.slice(0, 32);
  scalar[0]! &= 248;
  scalar[31]! &= 127;
  scalar[31]! |= 64;
  const a = fromLe(scalar);
  const publicKey = ed.getPublicKey(seed);
  const k = fromLe(sha512(concat(IDENTITY, publicKey, message))) % L;
  return { publicKey, signature: concat(IDENTITY, le((k * a) % L)) };
}

