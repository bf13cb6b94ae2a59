/**
 * What a replica serves over HTTP on its port (the transport hands it every non-WebSocket request):
 *
 *   GET /status    NodeStatus as JSON (ReplicaNode.status())
 *   GET /metrics   the same status as Prometheus text (renderMetrics; ReplicaNode.metrics())
 *
 * HEAD is answered as GET; any other method gets 405. Until the replica has its core every path gets
 * 503; any other path gets 404. Responses are never cached (cache-control: no-store).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Replica, ReplicaStatus } from '../core/replica.ts';
import { MISBEHAVIOURS, REJECT_REASONS, type Misbehaviour, type RejectReason } from '../core/rejections.ts';
import type { TransportStats } from '../transport/types.ts';

export interface NodeStatus extends ReplicaStatus {
  pid: number;
  listen: string;
  counters: Replica['counters'];
  rejected: Partial<Record<RejectReason, number>>;
  /** Misbehaviour seen from peers, by code. */
  misbehaviour: Partial<Record<Misbehaviour, number>>;
  transport: TransportStats;
  loop: {
    turns: number;
    inboundFramesDropped: number;
    /** Link requests from replicas dropped because the sender was over its budget of loop time (budget.ts). */
    linkFramesOverBudget?: number;
    queuedFrames: number;
    storageWrites: number;
    /** Wall time spent awaiting synced writes, milliseconds (summed over turns). */
    storageWriteMs: number;
  };
  /**
   * Signature work done on the loop for the core (counts and milliseconds); `verifiesOffloaded`:
   * verifications the core asked for that worker threads had done (option verifyWorkers).
   */
  crypto: { signs: number; verifies: number; signMs: number; verifyMs: number; verifiesOffloaded: number };
  /** Times this process found its stored state corrupt (at recovery) and state transfers it completed. */
  storedStateCorruptions: number;
  /** Times this process found its durable state behind its horizon record or its log damaged (it then recovers). */
  storedStateLosses: number;
  /** Horizon record writes (src/core/horizon.ts). */
  horizonWrites: number;
  stateTransfersCompleted: number;
  /** process.memoryUsage() in bytes: rss, heapTotal, heapUsed, external, arrayBuffers. */
  memory: NodeJS.MemoryUsage;
  uptimeSeconds: number;
}

/** Where the handler gets the status from. */
export interface StatusSource {
  /** False until the replica has its core (every GET or HEAD is answered 503 until then). */
  started(): boolean;
  status(): NodeStatus;
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
  if (path === '/metrics') return send(200, 'text/plain; version=0.0.4; charset=utf-8', renderMetrics(source.status()));
  return send(404, 'text/plain; charset=utf-8', 'not found; try /status or /metrics\n');
}

/** Prometheus text exposition of a replica's status. */
export function renderMetrics(s: NodeStatus): string {
  const lines: string[] = [];
  const metric = (name: string, type: 'counter' | 'gauge', help: string, samples: Array<[Record<string, string>, number]>): void => {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [labels, value] of samples) {
      const l = Object.entries(labels)
        .map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`)
        .join(',');
      lines.push(`${name}${l ? `{${l}}` : ''} ${value}`);
    }
  };
  const one = (value: number): Array<[Record<string, string>, number]> => [[{}, value]];
  const c = s.counters;
  metric('pbft_requests_executed_total', 'counter', 'Client requests executed.', one(c.requestsExecuted));
  metric('pbft_batches_executed_total', 'counter', 'Batches (sequence numbers) executed.', one(c.batchesExecuted));
  metric('pbft_view', 'gauge', 'Current view.', one(s.view));
  metric('pbft_view_changing', 'gauge', '1 while a view change is in progress.', one(s.viewChanging ? 1 : 0));
  metric('pbft_view_changes_total', 'counter', 'View changes started.', one(c.viewChanges));
  metric('pbft_last_executed_seq', 'gauge', 'Highest sequence number executed.', one(s.lastExecuted));
  metric('pbft_stable_checkpoint_seq', 'gauge', 'Sequence number of the stable checkpoint.', one(s.stableCheckpoint.seq));
  metric('pbft_checkpoints_stable_total', 'counter', 'Checkpoints that became stable.', one(c.checkpointsStable));
  metric('pbft_log_slots', 'gauge', 'Log slots held in memory.', one(s.logSlots));
  metric('pbft_waiting_requests', 'gauge', 'Requests waiting to be executed.', one(s.waitingRequests));
  metric(
    'pbft_rejected_messages_total',
    'counter',
    'Messages rejected by the protocol core, by reason (every reason there is, src/core/rejections.ts).',
    REJECT_REASONS.map((reason) => [{ reason }, s.rejected[reason] ?? 0]),
  );
  metric(
    'pbft_peer_misbehaviour_total',
    'counter',
    'Things peers did that no correct replica does, by code (every code there is, src/core/rejections.ts).',
    MISBEHAVIOURS.map((code) => [{ code }, s.misbehaviour[code] ?? 0]),
  );
  metric('pbft_divergences_total', 'counter', 'Own checkpoints that differed from the agreed stable checkpoint.', one(c.divergences));
  metric('pbft_state_transfers_total', 'counter', 'State transfers started.', one(c.stateTransfers));
  metric('pbft_state_transferring', 'gauge', '1 while a state transfer is in progress.', one(s.transferring ? 1 : 0));
  metric('pbft_state_transfers_completed_total', 'counter', 'State transfers completed.', one(s.stateTransfersCompleted));
  metric('pbft_stored_state_corruptions_total', 'counter', 'Times the stored state was found corrupt at recovery.', one(s.storedStateCorruptions));
  metric('pbft_stored_state_losses_total', 'counter', 'Times the durable state was found missing or damaged at start.', one(s.storedStateLosses));
  metric('pbft_recovering', 'gauge', '1 while recovering from lost durable state (signing restricted).', one(s.recovering ? 1 : 0));
  metric('pbft_entries_fetched_total', 'counter', 'Committed log entries fetched from peers.', one(c.entriesFetched));
  metric('pbft_retransmissions_total', 'counter', 'Protocol retransmissions.', one(c.retransmissions));
  const t = s.transport;
  metric('pbft_transport_frames_received_total', 'counter', 'Frames received.', one(t.framesIn));
  metric('pbft_transport_frames_sent_total', 'counter', 'Frames sent.', one(t.framesOut));
  metric('pbft_transport_received_bytes_total', 'counter', 'Bytes of frames received.', one(t.bytesIn));
  metric('pbft_transport_sent_bytes_total', 'counter', 'Bytes of frames sent.', one(t.bytesOut));
  metric('pbft_transport_frames_dropped_total', 'counter', 'Frames dropped by the transport.', one(t.framesDropped));
  metric('pbft_transport_silent_links_closed_total', 'counter', 'Connections closed because nothing arrived on them for silenceMsMax (then redialed).', one(t.silentLinksClosed));
  metric(
    'pbft_transport_handshakes_rejected_total',
    'counter',
    'Connection handshakes refused, by reason.',
    Object.entries(t.handshakesRejected).map(([reason, n]) => [{ reason }, n]),
  );
  metric('pbft_transport_replicas_connected', 'gauge', 'Replicas with an open outbound connection.', one(t.replicasConnected.length));
  metric('pbft_transport_clients_connected', 'gauge', 'Authenticated client connections.', one(t.clientsConnected));
  metric('pbft_loop_turns_total', 'counter', 'Loop turns run.', one(s.loop.turns));
  metric('pbft_storage_synced_writes_total', 'counter', 'Synced write batches.', one(s.loop.storageWrites));
  metric('pbft_loop_inbound_frames_dropped_total', 'counter', 'Frames dropped because the loop queue was full.', one(s.loop.inboundFramesDropped));
  metric('pbft_loop_link_frames_over_budget_total', 'counter', 'Link requests from replicas dropped because the sender was over its budget of loop time.', one(s.loop.linkFramesOverBudget ?? 0));
  metric('pbft_uptime_seconds', 'gauge', 'Seconds since the replica started.', one(s.uptimeSeconds));
  return lines.join('\n') + '\n';
}
