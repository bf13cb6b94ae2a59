/**
 * The public description of a cluster, as loaded from `keys/cluster.json`
 * (see src/crypto/keyring.ts for the file format and its validation).
 * Pure data: the core reads it, never loads it.
 */
export interface ReplicaInfo {
  id: number;
  /** WebSocket URL the replica listens on, e.g. ws://127.0.0.1:7001 */
  url: string;
  /** 32-byte raw ed25519 public key. */
  publicKey: Uint8Array;
}

export interface ClientInfo {
  id: number;
  publicKey: Uint8Array;
}

/**
 * What the replicas are trusted to do (src/core/quorum.ts chooses every threshold from it and n):
 *   byzantine  n = 3f+1: up to f replicas may lie, equivocate, stay silent or crash (PBFT).
 *   crash      n = 2f+1: up to f replicas may crash, restart, or be cut off, but none ever lies
 *              (the Paxos / Raft setting); a single replica that does lie can break safety.
 * A property of the cluster, fixed at keygen: reconfiguration keeps it.
 */
export type FaultModel = 'byzantine' | 'crash';

export interface ClusterConfig {
  /** Names this cluster; part of every signature's domain tag, so messages cannot cross clusters. */
  clusterId: string;
  f: number;
  /** Absent: 'byzantine' (keyrings written before the crash mode existed). */
  faultModel?: FaultModel;
  /** The keyring's replicas: n = 3f+1 (crash: 2f+1) entries, ids 0..n-1 in order (membership.ts changes them later). */
  replicas: ReplicaInfo[];
  /** Clients allowed to submit requests; ids unique, not necessarily dense. */
  clients: ClientInfo[];
  /**
   * The operator's 32-byte public key: reconfiguration requests (membership.ts) must be signed with
   * its private key. Absent: the membership cannot change.
   */
  operatorKey?: Uint8Array;
}

/** The client id under which the operator signs reconfiguration requests (never a client's). */
export const OPERATOR_CLIENT = 0xffff_ffff;

/**
 * A replica signs its own reconfiguration requests (its QUIT) as the client id
 * REPLICA_PRINCIPAL_BASE + its replica id, with its replica key; client ids stay below it.
 */
export const REPLICA_PRINCIPAL_BASE = 0xffff_0000;

export function replicaPrincipal(replica: number): number {
  return REPLICA_PRINCIPAL_BASE + replica;
}

/** The replica id of a replica principal, or undefined for a client (or the operator). */
export function replicaOfPrincipal(client: number): number | undefined {
  return client >= REPLICA_PRINCIPAL_BASE && client < OPERATOR_CLIENT ? client - REPLICA_PRINCIPAL_BASE : undefined;
}
