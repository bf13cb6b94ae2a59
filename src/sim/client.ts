/**
 * A simulated closed-loop client: one outstanding request at a time, sent to the primary it believes
 * in, retransmitted to every replica on timeout (with backoff), accepted once f+1 replicas sent
 * matching signed replies (the same ReplyCollector as the SDK).
 */
import { decodeFrame } from '../codec/messages.ts';
import { encodeOp, type KvOp } from '../app/kv-ops.ts';
export type { KvOp };
import { ReplyCollector } from '../client/collector.ts';
import { RequestSigner, replyOf } from '../client/request.ts';
import { encodeSignedFrame } from '../codec/messages.ts';
import type { ClusterConfig } from '../core/cluster.ts';
import type { AnyReply } from '../core/messages.ts';
import type { Signer, Verifier } from '../crypto/types.ts';
import type { Prng } from './prng.ts';

export interface CompletedRequest {
  client: number;
  timestamp: number;
  op: Uint8Array;
  result: Uint8Array;
  sentAt: number;
  acceptedAt: number;
}

export interface FailedRequest {
  client: number;
  timestamp: number;
  replies: AnyReply[];
}

interface Outstanding {
  timestamp: number;
  op: Uint8Array;
  frame: Uint8Array;
  collector: ReplyCollector;
  sentAt: number;
  retryAt: number;
  attempt: number;
}

export class SimClient {
  readonly completed: CompletedRequest[] = [];
  readonly failed: FailedRequest[] = [];
  /** Every request this client signed, by timestamp (for the validity checker). */
  readonly issued = new Map<number, Uint8Array>();
  private readonly signer: RequestSigner;
  private outstanding?: Outstanding;
  private timestamp = 0;
  private view = 0;
  remaining: number;
  retransmissions = 0;

  constructor(
    readonly id: number,
    readonly node: number,
    private readonly cluster: ClusterConfig,
    signer: Signer,
    verifier: Verifier,
    private readonly prng: Prng,
    requests: number,
    private readonly timeoutTicks: number,
    private readonly keySpace: number,
    /** Optional workload: the op for this client's i-th request (default: random ops on keySpace). */
    private readonly workload?: (client: number, index: number) => KvOp,
  ) {
    this.signer = new RequestSigner(cluster, id, signer, verifier);
    this.remaining = requests;
  }

  get idle(): boolean {
    return this.outstanding === undefined;
  }

  get done(): boolean {
    return this.remaining === 0 && this.outstanding === undefined;
  }

  /** How long the current request has waited (0 when idle). */
  waitingFor(now: number): number {
    return this.outstanding ? now - this.outstanding.sentAt : 0;
  }

  private randomOp(): KvOp {
    const key = `k${this.prng.int(this.keySpace)}`;
    const value = `v${this.id}.${this.timestamp}`;
    switch (this.prng.int(4)) {
      case 0:
        return { type: 'put', key, value };
      case 1:
        return { type: 'get', key };
      case 2:
        return { type: 'del', key };
      default:
        return { type: 'cas', key, expected: this.prng.chance(0.5) ? null : `v${this.prng.int(8)}.${this.prng.int(8)}`, next: value };
    }
  }

  tick(now: number, send: (to: number, frame: Uint8Array) => void): void {
    const n = this.cluster.replicas.length;
    if (!this.outstanding) {
      if (this.remaining === 0) return;
      this.remaining--;
      this.timestamp++;
      const op = encodeOp(this.workload ? this.workload(this.id, this.timestamp - 1) : this.randomOp());
      const signed = this.signer.sign(this.timestamp, op);
      this.issued.set(this.timestamp, op);
      const frame = encodeSignedFrame(signed);
      this.outstanding = {
        timestamp: this.timestamp,
        op,
        frame,
        collector: new ReplyCollector(n, this.cluster.f, this.id, this.timestamp, (r) => this.signer.verifyReply(r)),
        sentAt: now,
        retryAt: now + this.timeoutTicks,
        attempt: 0,
      };
      send(this.view % n, frame);
      return;
    }
    const o = this.outstanding;
    if (now >= o.retryAt) {
      o.attempt++;
      this.retransmissions++;
      o.retryAt = now + this.timeoutTicks * Math.min(2 ** o.attempt, 8);
      for (let r = 0; r < n; r++) send(r, o.frame);
    }
  }

  onFrame(now: number, fromReplica: number, bytes: Uint8Array): void {
    const o = this.outstanding;
    if (!o) return;
    const decoded = decodeFrame(bytes);
    const reply = decoded.ok ? replyOf(decoded.value) : undefined;
    if (!reply) return;
    const outcome = o.collector.add(reply, fromReplica);
    if (outcome.kind === 'accepted') {
      this.view = Math.max(this.view, outcome.view);
      this.completed.push({ client: this.id, timestamp: o.timestamp, op: o.op, result: outcome.result, sentAt: o.sentAt, acceptedAt: now });
      this.outstanding = undefined;
    } else if (outcome.kind === 'failed') {
      this.failed.push({ client: this.id, timestamp: o.timestamp, replies: [...o.collector.replies.values()] });
      this.outstanding = undefined;
    }
  }
}
