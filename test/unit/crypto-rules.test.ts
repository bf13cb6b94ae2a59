/**
 * The acceptance rules every ed25519 backend applies (src/crypto/rules.ts): libsodium, node:crypto
 * and @noble must give the same verdict on every signature, also on those a key's holder crafts at
 * the edges where the implementations differ, so that replicas on different backends agree.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import * as ed from '@noble/ed25519';
import { createNodeSigner, NodeVerifier, sha256 } from '../../src/crypto/node.ts';
import { NobleVerifier } from '../../src/crypto/noble.ts';
import { createSodiumSigner, loadSodium, SodiumVerifier } from '../../src/crypto/sodium.ts';
import { CryptoChoiceError, hotPathBackend, parseCryptoChoice } from '../../src/crypto/index.ts';
import { isCanonicalPointEncoding, isCanonicalScalar, isSmallOrderEncoding, passesSignatureRules } from '../../src/crypto/rules.ts';
import type { Verifier } from '../../src/crypto/types.ts';
import { concatBytes } from '../../src/core/auth.ts';
import { fromLe, IDENTITY, identityRSignature, L, le, P, rawOpenssl } from './ed25519-edges.ts';

const sodiumLoads = !('error' in loadSodium());
const backends: Array<[string, Verifier]> = [
  ['node', new NodeVerifier()],
  ['noble', new NobleVerifier()],
  ...(sodiumLoads ? ([['sodium', new SodiumVerifier()]] as Array<[string, Verifier]>) : []),
];

describe('the small-order encodings', () => {
  it('libsodium loads here (the fallback is tested through PBFT_CRYPTO=node)', () => {
    assert.equal(sodiumLoads, true, JSON.stringify(loadSodium()));
  });

  it('cover the whole 8-torsion, both signs, and nothing of the prime-order subgroup', () => {
    // A point of order 8: the multiples of it are the 8-torsion group.
    const t8 = ed.Point.fromHex('26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05');
    assert.equal(t8.isSmallOrder(), true);
    assert.equal(t8.multiplyUnsafe(4n).is0(), false, 'order 8, not 4');
    let covered = 0;
    let q = ed.Point.ZERO;
    for (let i = 0; i < 8; i++) {
      const bytes = q.toBytes();
      assert.equal(isSmallOrderEncoding(bytes), true, `${i} x T8 = ${q.toHex()}`);
      const flipped = new Uint8Array(bytes);
      flipped[31]! ^= 0x80;
      assert.equal(isSmallOrderEncoding(flipped), true, `${i} x T8 with the other sign bit`);
      covered++;
      q = q.add(t8);
    }
    assert.equal(covered, 8);
    // The non-canonical encodings of y = 0 and y = 1 (p and p + 1) too.
    assert.equal(isSmallOrderEncoding(le(P)), true);
    assert.equal(isSmallOrderEncoding(le(P + 1n)), true);
    // Points of the prime-order subgroup, and honest keys, are not.
    for (let i = 1; i <= 50; i++) {
      assert.equal(isSmallOrderEncoding(ed.Point.BASE.multiply(BigInt(i)).toBytes()), false);
      assert.equal(isSmallOrderEncoding(ed.getPublicKey(sha256(Uint8Array.of(i)))), false);
    }
  });

  it('canonical point encodings are y < p; canonical scalars are S < L', () => {
    assert.equal(isCanonicalPointEncoding(le(P - 1n)), true);
    assert.equal(isCanonicalPointEncoding(le(P)), false);
    assert.equal(isCanonicalPointEncoding(le(2n ** 255n - 1n)), false);
    const signBit = le(P + 5n);
    assert.equal(isCanonicalPointEncoding(signBit), false);
    signBit[31]! |= 0x80;
    assert.equal(isCanonicalPointEncoding(signBit), false, 'the sign bit does not matter');
    assert.equal(isCanonicalScalar(le(0n)), true);
    assert.equal(isCanonicalScalar(le(L - 1n)), true);
    assert.equal(isCanonicalScalar(le(L)), false);
    assert.equal(isCanonicalScalar(le(L + 1n)), false);
    assert.equal(isCanonicalScalar(le(2n ** 256n - 1n)), false);
  });
});

describe('every backend gives the same verdict', () => {
  const message = new TextEncoder().encode('pbft request 42');

  it('a signature made by the key holder with the identity as R: the bare equation holds, every backend refuses it', () => {
    const { publicKey, signature } = identityRSignature(sha256(Uint8Array.of(9)), message);
    assert.equal(rawOpenssl(publicKey, message, signature), true, 'control: OpenSSL alone accepts it');
    assert.equal(passesSignatureRules(publicKey, signature), false);
    for (const [name, v] of backends) assert.equal(v.verify(publicKey, message, signature), false, name);
    if (sodiumLoads) {
      const raw = createRequire(import.meta.url)('sodium-native') as { crypto_sign_verify_detached(s: Uint8Array, m: Uint8Array, k: Uint8Array): boolean };
      assert.equal(raw.crypto_sign_verify_detached(signature, message, publicKey), false, 'libsodium alone refuses it');
    }
  });

  it('a small-order public key (the identity, S = 0): OpenSSL alone accepts any message, every backend refuses', () => {
    const signature = concatBytes(IDENTITY, le(0n));
    assert.equal(rawOpenssl(IDENTITY, message, signature), true, 'control: OpenSSL alone accepts it');
    for (const [name, v] of backends) assert.equal(v.verify(IDENTITY, message, signature), false, name);
  });

  it('S >= L (a malleated signature) is refused by every backend', () => {
    const signer = createNodeSigner(sha256(Uint8Array.of(3)));
    const sig = signer.sign(message);
    const s = fromLe(sig.subarray(32));
    const malleated = concatBytes(sig.subarray(0, 32), le(s + L));
    for (const [name, v] of backends) {
      assert.equal(v.verify(signer.publicKey, message, sig), true, `${name}: the honest signature`);
      assert.equal(v.verify(signer.publicKey, message, malleated), false, `${name}: S + L`);
    }
  });

  it('honest signatures of many keys and messages: all accept, and all refuse each one altered', () => {
    for (let i = 0; i < 40; i++) {
      const seed = sha256(Uint8Array.of(i, 77));
      const signer = sodiumLoads && i % 2 === 0 ? createSodiumSigner(seed) : createNodeSigner(seed);
      const m = sha256(Uint8Array.of(i)).subarray(0, i % 32);
      const sig = signer.sign(m);
      const bad = new Uint8Array(sig);
      bad[i % 64]! ^= 1 << (i % 8);
      for (const [name, v] of backends) {
        assert.equal(v.verify(signer.publicKey, m, sig), true, `${name} ${i}`);
        assert.equal(v.verify(signer.publicKey, m, bad), false, `${name} ${i} altered`);
      }
    }
  });
});

describe('choosing the backend', () => {
  it('auto takes libsodium where it loads; PBFT_CRYPTO or an explicit choice forces one; a bad name is an error', () => {
    const saved = process.env.PBFT_CRYPTO;
    try {
      delete process.env.PBFT_CRYPTO;
      assert.equal(hotPathBackend(), sodiumLoads ? 'sodium' : 'node');
      assert.equal(hotPathBackend('node'), 'node');
      process.env.PBFT_CRYPTO = 'node';
      assert.equal(hotPathBackend(), 'node');
      assert.equal(hotPathBackend('auto'), 'node', 'auto defers to the environment');
      if (sodiumLoads) assert.equal(hotPathBackend('sodium'), 'sodium', 'an explicit choice beats the environment');
      process.env.PBFT_CRYPTO = 'openssl';
      assert.throws(() => hotPathBackend(), (err: unknown) => err instanceof CryptoChoiceError && /must be one of auto, sodium, node, got "openssl"/.test(err.message));
      assert.throws(() => parseCryptoChoice(''), CryptoChoiceError);
    } finally {
      if (saved === undefined) delete process.env.PBFT_CRYPTO;
      else process.env.PBFT_CRYPTO = saved;
    }
  });
});
