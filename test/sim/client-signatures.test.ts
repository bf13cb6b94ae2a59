/**
 * Client signatures checked by 2f+1 replicas only (src/core/quorum.ts, skipsClientSignatures): the
 * rule itself (who skips, and that every prepared certificate holds f+1 replicas that checked), and
 * the simulator attacking it. A byzantine primary puts a request its client never signed into every
 * batch and sends its own COMMIT for it (src/sim/byzantine.ts, RequestForger); with f = 2 a second
 * byzantine replica prepares and commits whatever it sees. With the bound the checking backups
 * refuse the batches, the view changes and nothing forged executes; with one skipper more (the
 * negative controls) the validity checker catches a forged request executed by correct replicas.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { faultsOf, quorumFor, skipsClientSignatures } from '../../src/core/quorum.ts';
import { makeBehavior, RequestForger } from '../../src/sim/byzantine.ts';
import { Prng } from '../../src/sim/prng.ts';
import { DEFAULT_SIM_OPTIONS, SimCluster, type SimOptions } from '../../src/sim/cluster.ts';

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

/** Every subset of `items` with `k` elements. */
function subsets(items: number[], k: number): number[][] {
  if (k === 0) return [[]];
  if (items.length < k) return [];
  const [first, ...rest] = items;
  return [...subsets(rest, k - 1).map((s) => [first!, ...s]), ...subsets(rest, k)];
}

test('skippers: q.signatureSkippers backups per (view, seq), never the primary, rotating evenly; none in the crash mode', () => {
  for (const n of [4, 5, 6, 7, 10]) {
    const f = faultsOf(n);
    const q = quorumFor(n, f);
    assert.equal(q.signatureSkippers, q.prepares - f, `n=${n}`);
    const members = range(n).map((i) => 10 + 3 * i); // ids need not be 0..n-1
    const skipped = new Map<number, number>();
    const views = 2 * n;
    const seqs = 6 * (n - 1);
    for (let view = 0; view < views; view++) {
      const primary = members[view % n]!;
      for (let seq = 1; seq <= seqs; seq++) {
        const skippers = members.filter((id) => skipsClientSignatures(q, members, view, seq, id));
        assert.equal(skippers.length, q.signatureSkippers, `n=${n} view ${view} seq ${seq}`);
        assert.ok(!skippers.includes(primary), 'the primary checks what it proposes');
        for (const id of skippers) skipped.set(id, (skipped.get(id) ?? 0) + 1);
      }
    }
    // Over views x seqs each replica skips as often as any other (seqs is a multiple of the backups).
    const counts = members.map((id) => skipped.get(id) ?? 0);
    assert.equal(new Set(counts).size, 1, `n=${n}: ${counts.join(',')}`);
    assert.equal(skipsClientSignatures(q, members, 0, 1, 999), false, 'not a member');
  }
  const crash = quorumFor(3, 1, {}, 'crash');
  assert.equal(crash.signatureSkippers, 0);
  assert.equal(skipsClientSignatures(crash, [0, 1, 2], 0, 1, 1), false);
});

test('every prepared certificate holds f+1 replicas that checked the client signatures; with one skipper more, some holds f', () => {
  for (const n of [4, 5, 6, 7, 8, 9]) {
    const f = faultsOf(n);
    const q = quorumFor(n, f);
    const members = range(n);
    for (const extra of [0, 1]) {
      const qq = quorumFor(n, f, { signatureSkippers: q.signatureSkippers + extra });
      let least = Infinity;
      for (let view = 0; view < n; view++) {
        const primary = view % n;
        const backups = members.filter((r) => r !== primary);
        for (let seq = 1; seq <= n - 1; seq++) {
          const checkers = new Set(members.filter((r) => !skipsClientSignatures(qq, members, view, seq, r)));
          // A certificate: the PRE-PREPARE (the primary) and q.prepares PREPAREs of distinct backups.
          for (const prepares of subsets(backups, q.prepares)) {
            const shared = [primary, ...prepares].filter((r) => checkers.has(r)).length;
            least = Math.min(least, shared);
          }
        }
      }
      if (extra === 0) assert.ok(least >= f + 1, `n=${n}: a certificate holds only ${least} checkers`);
      else assert.equal(least, f, `n=${n} with a skipper more`);
    }
  }
});

interface Run {
  sim: SimCluster;
  done: boolean;
  violations: string[];
  /** Summed over the correct replicas. */
  unchecked: number;
  refused: number;
  view: number;
}

function run(options: Partial<SimOptions>, byzantine: (sim: SimCluster) => void, ticks: number): Run {
  const sim = new SimCluster({ clients: 4, requestsPerClient: 25, ...options });
  byzantine(sim);
  const done = sim.runUntil(() => sim.allClientsDone(), ticks);
  sim.finish();
  const correct = sim.hosts.filter((h) => sim.isCorrect(h.id) && h.replica);
  return {
    sim,
    done,
    violations: sim.checker.violations.map((v) => `${v.check}: ${v.detail}`),
    unchecked: correct.reduce((sum, h) => sum + h.replica!.counters.clientSignaturesUnchecked, 0),
    refused: correct.reduce((sum, h) => sum + (h.replica!.rejected.get('batch-with-bad-request') ?? 0), 0),
    view: Math.max(...correct.map((h) => h.replica!.view)),
  };
}

const forgingPrimary = (sim: SimCluster): void => {
  sim.hosts[0]!.byzantine = new RequestForger();
};
const forgingPrimaryAndVoter = (sim: SimCluster): void => {
  sim.hosts[0]!.byzantine = new RequestForger();
  sim.hosts[1]!.byzantine = makeBehavior('vote-all', new Prng(7), sim, 1);
};

test('fault-free: backups skip client signatures (one of three per batch) and every request completes', () => {
  for (const seed of [1, 2]) {
    const r = run({ seed, f: 1 }, () => {}, 20_000);
    assert.deepEqual(r.violations, []);
    assert.ok(r.done, `seed ${seed}: every client completed`);
    assert.ok(r.unchecked > 0, `seed ${seed}: no request went unchecked`);
    assert.equal(r.view, 0);
  }
});

for (const seed of [3, 4, 5]) {
  test(`f=1, seed ${seed}: a primary forging requests is refused by the checking backups, replaced, and nothing forged executes`, () => {
    const r = run({ seed, f: 1 }, forgingPrimary, 40_000);
    assert.deepEqual(r.violations, []);
    assert.ok(r.done, 'every client completed');
    assert.ok((r.sim.faults['forged-request'] ?? 0) > 0, 'the primary forged');
    assert.ok(r.refused > 0, 'checking backups refused forged batches');
    assert.ok(r.view >= 1, `view ${r.view}: the forger was replaced`);
  });
}

test('negative control, f=1: two skippers per batch (one more than the bound) execute a forged request, and the checker catches it', () => {
  const r = run({ seed: 3, f: 1, unsafeQuorum: { signatureSkippers: 2 } }, forgingPrimary, 40_000);
  assert.ok(r.violations.some((v) => v.startsWith('validity:')), r.violations.join('\n') || 'no violation');
});

test('f=2: a forging primary helped by a byzantine voter is refused and replaced; nothing forged executes', () => {
  const r = run({ seed: 6, f: 2 }, forgingPrimaryAndVoter, 60_000);
  assert.deepEqual(r.violations, []);
  assert.ok(r.done, 'every client completed');
  assert.ok(r.refused > 0);
  assert.ok(r.view >= 1, `view ${r.view}`);
});

test('negative control, f=2: three skippers per batch (one more than the bound) with the voter execute a forged request, caught', () => {
  const r = run({ seed: 6, f: 2, unsafeQuorum: { signatureSkippers: 3 } }, forgingPrimaryAndVoter, 60_000);
  assert.ok(r.violations.some((v) => v.startsWith('validity:')), r.violations.join('\n') || 'no violation');
});

/** A primary that re-signs the skippers' copies and serves nothing; replica 3 is down while 10 batches commit. */
function resignRun(unsafeServeUncheckedBatches: boolean): { sim: SimCluster; done: boolean; blamed: string[] } {
  const sim = new SimCluster({
    seed: 8,
    f: 1,
    clients: 4,
    requestsPerClient: 100,
    // A window larger than the outage, so that replica 3 catches up by fetching entries.
    replica: { ...DEFAULT_SIM_OPTIONS.replica, checkpointInterval: 64, windowSize: 128 },
    ...(unsafeServeUncheckedBatches ? { unsafeServeUncheckedBatches } : {}),
  });
  const q = quorumFor(4, 1);
  sim.hosts[0]!.byzantine = new RequestForger((view, seq, to) => skipsClientSignatures(q, [0, 1, 2, 3], view, seq, to));
  sim.run(200);
  sim.crash(3);
  sim.run(60);
  sim.restart(3);
  const done = sim.runUntil(() => sim.allClientsDone(), 40_000);
  sim.finish();
  const blamed = sim.events
    .filter(({ replica, event }) => event.type === 'peer-misbehaved' && sim.isCorrect(replica) && sim.isCorrect(event.peer))
    .map(({ replica, event }) => `${replica} blames ${event.type === 'peer-misbehaved' ? `${event.peer}: ${event.code}` : ''}`);
  return { sim, done, blamed };
}

test('a primary that re-signs the skippers\' copies (same bodies, same digest): a replica catching up gets every entry, and no correct replica is blamed', () => {
  const { sim, done, blamed } = resignRun(false);
  assert.deepEqual(sim.checker.violations.map((v) => `${v.check}: ${v.detail}`), []);
  assert.ok(done, 'every client completed');
  assert.ok((sim.faults['resigned-batch'] ?? 0) > 0, 'the primary re-signed batches');
  const unchecked = [1, 2].reduce((sum, id) => sum + sim.hosts[id]!.replica!.counters.clientSignaturesUnchecked, 0);
  assert.ok(unchecked > 0, 'the skippers held requests they had not checked');
  assert.equal(sim.hosts[3]!.replica!.lastExecuted, sim.hosts[1]!.replica!.lastExecuted, 'replica 3 caught up');
  assert.deepEqual(blamed, []);
});

test('negative control: skippers that serve what they did not check get a correct replica blamed by the one catching up', () => {
  const { blamed } = resignRun(true);
  assert.ok(blamed.some((b) => b.endsWith('batch-with-bad-request')), blamed.join('\n') || 'nobody blamed');
});
