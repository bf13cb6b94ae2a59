/**
 * The lock service's operations and results, as the client sends and receives them: one JSON object
 * (UTF-8) each. Shared by the state machine (lock-service.ts) and the client helper (client.ts); it
 * imports nothing, so the client runs wherever the SDK does.
 *
 *   acquire  { "op": "acquire", "name", "owner", "leaseMs" }   free, expired or already ours: held
 *   renew    { "op": "renew",   "name", "owner", "leaseMs" }   ours and not expired: held longer
 *   release  { "op": "release", "name", "owner" }              ours and not expired: free
 *   query    { "op": "query",   "name" }                       who holds it, until when
 *
 * A lock is held by a holder: the client id that signed the request (the replicas fill it in, a
 * client cannot claim another's) and an `owner` label of the client's choice (one client may run
 * several owners). Every result carries `timeMs`, the agreed time at which the replicas executed
 * the operation (ExecuteContext.timeMs): the time leases are measured in.
 */

export const NAME_LENGTH_MAX = 256;
export const OWNER_LENGTH_MAX = 256;
/** The longest lease (one hour); the shortest is 1 ms. */
export const LEASE_MS_MAX = 3_600_000;

export type LockOp =
  | { op: 'acquire'; name: string; owner: string; leaseMs: number }
  | { op: 'renew'; name: string; owner: string; leaseMs: number }
  | { op: 'release'; name: string; owner: string }
  | { op: 'query'; name: string };

export interface Holder {
  /** The client id that signed the acquire. */
  client: number;
  owner: string;
}

export type LockErrorCode =
  /** Someone else holds the lock (acquire), or it is not (or no longer) yours (renew, release). */
  | 'HELD'
  | 'NOT_HOLDER'
  /** Your lease ran out before this renew or release: someone may have held the lock since. */
  | 'EXPIRED'
  | 'TOO_MANY_LOCKS'
  | 'MALFORMED';

export type LockResult =
  /** Held by `holder` from `timeMs` (acquire) or still (renew) until `expiresAtMs`, with its fencing `token`. */
  | { ok: true; op: 'acquire' | 'renew'; name: string; holder: Holder; token: number; expiresAtMs: number; timeMs: number }
  | { ok: true; op: 'release'; name: string; timeMs: number }
  /** `holder` (with `token` and `expiresAtMs`) only while the lock is held at `timeMs`. */
  | { ok: true; op: 'query'; name: string; holder?: Holder; token?: number; expiresAtMs?: number; timeMs: number }
  | {
      ok: false;
      op: LockOp['op'] | 'unknown';
      code: LockErrorCode;
      name?: string;
      /** The holder at `timeMs` (HELD, NOT_HOLDER), with its lease. */
      holder?: Holder;
      token?: number;
      expiresAtMs?: number;
      timeMs: number;
      reason?: string;
    };

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

export function encodeLockOp(op: LockOp): Uint8Array {
  return encoder.encode(JSON.stringify(op));
}

export function encodeLockResult(r: LockResult): Uint8Array {
  return encoder.encode(JSON.stringify(r));
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isText = (v: unknown, max: number): v is string => typeof v === 'string' && v.length > 0 && v.length <= max;
const isLease = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 1 && (v as number) <= LEASE_MS_MAX;

/** Parses an operation; a reason when it is not one (any bytes may arrive: never throws). */
export function decodeLockOp(bytes: Uint8Array): { ok: true; value: LockOp } | { ok: false; reason: string } {
  let v: unknown;
  try {
    v = JSON.parse(decoder.decode(bytes));
  } catch {
    return { ok: false, reason: 'not JSON' };
  }
  if (!isObject(v)) return { ok: false, reason: 'not an object' };
  const { op, name, owner, leaseMs } = v;
  if (!isText(name, NAME_LENGTH_MAX)) return { ok: false, reason: `name: a string of 1..${NAME_LENGTH_MAX} characters` };
  const keys = Object.keys(v).length;
  switch (op) {
    case 'acquire':
    case 'renew':
      if (!isText(owner, OWNER_LENGTH_MAX)) return { ok: false, reason: `owner: a string of 1..${OWNER_LENGTH_MAX} characters` };
      if (!isLease(leaseMs)) return { ok: false, reason: `leaseMs: an integer of 1..${LEASE_MS_MAX}` };
      if (keys !== 4) return { ok: false, reason: 'unknown fields' };
      return { ok: true, value: { op, name, owner, leaseMs } };
    case 'release':
      if (!isText(owner, OWNER_LENGTH_MAX)) return { ok: false, reason: `owner: a string of 1..${OWNER_LENGTH_MAX} characters` };
      if (keys !== 3) return { ok: false, reason: 'unknown fields' };
      return { ok: true, value: { op, name, owner } };
    case 'query':
      if (keys !== 2) return { ok: false, reason: 'unknown fields' };
      return { ok: true, value: { op, name } };
    default:
      return { ok: false, reason: 'op: acquire, renew, release or query' };
  }
}

/** Parses a result (the client's side); throws on bytes that are not one. */
export function decodeLockResult(bytes: Uint8Array): LockResult {
  const v: unknown = JSON.parse(decoder.decode(bytes));
  if (!isObject(v) || typeof v.ok !== 'boolean' || typeof v.op !== 'string' || !Number.isSafeInteger(v.timeMs)) {
    throw new Error('not a lock service result');
  }
  return v as unknown as LockResult;
}
