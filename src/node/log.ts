/**
 * What the replica shell logs, and how: the log line of each core event, the periodic summary of
 * rejected messages, a logger that stays quiet until the replica listens, and one-line error text.
 * The core never logs (src/util/log.ts); the shell reads its events and counters and logs them here.
 */
import { toHex } from '../core/auth.ts';
import type { CoreEvent } from '../core/replica.ts';
import type { Logger } from '../util/log.ts';

/** Rejected-message counts are summarized in the log at most this often, when they changed. */
export const REJECTED_SUMMARY_MS = 10_000;

function oneLine(text: string): string {
  return text.replace(/\s*[\r\n]+\s*/g, ' ').trim();
}

/** The message of an error (or the value) on one line. */
export function errorText(err: unknown): string {
  return oneLine(err instanceof Error ? err.message : String(err));
}

/** The first five frames of a stack trace (below its message line), on one line. */
export function stackLine(stack: string): string {
  return stack
    .split('\n')
    .slice(1, 6)
    .map((l) => l.trim())
    .join(' | ');
}

/**
 * A logger that drops debug and info lines while `open()` is false: a replica that cannot start says
 * so in one line, without the transport's lifecycle chatter around it.
 */
export function gatedLogger(inner: Logger, open: () => boolean): Logger {
  return {
    debug: (m, f) => (open() ? inner.debug(m, f) : undefined),
    info: (m, f) => (open() ? inner.info(m, f) : undefined),
    warn: (m, f) => inner.warn(m, f),
    error: (m, f) => inner.error(m, f),
    child: (fields) => gatedLogger(inner.child(fields), open),
  };
}

/** The log line of a core event (none for 'executed' and 'committed'); `tickMs` turns ticks into ms. */
/**
 * At most one log line per key (e.g. a peer and a misbehaviour code) per window; the lines held back
 * are counted and reported with the next one. A peer that repeats one invalid frame thousands of
 * times a second must not fill the disk with identical warnings.
 */
export class LogLimiter {
  private readonly last = new Map<string, { at: number; held: number }>();

  constructor(
    readonly windowMs = 10_000,
    private readonly now: () => number = Date.now,
    private readonly keysMax = 10_000,
  ) {}

  /** undefined: hold the line back; otherwise log it, with how many were held back since the last. */
  allow(key: string): { heldBack: number } | undefined {
    const t = this.now();
    const entry = this.last.get(key);
    if (entry !== undefined && t - entry.at < this.windowMs) {
      entry.held++;
      return undefined;
    }
    if (this.last.size >= this.keysMax && entry === undefined) this.last.clear();
    this.last.set(key, { at: t, held: 0 });
    return { heldBack: entry?.held ?? 0 };
  }
}

export function logCoreEvent(log: Logger, event: CoreEvent, tickMs: number, limiter?: LogLimiter): void {
  switch (event.type) {
    case 'executed':
    case 'committed':
      break;
    case 'view-change-started':
      log.warn('view change started', { view: event.view, reason: event.reason });
      break;
    case 'view-entered':
      log.info('view entered', { view: event.view, primary: event.primary });
      break;
    case 'primary-suspected':
      log.warn('suspects the primary; the view changes once f+1 replicas do', { view: event.view, reason: event.reason });
      break;
    case 'checkpoint-stable':
      log.debug('checkpoint stable', { seq: event.seq, digest: toHex(event.digest) });
      break;
    case 'state-diverged':
      log.error('state diverged from the stable checkpoint', {
        seq: event.seq,
        own: toHex(event.own),
        agreed: toHex(event.agreed),
      });
      break;
    case 'stored-state-corrupt':
      log.error('stored state is corrupt', { seq: event.seq, reason: event.reason });
      break;
    case 'state-transfer-started':
      log.info('state transfer started', { seq: event.seq, reason: event.reason });
      break;
    case 'state-transfer-completed':
      log.info('state transfer completed', {
        seq: event.seq,
        partitionsFetched: event.partitionsFetched,
        partitionCount: event.partitionCount,
        bytesReceived: event.bytesReceived,
        bytesSent: event.bytesSent,
        ms: event.ticks * tickMs,
      });
      break;
    case 'peer-misbehaved': {
      const ok = limiter ? limiter.allow(`misbehaved:${event.peer}:${event.code}`) : { heldBack: 0 };
      if (ok === undefined) break;
      log.warn('peer misbehaved', {
        peer: event.peer,
        code: event.code,
        reason: event.reason,
        ...(ok.heldBack > 0 ? { sameSinceLastLine: ok.heldBack } : {}),
      });
      break;
    }
    case 'stored-state-lost':
      log.error('durable state is missing or damaged: rejoining as a recovering replica that signs nothing it may have signed before', {
        reasons: event.reasons.join('; '),
        noVotesUpToView: event.floor.view,
        noViewChangeBeforeStable: event.floor.seq,
      });
      break;
    case 'abstaining':
      log.info('restarted: no PRE-PREPARE, PREPARE or COMMIT where votes of the last run may have been lost unwritten', {
        noVotesUpToView: event.abstain.view,
        noVotesUpToSeq: event.abstain.seq,
      });
      break;
    case 'abstaining-ended':
      log.info('restarted: voting again', { view: event.view, stable: event.stable });
      break;
    case 'signing-resumed':
      log.info('recovered: signing again', { view: event.view, stable: event.stable });
      break;
    case 'reconfiguration':
      if (event.result.ok) {
        log.info('reconfiguration ordered', { seq: event.seq, epoch: event.result.epoch, afterCheckpoint: event.result.since, replicas: event.result.replicas.join(',') });
      } else log.warn('reconfiguration refused', { seq: event.seq, reason: event.result.reason });
      break;
    case 'epoch-entered':
      log.info('configuration entered', { epoch: event.epoch, since: event.since, replicas: event.replicas.join(','), member: event.member });
      break;
    case 'quitting':
      log.warn('asking to leave the configuration (quit on divergence); the operator adds it again after the repair', { reason: event.reason });
      break;
    case 'evidence':
      // Its 'peer-misbehaved' event (code 'equivocation') says so in the log.
      break;
    case 'replica-removed':
      log.warn('this replica is no longer a member: it votes no more; stop it and delete its data when convenient', { epoch: event.epoch });
      break;
    default: {
      const never: never = event;
      log.warn('unknown core event', { event: String((never as { type?: unknown }).type) });
    }
  }
}

/** Logs the core's rejected-message totals (one line) when they changed since the last call. */
export class RejectedSummary {
  private last = '';

  constructor(private readonly log: Logger) {}

  summarize(rejected: ReadonlyMap<string, number> | undefined): void {
    if (rejected === undefined || rejected.size === 0) return;
    const counts = Object.fromEntries([...rejected.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1)));
    const key = JSON.stringify(counts);
    if (key === this.last) return;
    this.last = key;
    this.log.info('rejected messages (totals)', counts);
  }
}
