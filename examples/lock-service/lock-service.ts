/**
 * A lock service as a deterministic state machine (the StateMachine of src/app/types.ts): named
 * locks with leases, the kind of service Chubby and ZooKeeper replicate.
 *
 * Time: a lease expires by the batch's agreed time (ExecuteContext.timeMs), never by a clock of the
 * replica's own. Every replica executes the same operations in the same order with the same times,
 * so they agree on who holds what, and when it expires, without any replica reading its clock.
 *
 *   acquire(name, owner, leaseMs)  succeeds if the lock is free, its lease expired (timeMs >=
 *                                  expiresAtMs), or it is already held by the same holder; the lease
 *                                  runs to timeMs + leaseMs. A new holder gets a new fencing token
 *                                  (one counter for the service, increasing with every grant).
 *   renew(name, owner, leaseMs)    by the holder, before expiry: the lease runs to timeMs + leaseMs.
 *   release(name, owner)           by the holder, before expiry: the lock is free.
 *   query(name)                    the holder, token and expiry while held.
 *
 * The holder is the signing client's id (from ExecuteContext, not from the operation) and the
 * owner label, so no client can renew or release another's lock.
 *
 * Snapshot (canonical JSON, locks sorted by name): {"v":1,"tokens":n,"locks":[[name, client, owner,
 * expiresAtMs, token], ...]}; the digest is its SHA-256. Expired locks stay until touched (acquired,
 * released, or swept when the service reaches LOCKS_MAX), deterministically on every replica.
 */
import { createHash } from 'node:crypto';
import type { ExecuteContext, Result, StateMachine } from '../../src/app/types.ts';
import { decodeLockOp, encodeLockResult, NAME_LENGTH_MAX, OWNER_LENGTH_MAX, type Holder, type LockOp, type LockResult } from './ops.ts';

/** Locks held (or expired and not yet swept) at most. */
export const LOCKS_MAX = 10_000;

interface Lock {
  client: number;
  owner: string;
  expiresAtMs: number;
  token: number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

export class LockService implements StateMachine {
  private locks = new Map<string, Lock>();
  /** Fencing tokens handed out so far (the last token). */
  private tokens = 0;

  execute(opBytes: Uint8Array, ctx: ExecuteContext): Uint8Array {
    return encodeLockResult(this.apply(opBytes, ctx));
  }

  private apply(opBytes: Uint8Array, ctx: ExecuteContext): LockResult {
    const now = ctx.timeMs;
    const decoded = decodeLockOp(opBytes);
    if (!decoded.ok) return { ok: false, op: 'unknown', code: 'MALFORMED', reason: decoded.reason, timeMs: now };
    const op: LockOp = decoded.value;
    const lock = this.locks.get(op.name);
    const live = lock !== undefined && now < lock.expiresAtMs ? lock : undefined;
    const mine = (l: Lock | undefined): boolean => l !== undefined && op.op !== 'query' && l.client === ctx.client && l.owner === op.owner;
    const held = (l: Lock): Pick<Extract<LockResult, { ok: false }>, 'holder' | 'token' | 'expiresAtMs'> => ({
      holder: holderOf(l),
      token: l.token,
      expiresAtMs: l.expiresAtMs,
    });
    switch (op.op) {
      case 'acquire': {
        if (live && !mine(live)) return { ok: false, op: op.op, code: 'HELD', name: op.name, ...held(live), timeMs: now };
        if (!live && lock === undefined && this.locks.size >= LOCKS_MAX) {
          this.sweep(now);
          if (this.locks.size >= LOCKS_MAX) return { ok: false, op: op.op, code: 'TOO_MANY_LOCKS', name: op.name, timeMs: now };
        }
        const token = live ? live.token : ++this.tokens;
        const granted: Lock = { client: ctx.client, owner: op.owner, expiresAtMs: now + op.leaseMs, token };
        this.locks.set(op.name, granted);
        return { ok: true, op: op.op, name: op.name, holder: holderOf(granted), token, expiresAtMs: granted.expiresAtMs, timeMs: now };
      }
      case 'renew': {
        if (live && !mine(live)) return { ok: false, op: op.op, code: 'NOT_HOLDER', name: op.name, ...held(live), timeMs: now };
        if (!live) return { ok: false, op: op.op, code: mine(lock) ? 'EXPIRED' : 'NOT_HOLDER', name: op.name, timeMs: now };
        live.expiresAtMs = now + op.leaseMs;
        return { ok: true, op: op.op, name: op.name, holder: holderOf(live), token: live.token, expiresAtMs: live.expiresAtMs, timeMs: now };
      }
      case 'release': {
        if (live && !mine(live)) return { ok: false, op: op.op, code: 'NOT_HOLDER', name: op.name, ...held(live), timeMs: now };
        if (!live) {
          // Its lease lapsed: the lock is free anyway (forget the entry), but the holder must know
          // that it may have worked without the lock.
          if (mine(lock)) {
            this.locks.delete(op.name);
            return { ok: false, op: op.op, code: 'EXPIRED', name: op.name, timeMs: now };
          }
          return { ok: false, op: op.op, code: 'NOT_HOLDER', name: op.name, timeMs: now };
        }
        this.locks.delete(op.name);
        return { ok: true, op: op.op, name: op.name, timeMs: now };
      }
      case 'query':
        return live ? { ok: true, op: op.op, name: op.name, ...held(live), timeMs: now } : { ok: true, op: op.op, name: op.name, timeMs: now };
    }
  }

  /** Forgets every lock whose lease expired by `now` (in name order: the same on every replica). */
  private sweep(now: number): void {
    for (const name of [...this.locks.keys()].sort(compareNames)) {
      if (this.locks.get(name)!.expiresAtMs <= now) this.locks.delete(name);
    }
  }

  snapshot(): Uint8Array {
    const names = [...this.locks.keys()].sort(compareNames);
    const locks = names.map((name) => {
      const l = this.locks.get(name)!;
      return [name, l.client, l.owner, l.expiresAtMs, l.token];
    });
    return encoder.encode(JSON.stringify({ v: 1, tokens: this.tokens, locks }));
  }

  restore(snapshot: Uint8Array): Result {
    let v: unknown;
    try {
      v = JSON.parse(decoder.decode(snapshot));
    } catch {
      return { ok: false, reason: 'lock service snapshot: not JSON' };
    }
    const bad = (reason: string): Result => ({ ok: false, reason: `lock service snapshot: ${reason}` });
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return bad('not an object');
    const { v: version, tokens, locks } = v as Record<string, unknown>;
    if (version !== 1 || Object.keys(v).length !== 3) return bad('unknown version or fields');
    if (!isCount(tokens)) return bad('tokens');
    if (!Array.isArray(locks) || locks.length > LOCKS_MAX) return bad('locks');
    const restored = new Map<string, Lock>();
    let previous: string | undefined;
    for (const entry of locks) {
      if (!Array.isArray(entry) || entry.length !== 5) return bad('a lock entry');
      const [name, client, owner, expiresAtMs, token] = entry as unknown[];
      if (typeof name !== 'string' || name.length === 0 || name.length > NAME_LENGTH_MAX) return bad('a lock name');
      if (previous !== undefined && compareNames(previous, name) >= 0) return bad('lock names not in ascending order');
      if (!isCount(client) || typeof owner !== 'string' || owner.length === 0 || owner.length > OWNER_LENGTH_MAX) return bad(`lock ${name}: holder`);
      if (!isCount(expiresAtMs) || !isCount(token) || token < 1 || token > tokens) return bad(`lock ${name}: lease or token`);
      restored.set(name, { client, owner, expiresAtMs, token });
      previous = name;
    }
    this.locks = restored;
    this.tokens = tokens;
    return { ok: true, value: undefined };
  }

  digest(): Uint8Array {
    return new Uint8Array(createHash('sha256').update(this.snapshot()).digest());
  }

  /** Locks in the state (held or expired and not yet swept). */
  get size(): number {
    return this.locks.size;
  }
}

const holderOf = (l: Lock): Holder => ({ client: l.client, owner: l.owner });
const isCount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;
/** UTF-16 code unit order: the same in every JavaScript engine, whatever the locale. */
const compareNames = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
