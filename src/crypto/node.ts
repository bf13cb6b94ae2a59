/**
 * ed25519 and SHA-256 through Node's built-in `node:crypto` (OpenSSL): the replica hot path.
 * KeyObjects are built once per key and cached; rebuilding them per call halves the speed.
 */
import crypto, { createHash, createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { passesSignatureRules } from './rules.ts';
import { PUBLIC_KEY_BYTES, SECRET_KEY_BYTES, type Signer, type Verifier } from './types.ts';

// DER prefixes that wrap a raw 32-byte ed25519 key as PKCS#8 (private) or SPKI (public).
const PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

export function nodePrivateKey(secretKey: Uint8Array): KeyObject {
  if (secretKey.length !== SECRET_KEY_BYTES) throw new RangeError(`ed25519 secret key must be ${SECRET_KEY_BYTES} bytes`);
  return createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, secretKey]), format: 'der', type: 'pkcs8' });
}

export function nodePublicKey(publicKey: Uint8Array): KeyObject {
  if (publicKey.length !== PUBLIC_KEY_BYTES) throw new RangeError(`ed25519 public key must be ${PUBLIC_KEY_BYTES} bytes`);
  return createPublicKey({ key: Buffer.concat([SPKI_PREFIX, publicKey]), format: 'der', type: 'spki' });
}

/** Raw 32-byte public key of a secret key. */
export function nodeDerivePublicKey(secretKey: Uint8Array): Uint8Array {
  const der = createPublicKey(nodePrivateKey(secretKey)).export({ format: 'der', type: 'spki' });
  return new Uint8Array(der.subarray(der.length - PUBLIC_KEY_BYTES));
}

export function createNodeSigner(secretKey: Uint8Array): Signer {
  const key = nodePrivateKey(secretKey);
  const publicKey = nodeDerivePublicKey(secretKey);
  return {
    publicKey,
    sign: (data) => new Uint8Array(sign(null, data, key)),
  };
}

/** Verifier with a bounded cache of public KeyObjects (keyed by the raw key's hex); applies rules.ts first. */
export class NodeVerifier implements Verifier {
  private readonly keys = new Map<string, KeyObject | null>();
  constructor(private readonly cacheKeysMax = 4096) {}

  verify(publicKey: Uint8Array, data: Uint8Array, signature: Uint8Array): boolean {
    if (!passesSignatureRules(publicKey, signature)) return false; // lengths too
    const id = Buffer.from(publicKey.buffer, publicKey.byteOffset, publicKey.length).toString('hex');
    let key = this.keys.get(id);
    if (key === undefined) {
      try {
        key = nodePublicKey(publicKey);
      } catch {
        key = null; // not a valid curve point
      }
      if (this.keys.size >= this.cacheKeysMax) this.keys.clear();
      this.keys.set(id, key);
    }
    if (key === null) return false;
    try {
      return verify(null, data, key, signature);
    } catch {
      return false;
    }
  }
}

// One-shot hashing (node >= 20.12) skips building a Hash object per digest (1.3 us vs 1.9 us for 200 B).
const oneShot = (crypto as { hash?: (algorithm: string, data: Uint8Array, encoding: 'buffer') => Buffer }).hash;

export function sha256(data: Uint8Array): Uint8Array {
  const digest = oneShot ? oneShot('sha256', data, 'buffer') : createHash('sha256').update(data).digest();
  return new Uint8Array(digest.buffer, digest.byteOffset, digest.byteLength);
}

/** SHA-256 over the concatenation of the parts, without concatenating them first. */
export function sha256Parts(parts: readonly Uint8Array[]): Uint8Array {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
}
sha256.parts = sha256Parts;
