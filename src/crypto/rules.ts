/**
 * The ed25519 acceptance rules every backend applies before its own check, so that each backend
 * (libsodium, node:crypto's OpenSSL, @noble) gives the same verdict on every input, including the
 * inputs a key's holder can craft. That matters here: a replica that accepts a client's signature
 * another rejects treats the same PRE-PREPARE differently, so a cluster whose replicas run different
 * backends (libsodium missing on one host, or a rolling upgrade) must still agree.
 *
 * The backends differ only at the edges: libsodium rejects a public key or an R that is a point of
 * small order, and a public key that is not canonically encoded; OpenSSL and noble's RFC 8032 mode
 * check the equation alone. With the rules below (libsodium's own, by bytes), the edges are closed
 * for all of them:
 *   - S must be canonical (S < L): all three check it already;
 *   - the public key must be a canonical encoding (y < p) and not of small order;
 *   - R must not be of small order. For a public key of the prime-order subgroup (every honest key),
 *     [S]B - [k]A is in that subgroup, so the only small-order R an equation can accept is the
 *     identity, which its holder can produce (S = k * a); libsodium refuses it, so must the others.
 * Portable (no node-only imports): the browser client applies it too.
 */
import { PUBLIC_KEY_BYTES, SIGNATURE_BYTES } from './types.ts';

/**
 * Encodings of the points of small order (the 8-torsion), compared with the sign bit (bit 255)
 * cleared, so that each entry stands for both signs: y = 0 (order 4), y = 1 (the identity), the two
 * y of the points of order 8, y = p - 1 (order 2), and the non-canonical p and p + 1 (y = 0 and 1).
 * test/unit/crypto-rules.test.ts checks each against @noble's curve arithmetic.
 */
const SMALL_ORDER_Y: readonly Uint8Array[] = [
  hex('0000000000000000000000000000000000000000000000000000000000000000'),
  hex('0100000000000000000000000000000000000000000000000000000000000000'),
  hex('26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05'),
  hex('c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a'),
  hex('ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f'),
  hex('edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f'),
  hex('eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f'),
];

/** The group order L = 2^252 + 27742317777372353535851937790883648493, little-endian. */
const ORDER_L = hex('edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010');

function hex(s: string): Uint8Array {
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(s.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** Whether the 32 bytes at `bytes[at..]` encode a point of small order (either sign). */
export function isSmallOrderEncoding(bytes: Uint8Array, at = 0): boolean {
  for (const y of SMALL_ORDER_Y) {
    let diff = (bytes[at + 31]! & 0x7f) ^ y[31]!;
    for (let i = 0; i < 31 && diff === 0; i++) diff |= bytes[at + i]! ^ y[i]!;
    if (diff === 0) return true;
  }
  return false;
}

/** Whether a point encoding's y (the sign bit cleared) is below p = 2^255 - 19. */
export function isCanonicalPointEncoding(bytes: Uint8Array, at = 0): boolean {
  if ((bytes[at + 31]! & 0x7f) !== 0x7f) return true;
  for (let i = 30; i >= 1; i--) if (bytes[at + i] !== 0xff) return true;
  return bytes[at]! < 0xed;
}

/** Whether the 32 little-endian bytes at `bytes[at..]` are below the group order L. */
export function isCanonicalScalar(bytes: Uint8Array, at = 0): boolean {
  for (let i = 31; i >= 0; i--) {
    const b = bytes[at + i]!;
    const l = ORDER_L[i]!;
    if (b !== l) return b < l;
  }
  return false; // equal to L
}

/** A public key the rules accept: 32 bytes, canonical, not of small order. */
export function isAcceptablePublicKey(publicKey: Uint8Array): boolean {
  return publicKey.length === PUBLIC_KEY_BYTES && isCanonicalPointEncoding(publicKey) && !isSmallOrderEncoding(publicKey);
}

/**
 * The checks every backend runs before the equation: lengths, the public key, R and S as above.
 * False means "does not verify" whatever the equation says.
 */
export function passesSignatureRules(publicKey: Uint8Array, signature: Uint8Array): boolean {
  if (signature.length !== SIGNATURE_BYTES || !isAcceptablePublicKey(publicKey)) return false;
  return !isSmallOrderEncoding(signature, 0) && isCanonicalScalar(signature, 32);
}
