/**
 * Four real replica processes (RocksDB, WebSocket transport, ed25519) and four concurrent SDK
 * clients running 1,000 mixed operations over a small shared key space.
 *
 * What is checked, and why it is a real check:
 * - The replicas write every executed batch to a log (test-only hook in the fixture). All four
 *   logs must agree entry by entry (same sequence number -> same requests, same results): that is
 *   the agreed total order.
 * - Replaying that order through the sequential model (src/sim/kv-model.ts) must reproduce every
 *   result the replicas computed, and the result each client accepted for each of its operations.
 *   Because the clients share keys, a result depends on the interleaving: a client result that does
 *   not match its position in the agreed order (or a replica that executed a different order)
 *   fails the test. Each client's operations appear exactly once, in its issue order.
 * - At the end all four replicas report the same lastExecuted and the same checkpoint digest
 *   (state + client table); a final read of every key matches the model's state.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeOp, encodeOp, encodeResult, type KvOp } from '../../src/app/kv-ops.ts';
import type { PbftClient } from '../../src/client/client.ts';
import { KvModel } from '../../src/sim/kv-model.ts';
import { hex, prng, TestCluster, waitFor, type ExecutedRecord } from './helpers.ts';

const CLIENTS = 4;
const OPS_PER_CLIENT = 250;
const KEYS = ['k0', 'k1', 'k2', 'k3', 'k4', 'k5'];
const SEED = Number(process.env.PBFT_TEST_SEED ?? 20240611);

let tc: TestCluster;
let clients: PbftClient[] = [];

before(async () => {
  tc = await TestCluster.create({
    name: 'runtime',
    executedLog: true,
    // A small checkpoint interval so that the run crosses many checkpoints.
    node: { replica: { checkpointInterval: 16, windowSize: 64 } },
  });
  await tc.startAll();
  clients = await Promise.all(Array.from({ length: CLIENTS }, (_, c) => tc.client(c)));
});

after(async () => {
  await tc?.destroy();
});

function randomOp(next: () => number, client: number, i: number): KvOp {
  const key = KEYS[Math.floor(next() * KEYS.length)]!;
  const value = `c${client}-${i}`;
  const pick = next();
  if (pick < 0.35) return { type: 'put', key, value };
  if (pick < 0.6) return { type: 'get', key };
  if (pick < 0.75) return { type: 'del', key };
  // cas: expect absent, or a value some client may have written recently
  const expected = next() < 0.3 ? null : `c${Math.floor(next() * CLIENTS)}-${Math.max(0, i - 1 - Math.floor(next() * 3))}`;
  return { type: 'cas', key, expected, next: next() < 0.1 ? null : value };
}

interface Issued {
  op: Uint8Array;
  result: Uint8Array;
}

test(`${CLIENTS} concurrent clients, ${CLIENTS * OPS_PER_CLIENT} operations: every result matches the agreed order replayed on a sequential model`, async () => {
  const issued: Issued[][] = clients.map(() => []);
  await Promise.all(
    clients.map(async (client, c) => {
      const next = prng(SEED + c);
      for (let i = 0; i < OPS_PER_CLIENT; i++) {
        const op = encodeOp(randomOp(next, c, i));
        const result = await client.invoke(op);
        issued[c]!.push({ op, result });
      }
    }),
  );
  // One final read of every key, after all the above.
  const finalValues = new Map<string, unknown>();
  for (const key of KEYS) {
    const op = encodeOp({ type: 'get', key });
    const result = await clients[0]!.invoke(op);
    issued[0]!.push({ op, result });
    finalValues.set(key, result);
  }
  const total = issued.reduce((n, list) => n + list.length, 0);

  // All replicas executed everything (poll: a backup may trail the primary by a moment).
  const statuses = await waitFor(async () => {
    const all = await Promise.all([0, 1, 2, 3].map((id) => tc.tryStatus(id)));
    if (all.some((s) => s === undefined)) return undefined;
    const s = all.map((x) => x!);
    const executed = s.map((x) => x.counters.requestsExecuted);
    return executed.every((n) => n === total) && s.every((x) => x.lastExecuted === s[0]!.lastExecuted) ? s : undefined;
  }, 'every replica to execute every request');

  // Same state at the same point: checkpoint digests agree (a checkpoint every 16 batches).
  const last = statuses[0]!.lastCheckpoint;
  assert.ok(last.seq > 0, 'the run crossed at least one checkpoint');
  for (const s of statuses) {
    assert.equal(s.lastExecuted, statuses[0]!.lastExecuted, `replica ${s.id} lastExecuted`);
    assert.deepEqual(s.lastCheckpoint, last, `replica ${s.id} last checkpoint (seq and state digest)`);
    assert.equal(s.divergences, 0, `replica ${s.id} divergences`);
  }

  // The agreed order: every replica's log of executed batches, identical entry by entry.
  const logs = [0, 1, 2, 3].map((id) => {
    const bySeq = new Map<number, ExecutedRecord>();
    for (const rec of tc.readExecutedLog(id)) {
      const seen = bySeq.get(rec.seq);
      if (seen !== undefined) assert.deepEqual(rec.requests, seen.requests, `replica ${id} executed seq ${rec.seq} twice, differently`);
      bySeq.set(rec.seq, rec);
    }
    return bySeq;
  });
  const lastSeq = statuses[0]!.lastExecuted;
  for (let seq = 1; seq <= lastSeq; seq++) {
    const reference = logs[0]!.get(seq);
    assert.ok(reference !== undefined, `replica 0 logged seq ${seq}`);
    for (let id = 1; id < 4; id++) {
      assert.deepEqual(logs[id]!.get(seq)?.requests, reference.requests, `replica ${id} and replica 0 disagree at seq ${seq}`);
    }
  }

  // Replay the agreed order on the model: every replica-computed result must come out.
  const model = new KvModel();
  const executedByClient: Array<Array<{ timestamp: number; op: string; result: string }>> = clients.map(() => []);
  for (let seq = 1; seq <= lastSeq; seq++) {
    for (const r of logs[0]!.get(seq)!.requests) {
      const op = decodeOp(new Uint8Array(Buffer.from(r.op, 'hex')));
      assert.ok(op.ok, `seq ${seq}: op decodes`);
      const expected = hex(encodeResult(model.apply(op.value)));
      assert.equal(r.result, expected, `seq ${seq}, client ${r.client}: the replicas' result differs from the model's`);
      executedByClient[r.client]!.push(r);
    }
  }

  // Each client's operations: executed exactly once, in issue order, with the result it accepted.
  for (let c = 0; c < clients.length; c++) {
    const mine = executedByClient[c]!;
    assert.equal(mine.length, issued[c]!.length, `client ${c}: operations executed`);
    for (let i = 0; i < mine.length; i++) {
      if (i > 0) assert.ok(mine[i]!.timestamp > mine[i - 1]!.timestamp, `client ${c}: timestamps increase in execution order`);
      assert.equal(mine[i]!.op, hex(issued[c]![i]!.op), `client ${c}, operation ${i}: executed in issue order`);
      assert.equal(hex(issued[c]![i]!.result), mine[i]!.result, `client ${c}, operation ${i}: accepted result equals the agreed one`);
    }
  }

  // The final reads agree with the model's final state.
  for (const key of KEYS) {
    assert.equal(hex(finalValues.get(key) as Uint8Array), hex(encodeResult({ type: 'get', value: model.get(key) })), `final value of ${key}`);
  }
});
