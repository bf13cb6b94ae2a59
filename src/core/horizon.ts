/**
 * The horizon: a small record kept apart from the replica's database log (Storage.writeHorizon), so
 * that a damaged or truncated log cannot hide what the replica signed before.
 *
 *   view      the highest view the replica moved to: it signed nothing in a higher view
 *   stable    its stable checkpoint: it signed nothing for a sequence number above stable + L
 *   executed  a sequence number it had executed (a lower bound, refreshed lazily)
 *
 * Every field is also a lower bound of what the database holds: the record is written only after the
 * batch that holds that state is durable. The pipeline (src/node/pipeline.ts) rewrites it as part of
 * a turn's durable write, before any effect of that turn leaves, whenever the view or the stable
 * checkpoint moved past it (mustPrecede); `executed` rides along at most every HORIZON_LAZY_MS.
 *
 * The record is also what a PRE-PREPARE or PREPARE waits for (durability.ts, rule 1a: their own
 * writes may come later), and at every start it bounds where the replica abstains: no PRE-PREPARE,
 * PREPARE or COMMIT in a view up to `view` for a sequence number up to `stable` + L.
 *
 * At start the replica compares what it recovered with the record (lostAgainst). Recovering less means
 * the durable state is missing or damaged: the replica forgot what it may have signed. It then
 * rejoins as a recovering replica (see SignFloor) instead of voting again on what it may have voted
 * on before.
 */
import { asArray, asUint, decodeCbor, encodeCbor, fail, guarded, type Decoded } from './encoding.ts';

export interface Horizon {
  view: number;
  stable: number;
  executed: number;
  /**
   * Written by a clean stop (src/node/pipeline.ts markClean), as the incarnation's last write: every
   * turn it computed is durable (deferred writes included), so every PRE-PREPARE and PREPARE it sent
   * is on its disk, and it sends nothing after. The value is a token the same stop wrote into the
   * database (KEYS.cleanStop) just before: the next start votes at once only if its database holds
   * that token, so a database that went back to an older image (damage, a restored backup) still
   * abstains. The first turn of that start rewrites the record without the token before any of its
   * effects leave (mustPrecede).
   */
  clean?: number;
}

/** How often (ms) the pipeline refreshes `executed` on its own, at most. */
export const HORIZON_LAZY_MS = 200;

export function encodeHorizon(h: Horizon): Uint8Array {
  return encodeCbor(h.clean !== undefined ? [1, h.view, h.stable, h.executed, h.clean] : [1, h.view, h.stable, h.executed]);
}

export function decodeHorizon(bytes: Uint8Array): Decoded<Horizon> {
  return guarded(() => {
    const d = decodeCbor(bytes);
    if (!d.ok) fail(d.reason);
    const a = asArray(d.value, 'horizon', 5);
    if (a.length < 4 || a[0] !== 1) fail('horizon: unknown version');
    const h: Horizon = { view: asUint(a[1], 'horizon.view'), stable: asUint(a[2], 'horizon.stable'), executed: asUint(a[3], 'horizon.executed') };
    if (a.length === 5) h.clean = asUint(a[4], 'horizon.clean');
    return h;
  });
}

/**
 * True when `next` must be on disk before the effects of its turn leave: an upper bound moved, or the
 * record on disk says the replica stopped cleanly (it must not say so once this incarnation sent anything).
 */
export function mustPrecede(onDisk: Horizon | undefined, next: Horizon): boolean {
  return onDisk === undefined || onDisk.clean !== undefined || next.view > onDisk.view || next.stable > onDisk.stable;
}

/**
 * The record to write after `next`: never lower than the one on disk in any field (a recovering
 * replica's state is behind its record until it catches up, and the record must keep bounding what
 * it signed before), and never marked clean (only markClean writes that).
 */
export function advance(onDisk: Horizon | undefined, next: Horizon): Horizon {
  if (onDisk === undefined) return { view: next.view, stable: next.stable, executed: next.executed };
  return {
    view: Math.max(onDisk.view, next.view),
    stable: Math.max(onDisk.stable, next.stable),
    executed: Math.max(onDisk.executed, next.executed),
  };
}

/** The database record of a clean stop's token (KEYS.cleanStop). */
export function encodeCleanToken(token: number): Uint8Array {
  return encodeCbor([1, token]);
}

export function decodeCleanToken(bytes: Uint8Array): Decoded<number> {
  return guarded(() => {
    const d = decodeCbor(bytes);
    if (!d.ok) fail(d.reason);
    const a = asArray(d.value, 'clean stop', 2);
    if (a.length !== 2 || a[0] !== 1) fail('clean stop: unknown version');
    return asUint(a[1], 'clean stop token');
  });
}

/** Why what recovery found is behind the horizon (empty: nothing is missing). */
export function lostAgainst(recorded: Horizon, found: Horizon): string[] {
  const out: string[] = [];
  if (found.view < recorded.view) out.push(`view ${found.view} < ${recorded.view} recorded`);
  if (found.stable < recorded.stable) out.push(`stable checkpoint ${found.stable} < ${recorded.stable} recorded`);
  if (found.executed < recorded.executed) out.push(`executed ${found.executed} < ${recorded.executed} recorded`);
  return out;
}

/**
 * What a recovering replica (one whose durable state was found missing or damaged) may not sign:
 * no PRE-PREPARE, PREPARE or COMMIT for a sequence number up to `seq` in a view up to `view` (it may
 * have voted on them before, differently), and no VIEW-CHANGE at all until its stable checkpoint
 * reaches `seq` (= the recorded stable checkpoint + L, above everything it may have prepared): a
 * VIEW-CHANGE that left out a prepared certificate it forgot would be as harmful as a byzantine one.
 * NEW-VIEWs for views up to `view` cannot follow (they need its own VIEW-CHANGE). It may execute on
 * the others' certificates, catch up by fetching and state transfer, sign CHECKPOINTs and replies
 * (deterministic), and vote in views above `view` or for sequence numbers above `seq`. Once its
 * stable checkpoint reached `seq`, nothing it could sign is below the floor: it is whole again.
 */
export interface SignFloor {
  view: number;
  seq: number;
}

export function encodeSignFloor(f: SignFloor): Uint8Array {
  return encodeCbor([f.view, f.seq]);
}

export function decodeSignFloor(bytes: Uint8Array): Decoded<SignFloor> {
  return guarded(() => {
    const d = decodeCbor(bytes);
    if (!d.ok) fail(d.reason);
    const a = asArray(d.value, 'floor', 2);
    return { view: asUint(a[0], 'floor.view'), seq: asUint(a[1], 'floor.seq') };
  });
}
