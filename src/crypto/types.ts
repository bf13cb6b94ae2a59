/**
 * Signing and verification behind one interface, with two backends:
 * `node:crypto` (OpenSSL, the replica hot path, cached KeyObjects) and
 * `@noble/ed25519` (portable: browsers, key generation, cross-checks).
 * Both produce byte-identical ed25519 signatures for the same key and message.
 */

/** Holds one private key. `sign` is deterministic (ed25519). */
export interface Signer {
  /** 32-byte raw ed25519 public key. */
  readonly publicKey: Uint8Array;
  /** 64-byte ed25519 signature over `data`. */
  sign(data: Uint8Array): Uint8Array;
}

/** Verifies ed25519 signatures. Never throws: malformed keys or signatures verify as false. */
export interface Verifier {
  verify(publicKey: Uint8Array, data: Uint8Array, signature: Uint8Array): boolean;
}

export type CryptoBackend = 'node' | 'noble';

export const PUBLIC_KEY_BYTES = 32;
export const SECRET_KEY_BYTES = 32;
export const SIGNATURE_BYTES = 64;
export const DIGEST_BYTES = 32;
