import type { CryptoBackend, Signer, Verifier } from './types.ts';
import { createNodeSigner, NodeVerifier } from './node.ts';
import { createNobleSigner, NobleVerifier } from './noble.ts';

export * from './types.ts';

export function createSigner(secretKey: Uint8Array, backend: CryptoBackend = 'node'): Signer {
  return backend === 'node' ? createNodeSigner(secretKey) : createNobleSigner(secretKey);
}

export function createVerifier(backend: CryptoBackend = 'node'): Verifier {
  return backend === 'node' ? new NodeVerifier() : new NobleVerifier();
}
