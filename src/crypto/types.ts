/**
 * Signing and verification behind one interface, with three backends: libsodium (`sodium-native`,
 * the hot path of replicas and the Node SDK where its binding loads), `node:crypto` (OpenSSL, cached
 * KeyObjects: the fallback) and `@noble/ed25519` (portable: browsers, key generation, cross-checks).
 * All produce byte-identical ed25519 signatures for the same key and message, and all apply the same
 * acceptance rules (rules.ts) before the equation, so they judge every signature alike.
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

export type CryptoBackend = 'node' | 'noble' | 'sodium';

export const PUBLIC_KEY_BYTES = 32;
export const SECRET_KEY_BYTES = 32;
export const SIGNATURE_BYTES = 64;
export const DIGEST_BYTES = 32;
