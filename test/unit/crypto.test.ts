import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createNodeSigner, NodeVerifier, nodeDerivePublicKey, sha256, sha256Parts } from '../../src/crypto/node.ts';
import { createNobleSigner, NobleVerifier, nobleDerivePublicKey, randomSecretKey, sha256Portable } from '../../src/crypto/noble.ts';
import { createSigner, createVerifier, type Signer, type Verifier } from '../../src/crypto/index.ts';
import { createSodiumSigner, SodiumVerifier } from '../../src/crypto/sodium.ts';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);

/** Fixed test seeds (reproducible), derived from labels. */
function seed(label: string): Uint8Array {
  return sha256(utf8(`pbft test seed ${label}`));
}

const verifiers: [string, Verifier][] = [
  ['node', new NodeVerifier()],
  ['noble', new NobleVerifier()],
  ['sodium', new SodiumVerifier()],
];

/** A copy of `bytes` with one bit of byte `index` flipped. */
function flipped(bytes: Uint8Array, index: number, bit = 0x01): Uint8Array {
  const copy = new Uint8Array(bytes);
  copy[index]! ^= bit;
  return copy;
}

describe('ed25519 backends agree', () => {
  it('derive the same public key from the same seed', () => {
    for (const sk of [seed('a'), seed('b'), randomSecretKey(), randomSecretKey()]) {
      assert.equal(hex(nodeDerivePublicKey(sk)), hex(nobleDerivePublicKey(sk)));
      assert.equal(hex(createNodeSigner(sk).publicKey), hex(createNobleSigner(sk).publicKey));
      assert.equal(hex(createSodiumSigner(sk).publicKey), hex(createNobleSigner(sk).publicKey));
    }
  });

  it('produce byte-identical signatures that each verify with the other backend', () => {
    const messages = [new Uint8Array(0), utf8('x'), utf8('pre-prepare view=0 seq=1'), randomBytes(1000), randomBytes(4096)];
    for (const sk of [seed('c'), randomSecretKey(), randomSecretKey()]) {
      const node = createNodeSigner(sk);
      const noble = createNobleSigner(sk);
      const sodium = createSodiumSigner(sk);
      for (const message of messages) {
        const sigNode = node.sign(message);
        const sigNoble = noble.sign(message);
        assert.equal(sigNode.length, 64);
        assert.equal(hex(sigNode), hex(sigNoble), `signature over ${message.length} bytes differs`);
        assert.equal(hex(sodium.sign(message)), hex(sigNode), `libsodium's signature over ${message.length} bytes differs`);
        assert.equal(new SodiumVerifier().verify(noble.publicKey, message, sigNoble), true, 'sodium verifies noble');
        assert.equal(new NobleVerifier().verify(node.publicKey, message, sigNode), true, 'noble verifies node');
        assert.equal(new NodeVerifier().verify(noble.publicKey, message, sigNoble), true, 'node verifies noble');
      }
    }
  });

  it('match the RFC 8032 test vector 2 (one-byte message)', () => {
    const sk = Buffer.from('4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb', 'hex');
    const expectedPub = '3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c';
    const expectedSig =
      '92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00';
    const message = Buffer.from('72', 'hex');
    for (const signer of [createNodeSigner(sk), createNobleSigner(sk), createSodiumSigner(sk), createSigner(sk, 'node'), createSigner(sk, 'noble'), createSigner(sk, 'sodium')]) {
      assert.equal(hex(signer.publicKey), expectedPub);
      assert.equal(hex(signer.sign(message)), expectedSig);
    }
  });

  it('createSigner / createVerifier select working backends', () => {
    const sk = seed('d');
    const message = utf8('hello');
    const signers: Signer[] = [createSigner(sk), createSigner(sk, 'node'), createSigner(sk, 'noble'), createSigner(sk, 'sodium')];
    for (const signer of signers) {
      const sig = signer.sign(message);
      for (const verifier of [createVerifier(), createVerifier('node'), createVerifier('noble'), createVerifier('sodium')]) {
        assert.equal(verifier.verify(signer.publicKey, message, sig), true);
        assert.equal(verifier.verify(signer.publicKey, utf8('hellO'), sig), false);
      }
    }
  });
});

describe('ed25519 verification rejects any single-byte change', () => {
  const sk = seed('tamper');
  const signer = createNodeSigner(sk);
  const message = utf8('commit v=3 n=42');
  const signature = signer.sign(message);
  const publicKey = signer.publicKey;

  for (const [name, verifier] of verifiers) {
    it(`${name}: the untouched signature verifies (control)`, () => {
      assert.equal(verifier.verify(publicKey, message, signature), true);
    });

    it(`${name}: every byte of the message`, () => {
      for (let i = 0; i < message.length; i++) {
        for (const bit of [0x01, 0x80]) {
          assert.equal(verifier.verify(publicKey, flipped(message, i, bit), signature), false, `message byte ${i} bit ${bit}`);
        }
      }
    });

    it(`${name}: every byte of the signature`, () => {
      for (let i = 0; i < signature.length; i++) {
        for (const bit of [0x01, 0x80]) {
          assert.equal(verifier.verify(publicKey, message, flipped(signature, i, bit)), false, `signature byte ${i} bit ${bit}`);
        }
      }
    });

    it(`${name}: every byte of the public key`, () => {
      for (let i = 0; i < publicKey.length; i++) {
        for (const bit of [0x01, 0x80]) {
          assert.equal(verifier.verify(flipped(publicKey, i, bit), message, signature), false, `public key byte ${i} bit ${bit}`);
        }
      }
    });

    it(`${name}: a longer or shorter message`, () => {
      assert.equal(verifier.verify(publicKey, message.subarray(0, message.length - 1), signature), false);
      assert.equal(verifier.verify(publicKey, new Uint8Array([...message, 0]), signature), false);
    });

    it(`${name}: another key's valid signature`, () => {
      const other = createNodeSigner(seed('other'));
      assert.equal(verifier.verify(publicKey, message, other.sign(message)), false);
      assert.equal(verifier.verify(other.publicKey, message, signature), false);
    });
  }
});

describe('ed25519 malformed input returns false, never throws', () => {
  const signer = createNobleSigner(seed('malformed'));
  const message = utf8('request');
  const signature = signer.sign(message);

  for (const [name, verifier] of verifiers) {
    it(`${name}: wrong signature lengths`, () => {
      for (const length of [0, 1, 32, 63, 65, 128]) {
        const sig = new Uint8Array(length);
        sig.set(signature.subarray(0, Math.min(length, 64)));
        assert.equal(verifier.verify(signer.publicKey, message, sig), false, `signature of ${length} bytes`);
      }
    });

    it(`${name}: wrong public key lengths`, () => {
      for (const length of [0, 1, 31, 33, 64]) {
        const pk = new Uint8Array(length);
        pk.set(signer.publicKey.subarray(0, Math.min(length, 32)));
        assert.equal(verifier.verify(pk, message, signature), false, `public key of ${length} bytes`);
      }
    });

    it(`${name}: all-zero and all-0xff signature and key`, () => {
      assert.equal(verifier.verify(signer.publicKey, message, new Uint8Array(64)), false);
      assert.equal(verifier.verify(signer.publicKey, message, new Uint8Array(64).fill(0xff)), false);
      assert.equal(verifier.verify(new Uint8Array(32).fill(0xff), message, signature), false);
    });

    it(`${name}: a subarray view of a larger buffer verifies like a copy`, () => {
      const big = new Uint8Array(200);
      big.set(signer.publicKey, 7);
      big.set(signature, 50);
      big.set(message, 120);
      const view = (at: number, len: number): Uint8Array => big.subarray(at, at + len);
      assert.equal(verifier.verify(view(7, 32), view(120, message.length), view(50, 64)), true);
    });
  }

  it('NodeVerifier caches an invalid public key (not a curve point) and keeps returning false', () => {
    // y = 2 has no x on edwards25519; y = 2^255 - 1 is not a canonical field element.
    const notOnCurve = Buffer.from('02' + '00'.repeat(31), 'hex');
    const nonCanonical = Buffer.from('ff'.repeat(31) + '7f', 'hex');
    const verifier = new NodeVerifier(2);
    for (let round = 0; round < 3; round++) {
      assert.equal(verifier.verify(notOnCurve, message, signature), false, `round ${round}`);
      assert.equal(verifier.verify(nonCanonical, message, signature), false, `round ${round}`);
      // Valid keys keep working around the invalid ones, across cache evictions (max 2 entries).
      assert.equal(verifier.verify(signer.publicKey, message, signature), true, `round ${round}`);
    }
    // The noble backend agrees that these keys verify nothing.
    assert.equal(new NobleVerifier().verify(notOnCurve, message, signature), false);
    assert.equal(new NobleVerifier().verify(nonCanonical, message, signature), false);
  });

  it('NodeVerifier stays correct when its key cache overflows', () => {
    const verifier = new NodeVerifier(3);
    const signers = Array.from({ length: 8 }, (_, i) => createNodeSigner(seed(`cache ${i}`)));
    const sigs = signers.map((s) => s.sign(message));
    for (let round = 0; round < 2; round++) {
      signers.forEach((s, i) => {
        assert.equal(verifier.verify(s.publicKey, message, sigs[i]!), true, `signer ${i}`);
        assert.equal(verifier.verify(s.publicKey, message, sigs[(i + 1) % sigs.length]!), false, `signer ${i} wrong sig`);
      });
    }
  });
});

describe('sha256', () => {
  it('node and noble agree on random inputs of many lengths', () => {
    const lengths = [0, 1, 31, 32, 55, 56, 63, 64, 65, 119, 127, 128, 1000, 4096, 65537];
    for (let i = 0; i < 40; i++) lengths.push(randomBytes(2).readUInt16BE(0));
    for (const length of lengths) {
      const data = randomBytes(length);
      const a = sha256(data);
      assert.equal(a.length, 32);
      assert.equal(hex(a), hex(sha256Portable(data)), `length ${length}`);
    }
  });

  it('matches the FIPS 180-2 vectors', () => {
    const abc = 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad';
    const empty = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
    assert.equal(hex(sha256(utf8('abc'))), abc);
    assert.equal(hex(sha256Portable(utf8('abc'))), abc);
    assert.equal(hex(sha256(new Uint8Array(0))), empty);
    assert.equal(hex(sha256Portable(new Uint8Array(0))), empty);
  });

  it('sha256Parts equals sha256 of the concatenation', () => {
    const parts = [randomBytes(3), new Uint8Array(0), randomBytes(64), randomBytes(1000)];
    const whole = Buffer.concat(parts);
    assert.equal(hex(sha256Parts(parts)), hex(sha256(whole)));
    assert.equal(hex(sha256Parts([])), hex(sha256(new Uint8Array(0))));
    assert.notEqual(hex(sha256Parts(parts.slice(1))), hex(sha256(whole)));
  });
});
