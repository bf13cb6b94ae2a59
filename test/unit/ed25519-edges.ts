/**
 * ed25519 inputs at the edges where implementations differ (test/unit/crypto-rules.test.ts and the
 * mixed-backend cluster test): a key holder's signature with the identity as R, and little-endian
 * helpers. Computed with @noble's hash and plain bigint arithmetic.
 */
import { verify as opensslVerify } from 'node:crypto';
import { concatBytes } from '../../src/core/auth.ts';
import { nodePublicKey } from '../../src/crypto/node.ts';
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


export const IDENTITY = le(1n);

/** OpenSSL's verdict alone (no rules): the negative control that shows each crafted edge is real. */
export function rawOpenssl(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  try {
    return opensslVerify(null, message, nodePublicKey(publicKey), signature);
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
  const k = fromLe(sha512(concatBytes(concatBytes(IDENTITY, publicKey), message))) % L;
  return { publicKey, signature: concatBytes(IDENTITY, le((k * a) % L)) };
}

