/**
 * A replica's Prometheus metrics (GET /metrics), with prom-client:
 *
 *   status families   the counters and gauges of /status (pbft_requests_executed_total, pbft_view,
 *                     ...), read from one NodeStatus snapshot per scrape
 *   histograms        measured here, in the shell, from what the core hands it (the core has no clock):
 *     pbft_request_duration_seconds               a client's REQUEST arriving at this replica to the
 *                                                 answer (reply or refusal) leaving it, or, when this
 *                                                 replica sends no answer (the request named other
 *                                                 repliers: the primary's case), to the turn that
 *                                                 executed it
 *     pbft_phase_duration_seconds{phase}          per sequence number, between the moments this
 *                                                 replica's core made its statements and decisions:
 *                                                 `prepare`, its PRE-PREPARE (primary) or PREPARE
 *                                                 (backup) to its COMMIT (it is prepared); `commit`, its
 *                                                 COMMIT to the batch committing here; `execute`,
 *                                                 committed to executed
 *     pbft_batch_size_requests, pbft_batch_size_bytes   executed batches (null batches left out):
 *                                                 requests, and bytes of their operations
 *     pbft_storage_synced_write_duration_seconds  each synced write batch (src/node/disk.ts)
 *   storage memory    RocksDB's own accounting (GET /status memory.storage): pbft_storage_memtable_bytes,
 *                     pbft_storage_table_readers_bytes, pbft_storage_block_cache_bytes, and
 *                     pbft_storage_sst_bytes (on disk)
 *   storage tree      RocksDB's levels and compactions (GET /status storage): pbft_storage_level_bytes{level},
 *                     pbft_storage_level0_files, pbft_storage_pending_compaction_bytes,
 *                     pbft_storage_running_compactions, pbft_storage_compaction_written_bytes_total,
 *                     pbft_storage_flush_written_bytes_total, pbft_storage_compaction_read_bytes_total,
 *                     pbft_storage_compaction_seconds_total, pbft_storage_write_stalls_total,
 *                     pbft_storage_write_stopped
 *   process metrics   prom-client's default collectors, once per process: CPU
 *                     (process_cpu_seconds_total), RSS (process_resident_memory_bytes), event-loop lag
 *                     (nodejs_eventloop_lag_seconds, _p50/_p90/_p99, sampled every EVENT_LOOP_SAMPLE_MS),
 *                     GC (nodejs_gc_duration_seconds),
 *                     heap, handles, file descriptors
 *
 * The phases are timed when the core computes a turn (TurnLoopHost.computed), before its effects
 * wait for the disk: the commit phase includes the wait for this replica's COMMIT to be written and
 * for the others' COMMITs (which each wait for their own write). Replies are seen when the pipeline
 * releases them (after the writes they depend on are durable): a request's duration ends when its
 * answer leaves. Frames are read with frame-peek.ts (a few header bytes, no decoding).
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { CoreEvent } from '../core/replica.ts';
import { MISBEHAVIOURS, REJECT_REASONS } from '../core/rejections.ts';
import { VOTE_KINDS } from '../core/evidence.ts';
import type { NodeStatus } from './http.ts';
import { BODY_TAG, peekAnswer, peekRequest, peekVote } from './frame-peek.ts';
import type { SentReply } from './pipeline.ts';

/** Requests waiting for their answer that are remembered, at most (the oldest are forgotten). */
export const ARRIVALS_MAX = 16_384;
/** Sequence numbers whose phases are being timed, at most (the log window is far smaller). */
export const PHASES_MAX = 4_096;

/** Seconds: 100 us .. 10 s. */
const LATENCY_BUCKETS_SECONDS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** Requests per batch: 1 .. 4,096 (the protocol's batch limit, src/core/limits.ts). */
const BATCH_REQUESTS_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096];
/** Operation bytes per batch: 64 B .. 4 MiB (the protocol's batch limit). */
const BATCH_BYTES_BUCKETS = [64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304];

let processRegistry: Registry | undefined;

/**
 * The event-loop lag is sampled by a timer this often (ms). prom-client's default, 10 ms, woke an
 * idle replica 100 times a second, half of its CPU once the loop itself sleeps (loop.ts); a stall
 * longer than this still shows in full (`nodejs_eventloop_lag_max_seconds`).
 */
export const EVENT_LOOP_SAMPLE_MS = 100;

/** prom-client's process and Node.js metrics, collected once per process whatever the number of replicas in it. */
function processMetrics(): Registry {
  if (processRegistry === undefined) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry, eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
  }
  return processRegistry;
}

interface Phases {
  /** The view of the statements timed (a later view's re-proposal starts over). */
  view: number;
  prePrepared?: number;
  prepared?: number;
  committed?: number;
}

export class NodeMetrics {
  readonly registry = new Registry();
  private snapshot: NodeStatus | undefined;
  private readonly arrivals = new Map<string, number>();
  private readonly phases = new Map<number, Phases>();
  /** Highest sequence number executed (or transferred) that this object saw. */
  private executedThrough = 0;
  private readonly requestDuration: Histogram<string>;
  private readonly phaseDuration: Histogram<'phase'>;
  private readonly batchRequests: Histogram<string>;
  private readonly batchBytes: Histogram<string>;
  private readonly syncedWriteDuration: Histogram<string>;

  /** `now` in milliseconds (monotonic), the replica's clock. */
  constructor(private readonly now: () => number) {
    // Started now, not at the first scrape: GC pauses and event-loop delay are observed from the start.
    processMetrics();
    this.statusFamilies();
    const registers = [this.registry];
    this.requestDuration = new Histogram({
      name: 'pbft_request_duration_seconds',
      help: "From a client's request arriving at this replica to its answer (reply or refusal) leaving it, or, when this replica sends it no answer (it named other repliers), to its execution here.",
      buckets: LATENCY_BUCKETS_SECONDS,
      registers,
    });
    this.phaseDuration = new Histogram({
      name: 'pbft_phase_duration_seconds',
      help:
        'Per sequence number, as seen by this replica\'s core: phase="prepare" from its PRE-PREPARE or PREPARE to its COMMIT (prepared), ' +
        'phase="commit" from there to the batch committing here (with the synced writes of the COMMITs), phase="execute" from committed to executed.',
      labelNames: ['phase'],
      buckets: LATENCY_BUCKETS_SECONDS,
      registers,
    });
    this.batchRequests = new Histogram({
      name: 'pbft_batch_size_requests',
      help: 'Requests per executed batch (null batches left out).',
      buckets: BATCH_REQUESTS_BUCKETS,
      registers,
    });
    this.batchBytes = new Histogram({
      name: 'pbft_batch_size_bytes',
      help: 'Bytes of the operations of an executed batch (null batches left out).',
      buckets: BATCH_BYTES_BUCKETS,
      registers,
    });
    this.syncedWriteDuration = new Histogram({
      name: 'pbft_storage_synced_write_duration_seconds',
      help: 'Duration of each synced write batch to the storage.',
      buckets: LATENCY_BUCKETS_SECONDS,
      registers,
    });
  }

  /** The Prometheus text of this replica's families and of the process (prom-client renders both). */
  async render(status: NodeStatus): Promise<string> {
    this.snapshot = status;
    // Every collect() runs synchronously at the start of metrics(): one snapshot serves them all.
    const own = await this.registry.metrics();
    return own + (await processMetrics().metrics());
  }

  /** A frame from a client arrived at the transport (before the loop): a request starts its clock. */
  requestArrived(frame: Uint8Array): void {
    const r = peekRequest(frame);
    if (r === undefined) return;
    const key = `${r.client}:${r.timestamp}`;
    if (this.arrivals.has(key)) return; // a retransmission: the first arrival counts
    if (this.arrivals.size >= ARRIVALS_MAX) this.arrivals.delete(this.arrivals.keys().next().value!);
    this.arrivals.set(key, this.now());
  }

  /** A synced write batch took `ms` milliseconds. */
  syncedWrite(ms: number): void {
    this.syncedWriteDuration.observe(ms / 1000);
  }

  /**
   * A turn the core computed (TurnLoopHost.computed), before its effects wait for the disk: its
   * PRE-PREPAREs, PREPAREs and COMMITs (the phases' boundaries) and its events are timed here, when
   * the core decided them. Timed when they were performed instead, a turn whose writes were deferred
   * to the next turn that sends something showed its commit as late as that turn (with one client,
   * the next request's).
   */
  computed(messages: readonly { frame: Uint8Array }[], events: readonly CoreEvent[], replies: readonly { frame: Uint8Array }[] = []): void {
    const t = this.now();
    this.executedUnanswered(events, replies, t);
    let previous: Uint8Array | undefined;
    for (const m of messages) {
      if (m.frame === previous) continue; // a broadcast: one frame to every peer
      previous = m.frame;
      const v = peekVote(m.frame);
      if (v === undefined || v.seq <= this.executedThrough) continue;
      let p = this.phases.get(v.seq);
      if (p === undefined || v.view > p.view) {
        p = { view: v.view };
        this.remember(v.seq, p);
      } else if (v.view < p.view) continue;
      if (v.tag === BODY_TAG.commit) p.prepared ??= t;
      else p.prePrepared ??= t;
    }
    for (const e of events) {
      if (e.type === 'committed') {
        if (e.seq <= this.executedThrough) continue;
        const p = this.phases.get(e.seq);
        // Committed without statements of our own timed here (e.g. on a fetched certificate): only
        // committed -> executed is measured; no later view's vote can restart it.
        if (p === undefined) this.remember(e.seq, { view: Number.POSITIVE_INFINITY, committed: t });
        else p.committed ??= t;
      } else if (e.type === 'executed') {
        this.executed(e.seq, e.requests, t);
      } else if (e.type === 'state-transfer-completed') {
        this.forgetThrough(e.seq);
      }
    }
  }

  /**
   * A request this turn executed and answers with none of its replies (it named other repliers)
   * ends its duration here, when it was executed. Timed at its release instead, it waited for the
   * turn's write, which, with nothing to send, is deferred to the next turn that sends something (up
   * to the pipeline's deferredWritesMsMax): with one client the primary's figure was the next
   * request's arrival. A request answered in this turn waits for its answer to leave (released()).
   */
  private executedUnanswered(events: readonly CoreEvent[], replies: readonly { frame: Uint8Array }[], t: number): void {
    if (this.arrivals.size === 0) return;
    let answered: Set<string> | undefined;
    for (const e of events) {
      if (e.type !== 'executed') continue;
      if (answered === undefined) {
        answered = new Set();
        for (const r of replies) {
          const a = peekAnswer(r.frame);
          if (a !== undefined) answered.add(`${a.client}:${a.timestamp}`);
        }
      }
      for (const r of e.requests) {
        const key = `${r.client}:${r.timestamp}`;
        if (!answered.has(key)) this.answered(key, t);
      }
    }
  }

  /**
   * Answers the pipeline released (their writes are durable), as they leave: a request's duration
   * ends with its answer (requests this replica does not answer ended when executed: computed()).
   */
  released(replies: readonly SentReply[]): void {
    if (this.arrivals.size === 0) return;
    const t = this.now();
    for (const r of replies) {
      const a = peekAnswer(r.frame);
      if (a !== undefined) this.answered(`${a.client}:${a.timestamp}`, t);
    }
  }

  private answered(key: string, t: number): void {
    const at = this.arrivals.get(key);
    if (at === undefined) return;
    this.arrivals.delete(key);
    this.requestDuration.observe(Math.max(0, t - at) / 1000);
  }

  private executed(seq: number, requests: ReadonlyArray<{ op: Uint8Array }>, t: number): void {
    if (requests.length > 0) {
      this.batchRequests.observe(requests.length);
      let bytes = 0;
      for (const r of requests) bytes += r.op.length;
      this.batchBytes.observe(bytes);
    }
    const p = this.phases.get(seq);
    if (p !== undefined) {
      const phase = (name: string, from: number | undefined, to: number | undefined): void => {
        if (from !== undefined && to !== undefined && to >= from) this.phaseDuration.observe({ phase: name }, (to - from) / 1000);
      };
      phase('prepare', p.prePrepared, p.prepared);
      phase('commit', p.prepared, p.committed);
      phase('execute', p.committed, t);
    }
    this.forgetThrough(seq);
  }

  private remember(seq: number, p: Phases): void {
    this.phases.delete(seq);
    if (this.phases.size >= PHASES_MAX) this.phases.delete(this.phases.keys().next().value!);
    this.phases.set(seq, p);
  }

  /** Sequence numbers at or below `seq` are done: their timings are dropped. */
  private forgetThrough(seq: number): void {
    if (seq <= this.executedThrough) {
      this.phases.delete(seq);
      return;
    }
    this.executedThrough = seq;
    for (const s of this.phases.keys()) if (s <= seq) this.phases.delete(s);
  }

  /** The families of /status, as they were before prom-client (names, types and help unchanged). */
  private statusFamilies(): void {
    const registers = [this.registry];
    const snap = (): NodeStatus => {
      if (this.snapshot === undefined) throw new Error('metrics rendered without a status snapshot');
      return this.snapshot;
    };
    const counter = (name: string, help: string, value: (s: NodeStatus) => number): void => {
      const c: Counter<string> = new Counter({
        name,
        help,
        registers,
        collect: () => {
          c.reset();
          c.inc(value(snap()));
        },
      });
    };
    const gauge = (name: string, help: string, value: (s: NodeStatus) => number): void => {
      const g: Gauge<string> = new Gauge({ name, help, registers, collect: () => g.set(value(snap())) });
    };
    const labelled = (name: string, help: string, label: string, values: (s: NodeStatus) => Array<[string, number]>): void => {
      const c: Counter<string> = new Counter({
        name,
        help,
        labelNames: [label],
        registers,
        collect: () => {
          c.reset();
          for (const [l, v] of values(snap())) c.inc({ [label]: l }, v);
        },
      });
    };
    const flag = (b: boolean | undefined): number => (b === true ? 1 : 0);
    counter('pbft_requests_executed_total', 'Client requests executed.', (s) => s.counters.requestsExecuted);
    counter('pbft_batches_executed_total', 'Batches (sequence numbers) executed.', (s) => s.counters.batchesExecuted);
    counter('pbft_replies_left_to_others_total', 'Replies not sent when their request executed: it named other replicas to reply (kept for a retransmission).', (s) => s.counters.repliesLeftToOthers);
    gauge('pbft_view', 'Current view.', (s) => s.view);
    gauge('pbft_view_changing', '1 while a view change is in progress.', (s) => flag(s.viewChanging));
    counter('pbft_view_changes_total', 'View changes started.', (s) => s.counters.viewChanges);
    gauge('pbft_last_executed_seq', 'Highest sequence number executed.', (s) => s.lastExecuted);
    gauge('pbft_stable_checkpoint_seq', 'Sequence number of the stable checkpoint.', (s) => s.stableCheckpoint.seq);
    counter('pbft_checkpoints_stable_total', 'Checkpoints that became stable.', (s) => s.counters.checkpointsStable);
    counter('pbft_checkpoints_over_turns_total', 'Own checkpoints computed over several loop turns while execution went on (a large change: after a bulk load).', (s) => s.counters.checkpointsOverTurns);
    counter('pbft_checkpoints_rushed_by_next_total', 'Own checkpoints computing over turns whose remaining partitions were computed in one turn because the next checkpoint was due.', (s) => s.counters.checkpointsRushedByNext);
    counter('pbft_checkpoints_rushed_by_stable_total', 'Own checkpoints computing over turns whose remaining partitions were computed in one turn because a stable certificate reached them first.', (s) => s.counters.checkpointsRushedByStable);
    counter('pbft_checkpoint_partitions_rushed_total', 'Partitions of own checkpoints computed in one turn by the two counters before.', (s) => s.counters.checkpointPartitionsRushed);
    counter('pbft_records_found_ahead_total', 'Partitions a stable checkpoint wrote as records whose records were found in the turns before its certificate.', (s) => s.counters.recordsFoundAhead);
    counter('pbft_records_found_in_turn_total', "Partitions a stable checkpoint wrote as records whose records were found in the certificate's own turn.", (s) => s.counters.recordsFoundInTurn);
    gauge('pbft_log_slots', 'Log slots held in memory.', (s) => s.logSlots);
    gauge('pbft_waiting_requests', 'Requests waiting to be executed.', (s) => s.waitingRequests);
    labelled(
      'pbft_rejected_messages_total',
      'Messages rejected by the protocol core, by reason (every reason there is, src/core/rejections.ts).',
      'reason',
      (s) => REJECT_REASONS.map((reason) => [reason, s.rejected[reason] ?? 0]),
    );
    labelled(
      'pbft_peer_misbehaviour_total',
      'Things peers did that no correct replica does, by code (every code there is, src/core/rejections.ts).',
      'code',
      (s) => MISBEHAVIOURS.map((code) => [code, s.misbehaviour[code] ?? 0]),
    );
    labelled(
      'pbft_equivocation_evidence_total',
      'Equivocation evidence held (kept on disk, so it survives restarts), by kind: two PRE-PREPAREs, PREPAREs or COMMITs of one replica for one (view, seq), or mixed (GET /evidence, pbft evidence).',
      'kind',
      (s) => VOTE_KINDS.map((kind) => [kind, s.evidence.byKind[kind]]),
    );
    counter(
      'pbft_equivocation_evidence_not_kept_total',
      'Equivocations seen once the evidence caps were reached (per signer or in all): counted, not kept, signatures not checked.',
      (s) => s.evidence.notKept,
    );
    gauge('pbft_equivocation_evidence_signers', 'Replicas named by the equivocation evidence held.', (s) => s.evidence.signers.length);
    counter('pbft_divergences_total', 'Own checkpoints that differed from the agreed stable checkpoint.', (s) => s.counters.divergences);
    counter('pbft_state_transfers_total', 'State transfers started.', (s) => s.counters.stateTransfers);
    gauge('pbft_state_transferring', '1 while a state transfer is in progress.', (s) => flag(s.transferring));
    counter('pbft_state_transfers_completed_total', 'State transfers completed.', (s) => s.stateTransfersCompleted);
    counter('pbft_stored_state_corruptions_total', 'Times the stored state was found corrupt at recovery.', (s) => s.storedStateCorruptions);
    counter('pbft_stored_state_losses_total', 'Times the durable state was found missing or damaged at start.', (s) => s.storedStateLosses);
    gauge('pbft_recovering', '1 while recovering from lost durable state (signing restricted).', (s) => flag(s.recovering !== undefined));
    counter('pbft_entries_fetched_total', 'Committed log entries fetched from peers.', (s) => s.counters.entriesFetched);
    counter('pbft_retransmissions_total', 'Protocol retransmissions.', (s) => s.counters.retransmissions);
    counter('pbft_reads_answered_total', 'Read-only requests answered unordered.', (s) => s.counters.readsAnswered);
    counter('pbft_reads_expired_total', 'Read-only requests dropped unanswered after readHoldTicksMax.', (s) => s.counters.readsExpired);
    counter('pbft_reads_refused_total', 'Read-only requests refused (the operation is not read-only).', (s) => s.counters.readsRefused);
    counter('pbft_transport_frames_received_total', 'Frames received.', (s) => s.transport.framesIn);
    counter('pbft_transport_frames_sent_total', 'Frames sent.', (s) => s.transport.framesOut);
    counter('pbft_transport_received_bytes_total', 'Bytes of frames received.', (s) => s.transport.bytesIn);
    counter('pbft_transport_sent_bytes_total', 'Bytes of frames sent.', (s) => s.transport.bytesOut);
    counter('pbft_transport_frames_dropped_total', 'Frames dropped by the transport.', (s) => s.transport.framesDropped);
    counter(
      'pbft_transport_silent_links_closed_total',
      'Connections closed because nothing arrived on them for silenceMsMax (then redialed).',
      (s) => s.transport.silentLinksClosed,
    );
    labelled('pbft_transport_handshakes_rejected_total', 'Connection handshakes refused, by reason.', 'reason', (s) => Object.entries(s.transport.handshakesRejected));
    gauge('pbft_transport_replicas_connected', 'Replicas with an open outbound connection.', (s) => s.transport.replicasConnected.length);
    gauge('pbft_transport_clients_connected', 'Authenticated client connections.', (s) => s.transport.clientsConnected);
    counter('pbft_loop_turns_total', 'Loop turns run.', (s) => s.loop.turns);
    counter('pbft_storage_synced_writes_total', 'Synced write batches.', (s) => s.loop.storageWrites);
    counter(
      'pbft_loop_checkpoint_pending_seconds_total',
      "Wall time with the replica's own checkpoint pending (computed over turns, or its records found ahead of the certificate).",
      (s) => (s.loop.checkpointMs ?? 0) / 1000,
    );
    counter('pbft_loop_checkpoint_pending_batches_total', "Batches executed while the replica's own checkpoint was pending.", (s) => s.loop.checkpointBatches ?? 0);
    counter(
      'pbft_loop_late_ticks_dropped_total',
      "Ticks not run because a turn came later than the replica's quiet ticks allowed plus LATE_TICKS_MAX: its own stalls, which its timers do not count.",
      (s) => s.loop.lateTicksDropped ?? 0,
    );
    counter('pbft_loop_late_turns_total', 'Turns that dropped late ticks (each one a stall of the replica of its own).', (s) => s.loop.lateTurns ?? 0);
    counter('pbft_loop_inbound_frames_dropped_total', 'Frames dropped because the loop queue was full.', (s) => s.loop.inboundFramesDropped);
    counter(
      'pbft_loop_link_frames_over_budget_total',
      'Link requests from replicas dropped because the sender was over its budget of loop time.',
      (s) => s.loop.linkFramesOverBudget ?? 0,
    );
    counter('pbft_transport_clients_cut_off_total', 'Clients cut off for sending what only a faulty client sends.', (s) => s.transport.clientsCutOff ?? 0);
    counter('pbft_transport_cut_off_handshakes_refused_total', 'Handshakes refused because the client was cut off.', (s) => s.transport.cutOffHandshakesRefused ?? 0);
    counter('pbft_crypto_signs_total', 'Signatures made on the loop for the core.', (s) => s.crypto.signs);
    counter('pbft_crypto_sign_seconds_total', 'Time spent signing on the loop.', (s) => s.crypto.signMs / 1000);
    counter('pbft_crypto_verifies_total', 'Signatures verified on the loop for the core.', (s) => s.crypto.verifies);
    counter('pbft_crypto_verify_seconds_total', 'Time spent verifying signatures on the loop.', (s) => s.crypto.verifyMs / 1000);
    gauge('pbft_uptime_seconds', 'Seconds since the replica started.', (s) => s.uptimeSeconds);
    gauge('pbft_storage_memtable_bytes', "RocksDB's write buffers (memtables) in memory.", (s) => s.memory.storage?.memtables ?? 0);
    gauge('pbft_storage_table_readers_bytes', "RocksDB's table readers (index and filter blocks of open SST files) in memory.", (s) => s.memory.storage?.tableReaders ?? 0);
    gauge('pbft_storage_block_cache_bytes', "RocksDB's block cache in use.", (s) => s.memory.storage?.blockCache ?? 0);
    gauge('pbft_storage_sst_bytes', "RocksDB's live SST files on disk.", (s) => s.memory.storage?.sstBytes ?? 0);
    const levels: Gauge<string> = new Gauge({
      name: 'pbft_storage_level_bytes',
      help: "Bytes of RocksDB's live table files per level (whole MiB).",
      labelNames: ['level'],
      registers,
      collect: () => {
        levels.reset();
        (snap().storage?.levelBytes ?? []).forEach((b, level) => levels.set({ level: String(level) }, b));
      },
    });
    gauge('pbft_storage_level0_files', "RocksDB's table files at level 0.", (s) => s.storage?.level0Files ?? 0);
    gauge('pbft_storage_pending_compaction_bytes', "RocksDB's estimate of the bytes its compactions must still rewrite.", (s) => s.storage?.pendingCompactionBytes ?? 0);
    gauge('pbft_storage_running_compactions', 'RocksDB compactions running now.', (s) => s.storage?.runningCompactions ?? 0);
    counter('pbft_storage_compaction_written_bytes_total', 'Bytes RocksDB flushes and compactions wrote since the database was opened (RocksDB counts a flush as a level-0 write).', (s) => s.storage?.compactionWrittenBytes ?? 0);
    counter('pbft_storage_flush_written_bytes_total', 'Bytes RocksDB memtable flushes wrote to level 0 since the database was opened.', (s) => s.storage?.flushWrittenBytes ?? 0);
    counter('pbft_storage_compaction_read_bytes_total', 'Bytes RocksDB compactions read since the database was opened.', (s) => s.storage?.compactionReadBytes ?? 0);
    counter('pbft_storage_compaction_seconds_total', 'Seconds RocksDB compactions ran since the database was opened.', (s) => s.storage?.compactionSeconds ?? 0);
    counter('pbft_storage_write_stalls_total', 'Times RocksDB slowed or stopped writes for its compactions since the database was opened.', (s) => s.storage?.writeStalls ?? 0);
    gauge('pbft_storage_write_stopped', 'RocksDB has stopped writes until its compactions catch up (1) or not (0).', (s) => flag(s.storage?.writeStopped));
  }
}
