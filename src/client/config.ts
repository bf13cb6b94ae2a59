/**
 * The keyring files as parsed JSON, for clients that have no file system (browsers) or keep the
 * keys elsewhere: `clusterFromJson(JSON.parse(clusterJsonText))` and
 * `clientKeyFromJson(JSON.parse(keyFileText), cluster)` give what PbftClient.connect takes.
 * Validated with the rules of the files (src/crypto/keyring-json.ts); anything wrong is a
 * ClientConfigError (code 'BAD_CONFIG', reason 'MALFORMED' or 'KEY_MISMATCH') with a one-line
 * message that never contains the secret key. No node:* import.
 */
import type { ClusterConfig } from '../core/cluster.ts';
import { KeyringError, parseCluster, parsePrivateKey } from '../crypto/keyring-json.ts';
import { ClientConfigError } from './errors.ts';
import type { ClientKey } from './pbft-client.ts';

function asConfigError(err: unknown): unknown {
  return err instanceof KeyringError ? new ClientConfigError(err.message, err.code) : err;
}

/** A parsed cluster.json, validated: every replica's URL and public key, f, the clients' keys. */
export function clusterFromJson(json: unknown, source = 'cluster.json'): ClusterConfig {
  try {
    return parseCluster(json, source);
  } catch (err) {
    throw asConfigError(err);
  }
}

/**
 * A parsed client key file (client-<id>.key), validated: its shape, that its public key is derived
 * from its secret key, that it is a client key of this cluster and that the cluster lists that
 * public key for that client id.
 */
export function clientKeyFromJson(json: unknown, cluster: ClusterConfig, source = 'client key JSON'): ClientKey {
  const hasId = typeof json === 'object' && json !== null && typeof (json as { id?: unknown }).id === 'number';
  const expected = { principal: 'client' as const, id: hasId ? (json as { id: number }).id : -1, cluster };
  try {
    const key = parsePrivateKey(json, source, hasId ? expected : undefined);
    return { id: key.id, secretKey: key.secretKey };
  } catch (err) {
    throw asConfigError(err);
  }
}
