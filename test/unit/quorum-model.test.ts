/**
 * The quorum module chooses every threshold from (n, fault model), and the membership, the keyring
 * and epoch proofs carry the model:
 *   - byzantine: f = floor((n-1)/3), strong quorums ceil((n+f+1)/2) (2f+1 of 3f+1), unchanged;
 *   - crash:     f = floor((n-1)/2), strong quorums floor(n/2)+1 (f+1 of 2f+1); join and suspicions
 *                f+1 in both.
 * The properties the thresholds exist for are checked exhaustively over every pair of quorums of
 * small clusters: two strong quorums share f+1 replicas (byzantine) or one (crash), and the quorums
 * never need more than the n-f replicas that are up.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { keygenMain } from '../../src/cli/keygen.ts';
import type { FaultModel } from '../../src/core/cluster.ts';
import { applyReconfig, clusterOf, decodeMembership, encodeMembership, encodeReconfigOp, faultsFor, genesisMembership, type MemberConfig } from '../../src/core/membership.ts';
import { faultsOf, quorumFor, replicasFor, replicasMin } from '../../src/core/quorum.ts';
import { decodeCbor } from '../../src/core/encoding.ts';
import { loadCluster } from '../../src/crypto/keyring.ts';
import { sha256 } from '@noble/hashes/sha2.js';
import { SimCluster } from '../../src/sim/cluster.ts';
import { verifyEpochProof, type ProofCrypto } from '../../src/core/epochproof.ts';

test('byzantine thresholds are unchanged: 2f+1 of 3f+1, f+1 for join and suspicions', () => {
  const cases: Array<[number, number, number]> = [
    // n, f, strong
    [4, 1, 3],
    [5, 1, 4],
    [6, 1, 4],
    [7, 2, 5],
    [10, 3, 7],
  ];
  for (const [n, f, strong] of cases) {
    assert.equal(faultsOf(n), f);
    assert.equal(faultsFor(n, 'byzantine'), f);
    const q = quorumFor(n, f);
    assert.deepEqual(
      { model: q.model, prepares: q.prepares, commits: q.commits, checkpoints: q.checkpoints, viewChanges: q.viewChanges, reads: q.reads, join: q.join, suspicions: q.suspicions, replies: q.replies },
      { model: 'byzantine', prepares: strong - 1, commits: strong, checkpoints: strong, viewChanges: strong, reads: strong, join: f + 1, suspicions: f + 1, replies: f + 1 },
      `n = ${n}`,
    );
  }
  assert.equal(replicasMin('byzantine'), 4);
  assert.equal(replicasFor(2, 'byzantine'), 7);
});

test('crash thresholds: f = floor((n-1)/2), majorities f+1 of 2f+1 (f+2 of 2f+2), f+1 for join and suspicions', () => {
  const cases: Array<[number, number, number]> = [
    [3, 1, 2],
    [4, 1, 3],
    [5, 2, 3],
    [6, 2, 4],
    [7, 3, 4],
    [9, 4, 5],
  ];
  for (const [n, f, strong] of cases) {
    assert.equal(faultsOf(n, 'crash'), f);
    const q = quorumFor(n, f, {}, 'crash');
    assert.deepEqual(
      { model: q.model, prepares: q.prepares, commits: q.commits, checkpoints: q.checkpoints, viewChanges: q.viewChanges, reads: q.reads, join: q.join, suspicions: q.suspicions, replies: q.replies },
      { model: 'crash', prepares: strong - 1, commits: strong, checkpoints: strong, viewChanges: strong, reads: strong, join: f + 1, suspicions: f + 1, replies: 1 },
      `n = ${n}`,
    );
  }
  assert.equal(replicasMin('crash'), 3);
  assert.equal(replicasFor(1, 'crash'), 3);
  assert.equal(replicasFor(3, 'crash'), 7);
  // f must fit n in its model.
  assert.throws(() => quorumFor(3, 1), /expected 3f\+1\.\.3f\+3/);
  assert.throws(() => quorumFor(4, 2, {}, 'crash'), /expected 2f\+1\.\.2f\+2/);
  assert.throws(() => quorumFor(7, 2, {}, 'crash'), /expected 2f\+1\.\.2f\+2/);
  // The unsafe overrides (negative controls) still apply.
  assert.deepEqual([quorumFor(3, 1, { prepares: 0, commits: 1 }, 'crash').prepares, quorumFor(3, 1, { prepares: 0, commits: 1 }, 'crash').commits], [0, 1]);
});

/** Every subset of {0..n-1} of size k, as bit masks. */
function subsets(n: number, k: number): number[] {
  const out: number[] = [];
  for (let m = 0; m < 1 << n; m++) if (popcount(m) === k) out.push(m);
  return out;
}
function popcount(m: number): number {
  let c = 0;
  for (; m; m &= m - 1) c++;
  return c;
}

test('exhaustively: any two strong quorums share f+1 replicas (byzantine) or one (crash), and n-f replicas form one', () => {
  for (const model of ['byzantine', 'crash'] as const satisfies readonly FaultModel[]) {
    for (let n = replicasMin(model); n <= 10; n++) {
      const f = faultsOf(n, model);
      const q = quorumFor(n, f, {}, model);
      const need = model === 'byzantine' ? f + 1 : 1;
      const quorums = subsets(n, q.commits);
      let least = n;
      for (const a of quorums) for (const b of quorums) least = Math.min(least, popcount(a & b));
      assert.ok(least >= need, `${model} n = ${n}: two quorums of ${q.commits} share only ${least}`);
      assert.ok(q.commits <= n - f && q.suspicions <= n - f && q.join <= n - f, `${model} n = ${n}: the f replicas that may be down block a quorum`);
      // And quorums of one fewer (the negative control's mistake) do not intersect as needed.
      const smaller = subsets(n, q.commits - 1);
      let leastSmaller = n;
      for (const a of smaller) for (const b of smaller) leastSmaller = Math.min(leastSmaller, popcount(a & b));
      assert.ok(leastSmaller < need, `${model} n = ${n}: a quorum of ${q.commits - 1} would have sufficed, so ${q.commits} is not the least`);
    }
  }
});

function config(n: number, model: FaultModel | undefined): MemberConfig {
  const key = (i: number): Uint8Array => new Uint8Array(32).fill(i + 1);
  return {
    epoch: 0,
    since: 0,
    replicas: Array.from({ length: n }, (_, id) => ({ id, url: `ws://127.0.0.1:${7001 + id}`, publicKey: key(id) })),
    clients: [{ id: 0, publicKey: key(100) }],
    operator: key(200),
    ...(model ? { faultModel: model } : {}),
  };
}

test('the membership carries the model: byzantine encodes as before (5 fields), crash adds one; f and the minimum follow it', () => {
  const byz = encodeMembership({ current: config(4, undefined) });
  assert.deepEqual(byz, encodeMembership({ current: config(4, 'byzantine') }), 'an explicit byzantine model encodes like none');
  const decodedByz = decodeCbor(byz);
  assert.ok(decodedByz.ok && Array.isArray(decodedByz.value) && (decodedByz.value[0] as unknown[]).length === 5);
  const crash = encodeMembership({ current: config(3, 'crash') });
  const back = decodeMembership(crash);
  assert.ok(back.ok, back.ok ? '' : back.reason);
  assert.equal(back.value.current.faultModel, 'crash');
  const cluster = clusterOf('c', back.value.current);
  assert.deepEqual([cluster.f, cluster.faultModel], [1, 'crash']);
  assert.equal(clusterOf('c', config(4, undefined)).f, 1);
  // Three replicas are a configuration only in the crash mode.
  const three = decodeMembership(encodeMembership({ current: config(3, undefined) }));
  assert.ok(!three.ok && /fewer than 4 replicas/.test(three.reason));
  // A reconfiguration keeps the model, and removing a replica below 3 (crash) is refused.
  const remove = (m: MemberConfig, id: number) => applyReconfig({ current: m }, encodeReconfigOp({ kind: 'remove-replica', id }), 1, 10, 20);
  const refused = remove(config(3, 'crash'), 2);
  assert.ok(!refused.result.ok && /at least 3 are needed/.test(refused.result.reason));
  const five = remove(config(5, 'crash'), 4);
  assert.ok(five.result.ok);
  assert.equal(five.membership.next?.faultModel, 'crash');
  assert.equal(faultsFor(five.membership.next!.replicas.length, 'crash'), 1);
  // The genesis membership of a crash keyring is a crash one.
  assert.equal(genesisMembership({ clusterId: 'c', f: 1, faultModel: 'crash', replicas: config(3, 'crash').replicas, clients: [] }).current.faultModel, 'crash');
});

test('keygen --fault-model crash writes a 2f+1 keyring that loads as crash; byzantine keyrings stay as they were', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pbft-quorum-model-'));
  try {
    const run = (...args: string[]) => {
      const out: string[] = [];
      const err: string[] = [];
      const code = keygenMain(['node', 'keygen', '--clients', '1', ...args], { out: (l) => out.push(l), err: (l) => err.push(l) });
      return { code, out, err };
    };
    let r = run('--fault-model', 'crash', '--out', join(dir, 'crash'));
    assert.equal(r.code, 0, r.err.join('\n'));
    const crash = loadCluster(join(dir, 'crash', 'cluster.json'));
    assert.deepEqual([crash.f, crash.faultModel, crash.replicas.length], [1, 'crash', 3], 'default 3 replicas in crash mode');
    r = run('--fault-model', 'crash', '--replicas', '5', '--out', join(dir, 'crash5'));
    assert.equal(r.code, 0);
    assert.equal(loadCluster(join(dir, 'crash5', 'cluster.json')).f, 2);
    r = run('--out', join(dir, 'byz'));
    assert.equal(r.code, 0);
    const byzText = readFileSync(join(dir, 'byz', 'cluster.json'), 'utf8');
    assert.doesNotMatch(byzText, /faultModel/, 'a byzantine cluster.json has no faultModel field (older readers accept it)');
    assert.equal(loadCluster(join(dir, 'byz', 'cluster.json')).faultModel, undefined);
    // Refusals: one line each.
    for (const [args, why] of [
      [['--fault-model', 'crash', '--replicas', '4'], /2f\+1 with f >= 1 for --fault-model crash .*got 4/],
      [['--fault-model', 'crash', '--replicas', '1'], /got 1 \(fewer than 3 replicas cannot survive one crash\)/],
      [['--replicas', '3'], /3f\+1 with f >= 1 .*got 3/],
      [['--fault-model', 'raft'], /--fault-model must be "byzantine" .* or "crash"/],
    ] as const) {
      r = run(...args, '--out', join(dir, 'bad'));
      assert.equal(r.code, 1, args.join(' '));
      assert.equal(r.err.length, 1);
      assert.match(r.err[0]!, why);
    }
    // A hand-edited cluster.json whose count does not fit its model, or with an unknown model.
    const json = JSON.parse(readFileSync(join(dir, 'crash', 'cluster.json'), 'utf8')) as Record<string, unknown>;
    const path = join(dir, 'edited.json');
    writeFileSync(path, JSON.stringify({ ...json, faultModel: 'byzantine' }));
    assert.throws(() => loadCluster(path), /f = 1 needs n = 3f\+1 = 4 replicas, got 3/);
    writeFileSync(path, JSON.stringify({ ...json, faultModel: 'omission' }));
    assert.throws(() => loadCluster(path), /faultModel must be "byzantine" or "crash"/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('crash mode through a reconfiguration: 3 -> 4 replicas keeps the model, its epoch proof needs f+1 = 2 signatures and is refused by a byzantine reader', () => {
  const sim = new SimCluster({ seed: 5, f: 1, faultModel: 'crash', spareReplicas: 1, operator: true, clients: 2, requestsPerClient: 300 });
  assert.equal(sim.n, 3);
  sim.run(100);
  sim.reconfigure({ kind: 'add-replica', replica: sim.replicaInfo[3]! });
  assert.ok(sim.runUntil(() => sim.hosts[0]!.replica!.status().epoch === 1, 3_000), 'the crash-mode cluster reached epoch 1');
  const proof = sim.hosts[0]!.replica!.epochProofs.get(1)!;
  const crypto: ProofCrypto = { verify: (k, d, s) => sim.keys.verifier.verify(k, d, s), hash: (d) => sha256(d) };
  const genesis = genesisMembership(sim.cluster).current;
  assert.equal(genesis.faultModel, 'crash');
  const ok = verifyEpochProof(sim.cluster.clusterId, genesis, proof, crypto);
  assert.ok(ok.ok, ok.ok ? '' : ok.reason);
  assert.equal(ok.config.faultModel, 'crash');
  assert.deepEqual(ok.config.replicas.map((r) => r.id), [0, 1, 2, 3]);
  // A majority of the 3 signs it; one signature is not enough.
  const one = verifyEpochProof(sim.cluster.clusterId, genesis, { ...proof, cert: { ...proof.cert, proof: proof.cert.proof.slice(0, 1) } }, crypto);
  assert.ok(!one.ok && /1 signatures; epoch 0 needs 2/.test(one.reason), one.ok ? '' : one.reason);
  // A reader that holds the configuration as byzantine does not take a crash one from a proof.
  const asByzantine = { ...genesis, faultModel: undefined };
  const refused = verifyEpochProof(sim.cluster.clusterId, asByzantine, proof, crypto);
  assert.ok(!refused.ok && /changes the fault model from byzantine to crash/.test(refused.reason), refused.ok ? '' : refused.reason);
});
