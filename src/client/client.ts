/**
 * The client SDK on Node: PbftClient (src/client/pbft-client.ts) with what only Node has installed:
 * `cluster` and `key` given as file paths are read by the keyring loader, and signing uses
 * libsodium where its binding loads, else node:crypto (about 25x and 10x faster than @noble). Both are loaded with dynamic `import()` when first
 * used, so importing the SDK loads no node:* module. The browser entry (browser.ts) does not
 * import this file.
 */
import type { ClusterConfig } from '../core/cluster.ts';
import { ClientConfigError } from './errors.ts';
import { installNodeSupport, type ClientKey } from './pbft-client.ts';

installNodeSupport({
  async loadCluster(path: string): Promise<ClusterConfig> {
    const keyring = await import('../crypto/keyring.ts');
    return keyring.loadCluster(path);
  },
  async loadKey(path: string, cluster: ClusterConfig): Promise<ClientKey> {
    const keyring = await import('../crypto/keyring.ts');
    const loaded = keyring.loadPrivateKey(path);
    if (loaded.principal !== 'client') throw new ClientConfigError(`${path} is the key of ${loaded.principal} ${loaded.id}, not a client key`);
    if (loaded.clusterId !== cluster.clusterId) {
      throw new ClientConfigError(`${path} belongs to cluster "${loaded.clusterId}", not to cluster "${cluster.clusterId}"`);
    }
    return { id: loaded.id, secretKey: loaded.secretKey };
  },
  async nodeCrypto(secretKey: Uint8Array, choice: 'auto' | 'sodium' | 'node') {
    const crypto = await import('../crypto/index.ts');
    const node = await import('../crypto/node.ts');
    const backend = crypto.hotPathBackend(choice);
    return { backend, signer: crypto.createSigner(secretKey, backend), verifier: crypto.createVerifier(backend), hash: node.sha256 };
  },
});

export * from './pbft-client.ts';
