/**
 * What a replica serves over HTTP on its port (the transport hands it every non-WebSocket request):
 *
 *   GET /status    NodeStatus as JSON (ReplicaNode.status())
 *   GET /metrics   Prometheus text (metrics.ts: the status's counters and gauges, latency
 *                  histograms, process metrics; ReplicaNode.metrics())
 *   GET /evidence  the equivocation evidence this replica holds, as the JSON file that `pbft evidence
 *                  verify` checks (src/core/evidence.ts; ReplicaNode.evidence())
 *
 * HEAD is answered as GET; any other method gets 405. Until the replica has its core every path gets
 * 503; any other path gets 404. Responses are never cached (cache-control: no-store).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Replica, ReplicaStatus } from '../core/replica.ts';
import type { Misbehaviour, RejectReason } from '../core/rejections.ts';
import type { StorageLsm, StorageMemory } from '../storage/types.ts';
import type { TransportStats } from '../transport/types.ts';
import type { MisbehaviourRecord, ViewChangeRecord } from './history.ts';
import type { EvidenceFileJson } from '../core/evidence.ts';
import type { MallocInUse } from './malloc.ts';

export interface NodeStatus extends ReplicaStatus {
  /** The keyring's cluster id: who asks can check it reached a replica of its own cluster. */
  clusterId: string;
  pid: number;
  listen: string;
  counters: Replica['counters'];
  rejected: Partial<Record<RejectReason, number>>;
  /** Misbehaviour seen from peers, by code. */
  misbehaviour: Partial<Record<Misbehaviour, number>>;
  transport: TransportStats;
  loop: {
    turns: number;
    /** Wake-ups of the tick timer: one per tick while anything waits on time, few while idle (loop.ts). */
    tickWakeups?: number;
    /**
     * Ticks not run because a turn came later than the loop's quiet ticks plus LATE_TICKS_MAX
     * (core/timeout.ts): the replica's own stalls, which its timers do not count; and the turns so late.
     */
    lateTicksDropped?: number;
    lateTurns?: number;
    inboundFramesDropped: number;
    /** Link requests from replicas dropped because the sender was over its budget of loop time (budget.ts). */
    linkFramesOverBudget?: number;
    queuedFrames: number;
    storageWrites: number;
    /** Wall time spent awaiting synced writes, milliseconds (summed over turns). */
    storageWriteMs: number;
    /**
     * Wall time (ms) the replica's own checkpoint was pending (computed over turns, or its records
     * found ahead of its certificate), and the batches it executed meanwhile.
     */
    checkpointMs?: number;
    checkpointBatches?: number;
  };
  /**
   * Signature work done on the loop for the core (counts and milliseconds); `verifiesOffloaded`:
   * verifications the core asked for that worker threads had done (option verifyWorkers); `backend`:
   * the ed25519 implementation on the loop ('sodium': libsodium, 'node': node:crypto).
   */
  crypto: { backend: 'sodium' | 'node'; signs: number; verifies: number; signMs: number; verifyMs: number; verifiesOffloaded: number };
  /** Times this process found its stored state corrupt (at recovery) and state transfers it completed. */
  storedStateCorruptions: number;
  /** Times this process found its durable state behind its horizon record or its log damaged (it then recovers). */
  storedStateLosses: number;
  /** Horizon record writes (src/core/horizon.ts), and the milliseconds spent awaiting them. */
  horizonWrites: number;
  horizonWriteMs: number;
  stateTransfersCompleted: number;
  /**
   * This process's start from its data directory: records read, seconds reading them (the storage's
   * scan) and rebuilding the replica from them (joining partitions, checking the state digest).
   */
  recovery: RecoveryStats;
  /** The last view changes this replica took part in, oldest first, with wall-clock times (history.ts). */
  viewChangeHistory: ViewChangeRecord[];
  /** Misbehaviour seen from peers, per peer and code: the last reason, a count, first and last time (history.ts). */
  misbehaviourHistory: MisbehaviourRecord[];
  /**
   * process.memoryUsage() in bytes: rss, heapTotal, heapUsed, external, arrayBuffers; `malloc`: the
   * C allocator the process runs on (malloc.ts); and, when the process runs the heap policy (pbft
   * replica: src/node/heap.ts), the heap growing percent in force (0: V8 decides); `storage`: RocksDB's own accounting of its memory (src/storage/types.ts
   * StorageMemory), when the store can tell.
   */
  memory: NodeJS.MemoryUsage & { malloc?: MallocInUse; heapGrowingPercent?: number; storage?: StorageMemory };
  /**
   * RocksDB's tree of table files and its compactions (src/storage/types.ts StorageLsm): bytes per
   * level, level-0 files, pending and running compactions, what compactions wrote, read and took
   * since the start, write stalls; absent with another store.
   */
  storage?: StorageLsm;
  uptimeSeconds: number;
}

/** NodeStatus.recovery. */
export interface RecoveryStats {
  records: number;
  readSeconds: number;
  rebuildSeconds: number;
}

/** The Prometheus text format that GET /metrics serves (prom-client renders it). */
export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** Where the handler gets the status from. */
export interface StatusSource {
  /** False until the replica has its core (every GET or HEAD is answered 503 until then). */
  started(): boolean;
  status(): NodeStatus;
  /** The Prometheus text exposition. */
  metrics(): Promise<string>;
  /** The equivocation evidence held, in the file format of src/core/evidence.ts. */
  evidence(): EvidenceFileJson;
}

/** The request handler of a replica's port (ReplicaTransportOptions.httpHandler). */
export function serveHttp(req: IncomingMessage, res: ServerResponse, source: StatusSource): void {
  const path = (req.url ?? '/').split('?')[0];
  const send = (code: number, type: string, body: string): void => {
    res.statusCode = code;
    res.setHeader('content-type', type);
    res.setHeader('cache-control', 'no-store');
    res.end(body);
  };
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('allow', 'GET, HEAD');
    return send(405, 'text/plain; charset=utf-8', 'method not allowed\n');
  }
  if (!source.started()) return send(503, 'text/plain; charset=utf-8', 'starting\n');
  if (path === '/status') return send(200, 'application/json', JSON.stringify(source.status()) + '\n');
  if (path === '/evidence') return send(200, 'application/json', JSON.stringify(source.evidence()) + '\n');
  if (path === '/metrics') {
    source.metrics().then(
      (text) => send(200, METRICS_CONTENT_TYPE, text),
      (err: unknown) => send(500, 'text/plain; charset=utf-8', `metrics failed: ${err instanceof Error ? err.message : String(err)}\n`),
    );
    return;
  }
  return send(404, 'text/plain; charset=utf-8', 'not found; try /status, /metrics or /evidence\n');
}
