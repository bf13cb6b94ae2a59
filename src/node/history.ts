/**
 * Short, bounded histories that the replica shell keeps for /status from the core's events, with
 * wall-clock times (the core has no clock): the last view changes this replica took part in, and
 * the misbehaviour it saw from peers, coalesced per peer and code. The counters of /status say how
 * often; these say when, why and who, which is what an operator (or `pbft dashboard`) asks first.
 */
import type { CoreEvent } from '../core/replica.ts';
import type { Misbehaviour } from '../core/rejections.ts';

/** View changes remembered, at most (the oldest are forgotten). */
export const VIEW_CHANGE_HISTORY_MAX = 16;
/** (peer, code) pairs of misbehaviour remembered, at most (the least recently seen are forgotten). */
export const MISBEHAVIOUR_HISTORY_MAX = 16;
/** A reason longer than this is cut (a reason comes from the core, but may quote peer input). */
export const HISTORY_REASON_CHARS_MAX = 200;

export interface ViewChangeRecord {
  /** The view this replica moved to (or asked for). */
  view: number;
  /** The view it left. */
  from: number;
  /** Why it started the view change; 'entered on a NEW-VIEW' when it entered without starting one. */
  reason: string;
  /** Why it suspected the primary of `from` itself, when it did (its own request timer). */
  suspected?: string;
  /** Wall clock, milliseconds since the Unix epoch: the view change started here ... */
  startedAtMs: number;
  /** ... and this replica entered `view` (absent while it waits for the NEW-VIEW, or if it never came). */
  enteredAtMs?: number;
  /** The primary of `view`, once entered. */
  primary?: number;
}

export interface MisbehaviourRecord {
  peer: number;
  code: Misbehaviour;
  /** The detail of the last occurrence. */
  reason: string;
  count: number;
  firstAtMs: number;
  lastAtMs: number;
}

function cut(text: string): string {
  return text.length <= HISTORY_REASON_CHARS_MAX ? text : `${text.slice(0, HISTORY_REASON_CHARS_MAX - 3)}...`;
}

export class EventHistory {
  private readonly viewChanges: ViewChangeRecord[] = [];
  private readonly misbehaviour = new Map<string, MisbehaviourRecord>();
  private suspicion: { view: number; reason: string } | undefined;
  private view: number;

  /** `clockMs`: wall clock in milliseconds since the Unix epoch; `view`: the view the replica starts in. */
  constructor(
    private readonly clockMs: () => number,
    view = 0,
  ) {
    this.view = view;
  }

  /** The view the replica is in (after recovery: the recovered one). */
  setView(view: number): void {
    this.view = view;
  }

  observe(event: CoreEvent): void {
    switch (event.type) {
      case 'primary-suspected':
        this.suspicion = { view: event.view, reason: cut(event.reason) };
        break;
      case 'view-change-started': {
        const suspected = this.suspicion !== undefined && this.suspicion.view === this.view ? this.suspicion.reason : undefined;
        this.push({ view: event.view, from: this.view, reason: cut(event.reason), ...(suspected !== undefined ? { suspected } : {}), startedAtMs: this.clockMs() });
        this.view = event.view;
        this.suspicion = undefined;
        break;
      }
      case 'view-entered': {
        const now = this.clockMs();
        const open = this.viewChanges.find((r) => r.view === event.view && r.enteredAtMs === undefined);
        if (open !== undefined) {
          open.enteredAtMs = now;
          open.primary = event.primary;
        } else if (event.view > this.view) {
          // It never started this view change itself (it followed a NEW-VIEW, e.g. after a restart).
          this.push({ view: event.view, from: this.view, reason: 'entered on a NEW-VIEW', startedAtMs: now, enteredAtMs: now, primary: event.primary });
        }
        this.view = event.view;
        this.suspicion = undefined;
        break;
      }
      case 'peer-misbehaved': {
        const key = `${event.peer}:${event.code}`;
        const now = this.clockMs();
        const seen = this.misbehaviour.get(key);
        if (seen !== undefined) {
          seen.count++;
          seen.lastAtMs = now;
          seen.reason = cut(event.reason);
          // Most recently seen last: the first entry is the one to forget.
          this.misbehaviour.delete(key);
          this.misbehaviour.set(key, seen);
        } else {
          this.misbehaviour.set(key, { peer: event.peer, code: event.code, reason: cut(event.reason), count: 1, firstAtMs: now, lastAtMs: now });
          if (this.misbehaviour.size > MISBEHAVIOUR_HISTORY_MAX) this.misbehaviour.delete(this.misbehaviour.keys().next().value!);
        }
        break;
      }
      default:
        break;
    }
  }

  /** The view changes, oldest first (copies). */
  viewChangeHistory(): ViewChangeRecord[] {
    return this.viewChanges.map((r) => ({ ...r }));
  }

  /** Misbehaviour seen, least recently seen first (copies). */
  misbehaviourHistory(): MisbehaviourRecord[] {
    return [...this.misbehaviour.values()].map((r) => ({ ...r }));
  }

  private push(record: ViewChangeRecord): void {
    this.viewChanges.push(record);
    if (this.viewChanges.length > VIEW_CHANGE_HISTORY_MAX) this.viewChanges.splice(0, this.viewChanges.length - VIEW_CHANGE_HISTORY_MAX);
  }
}
