/**
 * Random KV histories that are linearizable by construction, for tests and benchmarks of the checker
 * (./linearizability.ts), and mutations that make them certainly not linearizable.
 *
 * The simulation: `clients` processes, each invoking one operation at a time on one of `keys` keys.
 * Each operation that completes takes effect on a real register at an instant strictly inside its
 * interval; results are computed by applying the effects in instant order. An operation may
 * instead 'fail' (no effect, ever) or end 'unknown' (the client gives up after `timeout`): it then
 * takes effect with probability `lateEffect` at an instant anywhere in [invoke, invoke + 4 * timeout]
 * (possibly long after the client moved on), or never. Written values are unique strings.
 *
 * Pure and deterministic for a seed (the simulator's PRNG, no I/O).
 */
import { Prng } from '../sim/prng.ts';
import type { CasOutcome, KvHistoryOp } from './kv-model.ts';
import type { Op } from './linearizability.ts';

export interface GenerateOptions {
  seed: number;
  ops: number;
  keys?: number;
  clients?: number;
  /** Fraction of operations that end 'unknown' (default 0.05). */
  unknownRate?: number;
  /** Fraction of operations that 'fail' (default 0.01). */
  failRate?: number;
  /** Probability that an unknown-outcome operation takes effect anyway (default 0.5). */
  lateEffect?: number;
  /** Relative weights of put, get, del, cas (default 3, 4, 1, 2). */
  mix?: { put: number; get: number; del: number; cas: number };
  /** Operation durations are uniform in [0.1, maxDuration] (default 20); think time in [0, think] (default 1). */
  maxDuration?: number;
  think?: number;
  /** When a client gives up on an operation (default 60). */
  timeout?: number;
}

interface Planned {
  op: Op;
  /** The instant it takes effect, or undefined for never. */
  at: number | undefined;
}

export function generateHistory(options: GenerateOptions): Op[] {
  const rng = new Prng(options.seed);
  const keys = options.keys ?? 5;
  const clients = options.clients ?? 16;
  const unknownRate = options.unknownRate ?? 0.05;
  const failRate = options.failRate ?? 0.01;
  const lateEffect = options.lateEffect ?? 0.5;
  const mix = options.mix ?? { put: 3, get: 4, del: 1, cas: 2 };
  const maxDuration = options.maxDuration ?? 20;
  const think = options.think ?? 1;
  const timeout = options.timeout ?? 60;
  const total = mix.put + mix.get + mix.del + mix.cas;

  const free = Array.from({ length: clients }, () => rng.float() * think);
  const planned: Planned[] = [];
  for (let id = 0; id < options.ops; id++) {
    let client = 0;
    for (let c = 1; c < clients; c++) if (free[c]! < free[client]!) client = c;
    const invoke = free[client]! + rng.float() * think;
    const key = `k${rng.int(keys)}`;
    let w = rng.float() * total;
    let type: KvHistoryOp['type'];
    if ((w -= mix.put) < 0) type = 'put';
    else if ((w -= mix.get) < 0) type = 'get';
    else if ((w -= mix.del) < 0) type = 'del';
    else type = 'cas';
    const fresh = `${key}=${id}`;
    // cas arguments are chosen when it takes effect (below); placeholders until then.
    const op: KvHistoryOp =
      type === 'put' ? { type, value: fresh } : type === 'cas' ? { type, expected: null, next: fresh } : { type };
    const roll = rng.float();
    const duration = 0.1 + rng.float() * (maxDuration - 0.1);
    let record: Op;
    let at: number | undefined;
    if (roll < failRate) {
      record = { id, client, key, op, invoke, complete: invoke + duration, outcome: 'fail' };
    } else if (roll < failRate + unknownRate) {
      record = { id, client, key, op, invoke, complete: invoke + timeout, outcome: 'unknown' };
      if (rng.chance(lateEffect)) at = invoke + rng.float() * 4 * timeout;
    } else {
      record = { id, client, key, op, invoke, complete: invoke + duration, outcome: 'ok' };
      at = invoke + duration * (0.001 + 0.998 * rng.float());
    }
    free[client] = record.complete!;
    planned.push({ op: record, at });
  }

  // Apply the effects in instant order to one register per key.
  const state = new Map<string, string | null>();
  const written = new Map<string, string[]>();
  const effective = planned.filter((p) => p.at !== undefined).sort((x, y) => x.at! - y.at!);
  for (const { op: rec } of effective) {
    const cur = state.get(rec.key) ?? null;
    const o = rec.op;
    switch (o.type) {
      case 'put':
        state.set(rec.key, o.value);
        remember(written, rec.key, o.value);
        if (rec.outcome === 'ok') rec.result = undefined;
        break;
      case 'get':
        if (rec.outcome === 'ok') rec.result = cur;
        break;
      case 'del':
        state.set(rec.key, null);
        if (rec.outcome === 'ok') rec.result = cur !== null;
        break;
      case 'cas': {
        o.expected = chooseExpected(rng, cur, written.get(rec.key));
        if (rng.chance(0.2)) o.next = null;
        const swapped = o.expected === cur;
        if (swapped) {
          state.set(rec.key, o.next);
          if (o.next !== null) remember(written, rec.key, o.next);
        }
        if (rec.outcome === 'ok') rec.result = { swapped, current: swapped ? o.next : cur } satisfies CasOutcome;
        break;
      }
    }
  }
  // cas operations that never took effect still need arguments.
  for (const p of planned) {
    if (p.at === undefined && p.op.op.type === 'cas') {
      p.op.op.expected = chooseExpected(rng, null, written.get(p.op.key));
      if (rng.chance(0.2)) p.op.op.next = null;
    }
  }
  return planned.map((p) => p.op);
}

function remember(written: Map<string, string[]>, key: string, v: string): void {
  let list = written.get(key);
  if (list === undefined) written.set(key, (list = []));
  list.push(v);
}

/** Mostly the current value (so most cas swap), else absent or one of the last few values. */
function chooseExpected(rng: Prng, cur: string | null, written: string[] | undefined): string | null {
  if (rng.chance(0.6)) return cur;
  if (written === undefined || written.length === 0 || rng.chance(0.3)) return null;
  return written[Math.max(0, written.length - 1 - rng.int(4))]!;
}

// ------------------------------------------------------------------------------------------------
// Mutations that certainly break linearizability (values are unique per write)

function clone(history: readonly Op[]): Op[] {
  return history.map((o) => ({ ...o, op: { ...o.op }, result: typeof o.result === 'object' && o.result !== null ? { ...o.result } : o.result }));
}

/**
 * A completed get now returns a value that is only written by an operation invoked after the get
 * completed. Returns undefined when the history has no such pair.
 */
export function mutateFutureRead(history: readonly Op[], seed: number): { history: Op[]; read: Op; writer: Op } | undefined {
  const rng = new Prng(seed);
  const out = clone(history);
  const reads = rng.shuffle(out.filter((o) => o.op.type === 'get' && o.outcome === 'ok'));
  for (const read of reads) {
    const writers = out.filter((w) => w.key === read.key && w.op.type === 'put' && w.outcome !== 'fail' && w.invoke > read.complete!);
    if (writers.length === 0) continue;
    const writer = rng.pick(writers);
    read.result = (writer.op as { value: string }).value;
    return { history: out, read, writer };
  }
  return undefined;
}

/**
 * A completed get now returns the value of a completed put w1 although another completed put w2
 * started after w1 completed and completed before the get started (and nobody else writes w1's
 * value). Returns undefined when the history has no such triple.
 */
export function mutateStaleRead(history: readonly Op[], seed: number): { history: Op[]; read: Op; older: Op; newer: Op } | undefined {
  const rng = new Prng(seed);
  const out = clone(history);
  const reads = rng.shuffle(out.filter((o) => o.op.type === 'get' && o.outcome === 'ok'));
  const puts = out.filter((o) => o.op.type === 'put' && o.outcome === 'ok');
  for (const read of reads) {
    const newers = puts.filter((w) => w.key === read.key && w.complete! < read.invoke);
    for (const newer of rng.shuffle(newers).slice(0, 8)) {
      const olders = puts.filter((w) => w.key === read.key && w.complete! < newer.invoke);
      if (olders.length === 0) continue;
      const older = rng.pick(olders);
      read.result = (older.op as { value: string }).value;
      return { history: out, read, older, newer };
    }
  }
  return undefined;
}
