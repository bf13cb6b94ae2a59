/**
 * Fast stand-in signatures for the simulator. A "signature" is SHA-512(secret || data); verifying
 * recomputes it from the secret registered for the public key. Sound inside the simulation: every
 * simulated party, byzantine ones included, only ever holds its own signing function. Real ed25519
 * is exercised by the unit and integration tests; here speed lets thousands of seeds run.
 */
import { createHash } from 'node:crypto';
import type { CoreCrypto } from '../core/auth.ts';
import type { Signer, Verifier } from '../crypto/types.ts';
import { sha256Parts } from '../crypto/node.ts';
import type { Prng } from './prng.ts';

export class SimKeyring {
  private readonly secrets = new Map<string, Uint8Array>();

  newKey(prng: Prng): Signer {
    const secret = prng.bytes(32);
    const publicKey = new Uint8Array(createHash('sha256').update('sim-public').update(secret).digest());
    this.secrets.set(Buffer.from(publicKey).toString('hex'), secret);
    return { publicKey, sign: (data) => simSign(secret, data) };
  }

  readonly verifier: Verifier = {
    verify: (publicKey, data, signature) => {
      const secret = this.secrets.get(Buffer.from(publicKey).toString('hex'));
      if (!secret || signature.length !== 64) return false;
      return Buffer.from(simSign(secret, data)).equals(Buffer.from(signature));
    },
  };
}

function simSign(secret: Uint8Array, data: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha512').update(secret).update(data).digest());
}

export function sha256(data: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(data).digest());
}
sha256.parts = sha256Parts;

export function coreCrypto(signer: Signer, verifier: Verifier): CoreCrypto {
  return { sign: (d) => signer.sign(d), verify: (k, d, s) => verifier.verify(k, d, s), hash: sha256 };
}
