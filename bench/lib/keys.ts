/**
 * Keyrings for the benchmark: generated in a temporary directory with free ports on 127.0.0.1,
 * and a JSON form of a cluster description that also carries the one-replica (f = 0) cluster of
 * the unreplicated baseline, which cluster.json cannot describe (it requires n = 3f+1, f >= 1).
 */
import { join } from 'node:path';
import type { ClusterConfig, FaultModel } from '../../src/core/cluster.ts';
import { CLUSTER_FILE, generateKeyring, serializeCluster, writeFileAtomic } from '../../src/crypto/keyring.ts';
import { freePorts } from '../../src/transport/free-ports.ts';

export interface ClusterJson {
  clusterId: string;
  f: number;
  faultModel?: FaultModel;
  replicas: Array<{ id: number; url: string; publicKey: string }>;
  clients: Array<{ id: number; publicKey: string }>;
}

const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
const unhex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'));

export function clusterToJson(c: ClusterConfig): ClusterJson {
  return {
    clusterId: c.clusterId,
    f: c.f,
    ...(c.faultModel === 'crash' ? { faultModel: c.faultModel } : {}),
    replicas: c.replicas.map((r) => ({ id: r.id, url: r.url, publicKey: hex(r.publicKey) })),
    clients: c.clients.map((k) => ({ id: k.id, publicKey: hex(k.publicKey) })),
  };
}

export function clusterFromJson(j: ClusterJson): ClusterConfig {
  return {
    clusterId: j.clusterId,
    f: j.f,
    ...(j.faultModel === 'crash' ? { faultModel: j.faultModel } : {}),
    replicas: j.replicas.map((r) => ({ id: r.id, url: r.url, publicKey: unhex(r.publicKey) })),
    clients: j.clients.map((k) => ({ id: k.id, publicKey: unhex(k.publicKey) })),
  };
}

export interface BenchKeyring {
  keysDir: string;
  cluster: ClusterConfig;
  ports: number[];
}

/** A keyring for `replicas` replicas (on free ports) and `clients` clients in `<dir>/keys`. */
export async function benchKeyring(dir: string, replicas: number, clients: number, clusterId: string, faultModel: FaultModel = 'byzantine'): Promise<BenchKeyring> {
  const keysDir = join(dir, 'keys');
  const ports = await freePorts(replicas);
  const { cluster } = generateKeyring({ replicas, clients, out: keysDir, clusterId, faultModel });
  const withPorts: ClusterConfig = { ...cluster, replicas: cluster.replicas.map((r, i) => ({ ...r, url: `ws://127.0.0.1:${ports[i]}` })) };
  writeFileAtomic(join(keysDir, CLUSTER_FILE), serializeCluster(withPorts), 0o644);
  return { keysDir, cluster: withPorts, ports };
}
