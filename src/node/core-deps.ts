/**
 * What the shell gives the pure core besides the application (ReplicaDeps in src/core/replica.ts):
 * signing, verification and hashing (given the node:crypto signer and verifier), with the signature
 * work counted for /status and the verify pool's results taken when there is one; and zlib
 * compression for state transfer.
 */
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import type { CoreCrypto } from '../core/auth.ts';
import { sha256 } from '../crypto/node.ts';
import { passesSignatureRules } from '../crypto/rules.ts';
import type { Signer, Verifier } from '../crypto/types.ts';
import type { VerifyPool } from './verify-pool.ts';

/** Signature work done on the loop for the core (/status `crypto`). */
export interface CryptoWork {
  signs: number;
  verifies: number;
  signMs: number;
  verifyMs: number;
  /** Verifications the core asked for that a worker of the verify pool had done. */
  verifiesOffloaded: number;
}

/**
 * The core's crypto, counting into `work`. A verification the verify pool (`pool()`, read at every
 * call) already did is taken from it; every other one runs here, on the loop.
 */
export function countedCrypto(signer: Signer, verifier: Verifier, work: CryptoWork, pool: () => VerifyPool | undefined): CoreCrypto {
  return {
    sign: (data) => {
      const t0 = performance.now();
      const sig = signer.sign(data);
      work.signs++;
      work.signMs += performance.now() - t0;
      return sig;
    },
    verify: (key, data, sig) => {
      const p = pool();
      // The pool's workers run node:crypto's equation alone; the acceptance rules every backend
      // applies (src/crypto/rules.ts) are checked here, so the pool never accepts what the loop would not.
      if (p !== undefined && passesSignatureRules(key, sig) && p.take(key, data, sig)) {
        work.verifiesOffloaded++;
        return true;
      }
      const t0 = performance.now();
      const ok = verifier.verify(key, data, sig);
      work.verifies++;
      work.verifyMs += performance.now() - t0;
      return ok;
    },
    hash: sha256,
  };
}

/** zlib raw deflate: deterministic for equal input and zlib version. */
export function compress(data: Uint8Array): Uint8Array {
  const out = deflateRawSync(data);
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

/** Inverse of compress; undefined when the input is malformed or inflates beyond `bytesMax`. */
export function decompress(data: Uint8Array, bytesMax: number): Uint8Array | undefined {
  try {
    const out = inflateRawSync(data, { maxOutputLength: Math.max(1, bytesMax) });
    if (out.byteLength > bytesMax) return undefined;
    return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
  } catch {
    return undefined;
  }
}
