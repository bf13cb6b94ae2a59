/**
 * Shared by the integration tests that check results against the sequential model:
 *
 * - Workload: concurrent SDK clients issuing seeded random operations (put, get, del, cas) over a
 *   small shared key space, either a fixed number per client or continuously until stopped; every
 *   operation and the result the client accepted is recorded.
 * - checkAgainstModel: the agreed order from the replicas' executed-batches logs (fixture option
 *   executedLog) must be the same on every replica that logged a sequence number, and replaying it
 *   through KvModel must reproduce every result a replica computed and every result a client
 *   accepted; each client's operations are executed exactly once, in issue order.
 * - converge: drives operations until every given replica reports the same lastExecuted and the
 *   same last checkpoint (sequence number and state digest) above a given sequence number.
 * - Evidence for failures: status snapshots and replica output.
 */
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { decodeOp, encodeOp, encodeResult, type KvOp } from '../../src/app/kv-ops.ts';
import type { PbftClient } from '../../src/client/client.ts';
import type { NodeStatus } from '../../src/node/replica-node.ts';
import { KvModel } from '../../src/sim/kv-model.ts';
import { hex, prng, sleep, waitFor, type ExecutedRecord, type TestCluster } from './helpers.ts';

export const KEYS_DEFAULT: readonly string[] = ['k0', 'k1', 'k2', 'k3', 'k4', 'k5'];
export const REPLICAS = [0, 1, 2, 3] as const;

/** PBFT_TEST_SEED when set, else a fresh random seed (print it on failure: see withEvidence). */
export function testSeed(): number {
  const fromEnv = process.env.PBFT_TEST_SEED;
  return fromEnv !== undefined && fromEnv !== '' ? Number(fromEnv) : randomInt(1, 2 ** 31);
}

/** Log level of the replica processes: PBFT_TEST_LOG_LEVEL (e.g. info, to collect evidence), default warn. */
export function testLogLevel(): 'debug' | 'info' | 'warn' | 'error' {
  const level = process.env.PBFT_TEST_LOG_LEVEL;
  return level === 'debug' || level === 'info' || level === 'error' ? level : 'warn';
}

export function randomOp(next: () => number, client: number, i: number, keys: readonly string[], clients: number): KvOp {
  const key = keys[Math.floor(next() * keys.length)]!;
  const value = `c${client}-${i}`;
  const pick = next();
  if (pick < 0.35) return { type: 'put', key, value };
  if (pick < 0.6) return { type: 'get', key };
  if (pick < 0.75) return { type: 'del', key };
  // cas: expect absent, or a value some client may have written recently
  const expected = next() < 0.3 ? null : `c${Math.floor(next() * clients)}-${Math.max(0, i - 1 - Math.floor(next() * 3))}`;
  return { type: 'cas', key, expected, next: next() < 0.1 ? null : value };
}

export interface Issued {
  op: Uint8Array;
  result: Uint8Array;
}

export class Workload {
  /** Per client, in issue order: each operation and the result the client accepted. */
  readonly issued: Issued[][];
  /** Operations completed so far (all clients). */
  completed = 0;
  private readonly next: Array<() => number>;
  private readonly counts: number[];
  private loops: Promise<void> | undefined;
  private stopping = false;

  constructor(
    readonly clients: PbftClient[],
    readonly seed: number,
    readonly keys: readonly string[] = KEYS_DEFAULT,
  ) {
    this.issued = clients.map(() => []);
    this.next = clients.map((_, c) => prng(seed + c));
    this.counts = clients.map(() => 0);
  }

  /** One random operation on client `c` (never call concurrently for the same client). */
  async step(c: number): Promise<void> {
    const op = encodeOp(randomOp(this.next[c]!, c, this.counts[c]!++, this.keys, this.clients.length));
    const result = await this.clients[c]!.invoke(op);
    this.issued[c]!.push({ op, result });
    this.completed++;
  }

  /** A given operation on client `c`, recorded like the random ones. */
  async apply(c: number, kvOp: KvOp): Promise<void> {
    const op = encodeOp(kvOp);
    const result = await this.clients[c]!.invoke(op);
    this.issued[c]!.push({ op, result });
    this.completed++;
  }

  /** `opsPerClient` operations on every client, the clients concurrently. */
  async run(opsPerClient: number): Promise<void> {
    await Promise.all(
      this.clients.map(async (_, c) => {
        for (let i = 0; i < opsPerClient; i++) await this.step(c);
      }),
    );
  }

  /** Every client issues operations until stop(). */
  start(): void {
    if (this.loops !== undefined) throw new Error('workload already running');
    this.stopping = false;
    this.loops = Promise.all(
      this.clients.map(async (_, c) => {
        while (!this.stopping) await this.step(c);
      }),
    ).then(() => undefined);
    // A failing operation surfaces in stop(); keep it from being an unhandled rejection meanwhile.
    this.loops.catch(() => undefined);
  }

  /** Stops the loops of start() and waits for their last operations; throws if one failed. */
  async stop(): Promise<void> {
    this.stopping = true;
    const loops = this.loops;
    this.loops = undefined;
    if (loops !== undefined) await loops;
  }

  /** Waits (while running) until `count` more operations completed. */
  async waitForOps(count: number, what: string): Promise<void> {
    const target = this.completed + count;
    await waitFor(() => this.completed >= target, `${count} operations (${what})`);
  }

  get total(): number {
    return this.issued.reduce((n, list) => n + list.length, 0);
  }
}

export async function statuses(tc: TestCluster, ids: readonly number[] = REPLICAS): Promise<Array<NodeStatus | undefined>> {
  return Promise.all(ids.map((id) => tc.tryStatus(id)));
}

/** The fields that matter for catching up, one line per replica (for failure messages). */
export function summary(s: NodeStatus | undefined, id?: number): string {
  if (s === undefined) return `replica ${id ?? '?'}: no status`;
  return (
    `replica ${s.id}: view ${s.view}${s.viewChanging ? ' (changing)' : ''} lastExecuted ${s.lastExecuted} ` +
    `stable ${s.stableCheckpoint.seq} last checkpoint ${s.lastCheckpoint.seq}:${s.lastCheckpoint.digest.slice(0, 12)} ` +
    `transferring ${s.transferring} divergences ${s.divergences} transfers ${s.counters.stateTransfers}/${s.stateTransfersCompleted} ` +
    `fetched ${s.counters.entriesFetched} corrupt ${s.storedStateCorruptions}`
  );
}

/** Throws if a replica process that should be running has exited (for example a broken invariant). */
export function assertAlive(tc: TestCluster, ids: readonly number[] = REPLICAS): void {
  for (const id of ids) {
    const rp = tc.procs[id];
    assert.ok(rp !== undefined, `replica ${id} is running`);
    assert.ok(rp.proc.exitCode === null && rp.proc.signalCode === null, `replica ${id} exited (${rp.proc.exitCode ?? rp.proc.signalCode}):\n${tc.output(id)}`);
  }
}

/**
 * Waits until every replica in `ids` is alive, not transferring, and reports the same lastExecuted
 * and the same last checkpoint (seq and digest) with seq > `aboveSeq`. Operations (through `drive`)
 * keep the cluster moving: right away when the replicas agree on lastExecuted but not yet on a
 * checkpoint past `aboveSeq`, at most once a second while one of them is still catching up (a
 * replica that lost everything learns where the others are only from their messages).
 */
export async function converge(
  tc: TestCluster,
  drive: () => Promise<void>,
  options: {
    ids?: readonly number[];
    aboveSeq?: number;
    what: string;
    timeoutMs?: number;
    /** When given, a quiet cluster is driven to the next checkpoint in one go (one batch per operation). */
    checkpointInterval?: number;
  },
): Promise<NodeStatus[]> {
  const ids = options.ids ?? REPLICAS;
  const above = options.aboveSeq ?? 0;
  const k = options.checkpointInterval;
  let last: Array<NodeStatus | undefined> = [];
  let drivenAt = 0;
  try {
    return await waitFor(
      async () => {
        assertAlive(tc, ids);
        last = await statuses(tc, ids);
        let level = false;
        let ops = 1;
        if (last.every((s) => s !== undefined)) {
          const s = last as NodeStatus[];
          const first = s[0]!;
          level = s.every((x) => !x.transferring && x.lastExecuted === first.lastExecuted);
          const same = level && s.every((x) => x.lastCheckpoint.seq === first.lastCheckpoint.seq && x.lastCheckpoint.digest === first.lastCheckpoint.digest);
          if (same && first.lastCheckpoint.seq > above) return s;
          if (level && k !== undefined) {
            // Sequential operations, one batch each: up to the next checkpoint above `above`.
            const next = (Math.floor(Math.max(first.lastExecuted, above) / k) + 1) * k;
            ops = Math.min(k, Math.max(1, next - first.lastExecuted));
          }
        }
        if (level || Date.now() - drivenAt >= 1_000) {
          drivenAt = Date.now();
          for (let i = 0; i < ops; i++) await drive();
        }
        return undefined;
      },
      options.what,
      options.timeoutMs,
    );
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${last.map((s, i) => summary(s, ids[i])).join('\n')}`, { cause: err });
  }
}

/** Waits until every replica in `ids` reports the same lastExecuted and none is transferring. */
export async function quiesce(tc: TestCluster, ids: readonly number[] = REPLICAS, what = 'the replicas to agree on lastExecuted'): Promise<NodeStatus[]> {
  let last: Array<NodeStatus | undefined> = [];
  try {
    return await waitFor(async () => {
      assertAlive(tc, ids);
      last = await statuses(tc, ids);
      if (last.some((s) => s === undefined)) return undefined;
      const s = last as NodeStatus[];
      return s.every((x) => !x.transferring && x.lastExecuted === s[0]!.lastExecuted) ? s : undefined;
    }, what);
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${last.map((s, i) => summary(s, ids[i])).join('\n')}`, { cause: err });
  }
}

export interface ModelCheckOptions {
  /** Replicas whose logs are read; all must be running. Default all four. */
  ids?: readonly number[];
  /**
   * Each sequence number up to the common lastExecuted must appear in at least this many logs: a
   * replica that caught up by state transfer did not execute (so did not log) what it skipped.
   */
  minLogsPerSeq: number;
}

export interface ModelCheck {
  lastSeq: number;
  statuses: NodeStatus[];
  model: KvModel;
  /** Operations checked (including the final reads). */
  total: number;
}

/**
 * With the workload stopped: reads every key once more (client 0), waits for the replicas to agree on
 * lastExecuted, then checks the agreed order and every result against the sequential model.
 */
export async function checkAgainstModel(tc: TestCluster, workload: Workload, options: ModelCheckOptions): Promise<ModelCheck> {
  const ids = options.ids ?? REPLICAS;
  // One final read of every key, after everything else.
  const finalValues = new Map<string, Uint8Array>();
  for (const key of workload.keys) {
    const op = encodeOp({ type: 'get', key });
    const result = await workload.clients[0]!.invoke(op);
    workload.issued[0]!.push({ op, result });
    finalValues.set(key, result);
  }
  const s = await quiesce(tc, ids, 'every replica to execute every request');
  const lastSeq = s[0]!.lastExecuted;

  // The agreed order: every replica's log of executed batches (a replica may log a sequence number
  // twice, after a restart or a state transfer: identically). /status can show a batch executed a
  // moment before the fixture logged it (the log line is written after the turn's synced write), so
  // read the logs again until they cover lastSeq (a short guard; the assertions below decide).
  const readLogs = (): Array<Map<number, ExecutedRecord>> =>
    ids.map((id) => {
      const bySeq = new Map<number, ExecutedRecord>();
      for (const rec of tc.readExecutedLog(id)) {
        const seen = bySeq.get(rec.seq);
        if (seen !== undefined) assert.deepEqual(rec.requests, seen.requests, `replica ${id} executed seq ${rec.seq} twice, differently`);
        bySeq.set(rec.seq, rec);
      }
      return bySeq;
    });
  const covered = (logs: Array<Map<number, ExecutedRecord>>): boolean => {
    for (let seq = 1; seq <= lastSeq; seq++) {
      if (logs.filter((l) => l.has(seq)).length < options.minLogsPerSeq) return false;
    }
    return true;
  };
  let logs = readLogs();
  if (!covered(logs)) {
    await waitFor(() => covered((logs = readLogs())), 'the executed-batches logs to catch up with /status', 5_000).catch(() => undefined);
  }
  const order: ExecutedRecord[] = [];
  for (let seq = 1; seq <= lastSeq; seq++) {
    let reference: ExecutedRecord | undefined;
    let referenceId = -1;
    let count = 0;
    for (let k = 0; k < ids.length; k++) {
      const rec = logs[k]!.get(seq);
      if (rec === undefined) continue;
      count++;
      if (reference === undefined) {
        reference = rec;
        referenceId = ids[k]!;
      } else {
        assert.deepEqual(rec.requests, reference.requests, `replica ${ids[k]} and replica ${referenceId} disagree at seq ${seq}`);
      }
    }
    assert.ok(
      count >= options.minLogsPerSeq,
      `seq ${seq} was logged by ${count} replicas, expected at least ${options.minLogsPerSeq}: ` +
        ids.map((id, k) => `${id}:${logs[k]!.has(seq) ? 'yes' : 'no'}`).join(' '),
    );
    order.push(reference!);
  }

  // Replay the agreed order on the model: every replica-computed result must come out.
  const model = new KvModel();
  const executedByClient: Array<Array<{ timestamp: number; op: string; result: string }>> = workload.clients.map(() => []);
  for (const rec of order) {
    for (const r of rec.requests) {
      const op = decodeOp(new Uint8Array(Buffer.from(r.op, 'hex')));
      assert.ok(op.ok, `seq ${rec.seq}: op decodes`);
      const expected = hex(encodeResult(model.apply(op.value)));
      assert.equal(r.result, expected, `seq ${rec.seq}, client ${r.client}: the replicas' result differs from the model's`);
      executedByClient[r.client]!.push(r);
    }
  }

  // Each client's operations: executed exactly once, in issue order, with the result it accepted.
  for (let c = 0; c < workload.clients.length; c++) {
    const mine = executedByClient[c]!;
    const issued = workload.issued[c]!;
    assert.equal(mine.length, issued.length, `client ${c}: operations executed`);
    for (let i = 0; i < mine.length; i++) {
      if (i > 0) assert.ok(mine[i]!.timestamp > mine[i - 1]!.timestamp, `client ${c}: timestamps increase in execution order`);
      assert.equal(mine[i]!.op, hex(issued[i]!.op), `client ${c}, operation ${i}: executed in issue order`);
      assert.equal(hex(issued[i]!.result), mine[i]!.result, `client ${c}, operation ${i}: accepted result equals the agreed one`);
    }
  }

  // The final reads agree with the model's final state.
  for (const key of workload.keys) {
    assert.equal(hex(finalValues.get(key)!), hex(encodeResult({ type: 'get', value: model.get(key) })), `final value of ${key}`);
  }
  return { lastSeq, statuses: s, model, total: workload.total };
}

/**
 * Runs `body`; on failure (or always, with PBFT_TEST_EVIDENCE=1) prints the seed, a status line per
 * replica and the tail of each replica's output (every run of it, restarts included).
 */
export async function withEvidence(tc: () => TestCluster | undefined, seed: number, body: () => Promise<void>): Promise<void> {
  let failure: unknown;
  try {
    await body();
  } catch (err) {
    failure = err ?? new Error('failed');
  }
  if (failure !== undefined || process.env.PBFT_TEST_EVIDENCE === '1') {
    const cluster = tc();
    const lines = [
      failure !== undefined
        ? `FAILED with seed ${seed} (rerun with PBFT_TEST_SEED=${seed}; PBFT_TEST_LOG_LEVEL=info for replica logs)`
        : `evidence of a passing run, seed ${seed}`,
    ];
    if (cluster !== undefined) {
      const s = await Promise.race([statuses(cluster), sleep(5_000).then(() => [] as Array<NodeStatus | undefined>)]);
      lines.push(...s.map((x, i) => summary(x, i)));
      const tail = Number(process.env.PBFT_TEST_EVIDENCE_LINES ?? 60);
      for (const id of REPLICAS) lines.push(`=== replica ${id} output (tail, all runs) ===`, ...cluster.allOutput(id).split('\n').slice(-tail));
    }
    console.error(lines.join('\n'));
  }
  if (failure !== undefined) throw failure;
}
