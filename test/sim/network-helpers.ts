/**
 * The normal case under an unreliable network only (no crashes, no byzantine replicas): each seed
 * draws loss (0-30%), duplication (0-50%) and delays that reorder messages. Every request must be
 * answered (after the network heals), with zero agreement violations and results equal to a
 * sequential key-value store for the agreed order. Used by test/sim/network-faults.test.ts (npm test)
 * and test/long/network-faults.test.ts (npm run test:long).
 */
import assert from 'node:assert/strict';
import { SimCluster } from '../../src/sim/cluster.ts';
import { Prng } from '../../src/sim/prng.ts';

export function runNetworkSeeds(f: number, first: number, seeds: number, requestsPerClient: number): { requests: number; lossy: number } {
  let requests = 0;
  let lossy = 0;
  for (let seed = first; seed < first + seeds; seed++) {
    const p = new Prng(seed * 7919 + f);
    const loss = p.float() * 0.3;
    const duplication = p.float() * 0.5;
    const delayTicksMax = p.range(2, 30);
    const sim = new SimCluster({ seed, f, clients: 4, requestsPerClient, network: { loss, duplication, delayTicksMin: 1, delayTicksMax } });
    sim.keepEvents = false;
    sim.run(p.range(500, 2500));
    if (loss > 0.01) lossy++;
    // Heal; everything must be answered.
    sim.net.faults = { loss: 0, duplication: 0, delayTicksMin: 1, delayTicksMax: 3 };
    const live = sim.runUntil(() => sim.allClientsDone(), 30_000);
    const outcome = sim.finish();
    const where = `f=${f} seed ${seed} (loss ${loss.toFixed(2)}, duplication ${duplication.toFixed(2)}, delay <= ${delayTicksMax})`;
    assert.deepEqual(sim.checker.violations, [], `${where}: violations`);
    assert.ok(live, `${where}: not every request was answered`);
    assert.equal(outcome.gaps, 0, `${where}: the agreed order has gaps`);
    const answered = sim.clients.reduce((n, c) => n + c.completed.length, 0);
    assert.equal(answered, 4 * requestsPerClient, `${where}: answered ${answered}`);
    requests += answered;
  }
  return { requests, lossy };
}

