/**
 * Requests that name their repliers (RequestMsg.repliers; the clients' choice: src/client/repliers.ts),
 * attacked in the simulator: a replica that votes like a correct one but never answers a client, one
 * that answers with wrong results, and the same runs with every replica replying for comparison.
 * Every accepted result is checked against the agreed order by the simulator's checkers.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SimCluster, type SimOptions } from '../../src/sim/cluster.ts';
import { MuteReplies, makeBehavior } from '../../src/sim/byzantine.ts';

const REQUESTS = 200;

function run(seed: number, options: Partial<SimOptions>, byzantine?: (sim: SimCluster) => void): SimCluster {
  const sim = new SimCluster({ seed, clients: 4, requestsPerClient: REQUESTS, keySpace: 8, ...options });
  sim.keepEvents = false;
  byzantine?.(sim);
  assert.ok(
    sim.runUntil(() => sim.allClientsDone(), 60_000),
    `seed ${seed}: clients did not finish: ${sim.clients.map((c) => c.completed.length).join(', ')} done`,
  );
  sim.finish();
  assert.deepEqual(sim.checker.violations, [], `seed ${seed}: ${JSON.stringify(sim.checker.violations.slice(0, 3))}`);
  return sim;
}

const retransmissions = (sim: SimCluster): number[] => sim.clients.map((c) => c.retransmissions);
const leftToOthers = (sim: SimCluster): number => sim.hosts.reduce((sum, h) => sum + (h.main?.replica.counters.repliesLeftToOthers ?? 0), 0);

test('without faults each request gets exactly f+1 replies: the other replicas send none, and nothing is retransmitted', () => {
  for (const seed of [1, 2]) {
    const sim = run(seed, {});
    assert.deepEqual(retransmissions(sim), [0, 0, 0, 0], `seed ${seed}`);
    const executed = sim.checker.requestsExecuted;
    assert.ok(executed >= 4 * REQUESTS, `seed ${seed}: ${executed} executed`);
    // n = 4, f+1 = 2: two of the four replicas leave each reply to the others.
    assert.equal(leftToOthers(sim), 2 * executed, `seed ${seed}`);
    // The primary (replica 0, no view change here) is never named while three backups answer.
    for (const c of sim.clients) for (const group of c.acceptedFrom) assert.ok(!group.includes(0), `seed ${seed}: client ${c.id} accepted on ${group}`);
    // With every replica replying the same run has nothing left to others.
    assert.equal(leftToOthers(run(seed, { clientReplies: 'all' })), 0);
  }
});

test('a replica that votes but never replies to clients: every client finishes, leaving it out after a miss (a handful of retransmissions)', () => {
  for (const seed of [1, 2, 3]) {
    for (const mute of [1, 2, 3]) {
      const sim = run(seed, {}, (s) => {
        s.hosts[mute]!.byzantine = new MuteReplies();
      });
      // Misses at about request 1, then after 32, 64, 128 more requests: 4 or 5 in 200.
      for (const c of sim.clients) assert.ok(c.retransmissions <= 8, `seed ${seed}, mute ${mute}: client ${c.id} retransmitted ${c.retransmissions} times`);
      assert.ok(retransmissions(sim).some((r) => r > 0), `seed ${seed}, mute ${mute}: the mute replica was never named`);
      for (const c of sim.clients) for (const group of c.acceptedFrom) assert.ok(!group.includes(mute), `accepted on ${group}`);
    }
  }
});

test('negative control: clients that keep naming the mute replica retransmit for most of their requests', () => {
  const sim = run(1, { unsafeClientsNeverSuspect: true }, (s) => {
    s.hosts[2]!.byzantine = new MuteReplies();
  });
  // Two of the three rotations name replica 2.
  for (const c of sim.clients) assert.ok(c.retransmissions >= REQUESTS / 2, `client ${c.id} retransmitted only ${c.retransmissions} times`);
});

test('a replica that replies with wrong results when named: no wrong result is accepted, and it is left out after it dissents', () => {
  for (const seed of [1, 2, 3]) {
    const sim = run(seed, {}, (s) => {
      s.hosts[3]!.byzantine = makeBehavior('wrong-result', s.prng.fork(), s, 3);
    });
    for (const c of sim.clients) assert.ok(c.retransmissions <= 8, `seed ${seed}: client ${c.id} retransmitted ${c.retransmissions} times`);
    for (const c of sim.clients) for (const group of c.acceptedFrom) assert.ok(!group.includes(3), `accepted on ${group}`);
  }
});
