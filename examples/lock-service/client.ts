/**
 * The lock service's client helper, on top of the SDK (src/client): acquire, renew, release and
 * query, each one operation ordered by the replicas (PbftClient.invoke), accepted on f+1 matching
 * signed replies like any result.
 *
 *   const pbft = await PbftClient.connect({ cluster: 'keys/cluster.json', key: 'keys/client-0.key' });
 *   const locks = new LockClient(pbft, { owner: 'worker-1' });
 *   const got = await locks.acquire('jobs/nightly', 10_000);
 *   if (got.acquired) {
 *     // ... work, passing got.lease.token to the resource (fencing), while locks.isValid(got.lease) ...
 *     await locks.renew(got.lease, 10_000);
 *     await locks.release(got.lease);
 *   }
 *
 * The replicas decide by their agreed time, not by this process's clock. A holder that must act
 * only while it holds the lock uses `validUntilMs`: the lease's expiry minus how far a primary may
 * run time ahead of the replicas' clocks (batchTimeAheadMsMax, 2 s by default) and minus the skew
 * of this machine's clock against theirs. Before that moment (on a clock within `clockSkewMs` of
 * theirs), no other client can have been granted the lock. Pass the lease's fencing `token` to
 * whatever the lock protects, so that it can refuse a holder that was paused past its lease.
 */
import type { PbftClient } from '../../src/client/index.ts';
import { decodeLockResult, encodeLockOp, type Holder, type LockOp, type LockResult } from './ops.ts';

export interface Lease {
  name: string;
  holder: Holder;
  /** The fencing token: increases with every new holder of any lock of the service. */
  token: number;
  /** The agreed time the lease was granted or last renewed at. */
  sinceMs: number;
  /** The agreed time it expires at (the replicas free the lock at the first batch at or after it). */
  expiresAtMs: number;
  /** On this machine's wall clock: act as the holder only before this (see the file comment). */
  validUntilMs: number;
}

export type AcquireOutcome =
  | { acquired: true; lease: Lease; result: LockResult }
  /** Someone else holds it (`holder`, until `expiresAtMs`), or the operation was refused (`result.code`). */
  | { acquired: false; holder?: Holder; expiresAtMs?: number; result: Extract<LockResult, { ok: false }> };

export interface LockClientOptions {
  /** The owner label of this client's leases (default `client-<id>`). */
  owner?: string;
  /** How far a primary may run the batch time ahead of the replicas' clocks: their batchTimeAheadMsMax (default 2,000). */
  batchTimeAheadMsMax?: number;
  /** How far this machine's clock may be off the replicas' (default 500 ms). */
  clockSkewMs?: number;
  /** This machine's wall clock (default Date.now). */
  clockMs?: () => number;
}

/** A result the service refused with a code the caller did not expect to handle (MALFORMED, TOO_MANY_LOCKS). */
export class LockServiceError extends Error {
  override readonly name = 'LockServiceError';
  constructor(readonly result: Extract<LockResult, { ok: false }>) {
    super(`lock service refused ${result.op}${result.name !== undefined ? ` of ${result.name}` : ''}: ${result.code}${result.reason !== undefined ? ` (${result.reason})` : ''}`);
  }
}

export class LockClient {
  readonly owner: string;
  private readonly marginMs: number;
  private readonly clockMs: () => number;

  constructor(
    private readonly pbft: Pick<PbftClient, 'invoke' | 'clientId'>,
    options: LockClientOptions = {},
  ) {
    this.owner = options.owner ?? `client-${pbft.clientId}`;
    this.marginMs = (options.batchTimeAheadMsMax ?? 2_000) + (options.clockSkewMs ?? 500);
    this.clockMs = options.clockMs ?? Date.now;
  }

  /** Takes the lock for `leaseMs` if it is free, expired or already ours. */
  async acquire(name: string, leaseMs: number): Promise<AcquireOutcome> {
    const result = await this.call({ op: 'acquire', name, owner: this.owner, leaseMs });
    if (result.ok && result.op === 'acquire') return { acquired: true, lease: this.leaseOf(result), result };
    if (!result.ok && result.code === 'HELD') {
      return { acquired: false, ...(result.holder ? { holder: result.holder } : {}), ...(result.expiresAtMs !== undefined ? { expiresAtMs: result.expiresAtMs } : {}), result };
    }
    throw this.unexpected(result);
  }

  /**
   * Extends our lease to `leaseMs` from now (agreed time). Undefined when it is no longer ours: it
   * expired first (`EXPIRED`), or someone else holds it (`NOT_HOLDER`); `onLost` gets the result.
   */
  async renew(lease: Lease | string, leaseMs: number, onLost?: (result: Extract<LockResult, { ok: false }>) => void): Promise<Lease | undefined> {
    const name = typeof lease === 'string' ? lease : lease.name;
    const result = await this.call({ op: 'renew', name, owner: this.owner, leaseMs });
    if (result.ok && result.op === 'renew') return this.leaseOf(result);
    if (!result.ok && (result.code === 'EXPIRED' || result.code === 'NOT_HOLDER')) {
      onLost?.(result);
      return undefined;
    }
    throw this.unexpected(result);
  }

  /**
   * Frees our lock. True if it was ours until now; false if our lease had expired first (`EXPIRED`:
   * the work done since may have overlapped another holder's) or it was not ours (`NOT_HOLDER`).
   */
  async release(lease: Lease | string): Promise<{ released: boolean; result: LockResult }> {
    const name = typeof lease === 'string' ? lease : lease.name;
    const result = await this.call({ op: 'release', name, owner: this.owner });
    if (result.ok && result.op === 'release') return { released: true, result };
    if (!result.ok && (result.code === 'EXPIRED' || result.code === 'NOT_HOLDER')) return { released: false, result };
    throw this.unexpected(result);
  }

  /** Who holds the lock (ordered like any operation: the answer is as of its agreed time). */
  async query(name: string): Promise<Extract<LockResult, { op: 'query' }> & { ok: true }> {
    const result = await this.call({ op: 'query', name });
    if (result.ok && result.op === 'query') return result;
    throw this.unexpected(result);
  }

  /** True while this machine's clock is before the lease's validUntilMs. */
  isValid(lease: Lease): boolean {
    return this.clockMs() < lease.validUntilMs;
  }

  /** One operation, ordered by the replicas; the raw result (every operation's agreed time is in it). */
  async call(op: LockOp): Promise<LockResult> {
    return decodeLockResult(await this.pbft.invoke(encodeLockOp(op)));
  }

  private leaseOf(r: Extract<LockResult, { op: 'acquire' | 'renew' }> & { ok: true }): Lease {
    return { name: r.name, holder: r.holder, token: r.token, sinceMs: r.timeMs, expiresAtMs: r.expiresAtMs, validUntilMs: r.expiresAtMs - this.marginMs };
  }

  private unexpected(result: LockResult): Error {
    return result.ok ? new Error(`unexpected lock service result for ${result.op}`) : new LockServiceError(result);
  }
}
