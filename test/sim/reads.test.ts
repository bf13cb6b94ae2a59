/**
 * Read-only requests in the simulator (src/core/reads.ts): simulated clients send gets unordered
 * (the SDK's ReadCollector) to a cluster with a byzantine replica that serves stale state on reads
 * (StaleReads: validly signed answers from an old copy of its state, while it orders honestly).
 * Every history is checked for linearizability (src/check/linearizability.ts): a read that started
 * after a write completed must see it. Negative controls: clients that accept a read on f+1 matching
 * answers, and replicas that answer without first executing what they prepared, must be caught.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeOp, decodeResult, type KvOp } from '../../src/app/kv-ops.ts';
import { checkLinearizable, formatViolation, type Op } from '../../src/check/linearizability.ts';
import { decodeFrame } from '../../src/codec/messages.ts';
import { StaleReads } from '../../src/sim/byzantine.ts';
import { SimCluster, type SimOptions } from '../../src/sim/cluster.ts';
import { Prng } from '../../src/sim/prng.ts';

/** The clients' completed operations as a history (ticks doubled: a step delivers, then clients act). */
function historyOf(sim: SimCluster): Op[] {
  const ops: Op[] = [];
  for (const c of sim.clients) {
    for (const done of c.completed) {
      const op = decodeOp(done.op);
      const res = decodeResult(done.result);
      if (!op.ok || !res.ok) throw new Error('undecodable operation or result');
      const o = op.value;
      const r = res.value;
      const str = (v: unknown): string | null => (v === null ? null : typeof v === 'string' ? v : Buffer.from(v as Uint8Array).toString('hex'));
      const base = { id: ops.length, client: done.client, key: o.key, invoke: 2 * done.sentAt + 1, complete: 2 * done.acceptedAt, outcome: 'ok' as const };
      switch (o.type) {
        case 'put':
          ops.push({ ...base, op: { type: 'put', value: str(o.value)! }, result: undefined });
          break;
        case 'get':
          ops.push({ ...base, op: { type: 'get' }, result: r.type === 'get' ? str(r.value) : undefined });
          break;
        case 'del':
          ops.push({ ...base, op: { type: 'del' }, result: r.type === 'del' ? r.existed : undefined });
          break;
        case 'cas':
          ops.push({ ...base, op: { type: 'cas', expected: str(o.expected), next: str(o.next) }, result: r.type === 'cas' ? { swapped: r.swapped, current: str(r.current) } : undefined });
          break;
      }
    }
  }
  return ops;
}

const isKind = (bytes: Uint8Array, type: string, minSeq: number): boolean => {
  const d = decodeFrame(bytes);
  if (!d.ok) return false;
  if (d.value.kind === 'link') return d.value.msg.type === type;
  if (d.value.kind !== 'signed') return false;
  const m = d.value.signed.msg;
  return m.type === type && 'seq' in m && m.seq >= minSeq;
};

/**
 * The scenario of the rule: put(k, old) at seq 1, put(k, new) at seq 2, then a get. Replica 2 hears
 * nothing of seq 2 (it answers "old", correctly: it never prepared seq 2); replica 3 is byzantine and
 * answers from its state after seq 1 ("old"); replica 1 prepared seq 2 but its COMMITs (and fetches)
 * are held back, so it has not executed it when the read arrives. The write completed on the replies
 * of replicas 0 and 3. Only replica 0 would answer "new" at once.
 */
function directed(options: Partial<SimOptions>): { sim: SimCluster; stale: StaleReads; heldAtReplica1: number } {
  const workload = (_c: number, i: number): KvOp => (i === 0 ? { type: 'put', key: 'k', value: 'old' } : i === 1 ? { type: 'put', key: 'k', value: 'new' } : { type: 'get', key: 'k' });
  const sim = new SimCluster({ seed: 7, clients: 1, requestsPerClient: 3, workload, readOnlyGets: true, clientTimeoutTicks: 200, ...options });
  const stale = new StaleReads();
  sim.hosts[3]!.byzantine = stale;
  let holdReplica1 = true;
  sim.net.dropIf = (from, to, bytes) => {
    if (to === 2 && from < sim.n) return isKind(bytes, 'preprepare', 2) || isKind(bytes, 'prepare', 2) || isKind(bytes, 'commit', 2) || isKind(bytes, 'fetched', 0) || isKind(bytes, 'state', 0);
    if (to === 1 && holdReplica1) return isKind(bytes, 'commit', 2) || isKind(bytes, 'fetched', 0);
    return false;
  };
  const client = sim.clients[0]!;
  // Replica 3's stale copy: its state after seq 1.
  assert.ok(sim.runUntil(() => (sim.hosts[3]!.replica?.lastExecuted ?? 0) >= 1, 500));
  stale.freeze();
  assert.ok(sim.runUntil(() => client.completed.length >= 2, 2_000), 'both puts completed');
  assert.equal(sim.hosts[1]!.replica!.lastExecuted, 1, 'replica 1 has not executed seq 2');
  assert.ok(sim.hosts[1]!.replica!.slots.get(2)?.preparedInView, 'replica 1 prepared seq 2');
  sim.run(30);
  const heldAtReplica1 = sim.hosts[1]!.replica!.heldReads.size;
  holdReplica1 = false;
  assert.ok(sim.runUntil(() => sim.allClientsDone(), 5_000), 'the client finished');
  return { sim, stale, heldAtReplica1 };
}

describe('read-only requests in the simulator', () => {
  test('a read after a completed write sees it, though a byzantine replica serves the old value and a correct one has not heard of the write', () => {
    const { sim, stale, heldAtReplica1 } = directed({});
    const client = sim.clients[0]!;
    const read = client.completed[2]!;
    const value = decodeResult(read.result);
    assert.ok(value.ok && value.value.type === 'get');
    assert.equal(value.value.value, 'new');
    assert.equal(heldAtReplica1, 1, 'replica 1 held the read while seq 2 was prepared and not executed');
    assert.ok(stale.served >= 1, 'the byzantine replica did answer from its stale copy');
    // "old" had two answers (replicas 2 and 3) and could never reach 2f+1: the read was ordered.
    assert.equal(read.unordered, undefined);
    assert.equal(Object.values(client.readFallbacks).reduce((a, b) => a + b, 0), 1);
    const h = historyOf(sim);
    const verdict = checkLinearizable(h);
    assert.ok(verdict.ok, formatViolation(verdict));
    const { violations } = sim.checker;
    sim.finish();
    assert.deepEqual(violations, []);
  });

  test('negative control: a client that accepts f+1 matching answers returns the stale value, and the checker says so', () => {
    const { sim } = directed({ unsafeReadQuorum: 2 });
    const read = sim.clients[0]!.completed[2]!;
    assert.equal(read.unordered, true);
    const value = decodeResult(read.result);
    assert.ok(value.ok && value.value.type === 'get' && value.value.value === 'old');
    assert.equal(checkLinearizable(historyOf(sim)).ok, false);
  });

  test('negative control: replicas that answer before executing what they prepared let 2f+1 agree on the stale value', () => {
    const { sim, heldAtReplica1 } = directed({ unsafeReadsWithoutHold: true });
    assert.equal(heldAtReplica1, 0);
    const read = sim.clients[0]!.completed[2]!;
    assert.equal(read.unordered, true);
    assert.equal(checkLinearizable(historyOf(sim)).ok, false);
  });
});

/**
 * Seeded runs: 4 clients put unique values and get (half of the operations) on 3 keys over a network
 * that delays (reordering), loses and duplicates messages; one replica serves stale state on reads,
 * refreshing its copy every 20-300 ticks. Reads after completed writes must see them.
 */
function seeded(seed: number, options: Partial<SimOptions> = {}, staleReplica = true): { sim: SimCluster; history: Op[]; staleServed: number } {
  const prng = new Prng(seed * 7919 + 1);
  const workload = (c: number, i: number): KvOp => {
    const key = `k${prng.int(3)}`;
    return prng.chance(0.5) ? { type: 'get', key } : { type: 'put', key, value: `c${c}.${i}` };
  };
  const sim = new SimCluster({
    seed,
    clients: 4,
    requestsPerClient: 24,
    workload,
    readOnlyGets: true,
    clientTimeoutTicks: 60,
    network: { loss: 0.03, duplication: 0.05, delayTicksMin: 1, delayTicksMax: 1 + prng.int(12) },
    // Every replica replies to a write, so a write completes on the fastest f+1 replies: the earliest
    // a read can follow it, while the slower replicas have not executed it (the hardest case for a
    // read, and what the negative controls need). The clients' default, f+1 named repliers, is run too.
    clientReplies: 'all',
    ...options,
  });
  const byzantine = prng.int(sim.n);
  const stale = new StaleReads(20 + prng.int(280));
  if (staleReplica) sim.hosts[byzantine]!.byzantine = stale;
  // Now and then one correct replica lags: its incoming COMMITs are delayed by being dropped for a while.
  let laggard = -1;
  let lagUntil = 0;
  sim.net.dropIf = (from, to, bytes) => to === laggard && from < sim.n && sim.now < lagUntil && isKind(bytes, 'commit', 0);
  for (let t = 0; t < 20_000 && !sim.allClientsDone(); t += 50) {
    if (prng.chance(0.3)) {
      laggard = prng.int(sim.n);
      lagUntil = sim.now + 10 + prng.int(60);
    }
    sim.run(50);
  }
  assert.ok(sim.allClientsDone(), `seed ${seed}: every client finished`);
  return { sim, history: historyOf(sim), staleServed: stale.served };
}

/** Runs the seeds: every history must be linearizable and every checker quiet. The clients' totals. */
function allLinearizable(seeds: number[], options: Partial<SimOptions> = {}, staleReplica = true): { unordered: number; fellBack: number; staleServed: number } {
  const totals = { unordered: 0, fellBack: 0, staleServed: 0 };
  for (const seed of seeds) {
    const { sim, history, staleServed } = seeded(seed, options, staleReplica);
    const verdict = checkLinearizable(history);
    assert.ok(verdict.ok, `seed ${seed}: ${formatViolation(verdict)}`);
    sim.finish();
    assert.deepEqual(sim.checker.violations, [], `seed ${seed}`);
    for (const c of sim.clients) {
      totals.unordered += c.readsUnordered;
      totals.fellBack += Object.values(c.readFallbacks).reduce((a, b) => a + b, 0);
    }
    totals.staleServed += staleServed;
  }
  return totals;
}

describe('read-only requests: seeded runs with a replica serving stale state', () => {
  const SEEDS = Array.from({ length: 60 }, (_, i) => i + 1);

  test('every history is linearizable; reads are answered unordered and fall back', () => {
    const { unordered, fellBack, staleServed } = allLinearizable(SEEDS);
    console.log(`# ${SEEDS.length} seeds: ${unordered} reads unordered, ${fellBack} fell back, ${staleServed} stale answers served`);
    assert.ok(unordered > 200, `reads answered unordered: ${unordered}`);
    assert.ok(fellBack > 10, `reads that fell back: ${fellBack}`);
    assert.ok(staleServed > 100, `stale answers served: ${staleServed}`);
  });

  test('with f+1 named repliers (the default) too, every history is linearizable', () => {
    const { unordered } = allLinearizable(SEEDS, { clientReplies: 'quorum' });
    assert.ok(unordered > 200, `reads answered unordered: ${unordered}`);
  });

  test('negative control: replicas that answer without executing what they prepared: some seed returns a stale read', () => {
    const caught = SEEDS.filter((seed) => !checkLinearizable(seeded(seed, { unsafeReadsWithoutHold: true }).history).ok);
    console.log(`# reads without the hold: stale reads caught in ${caught.length} of ${SEEDS.length} seeds`);
    assert.ok(caught.length > 0, 'no seed caught replicas answering without the hold');
  });

  test('negative control: with f+1 matching answers accepted, some seed returns a stale read', () => {
    const caught = SEEDS.filter((seed) => !checkLinearizable(seeded(seed, { unsafeReadQuorum: 2 }).history).ok);
    console.log(`# f+1 read quorum: stale reads caught in ${caught.length} of ${SEEDS.length} seeds`);
    assert.ok(caught.length > 0, 'no seed caught the f+1 read quorum');
  });
});

describe('read-only requests in the crash-fault mode: writes accepted on one reply, reads on a majority', () => {
  // No replica lies in this mode, so no stale replica; the laggards and the lossy network remain.
  const SEEDS = Array.from({ length: 30 }, (_, i) => i + 1);
  const crash = { replicas: 3, faultModel: 'crash' } as const;

  test('every history is linearizable (quorum.ts: any majority of answers includes a replica that prepared the write)', () => {
    const { unordered } = allLinearizable(SEEDS, crash, false);
    assert.ok(unordered > 100, `reads answered unordered: ${unordered}`);
  });

  test('negative control: without the hold, one-reply writes let a majority agree on the stale value', () => {
    const caught = SEEDS.filter((seed) => !checkLinearizable(seeded(seed, { ...crash, unsafeReadsWithoutHold: true }, false).history).ok);
    console.log(`# crash mode, reads without the hold: stale reads caught in ${caught.length} of ${SEEDS.length} seeds`);
    assert.ok(caught.length > 0, 'no seed caught replicas answering without the hold');
  });
});

describe('read-only requests across reconfigurations', () => {
  /** Every given running replica has entered `epoch` and caught up with its stable checkpoint. */
  const entered = (sim: SimCluster, epoch: number, members: number[]): boolean =>
    members.every((id) => {
      const r = sim.hosts[id]!.replica;
      return !r || (r.status().epoch >= epoch && r.lastExecuted >= r.h);
    });

  for (const seed of [1, 2]) {
    test(`seed ${seed}: replicas 4 and 5 JOIN and 3 QUITs while clients read unordered; every history is linearizable`, () => {
      const sim = new SimCluster({ seed, f: 1, spareReplicas: 2, operator: true, clients: 4, requestsPerClient: 250, keySpace: 4, readOnlyGets: true });
      sim.keepEvents = false;
      sim.run(100);
      const steps: Array<[Parameters<SimCluster['reconfigure']>[0], number, number[]]> = [
        [{ kind: 'add-replica', replica: sim.replicaInfo[4]! }, 1, [0, 1, 2, 3, 4]],
        [{ kind: 'add-replica', replica: sim.replicaInfo[5]! }, 2, [0, 1, 2, 3, 4, 5]],
        [{ kind: 'remove-replica', id: 3 }, 3, [0, 1, 2, 4, 5]],
      ];
      for (const [op, epoch, members] of steps) {
        sim.reconfigure(op);
        assert.ok(sim.runUntil(() => entered(sim, epoch, members), 4_000), `seed ${seed}: epoch ${epoch} not entered`);
      }
      sim.crash(3);
      assert.ok(sim.runUntil(() => sim.allClientsDone(), 30_000), `seed ${seed}: clients did not finish`);
      sim.finish();
      assert.deepEqual(sim.checker.violations, [], `seed ${seed}: ${JSON.stringify(sim.checker.violations.slice(0, 3))}`);
      const verdict = checkLinearizable(historyOf(sim));
      assert.ok(verdict.ok, `seed ${seed}: ${formatViolation(verdict)}`);
      let unordered = 0;
      const reasons = new Set<string>();
      for (const c of sim.clients) {
        assert.equal(c.follower.epoch, 3, `client ${c.id} followed to epoch 3`);
        unordered += c.readsUnordered;
        for (const r of Object.keys(c.readFallbacks)) reasons.add(r);
      }
      console.log(`# seed ${seed}: ${unordered} reads unordered; fallbacks: ${JSON.stringify(sim.clients.map((c) => c.readFallbacks))}`);
      assert.ok(unordered > 50, `reads answered unordered: ${unordered}`);
      assert.ok(reasons.has('membership') || reasons.has('epoch'), `some read fell back on a configuration change: ${[...reasons].join(',')}`);
    });
  }
});
