/**
 * Mutual exclusion checker for the lock service (examples/lock-service), over the results clients
 * received: only agreed times (the `timeMs` and `expiresAtMs` the replicas put in every result),
 * never a wall clock.
 *
 * A tenure is one holder's hold of one lock under one fencing token: from the agreed time of the
 * acquire that granted the token to the expiry of its last acquire or renew, or to the agreed time of
 * its release, whichever comes first. The checks:
 *   - exclusion: two tenures of one lock never overlap (half-open intervals [start, end));
 *   - tokens: a tenure that starts later has a larger token (fencing tokens only grow);
 *   - refusals: a HELD or NOT_HOLDER result names a holder and token whose tenure holds at its time
 *     (or was released at that very time: one batch's operations share their agreed time);
 *   - time: each client sees agreed times that never go back, in the order of its own operations.
 */
import type { Holder, LockResult } from '../../examples/lock-service/ops.ts';

export interface Tenure {
  name: string;
  holder: Holder;
  token: number;
  start: number;
  end: number;
  /** Agreed time and expiry of the latest acquire or renew of the tenure. */
  lastAt: number;
  released?: number;
}

/** Every result each client received, in the order it received them: `perClient[c]` holds client c's. */
export function checkLockHistory(perClient: LockResult[][], options: { complete?: boolean } = {}): { violations: string[]; tenures: Tenure[] } {
  const violations: string[] = [];
  const tenures = new Map<string, Tenure>();
  const key = (name: string, token: number): string => `${name}#${token}`;
  const same = (a: Holder, b: Holder): boolean => a.client === b.client && a.owner === b.owner;

  perClient.forEach((results, client) => {
    let last = -Infinity;
    for (const r of results) {
      if (r.timeMs < last) violations.push(`client ${client}: agreed time went back from ${last} to ${r.timeMs} (${r.op})`);
      last = Math.max(last, r.timeMs);
    }
  });

  // Grants and renewals first (a release is matched to the tenure it ends below).
  const all = perClient.flat();
  for (const r of all) {
    if (!r.ok || (r.op !== 'acquire' && r.op !== 'renew')) continue;
    const k = key(r.name, r.token);
    const t = tenures.get(k);
    if (!t) {
      tenures.set(k, { name: r.name, holder: r.holder, token: r.token, start: r.timeMs, end: r.expiresAtMs, lastAt: r.timeMs });
      continue;
    }
    if (!same(t.holder, r.holder)) violations.push(`lock ${r.name}: token ${r.token} granted to two holders`);
    t.start = Math.min(t.start, r.timeMs);
    if (r.timeMs >= t.lastAt) {
      t.lastAt = r.timeMs;
      t.end = r.expiresAtMs;
    }
  }
  for (const [client, results] of perClient.entries()) {
    // A release ends the tenure of the client's last acquire or renew of that lock before it, in
    // the client's own order (agreed times may tie: one batch's operations share theirs).
    const current = new Map<string, number>();
    for (const r of results) {
      if (r.ok && (r.op === 'acquire' || r.op === 'renew')) current.set(r.name, r.token);
      if (!r.ok || r.op !== 'release') continue;
      const token = current.get(r.name);
      current.delete(r.name);
      const match = token === undefined ? undefined : tenures.get(key(r.name, token));
      if (!match) {
        if (options.complete) violations.push(`lock ${r.name}: released by client ${client} at ${r.timeMs} with no tenure observed`);
        continue;
      }
      match.released = r.timeMs;
      if (r.timeMs >= match.end) violations.push(`lock ${r.name}: token ${match.token} released at ${r.timeMs}, after its expiry ${match.end}`);
      match.end = Math.min(match.end, r.timeMs);
    }
  }

  const list = [...tenures.values()].sort((a, b) => a.start - b.start || a.token - b.token);
  const byName = new Map<string, Tenure[]>();
  for (const t of list) {
    const l = byName.get(t.name) ?? [];
    l.push(t);
    byName.set(t.name, l);
  }
  for (const [name, ts] of byName) {
    for (let i = 0; i < ts.length; i++) {
      for (let j = i + 1; j < ts.length; j++) {
        const a = ts[i]!;
        const b = ts[j]!;
        if (a.start < b.end && b.start < a.end) {
          violations.push(
            `lock ${name}: held by client ${a.holder.client}/${a.holder.owner} (token ${a.token}) over [${a.start}, ${a.end}) and by client ${b.holder.client}/${b.holder.owner} (token ${b.token}) over [${b.start}, ${b.end})`,
          );
        }
      }
    }
  }
  for (let i = 1; i < list.length; i++) {
    const a = list[i - 1]!;
    const b = list[i]!;
    if (a.start < b.start && a.token >= b.token) violations.push(`token ${b.token} (lock ${b.name}, from ${b.start}) is not above token ${a.token} (lock ${a.name}, from ${a.start})`);
  }

  for (const r of all) {
    if (r.ok || (r.code !== 'HELD' && r.code !== 'NOT_HOLDER') || r.holder === undefined || r.token === undefined || r.name === undefined) continue;
    const t = tenures.get(key(r.name, r.token));
    if (!t) {
      if (options.complete) violations.push(`lock ${r.name}: a refusal at ${r.timeMs} names token ${r.token}, which no client was seen to be granted`);
      continue;
    }
    if (!same(t.holder, r.holder)) violations.push(`lock ${r.name}: a refusal at ${r.timeMs} names another holder for token ${r.token}`);
    // (At the agreed time of its release the tenure may still hold: operations of one batch share a
    // time, and a refusal executed before the release in that batch saw the lock held.)
    const holds = t.start <= r.timeMs && (r.timeMs < t.end || (r.timeMs === t.end && t.released === t.end));
    if (!holds) {
      violations.push(`lock ${r.name}: refused at ${r.timeMs} as held by token ${r.token}, whose tenure is [${t.start}, ${t.end})`);
    }
  }
  return { violations, tenures: list };
}
