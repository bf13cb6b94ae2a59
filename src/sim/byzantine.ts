/** Byzantine replica behaviours for the simulator (filled in below). */
import type { OutMessage, Replica } from '../core/replica.ts';
import type { Host, SimCluster } from './cluster.ts';

export interface Behavior {
  readonly name: string;
  /** Rewrites what the (real) core wanted to send. */
  outgoing(
    sim: SimCluster,
    host: Host,
    replica: Replica,
    messages: OutMessage[],
    replies: Array<{ client: number; frame: Uint8Array }>,
  ): { messages: OutMessage[]; replies: Array<{ client: number; frame: Uint8Array }> };
  /** Called every tick (to release delayed messages, inject forgeries, ...). */
  tick?(sim: SimCluster, host: Host, replica: Replica): void;
}
