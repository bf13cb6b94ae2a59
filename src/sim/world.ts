/**
 * What byzantine behaviours (src/sim/byzantine.ts) see of the simulated cluster: SimCluster
 * implements it. Kept apart so that byzantine.ts and cluster.ts do not import each other.
 */
import type { ClusterConfig } from '../core/cluster.ts';
import type { ReplicaOptions } from '../core/options.ts';
import type { Signer } from '../crypto/types.ts';
import type { SimNetwork } from './network.ts';

/** A replica host, as a behaviour sees it. */
export interface WorldHost {
  readonly id: number;
  readonly signer: Signer;
  /** Set when the host runs a byzantine behaviour. */
  readonly byzantine?: unknown;
}

export interface World {
  readonly n: number;
  readonly now: number;
  readonly cluster: ClusterConfig;
  readonly net: SimNetwork;
  readonly hosts: readonly WorldHost[];
  readonly clients: { readonly length: number };
  readonly opts: { readonly replica: Partial<ReplicaOptions> };
  /** Sends from a replica host, bypassing its core (a behaviour's own messages). */
  sendFromReplica(from: number, to: number, frame: Uint8Array): void;
  /** Counts a fault by kind (shown in the swarm's summary). */
  count(kind: string, by?: number): void;
}
