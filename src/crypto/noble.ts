/**
 * ed25519 and SHA-256 through @noble (pure JavaScript): portable to browsers, used for key
 * generation, the client SDK's fallback path and cross-checks. No node-only imports here.
 *
 * Verification uses the strict RFC 8032 branch (`zip215: false`) after the acceptance rules every
 * backend applies (rules.ts), so that it judges every signature as libsodium and node:crypto do.
 */
import * as ed from '@noble/ed25519';
import { sha256 as nobleSha256, sha512 } from '@noble/hashes/sha2.js';
import { passesSignatureRules } from './rules.ts';
import { SECRET_KEY_BYTES, type Signer, type Verifier } from './types.ts';

ed.hashes.sha512 = sha512;

export function nobleDerivePublicKey(secretKey: Uint8Array): Uint8Array {
  if (secretKey.length !== SECRET_KEY_BYTES) throw new RangeError(`ed25519 secret key must be ${SECRET_KEY_BYTES} bytes`);
  return ed.getPublicKey(secretKey);
}

export function createNobleSigner(secretKey: Uint8Array): Signer {
  const secret = new Uint8Array(secretKey);
  const publicKey = nobleDerivePublicKey(secret);
  return {
    publicKey,
    sign: (data) => ed.sign(data, secret),
  };
}

export class NobleVerifier implements Verifier {
  verify(publicKey: Uint8Array, data: Uint8Array, signature: Uint8Array): boolean {
    if (!passesSignatureRules(publicKey, signature)) return false; // lengths too
    try {
      return ed.verify(signature, data, publicKey, { zip215: false });
    } catch {
      return false;
    }
  }
}

/** A fresh random 32-byte secret key (uses the platform's CSPRNG). */
export function randomSecretKey(): Uint8Array {
  return ed.utils.randomSecretKey();
}

export function sha256Portable(data: Uint8Array): Uint8Array {
  return nobleSha256(data);
}
