/**
 * Safety and liveness checkers of the simulator.
 *
 * - agreement: no two correct replicas execute different batches at one sequence number;
 * - determinism: correct replicas executing the same batch produce byte-identical results;
 * - validity: only requests a client signed are executed, each (client, timestamp) at most once;
 * - no regression: a correct replica's view and executed sequence number never go back;
 * - sequential model: every executed result, and every result a client accepted, equals what one
 *   sequential key-value store gives for the agreed order;
 * - liveness (checked by the cluster): after faults stop, every request is answered within a bound.
 */
import { decodeOp, encodeResult } from '../app/kv-ops.ts';
import { bytesEqual, toHex } from '../core/auth.ts';
import type { ExecutedRequest } from '../core/replica.ts';
import type { SimClient } from './client.ts';
import { KvModel } from './kv-model.ts';

export type ViolationKind = 'correctness' | 'liveness' | 'crash';

export interface Violation {
  kind: ViolationKind;
  check: string;
  detail: string;
  tick: number;
}

interface OrderEntry {
  digest: string;
  requests: ExecutedRequest[];
  replica: number;
}

export class Checker {
  readonly violations: Violation[] = [];
  /** The agreed order: seq -> the first correct execution seen. */
  readonly order = new Map<number, OrderEntry>();
  private readonly executedAt = new Map<string, number>();
  private readonly views = new Map<number, number>();
  private readonly executed = new Map<number, number>();
  requestsExecuted = 0;

  constructor(private readonly issuedBy: (client: number, timestamp: number) => Uint8Array[] | undefined) {}

  violation(kind: ViolationKind, check: string, detail: string, tick: number): void {
    if (this.violations.length < 50) this.violations.push({ kind, check, detail, tick });
  }

  onExecuted(replica: number, seq: number, digest: Uint8Array, requests: ExecutedRequest[], tick: number): void {
    const hex = toHex(digest);
    const prev = this.order.get(seq);
    if (prev) {
      if (prev.digest !== hex) {
        this.violation('correctness', 'agreement', `seq ${seq}: replica ${replica} executed ${hex.slice(0, 12)}, replica ${prev.replica} executed ${prev.digest.slice(0, 12)}`, tick);
        return;
      }
      if (prev.requests.length !== requests.length) {
        this.violation('correctness', 'determinism', `seq ${seq}: replicas ${prev.replica} and ${replica} executed different request sets`, tick);
        return;
      }
      for (let i = 0; i < requests.length; i++) {
        const a = prev.requests[i]!;
        const b = requests[i]!;
        if (a.client !== b.client || a.timestamp !== b.timestamp || !bytesEqual(a.result, b.result)) {
          this.violation('correctness', 'determinism', `seq ${seq}: replicas ${prev.replica} and ${replica} produced different results`, tick);
          return;
        }
      }
      return;
    }
    this.order.set(seq, { digest: hex, requests, replica });
    for (const r of requests) {
      this.requestsExecuted++;
      const key = `${r.client}:${r.timestamp}`;
      const other = this.executedAt.get(key);
      if (other !== undefined && other !== seq) {
        this.violation('correctness', 'at-most-once', `request ${key} executed at seq ${other} and ${seq}`, tick);
      }
      this.executedAt.set(key, seq);
      const issued = this.issuedBy(r.client, r.timestamp);
      if (!issued || !issued.some((op) => bytesEqual(op, r.op))) {
        this.violation('correctness', 'validity', `request ${key} at seq ${seq} was not signed by its client`, tick);
      }
    }
  }

  /**
   * Called after every turn of a correct replica, across crashes and restarts. A replica restarted
   * behind a stable checkpoint waits for state transfer (it executes and signs nothing meanwhile);
   * its execution is compared again once it executes.
   */
  onProgress(replica: number, view: number, lastExecuted: number, transferring: boolean, tick: number): void {
    const v = this.views.get(replica) ?? 0;
    if (view < v) this.violation('correctness', 'view-regression', `replica ${replica} view ${v} -> ${view}`, tick);
    this.views.set(replica, Math.max(v, view));
    if (transferring) return;
    const e = this.executed.get(replica) ?? 0;
    if (lastExecuted < e) this.violation('correctness', 'execution-regression', `replica ${replica} executed ${e} -> ${lastExecuted}`, tick);
    this.executed.set(replica, Math.max(e, lastExecuted));
  }

  /** A replica whose disk was wiped starts over: its progress is measured afresh. */
  resetProgress(replica: number): void {
    this.executed.delete(replica);
    this.views.delete(replica);
  }

  /** Replays the agreed order on a sequential model; compares executed and accepted results. */
  finish(clients: readonly SimClient[], tick: number): { modelled: number; gaps: number } {
    const model = new KvModel();
    const expected = new Map<string, Uint8Array>();
    const maxSeq = Math.max(0, ...this.order.keys());
    let gaps = 0;
    for (let seq = 1; seq <= maxSeq; seq++) {
      const entry = this.order.get(seq);
      if (!entry) {
        gaps++;
        // Without this batch the model cannot follow the state; stop comparing from here.
        break;
      }
      for (const r of entry.requests) {
        const op = decodeOp(r.op);
        const result = op.ok ? encodeResult(model.apply(op.value)) : undefined;
        if (result && !bytesEqual(result, r.result)) {
          this.violation('correctness', 'sequential-model', `seq ${seq}: request ${r.client}:${r.timestamp} result differs from the model`, tick);
        }
        expected.set(`${r.client}:${r.timestamp}`, r.result);
      }
    }
    for (const c of clients) {
      for (const done of c.completed) {
        const key = `${done.client}:${done.timestamp}`;
        const exp = expected.get(key);
        if (!exp) {
          if (gaps === 0) this.violation('correctness', 'client-result', `client accepted a result for ${key}, which no correct replica executed`, tick);
        } else if (!bytesEqual(exp, done.result)) {
          this.violation('correctness', 'client-result', `client accepted a wrong result for ${key}`, tick);
        }
      }
      for (const fail of c.failed) {
        this.violation('correctness', 'client-fail', `client ${fail.client} got FAIL for ts ${fail.timestamp} with at most f faulty replicas`, tick);
      }
    }
    return { modelled: expected.size, gaps };
  }
}
